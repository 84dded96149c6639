//! Harness shared by the end-to-end tests: temp dirs, configs, the real agent binary as a
//! child process, an incremental reader of its output file, writers that rotate like
//! logrotate, and multiset assertions ("every line exactly once").
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Generous deadline for anything the agent should do "soon": 2 cores, tests in parallel.
pub const DEADLINE: Duration = Duration::from_secs(15);
/// Polling period of every wait.
pub const POLL: Duration = Duration::from_millis(20);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_logaggregator")
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Polls `cond` every 20 ms until it holds; false on timeout.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until `cond` holds, panicking after `timeout` with `what` and `context()` (e.g. stderr).
pub fn wait_until(
    timeout: Duration,
    what: &str,
    context: impl Fn() -> String,
    cond: impl FnMut() -> bool,
) {
    if !poll_until(timeout, cond) {
        panic!(
            "timed out after {:?} waiting for: {what}\n{}",
            timeout,
            context()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Lines

/// A unique line: `"<prefix> line 000123"`.
pub fn line(prefix: &str, i: usize) -> String {
    format!("{prefix} line {i:06}")
}

pub fn lines(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| line(prefix, i)).collect()
}

pub fn joined(lines: &[String]) -> Vec<u8> {
    let mut b = Vec::new();
    for l in lines {
        b.extend_from_slice(l.as_bytes());
        b.push(b'\n');
    }
    b
}

/// Appends `lines` (each + "\n") in one write, creating the file if needed.
pub fn append_lines(path: &Path, lines: &[String]) {
    append_bytes(path, &joined(lines));
}

pub fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for append: {e}", path.display()));
    f.write_all(bytes).unwrap();
}

/// Creates (or truncates) `path` with `lines`.
pub fn write_lines(path: &Path, lines: &[String]) {
    fs::write(path, joined(lines)).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// logrotate `create`: rename `path` to `to`, then create an empty `path`.
pub fn rotate_rename(path: &Path, to: &Path) {
    fs::rename(path, to).unwrap();
    File::create(path).unwrap();
}

/// logrotate `copytruncate`: copy `path` to `to`, then truncate `path` in place.
pub fn copytruncate(path: &Path, to: &Path) {
    fs::copy(path, to).unwrap();
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

pub fn file_size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

pub fn inode(path: &Path) -> (u64, u64) {
    let m = fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

/// A writer that keeps its file handle (like an application does) and remembers every line.
pub struct LogWriter {
    pub path: PathBuf,
    pub file: File,
    pub prefix: String,
    pub next: usize,
    pub written: Vec<String>,
}

impl LogWriter {
    pub fn open(path: &Path, prefix: &str) -> LogWriter {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        LogWriter {
            path: path.to_path_buf(),
            file,
            prefix: prefix.to_string(),
            next: 0,
            written: Vec::new(),
        }
    }

    /// Writes `n` new unique lines in one write call.
    pub fn write_n(&mut self, n: usize) -> Vec<String> {
        let ls = lines(&self.prefix, self.next..self.next + n);
        self.next += n;
        self.file.write_all(&joined(&ls)).unwrap();
        self.written.extend(ls.iter().cloned());
        ls
    }

    /// Switches to a freshly opened handle on `self.path` (after a rotation).
    pub fn reopen(&mut self) {
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Config

#[derive(Clone, Debug)]
pub struct Input {
    pub paths: Vec<String>,
    pub exclude: Vec<String>,
    pub checkpoint_path: PathBuf,
    pub checkpoint_interval: String,
    pub start_at: String,
    pub scan_interval: String,
    pub poll_interval: String,
    pub rotate_wait: String,
    pub max_line_bytes: Option<String>,
    /// Raw `key: value` lines added to the input.
    pub extra: Vec<String>,
}

impl Input {
    pub fn new(paths: &[&str], checkpoint_path: &Path) -> Input {
        Input {
            paths: paths.iter().map(|s| s.to_string()).collect(),
            exclude: Vec::new(),
            checkpoint_path: checkpoint_path.to_path_buf(),
            checkpoint_interval: "200ms".into(),
            start_at: "beginning".into(),
            scan_interval: "100ms".into(),
            poll_interval: "50ms".into(),
            rotate_wait: "500ms".into(),
            max_line_bytes: None,
            extra: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub inputs: Vec<Input>,
    pub log_level: String,
    pub log_format: String,
    pub output_type: String,
    pub output_path: Option<PathBuf>,
    pub output_format: String,
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn qp(p: &Path) -> String {
    q(p.to_str().unwrap())
}

impl Config {
    pub fn yaml(&self) -> String {
        let mut y = String::from("inputs:\n  files:\n");
        for i in &self.inputs {
            let list = |v: &[String]| v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
            y += &format!("    - paths: [{}]\n", list(&i.paths));
            if !i.exclude.is_empty() {
                y += &format!("      exclude: [{}]\n", list(&i.exclude));
            }
            y += &format!("      checkpoint_path: {}\n", qp(&i.checkpoint_path));
            y += &format!("      checkpoint_interval: {}\n", i.checkpoint_interval);
            y += &format!("      start_at: {}\n", i.start_at);
            y += &format!("      scan_interval: {}\n", i.scan_interval);
            y += &format!("      poll_interval: {}\n", i.poll_interval);
            y += &format!("      rotate_wait: {}\n", i.rotate_wait);
            if let Some(m) = &i.max_line_bytes {
                y += &format!("      max_line_bytes: {m}\n");
            }
            for e in &i.extra {
                y += &format!("      {e}\n");
            }
        }
        y += &format!(
            "logging:\n  level: {}\n  format: {}\n",
            self.log_level, self.log_format
        );
        y += &format!("output:\n  type: {}\n", self.output_type);
        if let Some(p) = &self.output_path {
            y += &format!("  path: {}\n", qp(p));
        }
        y += &format!("  format: {}\n", self.output_format);
        y
    }

    pub fn input(&mut self) -> &mut Input {
        &mut self.inputs[0]
    }
}

// ---------------------------------------------------------------------------------------------
// Test environment

static SPAWNS: AtomicUsize = AtomicUsize::new(0);

/// A temp dir with `logs/` (tailed), `ckpt/` (checkpoints) and `out/events.json` (output).
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("logagg-e2e-")
            .tempdir()
            .unwrap();
        fs::create_dir_all(dir.path().join("logs")).unwrap();
        Env { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn logs(&self) -> PathBuf {
        self.path("logs")
    }
    pub fn log(&self, name: &str) -> PathBuf {
        self.logs().join(name)
    }
    pub fn ckpt(&self) -> PathBuf {
        self.path("ckpt")
    }
    pub fn out(&self) -> PathBuf {
        self.path("out/events.json")
    }
    /// Glob string for `logs/<pattern>`.
    pub fn glob(&self, pattern: &str) -> String {
        format!("{}/{}", self.logs().display(), pattern)
    }

    /// Default test config: `logs/*.log`, short timings, json logs, file output in json.
    pub fn config(&self) -> Config {
        Config {
            inputs: vec![Input::new(&[&self.glob("*.log")], &self.ckpt())],
            log_level: "info".into(),
            log_format: "json".into(),
            output_type: "file".into(),
            output_path: Some(self.out()),
            output_format: "json".into(),
        }
    }

    pub fn write_config(&self, cfg: &Config) -> PathBuf {
        let n = SPAWNS.fetch_add(1, Ordering::SeqCst);
        let p = self.path(&format!("config-{n}.yaml"));
        fs::write(&p, cfg.yaml()).unwrap();
        p
    }

    /// Spawns the agent with `--config <written config>`.
    pub fn spawn(&self, cfg: &Config) -> Agent {
        self.spawn_with(cfg, |_| {})
    }

    /// Spawns the agent with `--config <file>`, after letting `tweak` adjust the command.
    pub fn spawn_with(&self, cfg: &Config, tweak: impl FnOnce(&mut Command)) -> Agent {
        let cfg_path = self.write_config(cfg);
        let mut cmd = Command::new(bin());
        cmd.arg("--config").arg(&cfg_path);
        tweak(&mut cmd);
        self.spawn_cmd(cmd, cfg.output_path.clone())
    }

    /// Spawns `cmd` with stdout and stderr redirected to files in the temp dir (stdout only
    /// when the caller did not already set it up).
    pub fn spawn_cmd(&self, mut cmd: Command, out_path: Option<PathBuf>) -> Agent {
        let n = SPAWNS.fetch_add(1, Ordering::SeqCst);
        let stderr_path = self.path(&format!("agent-{n}.stderr"));
        let stdout_path = self.path(&format!("agent-{n}.stdout"));
        cmd.stdin(Stdio::null());
        cmd.stderr(File::create(&stderr_path).unwrap());
        cmd.stdout(File::create(&stdout_path).unwrap());
        let child = cmd.spawn().expect("spawn logaggregator");
        Agent::new(child, stderr_path, stdout_path, out_path)
    }

    /// Runs the agent to completion with the given args (for CLI tests).
    pub fn run(&self, args: &[&str], tweak: impl FnOnce(&mut Command)) -> RunResult {
        let mut cmd = Command::new(bin());
        cmd.args(args).stdin(Stdio::null());
        tweak(&mut cmd);
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Bounded: if it hangs, kill it so the test fails rather than hangs.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(DEADLINE) {
            Ok(out) => {
                let out = out.unwrap();
                RunResult {
                    code: out.status.code(),
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                }
            }
            Err(_) => {
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("logaggregator {args:?} did not exit within {DEADLINE:?}");
            }
        }
    }

    pub fn output(&self) -> Output {
        Output::new(&self.out())
    }
}

#[derive(Debug)]
pub struct RunResult {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

// ---------------------------------------------------------------------------------------------
// Agent

pub struct Agent {
    pub child: Child,
    pub pid: i32,
    pub stderr_path: PathBuf,
    pub stdout_path: PathBuf,
    pub out_path: Option<PathBuf>,
    pub status: Option<ExitStatus>,
}

impl Agent {
    pub fn new(
        child: Child,
        stderr_path: PathBuf,
        stdout_path: PathBuf,
        out_path: Option<PathBuf>,
    ) -> Agent {
        Agent {
            pid: child.id() as i32,
            child,
            stderr_path,
            stdout_path,
            out_path,
            status: None,
        }
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// Context printed when a wait fails: exit state and the agent's stderr (tail).
    pub fn context(&self) -> String {
        let err = self.stderr();
        let tail: String = if err.len() > 12_000 {
            format!("...{}", &err[err.len() - 12_000..])
        } else {
            err
        };
        format!(
            "agent pid {} ({})\n--- agent stderr ---\n{}\n--- end stderr ---",
            self.pid,
            match self.status {
                Some(s) => format!("exited: {s:?}"),
                None => "running or not yet reaped".into(),
            },
            tail
        )
    }

    /// Waits until `cond` holds; on timeout panics with `what` and the agent's stderr.
    pub fn wait(&self, what: &str, cond: impl FnMut() -> bool) {
        wait_until(DEADLINE, what, || self.context(), cond)
    }

    pub fn wait_for(&self, timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
        wait_until(timeout, what, || self.context(), cond)
    }

    /// True while the process has not exited (reaps it if it has).
    pub fn is_running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait().unwrap() {
            Some(s) => {
                self.status = Some(s);
                false
            }
            None => true,
        }
    }

    /// Asserts the agent is still running, with its stderr if not.
    pub fn assert_running(&mut self) {
        if !self.is_running() {
            panic!("agent exited unexpectedly\n{}", self.context());
        }
    }

    pub fn signal(&self, sig: i32) {
        if self.status.is_none() {
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    /// Waits for exit up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                return self.status;
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends `sig` and waits for the exit (panics with stderr after the deadline).
    pub fn stop_with(&mut self, sig: i32, timeout: Duration) -> ExitStatus {
        self.signal(sig);
        match self.wait_exit(timeout) {
            Some(s) => s,
            None => {
                let ctx = self.context();
                self.kill9();
                panic!("agent did not exit within {timeout:?} after signal {sig}\n{ctx}");
            }
        }
    }

    /// SIGTERM and wait (deadline 15 s); returns the exit status.
    pub fn term(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM, DEADLINE)
    }

    /// SIGTERM, wait, and assert exit code 0.
    pub fn term_ok(&mut self) {
        let s = self.term();
        assert_eq!(
            s.code(),
            Some(0),
            "agent did not exit 0 after SIGTERM: {s:?}\n{}",
            self.context()
        );
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if self.status.is_none() {
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let s = self.child.wait().unwrap();
            self.status = Some(s);
            assert_eq!(s.signal(), Some(libc::SIGKILL), "kill -9 did not kill");
        }
    }

    /// Waits until the output file holds every one of `expected` at least once.
    pub fn wait_for_messages(&self, out: &mut Output, expected: &[String]) {
        self.wait_for_messages_within(out, expected, DEADLINE)
    }

    pub fn wait_for_messages_within(&self, out: &mut Output, expected: &[String], t: Duration) {
        let mut idx = 0;
        let ok = poll_until(t, || {
            out.refresh();
            while idx < expected.len() && out.count(&expected[idx]) > 0 {
                idx += 1;
            }
            idx == expected.len()
        });
        if !ok {
            out.refresh();
            let missing: Vec<&String> = expected.iter().filter(|l| out.count(l) == 0).collect();
            panic!(
                "timed out after {t:?} waiting for {} expected lines: {} still missing, e.g. {:?}\n\
                 output has {} events ({} unparsable)\n{}",
                expected.len(),
                missing.len(),
                &missing[..missing.len().min(10)],
                out.events.len(),
                out.bad.len(),
                self.context()
            );
        }
    }

    /// Waits until the output holds at least `n` complete lines.
    pub fn wait_for_lines(&self, out: &mut Output, n: usize) {
        self.wait(&format!("at least {n} output lines"), || {
            out.refresh();
            out.raw.len() >= n
        });
    }

    /// Waits until stderr contains `needle`.
    pub fn wait_for_stderr(&self, needle: &str) {
        self.wait(&format!("stderr to contain {needle:?}"), || {
            self.stderr().contains(needle)
        });
    }

    /// Targets of the agent's open file descriptors (`readlink /proc/<pid>/fd/*`).
    pub fn fd_targets(&self) -> Vec<String> {
        fd_targets(self.pid)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.status.is_none() {
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

pub fn fd_targets(pid: i32) -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            if let Ok(t) = fs::read_link(e.path()) {
                v.push(t.to_string_lossy().into_owned());
            }
        }
    }
    v
}

/// utime + stime of the whole process (all threads), in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // after ')' fields start at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = f[14 - 3].parse().unwrap();
    let stime: u64 = f[15 - 3].parse().unwrap();
    utime + stime
}

pub fn clk_tck() -> u64 {
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as u64 }
}

// ---------------------------------------------------------------------------------------------
// Output

#[derive(Clone, Debug)]
pub struct Event {
    pub timestamp: String,
    pub host: String,
    pub path: String,
    pub offset: u64,
    pub message: String,
    pub raw: String,
}

/// Incremental reader of the agent's output file. Complete lines only; a partial last line
/// (the agent is mid-write) stays pending until its newline arrives.
pub struct Output {
    pub path: PathBuf,
    pos: u64,
    pending: Vec<u8>,
    /// When false (text format), each line is the message itself.
    pub json: bool,
    /// Every complete output line.
    pub raw: Vec<String>,
    /// Parsed events (json) or synthesized ones (text: only `message`).
    pub events: Vec<Event>,
    /// Complete lines that did not parse as events.
    pub bad: Vec<String>,
    counts: HashMap<String, usize>,
}

impl Output {
    pub fn new(path: &Path) -> Output {
        Output {
            path: path.to_path_buf(),
            pos: 0,
            pending: Vec::new(),
            json: true,
            raw: Vec::new(),
            events: Vec::new(),
            bad: Vec::new(),
            counts: HashMap::new(),
        }
    }

    pub fn text(path: &Path) -> Output {
        let mut o = Output::new(path);
        o.json = false;
        o
    }

    /// Reads what was appended since the last call.
    pub fn refresh(&mut self) {
        let Ok(mut f) = File::open(&self.path) else {
            return;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.pos {
            panic!(
                "output file {} shrank from {} to {len} bytes",
                self.path.display(),
                self.pos
            );
        }
        if len == self.pos {
            return;
        }
        f.seek(SeekFrom::Start(self.pos)).unwrap();
        let mut buf = Vec::new();
        Read::take(&mut f, len - self.pos)
            .read_to_end(&mut buf)
            .unwrap();
        self.pos += buf.len() as u64;
        self.pending.extend_from_slice(&buf);
        let mut start = 0;
        while let Some(nl) = memchr(&self.pending[start..]) {
            let l = String::from_utf8_lossy(&self.pending[start..start + nl]).into_owned();
            start += nl + 1;
            self.push(l);
        }
        self.pending.drain(..start);
    }

    fn push(&mut self, l: String) {
        let ev = if self.json {
            parse_event(&l)
        } else {
            Some(Event {
                timestamp: String::new(),
                host: String::new(),
                path: String::new(),
                offset: 0,
                message: l.clone(),
                raw: l.clone(),
            })
        };
        match ev {
            Some(e) => {
                *self.counts.entry(e.message.clone()).or_default() += 1;
                self.events.push(e);
            }
            None => self.bad.push(l.clone()),
        }
        self.raw.push(l);
    }

    pub fn count(&self, msg: &str) -> usize {
        self.counts.get(msg).copied().unwrap_or(0)
    }

    pub fn counts(&self) -> &HashMap<String, usize> {
        &self.counts
    }

    pub fn messages(&self) -> Vec<String> {
        self.events.iter().map(|e| e.message.clone()).collect()
    }

    /// Bytes of a partial last line, if any.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Fails if any complete line did not parse.
    pub fn assert_all_parsed(&self) {
        assert!(
            self.bad.is_empty(),
            "{} output lines are not valid events, e.g. {:?}",
            self.bad.len(),
            &self.bad[..self.bad.len().min(5)]
        );
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

pub fn parse_event(l: &str) -> Option<Event> {
    let v: serde_json::Value = serde_json::from_str(l).ok()?;
    Some(Event {
        timestamp: v.get("timestamp")?.as_str()?.to_string(),
        host: v.get("host")?.as_str()?.to_string(),
        path: v.get("path")?.as_str()?.to_string(),
        offset: v.get("offset")?.as_u64()?,
        message: v.get("message")?.as_str()?.to_string(),
        raw: l.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Multiset assertions

/// Every expected line exactly once, nothing unexpected. Prints missing, duplicated and
/// unexpected lines separately.
pub fn assert_exactly_once(out: &Output, expected: &[String]) {
    check_multiset(out, expected, false)
}

/// Every expected line at least once (duplicates allowed, reported), nothing unexpected.
pub fn assert_none_lost(out: &Output, expected: &[String]) -> usize {
    check_multiset(out, expected, true);
    expected
        .iter()
        .map(|l| out.count(l).saturating_sub(1))
        .sum()
}

fn check_multiset(out: &Output, expected: &[String], dups_ok: bool) {
    let mut want: HashMap<&str, usize> = HashMap::new();
    for l in expected {
        *want.entry(l.as_str()).or_default() += 1;
    }
    let mut missing = Vec::new();
    let mut dups = Vec::new();
    for (l, &n) in &want {
        let got = out.count(l);
        if got < n {
            missing.push(l.to_string());
        } else if got > n {
            dups.push(format!("{l} (x{got})"));
        }
    }
    let mut unexpected: Vec<String> = out
        .counts()
        .iter()
        .filter(|(m, _)| !want.contains_key(m.as_str()))
        .map(|(m, n)| format!("{m:?} (x{n})"))
        .collect();
    missing.sort();
    dups.sort();
    unexpected.sort();
    let fail = !missing.is_empty() || (!dups_ok && !dups.is_empty()) || !unexpected.is_empty();
    if fail {
        panic!(
            "output multiset mismatch: {} expected lines, {} events in output\n\
             missing ({}): {:?}\nduplicated ({}{}): {:?}\nunexpected ({}): {:?}",
            expected.len(),
            out.events.len(),
            missing.len(),
            &missing[..missing.len().min(20)],
            dups.len(),
            if dups_ok { ", allowed" } else { "" },
            &dups[..dups.len().min(20)],
            unexpected.len(),
            &unexpected[..unexpected.len().min(20)],
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

#[derive(Debug, Clone)]
pub struct CkptEntry {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    pub path: String,
    pub raw: serde_json::Value,
}

pub fn checkpoint_file(dir: &Path) -> PathBuf {
    dir.join("checkpoints.json")
}

/// Parses `<dir>/checkpoints.json`; None if it does not exist. Panics if it is not valid JSON
/// (the file must be replaced atomically, so a reader never sees a partial one).
pub fn read_checkpoint(dir: &Path) -> Option<serde_json::Value> {
    let p = checkpoint_file(dir);
    let text = match fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("read {}: {e}", p.display()),
    };
    Some(serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "{} is not valid JSON ({e}): {:?}",
            p.display(),
            String::from_utf8_lossy(&text)
        )
    }))
}

pub fn checkpoint_entries(dir: &Path) -> Vec<CkptEntry> {
    let Some(v) = read_checkpoint(dir) else {
        return Vec::new();
    };
    v["files"]
        .as_array()
        .unwrap_or_else(|| panic!("checkpoint has no files array: {v}"))
        .iter()
        .map(|f| CkptEntry {
            dev: f["dev"].as_u64().expect("dev"),
            ino: f["ino"].as_u64().expect("ino"),
            offset: f["offset"].as_u64().expect("offset"),
            path: f["path"].as_str().unwrap_or_default().to_string(),
            raw: f.clone(),
        })
        .collect()
}

/// The checkpoint entry for the file currently at `path` (by dev+ino).
pub fn checkpoint_for(dir: &Path, path: &Path) -> Option<CkptEntry> {
    let (dev, ino) = inode(path);
    checkpoint_entries(dir)
        .into_iter()
        .find(|e| e.dev == dev && e.ino == ino)
}

/// Files in `dir` whose names start with `prefix`.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// logrotate `compress`: `gzip path` (the plain file is removed once the archive is written).
pub fn gzip_in_place(path: &Path) {
    let st = Command::new("gzip")
        .arg(path)
        .status()
        .expect("run gzip (is it installed?)");
    assert!(st.success(), "gzip {} failed: {st:?}", path.display());
    assert!(!path.exists(), "gzip left {} behind", path.display());
}

// ---------------------------------------------------------------------------------------------
// Pipeline tests: raw JSON events, lines inside multiline events, the API's /metrics, WARN
// records of the agent's own log.

/// Every complete output line parsed as JSON (panics on one that is not).
pub fn json_events(out: &Output) -> Vec<serde_json::Value> {
    out.raw
        .iter()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("output line is not JSON ({e}): {l:?}"))
        })
        .collect()
}

/// How many times each line occurs inside the messages of the output (a multiline event's
/// message is split at `\n`).
pub fn line_counts(out: &Output) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in &out.events {
        for l in e.message.split('\n') {
            *m.entry(l.to_string()).or_default() += 1;
        }
    }
    m
}

/// Every line of `expected` inside some event at least once (exactly once unless `dups_ok`),
/// and no line that was not written.
pub fn assert_lines(out: &Output, expected: &[String], dups_ok: bool) -> usize {
    let got = line_counts(out);
    let mut want: HashMap<&str, usize> = HashMap::new();
    for l in expected {
        *want.entry(l.as_str()).or_default() += 1;
    }
    let mut missing: Vec<&str> = Vec::new();
    let mut dups: Vec<String> = Vec::new();
    for (l, &n) in &want {
        let g = got.get(*l).copied().unwrap_or(0);
        if g < n {
            missing.push(l);
        } else if g > n {
            dups.push(format!("{l} (x{g})"));
        }
    }
    let mut unexpected: Vec<String> = got
        .iter()
        .filter(|(l, _)| !want.contains_key(l.as_str()))
        .map(|(l, n)| format!("{l:?} (x{n})"))
        .collect();
    missing.sort();
    dups.sort();
    unexpected.sort();
    if !missing.is_empty() || (!dups_ok && !dups.is_empty()) || !unexpected.is_empty() {
        panic!(
            "lines inside events: {} expected, {} events in output\nmissing ({}): {:?}\n\
             duplicated ({}{}): {:?}\nunexpected ({}): {:?}",
            expected.len(),
            out.events.len(),
            missing.len(),
            &missing[..missing.len().min(20)],
            dups.len(),
            if dups_ok { ", allowed" } else { "" },
            &dups[..dups.len().min(20)],
            unexpected.len(),
            &unexpected[..unexpected.len().min(20)],
        );
    }
    want.iter()
        .map(|(l, &n)| got.get(*l).copied().unwrap_or(0).saturating_sub(n))
        .sum()
}

/// A local port nobody listens on right now.
pub fn api_free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` on 127.0.0.1:`port` over HTTP/1.0: the body of a 200, or why not.
pub fn metrics_text(port: u16) -> Result<String, String> {
    use std::net::{SocketAddr, TcpStream};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("malformed response: {text:?}"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("not 200: {head}"));
    }
    Ok(body.to_string())
}

/// `GET /metrics` on 127.0.0.1:`port`: `name{labels}` -> value, or why not.
pub fn scrape_metrics(port: u16) -> Result<HashMap<String, f64>, String> {
    Ok(metrics_text(port)?
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse::<f64>().ok()?)))
        .collect())
}

/// Spawns the agent with `cfg` plus `api.listen` on a free port and waits until `/metrics`
/// answers (a port taken meanwhile is retried with another). Returns the agent and its port.
pub fn spawn_with_api(env: &Env, cfg: &Config) -> (Agent, u16) {
    for attempt in 0..5 {
        let port = api_free_port();
        let n = SPAWNS.fetch_add(1, Ordering::SeqCst);
        let cfg_path = env.path(&format!("api-config-{n}.yaml"));
        fs::write(
            &cfg_path,
            format!("{}api:\n  listen: 127.0.0.1:{port}\n", cfg.yaml()),
        )
        .unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("--config").arg(&cfg_path);
        let mut agent = env.spawn_cmd(cmd, cfg.output_path.clone());
        let up = poll_until(DEADLINE, || {
            scrape_metrics(port).is_ok() || !agent.is_running()
        });
        if up && agent.is_running() {
            return (agent, port);
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

/// The agent's own JSON log records at `level` (e.g. "WARN") whose text contains `needle`.
pub fn log_records(agent: &Agent, level: &str, needle: &str) -> Vec<serde_json::Value> {
    agent
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| {
            r["level"]
                .as_str()
                .is_some_and(|l| l.eq_ignore_ascii_case(level))
        })
        .filter(|r| r.to_string().contains(needle))
        .collect()
}

/// Owned strings of `v`.
pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The one output event with `message`, as JSON (fails unless exactly one has it).
pub fn event(out: &Output, message: &str) -> serde_json::Value {
    let found: Vec<serde_json::Value> = json_events(out)
        .into_iter()
        .filter(|v| v["message"] == message)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one event with message {message:?}, found {found:?}; all: {:#?}",
        out.messages()
    );
    found.into_iter().next().unwrap()
}
