//! Files the agent was reading when it stopped that are no longer at their path (rotated,
//! copied and truncated, or compressed while it was down): found among their directory's
//! files, a plain file by inode, a copy or an archive by content (head fingerprint and the
//! bytes before the checkpointed offset), and drained from that offset. What cannot be found
//! is warned about: a loss is never silent.

use super::recognize;
use super::verdict::{Content, Known, Seen, Verdict, verdict};
use super::{Discovery, Found};
use crate::event::FileState;
use crate::identity::{
    DirFile as Entry, FINGERPRINT_BYTES, FileKey, Fingerprint, read_at_most, regular_files,
};
use crate::tailer::gzip;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tracing::{debug, info, warn};

/// Where the rest of a gone file is.
enum Rest {
    /// Still at its inode, under another name, with bytes past the offset.
    Renamed(PathBuf),
    /// Its own archive, found by inode (an archive read in part before the stop).
    ArchiveAgain(PathBuf),
    /// Another file holds its content: a copy (copytruncate) or an archive (compress).
    Copy(Entry),
    /// Found, nothing left to read there, or owned by the globs.
    Nothing,
    /// Nowhere in its directory.
    Lost,
    /// Several files hold its content (a banner is all that was read): none is read, rather
    /// than the wrong one.
    Ambiguous(Vec<PathBuf>),
}

/// The files each path named when the agent stopped: not marked rotated away and, per path,
/// the states seen last (older ones at the same path were rotated away and drained; this is
/// what tells them apart in a checkpoint written before the mark existed).
pub(super) fn live_at_stop(states: &[Arc<FileState>]) -> HashSet<FileKey> {
    let mut newest: HashMap<PathBuf, (u64, Vec<FileKey>)> = HashMap::new();
    for st in states {
        let p = st.progress();
        if p.rotated_away {
            continue;
        }
        let slot = newest
            .entry(p.path.clone())
            .or_insert((p.last_seen, Vec::new()));
        if p.last_seen > slot.0 {
            *slot = (p.last_seen, Vec::new());
        }
        if p.last_seen == slot.0 {
            slot.1.push(st.key);
        }
    }
    newest.into_values().flat_map(|(_, keys)| keys).collect()
}

/// The directories where a file last seen at `path` may be now: its own and, for a matched
/// symlink (Kubernetes /var/log/containers), its target's, where the runtime rotates it.
fn dirs_of(path: &Path) -> Vec<PathBuf> {
    let link_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut dirs = vec![link_dir.clone()];
    if let Some(t) = std::fs::canonicalize(path)
        .ok()
        .and_then(|t| t.parent().map(Path::to_path_buf))
        .filter(|t| *t != link_dir)
    {
        dirs.push(t);
    }
    dirs
}

impl Discovery {
    /// After the first scan: every checkpointed file gone from its path (not seen by the scan,
    /// or replaced at its inode) is looked for and drained, or warned about. `live` are the
    /// files their paths named at the stop (see `live_at_stop`).
    pub(super) fn resume_rotated_while_stopped(&mut self, live: &HashSet<FileKey>) {
        let unseen = self
            .input
            .registry
            .all()
            .into_iter()
            .filter(|st| !st.is_active() && !self.seen.contains(&st.key));
        let gone: Vec<Arc<FileState>> = unseen
            .chain(self.retired.iter().cloned())
            .filter(|st| st.progress().gzip_length.is_none())
            .collect();
        let mut listings: HashMap<PathBuf, Vec<Entry>> = HashMap::new();
        // Identities already tracked (a file claimed as a copy below joins them).
        let mut known: HashSet<FileKey> = self.input.registry.lock().keys().copied().collect();
        for st in gone.iter().cloned() {
            let path = st.progress().path.clone();
            let dirs = dirs_of(&path);
            for d in &dirs {
                listings
                    .entry(d.clone())
                    .or_insert_with(|| regular_files(d));
            }
            let entries = dirs.iter().flat_map(|d| &listings[d]);
            match self.find_rest(&st, entries, &gone, &known) {
                Rest::Renamed(found) => {
                    info!(path = %found.display(), was = %path.display(),
                        "file rotated while the agent was stopped; draining it from its checkpoint");
                    let _ = self.open(&found, Some(st.clone()), Found::Rotated);
                }
                Rest::ArchiveAgain(found) => {
                    self.strays.push((found.clone(), st.key));
                    self.look_at(&found);
                }
                Rest::Copy(e) => {
                    known.insert(e.key);
                    self.drain_copy(&st, e);
                }
                Rest::Nothing => {}
                Rest::Ambiguous(holders) if live.contains(&st.key) || had_unread(&st) => {
                    warn_ambiguous(&st, &holders);
                    Self::warned(&st);
                }
                Rest::Ambiguous(_) => {
                    debug!(path = %path.display(), "several files hold a gone file's content; warned before");
                }
                Rest::Lost if live.contains(&st.key) || had_unread(&st) => {
                    warn_lost(&st, &dirs);
                    Self::warned(&st);
                }
                Rest::Lost => {
                    debug!(path = %path.display(), "a rotated generation drained before the stop is gone");
                }
            }
        }
    }

    /// Warned once: not again at the next start. The entry stays for a day all the same, in
    /// case the file turns up under a name the globs match.
    fn warned(st: &FileState) {
        let offset = {
            let mut p = st.progress();
            p.rotated_away = true;
            p.read_offset
        };
        st.size.store(offset, Ordering::Relaxed);
    }

    /// Where the rest of `st` is, among the regular files of its directories.
    fn find_rest<'a>(
        &self,
        st: &FileState,
        entries: impl Iterator<Item = &'a Entry>,
        gone: &[Arc<FileState>],
        known_keys: &HashSet<FileKey>,
    ) -> Rest {
        // A state replaced by the first scan: its inode holds another file now.
        let replaced = !self
            .input
            .registry
            .lock()
            .get(&st.key)
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), st));
        let known = Known {
            inode_reused: replaced,
            ..recognize::known(st)
        };
        let mut copies = Vec::new();
        for e in entries {
            // Its own inode is told by its metadata; a plain file's content is checked when it
            // is opened, an archive's by its reader (its head against the fingerprint).
            let seen = Seen {
                key: e.key,
                size: e.size,
                gzip: gzip::is_gzip(&e.path),
                content: Content::Unread,
            };
            match (verdict(&known, &seen), known.gzip) {
                (Verdict::Same | Verdict::Grown, true) => {
                    return Rest::ArchiveAgain(e.path.clone());
                }
                (Verdict::Grown, false) => return Rest::Renamed(e.path.clone()),
                (Verdict::Same, false) => return Rest::Nothing,
                (Verdict::Unrelated, _) if known.may_have_copies() => copies.push(e),
                // An archive at a plain file's own inode: the inode freed when the file was
                // deleted and handed to an archive (of it, or of another generation of it)
                // made while the agent was stopped. Its content decides, as at any inode.
                (Verdict::InodeReused, false) if seen.gzip => copies.push(e),
                _ => {}
            }
        }
        let gone_name = path_name(&st.progress().path);
        let mut holders = Vec::new();
        let mut held_all_paths: Vec<PathBuf> = Vec::new();
        for e in copies {
            let name = path_name(&e.path);
            // Only a rotated name of this file (app.log.1, app.log.2.gz, app.log-20261202,
            // app-20261202.log.gz): the head and the bytes before the offset prove little
            // when the offset is within a banner other files share, or 0.
            if !derived_from(&name, &gone_name) || self.input.excluded(&e.path) {
                continue;
            }
            let Ok(f) = File::open(&e.path) else {
                continue;
            };
            if self.tracks(known_keys, e, &f)
                || !copy_of(&known, e, &f)
                || held_further(st, &known, e, &f, &name, gone)
            {
                continue;
            }
            let offset = known.recorded.offset;
            let more = if gzip::is_gzip(&e.path) {
                gzip::marker_at(&f, offset + 1).ok().flatten().is_some()
            } else {
                e.size > offset
            };
            if more {
                holders.push(e);
            } else {
                held_all_paths.push(e.path.clone());
            }
        }
        self.rest_among(holders, held_all_paths)
    }

    /// Whether the directory entry `e`, open as `f`, is a file already tracked (`known_keys`),
    /// not one to claim as a copy: the state kept for its inode is being read there, or `e`
    /// holds what that state read. A file's identity is its inode and its content: an inode
    /// freed while the agent was stopped and handed to a new file (an archive made then, of
    /// this file or another) is not the file a checkpoint entry kept for it any more.
    fn tracks(&self, known_keys: &HashSet<FileKey>, e: &Entry, f: &File) -> bool {
        if !known_keys.contains(&e.key) {
            return false;
        }
        // No state kept for it: its file was drained from a copy and forgotten (its inode then
        // free for a new file), or it was claimed as a copy that could not be read (nor can it
        // be now). Its content decides.
        let Some(tracked) = self.input.registry.lock().get(&e.key).cloned() else {
            return false;
        };
        tracked.is_active() || recognize::holds_at(&tracked, e, f)
    }

    /// Where the rest is, given the files holding what was read and more (`holders`), and
    /// those holding exactly that (`held_all`).
    fn rest_among(&self, holders: Vec<&Entry>, held_all: Vec<PathBuf>) -> Rest {
        match holders.as_slice() {
            [] if !held_all.is_empty() => Rest::Nothing,
            [] => Rest::Lost,
            // One file holds exactly what was read, another that and more: either may be it.
            [_, ..] if !held_all.is_empty() => Rest::Ambiguous(
                held_all
                    .into_iter()
                    .chain(holders.iter().map(|e| e.path.clone()))
                    .collect(),
            ),
            // The globs match it: discovery reads it (an archive continues at the offset).
            [one] if self.input.matches(&one.path) => Rest::Nothing,
            [one] => Rest::Copy((*one).clone()),
            many => Rest::Ambiguous(many.iter().map(|e| e.path.clone()).collect()),
        }
    }

    /// Reads the rest of `st` from a file that holds its content (outside the globs) as a file
    /// of its own, from the same offset, and forgets `st`: the copy's checkpoint takes over.
    fn drain_copy(&mut self, st: &Arc<FileState>, copy: Entry) {
        let archive = gzip::is_gzip(&copy.path);
        let Ok(file) = File::open(&copy.path) else {
            return;
        };
        let head = if archive {
            gzip::decompressed_head(&file)
        } else {
            read_at_most(&file, 0, FINGERPRINT_BYTES)
        };
        let Ok(head) = head else {
            return;
        };
        let mut progress = st.progress().clone();
        let was = progress.path.clone();
        info!(path = %copy.path.display(), was = %was.display(), offset = progress.read_offset,
            "file rotated while the agent was stopped is gone; its content is here (a copy or an archive): reading the rest of it");
        progress.generation = 0;
        progress.in_flight = crate::ack::Tracker::default();
        progress.fingerprint = Fingerprint::of_head(&head);
        progress.acked_offset = progress.read_offset;
        progress.acked_marker = progress.read_marker;
        progress.last_seen = crate::event::unix_now();
        progress.rotated_away = true;
        // A plain copy keeps the gone path, so that its tailer sees it rotated away and
        // closes it once drained; an archive is known as one by its path.
        if archive {
            progress.path = copy.path.clone();
        }
        let new = Arc::new(FileState::new(copy.key, &st.origin, progress));
        new.size.store(copy.size, Ordering::Relaxed);
        {
            let mut reg = self.input.registry.lock();
            reg.insert(copy.key, new.clone());
            if reg.get(&st.key).is_some_and(|s| Arc::ptr_eq(s, st)) {
                reg.remove(&st.key);
            }
        }
        self.retired.retain(|r| !Arc::ptr_eq(r, st));
        if archive {
            self.strays.push((copy.path.clone(), copy.key));
            self.look_at(&copy.path);
        } else {
            let _ = self.open(&copy.path, Some(new), Found::Rotated);
        }
    }

    /// Archives outside the globs that hold the rest of a file: looked at every scan (they
    /// may still be being written) until read to their end.
    pub(super) fn tend_strays(&mut self) {
        let strays = std::mem::take(&mut self.strays);
        let mut keep = Vec::with_capacity(strays.len());
        for (path, key) in strays {
            let pending = self
                .input
                .registry
                .lock()
                .get(&key)
                .is_some_and(|st| st.is_active() || st.progress().gzip_length.is_none());
            if pending && path.exists() {
                keep.push((path, key));
            }
        }
        self.strays = keep;
        for (path, _) in self.strays.clone() {
            self.look_at(&path);
        }
    }
}

/// Whether the directory entry `e`, open as `f`, holds the content of the file `known` records.
fn copy_of(known: &Known, e: &Entry, f: &File) -> bool {
    let gzip = gzip::is_gzip(&e.path);
    let seen = Seen {
        key: e.key,
        size: e.size,
        gzip,
        content: recognize::read_content(f, gzip, &known.recorded),
    };
    verdict(known, &seen) == Verdict::CopyOf
}

/// Whether another gone file, read further and with `name` a rotated name of it, is held by
/// `e` too: `e` is then that file's copy (an older generation that starts the same way), not
/// the copy of `st`.
fn held_further(
    st: &FileState,
    known: &Known,
    e: &Entry,
    f: &File,
    name: &str,
    gone: &[Arc<FileState>],
) -> bool {
    gone.iter().any(|o| {
        let (o_offset, o_name) = {
            let p = o.progress();
            (p.read_offset, path_name(&p.path))
        };
        !std::ptr::eq(Arc::as_ptr(o), st)
            && o_offset > known.recorded.offset
            && derived_from(name, &o_name)
            && copy_of(&recognize::known(o), e, f)
    })
}

/// Whether a gone file is known to have held bytes not read: it was not drained to its end,
/// or is an archive not read to its end.
fn had_unread(st: &FileState) -> bool {
    let p = st.progress();
    st.size.load(Ordering::Relaxed) > p.read_offset || (gzip::is_gzip(&p.path) && !p.rotated_away)
}

/// The file name of `p`, lossily.
fn path_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether `name` is a rotated name of a file called `gone`, as logrotate, Python's handlers
/// and the container runtimes make them: `gone` followed by a separator (`.`, `-`, `_`) and a
/// number or date (`app.log.1`, `app.log-20261202`, `0.log.20261202-101010`), or its stem so
/// followed and then its extension (logrotate's `extension`: `app-20261202.log`,
/// `app.1.log`); either with a compression suffix (`.gz`). Not `app.log.old`, not
/// `app-worker.log.1`.
fn derived_from(name: &str, gone: &str) -> bool {
    if gone.is_empty() || name == gone {
        return false;
    }
    let name = name.strip_suffix(".gz").unwrap_or(name);
    if let Some(rest) = name.strip_prefix(gone) {
        return numbered(rest) == Some("");
    }
    let Some((stem, ext)) = gone.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty()
        && name
            .strip_prefix(stem)
            .and_then(numbered)
            .is_some_and(|rest| rest.strip_prefix('.') == Some(ext))
}

/// `s` without a leading separator and number or date (`.1`, `-20261202`, `-20261202-1764`):
/// what follows them, or None when `s` does not start so.
fn numbered(s: &str) -> Option<&str> {
    let rest = s.strip_prefix(['.', '-', '_'])?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-' || c == '_' || c == 'T'))
        .unwrap_or(rest.len());
    rest[..end]
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| &rest[end..])
}

/// Several files hold what was read of a gone file: reading the rest from the wrong one
/// would ship another file's lines under its name.
fn warn_ambiguous(st: &FileState, holders: &[PathBuf]) {
    let p = st.progress();
    let holders: Vec<String> = holders.iter().map(|h| h.display().to_string()).collect();
    warn!(
        path = %p.path.display(),
        inode = st.key.ino,
        offset = p.read_offset,
        candidates = ?holders,
        "a file was rotated while the agent was stopped and several files hold what was read of it (a shared banner): none is read rather than the wrong one; lines written to it past the checkpointed offset may be missing; make the glob match the rotated names to keep them"
    );
}

/// A file that was live at the stop is gone, and nothing in its directories holds it.
fn warn_lost(st: &FileState, dirs: &[PathBuf]) {
    let p = st.progress();
    let last_size = st.size.load(Ordering::Relaxed);
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    warn!(
        path = %p.path.display(),
        inode = st.key.ino,
        offset = p.read_offset,
        unread_bytes_at_least = last_size.saturating_sub(p.read_offset),
        searched = ?dirs,
        "a file was rotated or deleted while the agent was stopped and no file in its directory holds it (plain or compressed): what it held past the checkpointed offset cannot be read (at least unread_bytes_at_least, plus any lines written to it while the agent was stopped); make the glob match the rotated names to keep them"
    );
}

#[cfg(test)]
mod tests {
    use super::derived_from;
    use super::{Discovery, Rest};
    use crate::discovery::Input;
    use crate::event::{FileState, Progress};
    use crate::identity::{FileKey, Fingerprint, MARKER_BYTES, fnv1a, regular_files};
    use crate::runtime::{BufferPool, OpenSlots, Stop};
    use crate::tailer::TailResources;
    use std::collections::HashSet;
    use std::io::Write;
    use std::path::Path;
    use std::sync::Arc;

    /// A discovery of the files `dir/*.log`, its tailers sending nowhere.
    fn discovery(dir: &Path) -> Discovery {
        let glob = dir.join("*.log");
        let yaml = format!(
            "inputs:\n  files:\n    - paths: [{:?}]\n      checkpoint_path: {:?}\n",
            glob.display().to_string(),
            dir.join("ck").display().to_string(),
        );
        let cfg = crate::config::Config::parse(&yaml, &|_| None).unwrap();
        let input = Input::new(0, cfg.inputs.files[0].clone()).unwrap();
        let (tx, _) = crossbeam_channel::bounded(1);
        let pipeline = TailResources {
            tx,
            pool: BufferPool::new(1, 64),
            stop: Stop::new(),
            stats: Arc::new(crate::stats::Stats::default()),
            slots: Arc::new(OpenSlots::new(4)),
        };
        Discovery::new(Arc::new(input), pipeline)
    }

    /// A checkpointed plain file at `path` and inode `key`, read to the end of `read`.
    fn checkpointed(key: FileKey, path: &Path, read: &[u8]) -> Arc<FileState> {
        let marker = fnv1a(&read[read.len().saturating_sub(MARKER_BYTES)..]);
        let p = Progress::starting_at(Fingerprint::of_head(read), read.len() as u64, marker, path);
        Arc::new(FileState::new(key, path, p))
    }

    /// logrotate `compress` while the agent is stopped, the filesystem reusing freed inodes:
    /// the archive of `w3.log` gets the inode `w2.log` had (w2.log's own archive, made
    /// first, freed it), for which the checkpoint keeps `w2.log`'s entry. That inode holds
    /// another file now (an archive, of other content): the archive is w3.log's copy, not a
    /// file already known, and w3.log is not lost.
    #[test]
    fn an_archive_at_the_freed_inode_of_another_checkpointed_file_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let banner = "=== worker starting: version 1.2.3 ===\n";
        let w3_read = format!("{banner}w3 line 0\n");
        let archive = dir.path().join("w3.log.1.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&archive).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(format!("{w3_read}w3 line 1\n").as_bytes())
            .unwrap();
        gz.finish().unwrap();
        let reused = FileKey::of(&std::fs::metadata(&archive).unwrap());
        let w2 = checkpointed(
            reused,
            &dir.path().join("w2.log"),
            format!("{banner}w2 line 0\n").as_bytes(),
        );
        let w3_key = FileKey {
            dev: reused.dev,
            ino: u64::MAX,
        };
        let w3 = checkpointed(w3_key, &dir.path().join("w3.log"), w3_read.as_bytes());
        let d = discovery(dir.path());
        for st in [&w2, &w3] {
            d.input.registry.lock().insert(st.key, st.clone());
        }
        let known: HashSet<FileKey> = d.input.registry.lock().keys().copied().collect();
        let entries = regular_files(dir.path());
        let gone = [w2.clone(), w3.clone()];
        let found = |d: &Discovery, what: &str| {
            let rest = d.find_rest(&w3, entries.iter(), &gone, &known);
            assert!(
                matches!(&rest, Rest::Copy(e) if e.path == archive),
                "{what}: w3.log's archive not found at the reused inode (lost: {})",
                matches!(rest, Rest::Lost)
            );
        };
        found(&d, "w2.log's entry still kept");
        // w2.log looked for first, drained from its own archive and forgotten: its inode is
        // still among the identities known at the start.
        d.input.registry.lock().remove(&w2.key);
        found(&d, "w2.log drained and forgotten");
    }

    /// `content` compressed into `path`.
    fn gzipped(path: &Path, content: &str) {
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(path).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(content.as_bytes()).unwrap();
        gz.finish().unwrap();
    }

    /// logrotate `compress` twice while the agent is stopped, only a banner read of `app.log`:
    /// the second archive, `app.log.1.gz`, gets the inode `app.log` had (freed when its own
    /// archive was made). That archive is a candidate copy like any other: alone it is the
    /// copy; with `app.log.2.gz` (also starting with the banner) neither is guessed.
    #[test]
    fn an_archive_at_the_gone_files_own_freed_inode_is_a_candidate_copy() {
        let dir = tempfile::tempdir().unwrap();
        let banner = "=== app v1 started ===\n";
        let one = dir.path().join("app.log.1.gz");
        gzipped(&one, &format!("{banner}gen1 line 0\n"));
        let own = FileKey::of(&std::fs::metadata(&one).unwrap());
        let st = checkpointed(own, &dir.path().join("app.log"), banner.as_bytes());
        let d = discovery(dir.path());
        d.input.registry.lock().insert(st.key, st.clone());
        let known: HashSet<FileKey> = d.input.registry.lock().keys().copied().collect();
        let gone = [st.clone()];
        let entries = regular_files(dir.path());
        let rest = d.find_rest(&st, entries.iter(), &gone, &known);
        assert!(
            matches!(&rest, Rest::Copy(e) if e.path == one),
            "the archive at its own inode not found (lost: {})",
            matches!(rest, Rest::Lost)
        );

        let two = dir.path().join("app.log.2.gz");
        gzipped(&two, &format!("{banner}gen0 line 0\n"));
        let entries = regular_files(dir.path());
        let rest = d.find_rest(&st, entries.iter(), &gone, &known);
        let Rest::Ambiguous(mut holders) = rest else {
            panic!(
                "two archives hold the banner: not ambiguous (copy: {:?})",
                match rest {
                    Rest::Copy(e) => Some(e.path),
                    _ => None,
                }
            );
        };
        holders.sort();
        assert_eq!(holders, [one, two]);
    }

    #[test]
    fn rotated_names_are_derived_from_the_live_name() {
        for name in [
            "app.log.1",
            "app.log.2.gz",
            "app.log-20261202",
            "app.log-20261202.gz",
            "app-20261202.log.gz",
            "app.1.log",
            "app_2026.log",
        ] {
            assert!(derived_from(name, "app.log"), "{name}");
        }
        for name in [
            "app.log",
            "other.txt",
            "w10.log.1.gz",
            "application.log.1",
            "xapp.log.1",
        ] {
            assert!(
                !derived_from(name, "app.log") || name == "w10.log.1.gz",
                "{name}"
            );
        }
        assert!(!derived_from("w10.log.1.gz", "w1.log"));
        assert!(derived_from("w1.log.1.gz", "w1.log"));
        assert!(derived_from("0.log.20261202-101010.gz", "0.log"));
        assert!(!derived_from("anything", ""));
    }
}
