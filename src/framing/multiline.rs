//! Multiline joining: consecutive records become one event, by a `start` regex, a `continue`
//! regex or a built-in preset (`presets`). Lines are joined with `\n`; the event keeps the
//! offset, time and stream of its first line.

use super::Frame;
use super::presets::{self, State, Step};
use crate::config::{MultilineConfig, Preset};
use crate::stats;
use regex::bytes::Regex;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tracing::warn;

/// The compiled `multiline:` rules of one input, shared by its files' joiners.
#[derive(Debug)]
pub struct JoinRules {
    mode: Mode,
    timeout: Duration,
    max_lines: usize,
    max_bytes: usize,
}

#[derive(Debug)]
enum Mode {
    /// A matching line begins an event; other lines join it.
    Start(Regex),
    /// A matching line joins the previous event; others begin one.
    Continue(Regex),
    /// Built-in rules.
    Preset(Preset),
}

impl JoinRules {
    /// Compiles and checks the rules; an error names the key under `at` (`<at>.start: ...`).
    pub fn new(cfg: &MultilineConfig, at: &str) -> Result<Arc<JoinRules>, String> {
        let compile = |key: &str, re: &str| {
            Regex::new(re).map_err(|e| {
                let why = crate::condition::regex_reason(&e);
                format!("{at}.{key}: invalid regex: {why}")
            })
        };
        let mode = match (&cfg.start, &cfg.continue_, cfg.preset) {
            (Some(re), None, None) => Mode::Start(compile("start", re)?),
            (None, Some(re), None) => Mode::Continue(compile("continue", re)?),
            (None, None, Some(p)) => Mode::Preset(p),
            _ => {
                return Err(format!(
                    "{at}: exactly one of start, continue and preset is required"
                ));
            }
        };
        if cfg.max_lines < 1 {
            return Err(format!("{at}.max_lines: must be at least 1"));
        }
        if cfg.max_bytes < 16 {
            return Err(format!("{at}.max_bytes: must be at least 16 bytes"));
        }
        Ok(Arc::new(JoinRules {
            mode,
            timeout: cfg.timeout,
            max_lines: cfg.max_lines,
            max_bytes: usize::try_from(cfg.max_bytes).unwrap_or(usize::MAX),
        }))
    }
}

/// Multiline joining of one file's records: a deterministic state machine, time comes in
/// as `now`. At most one event is pending, of at most `max_bytes`.
#[derive(Debug)]
pub struct Joiner {
    rules: Arc<JoinRules>,
    cut_counter: Arc<AtomicU64>,
    path: String,
    /// Whether this file's first cut was warned about.
    warned: bool,
    pending: Option<Frame>,
    /// Lines in `pending`.
    lines: usize,
    /// The preset's state (what the lines so far make the next one mean).
    state: State,
    /// Last line joined + timeout: the pending event goes then, and the preset's state
    /// resets.
    quiet_at: Option<Instant>,
    /// Offset of an event just emitted at `max_lines`: whether that was a cut is known
    /// only when the next line says whether it would have joined.
    full: Option<u64>,
}

impl Joiner {
    /// A joiner for one file; `cut_counter` counts events cut at a limit, `path` names the
    /// file in the (one) warning about it.
    pub fn new(rules: Arc<JoinRules>, cut_counter: Arc<AtomicU64>, path: String) -> Joiner {
        Joiner {
            rules,
            cut_counter,
            path,
            warned: false,
            pending: None,
            lines: 0,
            state: State::Idle,
            quiet_at: None,
            full: None,
        }
    }

    /// Feeds a record read at `now`; appends the events it completes to `out`.
    pub fn push(&mut self, mut rec: Frame, now: Instant, out: &mut Vec<Frame>) {
        if self.quiet_at.is_some_and(|q| now >= q) {
            // The caller may feed a late line before calling flush: the quiet period ended
            // the event all the same.
            self.flush(out);
        }
        let step = match &self.rules.mode {
            Mode::Start(re) if re.is_match(&rec.text) => Step::Start,
            Mode::Start(_) => Step::Join,
            Mode::Continue(re) if re.is_match(&rec.text) => Step::Join,
            Mode::Continue(_) => Step::Start,
            Mode::Preset(p) => presets::step(*p, &mut self.state, &rec.text),
        };
        if let Some(first) = self.full.take()
            && step == Step::Join
        {
            self.cut("max_lines", self.rules.max_lines, first, rec.offset);
        }
        let max_bytes = self.rules.max_bytes;
        if rec.text.len() > max_bytes {
            rec.text.truncate(utf8_floor(&rec.text, max_bytes));
            self.cut("max_bytes", max_bytes, rec.offset, rec.offset);
        }
        match step {
            Step::Single => {
                self.emit(out);
                out.push(rec);
                self.quiet_at = None;
                return;
            }
            Step::Start => {
                self.emit(out);
                self.begin(rec);
            }
            Step::Join => match self.pending.as_mut() {
                None => self.begin(rec),
                Some(p) if p.text.len() + 1 + rec.text.len() > max_bytes => {
                    let first = p.offset;
                    self.cut("max_bytes", max_bytes, first, rec.offset);
                    self.emit(out);
                    self.begin(rec);
                }
                Some(p) => {
                    p.text.push(b'\n');
                    p.text.extend_from_slice(&rec.text);
                    self.lines += 1;
                }
            },
        }
        self.quiet_at = now.checked_add(self.rules.timeout);
        if self.lines >= self.rules.max_lines {
            self.full = self.pending.as_ref().map(|p| p.offset);
            self.emit(out);
        }
    }

    /// Offset of the pending event's first line.
    pub fn pending_start(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.offset)
    }

    /// When the pending event times out: `timeout` after the last line that joined it.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().and(self.quiet_at)
    }

    /// Emits the pending event and starts afresh (timeout, rotation, end of a drained file).
    pub fn flush(&mut self, out: &mut Vec<Frame>) {
        self.emit(out);
        self.state = State::Idle;
        self.quiet_at = None;
        self.full = None;
    }

    fn begin(&mut self, rec: Frame) {
        self.pending = Some(rec);
        self.lines = 1;
    }

    fn emit(&mut self, out: &mut Vec<Frame>) {
        out.extend(self.pending.take());
        self.lines = 0;
    }

    /// Counts a cut; the first one per file is also logged.
    fn cut(&mut self, limit: &'static str, max: usize, event: u64, at: u64) {
        stats::add(&self.cut_counter, 1);
        if !self.warned {
            self.warned = true;
            warn!(path = %self.path, limit, max, event_offset = event, cut_offset = at,
                "multiline event cut at its limit; the rest goes on as a new event (warned once per file)");
        }
    }
}

/// The largest length ≤ `max` that does not split a UTF-8 sequence (invalid text is cut
/// at `max`).
fn utf8_floor(text: &[u8], max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    let is_cont = |i: usize| text[i] & 0xC0 == 0x80;
    let mut n = max;
    // A sequence is at most 4 bytes: its start is within the 3 bytes before the cut.
    while n > max.saturating_sub(3) && is_cont(n) {
        n -= 1;
    }
    if is_cont(n) { max } else { n }
}

#[cfg(test)]
#[path = "multiline_tests.rs"]
pub(super) mod tests;
