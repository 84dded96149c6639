//! The processing pipeline of one file: raw lines in, events out. Framing (CRI, Docker)
//! first, then multiline joining, then the input's processors, all in the thread that reads
//! the file (per-file order kept, no extra hop, files processed in parallel).
//!
//! It also says how far the file may be acknowledged: not past the first line of an event
//! still pending (a partial CRI record, a multiline event waiting for more lines), so that a
//! restart reads that event again, whole.

use crate::config::{FileInput, Framing};
use crate::framing::{Frame, Framer, JoinRules, Joiner, kubernetes};
use crate::processors::Processors;
use crate::record::{Event, Key, Meta, Value, intern};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a partial container record waits for its end when no multiline timeout applies.
const PARTIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// One input's pipeline, compiled once; each file gets its own state from it.
#[derive(Debug)]
pub struct Compiled {
    /// The input's id: events carry it as `source`.
    pub source: Arc<str>,
    host: Arc<str>,
    format: Framing,
    kubernetes: bool,
    /// Bound on a joined partial record (the input's max_line_bytes).
    max_record_bytes: usize,
    rules: Option<Arc<JoinRules>>,
    processors: Processors,
    timeout: Duration,
}

impl Compiled {
    /// Compiles input `index` (`id` is its id or default); errors name the key.
    pub fn build(input: &FileInput, index: usize, host: &str) -> Result<Compiled, String> {
        let at = format!("inputs.files[{index}]");
        let id = input.id_or_default(index);
        let rules = match &input.multiline {
            Some(m) => Some(JoinRules::new(m, &format!("{at}.multiline"))?),
            None => None,
        };
        let processors = Processors::build(&input.processors, &format!("{at}.processors"), &id)?;
        Ok(Compiled {
            source: id.into(),
            host: host.into(),
            format: input.format,
            kubernetes: input.kubernetes,
            max_record_bytes: input.max_line_bytes as usize,
            rules,
            processors,
            timeout: input
                .multiline
                .as_ref()
                .map_or(PARTIAL_TIMEOUT, |m| m.timeout),
        })
    }

    /// The metadata every event of the file at `path` carries.
    pub fn meta(&self, path: &Path) -> Arc<Meta> {
        let mut meta = Meta::new(&self.host, &path.to_string_lossy(), &self.source);
        if self.kubernetes
            && let Some(fields) = kubernetes::fields_from_path(path)
        {
            meta.extra = fields;
        }
        Arc::new(meta)
    }

    /// Fresh state for the file at `path`.
    pub fn for_file(&self, path: &Path) -> FilePipeline {
        let joiner = self.rules.as_ref().map(|r| {
            let cut = crate::stats::stage_counter(&self.source, "multiline", "cut");
            Joiner::new(r.clone(), cut, path.display().to_string())
        });
        FilePipeline {
            framer: Framer::new(self.format, self.max_record_bytes),
            joiner,
            processors: self.processors.clone(),
            meta: self.meta(path),
            frames: Vec::new(),
            joined: Vec::new(),
            timeout: self.timeout,
            last_push: None,
            keys: Keys {
                message: intern("message"),
                stream: intern("stream"),
            },
        }
    }
}

/// Where one file's records stand between reading and the output.
#[derive(Debug)]
pub struct FilePipeline {
    framer: Framer,
    joiner: Option<Joiner>,
    processors: Processors,
    meta: Arc<Meta>,
    /// Scratch: records out of the framer, events out of the joiner (kept for their capacity).
    frames: Vec<Frame>,
    joined: Vec<Frame>,
    /// How long a partial record waits (multiline timeout, else PARTIAL_TIMEOUT).
    timeout: Duration,
    /// When a line last came in.
    last_push: Option<Instant>,
    /// Names every event gets.
    keys: Keys,
}

impl FilePipeline {
    /// Feeds one whole line that starts at file offset `offset`, read at `now`; appends the
    /// events it completes to `out`.
    pub fn push_line(&mut self, line: &[u8], offset: u64, now: Instant, out: &mut Vec<Event>) {
        self.last_push = Some(now);
        self.framer.push(line, offset, &mut self.frames);
        self.after_framing(now, out);
    }

    /// Records out of the framer go through the joiner (if any) and the processors.
    fn after_framing(&mut self, now: Instant, out: &mut Vec<Event>) {
        match &mut self.joiner {
            Some(j) => {
                for f in self.frames.drain(..) {
                    j.push(f, now, &mut self.joined);
                }
            }
            None => self.joined.append(&mut self.frames),
        }
        for f in self.joined.drain(..) {
            let e = to_event(&self.meta, &self.keys, f);
            if let Some(e) = self.processors.apply(e) {
                out.push(e);
            }
        }
    }

    /// The offset of the first line of the oldest event not yet emitted.
    pub fn pending_start(&self) -> Option<u64> {
        let j = self.joiner.as_ref().and_then(Joiner::pending_start);
        earliest(self.framer.pending_start(), j)
    }

    /// When the pending event is due to be emitted even if no line comes.
    pub fn deadline(&self) -> Option<Instant> {
        let j = self.joiner.as_ref().and_then(Joiner::deadline);
        let f = self
            .framer
            .pending_start()
            .and(self.last_push)
            .map(|t| t + self.timeout);
        earliest(f, j)
    }

    /// Whether an event is pending.
    pub fn has_pending(&self) -> bool {
        self.pending_start().is_some()
    }

    /// Emits every pending event (timeout, end of a drained file, a new generation).
    pub fn flush(&mut self, now: Instant, out: &mut Vec<Event>) {
        self.framer.flush(&mut self.frames);
        self.after_framing(now, out);
        if let Some(j) = &mut self.joiner {
            j.flush(&mut self.joined);
        }
        self.after_framing(now, out);
    }

    /// Emits what is pending if its deadline has passed at `now`.
    pub fn flush_due(&mut self, now: Instant, out: &mut Vec<Event>) {
        if self.deadline().is_some_and(|d| d <= now) {
            self.flush(now, out);
        }
    }
}

/// The earlier of two optional points.
fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The names every event of the file gets, kept at hand.
#[derive(Debug)]
struct Keys {
    message: Key,
    stream: Key,
}

/// A framed record as an event: its text as the message, the runtime's time and stream.
fn to_event(meta: &Arc<Meta>, keys: &Keys, f: Frame) -> Event {
    let message = match String::from_utf8(f.text) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    let mut e = Event::with_message_key(meta.clone(), f.offset, keys.message.clone(), message);
    e.time = f.time;
    if let Some(s) = f.stream {
        e.fields
            .insert(keys.stream.clone(), Value::Str(s.to_string()));
    }
    e
}
