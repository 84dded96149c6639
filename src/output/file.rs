//! File sink: appends to a file, recreating it (and its directory) when it vanishes.

use super::{Fault, Sink};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::warn;

/// How often the sink checks that its path still names the file it writes.
const PATH_CHECK: Duration = Duration::from_secs(1);

/// Appends events to a file.
pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
    ino: u64,
    checked: Instant,
}

/// Opens for appending. At start-up (`end_partial`) a partial last line left by a crash is
/// ended; when reopening after a failed write it is our own half-written event, which the
/// retry completes.
fn open_append(path: &Path, end_partial: bool) -> io::Result<(File, u64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create output directory {}: {e}", dir.display()),
            )
        })?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open output file {}: {e}", path.display()),
            )
        })?;
    let meta = f.metadata()?;
    // A crash may have left half an event; end it so the next one starts on its own line.
    if end_partial && meta.len() > 0 {
        let mut last = [0u8; 1];
        f.read_exact_at(&mut last, meta.len() - 1)?;
        if last[0] != b'\n' {
            warn!(path = %path.display(), "output file ended with a partial line (earlier crash?); ending it with a newline");
            f.write_all(b"\n")?;
        }
    }
    Ok((f, meta.ino()))
}

impl FileSink {
    /// Opens (creating parents) the output file for appending.
    pub fn open(path: &Path) -> io::Result<FileSink> {
        let (f, ino) = open_append(path, true)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file: Some(f),
            ino,
            checked: Instant::now(),
        })
    }

    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_some() && self.checked.elapsed() >= PATH_CHECK {
            self.checked = Instant::now();
            // Writes to a removed file succeed but reach nobody: follow the path instead.
            let same = std::fs::metadata(&self.path)
                .map(|m| m.ino() == self.ino)
                .unwrap_or(false);
            if !same {
                warn!(path = %self.path.display(), "output file was removed or replaced; recreating it");
                self.file = None;
            }
        }
        if self.file.is_none() {
            let (f, ino) = open_append(&self.path, false)?;
            self.file = Some(f);
            self.ino = ino;
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("output file not open"))
    }
}

impl Sink for FileSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.file()?.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }

    fn on_error(&mut self, _e: &io::Error) -> Fault {
        // Reopen on the next attempt: the directory or file may have been removed.
        self.file = None;
        Fault::Retry
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
