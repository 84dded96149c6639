//! Recognising a known file: the I/O that gathers what the identity verdict (`verdict`) is
//! decided on, what a state recorded and what a file at a path holds now, plain or
//! decompressed.

use super::verdict::{Content, Known, Seen, Verdict, in_doubt, verdict};
use crate::event::FileState;
use crate::identity::{DirFile, FINGERPRINT_BYTES, FileKey, Recorded, marker_at, read_at_most};
use crate::tailer::gzip;
use std::fs::File;
use std::path::Path;

/// Whether the file at `path` is the inode `key`.
pub(super) fn same_file(path: &Path, key: FileKey) -> bool {
    std::fs::metadata(path)
        .map(|m| FileKey::of(&m) == key)
        .unwrap_or(false)
}

/// What a state recorded of its file (its inode not known to be reused).
pub(super) fn known(st: &FileState) -> Known {
    let p = st.progress();
    Known {
        key: st.key,
        recorded: p.recorded(),
        gzip: gzip::is_gzip(&p.path),
        used_up: p.gzip_length.is_some(),
        gzip_size: p.gzip_size,
        inode_reused: false,
    }
}

/// What `file` holds, for a file that recorded `rec`: its head (decompressed for an archive)
/// and the marker at the recorded offset.
pub(super) fn read_content(file: &File, archive: bool, rec: &Recorded) -> Content {
    let head = if archive {
        gzip::decompressed_head(file)
    } else {
        read_at_most(file, 0, FINGERPRINT_BYTES)
    };
    match head {
        Ok(head) => with_head(file, archive, rec, head),
        Err(_) => Content::Unreadable,
    }
}

/// Like `read_content`, the head already read. The marker is taken only when the head matches
/// (nothing holds without it): for an archive it means decompressing up to the offset.
pub(super) fn with_head(file: &File, archive: bool, rec: &Recorded, head: Vec<u8>) -> Content {
    let offset = rec.offset;
    let marker = if !rec.fingerprint.matches_head(&head) {
        None
    } else if archive {
        gzip::marker_at(file, offset).ok().flatten()
    } else {
        marker_at(file, offset).ok()
    };
    Content::Read {
        head,
        offset,
        marker,
    }
}

/// Whether a known state is not the file now at `path` with the same (device, inode) and
/// `size`, its inode having been freed and handed to a new file (whose head may well be the
/// same: a common banner). Its content is read only when its metadata leave a doubt
/// (`in_doubt`); a file that cannot be opened now is looked at again later.
pub(super) fn replaced_at_inode(st: &FileState, path: &Path, size: u64) -> bool {
    if st.is_active() {
        return false;
    }
    let known = known(st);
    let gzip = gzip::is_gzip(path);
    let content = match in_doubt(&known, gzip, size).then(|| File::open(path)) {
        Some(Ok(f)) => read_content(&f, gzip, &known.recorded),
        _ => Content::Unread,
    };
    let seen = Seen {
        key: st.key,
        size,
        gzip,
        content,
    };
    verdict(&known, &seen) == Verdict::InodeReused
}

/// Whether the plain file at `path`, known to be at the state's inode, still holds what the
/// state read (false when it cannot be opened).
pub(super) fn confirmed_at(st: &FileState, path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let Ok(meta) = f.metadata() else {
        return false;
    };
    let known = known(st);
    let seen = Seen {
        key: st.key,
        size: meta.len(),
        gzip: false,
        content: read_content(&f, false, &known.recorded),
    };
    verdict(&known, &seen).is_same_file()
}

/// Whether the directory entry `e`, open as `f` and at the state's inode, is the state's file:
/// of its kind (plain or archive) and holding what it read (decompressed for an archive).
pub(super) fn holds_at(st: &FileState, e: &DirFile, f: &File) -> bool {
    let known = known(st);
    let gzip = gzip::is_gzip(&e.path);
    let seen = Seen {
        key: e.key,
        size: e.size,
        gzip,
        content: read_content(f, gzip, &known.recorded),
    };
    e.key == st.key && verdict(&known, &seen).is_same_file()
}
