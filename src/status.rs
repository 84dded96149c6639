//! `logaggregator status`: per-file offsets and lag read from the checkpoint files and the
//! files on disk. Takes no lock, so it works while the agent runs and while it is stopped.

use crate::checkpoint::{self, Entry};
use crate::config::Config;
use crate::discovery::Input;
use crate::identity::FileKey;
use crate::tailer::gzip;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

/// State of a checkpointed file that is no longer on disk and that the agent does not hold
/// open: the agent has finished with it (it reads a file renamed away or deleted to its end
/// before closing it). The table folds these into one line.
pub const GONE: &str = "gone";
/// State of a file no longer on disk (under its name or in its directory) that the running
/// agent still holds open: it is still being read, so it is listed with its size and lag.
pub const GONE_OPEN: &str = "gone, still open by the agent";
/// State of a file no longer on disk whose checkpoint says it was last seen larger than its
/// offset: those bytes were never delivered (it was deleted while the agent was stopped, or
/// before the output caught up). SIZE is the size last seen, LAG what was not delivered.
pub const GONE_UNDELIVERED: &str = "gone, not fully delivered";

/// One file's line in the report.
#[derive(Debug, Serialize)]
pub struct FileStatus {
    /// Path as checkpointed (or matched now).
    pub path: String,
    /// Device number (with `inode`, the file's identity).
    pub dev: u64,
    /// Inode number: tells generations of one path apart.
    pub inode: u64,
    /// Size on disk now, if the file was found (a compressed file read to its end: its
    /// decompressed length, which is what offsets count for it).
    pub size: Option<u64>,
    /// Checkpointed offset (bytes delivered).
    pub offset: u64,
    /// size - offset.
    pub lag_bytes: Option<u64>,
    /// Unix seconds when the agent last saw the file on disk or read it (checkpointed files).
    pub last_seen: Option<u64>,
    /// Seconds from `last_seen` to now.
    pub last_seen_age_seconds: Option<u64>,
    /// `tracked`, `rotated to <path>`, `gone`, `gone, still open by the agent`,
    /// `gone, not fully delivered`, `not checkpointed yet`, `replaced (...)`.
    pub state: String,
    /// True for `gone` files: the table counts them in one summary line instead of a row.
    pub folded: bool,
}

/// One input's part of the report.
#[derive(Debug, Serialize)]
pub struct InputStatus {
    /// The input's globs.
    pub paths: Vec<String>,
    /// Checkpoint file.
    pub checkpoint: String,
    /// Seconds since the checkpoint file was written; null when it has not been written yet.
    pub checkpoint_age_seconds: Option<u64>,
    /// PID of the agent holding this checkpoint directory, when it runs and status may read
    /// its open files (`/proc/PID/fd`: same user, or root).
    pub agent_pid: Option<u32>,
    /// The lock file's PID when that process runs but its open files cannot be read (another
    /// user's): then a gone file it still reads shows as `gone`.
    pub agent_pid_unverified: Option<u32>,
    /// A problem reading the checkpoint.
    pub error: Option<String>,
    /// Files, sorted by path; per path the file at it now first, then older generations, the
    /// most recently seen first.
    pub files: Vec<FileStatus>,
}

/// The running agent of a checkpoint directory and the files it holds open.
struct Agent {
    pid: u32,
    /// Identity -> size of every regular file it has open.
    open: HashMap<FileKey, u64>,
}

/// What status can learn about the agent of a checkpoint directory.
enum Holder {
    /// None runs: no PID in the lock file, or that process does not hold the lock file.
    Nobody,
    /// It runs; its open files were read.
    Running(Agent),
    /// The lock file's PID runs, but its open files cannot be read (another user's process):
    /// whether it is the agent, and which gone files it still reads, is unknown.
    Unreadable(u32),
}

/// The lock file names the PID of the agent that took it. That process is the agent of this
/// directory only if it still holds the lock file open (a stale PID may have been reused).
fn holder(dir: &Path) -> Holder {
    let lock = dir.join(checkpoint::LOCK_NAME);
    let (Ok(text), Ok(meta)) = (std::fs::read_to_string(&lock), std::fs::metadata(&lock)) else {
        return Holder::Nobody;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return Holder::Nobody;
    };
    let fds = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(fds) => fds,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Holder::Unreadable(pid);
        }
        Err(_) => return Holder::Nobody,
    };
    let mut open = HashMap::new();
    for fd in fds.flatten() {
        // metadata() follows the link: the open file itself, also when it was deleted.
        if let Ok(m) = std::fs::metadata(fd.path())
            && m.is_file()
        {
            open.insert(FileKey::of(&m), m.len());
        }
    }
    if open.contains_key(&FileKey::of(&meta)) {
        Holder::Running(Agent { pid, open })
    } else {
        Holder::Nobody
    }
}

/// Directory listings of one report, each directory listed once however many gone
/// generations it held.
type Listings = HashMap<std::path::PathBuf, Vec<crate::identity::DirFile>>;

fn locate(
    e: &Entry,
    agent: Option<&Agent>,
    hint: Option<u64>,
    listings: &mut Listings,
) -> (Option<u64>, String) {
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
    if let Some(f) = e.path.parent().and_then(|dir| {
        listings
            .entry(dir.to_path_buf())
            .or_insert_with(|| crate::identity::regular_files(dir))
            .iter()
            .find(|f| f.key == key)
    }) {
        return (Some(f.size), format!("rotated to {}", f.path.display()));
    }
    match (agent.and_then(|a| a.open.get(&key)), hint) {
        (Some(&size), _) => (Some(size), GONE_OPEN.into()),
        (None, Some(size)) if size > e.offset => (Some(size), GONE_UNDELIVERED.into()),
        (None, _) => (None, GONE.into()),
    }
}

/// Size in the unit the offset counts: a compressed file's offset counts decompressed bytes,
/// known once it has been read to its end (and only while it keeps its compressed size).
fn comparable_size(e: &Entry, compressed: bool, on_disk: Option<u64>) -> Option<u64> {
    match (compressed, on_disk) {
        (false, size) => size,
        (true, Some(size)) if e.gzip_size.is_none_or(|s| s == size) => e.gzip_length,
        (true, _) => None,
    }
}

fn age_of(t: SystemTime, now: SystemTime) -> u64 {
    // A time in the future (clock stepped back) counts as now.
    now.duration_since(t).map(|d| d.as_secs()).unwrap_or(0)
}

/// A row for each checkpointed file, with the identities seen.
fn checkpointed_files(
    entries: &[checkpoint::Entry],
    agent: Option<&Agent>,
    now_secs: u64,
) -> (Vec<FileStatus>, HashSet<FileKey>) {
    let mut files = Vec::new();
    let mut known = HashSet::new();
    let mut listings = Listings::new();
    for e in entries {
        let key = FileKey {
            dev: e.dev,
            ino: e.ino,
        };
        known.insert(key);
        // The size last seen, of plain files only (what it counts for an archive is not said).
        let compressed = e.gzip_length.is_some() || gzip::is_gzip(&e.path);
        let hint = e.size.filter(|_| !compressed);
        let (on_disk, mut state) = locate(e, agent, hint, &mut listings);
        let size = comparable_size(e, compressed, on_disk);
        if size.is_some_and(|s| s < e.offset) {
            state = "replaced (smaller than its offset; will be read from 0)".into();
        }
        files.push(FileStatus {
            path: e.path.display().to_string(),
            dev: e.dev,
            inode: e.ino,
            size,
            offset: e.offset,
            lag_bytes: size.map(|s| s.saturating_sub(e.offset)),
            last_seen: Some(e.last_seen),
            last_seen_age_seconds: Some(now_secs.saturating_sub(e.last_seen)),
            folded: state == GONE,
            state,
        });
    }
    (files, known)
}

/// Per path: the file at it now, then its older generations, the most recently seen first.
fn sort_rows(files: &mut [FileStatus]) {
    let rank = |f: &FileStatus| match f.state.as_str() {
        GONE => 3,
        GONE_UNDELIVERED => 2,
        s if s == GONE_OPEN || s.starts_with("rotated to ") => 1,
        _ => 0,
    };
    files.sort_by(|a, b| {
        let seen = |f: &FileStatus| f.last_seen.unwrap_or(u64::MAX);
        a.path
            .cmp(&b.path)
            .then(rank(a).cmp(&rank(b)))
            .then(seen(b).cmp(&seen(a)))
            .then(b.inode.cmp(&a.inode))
    });
}

fn input_report(
    i: usize,
    f: &crate::config::FileInput,
    now: SystemTime,
    now_secs: u64,
) -> InputStatus {
    let file = f.checkpoint_path.join(checkpoint::FILE_NAME);
    let age = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| age_of(t, now));
    let (entries, error) = match checkpoint::read(&f.checkpoint_path) {
        Ok(v) => (v, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let holder = holder(&f.checkpoint_path);
    let agent = match &holder {
        Holder::Running(a) => Some(a),
        _ => None,
    };
    let (mut files, known) = checkpointed_files(&entries, agent, now_secs);
    for p in Input::new(i, f.clone())
        .map(|inp| inp.matched())
        .unwrap_or_default()
    {
        if let Ok(m) = std::fs::metadata(&p)
            && m.is_file()
            && !known.contains(&FileKey::of(&m))
        {
            files.push(FileStatus {
                path: p.display().to_string(),
                dev: m.dev(),
                inode: m.ino(),
                size: Some(m.len()),
                offset: 0,
                lag_bytes: Some(m.len()),
                last_seen: None,
                last_seen_age_seconds: None,
                state: "not checkpointed yet".into(),
                folded: false,
            });
        }
    }
    sort_rows(&mut files);
    InputStatus {
        paths: f.paths.clone(),
        checkpoint: file.display().to_string(),
        checkpoint_age_seconds: age,
        agent_pid: agent.map(|a| a.pid),
        agent_pid_unverified: match holder {
            Holder::Unreadable(pid) => Some(pid),
            _ => None,
        },
        error,
        files,
    }
}

/// Builds the report.
pub fn report(cfg: &Config) -> Vec<InputStatus> {
    let now = SystemTime::now();
    let now_secs = crate::event::unix_now();
    cfg.inputs
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| input_report(i, f, now, now_secs))
        .collect()
}

fn opt(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
}

/// `42s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 2 * 3600 => format!("{}m ago", s / 60),
        s if s < 2 * 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

/// The summary line of an input's folded (`gone`) files, if it has any.
fn folded_line(r: &InputStatus) -> Option<String> {
    let gone: Vec<&FileStatus> = r.files.iter().filter(|f| f.folded).collect();
    let first = gone.first()?;
    let paths: HashSet<&str> = gone.iter().map(|f| f.path.as_str()).collect();
    let of = if paths.len() == 1 {
        first.path.clone()
    } else {
        format!("{} paths", paths.len())
    };
    let ages = gone.iter().filter_map(|f| f.last_seen_age_seconds);
    let (newest, oldest) = (ages.clone().min()?, ages.max()?);
    let seen = if ago(newest) == ago(oldest) {
        ago(newest)
    } else {
        format!("{} to {}", ago(newest), ago(oldest))
    };
    let n = gone.len();
    let s = if n == 1 { "" } else { "s" };
    // Without the agent's open files, a gone file it still reads cannot be told apart.
    let delivered = if r.agent_pid_unverified.is_some() {
        "delivered unless the agent still reads them"
    } else {
        "fully delivered"
    };
    Some(format!(
        "+ {n} gone generation{s} of {of}, {delivered} (no longer on disk; last seen {seen}; --json lists each)"
    ))
}

/// The table of one input, as printed (without a trailing newline).
pub fn render(r: &InputStatus) -> String {
    let mut out = Vec::new();
    out.push(format!("input {}", r.paths.join(", ")));
    let written = match r.checkpoint_age_seconds {
        Some(s) => format!("written {}", ago(s)),
        None => "not written yet".into(),
    };
    let agent = match (r.agent_pid, r.agent_pid_unverified) {
        (Some(pid), _) => format!("; agent running, pid {pid}"),
        (None, Some(pid)) => format!(
            "; lock taken by pid {pid}, whose open files are not readable: run status as its user or root"
        ),
        (None, None) => String::new(),
    };
    out.push(format!("  checkpoint {} ({written}{agent})", r.checkpoint));
    if let Some(e) = &r.error {
        out.push(format!("  error: {e}"));
    }
    let rows: Vec<&FileStatus> = r.files.iter().filter(|f| !f.folded).collect();
    let w = rows.iter().map(|f| f.path.len()).max().unwrap_or(4).max(4);
    out.push(format!(
        "  {:w$}  {:>10}  {:>12}  {:>12}  {:>12}  {:>9}  STATE",
        "PATH", "INODE", "SIZE", "OFFSET", "LAG", "LAST SEEN"
    ));
    for f in rows {
        out.push(format!(
            "  {:w$}  {:>10}  {:>12}  {:>12}  {:>12}  {:>9}  {}",
            f.path,
            f.inode,
            opt(f.size),
            f.offset,
            opt(f.lag_bytes),
            f.last_seen_age_seconds
                .map(ago)
                .unwrap_or_else(|| "-".into()),
            f.state
        ));
    }
    if let Some(l) = folded_line(r) {
        out.push(format!("  {l}"));
    }
    out.join("\n")
}

/// Prints the report; exit code 0, or 1 when a checkpoint could not be read (or stdout could
/// not be written, other than a reader that went away: `status | head` is fine).
pub fn print(cfg: &Config, json: bool) -> u8 {
    let report = report(cfg);
    let failed = report.iter().any(|r| r.error.is_some());
    let text = if json {
        let doc = serde_json::json!({ "inputs": report });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    } else {
        report.iter().map(render).collect::<Vec<_>>().join("\n")
    };
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => u8::from(failed),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => u8::from(failed),
        Err(e) => {
            eprintln!("logaggregator: status: cannot write to stdout: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, ino: u64, age: u64, state: &str) -> FileStatus {
        FileStatus {
            path: path.into(),
            dev: 1,
            inode: ino,
            size: None,
            offset: 535_920,
            lag_bytes: None,
            last_seen: Some(1_000_000 - age),
            last_seen_age_seconds: Some(age),
            folded: state == GONE,
            state: state.into(),
        }
    }

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(ago(0), "0s ago");
        assert_eq!(ago(119), "119s ago");
        assert_eq!(ago(600), "10m ago");
        assert_eq!(ago(3 * 3600), "3h ago");
        assert_eq!(ago(3 * 86400), "3d ago");
    }

    #[test]
    fn gone_generations_fold_into_one_line() {
        let mut files = vec![row("/l/app.log", 99, 1, "tracked")];
        files.extend((0..18).map(|i| row("/l/app.log", 10 + i, 60 + i * 60, GONE)));
        files.push(row("/l/app.log", 5, 30, GONE_OPEN));
        let r = InputStatus {
            paths: vec!["/l/*.log".into()],
            checkpoint: "/c/checkpoints.json".into(),
            checkpoint_age_seconds: None,
            agent_pid: Some(7),
            agent_pid_unverified: None,
            error: None,
            files,
        };
        let text = render(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(
            lines[1].ends_with("(not written yet; agent running, pid 7)"),
            "{text}"
        );
        assert!(lines[4].ends_with(GONE_OPEN), "{text}");
        assert_eq!(
            lines[5],
            "  + 18 gone generations of /l/app.log, fully delivered (no longer on disk; last seen 60s ago to 18m ago; --json lists each)"
        );
    }
}
