//! `logaggregator status`: per-file offsets and lag read from the checkpoint files and the
//! files on disk. Takes no lock, so it works while the agent runs and while it is stopped.

use crate::checkpoint::{self, Entry};
use crate::config::Config;
use crate::discovery::Input;
use crate::identity::FileKey;
use serde::Serialize;

use std::time::SystemTime;

/// One file's line in the report.
#[derive(Debug, Serialize)]
pub struct FileStatus {
    /// Path as checkpointed (or matched now).
    pub path: String,
    /// Size on disk now, if the file was found.
    pub size: Option<u64>,
    /// Checkpointed offset (bytes delivered).
    pub offset: u64,
    /// size - offset.
    pub lag_bytes: Option<u64>,
    /// `tracked`, `rotated to <path>`, `gone`, `not checkpointed yet`, `replaced`.
    pub state: String,
}

/// One input's part of the report.
#[derive(Debug, Serialize)]
pub struct InputStatus {
    /// The input's globs.
    pub paths: Vec<String>,
    /// Checkpoint file.
    pub checkpoint: String,
    /// Seconds since the checkpoint file was written.
    pub checkpoint_age_seconds: Option<u64>,
    /// A problem reading the checkpoint.
    pub error: Option<String>,
    /// Files.
    pub files: Vec<FileStatus>,
}

fn locate(e: &Entry) -> (Option<u64>, String) {
    let key = FileKey {
        dev: e.dev,
        ino: e.ino,
    };
    if let Ok(m) = std::fs::metadata(&e.path)
        && FileKey::of(&m) == key
    {
        return (Some(m.len()), "tracked".into());
    }
    // Renamed (rotated): look in the same directory.
    if let Some(dir) = e.path.parent()
        && let Ok(rd) = std::fs::read_dir(dir)
    {
        for d in rd.flatten() {
            if let Ok(m) = d.metadata()
                && m.is_file()
                && FileKey::of(&m) == key
            {
                return (Some(m.len()), format!("rotated to {}", d.path().display()));
            }
        }
    }
    (None, "gone".into())
}

/// Builds the report.
pub fn report(cfg: &Config) -> Vec<InputStatus> {
    let mut out = Vec::new();
    for (i, f) in cfg.inputs.files.iter().enumerate() {
        let file = f.checkpoint_path.join(checkpoint::FILE_NAME);
        let age = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map(|d| d.as_secs());
        let (entries, error) = match checkpoint::read(&f.checkpoint_path) {
            Ok(v) => (v, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let mut files = Vec::new();
        let mut known = std::collections::HashSet::new();
        for e in &entries {
            known.insert(FileKey {
                dev: e.dev,
                ino: e.ino,
            });
            let (size, mut state) = locate(e);
            if size.is_some_and(|s| s < e.offset) {
                state = "replaced (smaller than its offset; will be read from 0)".into();
            }
            files.push(FileStatus {
                path: e.path.display().to_string(),
                size,
                offset: e.offset,
                lag_bytes: size.map(|s| s.saturating_sub(e.offset)),
                state,
            });
        }
        for p in Input::new(i, f.clone()).matched() {
            if let Ok(m) = std::fs::metadata(&p)
                && m.is_file()
                && !known.contains(&FileKey::of(&m))
            {
                files.push(FileStatus {
                    path: p.display().to_string(),
                    size: Some(m.len()),
                    offset: 0,
                    lag_bytes: Some(m.len()),
                    state: "not checkpointed yet".into(),
                });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        out.push(InputStatus {
            paths: f.paths.clone(),
            checkpoint: file.display().to_string(),
            checkpoint_age_seconds: age,
            error,
            files,
        });
    }
    out
}

fn opt(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
}

/// Prints the report; exit code 0, or 1 when a checkpoint could not be read.
pub fn print(cfg: &Config, json: bool) -> u8 {
    let report = report(cfg);
    let failed = report.iter().any(|r| r.error.is_some());
    if json {
        let doc = serde_json::json!({ "inputs": report });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        for r in &report {
            println!("input {}", r.paths.join(", "));
            println!(
                "  checkpoint {} (written {} ago)",
                r.checkpoint,
                r.checkpoint_age_seconds
                    .map(|s| format!("{s}s"))
                    .unwrap_or_else(|| "never".into())
            );
            if let Some(e) = &r.error {
                println!("  error: {e}");
            }
            let w = r
                .files
                .iter()
                .map(|f| f.path.len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!(
                "  {:w$}  {:>12}  {:>12}  {:>12}  STATE",
                "PATH", "SIZE", "OFFSET", "LAG"
            );
            for f in &r.files {
                println!(
                    "  {:w$}  {:>12}  {:>12}  {:>12}  {}",
                    f.path,
                    opt(f.size),
                    f.offset,
                    opt(f.lag_bytes),
                    f.state
                );
            }
        }
    }
    u8::from(failed)
}
