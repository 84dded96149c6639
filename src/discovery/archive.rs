//! Compressed rotated files: when one is read, and whether it is the compressed copy of a
//! plain file already read (logrotate's `compress`), which it then continues at that file's
//! offset instead of reading it twice.

use super::recognize::{confirmed_at, same_file};
use super::{Discovery, Found, Opened};
use crate::config::StartAt;
use crate::event::{FileState, Progress};
use crate::identity::{FileKey, Fingerprint};
use crate::tailer::gzip;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tracing::{debug, info};

/// What a compressed file's head says about its origin.
enum ArchiveOrigin {
    /// The compressed copy of a plain file already (partly) read: continue at its offset.
    Continues(Arc<FileState>),
    /// Its plain original is still being compressed or drained: look again at the next scan.
    NotYet,
    /// A file of its own.
    OwnFile,
}

/// Scans an archive must keep its size, and how old it must be, before a decoding error
/// counts as damage (until then it may still be being written).
pub(super) const GZ_SETTLE_SCANS: u32 = 3;
pub(super) const GZ_SETTLE_AGE: std::time::Duration = std::time::Duration::from_secs(5);
/// An archive not tracked yet and not looked at for this long is gone (or was never ours).
const GZ_FORGET_UNTRACKED: std::time::Duration = std::time::Duration::from_secs(60);

impl Discovery {
    /// Sizes matter for archives still to be read (looked at lately, if not tracked yet:
    /// waiting for gzip or for their plain original), and for damaged ones (may grow).
    pub(super) fn forget_archive_sizes(&mut self) {
        let registry = self.input.registry.lock();
        self.gz_attempts
            .retain(|k, &mut (_, _, looked)| match registry.get(k) {
                Some(st) => {
                    let p = st.progress();
                    p.gzip_length.is_none() || p.gzip_size.is_none()
                }
                None => looked.elapsed() < GZ_FORGET_UNTRACKED,
            });
    }

    /// Whether a compressed file is still to be read (being written, or waiting for its plain
    /// original to be drained).
    pub(super) fn gz_pending(&self) -> bool {
        if self.gz_attempts.is_empty() {
            return false;
        }
        let registry = self.input.registry.lock();
        self.gz_attempts.keys().any(|k| {
            registry
                .get(k)
                .is_none_or(|st| st.progress().gzip_length.is_none())
        })
    }

    /// A compressed file: read once from its decompressed offset. A compressed copy of a file
    /// already read as plain text (logrotate's `compress`) continues where that file was.
    pub(super) fn open_gzip(
        &mut self,
        path: &Path,
        file: File,
        key: FileKey,
        existing: Option<Arc<FileState>>,
        how: Found,
    ) -> io::Result<Opened> {
        let (attempts, settled) = self.gz_attempt(key, &file)?;
        if attempts > 1 && !settled && existing.is_some() {
            // Read as far as it went at this size: wait for it to grow or to settle.
            return Ok(Opened::Skipped);
        }
        let head = match gzip::decompressed_head(&file) {
            Ok(h) => h,
            Err(_) if !settled => return Ok(Opened::Skipped),
            Err(e) => {
                self.warn_once(path, "cannot decompress file", &e);
                return Ok(Opened::Skipped);
            }
        };
        let fp = Fingerprint::of_head(&head);
        let state = match existing {
            Some(st) => {
                if st.is_active() {
                    return Ok(Opened::Skipped);
                }
                let mut p = st.progress();
                if p.gzip_length.is_some() {
                    return Ok(Opened::Skipped);
                }
                if p.fingerprint != fp {
                    p.generation = p.generation.wrapping_add(1);
                    p.fingerprint = fp;
                    p.read_offset = 0;
                    p.acked_offset = 0;
                }
                drop(p);
                st
            }
            None => match self.new_archive(path, key, &file, &head, settled, attempts > 1, how) {
                Some(st) => st,
                None => return Ok(Opened::Skipped),
            },
        };
        let offset = state.progress().read_offset;
        state.active.store(true, Ordering::Release);
        if let Err(e) = gzip::spawn(
            self.pipeline.clone(),
            self.input.params.clone(),
            state.clone(),
            file,
            offset,
            settled,
        ) {
            state.active.store(false, Ordering::Release);
            return Err(io::Error::new(
                e.kind(),
                format!("cannot start a thread: {e}"),
            ));
        }
        debug!(path = %path.display(), offset, "reading compressed file");
        Ok(Opened::Started)
    }

    /// Counts a look at an archive at its size: an archive may still be growing (gzip at
    /// work), so a decoding error means "not finished yet" until it has kept its size for a
    /// few scans and some seconds. Returns (looks at this size, settled).
    fn gz_attempt(&mut self, key: FileKey, file: &File) -> io::Result<(u32, bool)> {
        let meta = file.metadata()?;
        let size = meta.len();
        let attempts = match self.gz_attempts.get(&key) {
            Some(&(s, n, _)) if s == size => n + 1,
            _ => 1,
        };
        self.gz_attempts
            .insert(key, (size, attempts, Instant::now()));
        let age = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or_default();
        Ok((
            attempts,
            attempts >= GZ_SETTLE_SCANS && age >= GZ_SETTLE_AGE,
        ))
    }

    /// The state of an archive seen for the first time: the continuation of its plain
    /// original when it has one (read from that file's offset), else a file of its own. None
    /// when there is nothing to read now (waiting for the original; start_at: end).
    #[allow(clippy::too_many_arguments)]
    fn new_archive(
        &mut self,
        path: &Path,
        key: FileKey,
        file: &File,
        head: &[u8],
        settled: bool,
        same_size: bool,
        how: Found,
    ) -> Option<Arc<FileState>> {
        let original = match self.plain_original(path, file, head, settled, same_size) {
            ArchiveOrigin::NotYet => return None,
            ArchiveOrigin::Continues(st) => Some(st),
            ArchiveOrigin::OwnFile => None,
        };
        let (offset, gzip_length) = if let Some(prev) = original {
            let at = prev.progress().read_offset;
            info!(path = %path.display(), original = %prev.progress().path.display(), offset = at,
                "compressed copy of a file already read; continuing where it was, not reading it twice");
            // Used up: a later archive with the same head is another generation.
            prev.progress().gzip_length = Some(at);
            self.retired.retain(|r| !Arc::ptr_eq(r, &prev));
            (at, None)
        } else if how != Found::InodeReused
            && self.first_scan
            && self.input.cfg.start_at == StartAt::End
        {
            (0, Some(0))
        } else {
            (0, None)
        };
        let fp = Fingerprint::of_head(head);
        let progress = Progress {
            gzip_length,
            ..Progress::starting_at(fp, offset, 0, path)
        };
        let st = self.register(key, path, progress);
        gzip_length.is_none().then_some(st)
    }

    /// The plain file this compressed head belongs to: its fingerprint is a prefix of the
    /// decompressed head, and it is no longer at its path (most recently seen first; a plain
    /// file still being compressed into this archive, or still drained, means: wait). The
    /// archive must hold the same bytes before the file's offset (its marker), not just the head.
    fn plain_original(
        &self,
        gz: &Path,
        file: &File,
        head: &[u8],
        settled: bool,
        same_size: bool,
    ) -> ArchiveOrigin {
        let plain_name = gz.with_extension("");
        let mut gone: Vec<(u64, Arc<FileState>)> = Vec::new();
        let live = self.input.registry.all().into_iter().map(|s| (s, false));
        // A retired state's inode now holds another file: it is gone whatever stat says.
        let retired = self.retired.iter().map(|s| (s.clone(), true));
        for (st, is_retired) in live.chain(retired) {
            let (path, last_seen) = {
                let p = st.progress();
                if p.fingerprint.len == 0
                    || !p.fingerprint.matches_head(head)
                    || p.gzip_length.is_some()
                    || gzip::is_gzip(&p.path)
                {
                    continue;
                }
                (p.path.clone(), p.last_seen)
            };
            if !is_retired && same_file(&plain_name, st.key) {
                // gzip has not removed the plain file yet.
                return ArchiveOrigin::NotYet;
            }
            let mut present = !is_retired && same_file(&path, st.key);
            if present && !st.is_active() {
                // Its inode may hold a new file by now (the original deleted by gzip, the
                // inode reused by the next app.log): the content decides.
                present = confirmed_at(&st, &path);
            }
            if st.is_active() {
                if present {
                    // A live file that merely starts the same way: not this archive's origin.
                    continue;
                }
                // Rotated away and still being drained: its offset is not final yet.
                return ArchiveOrigin::NotYet;
            }
            if !present {
                gone.push((last_seen, st.clone()));
            }
        }
        // Most recently seen first; the head says "maybe" (a banner), the bytes before the
        // offset say "yes": the archive holds the same content up to where the file was read.
        gone.sort_by_key(|(seen, _)| std::cmp::Reverse(*seen));
        if !gone.is_empty() && !settled && !same_size {
            // Decompressing to the offset costs: not on every event while gzip still writes.
            return ArchiveOrigin::NotYet;
        }
        for (_, st) in gone {
            let (offset, marker) = {
                let p = st.progress();
                (p.read_offset, p.read_marker)
            };
            match gzip::marker_at(file, offset) {
                Ok(Some(m)) if m == marker => return ArchiveOrigin::Continues(st),
                Ok(Some(_)) => {}
                // Complete but shorter: lines written to the plain file after gzip read it
                // (read from the plain file already). The head has to do.
                Ok(None) => return ArchiveOrigin::Continues(st),
                // gzip may still be writing it.
                Err(_) if !settled => return ArchiveOrigin::NotYet,
                // Damaged before the offset: what it holds was read from the plain file.
                Err(_) => return ArchiveOrigin::Continues(st),
            }
        }
        ArchiveOrigin::OwnFile
    }
}
