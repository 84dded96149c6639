//! Compressed rotated files (`.gz`): immutable, so they are read once, from their checkpointed
//! offset in the decompressed stream, and closed. Their fingerprint is that of the
//! decompressed head, which is how a compressed generation of a file already read as plain
//! text is recognised and not read twice.

use super::reader::Reader;
use super::{TailResources, TailSettings};
use crate::event::FileState;
use crate::identity::{FINGERPRINT_BYTES, MARKER_BYTES, fnv1a};
use crate::stats;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use tracing::{debug, info, warn};

/// Whether a path names a gzip file.
pub fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Reads a shared `File` from its start without moving its offset.
struct At<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn decoder(file: &File) -> MultiGzDecoder<BufReader<At<'_>>> {
    MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, At { file, pos: 0 }))
}

/// The first decompressed bytes (up to FINGERPRINT_BYTES).
pub fn decompressed_head(file: &File) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(FINGERPRINT_BYTES);
    decoder(file)
        .take(FINGERPRINT_BYTES as u64)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// Hash of the (at most MARKER_BYTES) decompressed bytes before `offset`, as for plain files;
/// None if the stream ends cleanly before `offset`, an error if it cannot be decoded that far.
pub fn marker_at(file: &File, offset: u64) -> io::Result<Option<u64>> {
    let mut dec = decoder(file);
    Ok(skip_to(&mut dec, offset)?.map(|before| fnv1a(&before)))
}

/// Moves a decoder to decompressed `offset`; returns the bytes just before it, or None if the
/// stream ends (cleanly) before `offset`.
fn skip_to(dec: &mut impl Read, offset: u64) -> io::Result<Option<Vec<u8>>> {
    let keep = offset.min(MARKER_BYTES as u64);
    let skipped = io::copy(&mut dec.take(offset - keep), &mut io::sink())?;
    let mut before = Vec::with_capacity(keep as usize);
    dec.take(keep).read_to_end(&mut before)?;
    if skipped + before.len() as u64 != offset {
        return Ok(None);
    }
    Ok(Some(before))
}

/// Starts the thread that reads a compressed file from decompressed `offset` to its end.
pub fn spawn(
    pipeline: TailResources,
    params: Arc<TailSettings>,
    state: Arc<FileState>,
    file: File,
    offset: u64,
    settled: bool,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("gunzip".into())
        .stack_size(super::STACK_BYTES)
        .spawn(move || {
            stats::add(&pipeline.stats.files_open, 1);
            let end = read_all(&pipeline, &params, &state, &file, offset, settled);
            {
                let mut p = state.progress();
                p.read_offset = end.boundary;
                if p.acked_offset == p.read_offset {
                    // Nothing left to deliver (so no ack to come): the checkpoint's marker.
                    p.acked_marker = p.read_marker;
                }
                p.last_seen = crate::event::unix_now();
                if end.complete {
                    p.gzip_length = Some(end.boundary);
                    // A damaged archive may still grow (its writer was slow): no size to hold it to.
                    p.gzip_size = if end.damaged {
                        None
                    } else {
                        file.metadata().ok().map(|m| m.len())
                    };
                }
            }
            if end.complete {
                info!(path = %state.origin.display(), decompressed_bytes = end.boundary, "compressed file read");
            }
            pipeline.stats.files_open.fetch_sub(1, Ordering::Relaxed);
            state.active.store(false, Ordering::Release);
            pipeline.slots.release();
        })
}

struct End {
    boundary: u64,
    complete: bool,
    /// Given up on a decoding error rather than reaching the end of the stream.
    damaged: bool,
}

impl End {
    /// Stopped before the end (shutdown, or the archive still being written).
    fn unfinished(boundary: u64) -> End {
        End {
            boundary,
            complete: false,
            damaged: false,
        }
    }

    /// Read to the end, or as far as it could be decoded.
    fn finished(boundary: u64, damaged: bool) -> End {
        End {
            boundary,
            complete: true,
            damaged,
        }
    }
}

/// Moves the decoder to `offset`; returns the bytes before it (so that each boundary's marker
/// is right), or how reading ends right there.
fn seek(dec: &mut impl Read, offset: u64, settled: bool, path: &str) -> Result<Vec<u8>, End> {
    match skip_to(dec, offset) {
        Ok(Some(b)) => Ok(b),
        // Shorter than the offset (continuing a plain file that got lines after gzip read
        // it): nothing here that was not read. No marker to check it by later, so no size to
        // hold it to either: a member appended later is read from the offset, like damage.
        Ok(None) => Err(End::finished(offset, true)),
        Err(e) if settled => {
            warn!(%path, error = %e, "cannot decompress file; giving up on it");
            Err(End::finished(offset, true))
        }
        Err(_) => Err(End::unfinished(offset)),
    }
}

/// Reads to the end. Unless the archive has `settled` (kept its size for a few scans), a
/// decoding error means "still being written": stop, and a later scan continues.
fn read_all(
    pipeline: &TailResources,
    params: &TailSettings,
    state: &Arc<FileState>,
    file: &File,
    offset: u64,
    settled: bool,
) -> End {
    let path = state.origin.display().to_string();
    let mut dec = decoder(file);
    let before = match seek(&mut dec, offset, settled, &path) {
        Ok(b) => b,
        Err(end) => return end,
    };
    let marker = fnv1a(&before);
    state.progress().read_marker = marker;
    let mut r = Reader::new(params, &state.origin, offset, before, marker);
    let mut damaged = false;
    loop {
        if pipeline.stop.is_set() {
            return End::unfinished(r.resume_point().0);
        }
        let Some(buf) = pipeline.pool.take(&pipeline.stop) else {
            return End::unfinished(r.resume_point().0);
        };
        let (mut buf, have) = r.prepare(buf, pipeline.pool.chunk);
        let (n, eof) = match dec.read(&mut buf[have..]) {
            Ok(0) => (0, true),
            Ok(n) => (n, false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => (0, false),
            Err(e) if !settled => {
                // Probably still being written (gzip at work): the next scan resumes here.
                debug!(%path, error = %e, decompressed_offset = r.pos, "compressed file ends early; will look again");
                pipeline.pool.give(buf);
                return End::unfinished(r.resume_point().0);
            }
            Err(e) => {
                // A truncated or corrupt archive: deliver what came out, then stop for good.
                warn!(%path, error = %e, decompressed_offset = r.pos, "compressed file is damaged; delivering what could be read");
                damaged = true;
                (0, true)
            }
        };
        match r.take(buf, have, n, pipeline, state) {
            Ok(framed) => {
                if !r.send(framed, pipeline, state) {
                    return End::unfinished(r.resume_point().0);
                }
            }
            Err(buf) => pipeline.pool.give(buf),
        }
        if eof {
            // Nothing more can come: the last line needs no newline.
            if let Some(buf) = pipeline.pool.take(&pipeline.stop) {
                match r.flush_partial(buf) {
                    Ok(framed) => {
                        if !r.send(framed, pipeline, state) {
                            return End::unfinished(r.resume_point().0);
                        }
                    }
                    Err(buf) => pipeline.pool.give(buf),
                }
            }
            if r.boundary < r.pos || !r.flush_pending(true, pipeline, state) {
                // Stopped while waiting for a buffer: the rest is read next time.
                return End::unfinished(r.resume_point().0);
            }
            debug!(%path, "end of compressed file");
            return End::finished(r.boundary, damaged);
        }
    }
}
