//! The checkpoint thread of one input: persists its acknowledged offsets every
//! `checkpoint_interval` while it runs (only when they changed), and writes the final
//! checkpoint once the output has written everything the input read.

use super::{Store, digest, snapshot};
use crate::event::Registry;
use crate::runtime::Stop;
use crate::stats::{self, Stats};
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::{error, info};

/// A running checkpoint thread. `stop` ends the periodic writes; `finish` then writes the
/// final checkpoint (after the output has drained, so that it covers every delivered line).
#[derive(Debug)]
pub struct Writer {
    index: usize,
    registry: Arc<Registry>,
    stop: Stop,
    /// Hands the store back when it ends; None if the thread could not be started.
    thread: Option<JoinHandle<Store>>,
}

impl Writer {
    /// Starts the checkpoint thread of input `index`, writing `registry` to `store`.
    pub fn start(
        index: usize,
        registry: Arc<Registry>,
        store: Store,
        interval: Duration,
        stats: Arc<Stats>,
    ) -> Writer {
        let stop = Stop::new();
        let thread = {
            let (registry, stop) = (registry.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("checkpoint-{index}"))
                .spawn(move || periodic(&registry, store, interval, &stop, &stats))
                .ok()
        };
        Writer {
            index,
            registry,
            stop,
            thread,
        }
    }

    /// Ends the periodic writes (never blocks).
    pub fn stop(&self) {
        self.stop.trigger();
    }

    /// Stops the thread, waits for it and writes the final checkpoint (`running: false`);
    /// false if there is none (the thread did not start or panicked) or it failed.
    pub fn finish(self) -> bool {
        self.stop();
        let Some(mut store) = self.thread.and_then(|h| h.join().ok()) else {
            return false;
        };
        match store.write_final(&snapshot(&self.registry)) {
            Ok(_) => {
                info!(input = self.index, checkpoint = %store.path().display(), "final checkpoint written");
                true
            }
            Err(e) => {
                error!(input = self.index, checkpoint = %store.path().display(), error = %e, "final checkpoint write failed");
                false
            }
        }
    }
}

/// The thread: a write every `interval` until `stop`; hands the store back for the final one.
fn periodic(
    registry: &Registry,
    mut store: Store,
    interval: Duration,
    stop: &Stop,
    stats: &Stats,
) -> Store {
    let mut state = Periodic::new(store.path().display().to_string());
    while matches!(
        stop.receiver().recv_timeout(interval),
        Err(crossbeam_channel::RecvTimeoutError::Timeout)
    ) {
        let d = digest(registry);
        if state.due(d) {
            let result = store.write(&snapshot(registry));
            state.record(d, &result, stats);
        }
    }
    store
}

/// What the loop remembers between writes.
#[derive(Debug)]
struct Periodic {
    /// The checkpoint file, for messages and the health check.
    path: String,
    /// Digest of the registry at the last good write.
    last: Option<u64>,
    /// The last write failed: retry it even if nothing changed.
    failing: bool,
}

impl Periodic {
    fn new(path: String) -> Periodic {
        Periodic {
            path,
            last: None,
            failing: false,
        }
    }

    /// Whether to write: an idle agent skips building and serializing an unchanged
    /// checkpoint, but a failed write is retried every interval until it works.
    fn due(&self, digest: u64) -> bool {
        self.failing || self.last != Some(digest)
    }

    /// Counts a write's outcome and keeps the health check's verdict on this file.
    fn record(&mut self, digest: u64, result: &io::Result<bool>, stats: &Stats) {
        match result {
            Ok(written) => {
                self.last = Some(digest);
                if *written {
                    stats::add(&stats.checkpoint_writes, 1);
                }
                if self.failing {
                    info!(checkpoint = %self.path, "checkpoint writes work again");
                    stats.checkpoint_result(&self.path, None);
                    self.failing = false;
                }
            }
            Err(e) => {
                stats::add(&stats.checkpoint_errors, 1);
                error!(checkpoint = %self.path, error = %e,
                    "checkpoint write failed; the last good checkpoint stays, retrying every checkpoint_interval");
                stats.checkpoint_result(&self.path, Some(e.to_string()));
                self.failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::format::tests::entry;
    use crate::checkpoint::restore;

    #[test]
    fn unchanged_offsets_are_not_written_again() {
        let stats = Stats::default();
        let mut p = Periodic::new("c".into());
        assert!(p.due(1), "the first tick writes");
        p.record(1, &Ok(true), &stats);
        assert!(!p.due(1));
        assert!(p.due(2), "a changed digest writes");
        p.record(2, &Ok(false), &stats);
        assert!(!p.due(2));
        assert_eq!(
            stats::get(&stats.checkpoint_writes),
            1,
            "only real writes count"
        );
    }

    #[test]
    fn a_failed_write_is_retried_until_it_works_and_health_follows() {
        let stats = Stats::default();
        let mut p = Periodic::new("c".into());
        p.record(1, &Ok(true), &stats);
        p.record(2, &Err(io::Error::other("disk full")), &stats);
        assert!(p.due(2), "retried although nothing changed since");
        assert!(p.due(1));
        assert_eq!(stats::get(&stats.checkpoint_errors), 1);
        assert_eq!(stats.checkpoint_failing.lock().unwrap().len(), 1);
        p.record(2, &Ok(true), &stats);
        assert!(!p.due(2));
        assert!(stats.checkpoint_failing.lock().unwrap().is_empty());
    }

    #[test]
    fn finish_writes_the_final_checkpoint_of_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let registry = Arc::new(Registry::default());
        restore(&registry, &[entry(5, 50)]);
        let stats = Arc::new(Stats::default());
        let w = Writer::start(0, registry, store, Duration::from_secs(3600), stats);
        assert!(w.finish());
        let (s, loaded) = Store::open(dir.path()).unwrap();
        assert!(
            !s.found_unclean(),
            "a final checkpoint says the stop was clean"
        );
        assert_eq!(loaded[0].offset, 50);
    }
}
