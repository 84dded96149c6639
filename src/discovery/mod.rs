//! Discovery: one thread per input. Evaluates the globs every scan_interval and on filesystem
//! events, and starts a tailer for each file identity that has bytes to read.

use crate::config::StartAt;
use crate::event::{FileState, Progress, unix_now};
use crate::identity::{FINGERPRINT_BYTES, FileKey, Fingerprint, fnv1a, marker_at, read_at_most};
use crate::tailer::{self, OpenedFile, Parked, TailResources, gzip};
use crossbeam_channel::{Receiver, Sender};
use notify::RecursiveMode;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tracing::{debug, info, warn};

mod archive;
mod globs;
mod recognize;
mod tailers;
mod verdict;
mod watch;
mod while_stopped;

pub use globs::{Input, normalize};
use recognize::{confirmed_at, replaced_at_inode, same_file};
use verdict::{Seen, Verdict, verdict};
use watch::{Listing, local_events};

/// Checkpoint entries of files unseen for this long are forgotten.
const FORGET_AFTER_SECS: u64 = 24 * 3600;

/// Replaced states kept for matching compressed archives.
const RETIRED_KEPT: usize = 64;

/// Every this many scans (from the first), ended tailers' handles, day-old checkpoint entries
/// and sizes of archives no longer pending are forgotten.
const HOUSEKEEPING_EVERY: u64 = 60;

/// Filesystem events queued before the watcher's callback blocks, and drained in one burst
/// before acting on them.
const EVENT_QUEUE: usize = 4096;

/// How far back from the end `start_at: end` looks for the last line boundary.
const LAST_LINE_WINDOW: u64 = 64 * 1024;

/// Every this many scans, even files known to be open are stat()ed again (a safety net for
/// missed filesystem events).
const FULL_SCAN_EVERY: u64 = 30;

/// Starts the discovery thread of an input.
pub fn spawn(
    input: Arc<Input>,
    pipeline: TailResources,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("discovery-{}", input.index))
        .spawn(move || Discovery::new(input, pipeline).run())
}

/// One input's discovery thread: what it knows of the files its globs match and of the
/// tailers it started.
struct Discovery {
    /// The input: configuration, globs, the registry of file states.
    input: Arc<Input>,
    /// What the tailers it starts share (channel to the output, buffers, stop, slots).
    pipeline: TailResources,
    /// Wake handles of running tailers, by identity and by the paths events name them by.
    handles: tailers::Handles,
    /// States replaced because their inode now holds a new file, for matching archives.
    retired: Vec<Arc<FileState>>,
    /// Compressed files: (size, scans seen at that size), to tell growing from damaged.
    gz_attempts: HashMap<FileKey, (u64, u32, Instant)>,
    /// Single-directory globs: each directory as last listed.
    listed: HashMap<PathBuf, Listing>,
    /// Archives outside the globs holding the rest of a file rotated while the agent was
    /// stopped, with their identity: looked at every scan until read.
    strays: Vec<(PathBuf, FileKey)>,
    /// Quiet tailers without a thread, by file identity.
    parked: HashMap<FileKey, Parked>,
    /// Where a tailer that goes quiet hands itself back (see `Parked`).
    park_tx: Sender<Parked>,
    park_rx: Receiver<Parked>,
    /// inotify, when the system has it.
    watcher: Option<notify::RecommendedWatcher>,
    /// Its events.
    events: Receiver<notify::Result<notify::Event>>,
    /// Directories watched one level deep.
    watched: HashSet<PathBuf>,
    /// Directories watched with everything below them.
    recursive: Vec<PathBuf>,
    /// Paths warned about (cannot be read): each warned once, retried every scan.
    warned: HashSet<PathBuf>,
    /// Until the first scan is done: start_at applies, and rotation while stopped is looked at.
    first_scan: bool,
    /// Identities the first scan found at matched paths.
    seen: HashSet<FileKey>,
    /// Files that wait for a descriptor (max_open_files).
    waiting: usize,
    /// Scans done.
    scans: u64,
    /// Events were lost or a directory appeared: the next scan stats every file.
    full_scan_due: bool,
}

/// How a file came to be opened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    /// A path the globs match.
    Matched,
    /// Outside the globs, by identity: a file rotated while the agent was stopped.
    Rotated,
    /// Matched, at an inode that held another file: new, read from its start.
    InodeReused,
}

/// The resume decision for a known state whose inode was opened.
enum Resume {
    /// The same file, nothing to read in it (a rotated file already drained).
    Nothing,
    /// The same file: read on from its offset.
    At(Arc<FileState>),
    /// Its inode holds a new file now: read that from its start.
    NewFile,
}

/// What opening a file came to.
enum Opened {
    /// A tailer (or an archive reader) owns it now.
    Started,
    /// No descriptor budget left: it waits for the next scan.
    NoSlot,
    /// Nothing to do now (already open, read to its end, or waiting for something).
    Skipped,
}

impl Discovery {
    fn new(input: Arc<Input>, pipeline: TailResources) -> Discovery {
        let (etx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
        let (park_tx, park_rx) = crossbeam_channel::unbounded();
        let watcher = match notify::recommended_watcher(move |ev| {
            let _ = etx.send(ev);
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, "filesystem events unavailable; relying on poll_interval and scan_interval");
                None
            }
        };
        Discovery {
            input,
            pipeline,
            handles: tailers::Handles::default(),
            parked: HashMap::new(),
            retired: Vec::new(),
            strays: Vec::new(),
            gz_attempts: HashMap::new(),
            listed: HashMap::new(),
            park_tx,
            park_rx,
            watcher,
            events,
            watched: HashSet::new(),
            recursive: Vec::new(),
            warned: HashSet::new(),
            first_scan: true,
            seen: HashSet::new(),
            waiting: 0,
            scans: 0,
            full_scan_due: false,
        }
    }

    fn run(mut self) {
        self.watch_roots();
        let live = while_stopped::live_at_stop(&self.input.registry.all());
        self.scan();
        self.resume_rotated_while_stopped(&live);
        self.first_scan = false;
        let scan_interval = self.input.cfg.scan_interval;
        let mut next_scan = Instant::now() + scan_interval;
        let stop = self.pipeline.stop.receiver().clone();
        let events = self.events.clone();
        let parking = self.park_rx.clone();
        loop {
            let timeout = next_scan.saturating_duration_since(Instant::now());
            crossbeam_channel::select! {
                recv(events) -> ev => {
                    let mut dirty = BTreeSet::new();
                    if let Ok(ev) = ev {
                        self.on_event(ev, &mut dirty);
                    }
                    // Drain a burst before acting on it.
                    for _ in 0..EVENT_QUEUE {
                        match self.events.try_recv() {
                            Ok(ev) => self.on_event(ev, &mut dirty),
                            Err(_) => break,
                        }
                    }
                    for p in dirty {
                        self.look_at(&p);
                    }
                }
                recv(parking) -> p => {
                    if let Ok(p) = p {
                        self.park(p);
                    }
                }
                recv(stop) -> _ => break,
                default(timeout) => {}
            }
            if self.pipeline.stop.is_set() {
                break;
            }
            if Instant::now() >= next_scan {
                self.watch_roots();
                self.scan();
                next_scan = Instant::now() + scan_interval;
            }
        }
        // Parked tailers hold the pipeline's sender: close them so the output can finish.
        for (_, p) in self.parked.drain() {
            p.close();
        }
        while let Ok(p) = self.park_rx.try_recv() {
            p.close();
        }
        debug!(input = self.input.index, "discovery stopped");
    }

    /// Tracks a file seen for the first time (or whose inode now holds new content).
    fn register(&self, key: FileKey, path: &Path, progress: Progress) -> Arc<FileState> {
        let st = Arc::new(FileState::new(key, path, progress));
        self.input.registry.lock().insert(key, st.clone());
        st
    }

    fn scan(&mut self) {
        let t0 = Instant::now();
        self.seen.clear();
        let full =
            self.first_scan || self.full_scan_due || self.scans.is_multiple_of(FULL_SCAN_EVERY);
        self.full_scan_due = false;
        self.tend_parked(full);
        // Walking a `**` tree opens every directory (and each open is an inotify event): when
        // the whole tree is watched, new files arrive as events and the walk is a safety net.
        let walk_trees = full || !self.trees_watched();
        // Likewise a watched directory whose entries have not changed since it was listed (its
        // mtime moves with every create, delete and rename) need not be listed again, unless
        // something there waits for the next scan: a retry, a descriptor, an archive.
        let quiet = !full && self.warned.is_empty() && self.waiting == 0 && !self.gz_pending();
        let stamps = self.stamp_dirs();
        let unchanged = |dir: &Path| {
            quiet
                && self.is_watched(dir)
                && stamps.get(dir).copied().flatten().is_some_and(|s| {
                    self.listed
                        .get(dir)
                        .is_some_and(|l| l.stamp == s && !l.links && !l.indirect)
                })
        };
        let candidates = self.input.candidates(walk_trees, &unchanged);
        let listed = self.new_listings(&stamps, &candidates, &unchanged);
        self.listed.extend(listed);
        self.waiting = 0;
        for c in candidates {
            // An open plain file in a watched directory: events report its rotation, so
            // the idle scan skips the stat (what keeps a thousand quiet files cheap).
            if !full
                && c.plain
                && self
                    .handles
                    .at(c.path.as_os_str())
                    .is_some_and(|st| st.is_active())
                && c.path.parent().is_some_and(|d| self.is_watched(d))
            {
                continue;
            }
            self.look_at(&c.path);
        }
        if !self.strays.is_empty() {
            self.tend_strays();
        }
        self.pipeline.slots.set_waiting(self.waiting);
        if self.waiting > 0 {
            // Files wait for descriptors: quiet tailers must look now whether to give theirs up.
            self.handles.wake_all();
        }
        self.scans += 1;
        if self.scans % HOUSEKEEPING_EVERY == 1 {
            self.handles.prune();
            self.forget_old();
            self.forget_archive_sizes();
        }
        tracing::trace!(took = ?t0.elapsed(), "scan");
    }

    fn warn_once(&mut self, path: &Path, what: &str, e: &io::Error) {
        if self.warned.insert(path.to_path_buf()) {
            warn!(path = %path.display(), error = %e, "{what}; will retry every scan_interval");
        }
    }

    /// Looks at one matched path: starts a tailer if its file has bytes to read.
    fn look_at(&mut self, path: &Path) {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            // Vanished, or a dangling symlink: picked up once the target appears.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.warned.remove(path);
                return;
            }
            Err(e) => return self.warn_once(path, "cannot stat file", &e),
        };
        if !meta.is_file() {
            return;
        }
        let key = FileKey::of(&meta);
        if self.first_scan {
            self.seen.insert(key);
        }
        let mut existing = self.input.registry.lock().get(&key).cloned();
        let mut how = Found::Matched;
        if existing
            .as_ref()
            .is_some_and(|st| replaced_at_inode(st, path, meta.len()))
        {
            self.retire(key);
            existing = None;
            how = Found::InodeReused;
        }
        if let Some(st) = &existing {
            let mut p = st.progress();
            p.last_seen = unix_now();
            // The same file under another matched name (renamed, or a second link)? Its inode
            // may hold a new file instead (ext4 hands a freed inode on at once): an open file
            // is surely the same one, an archive whose size has not changed too; a plain file
            // that is not open takes the name once its content has been checked.
            let renamed = p.path.as_os_str() != path.as_os_str() && !same_file(&p.path, key);
            if renamed && (st.is_active() || gzip::is_gzip(path)) {
                p.path = path.to_path_buf();
            }
            if st.is_active() {
                drop(p);
                self.handles.alias(path, st);
                return;
            }
            if gzip::is_gzip(path) {
                // Compressed files do not grow: read once to the end, never again, unless
                // one grows after all (given up as damaged while still being written, or a
                // gzip member appended; its content up to the offset was checked above).
                if p.gzip_length.is_some() {
                    let grown = p.gzip_size.is_some_and(|s| s != meta.len())
                        || self
                            .gz_attempts
                            .get(&key)
                            .is_some_and(|&(size, _, _)| size != meta.len());
                    if !grown {
                        return;
                    }
                    p.gzip_length = None;
                    p.gzip_size = None;
                }
            } else if meta.len() == p.read_offset {
                drop(p);
                if renamed && confirmed_at(st, path) {
                    st.progress().path = path.to_path_buf();
                }
                return;
            }
        }
        match self.open(path, existing, how) {
            Ok(Opened::NoSlot) => self.waiting += 1,
            Ok(Opened::Started) => {
                self.warned.remove(path);
            }
            Ok(Opened::Skipped) => {}
            Err(e) if is_fd_exhaustion(&e) => self.waiting += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => self.warn_once(path, "cannot open file", &e),
        }
    }

    /// Drops the state of a file that no longer exists (its inode now holds another file),
    /// keeping it for matching archives.
    fn retire(&mut self, key: FileKey) {
        let old = self.input.registry.lock().remove(&key);
        if let Some(st) = old {
            info!(path = %st.progress().path.display(), key = ?key,
                "a file was replaced by another at the same inode; tracking the new one from its start");
            self.keep_retired(st);
        }
    }

    fn keep_retired(&mut self, st: Arc<FileState>) {
        if st.progress().gzip_length.is_some() {
            // Already accounted for by its archive: no later archive can be its copy.
            return;
        }
        self.retired.push(st);
        if self.retired.len() > RETIRED_KEPT {
            self.retired.remove(0);
        }
    }

    /// Opens a file and starts its tailer.
    fn open(
        &mut self,
        path: &Path,
        existing: Option<Arc<FileState>>,
        how: Found,
    ) -> io::Result<Opened> {
        if !self.pipeline.slots.try_acquire() {
            return Ok(Opened::NoSlot);
        }
        match self.open_with_slot(path, existing, how) {
            Ok(Opened::Started) => Ok(Opened::Started),
            other => {
                self.pipeline.slots.release();
                other
            }
        }
    }

    fn open_with_slot(
        &mut self,
        path: &Path,
        existing: Option<Arc<FileState>>,
        how: Found,
    ) -> io::Result<Opened> {
        let rotated = how == Found::Rotated;
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let key = FileKey::of(&meta);
        // The path may have changed between stat and open: trust the open file.
        let existing = match existing {
            Some(st) if st.key == key => Some(st),
            _ => self.input.registry.lock().get(&key).cloned(),
        };
        if gzip::is_gzip(path) {
            return self.open_gzip(path, file, key, existing, how);
        }
        let head = read_at_most(&file, 0, FINGERPRINT_BYTES)?;
        let fp = Fingerprint::of_head(&head);
        let size = meta.len();
        let mut replaced = how == Found::InodeReused;
        let resumed = match existing {
            Some(st) => {
                if st.is_active() {
                    return Ok(Opened::Skipped);
                }
                match self.resume_decision(st, path, &file, head, size, rotated) {
                    Resume::Nothing => return Ok(Opened::Skipped),
                    Resume::At(st) => Some(st),
                    Resume::NewFile => {
                        replaced = true;
                        None
                    }
                }
            }
            None => None,
        };
        let state = match resumed {
            Some(st) => st,
            None => {
                let offset =
                    if !replaced && self.first_scan && self.input.cfg.start_at == StartAt::End {
                        last_line_end(&file, size)
                    } else {
                        0
                    };
                let marker = marker_at(&file, offset).unwrap_or(fnv1a(b""));
                self.register(key, path, Progress::starting_at(fp, offset, marker, path))
            }
        };
        self.start_tailer(path, file, state, size)
    }

    /// The resume decision when a plain file is opened at a known state's inode: the same
    /// file (resumed, under its new name unless `rotated`), or a new file at that inode (the
    /// state kept for matching archives).
    fn resume_decision(
        &mut self,
        st: Arc<FileState>,
        path: &Path,
        file: &File,
        head: Vec<u8>,
        size: u64,
        rotated: bool,
    ) -> Resume {
        let fp = Fingerprint::of_head(&head);
        let known = recognize::known(&st);
        let seen = Seen {
            key: st.key,
            size,
            gzip: false,
            content: recognize::with_head(file, false, &known.recorded, head),
        };
        match verdict(&known, &seen) {
            Verdict::Same if rotated => return Resume::Nothing,
            Verdict::Same | Verdict::Grown => {}
            Verdict::InodeReused | Verdict::CopyOf | Verdict::Unrelated => {
                info!(path = %path.display(), checkpoint_offset = known.recorded.offset, size,
                    "file no longer holds the content checkpointed for it (truncated, rewritten or inode reused); reading it from the start");
                // A new file: its own state (events carry its own path), from offset 0.
                self.keep_retired(st);
                return Resume::NewFile;
            }
        }
        let mut p = st.progress();
        p.fingerprint = fp;
        if !rotated {
            p.path = path.to_path_buf();
        }
        p.last_seen = unix_now();
        drop(p);
        Resume::At(st)
    }

    /// Starts the tailer of an opened plain file at its state's offset.
    fn start_tailer(
        &mut self,
        path: &Path,
        file: File,
        state: Arc<FileState>,
        size: u64,
    ) -> io::Result<Opened> {
        let offset = state.progress().read_offset;
        state.size.store(size, Ordering::Relaxed);
        let real = std::fs::canonicalize(path).ok();
        let dir = real.as_deref().and_then(Path::parent);
        if let Some(dir) = dir {
            self.watch(dir, RecursiveMode::NonRecursive);
        }
        let (wtx, wrx) = crossbeam_channel::bounded(1);
        state.active.store(true, Ordering::Release);
        let start = OpenedFile {
            file,
            state: state.clone(),
            offset,
            wake: wrx,
            events: dir.is_some_and(|d| self.is_watched(d) && local_events(d)),
            park: self.park_tx.clone(),
        };
        if let Err(e) = tailer::spawn(self.pipeline.clone(), self.input.params.clone(), start) {
            state.active.store(false, Ordering::Release);
            return Err(io::Error::new(
                e.kind(),
                format!("cannot start a tailer thread: {e}"),
            ));
        }
        debug!(path = %path.display(), offset, size, "opened");
        let names = std::iter::once(path.as_os_str().to_owned());
        self.handles
            .started(&state, wtx, names.chain(real.map(PathBuf::into_os_string)));
        Ok(Opened::Started)
    }

    fn forget_old(&mut self) {
        let now = unix_now();
        self.input.registry.lock().retain(|_, st| {
            st.is_active() || now.saturating_sub(st.progress().last_seen) < FORGET_AFTER_SECS
        });
    }
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Offset just past the last newline (start_at: end begins at a line boundary).
fn last_line_end(file: &File, size: u64) -> u64 {
    let from = size.saturating_sub(LAST_LINE_WINDOW);
    match read_at_most(file, from, (size - from) as usize) {
        Ok(tail) => match memchr::memrchr(b'\n', &tail) {
            Some(i) => from + i as u64 + 1,
            None if from == 0 => 0,
            None => size,
        },
        Err(_) => size,
    }
}
