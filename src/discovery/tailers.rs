//! The tailers discovery holds: parked ones (quiet, without a thread) and the wake handles of
//! running ones, by identity and by every path their filesystem events may name.

use super::Discovery;
use crate::event::FileState;
use crate::identity::FileKey;
use crate::tailer::Parked;
use crossbeam_channel::{Sender, TrySendError};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tracing::warn;

impl Discovery {
    /// Keeps a quiet tailer without its thread, unless something already happened to it.
    pub(super) fn park(&mut self, p: Parked) {
        if p.take_wake_or_change() {
            self.resume(p);
        } else {
            self.parked.insert(p.state().key, p);
        }
    }

    pub(super) fn resume(&mut self, p: Parked) {
        if let Err((p, e)) = p.resume() {
            warn!(path = %p.state().origin.display(), error = %e, "cannot start a tailer thread; will retry");
            self.parked.insert(p.state().key, p);
        }
    }

    /// Scan-time care of parked tailers: close the long quiet ones (or all when files wait
    /// for descriptors) and, on a full scan, resume any whose event was missed.
    pub(super) fn tend_parked(&mut self, full: bool) {
        let contended = self.pipeline.slots.contended();
        let close_after = self.input.cfg.close_inactive;
        let (mut resume, mut close) = (Vec::new(), Vec::new());
        let now = Instant::now();
        for (k, p) in &self.parked {
            if full && p.take_wake_or_change() {
                resume.push(*k);
            } else if contended || p.quiet_at(now) >= close_after {
                close.push(*k);
            }
        }
        for k in resume {
            if let Some(p) = self.parked.remove(&k) {
                self.resume(p.without_events());
            }
        }
        for k in close {
            if let Some(p) = self.parked.remove(&k) {
                p.close();
            }
        }
    }
}

/// Wake handles of running tailers: one per file identity, and the paths events name it by.
#[derive(Default)]
pub(super) struct Handles {
    by_key: HashMap<FileKey, Handle>,
    /// The newest file at a path owns that path's events; an older one found under another
    /// name (rotated) does not take them over.
    by_path: HashMap<OsString, FileKey>,
}

/// How to wake one running tailer.
struct Handle {
    wake: Sender<()>,
    state: Arc<FileState>,
}

impl Handles {
    /// A tailer started for `state`, woken through `wake`, named by `paths` in events.
    pub(super) fn started(
        &mut self,
        state: &Arc<FileState>,
        wake: Sender<()>,
        paths: impl IntoIterator<Item = OsString>,
    ) {
        for p in paths {
            self.by_path.insert(p, state.key);
        }
        let state = state.clone();
        self.by_key.insert(state.key, Handle { wake, state });
    }

    /// The state of the tailer that events naming `path` are for.
    pub(super) fn at(&self, path: &OsStr) -> Option<&Arc<FileState>> {
        let key = self.by_path.get(path)?;
        self.by_key.get(key).map(|h| &h.state)
    }

    /// Wakes the tailer that events naming `path` are for; false when there is none running
    /// (the name is forgotten when its tailer ended).
    pub(super) fn wake(&mut self, path: &OsStr) -> bool {
        let Some(h) = self.by_path.get(path).and_then(|k| self.by_key.get(k)) else {
            return false;
        };
        match h.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => true,
            Err(TrySendError::Disconnected(())) => {
                self.by_path.remove(path);
                false
            }
        }
    }

    /// Wakes every running tailer (events were lost, or files wait for descriptors).
    pub(super) fn wake_all(&self) {
        for h in self.by_key.values() {
            let _ = h.wake.try_send(());
        }
    }

    /// Events now name the running file of `st` by `path` too (renamed, or a second link).
    pub(super) fn alias(&mut self, path: &Path, st: &Arc<FileState>) {
        let current = self
            .by_key
            .get(&st.key)
            .is_some_and(|h| Arc::ptr_eq(&h.state, st));
        if current && st.is_active() {
            self.by_path.insert(path.as_os_str().to_owned(), st.key);
        }
    }

    /// Forgets the handles of tailers that ended (a live one must not be woken here).
    pub(super) fn prune(&mut self) {
        self.by_key.retain(|_, h| h.state.is_active());
        let by_key = &self.by_key;
        self.by_path.retain(|_, k| by_key.contains_key(k));
    }
}
