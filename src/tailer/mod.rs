//! Tailer: one thread per open file. Reads big chunks, splits lines, sends batches, and
//! decides when the file was truncated, rewritten, rotated away or has gone quiet.
//!
//! A file's lifecycle, in one place:
//! - **found**: discovery matches a path, decides the file's identity (`identity::holds`) and
//!   opens it, within the open-file budget;
//! - **reading**: a tailer thread reads from the checkpointed offset and sends batches; a
//!   shrink or a changed head starts the file over as a new generation;
//! - **parked**: quiet, with filesystem events to wake it: the thread ends, the file stays
//!   open (`Parked`); an event or a scan resumes it;
//! - **draining**: its path leads elsewhere (renamed or deleted): read to its end through the
//!   open descriptor, closed after `rotate_wait` of quiet;
//! - **closed**: quiet for `close_inactive` (or the budget is needed elsewhere); its state
//!   stays in the registry and the checkpoint, and discovery opens it again when it changes;
//! - **retired**: its inode holds another file now: out of the registry (and so of the
//!   checkpoint), kept in memory a while for matching archives.
//!
//! A state whose file has not been seen for a day is forgotten.

pub mod gzip;
pub mod hold;
pub mod lines;
pub mod reader;

use crate::event::{Batch, FileState};
use crate::identity::{FINGERPRINT_BYTES, FileKey, Fingerprint, MARKER_BYTES, fnv1a, read_at_most};
use crate::runtime::{BufferPool, OpenSlots, Stop};
use crate::stats::{self, Stats};
use crossbeam_channel::{Receiver, Sender};
use reader::{Reader, last_bytes};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Safety-net poll of a quiet file whose changes arrive as filesystem events.
const IDLE_POLL: Duration = Duration::from_secs(10);

/// Stack of a tailer thread: small, since a thousand of them may exist.
pub(crate) const STACK_BYTES: usize = 256 * 1024;

/// Timing and limits of one input, shared by its tailers.
#[derive(Debug, Clone)]
pub struct TailSettings {
    /// Fallback wake-up.
    pub poll_interval: Duration,
    /// Quiet time before a rotated or deleted file is closed.
    pub rotate_wait: Duration,
    /// Quiet time before a live, drained file is closed.
    pub close_inactive: Duration,
    /// Longest line kept.
    pub max_line_bytes: usize,
    /// The input's id, carried by its events as `source`.
    pub source: Arc<str>,
    /// Framing, multiline and processors; None when lines travel as they are.
    pub pipeline: Option<Arc<crate::pipeline::Compiled>>,
}

/// What every tailer shares with the rest of the pipeline.
#[derive(Debug, Clone)]
pub struct TailResources {
    /// To the output stage.
    pub tx: Sender<Batch>,
    /// Read buffers.
    pub pool: BufferPool,
    /// Stop signal.
    pub stop: Stop,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Open-file budget.
    pub slots: Arc<OpenSlots>,
}

/// An opened file handed from discovery to its tailer.
pub struct OpenedFile {
    /// The open file.
    pub file: File,
    /// Its shared state (marked active by discovery).
    pub state: Arc<FileState>,
    /// Offset to read from: a line boundary.
    pub offset: u64,
    /// Wake-ups from filesystem events.
    pub wake: Receiver<()>,
    /// Whether the file's directory is watched, so that events (not polls) bring changes.
    pub events: bool,
    /// Where a quiet tailer hands itself back to discovery (its thread ends, the file stays
    /// open): discovery resumes it on the next event for the file.
    pub park: Sender<Parked>,
}

/// A quiet tailer without a thread: the file stays open, the position and partial line are
/// kept, and `resume` starts a thread again. Idle files then cost a descriptor and a few
/// hundred bytes instead of a thread.
pub struct Parked(Box<Tailer>);

impl Parked {
    /// The file's shared state.
    pub fn state(&self) -> &Arc<FileState> {
        &self.0.state
    }

    /// Whether something happened since parking: a wake-up, new bytes, a shrink, a deletion.
    /// A pending wake-up is consumed here, so that one event resumes the tailer once.
    pub fn take_wake_or_change(&self) -> bool {
        if self.0.wake.as_ref().is_some_and(|w| w.try_recv().is_ok()) {
            return true;
        }
        match self.0.file.metadata() {
            Ok(m) => m.len() != self.0.r.pos || m.nlink() == 0,
            Err(_) => true,
        }
    }

    /// How long the file has been quiet at `now`.
    pub fn quiet_at(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.0.last_data)
    }

    /// Starts the tailer's thread again; on failure it is handed back.
    pub fn resume(self) -> Result<(), (Parked, io::Error)> {
        start_thread(self.0).map_err(|(t, e)| (Parked(t), e))
    }

    /// The file changed and no event said so: from now on it is polled, never parked.
    pub fn without_events(mut self) -> Parked {
        debug!(path = %self.0.path_display(), "changes arrive without filesystem events; polling every poll_interval");
        self.0.events = false;
        self
    }

    /// Closes the file for good (close_inactive, a slot needed elsewhere, or shutdown).
    pub fn close(self) {
        let mut t = self.0;
        t.finish(Exit::Inactive);
    }
}

/// Starts a tailer thread; the slot and the active mark are released when it ends.
pub fn spawn(
    pipeline: TailResources,
    params: Arc<TailSettings>,
    start: OpenedFile,
) -> io::Result<()> {
    let name = format!(
        "tail:{}",
        start
            .state
            .origin
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let (fp, generation, boundary_marker) = {
        let p = start.state.progress();
        (p.fingerprint, p.generation, p.read_marker)
    };
    // The bytes before the start offset, so the first batch's marker is right.
    let before = read_at_most(
        &start.file,
        start.offset.saturating_sub(MARKER_BYTES as u64),
        start.offset.min(MARKER_BYTES as u64) as usize,
    )
    .unwrap_or_default();
    stats::add(&pipeline.stats.files_open, 1);
    let t = Box::new(Tailer {
        park: start.park,
        r: Reader::new(
            &params,
            &start.state.origin,
            start.offset,
            before,
            boundary_marker,
        ),
        pipeline,
        params,
        file: start.file,
        state: start.state,
        wake: Some(start.wake),
        events: start.events,
        short_read: false,
        path_checked: Instant::now(),
        path_check_pending: true,
        generation,
        fingerprint: fp,
        last_data: Instant::now(),
        rotated: false,
        name,
    });
    start_thread(t).map_err(|(mut t, e)| {
        t.finish(Exit::Stop);
        e
    })
}

fn start_thread(t: Box<Tailer>) -> Result<(), (Box<Tailer>, io::Error)> {
    let name = t.name.clone();
    // The tailer travels through a slot so that a failed spawn can hand it back.
    let slot = Arc::new(std::sync::Mutex::new(Some(t)));
    let inner = slot.clone();
    let spawned = std::thread::Builder::new()
        .name(name)
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let taken = inner.lock().ok().and_then(|mut g| g.take());
            if let Some(t) = taken {
                let (path, stats) = (t.path_display(), t.pipeline.stats.clone());
                // A bug must not pass silently: the file stops, loudly, and /health says so.
                let run = std::panic::AssertUnwindSafe(move || t.run());
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!(%path, "tailer thread panicked (a bug): this file is not read until the agent restarts; /health reports it");
                    stats.tailer_panicked(path);
                }
            }
        });
    match spawned {
        Ok(_) => Ok(()),
        Err(e) => match slot.lock().ok().and_then(|mut g| g.take()) {
            Some(t) => Err((t, e)),
            // The thread took the tailer after all: it runs.
            None => Ok(()),
        },
    }
}

/// One open file and where reading it stands.
struct Tailer {
    /// Thread name (`tail:<file name>`).
    name: String,
    /// Where it hands itself back to discovery when it parks.
    park: Sender<Parked>,
    /// What it shares with the rest of the pipeline.
    pipeline: TailResources,
    /// Its input's timings and limits.
    params: Arc<TailSettings>,
    /// The open file (kept across a rename: a rotated file is drained through it).
    file: File,
    /// The state discovery, the output and the checkpoint see.
    state: Arc<FileState>,
    /// Wake-ups from filesystem events (None once discovery hung up).
    wake: Option<Receiver<()>>,
    /// Whether events announce changes (else it polls every poll_interval).
    events: bool,
    /// The last read ended short of the buffer: at end of file.
    short_read: bool,
    /// When the path was last stat()ed for rotation.
    path_checked: Instant,
    /// A rotation check was skipped: the next wait must not be a long one.
    path_check_pending: bool,
    /// Bumped when the file starts over (truncated, rewritten): older acks are void.
    generation: u32,
    /// Of the file's head, as far as it has been read.
    fingerprint: Fingerprint,
    /// Position, partial line and markers: the shared read loop's state.
    r: Reader,
    /// When bytes last came.
    last_data: Instant,
    /// Its path no longer leads to it: draining, closed after rotate_wait of quiet.
    rotated: bool,
}

enum Step {
    Data,
    Eof,
    Stop,
}

/// Why a tailer's thread ends.
#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Stop,
    Rotated,
    Inactive,
    /// Quiet: the thread ends, the file stays open (see `Parked`).
    Park,
}

/// A quiet file whose changes arrive as events parks after this long.
const PARK_AFTER: Duration = Duration::from_secs(2);

impl Tailer {
    fn park_after(&self) -> Duration {
        PARK_AFTER.max(self.params.poll_interval * 4)
    }

    fn path_display(&self) -> String {
        self.state.origin.display().to_string()
    }

    fn run(mut self: Box<Self>) {
        debug!(path = %self.path_display(), offset = self.r.pos, "tailing");
        let exit = self.main_loop();
        if exit == Exit::Park {
            let park = self.park.clone();
            if let Err(crossbeam_channel::SendError(Parked(mut t))) = park.send(Parked(self)) {
                // Discovery is gone (shutdown): close instead.
                t.finish(Exit::Stop);
            }
            return;
        }
        self.finish(exit);
    }

    /// Records where reading stopped and releases the file.
    fn finish(&mut self, exit: Exit) {
        let stats = self.pipeline.stats.clone();
        {
            // A pending event (shutdown only: other exits emit it first) is read again.
            let (offset, marker) = self.r.resume_point();
            let mut p = self.state.progress();
            p.read_offset = offset;
            p.read_marker = marker;
            p.last_seen = crate::event::unix_now();
        }
        match exit {
            Exit::Rotated => {
                info!(path = %self.path_display(), offset = self.r.pos, "rotated file drained and quiet; closed")
            }
            Exit::Inactive => {
                debug!(path = %self.path_display(), offset = self.r.boundary, "file inactive; closed")
            }
            Exit::Stop | Exit::Park => {}
        }
        stats.files_open.fetch_sub(1, Ordering::Relaxed);
        self.state.active.store(false, Ordering::Release);
        self.pipeline.slots.release();
    }

    fn main_loop(&mut self) -> Exit {
        let mut long_poll_timed_out = false;
        loop {
            if self.pipeline.stop.is_set() {
                return Exit::Stop;
            }
            match self.read_once() {
                Step::Data => {
                    if long_poll_timed_out && self.events {
                        // Data arrived that no event announced: poll this file normally.
                        debug!(path = %self.path_display(), "changes arrive without filesystem events; polling every poll_interval");
                        self.events = false;
                    }
                    long_poll_timed_out = false;
                    self.last_data = Instant::now();
                    if !self.short_read {
                        continue;
                    }
                }
                Step::Stop => return Exit::Stop,
                Step::Eof => {}
            }
            if let Some(exit) = self.at_eof() {
                return exit;
            }
            long_poll_timed_out = self.wait();
        }
    }

    /// One read into a pool buffer; sends a batch if whole lines (or skipped bytes) came out.
    fn read_once(&mut self) -> Step {
        // Nothing new (the common case of a wake-up or poll): no buffer, no read.
        if self.file.metadata().is_ok_and(|m| m.len() == self.r.pos) {
            return Step::Eof;
        }
        let Some(buf) = self.pipeline.pool.take(&self.pipeline.stop) else {
            return Step::Stop;
        };
        let (mut buf, have) = self.r.prepare(buf, self.pipeline.pool.chunk);
        let n = loop {
            match self.file.read_at(&mut buf[have..], self.r.pos) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!(path = %self.path_display(), error = %e, "read failed; will retry");
                    break 0;
                }
            }
        };
        // A read that did not fill the buffer reached the end: no need to read again to see it.
        self.short_read = have + n < buf.len();
        if n == 0 {
            self.pipeline.pool.give(buf);
            return Step::Eof;
        }
        if self.content_changed() {
            self.pipeline.pool.give(buf);
            self.content_replaced();
            return Step::Data;
        }
        match self.r.take(buf, have, n, &self.pipeline, &self.state) {
            Ok(framed) => self.send(framed),
            Err(buf) => {
                self.pipeline.pool.give(buf);
                Step::Data
            }
        }
    }

    fn send(&mut self, framed: reader::Framed) -> Step {
        if self.r.send(framed, &self.pipeline, &self.state) {
            Step::Data
        } else {
            Step::Stop
        }
    }

    /// At end of file: truncation, rotation and quiet-time decisions.
    fn at_eof(&mut self) -> Option<Exit> {
        let meta = match self.file.metadata() {
            Ok(m) => m,
            Err(e) => {
                warn!(path = %self.path_display(), error = %e, "cannot stat open file");
                return None;
            }
        };
        self.state.size.store(meta.len(), Ordering::Relaxed);
        if !self.r.flush_pending(false, &self.pipeline, &self.state) {
            return Some(Exit::Stop);
        }
        if meta.len() < self.r.pos {
            stats::add(&self.pipeline.stats.rotations_truncate, 1);
            info!(path = %self.path_display(), size = meta.len(), offset = self.r.pos, "file truncated (copytruncate?); reading it from the start");
            self.reset();
            return None;
        }
        let quiet = self.last_data.elapsed();
        // While data flows, the path is looked at once per poll_interval, not on every wake.
        let rotated = if meta.nlink() == 0 {
            true
        } else if self.path_checked.elapsed() >= self.params.poll_interval {
            self.path_checked = Instant::now();
            self.path_check_pending = false;
            self.is_rotated()
        } else {
            self.path_check_pending = true;
            self.rotated
        };
        if rotated {
            if !self.rotated {
                self.rotated = true;
                self.state.progress().rotated_away = true;
                stats::add(&self.pipeline.stats.rotations_rename, 1);
                info!(path = %self.path_display(), offset = self.r.pos, "file rotated away or deleted; draining it");
            }
            if quiet >= self.params.rotate_wait {
                // Drained and quiet: its last line and pending event are complete now.
                self.flush_partial();
                if !self.r.flush_pending(true, &self.pipeline, &self.state) {
                    return Some(Exit::Stop);
                }
                return Some(Exit::Rotated);
            }
        } else {
            if self.rotated {
                // Back at its path (renamed back, or a link repointed to it).
                self.rotated = false;
                self.state.progress().rotated_away = false;
            }
            let contended = self.pipeline.slots.contended()
                && quiet >= (self.params.poll_interval * 4).max(Duration::from_secs(1));
            // Files wait for a slot: a drained file gives its slot up well before close_inactive.
            if quiet >= self.params.close_inactive || contended {
                // Closing ends the file's pipeline state: what is pending goes out first.
                if !self.r.flush_pending(true, &self.pipeline, &self.state) {
                    return Some(Exit::Stop);
                }
                return Some(Exit::Inactive);
            }
            // A parked file has no thread to time its pending event out: it stays awake.
            if self.events
                && !self.path_check_pending
                && !self.r.has_pending()
                && quiet >= self.park_after()
            {
                return Some(Exit::Park);
            }
        }
        if quiet >= Duration::from_secs(2) && self.r.carry.capacity() > 4096 {
            self.r.carry.shrink_to_fit();
        }
        None
    }

    /// Whether no watched path leads to this file any more.
    fn is_rotated(&self) -> bool {
        let path = self.state.progress().path.clone();
        match std::fs::metadata(&path) {
            Ok(m) => FileKey::of(&m) != self.state.key,
            Err(_) => true,
        }
    }

    /// Delivers a last line that has no newline (no more data can come) and moves past it.
    fn flush_partial(&mut self) {
        if self.r.boundary >= self.r.pos {
            return;
        }
        let Some(buf) = self.pipeline.pool.take(&self.pipeline.stop) else {
            return;
        };
        match self.r.flush_partial(buf) {
            Ok(framed) => {
                let _ = self.send(framed);
            }
            Err(buf) => self.pipeline.pool.give(buf),
        }
    }

    /// Sleeps until an event, stop, or the poll timeout; true when a long (idle) poll timed out.
    fn wait(&mut self) -> bool {
        let stop = self.pipeline.stop.receiver();
        let quiet = self.last_data.elapsed();
        // With events flowing, polling is only a safety net: a quiet file polls rarely, so a
        // thousand idle files cost next to nothing.
        let poll = if self.events
            && !self.rotated
            && !self.path_check_pending
            && !self.pipeline.slots.contended()
        {
            // Wake in time to park (see `Parked`), else rarely.
            let park_in = self.park_after().saturating_sub(quiet);
            IDLE_POLL
                .min(self.params.close_inactive.saturating_sub(quiet))
                .min(park_in)
                .max(self.params.poll_interval)
        } else {
            self.params.poll_interval
        };
        // A pending event is emitted on time, not at the next poll.
        let poll = match self.r.deadline() {
            Some(d) => poll.min(d.saturating_duration_since(Instant::now())),
            None => poll,
        };
        // Only the safety-net poll says something about events (not the wait to park).
        let long = poll >= IDLE_POLL;
        match &self.wake {
            Some(wake) => crossbeam_channel::select! {
                recv(wake) -> r => {
                    if r.is_err() {
                        self.wake = None;
                    }
                    false
                },
                recv(stop) -> _ => false,
                default(poll) => long,
            },
            None => {
                let _ = stop.recv_timeout(poll);
                false
            }
        }
    }

    /// Before reading new bytes: is this still the content we were reading?
    /// After a read, before its bytes are used: is this still the content we were reading?
    /// (A file truncated and rewritten past our offset must not be read from the middle;
    /// checking after the read also catches a rewrite that races with it.) Upgrades a short
    /// fingerprint as the file grows.
    fn content_changed(&mut self) -> bool {
        let tail = last_bytes(&self.r.before, &self.r.carry, MARKER_BYTES);
        let head = match read_at_most(&self.file, 0, FINGERPRINT_BYTES) {
            Ok(h) => h,
            Err(_) => return false,
        };
        let rewritten = if !self.fingerprint.matches_head(&head) {
            true
        } else {
            // Same head: the bytes just before our position must still be the ones we read.
            let at = self.r.pos - tail.len() as u64;
            !tail.is_empty()
                && self.r.pos > u64::from(self.fingerprint.len)
                && read_at_most(&self.file, at, tail.len())
                    .map(|b| b != tail)
                    .unwrap_or(false)
        };
        if !rewritten
            && head.len() > self.fingerprint.len as usize
            && !self.fingerprint.is_complete()
        {
            self.set_fingerprint(Fingerprint::of_head(&head));
        }
        rewritten
    }

    fn content_replaced(&mut self) {
        stats::add(&self.pipeline.stats.rotations_fingerprint, 1);
        info!(path = %self.path_display(), offset = self.r.pos, "file content replaced under the same inode (truncated and rewritten); reading it from the start");
        self.reset();
    }

    fn set_fingerprint(&mut self, fp: Fingerprint) {
        self.fingerprint = fp;
        self.state.progress().fingerprint = fp;
    }

    /// Starts the file over as a new generation.
    fn reset(&mut self) {
        // The old generation's pending event was read: it goes out, in that generation.
        let _ = self.r.flush_pending(true, &self.pipeline, &self.state);
        self.generation = self.generation.wrapping_add(1);
        self.r.reset();
        self.fingerprint = Fingerprint::read(&self.file).unwrap_or_default();
        let mut p = self.state.progress();
        p.generation = self.generation;
        p.fingerprint = self.fingerprint;
        p.read_offset = 0;
        p.acked_offset = 0;
        p.acked_marker = fnv1a(b"");
        p.read_marker = fnv1a(b"");
    }
}
