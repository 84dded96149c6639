//! The tailers discovery holds: parked ones (quiet, without a thread) and the wake handles of
//! running ones, by identity and by every path their filesystem events may name.

use super::Discovery;
use crate::event::FileState;
use crate::tailer::Parked;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tracing::warn;

impl Discovery {
    /// Keeps a quiet tailer without its thread, unless something already happened to it.
    pub(super) fn park(&mut self, p: Parked) {
        if p.needs_attention() {
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
            if full && p.needs_attention() {
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

    pub(super) fn add_waker(&mut self, path: &Path, st: &Arc<FileState>) {
        let known = self
            .wakers
            .get(path.as_os_str())
            .is_some_and(|(_, s)| Arc::ptr_eq(s, st));
        if !known
            && st.is_active()
            && let Some(w) = self.senders.get(&st.key).cloned()
        {
            // Events now name the file under this path too (renamed, or a second link).
            self.wakers
                .insert(path.as_os_str().to_owned(), (w, st.clone()));
        }
    }
}
