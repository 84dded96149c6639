//! Hardening items: rotation while stopped with the rotated name outside the glob, identical
//! file heads, NUL holes from copytruncate, far more files than descriptors, stale checkpoint
//! locks, checkpoint storage failures, and the Kubernetes log layout.
mod common;

use common::*;
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Local helpers

fn ps(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Messages of the events whose `path` is `path`, counted.
fn counts_for_path(out: &Output, path: &str) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in out.events.iter().filter(|e| e.path == path) {
        *m.entry(e.message.clone()).or_default() += 1;
    }
    m
}

fn want_counts(expected: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for l in expected {
        *m.entry(l.clone()).or_default() += 1;
    }
    m
}

/// True when every expected line is there at least as often as expected, for its path.
fn per_path_complete(out: &Output, expected: &[(String, Vec<String>)]) -> bool {
    expected.iter().all(|(p, ls)| {
        let got = counts_for_path(out, p);
        want_counts(ls)
            .iter()
            .all(|(l, n)| got.get(l).copied().unwrap_or(0) >= *n)
    })
}

fn wait_per_path(agent: &Agent, out: &mut Output, expected: &[(String, Vec<String>)]) {
    let ok = poll_until(Duration::from_secs(30), || {
        out.refresh();
        per_path_complete(out, expected)
    });
    if !ok {
        out.refresh();
        let report = per_path_diff(out, expected);
        panic!(
            "timed out waiting for every line under its path\n{report}\n{}",
            agent.context()
        );
    }
}

/// A readable difference between the output and `expected` (per path); empty when equal.
fn per_path_diff(out: &Output, expected: &[(String, Vec<String>)]) -> String {
    let mut report = String::new();
    for (p, ls) in expected {
        let got = counts_for_path(out, p);
        let want = want_counts(ls);
        let mut missing: Vec<String> = want
            .iter()
            .filter(|(l, n)| got.get(*l).copied().unwrap_or(0) < **n)
            .map(|(l, n)| format!("{l} (want {n}, got {})", got.get(l).copied().unwrap_or(0)))
            .collect();
        let mut extra: Vec<String> = got
            .iter()
            .filter(|(l, n)| want.get(*l).copied().unwrap_or(0) < **n)
            .map(|(l, n)| {
                format!(
                    "{l:?} (want {}, got {n})",
                    want.get(l).copied().unwrap_or(0)
                )
            })
            .collect();
        missing.sort();
        extra.sort();
        if !missing.is_empty() || !extra.is_empty() {
            report += &format!(
                "path {p}: missing ({}) {:?}\n  duplicated/unexpected ({}) {:?}\n",
                missing.len(),
                &missing[..missing.len().min(10)],
                extra.len(),
                &extra[..extra.len().min(10)]
            );
        }
    }
    let known: Vec<&str> = expected.iter().map(|(p, _)| p.as_str()).collect();
    let mut others: HashMap<&str, usize> = HashMap::new();
    for e in &out.events {
        if !known.contains(&e.path.as_str()) {
            *others.entry(e.path.as_str()).or_default() += 1;
        }
    }
    if !others.is_empty() {
        report += &format!("events under unexpected paths: {others:?}\n");
    }
    report
}

/// Each path holds exactly its expected lines, and no other path appears.
fn assert_exactly_once_per_path(out: &Output, expected: &[(String, Vec<String>)]) {
    let report = per_path_diff(out, expected);
    assert!(
        report.is_empty(),
        "per-path output mismatch ({} events):\n{report}",
        out.events.len()
    );
}

/// The agent's stderr log lines at WARN or ERROR level (json or console format).
fn warn_or_error_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("\"level\":\"WARN\"")
                || l.contains("\"level\":\"ERROR\"")
                || l.contains(" WARN ")
                || l.contains(" ERROR ")
        })
        .map(str::to_string)
        .collect()
}

/// Unmounts (lazily) on drop.
struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn run_quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Mounts a tmpfs of `size` on `dir` (created); None when that is not possible here.
fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
    fs::create_dir_all(dir).unwrap();
    let ok = is_root()
        && run_quiet(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir),
        );
    ok.then(|| Mount(dir.to_path_buf()))
}

/// Writes a filler file in `dir` until the filesystem is full (ENOSPC).
fn fill_up(dir: &Path) -> PathBuf {
    let p = dir.join("filler");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .unwrap();
    let chunk = vec![b'x'; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    // Smaller writes take the last partial page, if any.
    while let Ok(n) = f.write(b"y") {
        if n == 0 {
            break;
        }
    }
    p
}

// ---------------------------------------------------------------------------------------------
// 1. Rotation while stopped, rotated name outside the glob

#[test]
fn rotation_while_stopped_outside_glob_is_drained_from_checkpoint_then_closed() {
    let env = Env::new();
    let path = env.log("app.log");
    let rotated = env.log("app.log.1");
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("app.log")]; // app.log.1 is not matched
    let mut app = LogWriter::open(&path, "gen0");
    app.write_n(100);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &app.written);
    agent.term_ok();
    let ck = checkpoint_for(&env.ckpt(), &path).expect("checkpoint entry for app.log");
    assert_eq!(
        ck.offset,
        file_size(&path),
        "test precondition: all checkpointed"
    );

    // While the agent is down: the app writes on, logrotate renames, the app writes a few
    // lines through its old handle, then reopens (creating a new app.log).
    app.write_n(30);
    fs::rename(&path, &rotated).unwrap();
    app.write_n(20);
    let gen0 = app.written.clone();
    let mut gen1 = LogWriter::open(&path, "gen1");
    gen1.write_n(40);
    drop(app);

    let mut agent = env.spawn(&cfg);
    let expected: Vec<String> = gen0.iter().chain(&gen1.written).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);
    let rotated_s = ps(&rotated);
    let deleted_s = format!("{rotated_s} (deleted)");
    agent.wait(
        "the drained app.log.1 to be closed after rotate_wait",
        || {
            !agent
                .fd_targets()
                .iter()
                .any(|t| *t == rotated_s || *t == deleted_s)
        },
    );
    // The new app.log is live.
    gen1.write_n(10);
    let expected: Vec<String> = gen0.iter().chain(&gen1.written).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);
    agent.assert_running();
    agent.term_ok();

    // A third run reads neither file again.
    let marker = lines("third-run", 0..5);
    append_lines(&path, &marker);
    let mut agent = env.spawn(&cfg);
    agent.wait_for_messages(&mut out, &marker);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    let all: Vec<String> = expected.iter().chain(&marker).cloned().collect();
    assert_exactly_once(&out, &all);
    // Events keep the path the glob matched.
    let path_s = ps(&path);
    for e in &out.events {
        assert_eq!(e.path, path_s, "event path: {e:?}");
    }
}

#[test]
fn two_rotations_while_stopped_drain_the_checkpointed_generation() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("app.log")];
    let mut g0 = LogWriter::open(&path, "gen0");
    g0.write_n(100);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &g0.written);
    agent.term_ok();

    // Down: app.log -> app.log.1, new app.log (gen1); then app.log.1 -> app.log.2,
    // app.log -> app.log.1, new app.log (gen2).
    g0.write_n(30);
    fs::rename(&path, env.log("app.log.1")).unwrap();
    g0.write_n(10);
    let mut g1 = LogWriter::open(&path, "gen1");
    g1.write_n(50);
    fs::rename(env.log("app.log.1"), env.log("app.log.2")).unwrap();
    fs::rename(&path, env.log("app.log.1")).unwrap();
    g1.write_n(10);
    let mut g2 = LogWriter::open(&path, "gen2");
    g2.write_n(60);

    let mut agent = env.spawn(&cfg);
    // Promised: the checkpointed generation (now app.log.2, found by identity in its old
    // directory) is drained from its offset; the new app.log is read from 0.
    let promised: Vec<String> = g0.written.iter().chain(&g2.written).cloned().collect();
    agent.wait_for_messages(&mut out, &promised);
    let old2 = ps(&env.log("app.log.2"));
    agent.wait(
        "the drained app.log.2 to be closed after rotate_wait",
        || !agent.fd_targets().contains(&old2),
    );
    // A marker written after that: anything gen1 was going to get has arrived by now.
    g2.write_n(5);
    agent.wait_for_messages(&mut out, &g2.written);
    agent.term_ok();
    out.refresh();
    // gen1 (app.log.1) was never checkpointed and is outside the glob: the README promises
    // nothing for it. Whatever of it was delivered must be delivered once at most.
    let g1_delivered: Vec<String> = g1
        .written
        .iter()
        .filter(|l| out.count(l) > 0)
        .cloned()
        .collect();
    eprintln!(
        "note: {} of {} lines of the never-checkpointed intermediate generation were delivered",
        g1_delivered.len(),
        g1.written.len()
    );
    let expected: Vec<String> = g0
        .written
        .iter()
        .chain(&g2.written)
        .chain(&g1_delivered)
        .cloned()
        .collect();
    assert_exactly_once(&out, &expected);
}

// ---------------------------------------------------------------------------------------------
// 2. Identical heads

/// 64 lines of 63 characters + newline: 4 KiB, identical in every file that starts with it.
fn banner() -> Vec<String> {
    (0..64)
        .map(|i| {
            let mut s = format!("service starting, banner line {i:03} ");
            while s.len() < 63 {
                s.push('=');
            }
            s
        })
        .collect()
}

#[test]
fn files_with_identical_heads_are_distinct_files_also_across_restart() {
    let env = Env::new();
    let b = banner();
    assert_eq!(joined(&b).len(), 4096);
    let pa = env.log("a.log");
    let pb = env.log("b.log");
    let a1 = lines("file-a", 0..100);
    let b1 = lines("file-b", 0..100);
    write_lines(&pa, &[b.clone(), a1.clone()].concat());
    write_lines(&pb, &[b.clone(), b1.clone()].concat());
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    let mut exp_a = [b.clone(), a1].concat();
    let mut exp_b = [b.clone(), b1].concat();
    wait_per_path(
        &agent,
        &mut out,
        &[(ps(&pa), exp_a.clone()), (ps(&pb), exp_b.clone())],
    );

    // A third file, created while running, is a byte-for-byte copy of a.log: still a file of
    // its own (the README: copies matched by the glob are read as new files).
    let pc = env.log("c.log");
    fs::copy(&pa, &pc).unwrap();
    let exp_c = exp_a.clone();
    // And both originals keep being tailed separately.
    let a2 = lines("file-a", 100..120);
    let b2 = lines("file-b", 100..130);
    append_lines(&pa, &a2);
    append_lines(&pb, &b2);
    exp_a.extend(a2);
    exp_b.extend(b2);
    let expected = |a: &[String], b: &[String], c: &[String]| {
        vec![
            (ps(&pa), a.to_vec()),
            (ps(&pb), b.to_vec()),
            (ps(&pc), c.to_vec()),
        ]
    };
    wait_per_path(&agent, &mut out, &expected(&exp_a, &exp_b, &exp_c));
    agent.term_ok();
    out.refresh();
    assert_exactly_once_per_path(&out, &expected(&exp_a, &exp_b, &exp_c));

    // One checkpoint entry per file, each at its own end.
    let entries = checkpoint_entries(&env.ckpt());
    for p in [&pa, &pb, &pc] {
        let (dev, ino) = inode(p);
        let mine: Vec<&CkptEntry> = entries
            .iter()
            .filter(|e| e.dev == dev && e.ino == ino)
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "one checkpoint entry for {}: {entries:?}",
            p.display()
        );
        assert_eq!(
            mine[0].offset,
            file_size(p),
            "checkpoint of {} at its end",
            p.display()
        );
    }

    // While stopped: distinct lines appended to each.
    let a3 = lines("a-while-stopped", 0..25);
    let b3 = lines("b-while-stopped", 0..35);
    let c3 = lines("c-while-stopped", 0..15);
    append_lines(&pa, &a3);
    append_lines(&pb, &b3);
    append_lines(&pc, &c3);
    let mut exp_c = exp_c;
    exp_a.extend(a3);
    exp_b.extend(b3);
    exp_c.extend(c3);
    let mut agent = env.spawn(&env.config());
    wait_per_path(&agent, &mut out, &expected(&exp_a, &exp_b, &exp_c));
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once_per_path(&out, &expected(&exp_a, &exp_b, &exp_c));
}

// ---------------------------------------------------------------------------------------------
// 3. copytruncate with a writer that does not use O_APPEND

fn nul_warnings(stderr: &str, path: &str) -> usize {
    warn_or_error_lines(stderr)
        .iter()
        .filter(|l| l.contains("NUL") && l.contains(path))
        .count()
}

#[test]
fn nul_holes_are_never_shipped_and_warned_about_once_per_file() {
    let env = Env::new();
    let names = ["a.log", "b.log", "c.log", "d.log"];
    // Writers at their own offset (no O_APPEND), as an application with a plain fd.
    let mut files: Vec<fs::File> = names
        .iter()
        .map(|n| {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(env.log(n))
                .unwrap()
        })
        .collect();
    let mut expected = Vec::new();
    let write = |files: &mut [fs::File], k: usize, what: &str, n: usize| {
        let ls = lines(&format!("{}-{what}", names[k]), 0..n);
        files[k].write_all(&joined(&ls)).unwrap();
        ls
    };
    for k in 0..names.len() {
        expected.extend(write(&mut files, k, "pre-hole", 100));
    }
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &expected);
    // Three copytruncate cycles per file, the application writing right after each truncate
    // (as a busy one does): three holes each.
    for round in 0..3 {
        for (k, name) in names.iter().enumerate() {
            copytruncate(&env.log(name), &env.log(&format!("{name}.{round}")));
            expected.extend(write(&mut files, k, &format!("after-hole-{round}"), 10));
        }
        agent.wait_for_messages(&mut out, &expected);
    }
    // The application goes on writing, without truncation: nothing is read a second time.
    for k in 0..names.len() {
        expected.extend(write(&mut files, k, "steady", 10));
    }
    agent.wait_for_messages(&mut out, &expected);
    agent.assert_running();
    agent.term_ok();
    let err1 = agent.stderr();
    // And a restart reads neither the holes nor the lines after them again.
    for k in 0..names.len() {
        expected.extend(write(&mut files, k, "after-restart", 5));
    }
    let mut agent2 = env.spawn(&env.config());
    agent2.wait_for_messages(&mut out, &expected);
    agent2.term_ok();
    let err = format!("{err1}{}", agent2.stderr());
    out.refresh();
    out.assert_all_parsed();
    if let Err(e) = std::panic::catch_unwind(|| assert_exactly_once(&out, &expected)) {
        panic!(
            "{}\n--- stderr of both runs ---\n{err}",
            e.downcast_ref::<String>().cloned().unwrap_or_default()
        );
    }
    for e in &out.events {
        assert!(!e.message.contains('\0'), "NUL shipped in an event: {e:?}");
    }
    assert!(
        !out.raw
            .iter()
            .any(|l| l.contains("\\u0000") || l.contains('\0')),
        "NUL in the output"
    );
    for n in names {
        let p = ps(&env.log(n));
        let w = nul_warnings(&err, &p);
        assert_eq!(
            w, 1,
            "expected exactly one NUL warning for {p} (holes were there), got {w}\n\
             --- stderr of both runs ---\n{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Far more files than file descriptors

fn with_nofile_limit(cmd: &mut Command, limit: u64) {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn nofile_limit_of(pid: i32) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    s.lines()
        .find(|l| l.starts_with("Max open files"))
        .map(str::to_string)
}

/// Waits until every expected line is in the output; on timeout the panic shows how many
/// had arrived at each 5 s mark (how fast slots turn over).
fn wait_with_progress(
    agent: &Agent,
    out: &mut Output,
    expected: &[String],
    deadline: Duration,
    what: &str,
    max_fds: &mut usize,
) {
    let t0 = std::time::Instant::now();
    let mut marks: Vec<String> = Vec::new();
    let ok = poll_until(deadline, || {
        *max_fds = (*max_fds).max(agent.fd_targets().len());
        out.refresh();
        let have = expected.iter().filter(|l| out.count(l) > 0).count();
        let secs = t0.elapsed().as_secs();
        if secs >= 5 * (marks.len() as u64 + 1) {
            marks.push(format!("{secs}s: {have}"));
        }
        have == expected.len()
    });
    if !ok {
        let have = expected.iter().filter(|l| out.count(l) > 0).count();
        panic!(
            "timed out after {deadline:?} waiting for {what}: {have} of {} lines delivered\n\
             progress (expected lines delivered by time): {marks:?}\n\
             descriptors open in the agent: {}\n{}",
            expected.len(),
            agent.fd_targets().len(),
            agent.context()
        );
    }
}

#[test]
fn far_more_files_than_descriptors_every_line_once_and_agent_keeps_running() {
    let env = Env::new();
    let files = 400;
    let limit = 128u64;
    let name = |f: usize| format!("many-{f:03}.log");
    let mut expected = Vec::new();
    for f in 0..files {
        let ls = lines(&format!("fd-{f:03}"), 0..50);
        write_lines(&env.log(&name(f)), &ls);
        expected.extend(ls);
    }
    let cfg = env.config(); // default close_inactive (5m), max_open_files 0 (derived)
    let mut agent = env.spawn_with(&cfg, |c| with_nofile_limit(c, limit));
    let lim = nofile_limit_of(agent.pid).unwrap_or_default();
    assert!(
        lim.split_whitespace().filter(|w| *w == "128").count() == 2,
        "test precondition: agent runs with soft=hard=128 open files: {lim:?}"
    );
    let mut out = env.output();
    let deadline = Duration::from_secs(60);
    let mut max_fds = 0;
    wait_with_progress(
        &agent,
        &mut out,
        &expected,
        deadline,
        "every line of the 400 files",
        &mut max_fds,
    );
    agent.assert_running();

    let mut more = Vec::new();
    for f in 0..files {
        let ls = lines(&format!("fd-{f:03}"), 50..60);
        append_lines(&env.log(&name(f)), &ls);
        more.extend(ls);
    }
    expected.extend(more);
    wait_with_progress(
        &agent,
        &mut out,
        &expected,
        deadline,
        "the 10 appended lines of every file",
        &mut max_fds,
    );
    agent.assert_running();
    eprintln!("most descriptors seen open at once: {max_fds} (limit {limit})");
    let err = agent.stderr();
    let errors: Vec<String> = warn_or_error_lines(&err)
        .into_iter()
        .filter(|l| l.contains("\"level\":\"ERROR\"") || l.contains(" ERROR "))
        .collect();
    assert!(
        errors.is_empty(),
        "errors logged while short of descriptors: {:?}",
        &errors[..errors.len().min(5)]
    );
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &expected);
    // No file is re-read later either: every checkpoint sits at its file's end.
    let entries = checkpoint_entries(&env.ckpt());
    for f in 0..files {
        let p = env.log(&name(f));
        let (dev, ino) = inode(&p);
        let e = entries.iter().find(|e| e.dev == dev && e.ino == ino);
        assert_eq!(
            e.map(|e| e.offset),
            Some(file_size(&p)),
            "checkpoint of {}",
            p.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. One agent per checkpoint directory: stale locks

#[test]
fn lock_left_by_a_killed_agent_does_not_block_the_next_one() {
    let env = Env::new();
    let path = env.log("app.log");
    let first = lines("before-kill", 0..50);
    write_lines(&path, &first);
    let cfg = env.config();
    let mut a1 = env.spawn(&cfg);
    let mut out = env.output();
    a1.wait_for_messages(&mut out, &first);
    let lock = env.ckpt().join("lock");
    let pid1 = a1.pid.to_string();
    assert_eq!(
        fs::read_to_string(&lock).unwrap().trim(),
        pid1,
        "test precondition: the lock names the first agent"
    );
    a1.kill9();
    assert!(
        lock.exists(),
        "test precondition: the dead agent left its lock"
    );

    let second = lines("after-kill", 0..30);
    append_lines(&path, &second);
    let mut a2 = env.spawn(&cfg);
    a2.wait_for_messages(&mut out, &second);
    a2.assert_running();
    assert_eq!(
        fs::read_to_string(&lock).unwrap().trim(),
        a2.pid.to_string(),
        "the lock should now name the second agent"
    );
    a2.term_ok();
    out.refresh();
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    let dups = assert_none_lost(&out, &all);
    eprintln!("re-delivered after kill -9: {dups} lines");
    assert!(
        second.iter().all(|l| out.count(l) == 1),
        "lines written after the kill must arrive exactly once"
    );
}

#[test]
fn lock_file_naming_a_live_unrelated_pid_but_not_locked_does_not_block() {
    let env = Env::new();
    fs::create_dir_all(env.ckpt()).unwrap();
    // Our own PID: alive, but not holding the lock (a recycled PID after a crash).
    fs::write(env.ckpt().join("lock"), std::process::id().to_string()).unwrap();
    let ls = lines("stale-lock", 0..20);
    write_lines(&env.log("app.log"), &ls);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ls);
    agent.assert_running();
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &ls);
}

// ---------------------------------------------------------------------------------------------
// 6. Checkpoint storage failures

fn expect_exit_2_naming(env: &Env, cfg: &Config, needle: &Path) {
    let cfg_path = env.write_config(cfg);
    let r = env.run(&["--config", cfg_path.to_str().unwrap()], |_| {});
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(
        r.stderr.contains(needle.to_str().unwrap()),
        "stderr should name {}: {r:#?}",
        needle.display()
    );
    assert!(
        r.stderr.to_lowercase().contains("checkpoint"),
        "stderr should say checkpoint: {r:#?}"
    );
}

#[test]
fn checkpoint_dir_under_a_regular_file_exits_2_naming_path_and_checkpoint() {
    let env = Env::new();
    let afile = env.path("afile");
    fs::write(&afile, b"not a directory").unwrap();
    write_lines(&env.log("app.log"), &lines("never", 0..5));
    let mut cfg = env.config();
    let cp = afile.join("cp");
    cfg.input().checkpoint_path = cp.clone();
    expect_exit_2_naming(&env, &cfg, &cp);
}

#[test]
fn checkpoint_dir_that_cannot_be_written_at_start_exits_2() {
    let env = Env::new();
    write_lines(&env.log("app.log"), &lines("never", 0..5));

    // Full filesystem.
    let full = env.path("full");
    let Some(_m1) = mount_tmpfs(&full, "256k") else {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let cp = full.join("ckpt");
    fs::create_dir_all(&cp).unwrap();
    fill_up(&full);
    let mut cfg = env.config();
    cfg.input().checkpoint_path = cp.clone();
    expect_exit_2_naming(&env, &cfg, &cp);

    // Read-only filesystem (root ignores permission bits, not a read-only mount).
    let ro = env.path("ro");
    let Some(_m2) = mount_tmpfs(&ro, "1m") else {
        eprintln!("SKIPPED read-only part: cannot mount a tmpfs");
        return;
    };
    let cp = ro.join("ckpt");
    fs::create_dir_all(&cp).unwrap();
    assert!(
        run_quiet(Command::new("mount").args(["-o", "remount,ro"]).arg(&ro)),
        "remount read-only"
    );
    let mut cfg = env.config();
    cfg.input().checkpoint_path = cp.clone();
    expect_exit_2_naming(&env, &cfg, &cp);
    assert!(
        !env.out().exists() || file_size(&env.out()) == 0,
        "nothing may be delivered without a checkpoint store"
    );
}

/// Error or warning log lines that name `dir`.
fn ckpt_errors(agent: &Agent, dir: &Path) -> usize {
    let d = ps(dir);
    warn_or_error_lines(&agent.stderr())
        .iter()
        .filter(|l| l.contains(&d))
        .count()
}

/// Runs the agent with its checkpoints in `ckpt`; `break_it` makes writes there fail,
/// `fix_it` makes them work again.
fn checkpoint_write_failure_at_run_time(
    env: &Env,
    ckpt: &Path,
    break_it: impl FnOnce(),
    fix_it: impl FnOnce(),
) {
    let path = env.log("app.log");
    let first = lines("before-failure", 0..100);
    write_lines(&path, &first);
    let mut cfg = env.config();
    cfg.input().checkpoint_path = ckpt.to_path_buf();
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &first);
    let size0 = file_size(&path);
    agent.wait("checkpoint at the end of the first lines", || {
        checkpoint_for(ckpt, &path).is_some_and(|e| e.offset == size0)
    });
    assert_eq!(ckpt_errors(&agent, ckpt), 0, "{}", agent.context());

    break_it();
    let during = lines("during-failure", 0..50);
    append_lines(&path, &during);
    agent.wait_for_messages(&mut out, &during);
    // Logged with the path, and retried every interval (200 ms here): several errors.
    agent.wait(
        "checkpoint write errors naming the directory, retried",
        || ckpt_errors(&agent, ckpt) >= 3,
    );
    // Delivery goes on while checkpoints fail.
    let during2 = lines("during-failure-2", 0..50);
    append_lines(&path, &during2);
    agent.wait_for_messages(&mut out, &during2);
    agent.assert_running();
    // The last good checkpoint stays, whole.
    let e = checkpoint_for(ckpt, &path).expect("the last good checkpoint stays");
    assert_eq!(e.offset, size0, "last good checkpoint offset");

    fix_it();
    let after = lines("after-repair", 0..20);
    append_lines(&path, &after);
    agent.wait_for_messages(&mut out, &after);
    let size1 = file_size(&path);
    agent.wait("a later checkpoint write to succeed", || {
        checkpoint_for(ckpt, &path).is_some_and(|e| e.offset == size1)
    });
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    let all: Vec<String> = [first, during, during2, after].concat();
    assert_exactly_once(&out, &all);
}

#[test]
fn checkpoint_disk_full_at_run_time_keeps_last_good_logs_retries_and_recovers() {
    let env = Env::new();
    let small = env.path("small");
    let Some(_m) = mount_tmpfs(&small, "1m") else {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let ckpt = small.join("ckpt");
    let filler = small.join("filler");
    checkpoint_write_failure_at_run_time(
        &env,
        &ckpt,
        || {
            fill_up(&small);
        },
        || fs::remove_file(&filler).unwrap(),
    );
}

/// Lazily unmounts `path` on drop while `mounted` is set (a test that fails half-way).
struct BindGuard {
    path: PathBuf,
    mounted: Arc<AtomicBool>,
}
impl Drop for BindGuard {
    fn drop(&mut self) {
        if self.mounted.load(Ordering::SeqCst) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn checkpoint_dir_remounted_read_only_at_run_time_keeps_last_good_and_recovers() {
    let env = Env::new();
    let probe = env.path("probe");
    fs::create_dir_all(&probe).unwrap();
    let can_bind =
        is_root() && run_quiet(Command::new("mount").arg("--bind").arg(&probe).arg(&probe));
    if !can_bind {
        eprintln!("SKIPPED: cannot bind mount here (needs root)");
        return;
    }
    let _ = Command::new("umount").arg(&probe).status();
    let ckpt = env.ckpt();
    let guard = BindGuard {
        path: ckpt.clone(),
        mounted: Arc::new(AtomicBool::new(false)),
    };
    let (m1, m2) = (guard.mounted.clone(), guard.mounted.clone());
    let (ck1, ck2) = (ckpt.clone(), ckpt.clone());
    // A read-only bind mount over the directory: new files there fail with EROFS (as after
    // a read-only remount), while descriptors opened before (the lock) stay valid.
    checkpoint_write_failure_at_run_time(
        &env,
        &ckpt,
        move || {
            assert!(run_quiet(
                Command::new("mount").arg("--bind").arg(&ck1).arg(&ck1)
            ));
            m1.store(true, Ordering::SeqCst);
            assert!(
                run_quiet(
                    Command::new("mount")
                        .args(["-o", "remount,bind,ro"])
                        .arg(&ck1)
                ),
                "remount the bind mount read-only"
            );
        },
        move || {
            assert!(run_quiet(Command::new("umount").arg(&ck2)), "umount");
            m2.store(false, Ordering::SeqCst);
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Kubernetes log layout

struct K8s {
    containers: PathBuf,
    pods: PathBuf,
    runtime: PathBuf,
}

impl K8s {
    fn new(env: &Env) -> K8s {
        let k = K8s {
            containers: env.path("var/log/containers"),
            pods: env.path("var/log/pods"),
            runtime: env.path("var/lib/docker/containers"),
        };
        for d in [&k.containers, &k.pods, &k.runtime] {
            fs::create_dir_all(d).unwrap();
        }
        k
    }

    fn glob(&self) -> String {
        format!("{}/*.log", self.containers.display())
    }

    fn runtime_file(&self, id: &str) -> PathBuf {
        self.runtime.join(format!("{id}-json.log"))
    }

    /// pods/<ns>_<pod>_<uid>/<container>/<n>.log -> runtime file;
    /// containers/<pod>_<ns>_<container>-<id>.log -> that link. Returns the containers link.
    fn link(&self, pod: &str, container: &str, n: u32, id: &str) -> PathBuf {
        let pod_dir = self
            .pods
            .join(format!("default_{pod}_0f1e2d3c-uid"))
            .join(container);
        fs::create_dir_all(&pod_dir).unwrap();
        let mid = pod_dir.join(format!("{n}.log"));
        symlink(self.runtime_file(id), &mid).unwrap();
        let top = self
            .containers
            .join(format!("{pod}_default_{container}-{id}.log"));
        symlink(&mid, &top).unwrap();
        top
    }
}

/// Container restart: a new runtime file and new links; the old target receives its last
/// lines after the restart. `remove_old_link`: the old containers/ link goes at the restart.
fn k8s_container_restart(remove_old_link: bool) {
    let env = Env::new();
    let k = K8s::new(&env);
    let mut cfg = env.config();
    cfg.input().paths = vec![k.glob()];
    cfg.input().rotate_wait = "2s".into();
    let mut old = LogWriter::open(&k.runtime_file("c0ffee01"), "container-0");
    old.write_n(100);
    let old_link = k.link("web", "app", 0, "c0ffee01");
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &old.written);

    // The old container keeps logging until the restart (a writer thread pacing itself).
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let writer = std::thread::spawn(move || {
        while !s2.load(Ordering::SeqCst) {
            old.write_n(3);
            std::thread::sleep(Duration::from_millis(10));
        }
        old
    });
    agent.wait_for_lines(&mut out, 130);

    let mut new = LogWriter::open(&k.runtime_file("c0ffee02"), "container-1");
    new.write_n(20);
    let new_link = k.link("web", "app", 1, "c0ffee02");
    if remove_old_link {
        fs::remove_file(&old_link).unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let mut old = writer.join().unwrap();
    // The runtime flushes the old container's last lines after the restart.
    old.write_n(25);
    new.write_n(30);
    let expected_paths = |o: &LogWriter, n: &LogWriter| {
        vec![
            (ps(&old_link), o.written.clone()),
            (ps(&new_link), n.written.clone()),
        ]
    };
    wait_per_path(&agent, &mut out, &expected_paths(&old, &new));

    // kubelet removes the old link (now, or it already did): the old target's descriptor is
    // released after rotate_wait, while the new container goes on being read.
    if !remove_old_link {
        fs::remove_file(&old_link).unwrap();
    }
    let old_target = ps(&k.runtime_file("c0ffee01"));
    agent.wait_for(
        Duration::from_secs(30),
        "the old runtime file to be closed once no link leads to it",
        || !agent.fd_targets().contains(&old_target),
    );
    new.write_n(10);
    wait_per_path(&agent, &mut out, &expected_paths(&old, &new));
    agent.assert_running();
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once_per_path(&out, &expected_paths(&old, &new));
}

#[test]
fn kubernetes_container_restart_with_old_link_kept_reads_both_once() {
    k8s_container_restart(false);
}

#[test]
fn kubernetes_container_restart_with_old_link_removed_reads_both_once() {
    k8s_container_restart(true);
}

#[test]
fn kubernetes_chain_of_links_is_followed_to_the_real_file() {
    let env = Env::new();
    let k = K8s::new(&env);
    let mut cfg = env.config();
    cfg.input().paths = vec![k.glob()];
    let mut a = LogWriter::open(&k.runtime_file("aaaa"), "pod-a");
    let mut b = LogWriter::open(&k.runtime_file("bbbb"), "pod-b");
    a.write_n(50);
    b.write_n(50);
    let la = k.link("alpha", "main", 0, "aaaa");
    let lb = k.link("beta", "main", 0, "bbbb");
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_per_path(
        &agent,
        &mut out,
        &[(ps(&la), a.written.clone()), (ps(&lb), b.written.clone())],
    );
    a.write_n(10);
    b.write_n(20);
    // A pod started while running.
    let mut c = LogWriter::open(&k.runtime_file("cccc"), "pod-c");
    c.write_n(30);
    let lc = k.link("gamma", "main", 0, "cccc");
    let expected = vec![
        (ps(&la), a.written.clone()),
        (ps(&lb), b.written.clone()),
        (ps(&lc), c.written.clone()),
    ];
    wait_per_path(&agent, &mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_exactly_once_per_path(&out, &expected);
}

#[test]
fn kubernetes_dangling_link_is_skipped_quietly_and_read_when_target_appears() {
    let env = Env::new();
    let k = K8s::new(&env);
    let mut cfg = env.config();
    cfg.input().paths = vec![k.glob()];
    // Dangling at the end of the chain (runtime file missing) from the start.
    let dangling = k.link("late", "app", 0, "dddd");
    // A healthy pod next to it.
    let mut ok = LogWriter::open(&k.runtime_file("eeee"), "healthy");
    ok.write_n(20);
    let healthy = k.link("healthy", "app", 0, "eeee");
    // Dangling in the middle of the chain: containers/x.log -> pods/.../missing.log.
    let mid_missing = k.pods.join("default_x_uid/app/0.log");
    let x = k.containers.join("x.log");
    symlink(&mid_missing, &x).unwrap();

    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ok.written);
    // Several scans (scan_interval 100 ms) see the dangling links: a later new pod's lines
    // arrive only through a scan or an event after them.
    let mut later = LogWriter::open(&k.runtime_file("ffff"), "later-pod");
    later.write_n(10);
    let later_link = k.link("later", "app", 0, "ffff");
    agent.wait_for_messages(&mut out, &later.written);
    agent.assert_running();

    // Targets appear: both are read from their first line.
    let mut d = LogWriter::open(&k.runtime_file("dddd"), "dangling-target");
    d.write_n(15);
    fs::create_dir_all(mid_missing.parent().unwrap()).unwrap();
    let mut xw = LogWriter::open(&k.runtime_file("xxxx"), "x-target");
    xw.write_n(12);
    symlink(k.runtime_file("xxxx"), &mid_missing).unwrap();
    let expected = vec![
        (ps(&healthy), ok.written.clone()),
        (ps(&later_link), later.written.clone()),
        (ps(&dangling), d.written.clone()),
        (ps(&x), xw.written.clone()),
    ];
    wait_per_path(&agent, &mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_exactly_once_per_path(&out, &expected);

    let noisy: Vec<String> = warn_or_error_lines(&agent.stderr())
        .into_iter()
        .filter(|l| l.contains("late_default") || l.contains("x.log") || l.contains("dddd"))
        .collect();
    assert!(
        noisy.is_empty(),
        "dangling links must be skipped quietly, got: {noisy:?}"
    );
}

/// The runtime rotates a container's log while the agent is stopped (`<id>-json.log` becomes
/// `<id>-json.log.1`, a new `<id>-json.log` starts): the rotated file is found beside the
/// link's target, not beside the link in /var/log/containers, and drained from its checkpoint.
#[test]
fn kubernetes_log_rotated_while_stopped_is_found_beside_the_link_target_and_drained() {
    let env = Env::new();
    let k = K8s::new(&env);
    let mut cfg = env.config();
    cfg.input().paths = vec![k.glob()];
    let runtime = k.runtime_file("c0ffee02");
    let mut w = LogWriter::open(&runtime, "before-stop");
    w.write_n(100);
    k.link("api", "app", 0, "c0ffee02");
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &w.written);
    agent.term_ok();

    // Stopped: more lines, then the runtime's rotation.
    let mut w = LogWriter::open(&runtime, "while-stopped");
    w.write_n(300);
    drop(w);
    fs::rename(&runtime, runtime.with_extension("log.1")).unwrap();
    let mut fresh = LogWriter::open(&runtime, "after-rotation");
    fresh.write_n(50);
    let mut agent = env.spawn(&cfg);
    let stopped = lines("while-stopped", 0..300);
    let expected: Vec<String> = lines("before-stop", 0..100)
        .into_iter()
        .chain(stopped)
        .chain(fresh.written.iter().cloned())
        .collect();
    agent.wait_for_messages(&mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &expected);
}
