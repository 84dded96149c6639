//! Event encoders: text (the line as read) and JSON (one object per line).

use crate::config::EventFormat;
use crate::event::Batch;
use crate::record::{Event, Value};
use std::io::Write;
use std::time::SystemTime;

/// Bytes that need a JSON escape (0 = copy as is).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// High bit set in each of the 8 bytes that needs a JSON escape (< 0x20, `"` or `\\`), a word
/// at a time, since most log text needs none. Bytes above the lowest flagged one may be
/// flagged wrongly (a borrow), so only the lowest is trusted; it is exact.
fn escape_mask(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    let q = w ^ (LO * u64::from(b'"'));
    let quote = q.wrapping_sub(LO) & !q & HI;
    let s = w ^ (LO * u64::from(b'\\'));
    let slash = s.wrapping_sub(LO) & !s & HI;
    control | quote | slash
}

#[cfg(test)]
fn word_needs_escape(w: u64) -> bool {
    escape_mask(w) != 0
}

/// Appends `s` as the inside of a JSON string (already UTF-8: no validation).
pub fn escape_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    let (mut i, mut start) = (0, 0);
    while i < bytes.len() {
        // Jump over clean words, and inside a word straight to its first escape.
        if i + 8 <= bytes.len() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i..i + 8]);
            let mask = escape_mask(u64::from_le_bytes(w));
            if mask == 0 {
                i += 8;
                continue;
            }
            i += (mask.trailing_zeros() / 8) as usize;
        } else {
            // The tail, padded with a clean byte, as one word: short strings (names, levels)
            // are most of what is escaped.
            let mut w = [b'a'; 8];
            w[..bytes.len() - i].copy_from_slice(&bytes[i..]);
            let mask = escape_mask(u64::from_le_bytes(w));
            if mask == 0 {
                break;
            }
            i += (mask.trailing_zeros() / 8) as usize;
        }
        let b = bytes[i];
        let esc = ESCAPE[b as usize];
        if esc != 0 {
            out.extend_from_slice(&bytes[start..i]);
            if esc == b'u' {
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]);
            } else {
                out.extend_from_slice(&[b'\\', esc]);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `bytes` as the inside of a JSON string; invalid UTF-8 becomes U+FFFD.
pub fn json_escape(bytes: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => escape_str(s, out),
        Err(_) => escape_str(&String::from_utf8_lossy(bytes), out),
    }
}

/// Encodes batches in one format. It owns what many events share: the host, escaped once,
/// and the prefix of the current batch's events, escaped once per batch (a batch is up to a
/// read chunk of one file's lines), so that no line pays for the host or the path.
#[derive(Debug, Clone)]
pub struct Encoder {
    format: EventFormat,
    /// `","host":"<host>","path":"`, escaped.
    host: Vec<u8>,
    /// `{"timestamp":"…","host":"…","path":"…","offset":` of the batch being encoded; its
    /// buffer is kept from batch to batch.
    prefix: Vec<u8>,
    /// `,"source":"…","message":"` of the batch being encoded.
    suffix: Vec<u8>,
}

impl Encoder {
    /// An encoder of `format` events that carry `host`.
    pub fn new(format: EventFormat, host: &str) -> Encoder {
        let mut h = Vec::with_capacity(host.len() + 24);
        h.extend_from_slice(b"\",\"host\":\"");
        json_escape(host.as_bytes(), &mut h);
        h.extend_from_slice(b"\",\"path\":\"");
        Encoder {
            format,
            host: h,
            prefix: Vec::new(),
            suffix: Vec::new(),
        }
    }

    /// Appends a batch's events to `out`.
    pub fn encode(&mut self, batch: &Batch, out: &mut Vec<u8>) {
        if let Some(events) = &batch.events {
            return self.encode_events(events, batch.read_time, out);
        }
        match self.format {
            EventFormat::Text => {
                for l in &batch.lines {
                    out.extend_from_slice(batch.line(l));
                    out.push(b'\n');
                }
            }
            EventFormat::Json => {
                if batch.lines.is_empty() {
                    return;
                }
                self.start_batch(batch);
                let mut num = itoa_buf();
                for l in &batch.lines {
                    out.extend_from_slice(&self.prefix);
                    out.extend_from_slice(itoa(batch.offset_of(l), &mut num));
                    out.extend_from_slice(&self.suffix);
                    json_escape(batch.line(l), out);
                    out.extend_from_slice(b"\"}\n");
                }
            }
        }
    }

    /// Events the pipeline made: all their fields (JSON), or the message alone (text).
    fn encode_events(&self, events: &[Event], read_time: SystemTime, out: &mut Vec<u8>) {
        for e in events {
            match self.format {
                EventFormat::Json => e.write_json(read_time, out),
                EventFormat::Text => match e.fields.get("message") {
                    Some(Value::Str(s)) => out.extend_from_slice(s.as_bytes()),
                    Some(v) => v.write_json(out),
                    None => {}
                },
            }
            out.push(b'\n');
        }
    }

    /// Builds the prefix every event of `batch` starts with: everything up to the offset,
    /// and what follows the offset up to the message.
    fn start_batch(&mut self, batch: &Batch) {
        let s = &mut self.suffix;
        s.clear();
        s.extend_from_slice(b",\"source\":\"");
        json_escape(batch.source.as_bytes(), s);
        s.extend_from_slice(b"\",\"message\":\"");
        let p = &mut self.prefix;
        p.clear();
        p.extend_from_slice(b"{\"timestamp\":\"");
        // Writing to a Vec cannot fail.
        let _ = write!(p, "{}", humantime::format_rfc3339_micros(batch.read_time));
        p.extend_from_slice(&self.host);
        json_escape(batch.file.origin.as_os_str().as_encoded_bytes(), p);
        p.extend_from_slice(b"\",\"offset\":");
    }
}

fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut out = Vec::new();
        json_escape(b"a\"b\\c\nd\te\x01", &mut out);
        assert_eq!(out, b"a\\\"b\\\\c\\nd\\te\\u0001");
        out.clear();
        json_escape(b"caf\xc3\xa9 \xff!", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "caf\u{e9} \u{fffd}!");
    }

    #[test]
    fn escaped_random_text_reads_back_as_itself() {
        let alphabet = [
            'a', '"', '\\', '\n', '\u{1}', '\u{1f}', ' ', 'é', '€', '\t', 'z', '/',
        ];
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..5000 {
            let mut text = String::new();
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            for k in 0..(rng % 40) {
                text.push(alphabet[((rng >> (k % 50)) as usize + k as usize * 7) % alphabet.len()]);
            }
            let mut out = b"\"".to_vec();
            escape_str(&text, &mut out);
            out.push(b'"');
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, text);
        }
    }

    #[test]
    fn word_scan_agrees_with_the_table() {
        for b in 0u8..=255 {
            let mut w = [b'a'; 8];
            w[3] = b;
            let expect = ESCAPE[b as usize] != 0;
            assert_eq!(
                word_needs_escape(u64::from_le_bytes(w)),
                expect,
                "byte {b:#x}"
            );
        }
        let mut out = Vec::new();
        json_escape(
            b"0123456789abcdef\"quoted\" tail\x1f end of a long line",
            &mut out,
        );
        assert_eq!(
            out,
            b"0123456789abcdef\\\"quoted\\\" tail\\u001f end of a long line"
        );
    }

    fn batch(path: &str, base_offset: u64, lines: &[&str]) -> Batch {
        use crate::event::{FileState, Line, Progress};
        use crate::identity::{FileKey, Fingerprint};
        let path = std::path::Path::new(path);
        let progress = Progress::starting_at(Fingerprint::default(), base_offset, 0, path);
        let file = std::sync::Arc::new(FileState::new(FileKey { dev: 1, ino: 2 }, path, progress));
        let (mut buf, mut ranges) = (Vec::new(), Vec::new());
        for l in lines {
            let start = buf.len() as u32;
            buf.extend_from_slice(l.as_bytes());
            ranges.push(Line {
                start,
                end: buf.len() as u32,
            });
            buf.push(b'\n');
        }
        Batch {
            file,
            ticket: crate::ack::Ticket {
                generation: 0,
                seq: 0,
            },
            end_offset: base_offset + buf.len() as u64,
            events: None,
            source: "app".into(),
            buf,
            base_offset,
            lines: ranges,
            marker: 0,
            read_time: std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_500_000),
        }
    }

    #[test]
    fn json_events_carry_the_host_and_their_own_batch_path() {
        let mut enc = Encoder::new(EventFormat::Json, "web\"1");
        let mut out = Vec::new();
        enc.encode(&batch("/l/a.log", 10, &["one", "t\two"]), &mut out);
        // The prefix is rebuilt for each batch: the next file's events name that file.
        enc.encode(&batch("/l/b \"q\".log", 0, &["x"]), &mut out);
        enc.encode(&batch("/l/c.log", 0, &[]), &mut out);
        let text = String::from_utf8(out).unwrap();
        let want = [
            r#"{"timestamp":"1970-01-01T00:00:01.500000Z","host":"web\"1","path":"/l/a.log","offset":10,"source":"app","message":"one"}"#,
            r#"{"timestamp":"1970-01-01T00:00:01.500000Z","host":"web\"1","path":"/l/a.log","offset":14,"source":"app","message":"t\two"}"#,
            r#"{"timestamp":"1970-01-01T00:00:01.500000Z","host":"web\"1","path":"/l/b \"q\".log","offset":0,"source":"app","message":"x"}"#,
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), want);
        for l in text.lines() {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }

    #[test]
    fn text_events_are_the_lines() {
        let mut enc = Encoder::new(EventFormat::Text, "h");
        let mut out = Vec::new();
        enc.encode(&batch("/l/a.log", 0, &["one", "", "th\"ree"]), &mut out);
        assert_eq!(out, b"one\n\nth\"ree\n");
    }

    #[test]
    fn numbers() {
        let mut b = itoa_buf();
        assert_eq!(itoa(0, &mut b), b"0");
        assert_eq!(itoa(u64::MAX, &mut b), u64::MAX.to_string().as_bytes());
    }
}
