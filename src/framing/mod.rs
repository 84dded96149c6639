//! Framing: raw lines in, records out. Container formats (CRI, Docker json-file, told apart
//! per file by `auto`) first, then multiline joining. STUB: being written; API fixed.

pub mod kubernetes;

use crate::config::{Framing, MultilineConfig};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Instant, SystemTime};

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

/// Container framing of one file.
#[derive(Debug)]
pub struct Framer {
    format: Framing,
}

impl Framer {
    /// A framer for `format`; joined partial records are bounded by `max_bytes`.
    pub fn new(format: Framing, max_bytes: usize) -> Framer {
        let _ = max_bytes;
        Framer { format }
    }

    /// Feeds one raw line (without its newline) that starts at file offset `offset`; appends
    /// the records it completes to `out`.
    pub fn push(&mut self, line: &[u8], offset: u64, out: &mut Vec<Frame>) {
        let _ = self.format;
        out.push(Frame {
            text: line.to_vec(),
            offset,
            time: None,
            stream: None,
        });
    }

    /// Offset of the first line of a record still waiting for its end (CRI `P`, Docker
    /// without a newline).
    pub fn pending_start(&self) -> Option<u64> {
        None
    }

    /// Emits a waiting partial record as it is (end of input, rotation, shutdown of a
    /// drained file).
    pub fn flush(&mut self, out: &mut Vec<Frame>) {
        let _ = out;
    }
}

/// Multiline rules of one input, compiled once.
#[derive(Debug)]
pub struct JoinRules {}

impl JoinRules {
    /// Compiles the rules; an error names the key under `at` (`<at>.start: ...`).
    pub fn new(cfg: &MultilineConfig, at: &str) -> Result<Arc<JoinRules>, String> {
        let _ = (cfg, at);
        Ok(Arc::new(JoinRules {}))
    }
}

/// Multiline joining of one file's records.
#[derive(Debug)]
pub struct Joiner {}

impl Joiner {
    /// A joiner for one file; `cut_counter` counts cut events, `path` names the file in the
    /// warning.
    pub fn new(rules: Arc<JoinRules>, cut_counter: Arc<AtomicU64>, path: String) -> Joiner {
        let _ = (rules, cut_counter, path);
        Joiner {}
    }

    /// Feeds a record read at `now`; appends the events it completes to `out`.
    pub fn push(&mut self, rec: Frame, now: Instant, out: &mut Vec<Frame>) {
        let _ = now;
        out.push(rec);
    }

    /// Offset of the pending event's first line.
    pub fn pending_start(&self) -> Option<u64> {
        None
    }

    /// When the pending event times out.
    pub fn deadline(&self) -> Option<Instant> {
        None
    }

    /// Emits the pending event.
    pub fn flush(&mut self, out: &mut Vec<Frame>) {
        let _ = out;
    }
}
