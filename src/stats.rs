//! Process-wide counters: the agent's own view of its pipeline (logs, metrics, health).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by every thread; relaxed atomics, read for reporting only.
#[derive(Debug, Default)]
pub struct Stats {
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
    /// Files whose head changed under the same inode.
    pub rotations_fingerprint: AtomicU64,
    /// Checkpoint files written.
    pub checkpoint_writes: AtomicU64,
    /// Checkpoint writes that failed.
    pub checkpoint_errors: AtomicU64,
    /// Output writes that failed (each retry counts).
    pub output_errors: AtomicU64,
}

/// Adds to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Reads a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
