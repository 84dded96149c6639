//! Framing: raw lines in, records out. Container formats (CRI, Docker json-file, told apart
//! per file by `auto`) first, then multiline joining ([`Joiner`]). Both are pure state
//! machines fed line by line; their `pending_start` is the offset a checkpoint may not pass.

mod cri;
mod docker;
pub mod kubernetes;
mod multiline;
mod presets;
pub(crate) mod rfc3339;

pub use multiline::{JoinRules, Joiner};

use crate::config::Framing;
use std::borrow::Cow;
use std::time::SystemTime;

/// One record as the file framed it, or several lines joined into one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The text (container framing removed; joined lines separated by `\n`).
    pub text: Vec<u8>,
    /// File offset of its first raw line.
    pub offset: u64,
    /// The time the runtime recorded (CRI, Docker), if any.
    pub time: Option<SystemTime>,
    /// `stdout` or `stderr` (CRI, Docker), if known.
    pub stream: Option<&'static str>,
}

/// Container framing of one file: CRI `P` records and Docker records without a trailing
/// newline are joined with the following ones of the same stream, up to a record of the
/// other stream; a line that does not fit the format is passed on whole as a plain record,
/// never dropped.
#[derive(Debug)]
pub struct Framer {
    /// The format in use; `Auto` until the first non-empty line decides.
    format: Framing,
    /// Bound on a joined partial record.
    max_bytes: usize,
    /// The partial record waiting for its end (one at most: see `piece`).
    partial: Option<Frame>,
}

impl Framer {
    /// A framer for `format`; joined partial records are cut at `max_bytes`.
    pub fn new(format: Framing, max_bytes: usize) -> Framer {
        Framer {
            format,
            max_bytes: max_bytes.max(1),
            partial: None,
        }
    }

    /// The format in use: for `auto`, what the file's first non-empty line decided
    /// (`Auto` while undecided).
    pub fn format(&self) -> Framing {
        self.format
    }

    /// Feeds one raw line (without its newline) that starts at file offset `offset`; appends
    /// the records it completes to `out`.
    pub fn push(&mut self, line: &[u8], offset: u64, out: &mut Vec<Frame>) {
        if self.format == Framing::Auto {
            if line.iter().all(u8::is_ascii_whitespace) {
                out.push(plain(line, offset));
                return;
            }
            self.format = if cri::parse(line).is_some() {
                Framing::Cri
            } else if docker::parse(line).is_some() {
                Framing::Docker
            } else {
                Framing::Lines
            };
        }
        match self.format {
            Framing::Lines | Framing::Auto => out.push(plain(line, offset)),
            Framing::Cri => match cri::parse(line) {
                Some(l) => self.piece(
                    Cow::Borrowed(l.text),
                    offset,
                    Some(l.time),
                    Some(l.stream),
                    l.full,
                    out,
                ),
                None => self.malformed(line, offset, out),
            },
            Framing::Docker => match docker::parse(line) {
                Some(l) => self.piece(l.text, offset, l.time, l.stream, l.full, out),
                None => self.malformed(line, offset, out),
            },
        }
    }

    /// Offset of the first line of the oldest record still waiting for its end (CRI `P`,
    /// Docker without a newline).
    pub fn pending_start(&self) -> Option<u64> {
        self.partial.as_ref().map(|f| f.offset)
    }

    /// Emits the waiting partial record as it is (end of input, rotation).
    pub fn flush(&mut self, out: &mut Vec<Frame>) {
        out.extend(self.partial.take());
    }

    /// One record of a container format: joined onto its stream's partial record, if any.
    fn piece(
        &mut self,
        text: Cow<'_, [u8]>,
        offset: u64,
        time: Option<SystemTime>,
        stream: Option<&'static str>,
        full: bool,
        out: &mut Vec<Frame>,
    ) {
        // A record of another stream ends the waiting partial one, which goes on as it is:
        // records then complete in file order, so the checkpoint held at a partial record
        // never has complete records of the other stream behind it, which a restart would
        // deliver again (and a busy other stream cannot keep a partial one waiting).
        if self.partial.as_ref().is_some_and(|p| p.stream != stream) {
            self.flush(out);
        }
        let frame = match self.partial.take() {
            Some(mut p) if p.text.len() + text.len() <= self.max_bytes => {
                p.text.extend_from_slice(&text);
                p
            }
            waiting => {
                // Beyond the bound the part joined so far goes on alone; memory stays bounded.
                out.extend(waiting);
                Frame {
                    text: text.into_owned(),
                    offset,
                    time,
                    stream,
                }
            }
        };
        if full || frame.text.len() >= self.max_bytes {
            out.push(frame);
        } else {
            self.partial = Some(frame);
        }
    }

    /// A line that does not fit the format: whatever waits goes first, then the line as is.
    fn malformed(&mut self, line: &[u8], offset: u64, out: &mut Vec<Frame>) {
        self.flush(out);
        out.push(plain(line, offset));
    }
}

/// A raw line as a record.
fn plain(line: &[u8], offset: u64) -> Frame {
    Frame {
        text: line.to_vec(),
        offset,
        time: None,
        stream: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn run(f: &mut Framer, lines: &[&str]) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut off = 0;
        for l in lines {
            f.push(l.as_bytes(), off, &mut out);
            off += l.len() as u64 + 1;
        }
        out
    }

    fn texts(v: &[Frame]) -> Vec<String> {
        v.iter()
            .map(|f| String::from_utf8_lossy(&f.text).into_owned())
            .collect()
    }

    const T0: &str = "2026-12-01T10:00:00.123456789Z";

    #[test]
    fn lines_pass_through() {
        let mut f = Framer::new(Framing::Lines, 100);
        let out = run(&mut f, &["a", "", "2026-12-01T10:00:00Z stdout F x"]);
        assert_eq!(texts(&out), ["a", "", "2026-12-01T10:00:00Z stdout F x"]);
        assert_eq!(out[2].offset, 3);
        assert!(out.iter().all(|f| f.time.is_none() && f.stream.is_none()));
        assert_eq!(f.pending_start(), None);
    }

    #[test]
    fn cri_full_partial_and_empty() {
        let mut f = Framer::new(Framing::Cri, 1000);
        let mut out = Vec::new();
        f.push(format!("{T0} stdout F text").as_bytes(), 0, &mut out);
        assert_eq!(texts(&out), ["text"]);
        assert_eq!(out[0].stream, Some("stdout"));
        assert_eq!(
            out[0].time,
            Some(UNIX_EPOCH + Duration::new(1_796_119_200, 123_456_789))
        );
        out.clear();
        f.push(format!("{T0} stderr P one ").as_bytes(), 100, &mut out);
        assert_eq!(f.pending_start(), Some(100));
        f.push(b"2026-12-01T10:00:01Z stderr P two ", 200, &mut out);
        assert!(out.is_empty());
        assert_eq!(f.pending_start(), Some(100));
        f.push(b"2026-12-01T10:00:02Z stderr F three", 300, &mut out);
        assert_eq!(texts(&out), ["one two three"]);
        // A joined record keeps the offset and time of its first part.
        assert_eq!(out[0].offset, 100);
        assert_eq!(out[0].stream, Some("stderr"));
        assert_eq!(out[0].time, rfc3339::parse(T0.as_bytes()));
        assert_eq!(f.pending_start(), None);
        out.clear();
        f.push(format!("{T0} stdout F ").as_bytes(), 400, &mut out);
        f.push(format!("{T0} stdout F").as_bytes(), 500, &mut out);
        assert_eq!(texts(&out), ["", ""]);
        assert_eq!(out[1].stream, Some("stdout"));
    }

    #[test]
    fn a_record_of_the_other_stream_ends_a_partial_one() {
        let mut f = Framer::new(Framing::Cri, 1000);
        let out = run(
            &mut f,
            &[
                &format!("{T0} stdout P out-a "),
                &format!("{T0} stderr P err-a "),
                &format!("{T0} stderr F err-b"),
                &format!("{T0} stdout F out-b"),
            ],
        );
        // In file order: nothing complete ever lies behind a waiting partial record.
        assert_eq!(texts(&out), ["out-a ", "err-a err-b", "out-b"]);
        assert_eq!(
            (out[0].stream, out[1].stream, out[2].stream),
            (Some("stdout"), Some("stderr"), Some("stdout"))
        );
        assert_eq!(f.pending_start(), None);
        assert_eq!(out[0].offset, 0);
    }

    #[test]
    fn malformed_lines_are_delivered_after_the_partial() {
        let mut f = Framer::new(Framing::Cri, 1000);
        let lines = [
            format!("{T0} stdout P half"),
            "not cri at all".to_string(),
            format!("{T0} stdout F ok"),
        ];
        let out = run(
            &mut f,
            &lines.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(texts(&out), ["half", "not cri at all", "ok"]);
        assert_eq!(out[1].offset, lines[0].len() as u64 + 1);
        assert_eq!((out[1].time, out[1].stream), (None, None));
        let mut f = Framer::new(Framing::Docker, 1000);
        let out = run(
            &mut f,
            &[r#"{"log":"a"}"#, r#"{"log":1}"#, "", r#"{"log":"b\n"}"#],
        );
        assert_eq!(texts(&out), ["a", r#"{"log":1}"#, "", "b"]);
    }

    #[test]
    fn partial_records_are_bounded() {
        let mut f = Framer::new(Framing::Cri, 10);
        let out = run(
            &mut f,
            &[
                &format!("{T0} stdout P 12345"),
                &format!("{T0} stdout P 6789"),
                &format!("{T0} stdout P abc"),
                &format!("{T0} stdout F d"),
            ],
        );
        // 5 + 4 fit, 3 more would not: the joined part goes alone, the rest goes on.
        assert_eq!(texts(&out), ["123456789", "abcd"]);
        let mut f = Framer::new(Framing::Docker, 4);
        let out = run(
            &mut f,
            &[r#"{"log":"12"}"#, r#"{"log":"34"}"#, r#"{"log":"5\n"}"#],
        );
        // Reaching the bound exactly emits at once.
        assert_eq!(texts(&out), ["1234", "5"]);
        assert_eq!(f.pending_start(), None);
    }

    #[test]
    fn docker_records() {
        let mut f = Framer::new(Framing::Docker, 1000);
        let out = run(
            &mut f,
            &[
                r#"{"log":"whole\n","stream":"stdout","time":"2026-12-01T10:00:00.123456789Z"}"#,
                r#"{"log":"part ","stream":"stderr","time":"2026-12-01T10:00:00.123456789Z"}"#,
                r#"{"log":"more ","stream":"stderr","time":"2026-12-01T10:00:01Z"}"#,
                r#"{"log":"end\n","stream":"stderr","time":"2026-12-01T10:00:02Z"}"#,
            ],
        );
        assert_eq!(texts(&out), ["whole", "part more end"]);
        assert_eq!(out[1].stream, Some("stderr"));
        assert_eq!(out[1].time, rfc3339::parse(T0.as_bytes()));
        assert_eq!(out[1].offset, 76);
    }

    #[test]
    fn flush_emits_waiting_parts_oldest_first() {
        let mut f = Framer::new(Framing::Cri, 1000);
        let mut out = run(
            &mut f,
            &[&format!("{T0} stderr P e"), &format!("{T0} stderr P f")],
        );
        assert!(out.is_empty());
        assert_eq!(f.pending_start(), Some(0));
        f.flush(&mut out);
        assert_eq!(texts(&out), ["ef"]);
        assert_eq!(f.pending_start(), None);
        f.flush(&mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn auto_decides_on_the_first_non_empty_line() {
        let mut f = Framer::new(Framing::Auto, 1000);
        let out = run(&mut f, &["", "  ", &format!("{T0} stdout F x"), "plain"]);
        assert_eq!(f.format(), Framing::Cri);
        assert_eq!(texts(&out), ["", "  ", "x", "plain"]);
        let mut f = Framer::new(Framing::Auto, 1000);
        let out = run(
            &mut f,
            &[
                r#"{"log":"x\n","stream":"stdout"}"#,
                &format!("{T0} stdout F y"),
            ],
        );
        assert_eq!(f.format(), Framing::Docker);
        // The decision sticks: a CRI line in a Docker file is a plain line.
        assert_eq!(texts(&out), ["x".to_string(), format!("{T0} stdout F y")]);
        let mut f = Framer::new(Framing::Auto, 1000);
        assert_eq!(f.format(), Framing::Auto);
        let out = run(&mut f, &[r#"{"msg":"json"}"#, r#"{"log":"x\n"}"#]);
        assert_eq!(f.format(), Framing::Lines);
        assert_eq!(texts(&out), [r#"{"msg":"json"}"#, r#"{"log":"x\n"}"#]);
    }
}
