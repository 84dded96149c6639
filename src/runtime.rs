//! What the threads of a running agent share besides the files: the stop signal, the pool of
//! read buffers and the open-file budget.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The stop signal every thread selects on: dropping the sender wakes all receivers at once.
#[derive(Debug, Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    tx: Arc<Mutex<Option<crossbeam_channel::Sender<()>>>>,
    rx: crossbeam_channel::Receiver<()>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    /// A stop signal not yet given.
    pub fn new() -> Stop {
        let (tx, rx) = crossbeam_channel::bounded(0);
        Stop {
            flag: Arc::new(AtomicBool::new(false)),
            tx: Arc::new(Mutex::new(Some(tx))),
            rx,
        }
    }

    /// Asks every thread to stop.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Release);
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Whether stop was asked.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// A receiver that becomes ready (disconnected) when stop is asked.
    pub fn receiver(&self) -> &crossbeam_channel::Receiver<()> {
        &self.rx
    }

    /// How many handles of this signal exist, this one included. Each thread of an input
    /// (discovery, every tailer, parked or running) carries one in its `TailResources` until it
    /// ends: tailer threads are detached, so this is how shutdown waits for them.
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.flag)
    }
}

/// A fixed set of read buffers shared by all tailers: bounds memory whatever the file count.
#[derive(Debug, Clone)]
pub struct BufferPool {
    tx: crossbeam_channel::Sender<Vec<u8>>,
    rx: crossbeam_channel::Receiver<Vec<u8>>,
    /// Capacity a buffer is trimmed back to when returned.
    pub chunk: usize,
}

impl BufferPool {
    /// `count` buffers of `chunk` bytes (allocated on first use).
    pub fn new(count: usize, chunk: usize) -> BufferPool {
        let (tx, rx) = crossbeam_channel::bounded(count);
        for _ in 0..count {
            let _ = tx.send(Vec::new());
        }
        BufferPool { tx, rx, chunk }
    }

    /// Takes a buffer, waiting while all are in flight; None when `stop` fires first.
    pub fn take(&self, stop: &Stop) -> Option<Vec<u8>> {
        crossbeam_channel::select! {
            recv(self.rx) -> b => b.ok(),
            recv(stop.receiver()) -> _ => None,
        }
    }

    /// Frees the memory of the buffers sitting in the pool (those in flight are untouched).
    pub fn trim(&self) {
        let idle: Vec<Vec<u8>> = self.rx.try_iter().collect();
        for _ in idle {
            let _ = self.tx.try_send(Vec::new());
        }
    }

    /// Gives a buffer back, trimming one that grew for a long line.
    pub fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        if buf.capacity() > self.chunk * 2 {
            buf.shrink_to(self.chunk);
        }
        let _ = self.tx.try_send(buf);
    }
}

/// Open-file budget shared by all inputs (max_open_files): a file waits its turn for a slot.
#[derive(Debug)]
pub struct OpenSlots {
    max: usize,
    open: std::sync::atomic::AtomicUsize,
    waiting: std::sync::atomic::AtomicUsize,
}

impl OpenSlots {
    /// A budget of `max` open files.
    pub fn new(max: usize) -> OpenSlots {
        OpenSlots {
            max: max.max(1),
            open: Default::default(),
            waiting: Default::default(),
        }
    }

    /// Takes a slot if one is free.
    pub fn try_acquire(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Returns a slot.
    pub fn release(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Records how many files are waiting for a slot (set by discovery after each scan).
    pub fn set_waiting(&self, n: usize) {
        self.waiting.store(n, Ordering::Release);
    }

    /// Whether files are waiting: quiet tailers then give their slot up early.
    pub fn contended(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// The budget.
    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_counts_its_holders_until_they_end() {
        let stop = Stop::new();
        let held = stop.clone();
        let thread = std::thread::spawn(move || {
            let _ = held.receiver().recv();
            assert!(held.is_set());
        });
        assert_eq!(stop.holders(), 2);
        stop.trigger();
        thread.join().unwrap();
        assert_eq!(stop.holders(), 1, "the thread's clone went with it");
    }
}
