//! Standard output sink.

use super::{Fault, Sink};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;

/// Writes events to the process's stdout.
pub struct StdoutSink {
    out: File,
}

impl StdoutSink {
    /// A duplicate of fd 1: our own buffer already batches, so std's line buffering is skipped.
    pub fn new() -> io::Result<StdoutSink> {
        let fd = io::stdout().as_fd().try_clone_to_owned()?;
        Ok(StdoutSink {
            out: File::from(fd),
        })
    }
}

impl Sink for StdoutSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.out.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn on_error(&mut self, e: &io::Error) -> Fault {
        // A closed pipe never reopens (`logaggregator | head`).
        if e.kind() == io::ErrorKind::BrokenPipe {
            Fault::Fatal
        } else {
            Fault::Retry
        }
    }

    fn describe(&self) -> String {
        "stdout".into()
    }
}
