//! `--check`'s proof that a checkpoint directory can be created and written.

use super::*;

/// What `--check` found for a checkpoint directory that a start could use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointDir {
    /// It exists and a file can be written in it.
    Writable,
    /// It does not exist yet; it can be created (the agent does so at start) and written.
    Creatable,
}

/// Proves, for `--check`, that a start could use `dir` as a checkpoint directory: creates it
/// when missing, writes, syncs and removes a temporary file in it, and opens an existing lock
/// file for writing. It does not take the lock (the lock is `flock`, which another descriptor
/// neither takes nor releases), so it works beside a running agent. Directories it had to
/// create are removed again (only while empty), so the check leaves nothing behind.
pub fn check_checkpoint_dir(dir: &Path) -> Result<CheckpointDir, String> {
    // The directories that do not exist yet, deepest first.
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(d) = next.filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::symlink_metadata(d) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push(d);
                next = d.parent();
            }
            _ => break,
        }
    }
    let probed = probe_checkpoint_dir(dir);
    for d in &missing {
        let _ = std::fs::remove_dir(d);
    }
    probed?;
    Ok(if missing.is_empty() {
        CheckpointDir::Writable
    } else {
        CheckpointDir::Creatable
    })
}

fn probe_checkpoint_dir(dir: &Path) -> Result<(), String> {
    use std::io::Write;
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create checkpoint directory {}: {e}", dir.display()))?;
    let cannot_write = |e: std::io::Error| {
        format!(
            "cannot write in checkpoint directory {}: {e}",
            dir.display()
        )
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".logaggregator-check-")
        .tempfile_in(dir)
        .map_err(cannot_write)?;
    tmp.write_all(b"written by logaggregator --check; removed at once\n")
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(cannot_write)?;
    tmp.close().map_err(|e| {
        format!(
            "cannot remove a file from checkpoint directory {}: {e}",
            dir.display()
        )
    })?;
    let lock = dir.join(crate::checkpoint::LOCK_NAME);
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lock)
    {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!(
            "cannot open checkpoint lock {}: {e}",
            lock.display()
        )),
        _ => Ok(()),
    }
}
