//! Checkpoints: which offsets of which file identities the output has delivered, persisted
//! per input so that a restart neither loses nor repeats lines.
//!
//! `format` is the versioned document on disk, `store` the locked directory and its atomic
//! writes, `writer` the thread that writes them while the agent runs; this module converts
//! between the in-memory registry and the document's entries.

mod format;
mod store;
mod writer;

pub use format::{Entry, VERSION};
pub use store::{FILE_NAME, LOCK_NAME, Store, StoreError, read};
pub use writer::Writer;

use crate::event::{FileState, Progress, Registry};
use crate::identity::{FileKey, Fingerprint};
use format::{hex, unhex};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Entry {
    /// The persisted view of a file's progress.
    pub fn of(st: &FileState) -> Entry {
        let p = st.progress();
        Entry {
            dev: st.key.dev,
            ino: st.key.ino,
            fingerprint_len: p.fingerprint.len,
            fingerprint: hex(p.fingerprint.hash),
            offset: p.acked_offset,
            marker: hex(p.acked_marker),
            path: p.path.clone(),
            last_seen: p.last_seen,
            gzip_length: p.gzip_length,
            gzip_size: p.gzip_size,
            size: Some(st.size.load(Ordering::Relaxed)),
            rotated: p.rotated_away,
        }
    }

    /// The progress a file starts from at its checkpointed offset; None for hashes that do
    /// not parse.
    fn progress(&self) -> Option<Progress> {
        let marker = unhex(&self.marker)?;
        Some(Progress {
            generation: 0,
            fingerprint: Fingerprint {
                len: self.fingerprint_len,
                hash: unhex(&self.fingerprint)?,
            },
            read_offset: self.offset,
            read_marker: marker,
            acked_offset: self.offset,
            acked_marker: marker,
            path: self.path.clone(),
            last_seen: self.last_seen,
            gzip_length: self.gzip_length,
            gzip_size: self.gzip_size,
            rotated_away: self.rotated,
            in_flight: crate::ack::Tracker::default(),
        })
    }
}

/// A cheap digest of what a snapshot would hold: lets an idle agent skip building and
/// serializing an unchanged checkpoint.
pub fn digest(registry: &Registry) -> u64 {
    let mut h: u64 = 0;
    for st in registry.all() {
        let p = st.progress();
        let mut x = st.key.ino ^ st.key.dev.rotate_left(17);
        for v in [
            p.acked_offset,
            p.acked_marker,
            p.fingerprint.hash ^ u64::from(p.fingerprint.len),
            p.path.as_os_str().len() as u64,
            crate::identity::fnv1a(p.path.as_os_str().as_encoded_bytes()),
            // last_seen only matters at the scale of the one-day expiry.
            p.last_seen / 3600,
            p.gzip_length.unwrap_or(u64::MAX),
            p.gzip_size.unwrap_or(u64::MAX),
            u64::from(p.rotated_away),
        ] {
            x = (x ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        }
        // Order-independent: the registry is a hash map.
        h = h.wrapping_add(x);
    }
    h
}

/// Entries for every file of a registry, sorted for stable output.
pub fn snapshot(registry: &Registry) -> Vec<Entry> {
    let mut v: Vec<Entry> = registry.all().iter().map(|s| Entry::of(s)).collect();
    v.sort_by_key(|e| (e.dev, e.ino));
    v
}

/// Puts loaded entries into a registry as files not yet open.
pub fn restore(registry: &Registry, entries: &[Entry]) {
    let mut map = registry.lock();
    for e in entries {
        if let Some(p) = e.progress() {
            let key = FileKey {
                dev: e.dev,
                ino: e.ino,
            };
            let st = FileState::new(key, &e.path, p);
            st.size.fetch_max(e.size.unwrap_or(0), Ordering::Relaxed);
            map.insert(key, Arc::new(st));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::format::tests::{RELEASED_V1, entry};
    use super::*;

    #[test]
    fn registry_round_trip() {
        let reg = Registry::default();
        let e = Entry {
            size: Some(70),
            rotated: true,
            ..entry(3, 30)
        };
        restore(&reg, std::slice::from_ref(&e));
        assert_eq!(snapshot(&reg), vec![e]);
        // An entry of an older agent (no size): the offset is the size known.
        let reg = Registry::default();
        restore(&reg, &[entry(4, 40)]);
        assert_eq!(snapshot(&reg)[0].size, Some(40));
    }

    #[test]
    fn a_released_agents_archive_entry_restores_as_read_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), RELEASED_V1).unwrap();
        let entries = read(dir.path()).unwrap();
        let p = entries[1].progress().unwrap();
        assert_eq!((p.gzip_length, p.gzip_size), (Some(2), Some(27)));
        assert!(p.is_complete());
    }

    #[test]
    fn the_digest_follows_delivery_not_reading() {
        let reg = Registry::default();
        restore(&reg, &[entry(1, 10), entry(2, 20)]);
        let before = digest(&reg);
        let st = reg
            .lock()
            .get(&FileKey { dev: 1, ino: 1 })
            .cloned()
            .unwrap();
        let ticket = st.read_up_to(15, 9);
        assert_eq!(
            digest(&reg),
            before,
            "read but not delivered: nothing to write"
        );
        st.ack(ticket);
        assert_ne!(digest(&reg), before);
    }
}
