//! Process-wide counters and health flags: the agent's own view of its pipeline, read by the
//! stats log line, the metrics endpoint and the health check.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

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
