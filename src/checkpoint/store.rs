//! One input's checkpoint directory: its advisory lock (one agent per directory) and the
//! checkpoint file, written atomically (temp file, fsync, rename, fsync of the directory).

use super::format::{Document, Entry, Versioned};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use tracing::warn;

/// Name of the checkpoint file inside the checkpoint directory.
pub const FILE_NAME: &str = "checkpoints.json";
/// Name of the lock file inside the checkpoint directory.
pub const LOCK_NAME: &str = "lock";

/// A checkpoint problem at start-up (exit 2).
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One input's checkpoint directory, locked for this process.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    path: PathBuf,
    _lock: File,
    /// The bytes last written: an identical write is skipped.
    last: Option<Vec<u8>>,
    unclean: bool,
}

/// Reads the checkpoint file in `dir`; a missing one is empty.
pub fn read(dir: &Path) -> Result<Vec<Entry>, String> {
    read_doc(dir).map(|d| d.files)
}

fn read_doc(dir: &Path) -> Result<Document, String> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Document {
                running: false,
                files: Vec::new(),
            });
        }
        Err(e) => {
            return Err(format!(
                "cannot read checkpoint file {}: {e}",
                path.display()
            ));
        }
    };
    match Versioned::parse(&bytes) {
        Ok(doc) => Ok(doc.into_current()),
        Err(e) if e.starts_with("has version") => {
            Err(format!("checkpoint file {} {e}", path.display()))
        }
        Err(e) => Err(format!(
            "checkpoint file {} is corrupt: {e}",
            path.display()
        )),
    }
}

/// Opens (creating it) and locks `dir`'s lock file, and writes our PID into it for the
/// messages of a second agent and for `status`.
fn lock(dir: &Path) -> Result<File, StoreError> {
    let lock_path = dir.join(LOCK_NAME);
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| {
            StoreError(format!(
                "cannot open checkpoint lock {}: {e}",
                lock_path.display()
            ))
        })?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = lock.read_to_string(&mut pid);
            return Err(StoreError(format!(
                "checkpoint directory {} is in use by another logaggregator (PID {}, holding lock {}); one agent per checkpoint directory",
                dir.display(),
                pid.trim(),
                lock_path.display()
            )));
        }
        Err(TryLockError::Error(e)) => {
            return Err(StoreError(format!(
                "cannot lock checkpoint lock {}: {e}",
                lock_path.display()
            )));
        }
    }
    let write_pid = |lock: &mut File| -> io::Result<()> {
        lock.set_len(0)?;
        lock.rewind()?;
        write!(lock, "{}", std::process::id())
    };
    write_pid(&mut lock).map_err(|e| {
        StoreError(format!(
            "cannot write checkpoint lock {}: {e}",
            lock_path.display()
        ))
    })?;
    Ok(lock)
}

/// The document in `dir`; a corrupt or unreadable one is set aside (renamed, for a look
/// later) and taken as empty: a damaged checkpoint costs lines delivered again, not a
/// stopped agent.
fn load_or_set_aside(dir: &Path, path: &Path) -> Document {
    match read_doc(dir) {
        Ok(d) => d,
        Err(msg) => {
            let aside = dir.join(format!("{FILE_NAME}.corrupt-{}", crate::event::unix_now()));
            match std::fs::rename(path, &aside) {
                Ok(()) => warn!(checkpoint = %path.display(), set_aside = %aside.display(),
                    "{msg}; set aside, starting as if there were no checkpoint"),
                Err(e) => warn!(checkpoint = %path.display(), error = %e,
                    "{msg}; could not set it aside, starting as if there were no checkpoint"),
            }
            Document {
                running: false,
                files: Vec::new(),
            }
        }
    }
}

impl Store {
    /// Creates and locks the directory, loads the checkpoint (setting a bad one aside) and
    /// proves the directory writable by writing it back.
    pub fn open(dir: &Path) -> Result<(Store, Vec<Entry>), StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError(format!(
                "cannot create checkpoint directory {}: {e}",
                dir.display()
            ))
        })?;
        let lock = lock(dir)?;
        let path = dir.join(FILE_NAME);
        let doc = load_or_set_aside(dir, &path);
        let mut store = Store {
            dir: dir.to_path_buf(),
            path,
            _lock: lock,
            last: None,
            unclean: doc.running,
        };
        store.write(&doc.files).map_err(|e| {
            StoreError(format!(
                "cannot write checkpoint file {}: {e}",
                store.path.display()
            ))
        })?;
        Ok((store, doc.files))
    }

    /// The checkpoint file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the checkpoint found at start was left by a run that did not stop cleanly.
    pub fn found_unclean(&self) -> bool {
        self.unclean
    }

    /// Writes the entries atomically unless they equal the last ones written; true if written.
    pub fn write(&mut self, entries: &[Entry]) -> io::Result<bool> {
        self.write_doc(entries, true)
    }

    /// The last write of a clean stop.
    pub fn write_final(&mut self, entries: &[Entry]) -> io::Result<bool> {
        self.write_doc(entries, false)
    }

    fn write_doc(&mut self, entries: &[Entry], running: bool) -> io::Result<bool> {
        let doc = Versioned::V1(Document {
            running,
            files: entries.to_vec(),
        });
        let bytes = doc.to_bytes().map_err(io::Error::other)?;
        if self.last.as_ref() == Some(&bytes) {
            return Ok(false);
        }
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        // The rename is durable only once the directory itself is synced.
        File::open(&self.dir)?.sync_all()?;
        self.last = Some(bytes);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::format::tests::entry;

    #[test]
    fn round_trip_and_no_temp_left() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, loaded) = Store::open(dir.path()).unwrap();
        assert!(loaded.is_empty());
        let entries = vec![entry(1, 10), entry(2, 20)];
        assert!(s.write(&entries).unwrap());
        assert!(!s.write(&entries).unwrap());
        drop(s);
        let (_s, loaded) = Store::open(dir.path()).unwrap();
        assert_eq!(loaded, entries);
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.contains("\"version\": 1"));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.starts_with(".tmp")), "{names:?}");
    }

    #[test]
    fn fields_of_a_newer_agent_are_ignored_and_running_flag_read() {
        let dir = tempfile::tempdir().unwrap();
        let e = entry(7, 70);
        let mut v = serde_json::to_value(&e).unwrap();
        v["added_later"] = serde_json::json!({"x": 1});
        let doc = serde_json::json!({"version": 1, "running": true, "files": [v], "also_new": 2});
        std::fs::write(dir.path().join(FILE_NAME), doc.to_string()).unwrap();
        let (mut s, loaded) = Store::open(dir.path()).unwrap();
        assert_eq!(loaded, vec![e.clone()]);
        assert!(s.found_unclean());
        s.write_final(&loaded).unwrap();
        drop(s);
        let (s, _) = Store::open(dir.path()).unwrap();
        assert!(!s.found_unclean());
    }

    #[test]
    fn second_store_is_refused_with_pid() {
        let dir = tempfile::tempdir().unwrap();
        let (_s, _) = Store::open(dir.path()).unwrap();
        let e = Store::open(dir.path()).unwrap_err().0;
        assert!(
            e.contains(&std::process::id().to_string()) && e.contains("lock"),
            "{e}"
        );
    }

    #[test]
    fn corrupt_file_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"\0\0garbage").unwrap();
        let (_s, loaded) = Store::open(dir.path()).unwrap();
        assert!(loaded.is_empty());
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".corrupt-")
            })
            .count();
        assert_eq!(aside, 1);
    }
}
