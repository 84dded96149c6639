//! Event encoders: text (the line as read) and JSON (one object per line).

use crate::config::EventFormat;
use crate::event::Batch;

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

fn escape_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
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
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `bytes` as the inside of a JSON string; invalid UTF-8 becomes U+FFFD.
pub fn json_escape(bytes: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => escape_str(s, out),
        Err(_) => escape_str(&String::from_utf8_lossy(bytes), out),
    }
}

/// Encodes a batch's lines onto `out` in the given format.
pub fn encode(batch: &Batch, format: EventFormat, out: &mut Vec<u8>) {
    match format {
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
            // Everything up to the offset is the same for the whole batch.
            let mut prefix = Vec::with_capacity(64 + batch.file.json_mid.len());
            prefix.extend_from_slice(b"{\"timestamp\":\"");
            prefix.extend_from_slice(
                humantime::format_rfc3339_micros(batch.read_time)
                    .to_string()
                    .as_bytes(),
            );
            prefix.extend_from_slice(&batch.file.json_mid);
            let mut num = itoa_buf();
            for l in &batch.lines {
                out.extend_from_slice(&prefix);
                out.extend_from_slice(itoa(batch.offset_of(l), &mut num));
                out.extend_from_slice(b",\"message\":\"");
                json_escape(batch.line(l), out);
                out.extend_from_slice(b"\"}\n");
            }
        }
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
    fn numbers() {
        let mut b = itoa_buf();
        assert_eq!(itoa(0, &mut b), b"0");
        assert_eq!(itoa(u64::MAX, &mut b), u64::MAX.to_string().as_bytes());
    }
}
