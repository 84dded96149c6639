//! Process-wide counters and health flags: the agent's own view of its pipeline, read by the
//! stats log line, the metrics endpoint and the health check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Counters shared by every thread; relaxed atomics, read for reporting only.
#[derive(Debug)]
pub struct Stats {
    /// When the agent started.
    pub started: Instant,
    /// Lines read from files (including truncated ones).
    pub lines_read: AtomicU64,
    /// Bytes read from files.
    pub bytes_read: AtomicU64,
    /// Events written and flushed by the output.
    pub events_written: AtomicU64,
    /// Lines cut to max_line_bytes.
    pub lines_truncated: AtomicU64,
    /// NUL bytes skipped at line starts (copytruncate holes).
    pub nul_bytes_skipped: AtomicU64,
    /// Files currently open by tailers.
    pub files_open: AtomicU64,
    /// Rename/delete rotations seen.
    pub rotations_rename: AtomicU64,
    /// Files found shorter than their offset.
    pub rotations_truncate: AtomicU64,
    /// Files whose content changed under the same inode.
    pub rotations_fingerprint: AtomicU64,
    /// Checkpoint files written.
    pub checkpoint_writes: AtomicU64,
    /// Checkpoint writes that failed.
    pub checkpoint_errors: AtomicU64,
    /// Output writes that failed (each retry counts).
    pub output_errors: AtomicU64,
    /// Events per second over the last few seconds (f64 bits), kept by the reporter.
    pub current_throughput: AtomicU64,
    /// Since when, and why, the output has been failing.
    pub output_failing: Mutex<Option<(Instant, String)>>,
    /// Files whose tailer thread panicked (a bug): not read until a restart.
    pub panicked_tailers: Mutex<Vec<String>>,
    /// Checkpoint files that cannot be written now, with the error.
    pub checkpoint_failing: Mutex<Vec<(String, String)>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            lines_read: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            events_written: AtomicU64::new(0),
            lines_truncated: AtomicU64::new(0),
            nul_bytes_skipped: AtomicU64::new(0),
            files_open: AtomicU64::new(0),
            rotations_rename: AtomicU64::new(0),
            rotations_truncate: AtomicU64::new(0),
            rotations_fingerprint: AtomicU64::new(0),
            checkpoint_writes: AtomicU64::new(0),
            checkpoint_errors: AtomicU64::new(0),
            output_errors: AtomicU64::new(0),
            current_throughput: AtomicU64::new(0),
            output_failing: Mutex::new(None),
            panicked_tailers: Mutex::new(Vec::new()),
            checkpoint_failing: Mutex::new(Vec::new()),
        }
    }
}

impl Stats {
    /// Records an output failure (keeps the time of the first one in a row).
    pub fn output_failed(&self, why: String) {
        let mut f = self
            .output_failing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match f.as_mut() {
            Some((_, w)) => *w = why,
            None => *f = Some((Instant::now(), why)),
        }
    }

    /// Records that the tailer of `path` panicked.
    pub fn tailer_panicked(&self, path: String) {
        let mut p = (self.panicked_tailers.lock()).unwrap_or_else(|p| p.into_inner());
        if !p.contains(&path) {
            p.push(path);
        }
    }

    /// Records that the output works.
    pub fn output_ok(&self) {
        let mut f = self
            .output_failing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if f.is_some() {
            *f = None;
        }
    }

    /// Records the outcome of a checkpoint write for `path`.
    pub fn checkpoint_result(&self, path: &str, error: Option<String>) {
        let mut f = self
            .checkpoint_failing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f.retain(|(p, _)| p != path);
        if let Some(e) = error {
            f.push((path.to_string(), e));
        }
    }
}

/// Adds to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Reads a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A per-file series whose file has been closed and gone from disk this long is dropped.
pub const SERIES_GRACE: Duration = Duration::from_secs(5 * 60);

/// Tests only (undocumented): overrides [`SERIES_GRACE`], in milliseconds.
const SERIES_GRACE_ENV: &str = "LOGAGGREGATOR_TEST_SERIES_GRACE_MS";

/// The grace in force: [`SERIES_GRACE`] unless the test override is set.
pub fn series_grace() -> Duration {
    static GRACE: OnceLock<Duration> = OnceLock::new();
    *GRACE.get_or_init(|| {
        std::env::var(SERIES_GRACE_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map_or(SERIES_GRACE, Duration::from_millis)
    })
}

/// The per-path counter table of this process (see [`FileCounters`]).
pub fn file_counters() -> &'static FileCounters {
    static FILES: OnceLock<FileCounters> = OnceLock::new();
    FILES.get_or_init(|| FileCounters::new(series_grace()))
}

/// Where a path stands at a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Tracked by an input, and open by a tailer or present on disk.
    Live,
    /// Tracked by an input, but closed and no longer on disk.
    Gone,
    /// Tracked by no running input (removed on reload, or forgotten).
    Untracked,
}

/// One path's counters as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCount {
    /// The path events carry.
    pub path: PathBuf,
    /// Lines read at that path since the agent started.
    pub lines: u64,
    /// Bytes read at that path since the agent started.
    pub bytes: u64,
}

#[derive(Debug)]
struct PathEntry {
    lines: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    /// Since when the path has been gone or untracked; None while live.
    gone_since: Option<Instant>,
}

impl PathEntry {
    /// No file state holds the counters any more: nothing can add to them.
    fn unreferenced(&self) -> bool {
        Arc::strong_count(&self.lines) == 1 && Arc::strong_count(&self.bytes) == 1
    }

    /// Whether it is past its grace.
    fn expired(&self, now: Instant, grace: Duration) -> bool {
        self.gone_since
            .is_some_and(|t| now.saturating_duration_since(t) >= grace)
    }
}

#[derive(Debug, Default)]
struct Table {
    paths: HashMap<PathBuf, PathEntry>,
    /// Size after the last clean-up; the next runs when the table has doubled.
    cleaned_at: usize,
}

impl Table {
    /// Forgets the paths nothing can count into any more, once past their grace.
    fn clean(&mut self, now: Instant, grace: Duration) {
        self.paths.retain(|_, e| {
            if !e.unreferenced() {
                return true;
            }
            e.gone_since.get_or_insert(now);
            !e.expired(now, grace)
        });
        self.cleaned_at = self.paths.len();
    }
}

/// Lines and bytes read per path (the path events carry), for the life of the process: every
/// file state of that path adds into the same two atomics, whichever input or reload created
/// it, so the per-path counters never go backwards. A path closed and gone from disk is
/// dropped from the reports after the grace; one tracked by no input at once.
#[derive(Debug)]
pub struct FileCounters {
    grace: Duration,
    table: Mutex<Table>,
}

impl FileCounters {
    /// An empty table whose series are dropped `grace` after their file is gone.
    pub fn new(grace: Duration) -> FileCounters {
        FileCounters {
            grace,
            table: Mutex::new(Table::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The (lines, bytes) counters of `path`, created at 0 the first time (or once dropped).
    /// Taken once per file state, never per line.
    pub fn handles(&self, path: &Path) -> (Arc<AtomicU64>, Arc<AtomicU64>) {
        let mut t = self.lock();
        if t.paths.len() >= (2 * t.cleaned_at).max(64) {
            t.clean(Instant::now(), self.grace);
        }
        let e = t
            .paths
            .entry(path.to_path_buf())
            .or_insert_with(|| PathEntry {
                lines: Arc::new(AtomicU64::new(0)),
                bytes: Arc::new(AtomicU64::new(0)),
                gone_since: None,
            });
        e.gone_since = None;
        (e.lines.clone(), e.bytes.clone())
    }

    /// The series to report now, by path; `presence` says how each path stands (it is called
    /// with the table locked, so it must not block). Gone paths stay for the grace.
    pub fn report(&self, presence: impl Fn(&Path) -> Presence) -> Vec<PathCount> {
        let now = Instant::now();
        let mut t = self.lock();
        let mut out = Vec::new();
        for (path, e) in t.paths.iter_mut() {
            let shown = match presence(path) {
                Presence::Live => {
                    e.gone_since = None;
                    true
                }
                Presence::Gone => {
                    e.gone_since.get_or_insert(now);
                    !e.expired(now, self.grace)
                }
                Presence::Untracked => {
                    e.gone_since.get_or_insert(now);
                    false
                }
            };
            if shown {
                out.push(PathCount {
                    path: path.clone(),
                    lines: get(&e.lines),
                    bytes: get(&e.bytes),
                });
            }
        }
        t.clean(now, self.grace);
        out
    }
}

/// One counter of the processing pipeline, labelled by input, stage and what it counts
/// (`failed` parses, `dropped` by a filter, `cut` multiline events).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageKey {
    /// The input's id.
    pub input: String,
    /// The stage: `<index>:<type>` for processors (`2:parse_json`), `multiline`, `framing`.
    pub stage: String,
    /// What is counted.
    pub what: &'static str,
}

/// Process-wide pipeline counters; like file counters they survive reloads.
pub fn stage_counter(input: &str, stage: &str, what: &'static str) -> Arc<AtomicU64> {
    let key = StageKey {
        input: input.to_string(),
        stage: stage.to_string(),
        what,
    };
    let mut m = stages().lock().unwrap_or_else(|p| p.into_inner());
    m.entry(key).or_default().clone()
}

/// A snapshot of every pipeline counter, sorted.
pub fn stage_counters() -> Vec<(StageKey, u64)> {
    let m = stages().lock().unwrap_or_else(|p| p.into_inner());
    let mut v: Vec<(StageKey, u64)> = (m.iter())
        .map(|(k, c)| (k.clone(), c.load(Ordering::Relaxed)))
        .collect();
    v.sort();
    v
}

type StageMap = Mutex<HashMap<StageKey, Arc<AtomicU64>>>;

fn stages() -> &'static StageMap {
    static STAGES: OnceLock<StageMap> = OnceLock::new();
    STAGES.get_or_init(Default::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[PathCount]) -> Vec<&str> {
        let mut n: Vec<&str> = v.iter().filter_map(|c| c.path.to_str()).collect();
        n.sort();
        n
    }

    #[test]
    fn one_path_one_pair_of_counters_whatever_the_file_states() {
        let t = FileCounters::new(SERIES_GRACE);
        let (l1, b1) = t.handles(Path::new("/x/a.log"));
        add(&l1, 1000);
        add(&b1, 9000);
        drop((l1, b1));
        // A reload's new file state for the same path continues from there.
        let (l2, _b2) = t.handles(Path::new("/x/a.log"));
        add(&l2, 1);
        let r = t.report(|_| Presence::Live);
        assert_eq!(
            r,
            vec![PathCount {
                path: "/x/a.log".into(),
                lines: 1001,
                bytes: 9000
            }]
        );
    }

    #[test]
    fn gone_paths_stay_for_the_grace_untracked_ones_are_hidden_at_once() {
        let t = FileCounters::new(Duration::from_secs(3600));
        let _held: Vec<_> = ["/x/live", "/x/gone", "/x/untracked"]
            .iter()
            .map(|p| t.handles(Path::new(p)))
            .collect();
        let presence = |p: &Path| match p.to_str() {
            Some("/x/live") => Presence::Live,
            Some("/x/gone") => Presence::Gone,
            _ => Presence::Untracked,
        };
        assert_eq!(names(&t.report(presence)), ["/x/gone", "/x/live"]);
        // Still referenced: kept (a file state may count into it again).
        assert_eq!(t.lock().paths.len(), 3);
    }

    #[test]
    fn gone_paths_are_dropped_after_the_grace_and_forgotten_once_unreferenced() {
        let t = FileCounters::new(Duration::ZERO);
        let held = t.handles(Path::new("/x/gone"));
        add(&held.0, 5);
        let _live = t.handles(Path::new("/x/live"));
        let presence = |p: &Path| {
            if p == Path::new("/x/live") {
                Presence::Live
            } else {
                Presence::Gone
            }
        };
        assert_eq!(names(&t.report(presence)), ["/x/live"]);
        assert_eq!(t.lock().paths.len(), 2, "still referenced");
        // Back on disk before its state was dropped: shown again, not reset.
        let r = t.report(|_| Presence::Live);
        assert_eq!(
            r.iter()
                .find(|c| c.path == Path::new("/x/gone"))
                .map(|c| c.lines),
            Some(5)
        );
        drop(held);
        t.report(presence);
        assert_eq!(names(&t.report(|_| Presence::Live)), ["/x/live"]);
    }

    #[test]
    fn unreferenced_paths_are_forgotten_without_reports() {
        let t = FileCounters::new(Duration::ZERO);
        for i in 0..1000 {
            let _ = t.handles(Path::new(&format!("/x/{i}.log")));
        }
        assert!(t.lock().paths.len() < 200, "{}", t.lock().paths.len());
    }
}
