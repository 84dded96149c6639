//! The identity verdict: whether a file seen now is a known file (grown or not), a new file at
//! its inode, a copy of it (copytruncate, or its archive), or unrelated. A pure function over
//! what was recorded of the known file and what is seen of the other; the I/O that gathers
//! those facts is in `recognize`.

use crate::identity::{FileKey, Recorded, holds};

/// What was recorded of a known file: what it is recognised by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Known {
    /// (device, inode) when it was read.
    pub key: FileKey,
    /// Its head fingerprint, read offset and the marker before it.
    pub recorded: Recorded,
    /// Its path names an archive (gzip): the recorded content is decompressed.
    pub gzip: bool,
    /// Used up (`Progress::gzip_length`): an archive read to its end, or a plain file that
    /// its archive continues.
    pub used_up: bool,
    /// An archive read cleanly to its end: its compressed size (`Progress::gzip_size`).
    pub gzip_size: Option<u64>,
    /// Its inode is known to hold another file now (its state was retired).
    pub inode_reused: bool,
}

impl Known {
    /// Whether another file (another inode) may hold its content: an archive is only ever
    /// found by its inode, being itself the copy, not the original.
    pub fn may_have_copies(&self) -> bool {
        !self.gzip
    }
}

/// What is seen now of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    /// (device, inode).
    pub key: FileKey,
    /// Size on disk (compressed, for an archive).
    pub size: u64,
    /// Its path names an archive (gzip).
    pub gzip: bool,
    /// What was read of its content.
    pub content: Content,
}

/// What was read of a seen file's content, for one known file's recorded offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Content {
    /// Not read: it could not be opened, or its metadata did not ask for it.
    Unread,
    /// Opened, but its head could not be read (an archive that does not decompress).
    Unreadable,
    /// Read: its first bytes (decompressed for an archive), and the hash of the bytes before
    /// `offset` (None: shorter than that, unreadable so far, or not asked as the head differs).
    Read {
        /// Up to FINGERPRINT_BYTES leading bytes.
        head: Vec<u8>,
        /// The offset the marker was taken at (the known file's recorded offset).
        offset: u64,
        /// Hash of the (at most MARKER_BYTES) bytes before `offset`.
        marker: Option<u64>,
    },
}

/// What a seen file is to a known one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Its own inode, holding what was read (or not read, nothing saying otherwise), with no
    /// bytes past the recorded offset (an archive's compressed size tells nothing of that).
    Same,
    /// Its own inode, holding what was read (or not read), with bytes past the offset.
    Grown,
    /// Its inode, now holding a new file: another kind (plain or archive, but see `CopyOf`),
    /// truncated, rewritten, or freed and handed to a new file (whose head may be the same
    /// banner).
    InodeReused,
    /// Another file holding its content up to the offset: a copy, or its archive (which may
    /// be at its own inode, freed when the plain file was deleted and handed to an archive).
    CopyOf,
    /// Another inode, not (known to be) holding its content.
    Unrelated,
}

impl Verdict {
    /// Whether it is the known file itself, grown or not.
    pub fn is_same_file(self) -> bool {
        matches!(self, Verdict::Same | Verdict::Grown)
    }
}

/// The identity decision: what `seen` is to `known`.
pub(super) fn verdict(known: &Known, seen: &Seen) -> Verdict {
    if seen.key == known.key && !archive_at_its_inode(known, seen) {
        return at_its_inode(known, seen);
    }
    if known.may_have_copies() && holds_read(known, &seen.content) {
        Verdict::CopyOf
    } else {
        Verdict::Unrelated
    }
}

/// Whether, at its own inode, a known file's metadata leave its identity in doubt so that its
/// content must decide. A plain file whose archive was read is normally deleted, and an archive
/// read to its end keeps its size: when either is seen again, its content decides. Otherwise
/// a plain file's content is checked when it is opened, an archive's by its reader; and a file
/// of the other kind is another file whatever it holds.
pub(super) fn in_doubt(known: &Known, gzip: bool, size: u64) -> bool {
    if known.inode_reused || known.gzip != gzip {
        return false;
    }
    if known.gzip {
        known.gzip_size.is_some_and(|s| s != size)
    } else {
        known.used_up
    }
}

/// Whether `seen`, at the inode of a plain file `known`, is an archive holding what it read:
/// the plain file deleted (its inode freed) and then compressed, or another generation of it
/// compressed, into a new file that the filesystem gave the freed inode. Not the file itself
/// (a plain file never turns into an archive), but a copy of it like one at any other inode.
fn archive_at_its_inode(known: &Known, seen: &Seen) -> bool {
    known.may_have_copies() && seen.gzip && holds_read(known, &seen.content)
}

fn at_its_inode(known: &Known, seen: &Seen) -> Verdict {
    // A plain file never turns into an archive or back.
    if known.inode_reused || known.gzip != seen.gzip {
        return Verdict::InodeReused;
    }
    let held = match &seen.content {
        Content::Unread => true,
        Content::Unreadable => false,
        read => holds_read(known, read),
    };
    if !held {
        Verdict::InodeReused
    } else if !seen.gzip && seen.size > known.recorded.offset {
        Verdict::Grown
    } else {
        Verdict::Same
    }
}

/// Whether read content holds what `known` read (a marker taken at another offset proves
/// nothing of it).
fn holds_read(known: &Known, content: &Content) -> bool {
    let Content::Read {
        head,
        offset,
        marker,
    } = content
    else {
        return false;
    };
    holds(&known.recorded, head, |at| {
        (at == *offset).then_some(*marker).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{FINGERPRINT_BYTES, Fingerprint, MARKER_BYTES, fnv1a};

    const KEY: FileKey = FileKey { dev: 1, ino: 10 };
    const OTHER: FileKey = FileKey { dev: 1, ino: 11 };

    fn marker(content: &[u8], offset: usize) -> Option<u64> {
        (content.len() >= offset)
            .then(|| fnv1a(&content[offset.saturating_sub(MARKER_BYTES)..offset]))
    }

    /// A plain file read to `offset` of `content`.
    fn known(content: &[u8], offset: usize) -> Known {
        Known {
            key: KEY,
            recorded: Recorded {
                fingerprint: Fingerprint::of_head(content),
                offset: offset as u64,
                marker: marker(content, offset).unwrap_or_default(),
            },
            gzip: false,
            used_up: false,
            gzip_size: None,
            inode_reused: false,
        }
    }

    fn archive(content: &[u8], offset: usize, size: u64) -> Known {
        Known {
            gzip: true,
            used_up: true,
            gzip_size: Some(size),
            ..known(content, offset)
        }
    }

    /// `content` seen at `key` (its size on disk `size`), read for `k`'s offset.
    fn seen(key: FileKey, gzip: bool, size: u64, content: &[u8], k: &Known) -> Seen {
        let offset = k.recorded.offset;
        Seen {
            key,
            size,
            gzip,
            content: Content::Read {
                head: content[..content.len().min(FINGERPRINT_BYTES)].to_vec(),
                offset,
                marker: marker(content, offset as usize),
            },
        }
    }

    fn plain(key: FileKey, content: &[u8], k: &Known) -> Seen {
        seen(key, false, content.len() as u64, content, k)
    }

    fn unread(key: FileKey, gzip: bool, size: u64) -> Seen {
        Seen {
            key,
            size,
            gzip,
            content: Content::Unread,
        }
    }

    fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
        [a, b].concat()
    }

    const BANNER: &[u8] = b"=== app v1 started ===\n";

    #[test]
    #[rustfmt::skip]
    fn every_verdict() {
        use Verdict::*;
        let old = cat(BANNER, b"first generation line 1\nline 2\n");
        let k = known(&old, old.len());
        let grown = cat(&old, b"more\n");
        let rewritten = cat(BANNER, b"second generation, a longer line 1\nline 2\n");
        let table: Vec<(&str, Known, Seen, Verdict)> = vec![
            ("as read",                   k, plain(KEY, &old, &k),             Same),
            ("grown",                     k, plain(KEY, &grown, &k),           Grown),
            ("rewritten, same banner",    k, plain(KEY, &rewritten, &k),       InodeReused),
            ("copy",                      k, plain(OTHER, &old, &k),           CopyOf),
            ("copy, grown",               k, plain(OTHER, &grown, &k),         CopyOf),
            ("another file",              k, plain(OTHER, &rewritten, &k),     Unrelated),
            ("its archive",               k, seen(OTHER, true, 9, &grown, &k), CopyOf),
            ("own inode, not read",       k, unread(KEY, false, 1),            Same),
            ("own inode grown, not read", k, unread(KEY, false, 999),          Grown),
            ("another inode, not read",   k, unread(OTHER, false, 999),        Unrelated),
        ];
        for (what, k, s, want) in table {
            assert_eq!(verdict(&k, &s), want, "{what}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn edge_cases() {
        use Verdict::*;
        let old = cat(BANNER, b"line 1\nline 2\n");
        let k = known(&old, old.len());
        let short = known(b"ab\n", 3);
        let mut other_marker = k;
        other_marker.recorded.marker ^= 1;
        let retired = Known { inode_reused: true, ..k };
        let mut long = vec![b'x'; FINGERPRINT_BYTES + 100];
        let long_k = known(&long, long.len());
        long.extend_from_slice(b"more\n");
        let gz = archive(&old, old.len(), 40);
        let appended = cat(&old, b"appended member\n");
        let unreadable = |key, gzip| Seen { content: Content::Unreadable, ..unread(key, gzip, 80) };
        let table: Vec<(&str, Known, Seen, Verdict)> = vec![
            // copytruncate: shorter than the offset, no marker there.
            ("truncated",                    k, plain(KEY, BANNER, &k),      InodeReused),
            ("copy shorter than the offset", k, plain(OTHER, BANNER, &k),    Unrelated),
            // Fingerprinted while shorter than FINGERPRINT_BYTES, seen again when longer.
            ("short fingerprint, grown", short, plain(KEY, b"ab\ncd\n", &short), Grown),
            ("full fingerprint, grown", long_k, plain(KEY, &long, &long_k),      Grown),
            // A banner is all the heads share: the bytes before the offset decide.
            ("same head, other marker",       other_marker, plain(KEY, &old, &k),   InodeReused),
            ("same head, other marker, copy", other_marker, plain(OTHER, &old, &k), Unrelated),
            // An unrelated file at a reused inode, or its state retired already.
            ("inode reused, not read",  retired, unread(KEY, false, 1),  InodeReused),
            ("retired, same content",   retired, plain(KEY, &old, &k),   InodeReused),
            // A plain file never turns into an archive or back: an archive at its inode that
            // holds what it read is its copy (an archive given the freed inode), not it.
            ("plain now an archive",        k,  seen(KEY, true, 9, &old, &k), CopyOf),
            ("plain now another archive",   k,  seen(KEY, true, 9, BANNER, &k), InodeReused),
            ("plain now an archive, not read", k, unread(KEY, true, 9),       InodeReused),
            ("retired, its archive there",  retired, seen(KEY, true, 9, &old, &k), CopyOf),
            ("archive now plain",           gz, plain(KEY, &old, &gz),        InodeReused),
            ("archive now plain, not read", gz, unread(KEY, false, 40),       InodeReused),
            // An archive is found by its inode only: a plain file whose head matches its
            // decompressed head is another copy, not it.
            ("plain copy of an archive",    gz, plain(OTHER, &old, &gz),               Unrelated),
            ("archive again",               gz, seen(KEY, true, 40, &old, &gz),        Same),
            ("archive, a member appended",  gz, seen(KEY, true, 80, &appended, &gz),   Same),
            ("archive that does not decompress", gz, unreadable(KEY, true),            InodeReused),
            ("copy whose head is unreadable",    k,  unreadable(OTHER, false),         Unrelated),
        ];
        for (what, k, s, want) in table {
            assert_eq!(verdict(&k, &s), want, "{what}");
        }
    }

    #[test]
    fn a_marker_taken_at_another_offset_proves_nothing() {
        let old = cat(BANNER, b"line 1\n");
        let k = known(&old, old.len());
        let mut s = plain(OTHER, &old, &k);
        if let Content::Read { offset, .. } = &mut s.content {
            *offset += 1;
        }
        assert_eq!(verdict(&k, &s), Verdict::Unrelated);
        s.key = KEY;
        assert_eq!(verdict(&k, &s), Verdict::InodeReused);
    }

    #[test]
    #[rustfmt::skip]
    fn doubt() {
        let old = cat(BANNER, b"line 1\n");
        let k = known(&old, old.len());
        let used_up = Known { used_up: true, ..k };
        let gz = archive(&old, old.len(), 40);
        let damaged = Known { gzip_size: None, ..gz };
        let retired = Known { inode_reused: true, ..used_up };
        let table: Vec<(&str, Known, bool, u64, bool)> = vec![
            ("plain, its archive not read",      k,       false, 1,  false),
            ("plain, continued by its archive",  used_up, false, 1,  true),
            ("archive, same size",               gz,      true,  40, false),
            ("archive, another size",            gz,      true,  41, true),
            ("archive, damaged (no size kept)",  damaged, true,  41, false),
            ("another kind: another file",       gz,      false, 41, false),
            ("retired: another file",            retired, false, 1,  false),
        ];
        for (what, k, gzip, size, want) in table {
            assert_eq!(in_doubt(&k, gzip, size), want, "{what}");
        }
    }
}
