//! The types that cross threads: per-file shared state and the batches of lines.

use crate::identity::{FileKey, Fingerprint};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Where reading and delivery stand for one file identity.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Bumped when the file is found truncated or rewritten; acks of older generations are void.
    pub generation: u32,
    /// Fingerprint of the current generation's head.
    pub fingerprint: Fingerprint,
    /// Bytes consumed by the tailer and handed to the channel.
    pub read_offset: u64,
    /// Hash of the bytes just before `read_offset`.
    pub read_marker: u64,
    /// Bytes whose lines the output has written and flushed.
    pub acked_offset: u64,
    /// Hash of the bytes just before `acked_offset` (see identity::marker_at).
    pub acked_marker: u64,
    /// Path at which the file was last seen (follows renames seen by discovery).
    pub path: PathBuf,
    /// Unix seconds when the file was last seen on disk or read.
    pub last_seen: u64,
    /// Where this identity is used up: a compressed file's decompressed length once read to
    /// its end, or a plain file's end once its archive continues it. Named as on disk.
    pub gzip_length: Option<u64>,
    /// Compressed files read cleanly to the end: their compressed size, which an archive
    /// never changes, so another size at the same inode is another archive. Named as on disk.
    pub gzip_size: Option<u64>,
    /// Its path no longer leads to it (rotated away or deleted): not the live file, only
    /// drained. A file gone while the agent was stopped is warned about unless this is set.
    pub rotated_away: bool,
    /// Batches read and not yet delivered by every output: what `acked_offset` waits for.
    pub in_flight: crate::ack::Tracker,
}

impl Progress {
    /// A file first seen now, to be read from `offset` (whose preceding bytes hash to `marker`).
    pub fn starting_at(
        fingerprint: Fingerprint,
        offset: u64,
        marker: u64,
        path: &Path,
    ) -> Progress {
        Progress {
            generation: 0,
            fingerprint,
            read_offset: offset,
            read_marker: marker,
            acked_offset: offset,
            acked_marker: marker,
            path: path.to_path_buf(),
            last_seen: unix_now(),
            gzip_length: None,
            gzip_size: None,
            rotated_away: false,
            in_flight: crate::ack::Tracker::default(),
        }
    }

    /// What was read of the file, to recognise it by (see identity::holds).
    pub fn recorded(&self) -> crate::identity::Recorded {
        crate::identity::Recorded {
            fingerprint: self.fingerprint,
            offset: self.read_offset,
            marker: self.read_marker,
        }
    }

    /// Whether a compressed file has been read and delivered to its end.
    pub fn is_complete(&self) -> bool {
        self.gzip_length.is_some_and(|t| self.acked_offset >= t)
    }
}

/// Shared state of one file identity: discovery, tailer, output and checkpoint all see it.
/// Only what the pipeline needs to know about the file lives here; how its events are
/// encoded is the output's business (see `output::encode::Encoder`).
#[derive(Debug)]
pub struct FileState {
    // What the file is (fixed for its life).
    /// (device, inode).
    pub key: FileKey,
    /// Path as first matched; events carry it.
    pub origin: PathBuf,
    // Lifecycle.
    /// True while a tailer thread owns the file.
    pub active: AtomicBool,
    // Counters (metrics).
    /// Lines read at `origin` (metrics): shared with every file state of that path, for the
    /// life of the process (see stats::FileCounters), so reloads do not reset it.
    pub lines_read: Arc<AtomicU64>,
    /// Bytes read at `origin` (metrics), shared likewise.
    pub bytes_read: Arc<AtomicU64>,
    /// File size last seen by its tailer or discovery (lag = size - acknowledged offset).
    pub size: AtomicU64,
    // Reading and delivery.
    progress: Mutex<Progress>,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl FileState {
    /// New state for a file identity.
    pub fn new(key: FileKey, origin: &Path, progress: Progress) -> FileState {
        let (lines_read, bytes_read) = crate::stats::file_counters().handles(origin);
        FileState {
            key,
            origin: origin.to_path_buf(),
            active: AtomicBool::new(false),
            lines_read,
            bytes_read,
            size: AtomicU64::new(progress.acked_offset),
            progress: Mutex::new(progress),
        }
    }

    /// Locks the progress (a poisoned lock still holds valid offsets).
    pub fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers a batch read up to `end_offset` (before which the bytes hash to `marker`) for
    /// its outputs, and records it as read.
    pub fn read_up_to(&self, end_offset: u64, marker: u64) -> crate::ack::Ticket {
        let mut p = self.progress();
        p.read_offset = end_offset;
        p.read_marker = marker;
        let generation = p.generation;
        p.in_flight.register(generation, end_offset, marker, 1)
    }

    /// Records that an output wrote and flushed a batch: the acknowledged offset moves across
    /// every batch before it that all outputs delivered too (see `ack`).
    pub fn ack(&self, ticket: crate::ack::Ticket) {
        let mut p = self.progress();
        if p.generation != ticket.generation {
            return;
        }
        if let Some((offset, marker)) = p.in_flight.complete(ticket)
            && offset >= p.acked_offset
        {
            p.acked_offset = offset;
            p.acked_marker = marker;
        }
    }

    /// Whether a tailer owns the file.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }
}

/// All file identities of one input, keyed by (device, inode).
#[derive(Debug, Default)]
pub struct Registry {
    files: Mutex<HashMap<FileKey, Arc<FileState>>>,
}

impl Registry {
    /// Locks the map.
    pub fn lock(&self) -> MutexGuard<'_, HashMap<FileKey, Arc<FileState>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A snapshot of every tracked file.
    pub fn all(&self) -> Vec<Arc<FileState>> {
        self.lock().values().cloned().collect()
    }
}

/// One line inside a batch's buffer: `buf[start..end]`, without its newline.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    /// First byte, relative to the buffer.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

/// Lines read from one file in one go, travelling to the output as one channel message.
#[derive(Debug)]
pub struct Batch {
    /// The file they came from.
    pub file: Arc<FileState>,
    /// Which batch of which generation of the file: what its outputs acknowledge.
    pub ticket: crate::ack::Ticket,
    /// File bytes starting at `base_offset`.
    pub buf: Vec<u8>,
    /// File offset of `buf[0]`.
    pub base_offset: u64,
    /// The lines, as ranges of `buf`.
    pub lines: Vec<Line>,
    /// The events the input's pipeline made of the lines, when it has one (then these are
    /// what the outputs write, and `lines` only what was read).
    pub events: Option<Vec<crate::record::Event>>,
    /// The input's id.
    pub source: Arc<str>,
    /// Everything before this offset is consumed once the batch is written.
    pub end_offset: u64,
    /// Hash of the bytes just before `end_offset`.
    pub marker: u64,
    /// When the bytes were read (the events' timestamp).
    pub read_time: SystemTime,
}

impl Batch {
    /// The bytes of a line.
    pub fn line(&self, l: &Line) -> &[u8] {
        &self.buf[l.start as usize..l.end as usize]
    }

    /// File offset of a line's first byte.
    pub fn offset_of(&self, l: &Line) -> u64 {
        self.base_offset + u64::from(l.start)
    }
}
