//! What the agent reports about itself: Prometheus metrics, the health verdict and the
//! `/stats` document, all computed from the live pipeline state when asked.

use crate::discovery::Input;
use crate::event::Batch;
use crate::stats::{Stats, get};
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The output counts as unhealthy after failing this long.
pub const OUTPUT_FAILING_GRACE: Duration = Duration::from_secs(5);

/// Everything the reports read, shared with the HTTP server and the stats logger.
#[derive(Debug, Clone)]
pub struct View {
    /// Counters and health flags.
    pub stats: Arc<Stats>,
    /// The running inputs (replaced on reload).
    pub inputs: Arc<RwLock<Vec<Arc<Input>>>>,
    /// The tailers-to-output channel, for its depth.
    pub channel: crossbeam_channel::Receiver<Batch>,
}

/// Per-file figures.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// Path as last seen.
    pub path: String,
    /// Size last seen.
    pub size: u64,
    /// Offset the output has written.
    pub acked_offset: u64,
    /// size - acked_offset.
    pub lag_bytes: u64,
    /// Lines read since start.
    pub lines_read: u64,
    /// Bytes read since start.
    pub bytes_read: u64,
    /// Whether a tailer has it open.
    pub open: bool,
}

impl View {
    /// Figures for every known file.
    pub fn files(&self) -> Vec<FileReport> {
        let inputs = self
            .inputs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = Vec::new();
        for input in inputs {
            for st in input.registry.all() {
                let p = st.progress();
                let size = st.size.load(Ordering::Relaxed).max(p.acked_offset);
                out.push(FileReport {
                    path: p.path.display().to_string(),
                    size,
                    acked_offset: p.acked_offset,
                    lag_bytes: size - p.acked_offset,
                    lines_read: get(&st.lines_read),
                    bytes_read: get(&st.bytes_read),
                    open: st.is_active(),
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Prometheus text exposition.
    pub fn prometheus(&self) -> Result<String, prometheus::Error> {
        let reg = Registry::new();
        let s = &self.stats;
        let counter = |name: &str, help: &str, v: u64| -> Result<(), prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            c.inc_by(v);
            reg.register(Box::new(c))
        };
        let gauge = |name: &str, help: &str, v: i64| -> Result<(), prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            g.set(v);
            reg.register(Box::new(g))
        };
        for (name, help, v) in [
            (
                "logaggregator_lines_read_total",
                "Lines read from all files.",
                &s.lines_read,
            ),
            (
                "logaggregator_bytes_read_total",
                "Bytes read from all files.",
                &s.bytes_read,
            ),
            (
                "logaggregator_events_written_total",
                "Events written and flushed by the output.",
                &s.events_written,
            ),
            (
                "logaggregator_lines_truncated_total",
                "Lines cut to max_line_bytes.",
                &s.lines_truncated,
            ),
            (
                "logaggregator_nul_bytes_skipped_total",
                "NUL bytes skipped at line starts (copytruncate holes).",
                &s.nul_bytes_skipped,
            ),
            (
                "logaggregator_checkpoint_writes_total",
                "Checkpoint files written.",
                &s.checkpoint_writes,
            ),
            (
                "logaggregator_checkpoint_errors_total",
                "Checkpoint writes that failed.",
                &s.checkpoint_errors,
            ),
            (
                "logaggregator_output_errors_total",
                "Output writes that failed (each retry counts).",
                &s.output_errors,
            ),
        ] {
            counter(name, help, get(v))?;
        }
        gauge(
            "logaggregator_files_open",
            "Files open by tailers.",
            get(&s.files_open) as i64,
        )?;
        gauge(
            "logaggregator_channel_depth",
            "Batches waiting between the tailers and the output.",
            self.channel.len() as i64,
        )?;
        gauge(
            "logaggregator_uptime_seconds",
            "Seconds since the agent started.",
            s.started.elapsed().as_secs() as i64,
        )?;
        let rotations = IntCounterVec::new(
            Opts::new("logaggregator_rotations_total", "Rotations seen, by kind."),
            &["kind"],
        )?;
        for (kind, v) in [
            ("rename", &s.rotations_rename),
            ("truncate", &s.rotations_truncate),
            ("fingerprint", &s.rotations_fingerprint),
        ] {
            rotations.with_label_values(&[kind]).inc_by(get(v));
        }
        reg.register(Box::new(rotations))?;

        let lines = IntCounterVec::new(
            Opts::new(
                "logaggregator_file_lines_read_total",
                "Lines read, per file.",
            ),
            &["path"],
        )?;
        let bytes = IntCounterVec::new(
            Opts::new(
                "logaggregator_file_bytes_read_total",
                "Bytes read, per file.",
            ),
            &["path"],
        )?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "logaggregator_file_lag_bytes",
                "File size minus the offset the output has written, per file.",
            ),
            &["path"],
        )?;
        let mut total_lag = 0u64;
        for f in self.files() {
            lines.with_label_values(&[&f.path]).inc_by(f.lines_read);
            bytes.with_label_values(&[&f.path]).inc_by(f.bytes_read);
            lag.with_label_values(&[&f.path]).set(f.lag_bytes as i64);
            total_lag += f.lag_bytes;
        }
        reg.register(Box::new(lines))?;
        reg.register(Box::new(bytes))?;
        reg.register(Box::new(lag))?;
        gauge(
            "logaggregator_lag_bytes",
            "Sum of the per-file lag.",
            total_lag as i64,
        )?;
        gauge(
            "logaggregator_healthy",
            "1 while /health answers 200.",
            i64::from(self.health().is_ok()),
        )?;

        let mut buf = Vec::new();
        prometheus::TextEncoder::new().encode(&reg.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Ok while the pipeline works; the reasons otherwise.
    pub fn health(&self) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        if let Some((since, why)) = self
            .stats
            .output_failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && since.elapsed() >= OUTPUT_FAILING_GRACE
        {
            reasons.push(format!(
                "output failing for {}s: {why}",
                since.elapsed().as_secs()
            ));
        }
        for (path, e) in self
            .stats
            .checkpoint_failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            reasons.push(format!("checkpoint {path} cannot be written: {e}"));
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    /// The `/stats` document (the shape older LogStream tooling reads, plus files and lag).
    pub fn stats_doc(&self) -> StatsDoc {
        let s = &self.stats;
        let uptime = s.started.elapsed().as_secs_f64();
        let processed = get(&s.events_written);
        let files = self.files();
        StatsDoc {
            total_processed: processed,
            total_dropped: 0,
            uptime_seconds: uptime as u64,
            avg_throughput: if uptime > 0.0 {
                processed as f64 / uptime
            } else {
                0.0
            },
            current_throughput: f64::from_bits(s.current_throughput.load(Ordering::Relaxed)),
            files_open: get(&s.files_open),
            lag_bytes: files.iter().map(|f| f.lag_bytes).sum(),
            lines_truncated: get(&s.lines_truncated),
        }
    }
}

/// Body of `GET /stats`.
#[derive(Debug, Serialize)]
pub struct StatsDoc {
    /// Events written by the output since start.
    pub total_processed: u64,
    /// Lines given up on: always 0 (truncated lines are delivered, and counted below).
    pub total_dropped: u64,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Events per second since start.
    pub avg_throughput: f64,
    /// Events per second over the last 10 seconds.
    pub current_throughput: f64,
    /// Files open.
    pub files_open: u64,
    /// Bytes written to files but not yet by the output.
    pub lag_bytes: u64,
    /// Lines cut to max_line_bytes.
    pub lines_truncated: u64,
}
