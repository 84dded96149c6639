//! Output stage: encodes batches, writes and flushes them, then acknowledges their offsets.

pub mod encode;
pub mod file;
pub mod stdout;

use crate::config::{OutputConfig, OutputType};
use crate::event::{Batch, FileState};
use crate::runtime::{BufferPool, Stop};
use crate::stats::{self, Stats};
use crossbeam_channel::Receiver;
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

/// How the agent steers the output thread.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    /// Shutdown has begun (a failing write is not retried any more), or the output failed
    /// for good and set it itself (the agent then shuts down).
    pub stop: Stop,
    /// Every tailer has handed on its last batch: write what is queued, then return. The
    /// output does not wait for the channel to disconnect, so that its end does not hang on
    /// which thread happens to drop the last sender.
    pub end_of_input: Stop,
    /// Set when `run` returns or panics: from then on nothing drains the channel, so
    /// nobody should wait for tailers to hand on their batches.
    pub ended: Stop,
}

/// Sets `ended` however `run` leaves, a panic included, and `stop` on a panic.
struct Ended(Stop, Stop);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.trigger();
        if std::thread::panicking() {
            // A bug, not bad input: stop the agent (exit 1, the panic in its log) rather
            // than keep reading with nothing delivering, silently.
            error!(
                "output thread panicked; shutting down (what it had not written is read again at the next start)"
            );
            self.1.trigger();
        }
    }
}

/// What the output thread owns.
pub struct Output {
    /// Batches from the tailers.
    pub rx: Receiver<Batch>,
    /// Where events go.
    pub sink: Box<dyn Sink>,
    /// How batches become bytes.
    pub encoder: encode::Encoder,
    /// Where batch buffers go back once encoded.
    pub pool: BufferPool,
    /// Counters.
    pub stats: Arc<Stats>,
}

/// What the channel gave.
enum Next {
    Batch(Batch),
    /// Nothing for a while.
    Idle,
    /// The input has ended and nothing is queued.
    End,
}

/// The next batch, waiting at most `idle`; `End` once `end_of_input` is set and the
/// channel is empty (or every sender is gone).
fn next(rx: &Receiver<Batch>, end_of_input: &Stop, idle: Duration) -> Next {
    crossbeam_channel::select! {
        recv(rx) -> b => b.map_or(Next::End, Next::Batch),
        // No batch arrives after the end of input: what is queued is all there is.
        recv(end_of_input.receiver()) -> _ => rx.try_recv().map_or(Next::End, Next::Batch),
        default(idle) => Next::Idle,
    }
}

/// Runs the output stage until the end of input (or until the sink fails for good).
pub fn run(o: Output, ctl: Controls) -> Result<(), OutputFailed> {
    let _ended = Ended(ctl.ended.clone(), ctl.stop.clone());
    let Output {
        rx,
        mut sink,
        mut encoder,
        pool,
        stats,
    } = o;
    let mut out = Vec::with_capacity(FLUSH_BYTES + pool.chunk * 2);
    let mut pending: Vec<Pending> = Vec::new();
    let mut trimmed = false;
    loop {
        let first = match next(&rx, &ctl.end_of_input, IDLE_TRIM) {
            Next::Batch(b) => b,
            Next::Idle => {
                if !trimmed {
                    // Quiet: give memory back; it is allocated again when lines arrive.
                    pool.trim();
                    out = Vec::new();
                    release_free_memory();
                    trimmed = true;
                }
                continue;
            }
            Next::End => break,
        };
        trimmed = false;
        let mut queued = Some(first);
        while let Some(batch) = queued.take() {
            encoder.encode(&batch, &mut out);
            pending.push(Pending {
                file: batch.file,
                ticket: batch.ticket,
                lines: batch.events.as_ref().map_or(batch.lines.len(), Vec::len) as u64,
            });
            give_back(&pool, batch.buf);
            if out.len() < FLUSH_BYTES {
                queued = rx.try_recv().ok();
            }
        }
        if let Err(e) = write_out(sink.as_mut(), &out, &ctl.stop, &stats) {
            let failed = OutputFailed {
                sink: sink.describe(),
                error: e,
            };
            ctl.stop.trigger();
            discard_until_end(&rx, &ctl.end_of_input, &pool);
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

/// After a fatal failure: keeps the tailers unblocked until the end of input; nothing more
/// is acknowledged.
fn discard_until_end(rx: &Receiver<Batch>, end_of_input: &Stop, pool: &BufferPool) {
    loop {
        match next(rx, end_of_input, IDLE_TRIM) {
            Next::Batch(b) => give_back(pool, b.buf),
            Next::Idle => {}
            Next::End => return,
        }
    }
}

/// Returns a batch's read buffer to the pool. Batches of events carry none (an empty
/// vector): their tailer gave the buffer back as soon as the events owned their text.
fn give_back(pool: &BufferPool, buf: Vec<u8>) {
    if buf.capacity() > 0 {
        pool.give(buf);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EventFormat;
    use crate::event::{FileState, Line, Progress};
    use crate::identity::{FileKey, Fingerprint};
    use crossbeam_channel::Sender;
    use std::path::Path;
    use std::sync::Mutex;

    /// A sink that keeps what it is given, or fails every write.
    struct Memory(Arc<Mutex<Vec<u8>>>, Option<io::ErrorKind>);

    impl Sink for Memory {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            match self.1 {
                Some(k) => Err(k.into()),
                None => {
                    self.0.lock().unwrap().extend_from_slice(data);
                    Ok(data.len())
                }
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn on_error(&mut self, _: &io::Error) -> Fault {
            Fault::Fatal
        }
        fn describe(&self) -> String {
            "memory".into()
        }
    }

    fn batch(st: &Arc<FileState>, text: &str) -> Batch {
        let offset = st.progress().read_offset;
        let end = offset + text.len() as u64 + 1;
        let ticket = st.read_up_to(end, 0);
        Batch {
            file: st.clone(),
            ticket,
            buf: format!("{text}\n").into_bytes(),
            base_offset: offset,
            lines: vec![Line {
                start: 0,
                end: text.len() as u32,
            }],
            events: None,
            source: "file0".into(),
            end_offset: end,
            marker: 0,
            read_time: std::time::SystemTime::now(),
        }
    }

    fn output(fail: Option<io::ErrorKind>) -> (Output, Sender<Batch>, Arc<Mutex<Vec<u8>>>) {
        let (tx, rx) = crossbeam_channel::bounded(8);
        let written = Arc::new(Mutex::new(Vec::new()));
        let o = Output {
            rx,
            sink: Box::new(Memory(written.clone(), fail)),
            encoder: encode::Encoder::new(EventFormat::Text, "h"),
            pool: BufferPool::new(2, 64),
            stats: Arc::new(Stats::default()),
        };
        (o, tx, written)
    }

    fn state() -> Arc<FileState> {
        let p = Path::new("/o/a.log");
        let progress = Progress::starting_at(Fingerprint::default(), 0, 0, p);
        Arc::new(FileState::new(FileKey { dev: 1, ino: 3 }, p, progress))
    }

    #[test]
    fn end_of_input_writes_what_is_queued_and_returns_while_senders_live() {
        let (o, tx, written) = output(None);
        let st = state();
        tx.send(batch(&st, "a")).unwrap();
        tx.send(batch(&st, "b")).unwrap();
        let ctl = Controls::default();
        ctl.end_of_input.trigger();
        // `tx` stays connected: the end of input alone ends the output.
        run(o, ctl.clone()).unwrap();
        assert!(ctl.ended.is_set());
        assert_eq!(*written.lock().unwrap(), b"a\nb\n");
        let p = st.progress();
        assert_eq!((p.acked_offset, p.read_offset), (4, 4));
        drop(tx);
    }

    #[test]
    fn a_failed_output_discards_until_the_end_of_input() {
        let (o, tx, written) = output(Some(io::ErrorKind::BrokenPipe));
        let st = state();
        tx.send(batch(&st, "a")).unwrap();
        let ctl = Controls::default();
        let thread = {
            let ctl = ctl.clone();
            std::thread::spawn(move || run(o, ctl))
        };
        // The failure sets stop; batches sent after it are taken and dropped.
        ctl.stop.receiver().recv().unwrap_err();
        tx.send(batch(&st, "b")).unwrap();
        ctl.end_of_input.trigger();
        let failed = thread.join().unwrap().unwrap_err();
        assert_eq!(failed.error.kind(), io::ErrorKind::BrokenPipe);
        assert!(written.lock().unwrap().is_empty());
        assert_eq!(st.progress().acked_offset, 0);
        drop(tx);
    }
}
