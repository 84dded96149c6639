//! Operations: the HTTP API (/metrics, /health, /stats), the periodic stats log line,
//! api.listen errors, `logaggregator status`, SIGHUP reload, sd_notify, and the container
//! image's default config run as its ENTRYPOINT would.
mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// HTTP, ports, metrics

/// A port nobody listens on right now (bound to port 0, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether process `pid` holds a listening TCP socket on `port` (/proc/net/tcp{,6} + its fds):
/// proves the agent itself answers on that port, not some other process.
fn listening_on(pid: i32, port: u16) -> bool {
    let want = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(t) = fs::read_to_string(table) else {
            continue;
        };
        for l in t.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 9 && f[1].ends_with(&want) && f[3] == "0A" {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    let fds = fd_targets(pid);
    inodes.iter().any(|i| fds.contains(i))
}

#[derive(Debug)]
struct Http {
    status: u16,
    content_type: String,
    body: String,
}

/// A minimal HTTP/1.0 GET against 127.0.0.1:`port`.
fn http_get(port: u16, path: &str) -> std::io::Result<Http> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let bad = || std::io::Error::other(format!("malformed HTTP response: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let mut head_lines = head.split("\r\n");
    let status_line = head_lines.next().ok_or_else(bad)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let content_type = head_lines
        .filter_map(|h| h.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Ok(Http {
        status,
        content_type,
        body: body.to_string(),
    })
}

/// Parsed Prometheus text: `name{labels}` -> value.
struct Metrics(HashMap<String, f64>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut m = HashMap::new();
        for l in text.lines() {
            if l.starts_with('#') || l.trim().is_empty() {
                continue;
            }
            if let Some((k, v)) = l.rsplit_once(' ')
                && let Ok(v) = v.parse::<f64>()
            {
                m.insert(k.to_string(), v);
            }
        }
        Metrics(m)
    }

    fn opt(&self, key: &str) -> Option<f64> {
        self.0.get(key).copied()
    }

    fn get(&self, key: &str) -> f64 {
        self.opt(key).unwrap_or_else(|| {
            let mut keys: Vec<&String> = self.0.keys().collect();
            keys.sort();
            panic!("metric {key} missing; have {keys:#?}")
        })
    }
}

/// `name{path="<path>"}`.
fn file_key(name: &str, path: &Path) -> String {
    format!("{name}{{path=\"{}\"}}", path.display())
}

const EVENTS: &str = "logaggregator_events_written_total";
const RENAMES: &str = "logaggregator_rotations_total{kind=\"rename\"}";

// ---------------------------------------------------------------------------------------------
// Config and the agent under test

/// The harness config plus `logging.stats_interval` and `api.listen` (which it does not know).
fn yaml(cfg: &Config, port: Option<u16>, stats_interval: Option<&str>) -> String {
    let mut y = cfg.yaml();
    if let Some(s) = stats_interval {
        assert!(y.contains("logging:\n"));
        y = y.replacen(
            "logging:\n",
            &format!("logging:\n  stats_interval: {s}\n"),
            1,
        );
    }
    if let Some(p) = port {
        y += &format!("api:\n  listen: 127.0.0.1:{p}\n");
    }
    y
}

/// The agent with its config file (rewritten for reloads) and its API port.
struct Ops {
    agent: Agent,
    port: Option<u16>,
    cfg_path: PathBuf,
}

/// Starts the agent with `--config <yaml(port)>`. With `api`, picks a free port and waits
/// until the agent itself listens on it; a port taken in between is retried with another.
fn start(
    env: &Env,
    api: bool,
    yaml: &dyn Fn(Option<u16>) -> String,
    tweak: &dyn Fn(&mut Command),
) -> Ops {
    let cfg_path = env.path("ops-config.yaml");
    for attempt in 0.. {
        let port = api.then(free_port);
        fs::write(&cfg_path, yaml(port)).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("--config").arg(&cfg_path);
        cmd.env_remove("LOGAGGREGATOR_LOG_LEVEL")
            .env_remove("LOGAGGREGATOR_LOG_FORMAT")
            .env_remove("NOTIFY_SOCKET");
        tweak(&mut cmd);
        if let Some(ops) = settle(env.spawn_cmd(cmd, Some(env.out())), port, attempt) {
            return Ops { cfg_path, ..ops };
        }
    }
    unreachable!()
}

/// Waits until a freshly spawned agent listens on `port`; None if the port was taken by
/// someone else meanwhile (retry), panics on any other early exit.
fn settle(mut agent: Agent, port: Option<u16>, attempt: u32) -> Option<Ops> {
    let Some(port) = port else {
        return Some(Ops {
            agent,
            port: None,
            cfg_path: PathBuf::new(),
        });
    };
    let pid = agent.pid;
    let end = Instant::now() + DEADLINE;
    loop {
        if listening_on(pid, port) {
            return Some(Ops {
                agent,
                port: Some(port),
                cfg_path: PathBuf::new(),
            });
        }
        if !agent.is_running() {
            let err = agent.stderr();
            if attempt < 5 && err.contains("cannot listen") {
                eprintln!("port {port} was taken before the agent bound it; retrying");
                return None;
            }
            panic!(
                "agent exited before listening on {port}\n{}",
                agent.context()
            );
        }
        if Instant::now() >= end {
            panic!(
                "agent does not listen on {port} after {DEADLINE:?}\n{}",
                agent.context()
            );
        }
        std::thread::sleep(POLL);
    }
}

impl Ops {
    fn get(&self, path: &str) -> Http {
        let port = self.port.expect("agent started without api");
        http_get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.agent.context()))
    }

    fn metrics(&self) -> Metrics {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "/metrics: {r:?}");
        Metrics::parse(&r.body)
    }

    fn stats(&self) -> Value {
        let r = self.get("/stats");
        assert_eq!(r.status, 200, "/stats: {r:?}");
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("/stats is not JSON ({e}): {r:?}"))
    }

    fn health(&self) -> (u16, Value) {
        let r = self.get("/health");
        let v = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("/health is not JSON ({e}): {r:?}"));
        (r.status, v)
    }

    /// Scrapes until `pred` holds; returns that scrape.
    fn wait_metrics(&self, what: &str, pred: impl Fn(&Metrics) -> bool) -> Metrics {
        let mut last = None;
        let ok = poll_until(DEADLINE, || {
            let m = self.metrics();
            let hit = pred(&m);
            last = Some(m);
            hit
        });
        let m = last.unwrap();
        if !ok {
            let mut v: Vec<String> =
                m.0.iter()
                    .filter(|(k, _)| !k.starts_with("logaggregator_file_") || k.contains("lag"))
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
            v.sort();
            panic!(
                "timed out after {DEADLINE:?} waiting for metrics: {what}\nlast scrape:\n{}\n{}",
                v.join("\n"),
                self.agent.context()
            );
        }
        m
    }

    fn wait_stats(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let ok = poll_until(DEADLINE, || {
            last = self.stats();
            pred(&last)
        });
        if !ok {
            panic!(
                "timed out waiting for /stats: {what}; last: {last}\n{}",
                self.agent.context()
            );
        }
        last
    }

    fn wait_health(&self, what: &str, status: u16) -> Value {
        let mut last = (0, Value::Null);
        let ok = poll_until(Duration::from_secs(30), || {
            last = self.health();
            last.0 == status
        });
        if !ok {
            panic!(
                "timed out waiting for /health {status} ({what}); last: {last:?}\n{}",
                self.agent.context()
            );
        }
        last.1
    }

    /// Rewrites the config file, sends SIGHUP, and waits for the agent to say it applied it
    /// (its `n`th "configuration applied" since start).
    fn reload(&self, yaml: &str, n: usize) {
        fs::write(&self.cfg_path, yaml).unwrap();
        self.agent.signal(libc::SIGHUP);
        self.agent.wait(&format!("reload #{n} to be applied"), || {
            count_messages(&self.agent, "reload: configuration applied") >= n
        });
        assert_eq!(
            count_messages(&self.agent, "reload: configuration applied"),
            n,
            "one SIGHUP, one reload\n{}",
            self.agent.context()
        );
    }
}

/// The agent's stderr as JSON log records (unparsable lines skipped).
fn log_records(agent: &Agent) -> Vec<Value> {
    agent
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

fn message(rec: &Value) -> &str {
    rec["fields"]["message"].as_str().unwrap_or("")
}

fn count_messages(agent: &Agent, msg: &str) -> usize {
    log_records(agent)
        .iter()
        .filter(|r| message(r) == msg)
        .count()
}

// ---------------------------------------------------------------------------------------------
// Small filesystems

/// A tmpfs mounted for the test; lazily unmounted on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a 1 MiB tmpfs at `dir`; None (the caller skips) where that is not possible.
fn small_tmpfs(dir: &Path) -> Option<Mount> {
    fs::create_dir_all(dir).unwrap();
    let ok = is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    ok.then(|| Mount(dir.to_path_buf()))
}

/// Fills the filesystem of `dir` with `<dir>/filler` until a write fails with ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    let p = dir.join("filler");
    let mut f = File::create(&p).unwrap();
    for size in [64 * 1024, 4096, 1] {
        let chunk = vec![b'f'; size];
        loop {
            match f.write(&chunk) {
                Ok(n) if n == size => {}
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", p.display()),
            }
        }
    }
    let probe = dir.join("probe");
    let full = fs::write(&probe, vec![0u8; 8192]).is_err();
    let _ = fs::remove_file(&probe);
    assert!(full, "{} is not full after filling it", dir.display());
    p
}

// ---------------------------------------------------------------------------------------------
// 1. /metrics

#[test]
fn metrics_count_lines_bytes_lag_rotations_and_truncation() {
    let env = Env::new();
    let (a, b) = (env.log("a.log"), env.log("b.log"));
    let la = lines("metrics-a", 0..300);
    let lb = lines("metrics-b", 0..170);
    write_lines(&a, &la);
    write_lines(&b, &lb);
    let mut cfg = env.config();
    cfg.input().max_line_bytes = Some("64".into());
    let mut ops = start(&env, true, &|p| yaml(&cfg, p, None), &|_| {});
    let mut out = env.output();

    let m = ops.wait_metrics("all 470 lines written", |m| m.opt(EVENTS) == Some(470.0));
    let r = ops.get("/metrics");
    assert!(
        r.content_type.starts_with("text/plain"),
        "/metrics content type: {:?}",
        r.content_type
    );
    for (path, n) in [(&a, 300.0), (&b, 170.0)] {
        let lines_key = file_key("logaggregator_file_lines_read_total", path);
        let bytes_key = file_key("logaggregator_file_bytes_read_total", path);
        let lag_key = file_key("logaggregator_file_lag_bytes", path);
        assert_eq!(m.get(&lines_key), n, "{lines_key}");
        assert_eq!(m.get(&bytes_key), file_size(path) as f64, "{bytes_key}");
        assert_eq!(m.get(&lag_key), 0.0, "{lag_key}");
    }
    assert_eq!(m.get("logaggregator_lines_read_total"), 470.0);
    assert_eq!(
        m.get("logaggregator_bytes_read_total"),
        (file_size(&a) + file_size(&b)) as f64
    );
    assert_eq!(m.get("logaggregator_files_open"), 2.0);
    assert_eq!(m.get(RENAMES), 0.0);
    assert_eq!(m.get("logaggregator_lines_truncated_total"), 0.0);
    assert_eq!(m.get("logaggregator_lag_bytes"), 0.0);
    assert_eq!(m.get("logaggregator_healthy"), 1.0);

    // A last line without its newline is read but not delivered: it is exactly the lag.
    let partial = "partial-no-newline";
    append_bytes(&b, partial.as_bytes());
    let b_size = file_size(&b) as f64;
    let bytes_b = file_key("logaggregator_file_bytes_read_total", &b);
    let lag_b = file_key("logaggregator_file_lag_bytes", &b);
    let m = ops.wait_metrics("b's partial line read and shown as lag", |m| {
        m.opt(&bytes_b) == Some(b_size) && m.opt(&lag_b) == Some(partial.len() as f64)
    });
    assert_eq!(m.get(EVENTS), 470.0, "a partial line is not an event");
    assert_eq!(
        m.get(&file_key("logaggregator_file_lines_read_total", &b)),
        170.0
    );
    assert_eq!(m.get("logaggregator_lag_bytes"), partial.len() as f64);
    append_bytes(&b, b"\n");
    ops.wait_metrics("the completed line delivered, lag 0", |m| {
        m.opt(&lag_b) == Some(0.0) && m.opt(EVENTS) == Some(471.0)
    });

    // An over-long line is counted as truncated and delivered cut to max_line_bytes.
    append_lines(&a, &["x".repeat(200)]);
    ops.wait_metrics("one truncated line", |m| {
        m.opt("logaggregator_lines_truncated_total") == Some(1.0) && m.opt(EVENTS) == Some(472.0)
    });

    // A rename rotation is counted once; the rotated file is closed after rotate_wait.
    rotate_rename(&a, &env.log("a.log.1"));
    let lc = lines("metrics-c", 0..50);
    append_lines(&a, &lc);
    ops.wait_metrics("rotation counted and the new file delivered", |m| {
        m.opt(RENAMES) == Some(1.0) && m.opt(EVENTS) == Some(522.0)
    });
    let m = ops.wait_metrics("rotated file closed: 2 files open", |m| {
        m.opt("logaggregator_files_open") == Some(2.0)
    });
    assert_eq!(m.get(RENAMES), 1.0);
    assert_eq!(
        m.get("logaggregator_rotations_total{kind=\"truncate\"}"),
        0.0
    );
    assert_eq!(
        m.get("logaggregator_rotations_total{kind=\"fingerprint\"}"),
        0.0
    );
    assert_eq!(m.get("logaggregator_lag_bytes"), 0.0);
    assert_eq!(m.get(EVENTS), 522.0);

    ops.agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    let mut expected: Vec<String> = la.iter().chain(&lb).chain(&lc).cloned().collect();
    expected.push(partial.to_string());
    expected.push("x".repeat(64));
    assert_exactly_once(&out, &expected);
}

// ---------------------------------------------------------------------------------------------
// 2. /health

#[test]
fn health_fails_after_output_fails_for_5s_and_recovers() {
    let env = Env::new();
    let Some(_mount) = small_tmpfs(&env.path("small")) else {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let out_path = env.path("small/events.json");
    let path = env.log("app.log");
    let first = lines("health-out", 0..100);
    write_lines(&path, &first);
    let mut cfg = env.config();
    cfg.output_path = Some(out_path.clone());
    let mut ops = start(&env, true, &|p| yaml(&cfg, p, None), &|_| {});
    let mut out = Output::new(&out_path);
    ops.agent.wait_for_messages(&mut out, &first);
    let (code, body) = ops.health();
    assert_eq!((code, body), (200, serde_json::json!({"status": "ok"})));

    let filler = fill(&env.path("small"));
    // ~300 KB of events for a full filesystem.
    let second = lines("health-out", 100..2100);
    append_lines(&path, &second);
    ops.wait_metrics("output errors", |m| {
        m.opt("logaggregator_output_errors_total")
            .is_some_and(|n| n > 0.0)
    });
    let failing_since = Instant::now();
    let (code, body) = ops.health();
    assert_eq!(
        code, 200,
        "unhealthy at once, not after the 5 s grace: {body}"
    );
    let body = ops.wait_health("output failing > 5 s", 503);
    let waited = failing_since.elapsed();
    assert_eq!(body["status"], "failing", "{body}");
    let reasons: Vec<&str> = body["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("no reasons: {body}"))
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("output") && r.contains(out_path.to_str().unwrap())),
        "a reason should name the failing output {}: {reasons:?}",
        out_path.display()
    );
    assert!(
        waited < Duration::from_secs(12),
        "503 only after {waited:?} of failing output"
    );
    assert_eq!(ops.metrics().get("logaggregator_healthy"), 0.0);

    fs::remove_file(&filler).unwrap();
    let body = ops.wait_health("output works again", 200);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    ops.agent.wait_for_lines(&mut out, all.len());
    out.assert_all_parsed();
    ops.agent.wait_for_messages(&mut out, &all);
    ops.agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &all);
}

#[test]
fn health_fails_while_checkpoints_cannot_be_written_and_recovers() {
    let env = Env::new();
    let fs_dir = env.path("ckptfs");
    let Some(_mount) = small_tmpfs(&fs_dir) else {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let ckpt = fs_dir.join("ckpt");
    let path = env.log("app.log");
    let first = lines("health-ckpt", 0..50);
    write_lines(&path, &first);
    let size1 = file_size(&path);
    let mut cfg = env.config();
    cfg.input().checkpoint_path = ckpt.clone();
    let mut ops = start(&env, true, &|p| yaml(&cfg, p, None), &|_| {});
    let mut out = env.output();
    ops.agent.wait_for_messages(&mut out, &first);
    ops.agent.wait("checkpoint at the end of the file", || {
        checkpoint_for(&ckpt, &path).is_some_and(|e| e.offset == size1)
    });
    assert_eq!(ops.health().0, 200);

    let filler = fill(&fs_dir);
    let second = lines("health-ckpt", 50..100);
    append_lines(&path, &second);
    ops.agent.wait_for_messages(&mut out, &second);
    let body = ops.wait_health("checkpoint cannot be written", 503);
    let ckpt_file = checkpoint_file(&ckpt);
    let reasons = body["reasons"].to_string();
    assert!(
        reasons.contains("checkpoint") && reasons.contains(ckpt_file.to_str().unwrap()),
        "a reason should name the checkpoint file {}: {body}",
        ckpt_file.display()
    );
    let m = ops.metrics();
    assert!(m.get("logaggregator_checkpoint_errors_total") > 0.0);
    assert_eq!(m.get("logaggregator_healthy"), 0.0);
    assert_eq!(
        checkpoint_for(&ckpt, &path).map(|e| e.offset),
        Some(size1),
        "the last good checkpoint stays"
    );

    fs::remove_file(&filler).unwrap();
    let body = ops.wait_health("checkpoint writes work again", 200);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    let size2 = file_size(&path);
    ops.agent.wait("checkpoint catches up", || {
        checkpoint_for(&ckpt, &path).is_some_and(|e| e.offset == size2)
    });
    ops.agent.term_ok();
    out.refresh();
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_exactly_once(&out, &all);
}

// ---------------------------------------------------------------------------------------------
// 3. /stats

#[test]
fn stats_endpoint_reports_processed_throughput_files_and_lag() {
    let env = Env::new();
    let (a, b) = (env.log("a.log"), env.log("b.log"));
    write_lines(&a, &lines("stats-a", 0..300));
    write_lines(&b, &lines("stats-b", 0..200));
    let cfg = env.config();
    let mut ops = start(&env, true, &|p| yaml(&cfg, p, None), &|_| {});
    let mut out = env.output();
    let r = ops.get("/stats");
    assert!(
        r.content_type.starts_with("application/json"),
        "/stats content type: {:?}",
        r.content_type
    );

    let doc = ops.wait_stats("500 processed", |s| s["total_processed"] == 500);
    out.refresh();
    assert_eq!(out.events.len(), 500, "total_processed == lines delivered");
    assert_eq!(doc["total_dropped"], 0, "{doc}");
    assert_eq!(doc["files_open"], 2, "{doc}");
    assert_eq!(doc["lag_bytes"], 0, "{doc}");
    assert_avg_throughput(&doc);

    // A burst once the reporter runs (it samples every second) shows in current_throughput.
    ops.wait_stats("uptime >= 2 s", |s| {
        s["uptime_seconds"].as_u64().is_some_and(|u| u >= 2)
    });
    append_lines(&b, &lines("stats-b", 200..700));
    let doc = ops.wait_stats("1000 processed and current_throughput > 0", |s| {
        s["total_processed"] == 1000 && s["current_throughput"].as_f64().is_some_and(|t| t > 0.0)
    });
    let cur = doc["current_throughput"].as_f64().unwrap();
    assert!(
        cur <= 500.0 * 1.05,
        "current_throughput {cur}/s for a burst of 500 events sampled a second apart: {doc}"
    );
    assert_avg_throughput(&doc);
    let up = doc["uptime_seconds"].as_u64().unwrap();

    append_bytes(&a, b"0123456789");
    ops.wait_stats("lag_bytes == 10 (a partial line)", |s| s["lag_bytes"] == 10);
    ops.wait_stats("uptime advances", |s| {
        s["uptime_seconds"].as_u64().is_some_and(|u| u > up)
    });
    ops.agent.term_ok();
}

/// avg_throughput == total_processed / uptime, with uptime in [uptime_seconds, +1).
fn assert_avg_throughput(doc: &Value) {
    let total = doc["total_processed"].as_f64().unwrap();
    let up = doc["uptime_seconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("uptime_seconds: {doc}")) as f64;
    let avg = doc["avg_throughput"]
        .as_f64()
        .unwrap_or_else(|| panic!("avg_throughput: {doc}"));
    assert!(
        avg > total / (up + 1.0) && (up == 0.0 || avg <= total / up + 1e-9),
        "avg_throughput {avg} does not match {total} events in {up} s: {doc}"
    );
}

/// current_throughput is "events per second over the last 10 seconds": lines delivered right
/// at start-up count too while they are in that window.
#[test]
fn stats_current_throughput_counts_lines_delivered_at_startup() {
    let env = Env::new();
    write_lines(&env.log("a.log"), &lines("startup-burst", 0..500));
    let cfg = env.config();
    let ops = start(&env, true, &|p| yaml(&cfg, p, None), &|_| {});
    ops.wait_stats("500 processed", |s| s["total_processed"] == 500);
    let mut last = Value::Null;
    // Well inside the 10 s window after the burst (the reporter samples every second).
    let ok = poll_until(Duration::from_secs(6), || {
        last = ops.stats();
        last["current_throughput"].as_f64().is_some_and(|t| t > 0.0)
    });
    assert!(
        ok,
        "current_throughput stayed 0 although 500 events were written in the last 10 s: {last}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. The periodic stats line

fn stats_lines(agent: &Agent) -> Vec<Value> {
    log_records(agent)
        .into_iter()
        .filter(|r| message(r) == "stats")
        .collect()
}

#[test]
fn stats_line_is_logged_every_stats_interval() {
    let env = Env::new();
    let ls = lines("stats-line", 0..100);
    write_lines(&env.log("app.log"), &ls);
    let cfg = env.config();
    let mut ops = start(&env, false, &|p| yaml(&cfg, p, Some("1s")), &|_| {});
    let mut out = env.output();
    ops.agent.wait_for_messages(&mut out, &ls);
    ops.agent
        .wait("a \"stats\" line reporting the 100 delivered lines", || {
            stats_lines(&ops.agent)
                .iter()
                .any(|r| r["fields"]["total_processed"] == 100)
        });
    let rec = stats_lines(&ops.agent)
        .into_iter()
        .find(|r| r["fields"]["total_processed"] == 100)
        .unwrap();
    assert_eq!(rec["level"], "INFO", "{rec}");
    assert_eq!(rec["fields"]["files_open"], 1, "{rec}");
    assert_eq!(rec["fields"]["lag_bytes"], 0, "{rec}");
    // Every second: a second line follows.
    let n = stats_lines(&ops.agent).len();
    ops.agent.wait("another stats line a second later", || {
        stats_lines(&ops.agent).len() > n
    });
    ops.agent.term_ok();
}

#[test]
fn stats_interval_0_logs_no_stats_line() {
    let env = Env::new();
    let ls = lines("no-stats-line", 0..100);
    write_lines(&env.log("app.log"), &ls);
    let cfg = env.config();
    let mut ops = start(&env, true, &|p| yaml(&cfg, p, Some("0")), &|_| {});
    let mut out = env.output();
    ops.agent.wait_for_messages(&mut out, &ls);
    // The window: the reporter has sampled a burst of lines, and 3 s have passed (a 1s
    // interval logs twice in that time, see the test above).
    ops.wait_stats("uptime >= 2 s", |s| {
        s["uptime_seconds"].as_u64().is_some_and(|u| u >= 2)
    });
    let more = lines("no-stats-line", 100..200);
    append_lines(&env.log("app.log"), &more);
    ops.agent.wait_for_messages(&mut out, &more);
    ops.wait_stats("reporter sampled the burst and uptime >= 3 s", |s| {
        s["current_throughput"].as_f64().is_some_and(|t| t > 0.0)
            && s["uptime_seconds"].as_u64().is_some_and(|u| u >= 3)
    });
    assert!(
        count_messages(&ops.agent, "logaggregator started") == 1,
        "info logs reach stderr (else the check below proves nothing)\n{}",
        ops.agent.context()
    );
    let found = stats_lines(&ops.agent);
    assert!(found.is_empty(), "stats_interval: 0 still logged {found:?}");
    ops.agent.term_ok();
}

// ---------------------------------------------------------------------------------------------
// 5. api.listen errors

#[test]
fn api_port_in_use_exits_2_naming_the_address() {
    let env = Env::new();
    write_lines(&env.log("app.log"), &lines("port-in-use", 0..10));
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let cfg = env.config();
    let p = env.path("port.yaml");
    fs::write(&p, yaml(&cfg, Some(addr.port()), None)).unwrap();
    let r = env.run(&["--config", p.to_str().unwrap()], |_| {});
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(
        r.stderr.contains(&addr.to_string()),
        "stderr should name {addr}: {r:#?}"
    );
    assert!(!env.out().exists(), "nothing may be delivered: {r:#?}");
    drop(taken);
}

#[test]
fn invalid_api_listen_exits_2_naming_the_key() {
    let env = Env::new();
    let cfg = env.config();
    let p = env.path("bad-listen.yaml");
    let text = cfg.yaml() + "api:\n  listen: nonsense\n";
    fs::write(&p, text).unwrap();
    let r = env.run(&["--config", p.to_str().unwrap()], |_| {});
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(
        r.stderr.contains("api.listen") && r.stderr.contains("nonsense"),
        "stderr should name api.listen and the value: {r:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. `logaggregator status`

#[derive(Debug)]
struct Row {
    size: String,
    offset: String,
    lag: String,
    state: String,
}

/// The file rows of the status table (`PATH INODE SIZE OFFSET LAG LAST SEEN STATE`), by path.
fn status_rows(stdout: &str) -> HashMap<String, Row> {
    let mut rows = HashMap::new();
    for l in stdout.lines() {
        let Some(rest) = l.strip_prefix("  ") else {
            continue;
        };
        let t: Vec<&str> = rest.split_whitespace().collect();
        if t.len() < 7 || ["PATH", "checkpoint", "error:", "+"].contains(&t[0]) {
            continue;
        }
        // LAST SEEN is `-` or `<n><unit> ago`.
        let state = if t[5] == "-" { 6 } else { 7 };
        rows.insert(
            t[0].to_string(),
            Row {
                size: t[2].into(),
                offset: t[3].into(),
                lag: t[4].into(),
                state: t[state..].join(" "),
            },
        );
    }
    rows
}

fn status(env: &Env, cfg_path: &Path, json: bool) -> RunResult {
    let mut args = vec!["status", "--config", cfg_path.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    let r = env.run(&args, |_| {});
    assert_eq!(r.code, Some(0), "status {args:?}: {r:#?}");
    r
}

fn status_json_files(r: &RunResult) -> Vec<Value> {
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {r:#?}"));
    v["inputs"][0]["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no inputs[0].files: {v}"))
        .clone()
}

#[test]
fn status_shows_size_offset_lag_and_rotation() {
    let env = Env::new();
    let (a, b) = (env.log("a.log"), env.log("b.log"));
    let (la, lb) = (lines("status-a", 0..100), lines("status-b", 0..50));
    write_lines(&a, &la);
    write_lines(&b, &lb);
    let cfg = env.config();
    let mut ops = start(&env, false, &|p| yaml(&cfg, p, None), &|_| {});
    let mut out = env.output();
    let all: Vec<String> = la.iter().chain(&lb).cloned().collect();
    ops.agent.wait_for_messages(&mut out, &all);
    ops.agent.wait("checkpoint at both files' ends", || {
        [&a, &b]
            .iter()
            .all(|p| checkpoint_for(&env.ckpt(), p).is_some_and(|e| e.offset == file_size(p)))
    });

    // While the agent runs.
    let r = status(&env, &ops.cfg_path, false);
    let rows = status_rows(&r.stdout);
    for p in [&a, &b] {
        let row = rows
            .get(p.to_str().unwrap())
            .unwrap_or_else(|| panic!("{} not listed while running: {r:#?}", p.display()));
        assert_eq!(row.size, file_size(p).to_string(), "{row:?}");
        assert_eq!(row.offset, row.size, "{row:?}");
        assert_eq!(row.lag, "0", "{row:?}");
    }
    ops.agent.term_ok();

    // Stopped: everything delivered.
    let r = status(&env, &ops.cfg_path, false);
    let rows = status_rows(&r.stdout);
    assert_eq!(rows.len(), 2, "two files: {r:#?}");
    for p in [&a, &b] {
        let row = &rows[p.to_str().unwrap()];
        assert_eq!(row.size, file_size(p).to_string(), "{row:?}");
        assert_eq!(row.offset, row.size, "{row:?}");
        assert_eq!(row.lag, "0", "{row:?}");
        assert_eq!(row.state, "tracked", "{row:?}");
    }

    // 100 bytes appended while stopped: lag 100.
    let b_delivered = file_size(&b);
    append_bytes(&b, format!("{}\n", "y".repeat(99)).as_bytes());
    let r = status(&env, &ops.cfg_path, false);
    let rows = status_rows(&r.stdout);
    let row = &rows[b.to_str().unwrap()];
    assert_eq!(row.size, (b_delivered + 100).to_string(), "{row:?}");
    assert_eq!(row.offset, b_delivered.to_string(), "{row:?}");
    assert_eq!(row.lag, "100", "{row:?}");
    assert_eq!(rows[a.to_str().unwrap()].lag, "0");

    let r = status(&env, &ops.cfg_path, true);
    let files = status_json_files(&r);
    assert_eq!(files.len(), 2, "{files:?}");
    let find = |files: &[Value], p: &Path| -> Value {
        files
            .iter()
            .find(|f| f["path"] == p.to_str().unwrap())
            .cloned()
            .unwrap_or_else(|| panic!("{} missing: {files:?}", p.display()))
    };
    let fb = find(&files, &b);
    assert_eq!(fb["size"], b_delivered + 100, "{fb}");
    assert_eq!(fb["offset"], b_delivered, "{fb}");
    assert_eq!(fb["lag_bytes"], 100, "{fb}");
    let fa = find(&files, &a);
    assert_eq!(fa["size"], file_size(&a), "{fa}");
    assert_eq!(fa["offset"], file_size(&a), "{fa}");
    assert_eq!(fa["lag_bytes"], 0, "{fa}");

    // Rotated (renamed out of the glob) while stopped.
    let a1 = env.log("a.log.1");
    fs::rename(&a, &a1).unwrap();
    let r = status(&env, &ops.cfg_path, false);
    let rows = status_rows(&r.stdout);
    let row = rows
        .get(a.to_str().unwrap())
        .unwrap_or_else(|| panic!("rotated file not listed: {r:#?}"));
    assert_eq!(row.state, format!("rotated to {}", a1.display()), "{r:#?}");
    assert_eq!(row.size, file_size(&a1).to_string(), "{row:?}");
    assert_eq!(row.lag, "0", "{row:?}");
    let files = status_json_files(&status(&env, &ops.cfg_path, true));
    let fa = find(&files, &a);
    assert_eq!(fa["state"], format!("rotated to {}", a1.display()), "{fa}");
}

// ---------------------------------------------------------------------------------------------
// 7. SIGHUP reload

#[test]
fn reload_adds_an_input_without_redelivering_the_others() {
    let env = Env::new();
    fs::create_dir_all(env.path("logs2")).unwrap();
    let a = env.log("a.log");
    let c = env.path("logs2/c.log");
    let mut wa = LogWriter::open(&a, "reload-add-a");
    let mut wc = LogWriter::open(&c, "reload-add-c");
    wa.write_n(100);
    wc.write_n(80);
    let cfg1 = env.config();
    let mut ops = start(&env, false, &|p| yaml(&cfg1, p, None), &|_| {});
    let mut out = env.output();
    ops.agent.wait_for_messages(&mut out, &wa.written);
    assert!(
        wc.written.iter().all(|l| out.count(l) == 0),
        "input 2 is not configured yet"
    );

    let mut cfg2 = cfg1.clone();
    let glob2 = format!("{}/*.log", env.path("logs2").display());
    cfg2.inputs.push(Input::new(&[&glob2], &env.path("ckpt2")));
    ops.reload(&yaml(&cfg2, None, None), 1);
    ops.agent.wait_for_messages(&mut out, &wc.written);
    wa.write_n(50);
    wc.write_n(40);
    let all: Vec<String> = wa.written.iter().chain(&wc.written).cloned().collect();
    ops.agent.wait_for_messages(&mut out, &all);
    ops.agent.wait("input 2's checkpoint", || {
        checkpoint_for(&env.path("ckpt2"), &c).is_some_and(|e| e.offset == file_size(&c))
    });
    ops.agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &all);
}

#[test]
fn reload_removes_an_input_after_its_final_checkpoint() {
    let env = Env::new();
    fs::create_dir_all(env.path("logs2")).unwrap();
    let ckpt2 = env.path("ckpt2");
    let a = env.log("a.log");
    let c = env.path("logs2/c.log");
    let mut wa = LogWriter::open(&a, "reload-rm-a");
    let mut wc = LogWriter::open(&c, "reload-rm-c");
    wa.write_n(100);
    wc.write_n(80);
    let cfg1 = env.config();
    let mut cfg2 = cfg1.clone();
    let glob2 = format!("{}/*.log", env.path("logs2").display());
    let mut second = Input::new(&[&glob2], &ckpt2);
    // Only the final checkpoint (on removal) can record its offset.
    second.checkpoint_interval = "1h".into();
    cfg2.inputs.push(second);
    let mut ops = start(&env, true, &|p| yaml(&cfg2, p, None), &|_| {});
    let mut out = env.output();
    let first: Vec<String> = wa.written.iter().chain(&wc.written).cloned().collect();
    ops.agent.wait_for_messages(&mut out, &first);
    ops.wait_metrics("2 files open", |m| {
        m.opt("logaggregator_files_open") == Some(2.0)
    });
    let c_size = file_size(&c);
    assert_ne!(
        checkpoint_for(&ckpt2, &c).map(|e| e.offset),
        Some(c_size),
        "precondition: no periodic checkpoint of input 2 yet"
    );

    ops.reload(&yaml(&cfg1, ops.port, None), 1);
    ops.agent.wait("input 2's final checkpoint", || {
        checkpoint_for(&ckpt2, &c).is_some_and(|e| e.offset == c_size)
    });
    let m = ops.wait_metrics("input 2's file closed", |m| {
        m.opt("logaggregator_files_open") == Some(1.0)
    });
    assert_eq!(
        m.opt(&file_key("logaggregator_file_lines_read_total", &c)),
        None,
        "removed input still reported"
    );

    let late_c = wc.write_n(30);
    wa.write_n(20);
    ops.agent.wait_for_messages(&mut out, &wa.written);
    wa.write_n(20);
    ops.agent.wait_for_messages(&mut out, &wa.written);
    out.refresh();
    let leaked: Vec<&String> = late_c.iter().filter(|l| out.count(l) > 0).collect();
    assert!(
        leaked.is_empty(),
        "removed input still delivers: {leaked:?}"
    );
    assert_eq!(
        checkpoint_for(&ckpt2, &c).map(|e| e.offset),
        Some(c_size),
        "removed input's checkpoint moved"
    );
    ops.agent.term_ok();
    out.refresh();
    let expected: Vec<String> = wa.written.iter().chain(&first[100..]).cloned().collect();
    assert_exactly_once(&out, &expected);
}

#[test]
fn many_reloads_while_writing_lose_and_double_nothing() {
    let env = Env::new();
    fs::create_dir_all(env.path("logs2")).unwrap();
    let a = env.log("a.log");
    let cfg1 = env.config();
    let mut cfg2 = cfg1.clone();
    let glob2 = format!("{}/*.log", env.path("logs2").display());
    cfg2.inputs.push(Input::new(&[&glob2], &env.path("ckpt2")));
    let mut w = LogWriter::open(&a, "reload-load");
    w.write_n(100);
    let ops = start(&env, false, &|p| yaml(&cfg1, p, None), &|_| {});
    let mut out = env.output();
    ops.agent.wait_for_messages(&mut out, &w.written);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                w.write_n(10);
                std::thread::sleep(Duration::from_millis(2));
            }
            w
        })
    };
    for k in 1..=5 {
        // Alternately add and remove another input: the reload does work, input 0 stays.
        let cfg = if k % 2 == 1 { &cfg2 } else { &cfg1 };
        ops.reload(&yaml(cfg, None, None), k);
        out.refresh();
        let seen = out.raw.len();
        ops.agent.wait("lines keep arriving after the reload", || {
            out.refresh();
            out.raw.len() > seen + 100
        });
    }
    stop.store(true, Ordering::SeqCst);
    let w = writer.join().unwrap();
    ops.agent
        .wait_for_messages_within(&mut out, &w.written, Duration::from_secs(30));
    let mut agent = ops.agent;
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &w.written);
}

#[test]
fn reload_with_an_invalid_config_keeps_the_running_one() {
    let env = Env::new();
    let a = env.log("a.log");
    let mut w = LogWriter::open(&a, "reload-invalid");
    w.write_n(50);
    let cfg = env.config();
    let mut ops = start(&env, false, &|p| yaml(&cfg, p, None), &|_| {});
    let mut out = env.output();
    ops.agent.wait_for_messages(&mut out, &w.written);

    fs::write(&ops.cfg_path, "inputs: [\n  this is: not yaml {{\n").unwrap();
    ops.agent.signal(libc::SIGHUP);
    ops.agent
        .wait("an error about the invalid reloaded config", || {
            log_records(&ops.agent).iter().any(|r| {
                let m = message(r);
                r["level"] == "ERROR" && m.contains("reload") && m.contains("invalid")
            })
        });
    let rec = log_records(&ops.agent)
        .into_iter()
        .find(|r| message(r).contains("reload") && r["level"] == "ERROR")
        .unwrap();
    assert!(
        rec.to_string().contains(ops.cfg_path.to_str().unwrap()),
        "the error should name the config file: {rec}"
    );
    ops.agent.assert_running();
    w.write_n(50);
    ops.agent.wait_for_messages(&mut out, &w.written);

    // A valid config afterwards is applied; still nothing lost or doubled.
    ops.reload(&yaml(&cfg, None, None), 1);
    w.write_n(50);
    ops.agent.wait_for_messages(&mut out, &w.written);
    ops.agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &w.written);
}

#[test]
fn reload_changes_the_log_level_live() {
    let env = Env::new();
    let ls = lines("level-a", 0..10);
    write_lines(&env.log("a.log"), &ls);
    let mut cfg = env.config();
    let mut ops = start(&env, false, &|p| yaml(&cfg, p, None), &|_| {});
    let mut out = env.output();
    ops.agent.wait_for_messages(&mut out, &ls);
    let debug = |agent: &Agent, needle: &str| -> usize {
        log_records(agent)
            .iter()
            .filter(|r| r["level"] == "DEBUG" && r.to_string().contains(needle))
            .count()
    };
    assert_eq!(debug(&ops.agent, ""), 0, "no debug lines at info level");

    cfg.log_level = "debug".into();
    ops.reload(&yaml(&cfg, None, None), 1);
    let b = env.log("b.log");
    let lb = lines("level-b", 0..10);
    write_lines(&b, &lb);
    ops.agent.wait_for_messages(&mut out, &lb);
    ops.agent
        .wait("debug lines about the file found after the reload", || {
            debug(&ops.agent, b.to_str().unwrap()) > 0
        });

    // And back to info: a file found now gets no debug line, although it is delivered.
    cfg.log_level = "info".into();
    ops.reload(&yaml(&cfg, None, None), 2);
    let c = env.log("c.log");
    let lc = lines("level-c", 0..10);
    write_lines(&c, &lc);
    ops.agent.wait_for_messages(&mut out, &lc);
    assert_eq!(
        debug(&ops.agent, c.to_str().unwrap()),
        0,
        "debug lines after going back to info\n{}",
        ops.agent.context()
    );
    ops.agent.term_ok();
}

// ---------------------------------------------------------------------------------------------
// 8. sd_notify

/// Receives notifications into `got` until `want` arrives at index >= `from`.
fn recv_notify(sock: &UnixDatagram, agent: &Agent, got: &mut Vec<String>, from: usize, want: &str) {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + DEADLINE;
    let mut buf = [0u8; 4096];
    while !got.iter().skip(from).any(|m| m == want) {
        if Instant::now() >= end {
            panic!(
                "no {want} notification within {DEADLINE:?}; got {got:?}\n{}",
                agent.context()
            );
        }
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            got.extend(text.lines().filter(|l| !l.is_empty()).map(String::from));
        }
    }
}

#[test]
fn sd_notify_ready_reloading_stopping() {
    let env = Env::new();
    let sock_path = env.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let ls = lines("notify", 0..10);
    write_lines(&env.log("a.log"), &ls);
    let cfg = env.config();
    let ops = start(&env, true, &|p| yaml(&cfg, p, None), &|c| {
        c.env("NOTIFY_SOCKET", &sock_path);
    });
    let mut got = Vec::new();
    recv_notify(&sock, &ops.agent, &mut got, 0, "READY=1");
    assert_eq!(got, ["READY=1"]);
    let (code, _) = ops.health();
    assert_eq!(code, 200, "READY=1 sent before the API answers healthy");
    let mut out = env.output();
    ops.agent.wait_for_messages(&mut out, &ls);

    ops.agent.signal(libc::SIGHUP);
    recv_notify(&sock, &ops.agent, &mut got, 1, "READY=1");
    assert_eq!(got, ["READY=1", "RELOADING=1", "READY=1"]);

    let mut agent = ops.agent;
    agent.term_ok();
    recv_notify(&sock, &agent, &mut got, 3, "STOPPING=1");
    assert_eq!(got, ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]);
}

// ---------------------------------------------------------------------------------------------
// 9. The container image's default config, run as its ENTRYPOINT does

#[test]
fn container_default_config_ships_to_stdout_and_answers_health() {
    let env = Env::new();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/container/config.yaml");
    let text = fs::read_to_string(&shipped).unwrap();
    for needle in ["/var/log/app", "/var/lib/logaggregator", "0.0.0.0:9810"] {
        assert!(
            text.contains(needle),
            "{} no longer mentions {needle}; update this test",
            shipped.display()
        );
    }
    let logs = env.path("var-log-app");
    let state = env.path("var-lib-logaggregator");
    fs::create_dir_all(logs.join("service")).unwrap();
    let config = env.path("etc/config.yaml");
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    let top = logs.join("app.log");
    let ltop = lines("container-top", 0..5);
    write_lines(&top, &ltop);

    // ENTRYPOINT ["logaggregator"], ENV LOGAGGREGATOR_CONFIG=<the config>: no arguments.
    let (mut agent, port) = (0..)
        .find_map(|attempt| {
            let port = free_port();
            let rewritten = text
                .replace("/var/log/app", logs.to_str().unwrap())
                .replace("/var/lib/logaggregator", state.to_str().unwrap())
                .replace("0.0.0.0:9810", &format!("0.0.0.0:{port}"));
            fs::write(&config, rewritten).unwrap();
            let mut cmd = Command::new(bin());
            cmd.env("LOGAGGREGATOR_CONFIG", &config)
                .env_remove("LOGAGGREGATOR_LOG_LEVEL")
                .env_remove("LOGAGGREGATOR_LOG_FORMAT")
                .env_remove("NOTIFY_SOCKET")
                .current_dir(env.root());
            settle(env.spawn_cmd(cmd, None), Some(port), attempt).map(|ops| (ops.agent, port))
        })
        .unwrap();
    let mut out = Output::new(&agent.stdout_path.clone());
    agent.wait_for_messages(&mut out, &ltop);
    let nested = logs.join("service/svc.log");
    let lnested = lines("container-nested", 0..5);
    write_lines(&nested, &lnested);
    agent.wait_for_messages(&mut out, &lnested);
    let r = http_get(port, "/health").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        serde_json::json!({"status": "ok"})
    );
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    let all: Vec<String> = ltop.iter().chain(&lnested).cloned().collect();
    assert_exactly_once(&out, &all);
    for e in &out.events {
        let want = if e.message.starts_with("container-top") {
            &top
        } else {
            &nested
        };
        assert_eq!(e.path, want.to_str().unwrap(), "{}", e.raw);
    }
    assert!(
        checkpoint_for(&state.join("checkpoints"), &top)
            .is_some_and(|e| e.offset == file_size(&top)),
        "checkpoint under the state volume"
    );
}
