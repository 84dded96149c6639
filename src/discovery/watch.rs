//! Directory watching: inotify (through notify) on each glob's fixed prefix and on every open
//! file's directory, and what a filesystem event means: wake a tailer, or look at a path.

use super::Discovery;
use super::globs::Candidate;
use crate::identity::FileKey;
use crate::tailer::Parked;
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use tracing::debug;

impl Discovery {
    /// Each single-directory glob's directory as it is now; one removed or replaced since it
    /// was listed is watched anew (its watch went with the old directory).
    pub(super) fn stamp_dirs(&mut self) -> HashMap<PathBuf, Option<DirStamp>> {
        let mut stamps = HashMap::new();
        let input = self.input.clone();
        for (dir, _) in input.single_dir.iter().flatten() {
            let stamp = DirStamp::of(dir);
            let was = self.listed.get(dir).map(|l| l.stamp.key);
            if was.is_some() && was != stamp.map(|s| s.key) {
                debug!(dir = %dir.display(), "directory removed or replaced; watching it anew");
                self.watched.remove(dir);
                self.listed.remove(dir);
                self.watch(dir, RecursiveMode::NonRecursive);
            }
            stamps.insert(dir.clone(), stamp);
        }
        stamps
    }

    /// What this scan learnt of each directory it listed.
    pub(super) fn new_listings(
        &self,
        stamps: &HashMap<PathBuf, Option<DirStamp>>,
        candidates: &[Candidate],
        unchanged: &dyn Fn(&Path) -> bool,
    ) -> Vec<(PathBuf, Listing)> {
        stamps
            .iter()
            .filter(|(dir, _)| !unchanged(dir))
            .filter_map(|(dir, s)| {
                let stamp = (*s)?;
                // Links change targets without an event here.
                let links = candidates
                    .iter()
                    .any(|c| !c.plain && c.path.parent() == Some(dir.as_path()));
                // In a directory reached through a link, events carry the real path, which the
                // globs do not match; on a remote filesystem they miss other machines' writes.
                // Both hold as long as the directory (followed through links) is the same one.
                let indirect = match self.listed.get(dir) {
                    Some(l) if l.stamp.key == stamp.key => l.indirect,
                    _ => {
                        std::fs::canonicalize(dir).map_or(true, |real| real != *dir)
                            || !local_events(dir)
                    }
                };
                let listing = Listing {
                    stamp,
                    links,
                    indirect,
                };
                Some((dir.clone(), listing))
            })
            .collect()
    }

    pub(super) fn on_event(
        &mut self,
        ev: notify::Result<notify::Event>,
        dirty: &mut BTreeSet<PathBuf>,
    ) {
        let ev = match ev {
            // Opens and reads (our own scans among them) change nothing we track.
            Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => return,
            Ok(ev) => ev,
            Err(e) => {
                debug!(error = %e, "filesystem event error; the next scan looks at every file");
                self.full_scan_due = true;
                return;
            }
        };
        if ev.need_rescan() {
            // Events were lost: every tailer looks again, and the next scan stats every file.
            self.full_scan_due = true;
            self.handles.wake_all();
            let all: Vec<Parked> = self.parked.drain().map(|(_, p)| p).collect();
            for p in all {
                self.resume(p);
            }
        }
        if matches!(ev.kind, EventKind::Remove(_)) {
            for p in &ev.paths {
                if self.watched.remove(p) {
                    // Its watch went with it: watched again (and listed) once it exists again.
                    debug!(dir = %p.display(), "watched directory removed");
                    self.listed.remove(p);
                }
            }
        }
        if matches!(ev.kind, EventKind::Create(_)) && ev.paths.iter().any(|p| p.is_dir()) {
            // A new directory: files may land in it before its watch exists; walk at the next scan.
            self.full_scan_due = true;
        }
        for p in ev.paths {
            let parked_key = self
                .handles
                .at(p.as_os_str())
                .map(|st| st.key)
                .filter(|k| self.parked.contains_key(k));
            if let Some(pk) = parked_key.and_then(|k| self.parked.remove(&k)) {
                self.resume(pk);
            }
            let woke = self.handles.wake(p.as_os_str());
            let structural = matches!(
                ev.kind,
                EventKind::Create(_) | EventKind::Modify(notify::event::ModifyKind::Name(_))
            );
            if (!woke || structural) && self.input.matches(&p) {
                dirty.insert(p);
            }
        }
    }

    pub(super) fn watch_roots(&mut self) {
        for (dir, mode) in self.input.watch_roots() {
            self.watch(&dir, mode);
        }
    }

    /// Whether every directory root of the globs is watched (recursively where needed).
    pub(super) fn trees_watched(&self) -> bool {
        self.watcher.is_some()
            && self
                .input
                .watch_roots()
                .iter()
                .all(|(dir, mode)| match mode {
                    RecursiveMode::Recursive => self.recursive.iter().any(|r| dir.starts_with(r)),
                    RecursiveMode::NonRecursive => self.is_watched(dir),
                })
    }

    pub(super) fn is_watched(&self, dir: &Path) -> bool {
        self.watched.contains(dir) || self.recursive.iter().any(|r| dir.starts_with(r))
    }

    pub(super) fn watch(&mut self, dir: &Path, mode: RecursiveMode) {
        if self.is_watched(dir) {
            return;
        }
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        // A directory that does not exist yet is retried at the next scan.
        if w.watch(dir, mode).is_ok() {
            debug!(dir = %dir.display(), recursive = (mode == RecursiveMode::Recursive), "watching");
            self.watched.insert(dir.to_path_buf());
            if mode == RecursiveMode::Recursive {
                self.recursive.push(dir.to_path_buf());
            }
        }
    }
}

/// A single-directory glob's directory as last listed.
pub(super) struct Listing {
    pub(super) stamp: DirStamp,
    /// It held symlinks.
    pub(super) links: bool,
    /// Reached through a symlink, or on a filesystem whose changes inotify may not see.
    pub(super) indirect: bool,
}

/// What changes when a directory's entries do: its identity, mtime and ctime.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct DirStamp {
    pub(super) key: FileKey,
    pub(super) mtime: (i64, i64),
    pub(super) ctime: (i64, i64),
}

impl DirStamp {
    pub(super) fn of(dir: &Path) -> Option<DirStamp> {
        let m = std::fs::metadata(dir).ok()?;
        Some(DirStamp {
            key: FileKey::of(&m),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// Whether inotify sees every change in `dir`: not on network and FUSE filesystems, where
/// other machines (or a userspace server) write without the local kernel knowing.
pub(super) fn local_events(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const REMOTE: [i64; 9] = [
        0x6969,      // NFS
        0x517B,      // SMB
        0xFF53_4D42, // CIFS
        0xFE53_4D42, // SMB2
        0x6573_5546, // FUSE
        0x0102_1997, // 9P
        0x00C3_6400, // Ceph
        0x0BD0_0BD0, // Lustre
        0x5346_414F, // AFS
    ];
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return true;
    };
    // SAFETY: statfs only writes into the zeroed struct we own, and `c` is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return true;
    }
    #[allow(clippy::unnecessary_cast)]
    let kind = st.f_type as i64;
    !REMOTE.contains(&kind)
}
