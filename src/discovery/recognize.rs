//! Recognising a known file: whether the file at a path, or at a known inode, still holds what
//! a state read (its head and the bytes before its offset), plain or decompressed.

use crate::event::FileState;
use crate::identity::{FINGERPRINT_BYTES, FileKey, holds, marker_at, read_at_most};
use crate::tailer::gzip;
use std::fs::File;
use std::path::Path;

pub(super) fn same_file(path: &Path, key: FileKey) -> bool {
    std::fs::metadata(path)
        .map(|m| FileKey::of(&m) == key)
        .unwrap_or(false)
}

/// Whether a known state is not the file now at `path` with the same (device, inode) and
/// `size`, its inode having been freed and handed to a new file (whose head may well be the
/// same: a common banner). A plain file never turns into an archive or back. A plain file
/// whose archive was read is normally deleted, and an archive read to its end keeps its size:
/// when either is seen again, its content up to the checkpointed offset decides.
pub(super) fn replaced_at_inode(st: &FileState, path: &Path, size: u64) -> bool {
    if st.is_active() {
        return false;
    }
    let suspect = {
        let p = st.progress();
        let was_gzip = gzip::is_gzip(&p.path);
        if was_gzip != gzip::is_gzip(path) {
            return true;
        }
        if was_gzip {
            p.gzip_size.is_some_and(|s| s != size)
        } else {
            p.gzip_length.is_some()
        }
    };
    // A file that cannot be opened now is looked at again later.
    suspect && File::open(path).is_ok_and(|f| !holds_content(&f, gzip::is_gzip(path), st))
}

/// Whether `file` holds what a state read: its head (fingerprint) and the bytes before its
/// read offset (marker), decompressed for an archive.
pub(super) fn holds_content(file: &File, archive: bool, st: &FileState) -> bool {
    let rec = st.progress().recorded();
    if archive {
        gzip::decompressed_head(file)
            .is_ok_and(|h| holds(&rec, &h, |at| gzip::marker_at(file, at).ok().flatten()))
    } else {
        read_at_most(file, 0, FINGERPRINT_BYTES)
            .is_ok_and(|h| holds(&rec, &h, |at| marker_at(file, at).ok()))
    }
}
