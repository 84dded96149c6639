//! Discovery: one thread per input. Evaluates the globs every scan_interval and on filesystem
//! events, and starts a tailer for each file identity that has bytes to read.

use crate::config::{FileInput, StartAt};
use crate::event::{FileState, Progress, Registry, unix_now};
use crate::identity::{FINGERPRINT_BYTES, FileKey, Fingerprint, fnv1a, marker_at, read_at_most};
use crate::tailer::{self, Params, Parked, Pipeline, Start, gzip};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tracing::{debug, info, warn};

mod while_stopped;

/// Checkpoint entries of files unseen for this long are forgotten.
const FORGET_AFTER_SECS: u64 = 24 * 3600;

/// One configured file input at run time.
#[derive(Debug)]
pub struct Input {
    /// Position in `inputs.files`.
    pub index: usize,
    /// Its configuration.
    pub cfg: FileInput,
    /// Every file identity it knows (open or not).
    pub registry: Arc<Registry>,
    /// Settings its tailers share.
    pub params: Arc<Params>,
    /// Include globs, made absolute.
    pub includes: Vec<String>,
    /// Exclude patterns, made absolute.
    pub excludes: Vec<glob::Pattern>,
    /// Include patterns, compiled, for paths named by filesystem events.
    include_patterns: Vec<glob::Pattern>,
    /// Per include: (directory, file-name pattern) when only the last component is a pattern.
    single_dir: Vec<Option<(PathBuf, glob::Pattern)>>,
}

/// Removes `.` components and resolves `..` lexically (globs cannot be canonicalized).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn absolute(pattern: &str) -> String {
    let p = Path::new(pattern);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    normalize(&abs).to_string_lossy().into_owned()
}

impl Input {
    /// Builds the run-time input from its configuration.
    pub fn new(index: usize, cfg: FileInput) -> Input {
        let params = Arc::new(Params {
            poll_interval: cfg.poll_interval,
            rotate_wait: cfg.rotate_wait,
            close_inactive: cfg.close_inactive,
            max_line_bytes: cfg.max_line_bytes as usize,
        });
        let includes: Vec<String> = cfg.paths.iter().map(|g| absolute(g)).collect();
        let include_patterns = includes
            .iter()
            .filter_map(|g| glob::Pattern::new(g).ok())
            .collect();
        let single_dir = includes.iter().map(|g| single_dir_glob(g)).collect();
        let excludes = cfg
            .exclude
            .iter()
            .filter_map(|g| glob::Pattern::new(&absolute(g)).ok())
            .collect();
        Input {
            index,
            cfg,
            registry: Arc::new(Registry::default()),
            params,
            includes,
            excludes,
            include_patterns,
            single_dir,
        }
    }

    fn excluded(&self, path: &Path) -> bool {
        self.excludes.iter().any(|p| p.matches_path(path))
    }

    /// The files the globs match now, excluded ones removed.
    pub fn matched(&self) -> Vec<PathBuf> {
        self.candidates(true, &|_| false)
            .into_iter()
            .map(|c| c.path)
            .collect()
    }

    /// Like `matched`, with what the directory listing told about each entry. Without
    /// `walk_trees`, globs that need a directory walk are skipped (their new files arrive as
    /// filesystem events), and so are single directories for which `unchanged` says so.
    fn candidates(&self, walk_trees: bool, unchanged: &dyn Fn(&Path) -> bool) -> Vec<Candidate> {
        let mut all = Vec::new();
        for (g, fast) in self.includes.iter().zip(&self.single_dir) {
            if let Some((dir, name)) = fast {
                if !walk_trees && unchanged(dir) {
                    continue;
                }
                // Only the file name is a pattern: one readdir, no per-entry allocation for
                // names that do not match (the common `/var/log/app/*.log` case).
                if let Ok(rd) = std::fs::read_dir(dir) {
                    for e in rd.flatten() {
                        let n = e.file_name();
                        if n.to_str().is_some_and(|s| name.matches(s)) {
                            let path = e.path();
                            if !self.excluded(&path) {
                                let plain = e.file_type().is_ok_and(|t| t.is_file());
                                all.push(Candidate { path, plain });
                            }
                        }
                    }
                }
                continue;
            }
            if !walk_trees {
                continue;
            }
            if let Ok(paths) = glob::glob(g) {
                // Entries that vanish or cannot be read mid-walk are simply not matched.
                all.extend(
                    paths
                        .flatten()
                        .filter(|p| !self.excluded(p))
                        .map(|path| Candidate { path, plain: false }),
                );
            }
        }
        if self.includes.len() > 1 {
            // Byte order is enough to drop duplicates, and much cheaper than Path's order.
            all.sort_unstable_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
            all.dedup_by(|a, b| a.path == b.path);
        }
        all
    }

    fn matches(&self, path: &Path) -> bool {
        let opts = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        !self.excluded(path)
            && self
                .include_patterns
                .iter()
                .any(|p| p.matches_path_with(path, opts))
    }

    /// Directories to watch for events: each glob's fixed prefix, recursive when the glob
    /// has wildcards in its directory part.
    fn watch_roots(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut roots = Vec::new();
        for g in &self.includes {
            let mut base = PathBuf::new();
            let comps: Vec<_> = Path::new(g).components().collect();
            let mut wild_at = comps.len();
            for (i, c) in comps.iter().enumerate() {
                let s = c.as_os_str().to_string_lossy();
                if s.contains(['*', '?', '[', '{']) {
                    wild_at = i;
                    break;
                }
                base.push(c.as_os_str());
            }
            if wild_at == comps.len() {
                // A literal path: watch its directory.
                base.pop();
                roots.push((base, RecursiveMode::NonRecursive));
            } else {
                let mode = if wild_at + 1 < comps.len() {
                    RecursiveMode::Recursive
                } else {
                    RecursiveMode::NonRecursive
                };
                roots.push((base, mode));
            }
        }
        roots
    }
}

/// What a compressed file's head says about its origin.
enum Original {
    /// A plain file already (partly) read: continue at its offset.
    Found(Arc<FileState>),
    /// Its plain original is still being compressed or drained: look again at the next scan.
    Wait,
    /// A file of its own.
    None,
}

/// Replaced states kept for matching compressed archives.
const RETIRED_KEPT: usize = 64;
/// Scans an archive must keep its size, and how old it must be, before a decoding error
/// counts as damage (until then it may still be being written).
const GZ_SETTLE_SCANS: u32 = 3;
const GZ_SETTLE_AGE: std::time::Duration = std::time::Duration::from_secs(5);
/// An archive not tracked yet and not looked at for this long is gone (or was never ours).
const GZ_FORGET_UNTRACKED: std::time::Duration = std::time::Duration::from_secs(60);

/// A path the globs matched.
struct Candidate {
    path: PathBuf,
    /// The listing says it is a regular file (not a link): its identity changes only through
    /// events on its own directory.
    plain: bool,
}

/// Every this many scans, even files known to be open are stat()ed again (a safety net for
/// missed filesystem events).
const FULL_SCAN_EVERY: u64 = 30;

/// Starts the discovery thread of an input.
pub fn spawn(
    input: Arc<Input>,
    pipeline: Pipeline,
    host: Arc<str>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("discovery-{}", input.index))
        .spawn(move || Discovery::new(input, pipeline, host).run())
}

struct Discovery {
    input: Arc<Input>,
    pipeline: Pipeline,
    host: Arc<str>,
    /// Wake senders of running tailers, by every path their events may name.
    wakers: HashMap<OsString, (Sender<()>, Arc<FileState>)>,
    /// Wake sender of each running tailer, by file identity.
    senders: HashMap<FileKey, Sender<()>>,
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
    park_tx: Sender<Parked>,
    park_rx: Receiver<Parked>,
    watcher: Option<notify::RecommendedWatcher>,
    events: Receiver<notify::Result<notify::Event>>,
    watched: HashSet<PathBuf>,
    recursive: Vec<PathBuf>,
    warned: HashSet<PathBuf>,
    first_scan: bool,
    seen: HashSet<FileKey>,
    waiting: usize,
    scans: u64,
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
    New,
}

enum Opened {
    Started,
    NoSlot,
    Skipped,
}

impl Discovery {
    fn new(input: Arc<Input>, pipeline: Pipeline, host: Arc<str>) -> Discovery {
        let (etx, events) = crossbeam_channel::bounded(4096);
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
            host,
            wakers: HashMap::new(),
            senders: HashMap::new(),
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
                    for _ in 0..4096 {
                        match self.events.try_recv() {
                            Ok(ev) => self.on_event(ev, &mut dirty),
                            Err(_) => break,
                        }
                    }
                    for p in dirty {
                        self.consider(&p);
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
        let st = Arc::new(FileState::new(key, path, &self.host, progress));
        self.input.registry.lock().insert(key, st.clone());
        st
    }

    /// Keeps a quiet tailer without its thread, unless something already happened to it.
    fn park(&mut self, p: Parked) {
        if p.needs_attention() {
            self.resume(p);
        } else {
            self.parked.insert(p.state().key, p);
        }
    }

    fn resume(&mut self, p: Parked) {
        if let Err((p, e)) = p.resume() {
            warn!(path = %p.state().origin.display(), error = %e, "cannot start a tailer thread; will retry");
            self.parked.insert(p.state().key, p);
        }
    }

    /// Scan-time care of parked tailers: close the long quiet ones (or all when files wait
    /// for descriptors) and, on a full scan, resume any whose event was missed.
    fn tend_parked(&mut self, full: bool) {
        let contended = self.pipeline.slots.contended();
        let close_after = self.input.cfg.close_inactive;
        let (mut resume, mut close) = (Vec::new(), Vec::new());
        let now = Instant::now();
        for (k, p) in &self.parked {
            if full && p.needs_attention() {
                resume.push(*k);
            } else if contended || p.quiet_at(now) >= close_after {
                close.push(*k);
            }
        }
        for k in resume {
            if let Some(p) = self.parked.remove(&k) {
                self.resume(p.without_events());
            }
        }
        for k in close {
            if let Some(p) = self.parked.remove(&k) {
                p.close();
            }
        }
    }

    fn on_event(&mut self, ev: notify::Result<notify::Event>, dirty: &mut BTreeSet<PathBuf>) {
        let ev = match ev {
            // Opens and reads (our own scans among them) change nothing we track.
            Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => return,
            Ok(ev) => ev,
            Err(e) => {
                debug!(error = %e, "filesystem event error; the next scan looks at every file");
                self.full_scan_due = true;
                return;
            }
        };
        if ev.need_rescan() {
            // Events were lost: every tailer looks again, and the next scan stats every file.
            self.full_scan_due = true;
            for (w, _) in self.wakers.values() {
                let _ = w.try_send(());
            }
            let all: Vec<Parked> = self.parked.drain().map(|(_, p)| p).collect();
            for p in all {
                self.resume(p);
            }
        }
        if matches!(ev.kind, EventKind::Remove(_)) {
            for p in &ev.paths {
                if self.watched.remove(p) {
                    // Its watch went with it: watched again (and listed) once it exists again.
                    debug!(dir = %p.display(), "watched directory removed");
                    self.listed.remove(p);
                }
            }
        }
        if matches!(ev.kind, EventKind::Create(_)) && ev.paths.iter().any(|p| p.is_dir()) {
            // A new directory: files may land in it before its watch exists; walk at the next scan.
            self.full_scan_due = true;
        }
        for p in ev.paths {
            let parked_key = self
                .wakers
                .get(p.as_os_str())
                .map(|(_, st)| st.key)
                .filter(|k| self.parked.contains_key(k));
            if let Some(pk) = parked_key.and_then(|k| self.parked.remove(&k)) {
                self.resume(pk);
            }
            let woke = match self.wakers.get(p.as_os_str()) {
                Some((w, _)) => match w.try_send(()) {
                    Ok(()) | Err(TrySendError::Full(())) => true,
                    Err(TrySendError::Disconnected(())) => {
                        self.wakers.remove(p.as_os_str());
                        false
                    }
                },
                None => false,
            };
            let structural = matches!(
                ev.kind,
                EventKind::Create(_) | EventKind::Modify(notify::event::ModifyKind::Name(_))
            );
            if (!woke || structural) && self.input.matches(&p) {
                dirty.insert(p);
            }
        }
    }

    fn watch_roots(&mut self) {
        for (dir, mode) in self.input.watch_roots() {
            self.watch(&dir, mode);
        }
    }

    /// Whether every directory root of the globs is watched (recursively where needed).
    fn trees_watched(&self) -> bool {
        self.watcher.is_some()
            && self
                .input
                .watch_roots()
                .iter()
                .all(|(dir, mode)| match mode {
                    RecursiveMode::Recursive => self.recursive.iter().any(|r| dir.starts_with(r)),
                    RecursiveMode::NonRecursive => self.is_watched(dir),
                })
    }

    fn is_watched(&self, dir: &Path) -> bool {
        self.watched.contains(dir) || self.recursive.iter().any(|r| dir.starts_with(r))
    }

    fn watch(&mut self, dir: &Path, mode: RecursiveMode) {
        if self.is_watched(dir) {
            return;
        }
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        // A directory that does not exist yet is retried at the next scan.
        if w.watch(dir, mode).is_ok() {
            debug!(dir = %dir.display(), recursive = (mode == RecursiveMode::Recursive), "watching");
            self.watched.insert(dir.to_path_buf());
            if mode == RecursiveMode::Recursive {
                self.recursive.push(dir.to_path_buf());
            }
        }
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
        let mut stamps = HashMap::new();
        let input = self.input.clone();
        for (dir, _) in input.single_dir.iter().flatten() {
            let stamp = DirStamp::of(dir);
            let was = self.listed.get(dir).map(|l| l.stamp.key);
            if was.is_some() && was != stamp.map(|s| s.key) {
                // Removed (and maybe created again): its watch went with the old directory.
                debug!(dir = %dir.display(), "directory removed or replaced; watching it anew");
                self.watched.remove(dir);
                self.listed.remove(dir);
                self.watch(dir, RecursiveMode::NonRecursive);
            }
            stamps.insert(dir.clone(), stamp);
        }
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
        let listed: Vec<(PathBuf, Listing)> = stamps
            .iter()
            .filter(|(dir, _)| !unchanged(dir))
            .filter_map(|(dir, s)| {
                let stamp = (*s)?;
                // Links change targets without an event here.
                let links = candidates
                    .iter()
                    .any(|c| !c.plain && c.path.parent() == Some(dir.as_path()));
                // In a directory reached through a link, events carry the real path, which the
                // globs do not match; on a remote filesystem they miss other machines' writes.
                // Both hold as long as the directory (followed through links) is the same one.
                let indirect = match self.listed.get(dir) {
                    Some(l) if l.stamp.key == stamp.key => l.indirect,
                    _ => {
                        std::fs::canonicalize(dir).map_or(true, |real| real != *dir)
                            || !local_events(dir)
                    }
                };
                Some((
                    dir.clone(),
                    Listing {
                        stamp,
                        links,
                        indirect,
                    },
                ))
            })
            .collect();
        self.listed.extend(listed);
        self.waiting = 0;
        for c in candidates {
            // An open plain file in a watched directory: events report its rotation, so
            // the idle scan skips the stat (what keeps a thousand quiet files cheap).
            if !full
                && c.plain
                && self
                    .wakers
                    .get(c.path.as_os_str())
                    .is_some_and(|(_, st)| st.is_active())
                && c.path.parent().is_some_and(|d| self.is_watched(d))
            {
                continue;
            }
            self.consider(&c.path);
        }
        if !self.strays.is_empty() {
            self.tend_strays();
        }
        self.pipeline.slots.set_waiting(self.waiting);
        if self.waiting > 0 {
            // Files wait for descriptors: quiet tailers must look now whether to give theirs up.
            for (w, _) in self.wakers.values() {
                let _ = w.try_send(());
            }
        }
        self.scans += 1;
        if self.scans % 60 == 1 {
            // A tailer that ended leaves its sender behind; a live one must not be woken here.
            self.wakers.retain(|_, (_, st)| st.is_active());
            {
                let registry = self.input.registry.lock();
                self.senders
                    .retain(|k, _| registry.get(k).is_some_and(|st| st.is_active()));
            }
            self.forget_old();
            // Sizes matter for archives still to be read (looked at lately, if not tracked yet:
            // waiting for gzip or for their plain original), and for damaged ones (may grow).
            let registry = self.input.registry.lock();
            self.gz_attempts
                .retain(|k, &mut (_, _, looked)| match registry.get(k) {
                    Some(st) => {
                        let p = st.progress();
                        p.complete_at.is_none() || p.archive_size.is_none()
                    }
                    None => looked.elapsed() < GZ_FORGET_UNTRACKED,
                });
        }
        tracing::trace!(took = ?t0.elapsed(), "scan");
    }

    /// Whether a compressed file is still to be read (being written, or waiting for its plain
    /// original to be drained).
    fn gz_pending(&self) -> bool {
        if self.gz_attempts.is_empty() {
            return false;
        }
        let registry = self.input.registry.lock();
        self.gz_attempts.keys().any(|k| {
            registry
                .get(k)
                .is_none_or(|st| st.progress().complete_at.is_none())
        })
    }

    fn warn_once(&mut self, path: &Path, what: &str, e: &io::Error) {
        if self.warned.insert(path.to_path_buf()) {
            warn!(path = %path.display(), error = %e, "{what}; will retry every scan_interval");
        }
    }

    /// Looks at one matched path: starts a tailer if its file has bytes to read.
    fn consider(&mut self, path: &Path) {
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
            how = Found::New;
        }
        if let Some(st) = &existing {
            let mut p = st.progress();
            p.last_seen = unix_now();
            // The same file under another matched name (renamed, or a second link).
            if p.path.as_os_str() != path.as_os_str() && !same_file(&p.path, key) {
                p.path = path.to_path_buf();
            }
            if st.is_active() {
                drop(p);
                self.add_waker(path, st);
                return;
            }
            if gzip::is_gzip(path) {
                // Compressed files do not grow: read once to the end, never again, unless
                // one grows after all (given up as damaged while still being written, or a
                // gzip member appended; its content up to the offset was checked above).
                if p.complete_at.is_some() {
                    let grown = p.archive_size.is_some_and(|s| s != meta.len())
                        || self
                            .gz_attempts
                            .get(&key)
                            .is_some_and(|&(size, _, _)| size != meta.len());
                    if !grown {
                        return;
                    }
                    p.complete_at = None;
                    p.archive_size = None;
                }
            } else if meta.len() == p.read_offset {
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
        if st.progress().complete_at.is_some() {
            // Already accounted for by its archive: no later archive can be its copy.
            return;
        }
        self.retired.push(st);
        if self.retired.len() > RETIRED_KEPT {
            self.retired.remove(0);
        }
    }

    fn add_waker(&mut self, path: &Path, st: &Arc<FileState>) {
        let known = self
            .wakers
            .get(path.as_os_str())
            .is_some_and(|(_, s)| Arc::ptr_eq(s, st));
        if !known
            && st.is_active()
            && let Some(w) = self.senders.get(&st.key).cloned()
        {
            // Events now name the file under this path too (renamed, or a second link).
            self.wakers
                .insert(path.as_os_str().to_owned(), (w, st.clone()));
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
        let mut replaced = how == Found::New;
        let resumed = match existing {
            Some(st) => {
                if st.is_active() {
                    return Ok(Opened::Skipped);
                }
                let mut p = st.progress();
                let resumable = p.fingerprint.matches_head(&head)
                    && size >= p.read_offset
                    && marker_at(&file, p.read_offset).ok() == Some(p.read_marker);
                if resumable {
                    if p.read_offset == size && rotated {
                        return Ok(Opened::Skipped);
                    }
                    p.fingerprint = fp;
                    if !rotated {
                        p.path = path.to_path_buf();
                    }
                    p.last_seen = unix_now();
                    drop(p);
                    Some(st)
                } else {
                    info!(path = %path.display(), checkpoint_offset = p.read_offset, size,
                        "file no longer holds the content checkpointed for it (truncated, rewritten or inode reused); reading it from the start");
                    // A new file: its own state (events carry its own path), from offset 0.
                    replaced = true;
                    drop(p);
                    self.keep_retired(st);
                    None
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
        let offset = state.progress().read_offset;
        state.size.store(size, Ordering::Relaxed);
        let real = std::fs::canonicalize(path).ok();
        let dir = real.as_deref().and_then(Path::parent);
        if let Some(dir) = dir {
            self.watch(dir, RecursiveMode::NonRecursive);
        }
        let (wtx, wrx) = crossbeam_channel::bounded(1);
        state.active.store(true, Ordering::Release);
        let start = Start {
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
        // The newest file at a path owns that path's events; an older one found under another
        // name (rotated) must not take them over.
        self.wakers
            .insert(path.as_os_str().to_owned(), (wtx.clone(), state.clone()));
        self.senders.insert(state.key, wtx.clone());
        if let Some(real) = real {
            self.wakers
                .insert(real.into_os_string(), (wtx, state.clone()));
        }
        Ok(Opened::Started)
    }

    /// A compressed file: read once from its decompressed offset. A compressed copy of a file
    /// already read as plain text (logrotate's `compress`) continues where that file was.
    fn open_gzip(
        &mut self,
        path: &Path,
        file: File,
        key: FileKey,
        existing: Option<Arc<FileState>>,
        how: Found,
    ) -> io::Result<Opened> {
        // An archive may still be growing (gzip at work): any decoding error is taken for
        // "not finished yet" until the file has stayed the same size for a few scans.
        let size = file.metadata()?.len();
        let attempts = match self.gz_attempts.get(&key) {
            Some(&(s, n, _)) if s == size => n + 1,
            _ => 1,
        };
        self.gz_attempts
            .insert(key, (size, attempts, Instant::now()));
        let age = file
            .metadata()?
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or_default();
        let settled = attempts >= GZ_SETTLE_SCANS && age >= GZ_SETTLE_AGE;
        if attempts > 1 && !settled && existing.is_some() {
            // Read as far as it went at this size: wait for it to grow or to settle.
            return Ok(Opened::Skipped);
        }
        let head = match gzip::decompressed_head(&file) {
            Ok(h) => h,
            Err(_) if !settled => return Ok(Opened::Skipped),
            Err(e) => {
                self.warn_once(path, "cannot decompress file", &e);
                return Ok(Opened::Skipped);
            }
        };
        let fp = Fingerprint::of_head(&head);
        let state = match existing {
            Some(st) => {
                if st.is_active() {
                    return Ok(Opened::Skipped);
                }
                let mut p = st.progress();
                if p.complete_at.is_some() {
                    return Ok(Opened::Skipped);
                }
                if p.fingerprint != fp {
                    p.generation = p.generation.wrapping_add(1);
                    p.fingerprint = fp;
                    p.read_offset = 0;
                    p.acked_offset = 0;
                }
                drop(p);
                st
            }
            None => {
                let same_size = attempts > 1;
                let original = match self.plain_original(path, &file, &head, settled, same_size) {
                    Original::Wait => return Ok(Opened::Skipped),
                    Original::Found(st) => Some(st),
                    Original::None => None,
                };
                let (offset, complete_at) = if let Some(prev) = original {
                    let at = prev.progress().read_offset;
                    info!(path = %path.display(), original = %prev.progress().path.display(), offset = at,
                        "compressed copy of a file already read; continuing where it was, not reading it twice");
                    // Used up: a later archive with the same head is another generation.
                    prev.progress().complete_at = Some(at);
                    self.retired.retain(|r| !Arc::ptr_eq(r, &prev));
                    (at, None)
                } else if how != Found::New
                    && self.first_scan
                    && self.input.cfg.start_at == StartAt::End
                {
                    (0, Some(0))
                } else {
                    (0, None)
                };
                let st = self.register(
                    key,
                    path,
                    Progress {
                        complete_at,
                        ..Progress::starting_at(fp, offset, 0, path)
                    },
                );
                if complete_at.is_some() {
                    return Ok(Opened::Skipped);
                }
                st
            }
        };
        let offset = state.progress().read_offset;
        state.active.store(true, Ordering::Release);
        if let Err(e) = gzip::spawn(
            self.pipeline.clone(),
            self.input.params.clone(),
            state.clone(),
            file,
            offset,
            settled,
        ) {
            state.active.store(false, Ordering::Release);
            return Err(io::Error::new(
                e.kind(),
                format!("cannot start a thread: {e}"),
            ));
        }
        debug!(path = %path.display(), offset, "reading compressed file");
        Ok(Opened::Started)
    }

    /// The plain file this compressed head belongs to: its fingerprint is a prefix of the
    /// decompressed head, and it is no longer at its path (most recently seen first; a plain
    /// file still being compressed into this archive, or still drained, means: wait). The
    /// archive must hold the same bytes before the file's offset (its marker), not just the head.
    fn plain_original(
        &self,
        gz: &Path,
        file: &File,
        head: &[u8],
        settled: bool,
        same_size: bool,
    ) -> Original {
        let plain_name = gz.with_extension("");
        let mut gone: Vec<(u64, Arc<FileState>)> = Vec::new();
        let live = self.input.registry.all().into_iter().map(|s| (s, false));
        // A retired state's inode now holds another file: it is gone whatever stat says.
        let retired = self.retired.iter().map(|s| (s.clone(), true));
        for (st, is_retired) in live.chain(retired) {
            let (path, last_seen) = {
                let p = st.progress();
                if p.fingerprint.len == 0
                    || !p.fingerprint.matches_head(head)
                    || p.complete_at.is_some()
                    || gzip::is_gzip(&p.path)
                {
                    continue;
                }
                (p.path.clone(), p.last_seen)
            };
            if !is_retired && same_file(&plain_name, st.key) {
                // gzip has not removed the plain file yet.
                return Original::Wait;
            }
            let mut present = !is_retired && same_file(&path, st.key);
            if present && !st.is_active() {
                // Its inode may hold a new file by now (the original deleted by gzip, the
                // inode reused by the next app.log): the content decides.
                present = File::open(&path).is_ok_and(|f| holds_content(&f, false, &st));
            }
            if st.is_active() {
                if present {
                    // A live file that merely starts the same way: not this archive's origin.
                    continue;
                }
                // Rotated away and still being drained: its offset is not final yet.
                return Original::Wait;
            }
            if !present {
                gone.push((last_seen, st.clone()));
            }
        }
        // Most recently seen first; the head says "maybe" (a banner), the bytes before the
        // offset say "yes": the archive holds the same content up to where the file was read.
        gone.sort_by_key(|(seen, _)| std::cmp::Reverse(*seen));
        if !gone.is_empty() && !settled && !same_size {
            // Decompressing to the offset costs: not on every event while gzip still writes.
            return Original::Wait;
        }
        for (_, st) in gone {
            let (offset, marker) = {
                let p = st.progress();
                (p.read_offset, p.read_marker)
            };
            match gzip::marker_at(file, offset) {
                Ok(Some(m)) if m == marker => return Original::Found(st),
                Ok(Some(_)) => {}
                // Complete but shorter: lines written to the plain file after gzip read it
                // (read from the plain file already). The head has to do.
                Ok(None) => return Original::Found(st),
                // gzip may still be writing it.
                Err(_) if !settled => return Original::Wait,
                // Damaged before the offset: what it holds was read from the plain file.
                Err(_) => return Original::Found(st),
            }
        }
        Original::None
    }

    fn forget_old(&mut self) {
        let now = unix_now();
        self.input.registry.lock().retain(|_, st| {
            st.is_active() || now.saturating_sub(st.progress().last_seen) < FORGET_AFTER_SECS
        });
    }
}

fn is_wild(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `(dir, pattern)` for a glob whose only wildcards are in its last component.
fn single_dir_glob(g: &str) -> Option<(PathBuf, glob::Pattern)> {
    let p = Path::new(g);
    let name = p.file_name()?.to_str()?;
    let dir = p.parent()?;
    if !is_wild(name) || is_wild(&dir.to_string_lossy()) || name == "**" {
        return None;
    }
    Some((dir.to_path_buf(), glob::Pattern::new(name).ok()?))
}

/// A single-directory glob's directory as last listed.
struct Listing {
    stamp: DirStamp,
    /// It held symlinks.
    links: bool,
    /// Reached through a symlink, or on a filesystem whose changes inotify may not see.
    indirect: bool,
}

/// What changes when a directory's entries do: its identity, mtime and ctime.
#[derive(Clone, Copy, PartialEq, Eq)]
struct DirStamp {
    key: FileKey,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl DirStamp {
    fn of(dir: &Path) -> Option<DirStamp> {
        let m = std::fs::metadata(dir).ok()?;
        Some(DirStamp {
            key: FileKey::of(&m),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// Whether inotify sees every change in `dir`: not on network and FUSE filesystems, where
/// other machines (or a userspace server) write without the local kernel knowing.
fn local_events(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const REMOTE: [i64; 9] = [
        0x6969,      // NFS
        0x517B,      // SMB
        0xFF53_4D42, // CIFS
        0xFE53_4D42, // SMB2
        0x6573_5546, // FUSE
        0x0102_1997, // 9P
        0x00C3_6400, // Ceph
        0x0BD0_0BD0, // Lustre
        0x5346_414F, // AFS
    ];
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return true;
    };
    // SAFETY: statfs only writes into the zeroed struct we own, and `c` is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return true;
    }
    #[allow(clippy::unnecessary_cast)]
    let kind = st.f_type as i64;
    !REMOTE.contains(&kind)
}

fn same_file(path: &Path, key: FileKey) -> bool {
    std::fs::metadata(path)
        .map(|m| FileKey::of(&m) == key)
        .unwrap_or(false)
}

/// Whether a known state is not the file now at `path` with the same (device, inode) and
/// `size`, its inode having been freed and handed to a new file (whose head may well be the
/// same: a common banner). A plain file never turns into an archive or back. A plain file
/// whose archive was read is normally deleted, and an archive read to its end keeps its size:
/// when either is seen again, its content up to the checkpointed offset decides.
fn replaced_at_inode(st: &FileState, path: &Path, size: u64) -> bool {
    if st.is_active() {
        return false;
    }
    let suspect = {
        let p = st.progress();
        let was_gzip = gzip::is_gzip(&p.path);
        if was_gzip != gzip::is_gzip(path) {
            return true;
        }
        if was_gzip {
            p.archive_size.is_some_and(|s| s != size)
        } else {
            p.complete_at.is_some()
        }
    };
    // A file that cannot be opened now is looked at again later.
    suspect && File::open(path).is_ok_and(|f| !holds_content(&f, gzip::is_gzip(path), st))
}

/// Whether `file` holds what a state read: its head (fingerprint) and the bytes before its
/// read offset (marker), decompressed for an archive.
fn holds_content(file: &File, archive: bool, st: &FileState) -> bool {
    let (fingerprint, offset, marker) = {
        let p = st.progress();
        (p.fingerprint, p.read_offset, p.read_marker)
    };
    if archive {
        gzip::decompressed_head(file).is_ok_and(|h| fingerprint.matches_head(&h))
            && gzip::marker_at(file, offset).ok().flatten() == Some(marker)
    } else {
        read_at_most(file, 0, FINGERPRINT_BYTES).is_ok_and(|h| fingerprint.matches_head(&h))
            && marker_at(file, offset).ok() == Some(marker)
    }
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Offset just past the last newline (start_at: end begins at a line boundary).
fn last_line_end(file: &File, size: u64) -> u64 {
    let window = 64 * 1024u64;
    let from = size.saturating_sub(window);
    match read_at_most(file, from, (size - from) as usize) {
        Ok(tail) => match memchr::memrchr(b'\n', &tail) {
            Some(i) => from + i as u64 + 1,
            None if from == 0 => 0,
            None => size,
        },
        Err(_) => size,
    }
}
