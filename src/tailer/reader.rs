//! The read loop's core, shared by plain files and decompressed archives: bytes of a source in,
//! whole lines out as batches. It carries the partial line between reads, knows the offset just
//! past the last whole line (where a restart resumes) and the marker of the bytes before it,
//! and counts over-long lines and NUL holes. The processing pipeline (framing, multiline,
//! processors) plugs in here, for plain files and archives alike; without one, lines travel
//! as ranges of the read buffer (the fast path).

use super::hold::{Holds, Span};
use super::lines::Splitter;
use super::{TailResources, TailSettings};
use crate::event::{Batch, FileState, Line};
use crate::identity::{MARKER_BYTES, fnv1a};
use crate::pipeline::FilePipeline;
use crate::record::Event;
use crate::stats;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tracing::warn;

/// Events per batch on the pipeline path: bounds the memory of a batch in flight.
const EVENTS_PER_BATCH: usize = 256;

/// Lines split out of one read, ready to be sent.
pub struct Framed {
    /// The bytes, starting at source offset `base`.
    buf: Vec<u8>,
    base: u64,
    /// Up to MARKER_BYTES bytes before `base`.
    before: Vec<u8>,
    lines: Vec<Line>,
}

/// Where reading one source stands.
#[derive(Debug)]
pub struct Reader {
    /// Splits chunks into lines.
    pub splitter: Splitter,
    /// Next source byte to read.
    pub pos: u64,
    /// Just past the last whole line handed on: where a reopen resumes.
    pub boundary: u64,
    /// Hash of the bytes just before `boundary`.
    pub boundary_marker: u64,
    /// A partial line: the bytes just before `pos` (empty while skipping a long line).
    pub carry: Vec<u8>,
    /// Up to MARKER_BYTES bytes that precede `pos - carry.len()`.
    pub before: Vec<u8>,
    truncation_warnings: u64,
    nul_warned: bool,
    /// The input's id, for the events.
    source: Arc<str>,
    /// Framing, multiline and processors, when the input has any.
    pipe: Option<FilePipeline>,
    /// Where acknowledgements stop while an event is pending.
    holds: Holds,
}

/// The last `n` bytes of `a` followed by `b`.
pub fn last_bytes(a: &[u8], b: &[u8], n: usize) -> Vec<u8> {
    if b.len() >= n {
        return b[b.len() - n..].to_vec();
    }
    let from_a = (n - b.len()).min(a.len());
    let mut v = a[a.len() - from_a..].to_vec();
    v.extend_from_slice(b);
    v
}

impl Reader {
    /// A reader of the file at `path` at line boundary `offset`, preceded by the bytes
    /// `before` (hash `marker`).
    pub fn new(
        settings: &TailSettings,
        path: &Path,
        offset: u64,
        before: Vec<u8>,
        marker: u64,
    ) -> Reader {
        Reader {
            splitter: Splitter::new(settings.max_line_bytes),
            pos: offset,
            boundary: offset,
            boundary_marker: marker,
            carry: Vec::new(),
            before,
            truncation_warnings: 0,
            nul_warned: false,
            source: settings.source.clone(),
            pipe: settings.pipeline.as_ref().map(|p| p.for_file(path)),
            holds: Holds::new(offset, marker),
        }
    }

    /// Where a reopen resumes, and its marker: the boundary, or the first line of a
    /// pending event.
    pub fn resume_point(&self) -> (u64, u64) {
        match &self.pipe {
            Some(p) if p.has_pending() => self.holds.last(),
            _ => (self.boundary, self.boundary_marker),
        }
    }

    /// Whether an event is pending (the tailer must not park or close quietly).
    pub fn has_pending(&self) -> bool {
        self.pipe.as_ref().is_some_and(FilePipeline::has_pending)
    }

    /// When the pending event is due even if no line comes.
    pub fn deadline(&self) -> Option<Instant> {
        self.pipe.as_ref().and_then(FilePipeline::deadline)
    }

    /// Readies a pool buffer: the carried partial line first, then room for a chunk. Returns
    /// it filled to its capacity and where new bytes go.
    pub fn prepare(&self, mut buf: Vec<u8>, chunk: usize) -> (Vec<u8>, usize) {
        buf.extend_from_slice(&self.carry);
        let have = buf.len();
        if buf.capacity() - have < chunk / 2 {
            buf.reserve(chunk);
        }
        buf.resize(buf.capacity(), 0);
        (buf, have)
    }

    /// Takes the `n` bytes read into `buf[have..]`: the whole lines among them, or the buffer
    /// back when none ended (the bytes are kept as the partial line).
    pub fn take(
        &mut self,
        mut buf: Vec<u8>,
        have: usize,
        n: usize,
        pipeline: &TailResources,
        state: &FileState,
    ) -> Result<Framed, Vec<u8>> {
        buf.truncate(have + n);
        let base = self.pos - self.carry.len() as u64;
        self.pos += n as u64;
        self.carry.clear();
        stats::add(&pipeline.stats.bytes_read, n as u64);
        stats::add(&state.bytes_read, n as u64);
        let mut lines = Vec::new();
        let (truncated, nuls) = (self.splitter.truncated, self.splitter.nul_bytes);
        let split = self.splitter.split(&buf, &mut lines);
        self.carry.extend_from_slice(&buf[split.cut..]);
        let new_before = last_bytes(&self.before, &buf[..split.cut], MARKER_BYTES);
        let before = std::mem::take(&mut self.before);
        self.note_anomalies(truncated, nuls, base, pipeline, state);
        let old_boundary = self.boundary;
        if let Some(b) = split.boundary {
            self.boundary = base + b as u64;
            self.boundary_marker = fnv1a(&last_bytes(&before, &buf[..b], MARKER_BYTES));
        }
        self.before = new_before;
        buf.truncate(split.cut);
        if lines.is_empty() && self.boundary == old_boundary {
            return Err(buf);
        }
        Ok(Framed {
            buf,
            base,
            before,
            lines,
        })
    }

    /// At the end of a source that cannot grow (or has been quiet past rotate_wait): the
    /// partial line, ended, in `buf`. The buffer comes back when there is none.
    pub fn flush_partial(&mut self, mut buf: Vec<u8>) -> Result<Framed, Vec<u8>> {
        if self.boundary >= self.pos {
            return Err(buf);
        }
        let base = self.pos - self.carry.len() as u64;
        let mut lines = Vec::new();
        if !self.carry.is_empty() {
            buf.extend_from_slice(&self.carry);
            lines.push(Line {
                start: 0,
                end: buf.len() as u32,
            });
        }
        self.boundary_marker = fnv1a(&last_bytes(&self.before, &buf, MARKER_BYTES));
        let after = last_bytes(&self.before, &buf, MARKER_BYTES);
        let before = std::mem::replace(&mut self.before, after);
        self.carry.clear();
        self.boundary = self.pos;
        Ok(Framed {
            buf,
            base,
            before,
            lines,
        })
    }

    /// Starts over at offset 0 (the file was truncated or rewritten).
    pub fn reset(&mut self) {
        self.pos = 0;
        self.boundary = 0;
        self.carry.clear();
        self.before.clear();
        self.splitter.skipping = false;
        self.boundary_marker = fnv1a(b"");
        self.holds.reset();
    }

    /// Hands `framed` to the output stage as one batch: its lines, or the events the
    /// pipeline made of them, acknowledged up to the boundary or the first line of a pending
    /// event. False when the output is gone.
    pub fn send(
        &mut self,
        framed: Framed,
        pipeline: &TailResources,
        state: &Arc<FileState>,
    ) -> bool {
        let n = framed.lines.len() as u64;
        stats::add(&pipeline.stats.lines_read, n);
        stats::add(&state.lines_read, n);
        let boundary = (self.boundary, self.boundary_marker);
        let Some(pipe) = self.pipe.as_mut() else {
            let (buf, base, lines) = (framed.buf, framed.base, framed.lines);
            return hand_on(
                &self.source,
                buf,
                base,
                lines,
                None,
                boundary,
                pipeline,
                state,
            );
        };
        // Events own their text: the read buffer goes back to the pool at once, and the
        // lines go out in slices, so that memory in flight stays bounded by the channel.
        let now = Instant::now();
        let mut from = 0;
        loop {
            let to = (from + EVENTS_PER_BATCH).min(framed.lines.len());
            let cut = match framed.lines.get(to) {
                // The slice ends where the next line starts: its marker is computed here.
                Some(next) => {
                    let head = &framed.buf[..next.start as usize];
                    let marker = fnv1a(&last_bytes(&framed.before, head, MARKER_BYTES));
                    (framed.base + u64::from(next.start), marker)
                }
                None => boundary,
            };
            let mut events = Vec::with_capacity(to - from);
            for l in &framed.lines[from..to] {
                let line = &framed.buf[l.start as usize..l.end as usize];
                pipe.push_line(line, framed.base + u64::from(l.start), now, &mut events);
            }
            let span = Span {
                buf: &framed.buf,
                base: framed.base,
                before: &framed.before,
                lines: &framed.lines[from..to],
            };
            let end = self.holds.point(pipe.pending_start(), Some(span), cut);
            let base = framed.base + framed.lines.get(from).map_or(0, |l| u64::from(l.start));
            let events = Some(events);
            let (source, no_lines) = (&self.source, Vec::new());
            if !hand_on(
                source,
                Vec::new(),
                base,
                no_lines,
                events,
                end,
                pipeline,
                state,
            ) {
                pipeline.pool.give(framed.buf);
                return false;
            }
            if to >= framed.lines.len() {
                break;
            }
            from = to;
        }
        pipeline.pool.give(framed.buf);
        true
    }

    /// Emits what the pipeline holds (timeout, end of a drained file, a new generation) as
    /// a batch of its own. False when the output is gone.
    pub fn flush_pending(
        &mut self,
        all: bool,
        pipeline: &TailResources,
        state: &Arc<FileState>,
    ) -> bool {
        let Some(pipe) = &mut self.pipe else {
            return true;
        };
        let now = Instant::now();
        let mut events = Vec::new();
        if all {
            pipe.flush(now, &mut events);
        } else {
            pipe.flush_due(now, &mut events);
        }
        if events.is_empty() {
            return true;
        }
        let end = self.holds.point(
            pipe.pending_start(),
            None,
            (self.boundary, self.boundary_marker),
        );
        let events = Some(events);
        let (source, no_lines) = (&self.source, Vec::new());
        hand_on(
            source,
            Vec::new(),
            self.boundary,
            no_lines,
            events,
            end,
            pipeline,
            state,
        )
    }

    fn note_anomalies(
        &mut self,
        truncated_before: u64,
        nuls_before: u64,
        base: u64,
        pipeline: &TailResources,
        state: &FileState,
    ) {
        let t = self.splitter.truncated - truncated_before;
        if t > 0 {
            stats::add(&pipeline.stats.lines_truncated, t);
            self.truncation_warnings += t;
            // Warn on the first few, then sparsely: a binary file must not flood the log.
            if self.truncation_warnings <= 10 || self.truncation_warnings.is_multiple_of(1000) {
                warn!(path = %state.origin.display(), near_offset = base, max_line_bytes = self.splitter.max_line,
                    total_truncated = self.splitter.truncated, "line longer than max_line_bytes truncated");
            }
        }
        let z = self.splitter.nul_bytes - nuls_before;
        if z > 0 {
            stats::add(&pipeline.stats.nul_bytes_skipped, z);
            if !self.nul_warned {
                self.nul_warned = true;
                warn!(path = %state.origin.display(), near_offset = base, nul_bytes = z,
                    "skipped NUL bytes at a line start (copytruncate with a writer not using O_APPEND?); counted, warned once per file");
            }
        }
    }
}

/// Sends one batch ending at `end` (offset, marker) to the output; false when it is gone.
#[allow(clippy::too_many_arguments)]
fn hand_on(
    source: &Arc<str>,
    buf: Vec<u8>,
    base_offset: u64,
    lines: Vec<Line>,
    events: Option<Vec<Event>>,
    (end_offset, marker): (u64, u64),
    pipeline: &TailResources,
    state: &Arc<FileState>,
) -> bool {
    let ticket = state.read_up_to(end_offset, marker);
    let batch = Batch {
        file: state.clone(),
        ticket,
        buf,
        base_offset,
        lines,
        events,
        source: source.clone(),
        end_offset,
        marker,
        read_time: SystemTime::now(),
    };
    pipeline.tx.send(batch).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Progress;
    use crate::identity::Fingerprint;
    use crate::runtime::{BufferPool, OpenSlots, Stop};
    use std::path::Path;

    fn fixture() -> (
        TailResources,
        Arc<FileState>,
        crossbeam_channel::Receiver<Batch>,
    ) {
        let (tx, rx) = crossbeam_channel::bounded(16);
        let pipeline = TailResources {
            tx,
            pool: BufferPool::new(4, 64),
            stop: Stop::new(),
            stats: Arc::new(crate::stats::Stats::default()),
            slots: Arc::new(OpenSlots::new(1)),
        };
        let p = Progress::starting_at(Fingerprint::default(), 0, fnv1a(b""), Path::new("/r/a.log"));
        let key = crate::identity::FileKey { dev: 1, ino: 99 };
        let state = Arc::new(FileState::new(key, Path::new("/r/a.log"), p));
        (pipeline, state, rx)
    }

    /// Feeds `chunks` through a reader as reads would; returns the lines sent, in order.
    fn feed(chunks: &[&[u8]], flush: bool) -> (Vec<String>, Reader, Arc<FileState>) {
        let (pipeline, state, rx) = fixture();
        let settings = TailSettings {
            poll_interval: std::time::Duration::from_millis(10),
            rotate_wait: std::time::Duration::ZERO,
            close_inactive: std::time::Duration::from_secs(1),
            max_line_bytes: 1024,
            source: "file0".into(),
            pipeline: None,
        };
        let mut r = Reader::new(&settings, Path::new("/r/a.log"), 0, Vec::new(), fnv1a(b""));
        for c in chunks {
            let (mut buf, have) = r.prepare(Vec::new(), 64);
            buf[have..have + c.len()].copy_from_slice(c);
            if let Ok(f) = r.take(buf, have, c.len(), &pipeline, &state) {
                assert!(r.send(f, &pipeline, &state));
            }
        }
        if flush && let Ok(f) = r.flush_partial(Vec::new()) {
            assert!(r.send(f, &pipeline, &state));
        }
        let mut got = Vec::new();
        for b in rx.try_iter() {
            for l in &b.lines {
                got.push(String::from_utf8_lossy(b.line(l)).into_owned());
            }
        }
        (got, r, state)
    }

    #[test]
    fn a_line_split_across_reads_is_carried_and_sent_whole() {
        let (got, r, state) = feed(&[b"one\ntw", b"o\nthr"], false);
        assert_eq!(got, ["one", "two"]);
        assert_eq!((r.pos, r.boundary), (11, 8));
        assert_eq!(r.carry, b"thr");
        assert_eq!(r.boundary_marker, fnv1a(b"one\ntwo\n"));
        let p = state.progress();
        assert_eq!((p.read_offset, p.read_marker), (8, fnv1a(b"one\ntwo\n")));
    }

    #[test]
    fn flush_partial_ends_the_last_line_at_the_end_of_the_source() {
        let (got, r, _) = feed(&[b"one\ntw", b"o\nthr"], true);
        assert_eq!(got, ["one", "two", "thr"]);
        assert_eq!((r.pos, r.boundary), (11, 11));
        assert_eq!(r.boundary_marker, fnv1a(b"one\ntwo\nthr"));
    }

    #[test]
    fn reset_starts_over_at_zero() {
        let (_, mut r, _) = feed(&[b"abc\nde"], false);
        r.reset();
        assert_eq!((r.pos, r.boundary, r.carry.len()), (0, 0, 0));
        assert_eq!(r.boundary_marker, fnv1a(b""));
    }

    #[test]
    fn last_bytes_spans_both() {
        assert_eq!(last_bytes(b"abc", b"de", 4), b"bcde");
        assert_eq!(last_bytes(b"abc", b"defgh", 4), b"efgh");
        assert_eq!(last_bytes(b"", b"x", 4), b"x");
    }
}
