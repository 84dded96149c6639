//! Output stage: encodes batches, writes and flushes them, then acknowledges their offsets.

pub mod encode;
pub mod file;
pub mod stdout;

use crate::config::{EventFormat, OutputConfig, OutputType};
use crate::event::{Batch, BufferPool, FileState, Stop};
use crate::stats::{self, Stats};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, warn};

/// Encoded bytes gathered before one write: large enough to amortise syscalls.
const FLUSH_BYTES: usize = 256 * 1024;

/// After this long without batches the output frees its buffers and the pool's.
const IDLE_TRIM: Duration = Duration::from_secs(1);

/// What the output loop does after a failed write.
#[derive(Debug, PartialEq, Eq)]
pub enum Fault {
    /// Wait and try again (the sink has prepared itself, e.g. will reopen its file).
    Retry,
    /// Give up: the destination is gone for good.
    Fatal,
}

/// A destination for encoded events.
pub trait Sink: Send {
    /// Writes some of `data`, like `io::Write::write`.
    fn write(&mut self, data: &[u8]) -> io::Result<usize>;
    /// Pushes written bytes to the OS.
    fn flush(&mut self) -> io::Result<()>;
    /// Decides how to go on after an error.
    fn on_error(&mut self, e: &io::Error) -> Fault;
    /// Names the destination in messages.
    fn describe(&self) -> String;
}

/// Opens the configured sink.
pub fn open(cfg: &OutputConfig) -> io::Result<Box<dyn Sink>> {
    match cfg.kind {
        OutputType::Stdout => Ok(Box::new(stdout::StdoutSink::new()?)),
        OutputType::File => {
            let path = cfg
                .path
                .as_ref()
                .ok_or_else(|| io::Error::other("output.path is required for the file output"))?;
            Ok(Box::new(file::FileSink::open(path)?))
        }
    }
}

struct Pending {
    file: Arc<FileState>,
    ticket: crate::ack::Ticket,
    lines: u64,
}

/// Why the output stopped before its input ended.
#[derive(Debug)]
pub struct OutputFailed {
    /// The destination.
    pub sink: String,
    /// The last error.
    pub error: io::Error,
}

/// Runs the output stage until every tailer has hung up (or the sink fails for good).
pub fn run(
    rx: Receiver<Batch>,
    mut sink: Box<dyn Sink>,
    format: EventFormat,
    pool: BufferPool,
    stop: Stop,
    stats: Arc<Stats>,
) -> Result<(), OutputFailed> {
    let mut out = Vec::with_capacity(FLUSH_BYTES + pool.chunk * 2);
    let mut pending: Vec<Pending> = Vec::new();
    let mut trimmed = false;
    loop {
        let first = match rx.recv_timeout(IDLE_TRIM) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => {
                if !trimmed {
                    // Quiet: give memory back; it is allocated again when lines arrive.
                    pool.trim();
                    out = Vec::new();
                    release_free_memory();
                    trimmed = true;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        trimmed = false;
        let mut next = Some(first);
        while let Some(batch) = next.take() {
            encode::encode(&batch, format, &mut out);
            pending.push(Pending {
                file: batch.file,
                ticket: batch.ticket,
                lines: batch.lines.len() as u64,
            });
            pool.give(batch.buf);
            if out.len() < FLUSH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = write_out(sink.as_mut(), &out, &stop, &stats) {
            let failed = OutputFailed {
                sink: sink.describe(),
                error: e,
            };
            stop.trigger();
            // Keep the tailers unblocked until they hang up; nothing more is acknowledged.
            for b in rx.iter() {
                pool.give(b.buf);
            }
            return Err(failed);
        }
        out.clear();
        for p in pending.drain(..) {
            p.file.ack(p.ticket);
            stats::add(&stats.events_written, p.lines);
        }
    }
    Ok(())
}

/// Hands freed heap pages back to the OS (glibc keeps them otherwise).
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases unused memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn write_out(sink: &mut dyn Sink, data: &[u8], stop: &Stop, stats: &Stats) -> io::Result<()> {
    let mut written = 0;
    let mut backoff = Duration::from_millis(100);
    loop {
        let res = if written < data.len() {
            sink.write(&data[written..]).and_then(|n| match n {
                0 => Err(io::Error::new(io::ErrorKind::WriteZero, "wrote nothing")),
                n => Ok(n),
            })
        } else {
            match sink.flush() {
                Ok(()) => {
                    stats.output_ok();
                    return Ok(());
                }
                Err(e) => Err(e),
            }
        };
        match res {
            Ok(n) => {
                written += n;
                backoff = Duration::from_millis(100);
                stats.output_ok();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                stats::add(&stats.output_errors, 1);
                stats.output_failed(format!("{}: {e}", sink.describe()));
                if sink.on_error(&e) == Fault::Fatal {
                    return Err(e);
                }
                if stop.is_set() {
                    error!(output = %sink.describe(), error = %e, unwritten_bytes = data.len() - written,
                        "output still failing at shutdown; unwritten lines stay unacknowledged and are read again on restart");
                    return Err(e);
                }
                warn!(output = %sink.describe(), error = %e, retry_in = ?backoff, "output write failed; retrying");
                let _ = stop.receiver().recv_timeout(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
