//! Per-file metrics over the life of the process: counters that survive a reload which
//! restarts their input, and series of files closed and gone that are dropped after the grace
//! while those of files still on disk stay.
mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const LINES: &str = "logaggregator_file_lines_read_total";
const BYTES: &str = "logaggregator_file_bytes_read_total";
const LAG: &str = "logaggregator_file_lag_bytes";
const EVENTS: &str = "logaggregator_events_written_total";
const TOTAL_LINES: &str = "logaggregator_lines_read_total";
const TOTAL_BYTES: &str = "logaggregator_bytes_read_total";
/// The test-only override of the series grace (5 minutes otherwise).
const GRACE_ENV: &str = "LOGAGGREGATOR_TEST_SERIES_GRACE_MS";

/// Parsed Prometheus text: `name{labels}` -> value.
#[derive(Debug)]
struct Metrics(HashMap<String, f64>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let m = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse::<f64>().ok()?)))
            .collect();
        Metrics(m)
    }

    fn opt(&self, key: &str) -> Option<f64> {
        self.0.get(key).copied()
    }

    fn get(&self, key: &str) -> f64 {
        self.opt(key)
            .unwrap_or_else(|| panic!("metric {key} missing; have {:#?}", self.sorted()))
    }

    fn file(&self, name: &str, path: &Path) -> Option<f64> {
        self.opt(&file_key(name, path))
    }

    /// Sum of a per-file metric over every path reported.
    fn sum(&self, name: &str) -> f64 {
        let prefix = format!("{name}{{");
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Whether any per-file series names `path`.
    fn reports(&self, path: &Path) -> bool {
        [LINES, BYTES, LAG]
            .iter()
            .any(|n| self.file(n, path).is_some())
    }

    fn sorted(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
        v.sort();
        v
    }
}

/// `name{path="<path>"}`.
fn file_key(name: &str, path: &Path) -> String {
    format!("{name}{{path=\"{}\"}}", path.display())
}

/// `GET /metrics`, parsed.
fn scrape(port: u16) -> Result<Metrics, String> {
    metrics_text(port).map(|body| Metrics::parse(&body))
}

/// The agent, its config file (rewritten for reloads) and its API port.
struct Ops {
    agent: Agent,
    port: u16,
    cfg_path: PathBuf,
}

/// The harness config plus `api.listen`.
fn yaml(cfg: &Config, port: u16) -> String {
    format!("{}api:\n  listen: 127.0.0.1:{port}\n", cfg.yaml())
}

/// Starts the agent with its API on a free port and waits until `/metrics` answers; a port
/// taken meanwhile by someone else is retried with another.
fn start(env: &Env, cfg: &Config, grace_ms: Option<u64>) -> Ops {
    let cfg_path = env.path("metrics-config.yaml");
    for attempt in 0..5 {
        let port = api_free_port();
        fs::write(&cfg_path, yaml(cfg, port)).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("--config").arg(&cfg_path);
        cmd.env_remove("LOGAGGREGATOR_LOG_LEVEL")
            .env_remove("LOGAGGREGATOR_LOG_FORMAT")
            .env_remove("NOTIFY_SOCKET")
            .env_remove(GRACE_ENV);
        if let Some(ms) = grace_ms {
            cmd.env(GRACE_ENV, ms.to_string());
        }
        let mut agent = env.spawn_cmd(cmd, Some(env.out()));
        let up = poll_until(DEADLINE, || scrape(port).is_ok() || !agent.is_running());
        if up && agent.is_running() {
            return Ops {
                agent,
                port,
                cfg_path,
            };
        }
        if attempt < 4 && agent.stderr().contains("cannot listen") {
            continue;
        }
        panic!(
            "agent does not serve /metrics on {port}\n{}",
            agent.context()
        );
    }
    unreachable!()
}

impl Ops {
    fn metrics(&self) -> Metrics {
        scrape(self.port).unwrap_or_else(|e| panic!("GET /metrics: {e}\n{}", self.agent.context()))
    }

    /// Scrapes until `pred` holds, handing every scrape to `each` first; returns the last.
    fn wait_metrics_each(
        &self,
        what: &str,
        mut each: impl FnMut(&Metrics),
        pred: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let mut last = None;
        let ok = poll_until(DEADLINE + Duration::from_secs(5), || {
            let m = self.metrics();
            each(&m);
            let hit = pred(&m);
            last = Some(m);
            hit
        });
        let m = last.unwrap();
        if !ok {
            panic!(
                "timed out waiting for metrics: {what}\nlast scrape:\n{}\n{}",
                m.sorted().join("\n"),
                self.agent.context()
            );
        }
        m
    }

    fn wait_metrics(&self, what: &str, pred: impl Fn(&Metrics) -> bool) -> Metrics {
        self.wait_metrics_each(what, |_| {}, pred)
    }

    /// Rewrites the config, sends SIGHUP, and waits for the `n`th "configuration applied".
    fn reload(&self, cfg: &Config, n: usize) {
        fs::write(&self.cfg_path, yaml(cfg, self.port)).unwrap();
        self.agent.signal(libc::SIGHUP);
        self.agent.wait(&format!("reload #{n} to be applied"), || {
            count_messages(&self.agent, "reload: configuration applied") >= n
        });
    }
}

fn count_messages(agent: &Agent, msg: &str) -> usize {
    agent
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["fields"]["message"].as_str() == Some(msg))
        .count()
}

/// The per-file sums equal the totals (nothing dropped in between).
fn assert_sums_match(m: &Metrics) {
    assert_eq!(m.sum(LINES), m.get(TOTAL_LINES), "lines per file vs total");
    assert_eq!(m.sum(BYTES), m.get(TOTAL_BYTES), "bytes per file vs total");
}

#[test]
fn per_file_counters_survive_a_reload_that_restarts_the_input() {
    let env = Env::new();
    let (a, b) = (env.log("a.log"), env.log("b.log"));
    write_lines(&a, &lines("reload-a", 0..1000));
    write_lines(&b, &lines("reload-b", 0..10));
    let mut cfg = env.config();
    let ops = start(&env, &cfg, None);
    let m = ops.wait_metrics("1010 lines written", |m| m.opt(EVENTS) == Some(1010.0));
    assert_eq!(m.file(LINES, &a), Some(1000.0));
    assert_eq!(m.file(BYTES, &a), Some(file_size(&a) as f64));
    assert_sums_match(&m);

    // Any change to the input restarts it: a new input, registry and file states.
    cfg.input().poll_interval = "60ms".into();
    ops.reload(&cfg, 1);
    assert_eq!(
        count_messages(&ops.agent, "reload: input removed or changed; stopping it"),
        1,
        "the input was restarted\n{}",
        ops.agent.context()
    );
    append_lines(&a, &lines("reload-a", 1000..1001));
    let mut seen = Vec::new();
    let m = ops.wait_metrics_each(
        "the appended line written",
        |m| seen.push(m.file(LINES, &a)),
        |m| m.opt(EVENTS) == Some(1011.0) && m.opt(TOTAL_LINES) == Some(1011.0),
    );
    assert_eq!(
        m.file(LINES, &a),
        Some(1001.0),
        "a.log's counter continues across the reload"
    );
    assert_eq!(m.file(BYTES, &a), Some(file_size(&a) as f64));
    assert_eq!(m.file(LINES, &b), Some(10.0));
    assert!(
        seen.iter().all(|v| v.is_some_and(|v| v >= 1000.0)),
        "a.log's counter went backwards or vanished after the reload: {seen:?}"
    );
    assert_sums_match(&m);
    assert_eq!(m.get("logaggregator_lag_bytes"), 0.0);
}

#[test]
fn series_of_deleted_files_are_dropped_after_the_grace_live_ones_stay() {
    const GRACE: Duration = Duration::from_secs(3);
    const DATED: usize = 30;
    let env = Env::new();
    let live = env.log("live.log");
    write_lines(&live, &lines("live", 0..10));
    let dated: Vec<PathBuf> = (0..DATED)
        .map(|i| env.log(&format!("app-2024-01-{i:02}.log")))
        .collect();
    for (i, p) in dated.iter().enumerate() {
        write_lines(p, &lines(&format!("dated-{i}"), 0..20));
    }
    let mut cfg = env.config();
    // Every file, the live one too, is closed once read: "closed" alone drops nothing.
    cfg.input().extra.push("close_inactive: 300ms".into());
    let ops = start(&env, &cfg, Some(GRACE.as_millis() as u64));
    let total = (10 + 20 * DATED) as f64;
    let m = ops.wait_metrics("every file read, delivered and closed", |m| {
        m.opt(EVENTS) == Some(total) && m.opt("logaggregator_files_open") == Some(0.0)
    });
    for p in &dated {
        assert_eq!(m.file(LINES, p), Some(20.0), "{}", p.display());
    }
    assert_sums_match(&m);

    for p in &dated {
        fs::remove_file(p).unwrap();
    }
    let deleted_at = Instant::now();
    let m = ops.wait_metrics_each(
        "the deleted files' series dropped",
        |m| {
            // Scrapes that began within the grace still show every deleted file.
            if deleted_at.elapsed() < GRACE {
                let missing: Vec<&PathBuf> = dated.iter().filter(|p| !m.reports(p)).collect();
                assert!(missing.is_empty(), "dropped before the grace: {missing:?}");
            }
            assert_eq!(
                m.file(LINES, &live),
                Some(10.0),
                "the live file's series stays"
            );
        },
        |m| dated.iter().all(|p| !m.reports(p)),
    );
    assert!(deleted_at.elapsed() >= GRACE);
    // The totals do not go backwards; the live file (closed, on disk) is still reported.
    assert_eq!(m.get(TOTAL_LINES), total);
    assert_eq!(m.file(LINES, &live), Some(10.0));
    assert_eq!(m.file(LAG, &live), Some(0.0));

    append_lines(&live, &lines("live", 10..11));
    let m = ops.wait_metrics("the live file's new line", |m| {
        m.opt(EVENTS) == Some(total + 1.0)
    });
    assert_eq!(m.file(LINES, &live), Some(11.0));
    assert_eq!(m.file(BYTES, &live), Some(file_size(&live) as f64));
    assert_eq!(m.get(TOTAL_LINES), total + 1.0);
    assert_eq!(m.sum(LINES), 11.0, "only the live file is reported");
}

#[test]
fn a_rename_rotation_continues_the_path_counter() {
    let env = Env::new();
    let (a, a1) = (env.log("a.log"), env.log("a.log.1"));
    write_lines(&a, &lines("rot-old", 0..100));
    let mut cfg = env.config();
    // The rotated name is matched too: the old file is followed there by identity.
    cfg.input().paths = vec![env.glob("*.log*")];
    let ops = start(&env, &cfg, None);
    ops.wait_metrics("100 lines written", |m| m.opt(EVENTS) == Some(100.0));
    rotate_rename(&a, &a1);
    append_lines(&a, &lines("rot-new", 0..5));
    let mut seen = Vec::new();
    let m = ops.wait_metrics_each(
        "the new file's lines written",
        |m| seen.push(m.file(LINES, &a)),
        |m| m.opt(EVENTS) == Some(105.0) && m.opt(TOTAL_LINES) == Some(105.0),
    );
    assert_eq!(
        m.file(LINES, &a),
        Some(105.0),
        "both generations count at a.log"
    );
    assert_eq!(m.file(LINES, &a1), None, "the rotated name adds no series");
    assert!(
        seen.iter().all(|v| v.is_some_and(|v| v >= 100.0)),
        "a.log's counter went backwards or vanished at the rotation: {seen:?}"
    );
    assert_sums_match(&m);
}
