//! Checkpoint store: acknowledged offsets per file identity, persisted atomically
//! (temp file, fsync, rename, fsync of the directory), guarded by an advisory lock.

use crate::event::{FileState, Progress, Registry};
use crate::identity::{FileKey, Fingerprint};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::warn;

/// Name of the checkpoint file inside the checkpoint directory.
pub const FILE_NAME: &str = "checkpoints.json";
/// Name of the lock file inside the checkpoint directory.
pub const LOCK_NAME: &str = "lock";
/// Format version written by this agent.
pub const VERSION: u32 = 1;

/// One file's persisted position. Unknown fields are ignored, so that a checkpoint written by a
/// newer agent still loads (offsets kept) after a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Bytes covered by the fingerprint.
    pub fingerprint_len: u32,
    /// Fingerprint hash, hex.
    pub fingerprint: String,
    /// Bytes whose lines were written and flushed by the output.
    pub offset: u64,
    /// Hash of the bytes just before `offset`, hex.
    pub marker: String,
    /// Path where the file was last seen.
    pub path: PathBuf,
    /// Unix seconds when it was last seen.
    pub last_seen: u64,
    /// Compressed files read to the end: their decompressed length (offsets count
    /// decompressed bytes for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip_length: Option<u64>,
    /// Compressed files read cleanly to the end: their compressed size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip_size: Option<u64>,
    /// Size last seen (a hint: how much was unread if the file is gone at the next start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Rotated away or deleted (only drained, not the live file at its path).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rotated: bool,
}

/// The checkpoint file, one variant per format version (`"version"` on disk). A new format
/// is a new variant; every older one stays readable.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "version")]
enum Versioned {
    /// Version 1 (the first released agent's).
    #[serde(rename = "1")]
    V1(OnDisk),
}

/// Version 1's document.
#[derive(Debug, Serialize, Deserialize)]
struct OnDisk {
    /// True in every write but the final one of a clean stop: found true at start, the last
    /// run crashed or was killed, and lines after these offsets are delivered again.
    #[serde(default)]
    running: bool,
    files: Vec<Entry>,
}

impl Versioned {
    /// Parses a checkpoint file. The version is a JSON number on disk (what the released
    /// agent reads back after a rollback); serde's tag is a string, so it is translated here.
    fn parse(bytes: &[u8]) -> Result<Versioned, String> {
        let mut v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let version = match v.get("version") {
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => return Err(format!("version is not a number: {other}")),
            None => return Err("no \"version\" field".into()),
        };
        if version != VERSION.to_string() {
            return Err(format!(
                "has version {version}, this agent reads version {VERSION}"
            ));
        }
        v["version"] = serde_json::Value::String(version);
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// The file's bytes: pretty JSON, the version as a number.
    fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut v = serde_json::to_value(self)?;
        v["version"] = VERSION.into();
        let mut bytes = serde_json::to_vec_pretty(&v)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// The current document, whichever version was read.
    fn into_current(self) -> OnDisk {
        match self {
            Versioned::V1(d) => d,
        }
    }
}

fn hex(v: u64) -> String {
    format!("{v:016x}")
}

fn unhex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

impl Entry {
    /// The persisted view of a file's progress.
    pub fn of(st: &FileState) -> Entry {
        let p = st.progress();
        Entry {
            dev: st.key.dev,
            ino: st.key.ino,
            fingerprint_len: p.fingerprint.len,
            fingerprint: hex(p.fingerprint.hash),
            offset: p.acked_offset,
            marker: hex(p.acked_marker),
            path: p.path.clone(),
            last_seen: p.last_seen,
            gzip_length: p.complete_at,
            gzip_size: p.archive_size,
            size: Some(st.size.load(std::sync::atomic::Ordering::Relaxed)),
            rotated: p.rotated_away,
        }
    }

    fn progress(&self) -> Option<Progress> {
        let marker = unhex(&self.marker)?;
        Some(Progress {
            generation: 0,
            fingerprint: Fingerprint {
                len: self.fingerprint_len,
                hash: unhex(&self.fingerprint)?,
            },
            read_offset: self.offset,
            read_marker: marker,
            acked_offset: self.offset,
            acked_marker: marker,
            path: self.path.clone(),
            last_seen: self.last_seen,
            complete_at: self.gzip_length,
            archive_size: self.gzip_size,
            rotated_away: self.rotated,
            in_flight: crate::ack::Tracker::default(),
        })
    }
}

/// A cheap digest of what a snapshot would hold: lets an idle agent skip building and
/// serializing an unchanged checkpoint.
pub fn digest(registry: &Registry) -> u64 {
    let mut h: u64 = 0;
    for st in registry.all() {
        let p = st.progress();
        let mut x = st.key.ino ^ st.key.dev.rotate_left(17);
        for v in [
            p.acked_offset,
            p.acked_marker,
            p.fingerprint.hash ^ u64::from(p.fingerprint.len),
            p.path.as_os_str().len() as u64,
            crate::identity::fnv1a(p.path.as_os_str().as_encoded_bytes()),
            // last_seen only matters at the scale of the one-day expiry.
            p.last_seen / 3600,
            p.complete_at.unwrap_or(u64::MAX),
            p.archive_size.unwrap_or(u64::MAX),
            u64::from(p.rotated_away),
        ] {
            x = (x ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        }
        // Order-independent: the registry is a hash map.
        h = h.wrapping_add(x);
    }
    h
}

/// Entries for every file of a registry, sorted for stable output.
pub fn snapshot(registry: &Registry) -> Vec<Entry> {
    let mut v: Vec<Entry> = registry.all().iter().map(|s| Entry::of(s)).collect();
    v.sort_by_key(|e| (e.dev, e.ino));
    v
}

/// Puts loaded entries into a registry as files not yet open.
pub fn restore(registry: &Registry, entries: &[Entry], host: &str) {
    let mut map = registry.lock();
    for e in entries {
        if let Some(p) = e.progress() {
            let key = FileKey {
                dev: e.dev,
                ino: e.ino,
            };
            let st = FileState::new(key, &e.path, host, p);
            st.size
                .fetch_max(e.size.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
            map.insert(key, Arc::new(st));
        }
    }
}

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
    last: Option<Vec<u8>>,
    unclean: bool,
}

/// Reads the checkpoint file in `dir`; a missing one is empty.
pub fn read(dir: &Path) -> Result<Vec<Entry>, String> {
    read_doc(dir).map(|d| d.files)
}

fn read_doc(dir: &Path) -> Result<OnDisk, String> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(OnDisk {
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
        let path = dir.join(FILE_NAME);
        let (entries, unclean) = match read_doc(dir) {
            Ok(d) => (d.files, d.running),
            Err(msg) => {
                let aside = dir.join(format!("{FILE_NAME}.corrupt-{}", crate::event::unix_now()));
                match std::fs::rename(&path, &aside) {
                    Ok(()) => warn!(checkpoint = %path.display(), set_aside = %aside.display(),
                        "{msg}; set aside, starting as if there were no checkpoint"),
                    Err(e) => warn!(checkpoint = %path.display(), error = %e,
                        "{msg}; could not set it aside, starting as if there were no checkpoint"),
                }
                (Vec::new(), false)
            }
        };
        let mut store = Store {
            dir: dir.to_path_buf(),
            path,
            _lock: lock,
            last: None,
            unclean,
        };
        store.write(&entries).map_err(|e| {
            StoreError(format!(
                "cannot write checkpoint file {}: {e}",
                store.path.display()
            ))
        })?;
        Ok((store, entries))
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
        let doc = Versioned::V1(OnDisk {
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

    fn entry(ino: u64, offset: u64) -> Entry {
        Entry {
            dev: 1,
            ino,
            fingerprint_len: 5,
            fingerprint: hex(42),
            offset,
            marker: hex(7),
            path: PathBuf::from("/x/a.log"),
            last_seen: 100,
            gzip_length: None,
            gzip_size: None,
            size: None,
            rotated: false,
        }
    }

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

    /// Written by the released agent (git cdfc253) after a clean stop.
    const RELEASED_V1: &str = r#"{
  "version": 1,
  "running": false,
  "files": [
    {
      "dev": 65024,
      "ino": 10051766,
      "fingerprint_len": 12,
      "fingerprint": "2925835410388969",
      "offset": 12,
      "marker": "2925835410388969",
      "path": "/tmp/tmp.4P26SOYCoa/logs/a.log",
      "last_seen": 1796217488
    },
    {
      "dev": 65024,
      "ino": 10051779,
      "fingerprint_len": 2,
      "fingerprint": "08f0de07b58d2b17",
      "offset": 2,
      "marker": "08f0de07b58d2b17",
      "path": "/tmp/tmp.4P26SOYCoa/logs/b.log.gz",
      "last_seen": 1796217488,
      "gzip_length": 2,
      "gzip_size": 27
    }
  ]
}
"#;

    #[test]
    fn reads_a_version_1_file_of_the_released_agent() {
        let doc = Versioned::parse(RELEASED_V1.as_bytes())
            .unwrap()
            .into_current();
        assert!(!doc.running);
        assert_eq!(doc.files.len(), 2);
        assert_eq!(doc.files[0].offset, 12);
        assert_eq!(doc.files[0].size, None);
        assert!(!doc.files[0].rotated);
        let p = doc.files[1].progress().unwrap();
        assert_eq!((p.complete_at, p.archive_size), (Some(2), Some(27)));
    }

    #[test]
    fn writes_the_version_as_a_number_and_reads_it_back() {
        let doc = Versioned::V1(OnDisk {
            running: true,
            files: vec![entry(1, 10)],
        });
        let bytes = doc.to_bytes().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v["version"],
            serde_json::json!(1),
            "what the released agent reads"
        );
        let back = Versioned::parse(&bytes).unwrap().into_current();
        assert!(back.running);
        assert_eq!(back.files, vec![entry(1, 10)]);
    }

    #[test]
    fn another_version_is_named_in_the_error() {
        let e = Versioned::parse(br#"{"version": 2, "files": []}"#).unwrap_err();
        assert_eq!(e, "has version 2, this agent reads version 1");
        assert!(Versioned::parse(br#"{"files": []}"#).is_err());
        assert!(Versioned::parse(br#"{"version": "1", "files": []}"#).is_ok());
    }

    #[test]
    fn registry_round_trip() {
        let reg = Registry::default();
        let e = Entry {
            size: Some(70),
            rotated: true,
            ..entry(3, 30)
        };
        restore(&reg, std::slice::from_ref(&e), "h");
        assert_eq!(snapshot(&reg), vec![e]);
        // An entry of an older agent (no size): the offset is the size known.
        let reg = Registry::default();
        restore(&reg, &[entry(4, 40)], "h");
        assert_eq!(snapshot(&reg)[0].size, Some(40));
    }
}
