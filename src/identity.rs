//! File identity: (device, inode) confirmed by a fingerprint of the file's first bytes.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// How many leading bytes the fingerprint covers once the file is that long.
pub const FINGERPRINT_BYTES: usize = 1024;
/// How many bytes before an offset the offset marker covers.
pub const MARKER_BYTES: usize = 32;

/// The (device, inode) pair of a file: which file it is while it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileKey {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileKey {
    /// The key of an open file or of stat() metadata.
    pub fn of(meta: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A hash of a file's first `len` bytes; confirms that an inode still holds the same content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Fingerprint {
    /// How many leading bytes were hashed (grows up to FINGERPRINT_BYTES).
    pub len: u32,
    /// FNV-1a 64 of those bytes.
    pub hash: u64,
}

/// FNV-1a 64's offset basis (the hash of no bytes).
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64's prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64: stable across releases and platforms, which checkpoint files need.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET_BASIS;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Reads up to `len` bytes at `offset`, fewer only at end of file.
pub fn read_at_most(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

impl Fingerprint {
    /// Fingerprint of the given head bytes (at most FINGERPRINT_BYTES are used).
    pub fn of_head(head: &[u8]) -> Fingerprint {
        let head = &head[..head.len().min(FINGERPRINT_BYTES)];
        Fingerprint {
            len: head.len() as u32,
            hash: fnv1a(head),
        }
    }

    /// Reads the file's head and fingerprints it.
    pub fn read(file: &File) -> io::Result<Fingerprint> {
        Ok(Self::of_head(&read_at_most(file, 0, FINGERPRINT_BYTES)?))
    }

    /// Whether `head` (the file's current first bytes) still starts with the fingerprinted bytes.
    pub fn matches_head(&self, head: &[u8]) -> bool {
        let n = self.len as usize;
        head.len() >= n && fnv1a(&head[..n]) == self.hash
    }

    /// Whether the fingerprint covers as much of the file as it ever will.
    pub fn is_complete(&self) -> bool {
        self.len as usize >= FINGERPRINT_BYTES
    }
}

/// Hash of the bytes just before `offset` (at most MARKER_BYTES): confirms a resume point.
pub fn marker_at(file: &File, offset: u64) -> io::Result<u64> {
    let start = offset.saturating_sub(MARKER_BYTES as u64);
    let bytes = read_at_most(file, start, (offset - start) as usize)?;
    if bytes.len() as u64 != offset - start {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shorter than offset",
        ));
    }
    Ok(fnv1a(&bytes))
}

/// What a reader recorded of a file's content: enough to know the file again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Of its first bytes.
    pub fingerprint: Fingerprint,
    /// How far it was read.
    pub offset: u64,
    /// Hash of the bytes just before `offset`.
    pub marker: u64,
}

/// Whether a file whose first bytes are now `head`, and whose bytes before the recorded offset
/// hash to `marker_now(offset)` (None: it is shorter than that, or cannot be read so far;
/// asked only when the head matches, as it may mean decompressing), still holds the content
/// `rec` was read from. Same inode or not, this is what tells the file read before from a
/// truncated, rewritten or new one (a common banner, the inode reused), and a copy or an
/// archive of it from another file: the content part of discovery's identity verdict.
pub fn holds(rec: &Recorded, head: &[u8], marker_now: impl FnOnce(u64) -> Option<u64>) -> bool {
    rec.fingerprint.matches_head(head) && marker_now(rec.offset) == Some(rec.marker)
}

/// A regular file of a directory, with its identity.
#[derive(Debug, Clone)]
pub struct DirFile {
    /// Its path.
    pub path: std::path::PathBuf,
    /// (device, inode).
    pub key: FileKey,
    /// Its size.
    pub size: u64,
    /// Its modification time (Unix seconds).
    pub mtime: i64,
}

/// The regular files of `dir` (not links), newest first: where a file rotated away from a
/// path in `dir` is looked for. Empty when `dir` cannot be listed.
pub fn regular_files(dir: &std::path::Path) -> Vec<DirFile> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut all: Vec<DirFile> = rd
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok().filter(|m| m.is_file())?;
            Some(DirFile {
                path: e.path(),
                key: FileKey::of(&m),
                size: m.len(),
                mtime: m.mtime(),
            })
        })
        .collect();
    all.sort_by_key(|f| std::cmp::Reverse(f.mtime));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fingerprint_grows_and_confirms() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let mut f = File::create(&p).unwrap();
        f.write_all(b"hello\n").unwrap();
        let r = File::open(&p).unwrap();
        let fp = Fingerprint::read(&r).unwrap();
        assert_eq!(fp.len, 6);
        f.write_all(&vec![b'x'; 2000]).unwrap();
        let head = read_at_most(&r, 0, FINGERPRINT_BYTES).unwrap();
        assert!(fp.matches_head(&head));
        let full = Fingerprint::of_head(&head);
        assert!(full.is_complete());
        assert!(!Fingerprint::of_head(b"hellO\n").matches_head(&head));
    }

    #[test]
    fn identical_heads_are_distinct_keys() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "banner\n").unwrap();
        std::fs::write(&b, "banner\n").unwrap();
        let ka = FileKey::of(&std::fs::metadata(&a).unwrap());
        let kb = FileKey::of(&std::fs::metadata(&b).unwrap());
        assert_ne!(ka, kb);
    }

    fn rec(content: &[u8], offset: usize) -> Recorded {
        Recorded {
            fingerprint: Fingerprint::of_head(content),
            offset: offset as u64,
            marker: fnv1a(&content[offset.saturating_sub(MARKER_BYTES)..offset]),
        }
    }

    fn marker_of(content: &[u8], offset: usize) -> Option<u64> {
        (content.len() >= offset)
            .then(|| fnv1a(&content[offset.saturating_sub(MARKER_BYTES)..offset]))
    }

    #[test]
    fn identity_decision() {
        let banner = b"=== app v1 started ===\n".to_vec();
        let mut old = banner.clone();
        old.extend_from_slice(b"first generation line 1\nline 2\n");
        let r = rec(&old, old.len());
        // The same file, grown: yes.
        let mut grown = old.clone();
        grown.extend_from_slice(b"more\n");
        assert!(holds(&r, &grown, |o| marker_of(&grown, o as usize)));
        // Truncated (copytruncate): shorter than the offset, no marker there.
        assert!(!holds(&r, &banner, |o| marker_of(&banner, o as usize)));
        // Rewritten past the offset with the same banner (inode reused): the bytes before
        // the offset differ.
        let mut other = banner.clone();
        other.extend_from_slice(b"second generation, a longer line 1\nline 2\n");
        assert!(!holds(&r, &other, |o| marker_of(&other, o as usize)));
        // Another head: no, whatever the marker says.
        let mut moved = b"X".to_vec();
        moved.extend_from_slice(&old[1..]);
        assert!(!holds(&r, &moved, |o| marker_of(&moved, o as usize)));
        // A short file fingerprinted early, read again when longer: yes.
        let short = rec(b"ab\n", 3);
        assert!(holds(&short, b"ab\ncd\n", |o| marker_of(
            b"ab\ncd\n",
            o as usize
        )));
    }

    #[test]
    fn regular_files_newest_first_without_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), "a").unwrap();
        let files = regular_files(dir.path());
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].size, 1);
        assert!(regular_files(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn marker() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        std::fs::write(&p, "0123456789\n").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(marker_at(&f, 11).unwrap(), fnv1a(b"0123456789\n"));
        assert_eq!(marker_at(&f, 0).unwrap(), fnv1a(b""));
        assert!(marker_at(&f, 12).is_err());
    }
}
