//! Behaviours 13 and 14: file output (parent dir, partial last line, disk full), stdout
//! output (only events; closed pipe), and the json event format.
mod common;

use common::*;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

fn hostname() -> String {
    let mut buf = [0u8; 256];
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    assert_eq!(r, 0);
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Today's UTC date as YYYY-MM-DD (civil-from-days, no date crate needed).
fn utc_date(unix_secs: u64) -> String {
    let z = (unix_secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn json_events_have_exactly_the_documented_fields() {
    let env = Env::new();
    let path = env.log("fields.log");
    let ls = lines("fields", 0..20);
    write_lines(&path, &ls);
    let before = now_secs();
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ls);
    let after = now_secs();
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &ls);
    let host = hostname();
    let dates = [utc_date(before), utc_date(after)];
    for e in &out.events {
        let v: serde_json::Value = serde_json::from_str(&e.raw).unwrap();
        let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["host", "message", "offset", "path", "source", "timestamp"],
            "event keys: {}",
            e.raw
        );
        assert_eq!(e.host, host);
        assert_eq!(e.path, path.to_str().unwrap());
        // No id in the config: the input's position names it.
        assert_eq!(v["source"], "file0", "{}", e.raw);
        // 2026-11-22T15:00:00.123456Z
        let t = e.timestamp.as_bytes();
        assert!(
            t.len() == 27
                && t[4] == b'-'
                && t[7] == b'-'
                && t[10] == b'T'
                && t[13] == b':'
                && t[16] == b':'
                && t[19] == b'.'
                && t[26] == b'Z'
                && t.iter()
                    .enumerate()
                    .all(|(i, c)| [4, 7, 10, 13, 16, 19, 26].contains(&i) || c.is_ascii_digit()),
            "timestamp format: {:?}",
            e.timestamp
        );
        assert!(
            dates.iter().any(|d| e.timestamp.starts_with(d.as_str())),
            "timestamp {} is not now (UTC {dates:?})",
            e.timestamp
        );
    }
}

#[test]
fn stdout_output_carries_only_events() {
    let env = Env::new();
    let ls = lines("to-stdout", 0..100);
    write_lines(&env.log("app.log"), &ls);
    let mut cfg = env.config();
    cfg.output_type = "stdout".into();
    cfg.output_path = None;
    let mut agent = env.spawn(&cfg);
    let mut out = Output::new(&agent.stdout_path.clone());
    agent.wait_for_messages(&mut out, &ls);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &ls);
    assert!(out.pending().is_empty(), "stdout ends with a partial line");
}

#[test]
fn file_output_creates_missing_parent_directories() {
    let env = Env::new();
    let ls = lines("nested-output", 0..20);
    write_lines(&env.log("app.log"), &ls);
    let mut cfg = env.config();
    let out_path = env.path("out/does/not/exist/yet/events.json");
    cfg.output_path = Some(out_path.clone());
    let mut agent = env.spawn(&cfg);
    let mut out = Output::new(&out_path);
    agent.wait_for_messages(&mut out, &ls);
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &ls);
}

#[test]
fn file_output_ends_a_partial_last_line_left_in_it() {
    let env = Env::new();
    fs::create_dir_all(env.path("out")).unwrap();
    fs::write(env.out(), b"garbage-without-newline").unwrap();
    let ls = lines("after-garbage", 0..20);
    write_lines(&env.log("app.log"), &ls);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ls);
    agent.term_ok();
    out.refresh();
    assert_eq!(out.raw[0], "garbage-without-newline", "old content kept");
    assert_eq!(
        out.bad,
        vec!["garbage-without-newline".to_string()],
        "the first event must start on a new line"
    );
    assert_exactly_once(&out, &ls);
}

/// Unmounts (lazily) on drop.
struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn disk_full_output_loses_nothing_and_checkpoint_stays_behind() {
    let env = Env::new();
    let small = env.path("small");
    fs::create_dir_all(&small).unwrap();
    let mounted = is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&small)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !mounted {
        eprintln!("SKIPPED disk-full check: cannot mount a small tmpfs here (needs root)");
        return;
    }
    let _mount = Mount(small.clone());
    let path = env.log("app.log");
    // ~20k events of ~150 bytes: about 3 MB of output for a 1 MB filesystem.
    let ls = lines("disk-full", 0..20_000);
    write_lines(&path, &ls);
    let mut cfg = env.config();
    let full_out = small.join("events.json");
    cfg.output_path = Some(full_out.clone());
    let mut agent = env.spawn(&cfg);
    agent.wait("the agent to report the full disk (or exit)", || {
        let e = agent.stderr().to_lowercase();
        e.contains("no space") || e.contains("enospc") || e.contains("space")
    });
    if agent.is_running() {
        // Still alive: it must still stop on SIGTERM.
        let st = agent.term();
        eprintln!("exit status after SIGTERM while the disk is full: {st:?}");
    } else {
        eprintln!(
            "agent exited by itself on the full disk: {:?}",
            agent.status
        );
    }
    let mut out1 = Output::new(&full_out);
    out1.refresh();
    // Invariant 1: the checkpoint covers only lines that are in the output.
    if let Some(e) = checkpoint_for(&env.ckpt(), &path) {
        let line_len = ls[0].len() as u64 + 1;
        let n = (e.offset / line_len) as usize;
        let missing: Vec<&String> = ls[..n].iter().filter(|l| out1.count(l) == 0).collect();
        assert!(
            missing.is_empty(),
            "checkpoint offset {} ran ahead of the (full) output: {} covered lines missing, e.g. {:?}\n{}",
            e.offset,
            missing.len(),
            &missing[..missing.len().min(5)],
            agent.context()
        );
    }
    // With room again (another output file), every line is delivered: nothing lost.
    let mut cfg2 = env.config();
    cfg2.output_path = Some(env.out());
    let mut agent2 = env.spawn(&cfg2);
    let mut out2 = env.output();
    agent2.wait("all lines delivered across both outputs", || {
        out2.refresh();
        ls.iter().all(|l| out1.count(l) + out2.count(l) > 0)
    });
    agent2.term_ok();
}

#[test]
fn stdout_closed_pipe_exits_0_and_checkpoint_stays_behind() {
    let env = Env::new();
    let path = env.log("big.log");
    // 20 MB: far more than a pipe buffer.
    let ls = lines(&"p".repeat(80), 0..200_000);
    write_lines(&path, &ls);
    let size = file_size(&path);
    let mut cfg = env.config();
    cfg.output_type = "stdout".into();
    cfg.output_path = None;
    let cfg_path = env.write_config(&cfg);
    let stderr_path = env.path("pipe-agent.stderr");
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(&cfg_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let pipe_size = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert!(pipe_size > 0);
    let mut agent = Agent::new(child, stderr_path, env.path("unused.stdout"), None);

    // Read a few events, then close our end.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.iter().filter(|&&b| b == b'\n').count() < 5 {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "stdout closed early\n{}", agent.context());
        got.extend_from_slice(&buf[..n]);
    }
    let first = got.split(|&b| b == b'\n').next().unwrap();
    let ev =
        parse_event(std::str::from_utf8(first).unwrap()).expect("first stdout line is an event");
    assert_eq!(ev.message, ls[0]);
    let bytes_read = got.len() as u64;
    drop(stdout);

    let status = agent.wait_exit(DEADLINE);
    let Some(status) = status else {
        panic!(
            "agent did not exit within {DEADLINE:?} after its stdout pipe closed\n{}",
            agent.context()
        );
    };
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", agent.context());
    let err = agent.stderr().to_lowercase();
    assert!(
        err.contains("pipe") || err.contains("stdout") || err.contains("output"),
        "stderr should say why it stopped\n{}",
        agent.context()
    );
    // Nothing beyond what could have gone through the pipe is checkpointed: every event is
    // longer than its line, so line bytes acked <= event bytes written <= read + pipe buffer.
    let e = checkpoint_for(&env.ckpt(), &path).expect("final checkpoint after a clean exit");
    let bound = bytes_read + pipe_size as u64;
    assert!(
        e.offset <= bound,
        "checkpoint offset {} exceeds what the pipe could have taken ({bound} bytes)",
        e.offset
    );
    assert!(e.offset < size);
}

#[test]
fn odd_file_names_are_escaped_in_json_events() {
    let env = Env::new();
    let path = env.log("we\"ird \\ name é.log");
    let ls = lines("odd-name", 0..10);
    write_lines(&path, &ls);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ls);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &ls);
    for e in &out.events {
        assert_eq!(e.path, path.to_str().unwrap());
    }
}
