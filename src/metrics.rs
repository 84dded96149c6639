//! What the agent reports about itself: Prometheus metrics, the health verdict and the
//! `/stats` document, all computed from the live pipeline state when asked.

use crate::discovery::Input;
use crate::event::Batch;
use crate::stats::{self, Presence, Stats, get};
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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

/// Per-path figures: every file state whose events carry that path, summed.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The path events carry (where the file was first matched; a renamed file stays with it).
    pub path: String,
    /// File size minus the offset the output has written, over the files of that path.
    pub lag_bytes: u64,
    /// Lines read at that path since the agent started (survives reloads).
    pub lines_read: u64,
    /// Bytes read at that path since the agent started (survives reloads).
    pub bytes_read: u64,
    /// Whether a tailer has one of its files open.
    pub open: bool,
}

/// What the running inputs know of one path.
#[derive(Debug, Default, Clone, Copy)]
struct Tracked {
    open: bool,
    lag: u64,
}

impl View {
    /// Figures for every path reported: those tracked by a running input whose file is open
    /// or on disk, and those closed and gone for less than the series grace
    /// (stats::series_grace). Each call also ages the others out.
    pub fn files(&self) -> Vec<FileReport> {
        let inputs = self
            .inputs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut tracked: HashMap<PathBuf, Tracked> = HashMap::new();
        for input in inputs {
            for st in input.registry.all() {
                let acked = st.progress().acked_offset;
                let size = st.size.load(Ordering::Relaxed).max(acked);
                let t = tracked.entry(st.origin.clone()).or_default();
                t.open |= st.is_active();
                t.lag += size - acked;
            }
        }
        // Closed files are looked for on disk before the counter table is locked.
        let presence: HashMap<&Path, Presence> = tracked
            .iter()
            .map(|(path, t)| {
                let live = t.open || std::fs::metadata(path).is_ok();
                let p = if live { Presence::Live } else { Presence::Gone };
                (path.as_path(), p)
            })
            .collect();
        let counts = stats::file_counters()
            .report(|path| presence.get(path).copied().unwrap_or(Presence::Untracked));
        let mut out: Vec<FileReport> = counts
            .into_iter()
            .map(|c| {
                let t = tracked.get(&c.path).copied().unwrap_or_default();
                FileReport {
                    path: c.path.display().to_string(),
                    lag_bytes: t.lag,
                    lines_read: c.lines,
                    bytes_read: c.bytes,
                    open: t.open,
                }
            })
            .collect();
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
        let total_lag = self.register_rotations_and_files(&reg)?;
        register_stages(&reg)?;
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

    /// The labelled series: rotations by kind, lines, bytes and lag per path. Returns the
    /// total lag.
    fn register_rotations_and_files(&self, reg: &Registry) -> Result<u64, prometheus::Error> {
        let s = &self.stats;
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
                "Lines read, per path (as events carry it), since start.",
            ),
            &["path"],
        )?;
        let bytes = IntCounterVec::new(
            Opts::new(
                "logaggregator_file_bytes_read_total",
                "Bytes read, per path (as events carry it), since start.",
            ),
            &["path"],
        )?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "logaggregator_file_lag_bytes",
                "File size minus the offset the output has written, per path.",
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
        Ok(total_lag)
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
        for path in (self.stats.panicked_tailers.lock())
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            reasons.push(format!(
                "the tailer of {path} panicked (a bug): the file is not read until a restart"
            ));
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

/// The processing pipeline's counters: events a processor could not parse, events a filter
/// dropped, multiline events cut, per input and stage.
fn register_stages(reg: &Registry) -> Result<(), prometheus::Error> {
    let vec =
        |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["input", "processor"]);
    let failed = vec(
        "logaggregator_processor_failures_total",
        "Events a processor could not parse (they go on unchanged, with parse_error), per input and processor (index:type).",
    )?;
    let dropped = vec(
        "logaggregator_processor_dropped_total",
        "Events a filter dropped, per input and processor (index:type).",
    )?;
    let cut = IntCounterVec::new(
        Opts::new(
            "logaggregator_multiline_cut_total",
            "Multiline events cut at max_lines or max_bytes, per input.",
        ),
        &["input"],
    )?;
    for (k, v) in crate::stats::stage_counters() {
        match k.what {
            "failed" => failed.with_label_values(&[&k.input, &k.stage]).inc_by(v),
            "dropped" => dropped.with_label_values(&[&k.input, &k.stage]).inc_by(v),
            "cut" => cut.with_label_values(&[&k.input]).inc_by(v),
            _ => {}
        }
    }
    reg.register(Box::new(failed))?;
    reg.register(Box::new(dropped))?;
    reg.register(Box::new(cut))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicked_tailer_makes_health_fail_naming_the_file() {
        let (_tx, rx) = crossbeam_channel::bounded(1);
        let view = View {
            stats: Arc::new(Stats::default()),
            inputs: Arc::new(RwLock::new(Vec::new())),
            channel: rx,
        };
        assert!(view.health().is_ok());
        view.stats.tailer_panicked("/l/a.log".into());
        view.stats.tailer_panicked("/l/a.log".into());
        let reasons = view.health().unwrap_err();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("/l/a.log") && reasons[0].contains("panicked"));
    }
}
