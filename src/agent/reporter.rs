//! The reporter thread: samples the events written every second (the `/stats` document's
//! `current_throughput`) and logs a `stats` line every `logging.stats_interval`.

use crate::metrics::View;
use crate::runtime::Stop;
use crate::stats;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::info;

/// Samples kept: the current throughput is taken over the last 10 seconds.
const SAMPLES: usize = 11;

/// Events written over the last few seconds, one sample a second.
#[derive(Debug)]
struct Throughput {
    samples: VecDeque<(Instant, u64)>,
}

impl Throughput {
    fn new(started: Instant) -> Throughput {
        Throughput {
            samples: VecDeque::from([(started, 0)]),
        }
    }

    /// Adds a sample (the events written so far, at `now`) and returns the events per second
    /// since the oldest one kept.
    fn sample(&mut self, now: Instant, events: u64) -> f64 {
        self.samples.push_back((now, events));
        while self.samples.len() > SAMPLES {
            self.samples.pop_front();
        }
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) => {
                let secs = b.0.duration_since(a.0).as_secs_f64();
                if secs > 0.0 {
                    (b.1 - a.1) as f64 / secs
                } else {
                    0.0
                }
            }
            _ => 0.0,
        }
    }
}

/// Starts the reporter; it ends at `stop`. None if the thread could not be started (the
/// agent runs on without the stats line).
pub(super) fn spawn(view: View, every: Duration, stop: Stop) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("reporter".into())
        .spawn(move || {
            let mut rate = Throughput::new(view.stats.started);
            let mut last_log = Instant::now();
            let mut last_events = 0u64;
            while stop
                .receiver()
                .recv_timeout(Duration::from_secs(1))
                .is_err()
                && !stop.is_set()
            {
                let events = stats::get(&view.stats.events_written);
                let current = rate.sample(Instant::now(), events);
                view.stats
                    .current_throughput
                    .store(current.to_bits(), Ordering::Relaxed);
                if !every.is_zero() && last_log.elapsed() >= every {
                    let secs = last_log.elapsed().as_secs_f64();
                    let doc = view.stats_doc();
                    info!(
                        events_per_sec = format!("{:.1}", (events - last_events) as f64 / secs),
                        total_processed = doc.total_processed,
                        files_open = doc.files_open,
                        lag_bytes = doc.lag_bytes,
                        lines_truncated = doc.lines_truncated,
                        "stats"
                    );
                    last_log = Instant::now();
                    last_events = events;
                }
            }
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_is_over_the_last_ten_seconds() {
        let t0 = Instant::now();
        let mut t = Throughput::new(t0);
        assert_eq!(t.sample(t0, 0), 0.0, "no time has passed");
        assert_eq!(t.sample(t0 + Duration::from_secs(1), 100), 100.0);
        for s in 2..=20 {
            t.sample(t0 + Duration::from_secs(s), 100 + (s - 1) * 10);
        }
        // The first second's burst of 100 has left the window: 10 per second since.
        assert_eq!(t.sample(t0 + Duration::from_secs(21), 300), 10.0);
    }
}
