//! The checkpoint file's document: one `Entry` per file identity inside a versioned envelope
//! (`{"version": 1, "running": …, "files": […]}`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
pub(super) enum Versioned {
    /// Version 1 (the first released agent's).
    #[serde(rename = "1")]
    V1(Document),
}

/// The current version's document.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Document {
    /// True in every write but the final one of a clean stop: found true at start, the last
    /// run crashed or was killed, and lines after these offsets are delivered again.
    #[serde(default)]
    pub running: bool,
    /// One entry per file identity.
    pub files: Vec<Entry>,
}

impl Versioned {
    /// Parses a checkpoint file. The version is a JSON number on disk (what the released
    /// agent reads back after a rollback); serde's tag is a string, so it is translated here.
    pub fn parse(bytes: &[u8]) -> Result<Versioned, String> {
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
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut v = serde_json::to_value(self)?;
        v["version"] = VERSION.into();
        let mut bytes = serde_json::to_vec_pretty(&v)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// The current document, whichever version was read.
    pub fn into_current(self) -> Document {
        match self {
            Versioned::V1(d) => d,
        }
    }
}

/// A hash as the file holds it.
pub(super) fn hex(v: u64) -> String {
    format!("{v:016x}")
}

/// A hash from the file; None if it is not hex.
pub(super) fn unhex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An entry of inode `ino` at `offset` (shared with the other checkpoint tests).
    pub fn entry(ino: u64, offset: u64) -> Entry {
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

    /// Written by the released agent (git cdfc253) after a clean stop.
    pub const RELEASED_V1: &str = r#"{
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
        assert_eq!(
            (doc.files[1].gzip_length, doc.files[1].gzip_size),
            (Some(2), Some(27))
        );
    }

    #[test]
    fn writes_the_version_as_a_number_and_reads_it_back() {
        let doc = Versioned::V1(Document {
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
    fn hashes_round_trip_as_hex() {
        assert_eq!(hex(0xab), "00000000000000ab");
        assert_eq!(unhex(&hex(u64::MAX)), Some(u64::MAX));
        assert_eq!(unhex("zz"), None);
    }
}
