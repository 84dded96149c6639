//! Compressed rotated files (`.gz`): read once by identity, never again after a restart;
//! a compressed generation of a file already read as plain text (logrotate `compress`) is
//! recognised by the fingerprint of its decompressed head and not read twice; damaged and
//! still-being-written archives; distinct archives with identical heads.
mod common;

use common::*;
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Local helpers

fn ps(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// The gzip-compressed form of `data` (`gzip -c`), produced from a scratch file in `scratch`.
fn gzip_bytes(scratch: &Path, data: &[u8]) -> Vec<u8> {
    let src = scratch.join("gzip-input.tmp");
    fs::write(&src, data).unwrap();
    let out = Command::new("gzip")
        .arg("-c")
        .arg(&src)
        .output()
        .expect("run gzip (is it installed?)");
    assert!(out.status.success(), "gzip -c failed: {out:?}");
    fs::remove_file(&src).unwrap();
    assert!(out.stdout.len() > 18, "gzip produced no data");
    out.stdout
}

/// A config whose agent logs at trace level (to see scans and archive opens), matching
/// `patterns` plus `*.txt` (the restart markers).
fn cfg_with(env: &Env, patterns: &[&str]) -> Config {
    let mut cfg = env.config();
    cfg.log_level = "trace".into();
    let mut paths: Vec<String> = patterns.iter().map(|p| env.glob(p)).collect();
    paths.push(env.glob("*.txt"));
    cfg.input().paths = paths;
    cfg
}

/// The agent's own log records (json format), parsed; other lines skipped.
fn log_records(agent: &Agent) -> Vec<serde_json::Value> {
    agent
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

fn msg_of(r: &serde_json::Value) -> &str {
    r["fields"]["message"].as_str().unwrap_or("")
}

/// Completed discovery scans (the agent's trace record "scan", logged at the end of each).
fn scans(agent: &Agent) -> usize {
    log_records(agent)
        .iter()
        .filter(|r| r["target"] == "logaggregator::discovery" && msg_of(r) == "scan")
        .count()
}

/// The agent's stderr without its trace records (scans, and the noise of notify and mio),
/// its tail, for failure messages.
fn ctx(agent: &Agent) -> String {
    let all = agent.stderr();
    let kept: Vec<&str> = all
        .lines()
        .filter(|l| !l.contains("\"level\":\"TRACE\""))
        .collect();
    let text = kept.join("\n");
    let tail = if text.len() > 12_000 {
        let mut cut = text.len() - 12_000;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        format!("...{}", &text[cut..])
    } else {
        text
    };
    format!(
        "agent pid {} (trace records omitted)\n--- agent stderr ---\n{tail}\n--- end stderr ---",
        agent.pid
    )
}

/// Waits until `cond` holds; on timeout panics with `what` and the agent's filtered stderr.
fn wait(agent: &Agent, what: &str, cond: impl FnMut() -> bool) {
    wait_until(DEADLINE, what, || ctx(agent), cond)
}

/// Waits until the output holds every one of `expected` at least once.
fn wait_msgs(agent: &Agent, out: &mut Output, expected: &[String]) {
    let ok = poll_until(DEADLINE, || {
        out.refresh();
        expected.iter().all(|l| out.count(l) > 0)
    });
    if !ok {
        out.refresh();
        let missing: Vec<&String> = expected.iter().filter(|l| out.count(l) == 0).collect();
        panic!(
            "timed out after {DEADLINE:?} waiting for {} expected lines: {} missing, e.g. {:?}\n{}",
            expected.len(),
            missing.len(),
            &missing[..missing.len().min(10)],
            ctx(agent)
        );
    }
}

/// Waits until at least `n` more scans than `since` have completed.
fn wait_scans(agent: &Agent, since: usize, n: usize) {
    wait(agent, &format!("{n} more discovery scans"), || {
        scans(agent) >= since + n
    });
}

/// Whether the agent started reading the archive at `path` (its debug record).
fn opened_archive(agent: &Agent, path: &Path) -> bool {
    let p = ps(path);
    log_records(agent)
        .iter()
        .any(|r| msg_of(r) == "reading compressed file" && r["fields"]["path"] == p.as_str())
}

/// WARN/ERROR records naming `path`.
fn warnings_for(agent: &Agent, path: &Path) -> Vec<String> {
    let p = ps(path);
    log_records(agent)
        .iter()
        .filter(|r| (r["level"] == "WARN" || r["level"] == "ERROR") && r.to_string().contains(&p))
        .map(|r| r.to_string())
        .collect()
}

fn warn_or_error_records(agent: &Agent) -> Vec<String> {
    log_records(agent)
        .iter()
        .filter(|r| r["level"] == "WARN" || r["level"] == "ERROR")
        .map(|r| r.to_string())
        .collect()
}

/// Waits for the warning naming a damaged archive, then for three more scans, and checks the
/// archive was given up on for good: tried when first seen, then once more after it kept its
/// size for a while (it might have been still being written), then never again.
fn wait_given_up(agent: &Agent, bad: &Path, kind: &str) {
    wait(
        agent,
        &format!("a warning naming the {kind} archive"),
        || !warnings_for(agent, bad).is_empty(),
    );
    let s = scans(agent);
    wait_scans(agent, s, 3);
    let opens = log_records(agent)
        .iter()
        .filter(|r| msg_of(r) == "reading compressed file" && r["fields"]["path"] == ps(bad))
        .count();
    assert!(
        opens <= 2,
        "{kind} archive opened {opens} times\n{}",
        ctx(agent)
    );
}

/// The checkpoint entry of the archive at `gz` (by its inode).
fn archive_entry(env: &Env, gz: &Path) -> Option<CkptEntry> {
    checkpoint_for(&env.ckpt(), gz)
}

/// Waits until the checkpoint records the archive at `gz` as read to its end:
/// `gzip_length` and `offset` equal to its decompressed length.
fn wait_archive_complete(agent: &Agent, env: &Env, gz: &Path, decompressed_len: u64) {
    wait(
        agent,
        &format!(
            "checkpoint entry for {} with gzip_length = offset = {decompressed_len}",
            gz.display()
        ),
        || {
            archive_entry(env, gz).is_some_and(|e| {
                e.raw["gzip_length"].as_u64() == Some(decompressed_len)
                    && e.offset == decompressed_len
            })
        },
    );
}

/// A restart that must read nothing again: a fresh marker file is delivered, three scans
/// complete (every matched file has been looked at), and none of `archives` was opened.
/// Stops the agent; returns the marker lines (part of the expected output).
fn restart_reads_no_archive(
    env: &Env,
    cfg: &Config,
    out: &mut Output,
    archives: &[&Path],
    tag: &str,
) -> Vec<String> {
    let marker = lines(tag, 0..5);
    write_lines(&env.log(&format!("{tag}.txt")), &marker);
    let mut agent = env.spawn(cfg);
    wait_msgs(&agent, out, &marker);
    wait_scans(&agent, 0, 3);
    for gz in archives {
        assert!(
            !opened_archive(&agent, gz),
            "restart {tag}: {} was opened again although checkpointed as read\n{}",
            gz.display(),
            ctx(&agent)
        );
    }
    agent.assert_running();
    agent.term_ok();
    marker
}

/// Messages of the events whose `path` is `path`, counted.
fn counts_for_path(out: &Output, path: &Path) -> HashMap<String, usize> {
    let p = ps(path);
    let mut m = HashMap::new();
    for e in out.events.iter().filter(|e| e.path == p) {
        *m.entry(e.message.clone()).or_default() += 1;
    }
    m
}

/// `assert_exactly_once`, printing the agent's log first when it is going to fail.
fn assert_once(agent: &Agent, out: &Output, expected: &[String]) {
    let mut want: HashMap<&str, usize> = HashMap::new();
    for l in expected {
        *want.entry(l.as_str()).or_default() += 1;
    }
    let same = want.len() == out.counts().len() && want.iter().all(|(l, n)| out.count(l) == *n);
    if !same {
        eprintln!("{}", ctx(agent));
    }
    assert_exactly_once(out, expected);
}

fn concat(parts: &[&[String]]) -> Vec<String> {
    parts.iter().flat_map(|p| p.iter().cloned()).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. A pre-existing archive: read once, never again

#[test]
fn preexisting_archive_is_read_once_with_unterminated_last_line_and_never_again() {
    let env = Env::new();
    let gz = env.log("old.log.gz");
    let all = lines("old", 0..5000);
    // The last line has no newline: nothing more can come, so it is delivered anyway.
    let mut plain = joined(&all[..4999]);
    plain.extend_from_slice(all[4999].as_bytes());
    let len = plain.len() as u64;
    assert!(len > 2048, "fingerprint must be complete");
    fs::write(&gz, gzip_bytes(env.root(), &plain)).unwrap();

    let cfg = cfg_with(&env, &["*.log*"]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &all);
    wait_archive_complete(&agent, &env, &gz, len);
    assert!(
        opened_archive(&agent, &gz),
        "test precondition: the 'reading compressed file' record exists (the restarts rely on it)\n{}",
        ctx(&agent)
    );
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &all);
    let last = out.events.iter().find(|e| e.message == all[4999]).unwrap();
    assert_eq!(last.path, ps(&gz), "event path of the archive's lines");
    assert_eq!(
        last.offset,
        len - all[4999].len() as u64,
        "offsets count decompressed bytes"
    );

    // Two restarts: nothing delivered again.
    let m1 = restart_reads_no_archive(&env, &cfg, &mut out, &[&gz], "restart1");
    let m2 = restart_reads_no_archive(&env, &cfg, &mut out, &[&gz], "restart2");
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &concat(&[&all, &m1, &m2]));

    let e = archive_entry(&env, &gz).expect("checkpoint entry for the archive");
    assert_eq!(
        e.raw["gzip_length"].as_u64(),
        Some(len),
        "gzip_length is the decompressed size: {:?}",
        e.raw
    );
    assert_eq!(e.offset, len, "offset at the decompressed end: {:?}", e.raw);
}

// ---------------------------------------------------------------------------------------------
// 2. logrotate `compress` with the agent running

/// app.log read, renamed to app.log.1, a new app.log written, then app.log.1 compressed.
/// `old_handle_lines`: lines the application writes through its old descriptor after the
/// rename, just before compression (may be read from the plain file or from the archive).
fn compress_while_running(patterns: &[&str], old_handle_lines: usize) {
    let env = Env::new();
    let path = env.log("app.log");
    let rotated = env.log("app.log.1");
    let gz = env.log("app.log.1.gz");
    let cfg = cfg_with(&env, patterns);
    let mut g0 = LogWriter::open(&path, "gen0");
    g0.write_n(300);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &g0.written);

    fs::rename(&path, &rotated).unwrap();
    let mut g1 = LogWriter::open(&path, "gen1");
    g1.write_n(100);
    if old_handle_lines > 0 {
        g0.write_n(old_handle_lines);
    }
    let plain_len = file_size(&rotated);
    gzip_in_place(&rotated);
    g1.write_n(50);

    let expected = concat(&[&g0.written, &g1.written]);
    wait_msgs(&agent, &mut out, &expected);
    // The archive is recognised and checkpointed as read to its end.
    wait_archive_complete(&agent, &env, &gz, plain_len);
    // A line after that: anything the archive was going to deliver has arrived by now.
    g1.write_n(5);
    let expected = concat(&[&g0.written, &g1.written]);
    wait_msgs(&agent, &mut out, &expected);
    agent.assert_running();
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &expected);

    let m = restart_reads_no_archive(&env, &cfg, &mut out, &[&gz], "restart");
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &concat(&[&expected, &m]));
}

#[test]
fn compress_after_rotation_while_running_glob_matches_all_generations() {
    compress_while_running(&["*.log*"], 0);
}

#[test]
fn compress_after_rotation_while_running_glob_matches_live_file_and_archives() {
    compress_while_running(&["app.log", "*.gz"], 0);
}

#[test]
fn compress_right_after_lines_written_through_the_old_handle() {
    compress_while_running(&["*.log*"], 40);
}

// ---------------------------------------------------------------------------------------------
// 3. Compressed while the agent was stopped, with lines not yet delivered

/// `new_file_after_compress`: the new app.log appears only after compression (logrotate
/// `nocreate`, the application creating its file later), so it may get the freed inode of
/// the compressed plain file.
fn compress_while_stopped(patterns: &[&str], new_file_after_compress: bool) {
    let env = Env::new();
    let path = env.log("app.log");
    let rotated = env.log("app.log.1");
    let gz = env.log("app.log.1.gz");
    let cfg = cfg_with(&env, patterns);
    let mut g0 = LogWriter::open(&path, "gen0");
    g0.write_n(300);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &g0.written);
    agent.term_ok();
    let ck = checkpoint_for(&env.ckpt(), &path).expect("checkpoint entry for app.log");
    let read_to = file_size(&path);
    assert_eq!(ck.offset, read_to, "test precondition: all checkpointed");

    // Stopped: 100 more lines, then logrotate: rename, create the new file, compress.
    let late = g0.write_n(100);
    drop(g0);
    let old_ino = inode(&path);
    fs::rename(&path, &rotated).unwrap();
    let plain_len = file_size(&rotated);
    let mut g1 = if new_file_after_compress {
        gzip_in_place(&rotated);
        LogWriter::open(&path, "gen1")
    } else {
        let g1 = LogWriter::open(&path, "gen1");
        gzip_in_place(&rotated);
        g1
    };
    g1.write_n(60);
    eprintln!(
        "note: the new app.log {} the inode of the compressed one",
        if inode(&path) == old_ino {
            "reuses"
        } else {
            "does not reuse"
        }
    );

    let mut agent = env.spawn(&cfg);
    let expected = concat(&[&lines("gen0", 0..400), &g1.written]);
    wait_msgs(&agent, &mut out, &expected);
    wait_archive_complete(&agent, &env, &gz, plain_len);
    g1.write_n(5);
    let expected = concat(&[&lines("gen0", 0..400), &g1.written]);
    wait_msgs(&agent, &mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &expected);
    // The late lines came from the archive, at their offsets in the plain file.
    let mut at = read_to;
    for l in &late {
        let e = out.events.iter().find(|e| e.message == *l).unwrap();
        assert_eq!(e.path, ps(&gz), "late line {l:?} comes from the archive");
        assert_eq!(e.offset, at, "late line {l:?}: decompressed offset");
        at += l.len() as u64 + 1;
    }

    let m = restart_reads_no_archive(&env, &cfg, &mut out, &[&gz], "restart");
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &concat(&[&expected, &m]));
}

#[test]
fn compressed_while_stopped_continues_at_plain_offset_glob_matches_all() {
    compress_while_stopped(&["*.log*"], false);
}

#[test]
fn compressed_while_stopped_continues_at_plain_offset_glob_matches_live_and_archives() {
    compress_while_stopped(&["app.log", "*.gz"], false);
}

#[test]
fn compressed_while_stopped_new_file_created_after_compression_may_reuse_the_inode() {
    compress_while_stopped(&["*.log*"], true);
}

// ---------------------------------------------------------------------------------------------
// 4. Small files (< 1 KiB: the fingerprint is the whole file)

#[test]
fn small_file_compressed_after_being_read_is_not_read_twice_running() {
    let env = Env::new();
    let path = env.log("app.log");
    let rotated = env.log("app.log.1");
    let gz = env.log("app.log.1.gz");
    let cfg = cfg_with(&env, &["*.log*"]);
    let small = lines("small", 0..3);
    write_lines(&path, &small);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &small);

    rotate_rename(&path, &rotated);
    let plain_len = file_size(&rotated);
    gzip_in_place(&rotated);
    let next = lines("next", 0..3);
    append_lines(&path, &next);
    wait_msgs(&agent, &mut out, &next);
    wait_archive_complete(&agent, &env, &gz, plain_len);
    let more = lines("next", 3..5);
    append_lines(&path, &more);
    wait_msgs(&agent, &mut out, &more);
    agent.term_ok();
    out.refresh();
    let expected = concat(&[&small, &next, &more]);
    assert_once(&agent, &out, &expected);

    let m = restart_reads_no_archive(&env, &cfg, &mut out, &[&gz], "restart");
    out.refresh();
    assert_exactly_once(&out, &concat(&[&expected, &m]));
}

#[test]
fn small_file_compressed_while_stopped_after_being_read_is_not_read_twice() {
    let env = Env::new();
    let path = env.log("app.log");
    let rotated = env.log("app.log.1");
    let gz = env.log("app.log.1.gz");
    let cfg = cfg_with(&env, &["*.log*"]);
    let small = lines("small", 0..3);
    write_lines(&path, &small);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &small);
    agent.term_ok();

    rotate_rename(&path, &rotated);
    let plain_len = file_size(&rotated);
    gzip_in_place(&rotated);
    let next = lines("next", 0..3);
    append_lines(&path, &next);
    let mut agent = env.spawn(&cfg);
    wait_msgs(&agent, &mut out, &next);
    wait_archive_complete(&agent, &env, &gz, plain_len);
    let more = lines("next", 3..5);
    append_lines(&path, &more);
    wait_msgs(&agent, &mut out, &more);
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &concat(&[&small, &next, &more]));
}

/// A small file that grew while the agent was stopped and was then compressed: its checkpoint
/// fingerprint covers only the part read. README: "lines the plain file had not yet delivered
/// are delivered from the archive", "nothing twice".
#[test]
fn small_file_grown_while_stopped_then_compressed_delivers_only_the_new_lines() {
    let env = Env::new();
    let path = env.log("app.log");
    let rotated = env.log("app.log.1");
    let gz = env.log("app.log.1.gz");
    let cfg = cfg_with(&env, &["*.log*"]);
    let small = lines("small", 0..3);
    write_lines(&path, &small);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &small);
    agent.term_ok();

    let late = lines("small", 3..6);
    append_lines(&path, &late);
    rotate_rename(&path, &rotated);
    let plain_len = file_size(&rotated);
    assert!(plain_len < 1024);
    gzip_in_place(&rotated);
    let next = lines("next", 0..3);
    append_lines(&path, &next);
    let mut agent = env.spawn(&cfg);
    wait_msgs(&agent, &mut out, &concat(&[&late, &next]));
    wait_archive_complete(&agent, &env, &gz, plain_len);
    let more = lines("next", 3..5);
    append_lines(&path, &more);
    wait_msgs(&agent, &mut out, &more);
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &concat(&[&small, &late, &next, &more]));
}

// ---------------------------------------------------------------------------------------------
// 5. Damaged archives, archives still being written

/// Lines delivered from a damaged archive: none twice, each an original line except possibly
/// one cut-off prefix of the line at the damage.
fn assert_damaged_delivery(out: &Output, gz: &Path, originals: &[String]) -> usize {
    let got = counts_for_path(out, gz);
    let dups: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dups.is_empty(),
        "lines of {} delivered twice: {dups:?}",
        gz.display()
    );
    let known: std::collections::HashSet<&str> = originals.iter().map(String::as_str).collect();
    let odd: Vec<&String> = got.keys().filter(|m| !known.contains(m.as_str())).collect();
    assert!(
        odd.len() <= 1
            && odd
                .iter()
                .all(|m| originals.iter().any(|o| o.starts_with(*m))),
        "unexpected lines from truncated {}: {odd:?}",
        gz.display()
    );
    got.len()
}

#[test]
fn truncated_archive_is_warned_about_and_does_not_affect_other_files() {
    let env = Env::new();
    let bad = env.log("bad.log.gz");
    let good = env.log("good.log.gz");
    let live = env.log("live.log");
    let bad_lines = lines("bad", 0..4000);
    let full = gzip_bytes(env.root(), &joined(&bad_lines));
    fs::write(&bad, &full[..full.len() / 2]).unwrap();
    let good_lines = lines("good", 0..1000);
    fs::write(&good, gzip_bytes(env.root(), &joined(&good_lines))).unwrap();
    let mut w = LogWriter::open(&live, "live");
    w.write_n(50);

    let cfg = cfg_with(&env, &["*.log*"]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &concat(&[&good_lines, &w.written]));
    // The live file is still tailed.
    w.write_n(20);
    wait_msgs(&agent, &mut out, &w.written);
    agent.assert_running();
    out.refresh();
    assert_damaged_delivery(&out, &bad, &bad_lines);
    wait(
        &agent,
        "a warning naming the truncated archive (it does not change any more)",
        || !warnings_for(&agent, &bad).is_empty(),
    );
    agent.assert_running();
    let warns = warnings_for(&agent, &bad);
    agent.term_ok();
    out.refresh();
    let n_bad = assert_damaged_delivery(&out, &bad, &bad_lines);
    eprintln!(
        "note: {n_bad} lines of the truncated archive delivered; warnings: {:?}",
        &warns[..warns.len().min(3)]
    );
    let delivered_bad: Vec<String> = counts_for_path(&out, &bad).into_keys().collect();
    let expected = concat(&[&good_lines, &w.written, &delivered_bad]);
    assert_once(&agent, &out, &expected);

    // A restart neither re-delivers nor crashes on it.
    let marker = lines("restart", 0..5);
    write_lines(&env.log("restart.txt"), &marker);
    let mut agent = env.spawn(&cfg);
    wait_msgs(&agent, &mut out, &marker);
    wait_scans(&agent, 0, 3);
    agent.assert_running();
    agent.term_ok();
    out.refresh();
    assert_damaged_delivery(&out, &bad, &bad_lines);
    // Anything newly delivered from the truncated archive is new, never a repeat.
    let delivered_bad: Vec<String> = counts_for_path(&out, &bad).into_keys().collect();
    assert_exactly_once(
        &out,
        &concat(&[&good_lines, &w.written, &delivered_bad, &marker]),
    );
}

/// Bytes flipped in the trailer (CRC32): every byte decompresses correctly, the damage shows
/// only at the end. Every line delivered once, a warning, the archive not read again.
#[test]
fn archive_with_bad_checksum_is_delivered_once_and_warned_about() {
    let env = Env::new();
    let bad = env.log("bad.log.gz");
    let live = env.log("live.log");
    let bad_lines = lines("bad", 0..4000);
    let mut data = gzip_bytes(env.root(), &joined(&bad_lines));
    let n = data.len();
    for b in &mut data[n - 8..n - 4] {
        *b ^= 0xff;
    }
    fs::write(&bad, &data).unwrap();
    let mut w = LogWriter::open(&live, "live");
    w.write_n(50);

    let cfg = cfg_with(&env, &["*.log*"]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &concat(&[&bad_lines, &w.written]));
    wait_given_up(&agent, &bad, "damaged");
    w.write_n(20);
    wait_msgs(&agent, &mut out, &w.written);
    agent.assert_running();
    agent.term_ok();
    out.refresh();
    let expected = concat(&[&bad_lines, &w.written]);
    assert_once(&agent, &out, &expected);
    let m = restart_reads_no_archive(&env, &cfg, &mut out, &[&bad], "restart");
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &concat(&[&expected, &m]));
}

/// Garbage in the middle of the deflate stream: what comes out is undefined (deflate checks
/// the CRC only at the end), but the agent warns, keeps running, reads the archive once and
/// never again, and the other files are unaffected.
#[test]
fn corrupt_archive_is_warned_about_agent_keeps_running_other_files_unaffected() {
    let env = Env::new();
    let bad = env.log("bad.log.gz");
    let live = env.log("live.log");
    let bad_lines = lines("bad", 0..4000);
    let mut data = gzip_bytes(env.root(), &joined(&bad_lines));
    let mid = data.len() / 2;
    for (i, b) in data[mid..mid + 64].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0xa5;
    }
    fs::write(&bad, &data).unwrap();
    let good = env.log("good.log.gz");
    let good_lines = lines("good", 0..1000);
    fs::write(&good, gzip_bytes(env.root(), &joined(&good_lines))).unwrap();
    let mut w = LogWriter::open(&live, "live");
    w.write_n(50);

    let cfg = cfg_with(&env, &["*.log*"]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &concat(&[&good_lines, &w.written]));
    wait_given_up(&agent, &bad, "corrupt");
    w.write_n(20);
    wait_msgs(&agent, &mut out, &w.written);
    agent.assert_running();
    agent.term_ok();
    out.refresh();
    let from_bad = counts_for_path(&out, &bad);
    eprintln!(
        "note: {} distinct lines ({} events) came out of the corrupt archive",
        from_bad.len(),
        from_bad.values().sum::<usize>()
    );
    // Whatever came out of the corrupt archive is tolerated as it came; the others once.
    let mut expected = concat(&[&good_lines, &w.written]);
    for (m, n) in &from_bad {
        expected.extend(std::iter::repeat_n(m.clone(), *n));
    }
    assert_once(&agent, &out, &expected);
    let m = restart_reads_no_archive(&env, &cfg, &mut out, &[&bad, &good], "restart");
    out.refresh();
    assert_exactly_once(&out, &concat(&[&expected, &m]));
}

#[test]
fn archive_still_being_written_is_read_fully_once_complete() {
    let env = Env::new();
    let half = env.log("half.log.gz");
    let hdr = env.log("hdr.log.gz");
    let half_lines = lines("half", 0..4000);
    let half_plain = joined(&half_lines);
    let half_gz = gzip_bytes(env.root(), &half_plain);
    let hdr_lines = lines("hdr", 0..500);
    let hdr_plain = joined(&hdr_lines);
    let hdr_gz = gzip_bytes(env.root(), &hdr_plain);
    let empty = env.log("empty.log.gz");
    let empty_lines = lines("empty", 0..300);
    let empty_plain = joined(&empty_lines);
    let empty_gz = gzip_bytes(env.root(), &empty_plain);
    let mut w = LogWriter::open(&env.log("live.log"), "live");
    w.write_n(10);

    let cfg = cfg_with(&env, &["*.log*"]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &w.written);

    // gzip has created one archive but written nothing yet, only the header of another, half
    // of a third.
    let mut fe = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&empty)
        .unwrap();
    let cut = half_gz.len() / 2;
    let mut fh = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&half)
        .unwrap();
    fh.write_all(&half_gz[..cut]).unwrap();
    let mut fd = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&hdr)
        .unwrap();
    fd.write_all(&hdr_gz[..10]).unwrap();
    // The agent reads what decompresses so far...
    wait(&agent, "some lines of the half-written archive", || {
        out.refresh();
        half_lines.iter().any(|l| out.count(l) > 0)
    });
    // ...and the three are looked at again by later scans, still short.
    let s = scans(&agent);
    wait_scans(&agent, s, 3);
    out.refresh();
    let early = half_lines.iter().filter(|l| out.count(l) > 0).count();
    assert!(
        early < half_lines.len(),
        "test precondition: the first half does not hold every line"
    );
    // gzip finishes.
    fh.write_all(&half_gz[cut..]).unwrap();
    fd.write_all(&hdr_gz[10..]).unwrap();
    fe.write_all(&empty_gz).unwrap();
    drop(fh);
    drop(fd);
    drop(fe);
    let expected = concat(&[&half_lines, &hdr_lines, &empty_lines, &w.written]);
    wait_msgs(&agent, &mut out, &expected);
    wait_archive_complete(&agent, &env, &half, half_plain.len() as u64);
    wait_archive_complete(&agent, &env, &hdr, hdr_plain.len() as u64);
    wait_archive_complete(&agent, &env, &empty, empty_plain.len() as u64);
    w.write_n(5);
    let expected = concat(&[&half_lines, &hdr_lines, &empty_lines, &w.written]);
    wait_msgs(&agent, &mut out, &expected);
    agent.assert_running();
    let warns = warn_or_error_records(&agent);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_once(&agent, &out, &expected);
    eprintln!(
        "note: {early} of {} lines read before the archive was complete; warnings: {warns:?}",
        half_lines.len()
    );
}

/// Lines that compress about 3:1 (a pseudo-random hex field), so the archive is long.
fn noisy_lines(prefix: &str, n: usize) -> Vec<String> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{prefix} line {i:06} {:08x}", x as u32)
        })
        .collect()
}

/// gzip on a busy machine: the archive grows in small pieces while the agent looks at it
/// (inotify events and scans), so the agent often reaches its current end mid-stream. It
/// must look again, never take the momentary end for damage.
#[test]
fn archive_written_slowly_in_small_pieces_is_read_fully_once() {
    let env = Env::new();
    let gz = env.log("slow.log.gz");
    let all = noisy_lines("slow", 40_000);
    let plain = joined(&all);
    let data = gzip_bytes(env.root(), &plain);
    assert!(data.len() > 200_000, "archive of {} bytes", data.len());
    let cfg = cfg_with(&env, &["*.log*"]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let mut w = LogWriter::open(&env.log("live.log"), "live");
    w.write_n(5);
    wait_msgs(&agent, &mut out, &w.written);

    let mut f = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&gz)
        .unwrap();
    for piece in data.chunks(512) {
        f.write_all(piece).unwrap();
        // Pacing of the writer (not a wait for the agent).
        std::thread::sleep(Duration::from_millis(3));
    }
    drop(f);
    wait_msgs(&agent, &mut out, &all);
    wait_archive_complete(&agent, &env, &gz, plain.len() as u64);
    w.write_n(5);
    wait_msgs(&agent, &mut out, &w.written);
    agent.assert_running();
    let warns = warnings_for(&agent, &gz);
    agent.term_ok();
    out.refresh();
    assert!(
        warns.is_empty(),
        "a growing archive was reported as damaged: {warns:?}"
    );
    assert_once(&agent, &out, &concat(&[&all, &w.written]));
}

// ---------------------------------------------------------------------------------------------
// 6. Identical decompressed heads

/// 32 lines of 63 characters + newline: 2 KiB, identical in every file that starts with it.
fn banner() -> Vec<String> {
    (0..32)
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
fn two_archives_with_identical_heads_are_both_read_fully() {
    let env = Env::new();
    let b = banner();
    assert_eq!(joined(&b).len(), 2048);
    let ga = env.log("a.log.gz");
    let gb = env.log("b.log.gz");
    let la = concat(&[&b, &lines("gz-a", 0..300)]);
    let lb = concat(&[&b, &lines("gz-b", 0..200)]);
    fs::write(&ga, gzip_bytes(env.root(), &joined(&la))).unwrap();
    fs::write(&gb, gzip_bytes(env.root(), &joined(&lb))).unwrap();
    let cfg = cfg_with(&env, &["*.gz"]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let expected = concat(&[&la, &lb]);
    wait_msgs(&agent, &mut out, &expected);
    wait_archive_complete(&agent, &env, &ga, joined(&la).len() as u64);
    wait_archive_complete(&agent, &env, &gb, joined(&lb).len() as u64);
    // A third archive with the same head, appearing while running.
    let gc = env.log("c.log.gz");
    let lc = concat(&[&b, &lines("gz-c", 0..100)]);
    fs::write(&gc, gzip_bytes(env.root(), &joined(&lc))).unwrap();
    wait_msgs(&agent, &mut out, &lc);
    wait_archive_complete(&agent, &env, &gc, joined(&lc).len() as u64);
    agent.term_ok();
    out.refresh();
    let expected = concat(&[&la, &lb, &lc]);
    assert_once(&agent, &out, &expected);
    for (p, ls) in [(&ga, &la), (&gb, &lb), (&gc, &lc)] {
        let got = counts_for_path(&out, p);
        assert!(
            ls.iter().all(|l| got.get(l) == Some(&1)),
            "every line of {} under its own path once",
            p.display()
        );
    }
    let m = restart_reads_no_archive(&env, &cfg, &mut out, &[&ga, &gb, &gc], "restart");
    out.refresh();
    assert_exactly_once(&out, &concat(&[&expected, &m]));
}

/// An unrelated archive whose head equals that of the live plain file being tailed (both
/// start with the same banner) is not a compressed copy of it: it is read, promptly.
#[test]
fn archive_with_same_head_as_the_live_plain_file_is_read_fully() {
    let env = Env::new();
    let b = banner();
    let live = env.log("app.log");
    let old = env.log("older.log.gz");
    let mut w = LogWriter::open(&live, "live");
    w.file.write_all(&joined(&b)).unwrap();
    w.write_n(100);
    let cfg = cfg_with(&env, &["*.log*"]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let live_expected = |w: &LogWriter| concat(&[&b, &w.written]);
    wait_msgs(&agent, &mut out, &live_expected(&w));

    let lo = concat(&[&b, &lines("older", 0..300)]);
    fs::write(&old, gzip_bytes(env.root(), &joined(&lo))).unwrap();
    w.write_n(10);
    wait_msgs(&agent, &mut out, &live_expected(&w));
    wait_msgs(&agent, &mut out, &lo);
    wait_archive_complete(&agent, &env, &old, joined(&lo).len() as u64);
    w.write_n(10);
    wait_msgs(&agent, &mut out, &live_expected(&w));
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &concat(&[&live_expected(&w), &lo]));
}

/// Daily rotation with `compress` where every generation starts with the same 2 KiB banner:
/// each archive is the compressed copy of its own generation, not of an older one.
#[test]
fn compress_rotation_of_generations_with_identical_heads_every_line_once() {
    let env = Env::new();
    let b = banner();
    let path = env.log("app.log");
    let cfg = cfg_with(&env, &["*.log*"]);
    let mut g0 = LogWriter::open(&path, "gen0");
    g0.file.write_all(&joined(&b)).unwrap();
    g0.write_n(100);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let mut expected = concat(&[&b, &g0.written]);
    wait_msgs(&agent, &mut out, &expected);

    let mut writer = g0;
    for g in 1..=2 {
        // logrotate: shift app.log.1.gz -> app.log.2.gz, app.log -> app.log.1, new app.log,
        // compress app.log.1.
        if g > 1 {
            fs::rename(env.log("app.log.1.gz"), env.log(&format!("app.log.{g}.gz"))).unwrap();
        }
        fs::rename(&path, env.log("app.log.1")).unwrap();
        let mut next = LogWriter::open(&path, &format!("gen{g}"));
        next.file.write_all(&joined(&b)).unwrap();
        next.write_n(100 + 50 * g);
        let plain_len = file_size(&env.log("app.log.1"));
        gzip_in_place(&env.log("app.log.1"));
        expected.extend(b.iter().cloned());
        expected.extend(next.written.iter().cloned());
        wait_msgs(&agent, &mut out, &expected);
        wait_archive_complete(&agent, &env, &env.log("app.log.1.gz"), plain_len);
        drop(writer);
        writer = next;
    }
    writer.write_n(5);
    let n = writer.written.len();
    expected.extend(writer.written[n - 5..].iter().cloned());
    wait_msgs(&agent, &mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &expected);
    let gz = [env.log("app.log.2.gz"), env.log("app.log.1.gz")];
    let m = restart_reads_no_archive(&env, &cfg, &mut out, &[&gz[0], &gz[1]], "restart");
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &concat(&[&expected, &m]));
}

/// Creates unmatched scratch files in `dir` until one gets the inode `want`: ext4 hands the
/// lowest free inode to the next file, and the agent's checkpoint file may hold `want` until
/// its next atomic rewrite frees it (`tick` makes one happen by giving the agent something to
/// read), so probing goes on for a while, keeping every probe so that no other free inode
/// comes first. None if the filesystem never reuses it (tmpfs numbers
/// inodes afresh).
fn file_at_inode(
    dir: &Path,
    want: (u64, u64),
    mut tick: impl FnMut(),
) -> Option<std::path::PathBuf> {
    let mut found = None;
    let mut probes = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while found.is_none() && std::time::Instant::now() < deadline && probes.len() < 20_000 {
        let p = dir.join(format!("probe-{:05}.tmp", probes.len()));
        fs::write(&p, b"").unwrap();
        if inode(&p) == want {
            found = Some(p);
        } else {
            probes.push(p);
            if probes.len() % 50 == 0 {
                tick();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for p in probes {
        fs::remove_file(p).unwrap();
    }
    found
}

/// Two generations with the same banner, the first rotated and compressed (so its plain
/// file, and inode, are gone) and its archive recorded as read to its end.
struct FirstArchived {
    env: Env,
    b: Vec<String>,
    path: std::path::PathBuf,
    cfg: Config,
    agent: Agent,
    out: Output,
    expected: Vec<String>,
    /// The inode gen0 had.
    k0: (u64, u64),
    g0_len: u64,
    g1: LogWriter,
}

fn first_generation_archived() -> FirstArchived {
    let env = Env::new();
    let b = banner();
    let path = env.log("app.log");
    let cfg = cfg_with(&env, &["*.log*"]);
    let mut g0 = LogWriter::open(&path, "gen0");
    g0.file.write_all(&joined(&b)).unwrap();
    g0.write_n(100);
    let agent = env.spawn(&cfg);
    let mut out = env.output();
    let mut expected = concat(&[&b, &g0.written]);
    wait_msgs(&agent, &mut out, &expected);
    // app.log -> app.log.1 -> app.log.1.gz; gen0's inode is now free.
    let k0 = inode(&path);
    fs::rename(&path, env.log("app.log.1")).unwrap();
    drop(g0);
    let mut g1 = LogWriter::open(&path, "gen1");
    g1.file.write_all(&joined(&b)).unwrap();
    g1.write_n(150);
    expected.extend(concat(&[&b, &g1.written]));
    wait_msgs(&agent, &mut out, &expected);
    let g0_len = file_size(&env.log("app.log.1"));
    gzip_in_place(&env.log("app.log.1"));
    wait_archive_complete(&agent, &env, &env.log("app.log.1.gz"), g0_len);
    FirstArchived {
        env,
        b,
        path,
        cfg,
        agent,
        out,
        expected,
        k0,
        g0_len,
        g1,
    }
}

/// The inode of a plain file that was compressed (and so deleted) is reused by the next
/// archive, or by the next live file: the new file is not the old one, even with an identical
/// head. Every line once, and the archive is recorded as read to its end.
fn inode_of_compressed_original_reused(by_archive: bool) {
    let FirstArchived {
        env,
        b,
        path,
        cfg: _,
        mut agent,
        mut out,
        mut expected,
        k0,
        g0_len: _,
        g1,
    } = first_generation_archived();

    // Second rotation, with gen0's inode given to the new archive or to the new live file.
    fs::rename(env.log("app.log.1.gz"), env.log("app.log.2.gz")).unwrap();
    fs::rename(&path, env.log("app.log.1")).unwrap();
    let mut ticks = LogWriter::open(&env.log("tick.txt"), "tick");
    let reused = file_at_inode(&env.logs(), k0, || {
        ticks.write_n(1);
    });
    expected.extend(ticks.written.iter().cloned());
    let Some(reused) = reused else {
        eprintln!("note: this filesystem did not reuse the inode; scenario not exercised");
        agent.term_ok();
        return;
    };
    let g1_plain = fs::read(env.log("app.log.1")).unwrap();
    let gz = env.log("app.log.1.gz");
    let g2 = if by_archive {
        let g2 = LogWriter::open(&path, "gen2");
        fs::write(&reused, gzip_bytes(env.root(), &g1_plain)).unwrap();
        fs::rename(&reused, &gz).unwrap();
        g2
    } else {
        fs::rename(&reused, &path).unwrap();
        let g2 = LogWriter::open(&path, "gen2");
        fs::write(&gz, gzip_bytes(env.root(), &g1_plain)).unwrap();
        g2
    };
    fs::remove_file(env.log("app.log.1")).unwrap();
    assert_eq!(inode(if by_archive { &gz } else { &path }), k0);
    let mut g2 = g2;
    g2.file.write_all(&joined(&b)).unwrap();
    g2.write_n(120);
    drop(g1);
    expected.extend(concat(&[&b, &g2.written]));
    wait_msgs(&agent, &mut out, &expected);
    wait_archive_complete(&agent, &env, &gz, g1_plain.len() as u64);
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &expected);
}

#[test]
fn archive_written_into_the_inode_of_a_compressed_away_original_is_not_taken_for_it() {
    inode_of_compressed_original_reused(true);
}

#[test]
fn live_file_created_in_the_inode_of_a_compressed_away_original_is_read_from_zero() {
    inode_of_compressed_original_reused(false);
}

/// Edits the checkpoint of a stopped agent as if the filesystem had given the inode `from` to
/// the new file at `to` (a no-op when it did): the entry of `from` now names `to`. Returns it.
fn hand_inode_over(env: &Env, from: (u64, u64), to: (u64, u64)) -> serde_json::Value {
    let mut ckpt = read_checkpoint(&env.ckpt()).expect("a checkpoint after a clean stop");
    let files = ckpt["files"].as_array_mut().unwrap();
    let key_of = |f: &serde_json::Value| (f["dev"].as_u64().unwrap(), f["ino"].as_u64().unwrap());
    assert!(
        files.iter().all(|f| key_of(f) == from || key_of(f) != to),
        "the new file is already in the checkpoint: {files:?}"
    );
    let entry = files
        .iter_mut()
        .find(|f| key_of(f) == from)
        .unwrap_or_else(|| panic!("no checkpoint entry for inode {from:?}"));
    entry["ino"] = to.1.into();
    let entry = entry.clone();
    fs::write(
        checkpoint_file(&env.ckpt()),
        serde_json::to_vec(&ckpt).unwrap(),
    )
    .unwrap();
    entry
}

/// The same inode reuse, made certain: while the agent is stopped, the checkpoint entry of a
/// plain file already used up by its archive is given the inode of a new archive (or of the
/// new live file), as if the filesystem had handed that inode on. Every line once, and the
/// archive is recognised as the compressed copy of its own generation.
fn inode_of_compressed_original_reused_while_stopped(by_archive: bool) {
    let FirstArchived {
        env,
        b,
        path,
        cfg,
        mut agent,
        mut out,
        mut expected,
        k0,
        g0_len,
        g1,
    } = first_generation_archived();
    agent.term_ok();

    // Stopped: the next rotation with compression, and gen0's entry handed the new inode.
    fs::rename(env.log("app.log.1.gz"), env.log("app.log.2.gz")).unwrap();
    fs::rename(&path, env.log("app.log.1")).unwrap();
    drop(g1);
    let mut g2 = LogWriter::open(&path, "gen2");
    g2.file.write_all(&joined(&b)).unwrap();
    g2.write_n(120);
    expected.extend(concat(&[&b, &g2.written]));
    let g1_len = file_size(&env.log("app.log.1"));
    gzip_in_place(&env.log("app.log.1"));
    let gz = env.log("app.log.1.gz");
    let new_key = inode(if by_archive { &gz } else { &path });
    // The filesystem may have handed gen0's inode on by itself (ext4 often does).
    let gen0 = hand_inode_over(&env, k0, new_key);
    assert_eq!(gen0["gzip_length"].as_u64(), Some(g0_len), "{gen0}");

    let mut agent = env.spawn(&cfg);
    wait_msgs(&agent, &mut out, &expected);
    wait_archive_complete(&agent, &env, &gz, g1_len);
    g2.write_n(5);
    let n = g2.written.len();
    expected.extend(g2.written[n - 5..].iter().cloned());
    wait_msgs(&agent, &mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &expected);
}

#[test]
fn archive_in_the_inode_of_a_compressed_away_original_while_stopped_is_recognised() {
    inode_of_compressed_original_reused_while_stopped(true);
}

#[test]
fn live_file_in_the_inode_of_a_compressed_away_original_while_stopped_is_read_from_zero() {
    inode_of_compressed_original_reused_while_stopped(false);
}

/// An archive read to its end is deleted and, while the agent is stopped, its inode goes to a
/// new archive that starts with the same banner (made certain by handing the inode over in the
/// checkpoint, as the filesystem may do by itself). The new archive is read, every line once.
#[test]
fn new_archive_in_the_inode_of_a_deleted_archive_with_the_same_head_is_read() {
    let env = Env::new();
    let b = banner();
    let old = env.log("old.log.gz");
    let old_lines = concat(&[&b, &lines("old", 0..300)]);
    fs::write(&old, gzip_bytes(env.root(), &joined(&old_lines))).unwrap();
    let cfg = cfg_with(&env, &["*.log*"]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &old_lines);
    wait_archive_complete(&agent, &env, &old, joined(&old_lines).len() as u64);
    agent.term_ok();
    let old_key = inode(&old);
    let entry = archive_entry(&env, &old).expect("checkpoint entry of the archive");
    assert_eq!(
        entry.raw["gzip_size"].as_u64(),
        Some(file_size(&old)),
        "{}",
        entry.raw
    );

    fs::remove_file(&old).unwrap();
    let new = env.log("new.log.gz");
    let new_lines = concat(&[&b, &lines("new", 0..200)]);
    fs::write(&new, gzip_bytes(env.root(), &joined(&new_lines))).unwrap();
    let new_key = inode(&new);
    hand_inode_over(&env, old_key, new_key);
    let mut agent = env.spawn(&cfg);
    wait_msgs(&agent, &mut out, &new_lines);
    wait_archive_complete(&agent, &env, &new, joined(&new_lines).len() as u64);
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &concat(&[&old_lines, &new_lines]));
}

/// logrotate `compress` + `delaycompress` with a file big enough that gzip is still at work
/// over several scans: the generation being compressed (`app.log.2`, closed, its checkpoint
/// path stale from before the second rename) is still there, so it is not yet taken as used
/// up by the archive, nor its inode as handed to another file. Every line once.
#[test]
fn delaycompress_with_slow_gzip_reads_every_generation_once() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut cfg = cfg_with(&env, &["app.log*"]);
    cfg.input().rotate_wait = "300ms".into();
    cfg.input().extra.push("close_inactive: 500ms".into());
    let a = lines("gen-a", 0..2000);
    write_lines(&path, &a);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &a);
    // Rotation 1 (delaycompress: app.log.1 stays plain), then gen-a drained and closed.
    fs::rename(&path, env.log("app.log.1")).unwrap();
    let b = lines("gen-b", 0..2000);
    write_lines(&path, &b);
    let mut expected = concat(&[&a, &b]);
    wait_msgs(&agent, &mut out, &expected);
    let gen_a = ps(&env.log("app.log.1"));
    wait(&agent, "gen-a drained and closed", || {
        !fd_targets(agent.pid).contains(&gen_a)
    });
    // Rotation 2: .1 -> .2, app.log -> .1, new app.log; gzip writes app.log.2.gz and takes a
    // while (several scans) before it removes app.log.2.
    fs::rename(env.log("app.log.1"), env.log("app.log.2")).unwrap();
    fs::rename(&path, env.log("app.log.1")).unwrap();
    let c = lines("gen-c", 0..10);
    write_lines(&path, &c);
    let gz = env.log("app.log.2.gz");
    fs::write(&gz, gzip_bytes(env.root(), &joined(&a))).unwrap();
    let since = scans(&agent);
    wait_scans(&agent, since, 3);
    fs::remove_file(env.log("app.log.2")).unwrap();
    expected.extend(c.iter().cloned());
    wait_msgs(&agent, &mut out, &expected);
    wait_archive_complete(&agent, &env, &gz, joined(&a).len() as u64);
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &expected);
}

/// A gzip member appended to an archive already read to its end (`gzip -c >> a.gz`), while
/// running and while stopped: only the new member's lines are delivered.
#[test]
fn gzip_member_appended_to_an_archive_already_read_delivers_only_the_new_lines() {
    let env = Env::new();
    let gz = env.log("a.log.gz");
    let cfg = cfg_with(&env, &["*.gz"]);
    let p1 = lines("member-1", 0..500);
    fs::write(&gz, gzip_bytes(env.root(), &joined(&p1))).unwrap();
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &p1);
    wait_archive_complete(&agent, &env, &gz, joined(&p1).len() as u64);
    let append_member = |ls: &[String]| {
        let mut f = OpenOptions::new().append(true).open(&gz).unwrap();
        f.write_all(&gzip_bytes(env.root(), &joined(ls))).unwrap();
    };
    let p2 = lines("member-2", 0..500);
    append_member(&p2);
    let mut expected = concat(&[&p1, &p2]);
    wait_msgs(&agent, &mut out, &expected);
    wait_archive_complete(&agent, &env, &gz, joined(&expected).len() as u64);
    agent.term_ok();
    let p3 = lines("member-3", 0..500);
    append_member(&p3);
    expected.extend(p3.iter().cloned());
    let mut agent = env.spawn(&cfg);
    wait_msgs(&agent, &mut out, &expected);
    wait_archive_complete(&agent, &env, &gz, joined(&expected).len() as u64);
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &expected);
}

/// With `start_at: end`, a new file at the inode of an archive read before (deleted while the
/// agent was stopped) is known to be new: read from its start, not skipped to its end.
#[test]
fn start_at_end_new_file_in_the_inode_of_a_deleted_archive_is_read_from_its_start() {
    let env = Env::new();
    let mut cfg = cfg_with(&env, &["*.log*"]);
    cfg.input().start_at = "end".into();
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    // Created after the first scan, so read from its start although start_at is end.
    wait_scans(&agent, 0, 1);
    let gz = env.log("old.log.gz");
    let g = lines("archived", 0..300);
    fs::write(&gz, gzip_bytes(env.root(), &joined(&g))).unwrap();
    wait_msgs(&agent, &mut out, &g);
    wait_archive_complete(&agent, &env, &gz, joined(&g).len() as u64);
    agent.term_ok();
    let old_key = inode(&gz);
    fs::remove_file(&gz).unwrap();
    let new = env.log("new.log");
    let n = lines("new-file", 0..100);
    write_lines(&new, &n);
    hand_inode_over(&env, old_key, inode(&new));
    let mut agent = env.spawn(&cfg);
    wait_msgs(&agent, &mut out, &n);
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &concat(&[&g, &n]));
}

/// A plain file with the common banner is read and deleted (not compressed); later an archive
/// of another generation with the same banner appears. The head matches the deleted file, the
/// bytes before its offset do not: the archive is not its compressed copy and is read whole.
#[test]
fn archive_whose_head_matches_a_deleted_file_but_not_its_content_is_read_fully() {
    let env = Env::new();
    let b = banner();
    let plain = env.log("app.log");
    let mut w = LogWriter::open(&plain, "deleted-gen");
    w.file.write_all(&joined(&b)).unwrap();
    w.write_n(100);
    let cfg = cfg_with(&env, &["*.log*"]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let first = concat(&[&b, &w.written]);
    wait_msgs(&agent, &mut out, &first);
    drop(w);
    fs::remove_file(&plain).unwrap();
    let plain_s = ps(&plain);
    wait(&agent, "the deleted file drained and closed", || {
        !fd_targets(agent.pid)
            .iter()
            .any(|t| t.starts_with(&plain_s))
    });
    let gz = env.log("other.log.1.gz");
    let other = concat(&[&b, &lines("other-gen", 0..300)]);
    fs::write(&gz, gzip_bytes(env.root(), &joined(&other))).unwrap();
    wait_msgs(&agent, &mut out, &other);
    wait_archive_complete(&agent, &env, &gz, joined(&other).len() as u64);
    agent.term_ok();
    out.refresh();
    // The banner lines appear twice: once from each file.
    assert_once(&agent, &out, &concat(&[&first, &other]));
}

/// logrotate `compress` without `delaycompress`: the application writes a few lines to
/// app.log.1 after gzip has read it and before gzip removes it. The archive is shorter than
/// what was read from the plain file; nothing is read twice, nothing lost.
#[test]
fn archive_shorter_than_its_plain_original_after_late_writes_is_not_read_again() {
    let env = Env::new();
    let path = env.log("app.log");
    let cfg = cfg_with(&env, &["app.log*"]);
    let a = lines("gen-a", 0..2000);
    write_lines(&path, &a);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &a);
    let rotated = env.log("app.log.1");
    fs::rename(&path, &rotated).unwrap();
    write_lines(&path, &[]);
    // gzip has read the file...
    let snapshot = gzip_bytes(env.root(), &fs::read(&rotated).unwrap());
    // ...the application writes before it reopens...
    let late = lines("late", 0..5);
    append_lines(&rotated, &late);
    let mut expected = concat(&[&a, &late]);
    wait_msgs(&agent, &mut out, &expected);
    // ...and gzip finishes: the archive appears, the plain file goes.
    let gz = env.log("app.log.1.gz");
    fs::write(&gz, &snapshot).unwrap();
    fs::remove_file(&rotated).unwrap();
    let b = lines("gen-b", 0..100);
    append_lines(&path, &b);
    expected.extend(b.iter().cloned());
    wait_msgs(&agent, &mut out, &expected);
    wait(&agent, "the archive recorded as read", || {
        archive_entry(&env, &gz).is_some_and(|e| e.raw["gzip_length"].as_u64().is_some())
    });
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &expected);
}

/// The agent is stopped; logrotate compresses the file it was reading, and the archive ends up
/// cut short (a crash before gzip's data reached the disk). On restart the damaged archive is
/// taken for the plain file it copies: what it still holds was read already, nothing twice.
#[test]
fn archive_cut_short_while_stopped_is_not_read_again_from_its_start() {
    let env = Env::new();
    let path = env.log("app.log");
    let cfg = cfg_with(&env, &["app.log*"]);
    let a = lines("gen-a", 0..4000);
    write_lines(&path, &a);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &a);
    agent.term_ok();
    let rotated = env.log("app.log.1");
    fs::rename(&path, &rotated).unwrap();
    write_lines(&path, &[]);
    gzip_in_place(&rotated);
    let gz = env.log("app.log.1.gz");
    let full = fs::read(&gz).unwrap();
    fs::write(&gz, &full[..full.len() * 6 / 10]).unwrap();
    let mut agent = env.spawn(&cfg);
    let b = lines("gen-b", 0..10);
    append_lines(&path, &b);
    let expected = concat(&[&a, &b]);
    wait_msgs(&agent, &mut out, &expected);
    // Damage is only concluded once the archive has kept its size for 3 scans and 5 s.
    wait(&agent, "the damaged archive given up on", || {
        archive_entry(&env, &gz).is_some_and(|e| e.raw["gzip_length"].as_u64().is_some())
    });
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &expected);
}

/// An archive written in gzip members (bgzip-like, or appended to): when it first appears it
/// holds less than was read from its plain original; the rest arrives as a second member.
/// Only the lines never read are delivered.
#[test]
fn archive_shorter_than_its_original_that_grows_by_a_member_delivers_only_the_rest() {
    let env = Env::new();
    let path = env.log("app.log");
    let cfg = cfg_with(&env, &["app.log*"]);
    let a = lines("gen-a", 0..2000);
    write_lines(&path, &a);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &a);
    let rotated = env.log("app.log.1");
    fs::rename(&path, &rotated).unwrap();
    write_lines(&path, &[]);
    let gz = env.log("app.log.1.gz");
    fs::write(&gz, gzip_bytes(env.root(), &joined(&a[..1000]))).unwrap();
    fs::remove_file(&rotated).unwrap();
    wait(&agent, "the short archive recorded as read", || {
        archive_entry(&env, &gz).is_some_and(|e| e.raw["gzip_length"].as_u64().is_some())
    });
    let late = lines("late", 0..5);
    let rest = concat(&[&a[1000..], &late]);
    let mut f = OpenOptions::new().append(true).open(&gz).unwrap();
    f.write_all(&gzip_bytes(env.root(), &joined(&rest)))
        .unwrap();
    drop(f);
    let expected = concat(&[&a, &late]);
    wait_msgs(&agent, &mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &expected);
}

/// Stopped: logrotate renames app.log, gzip compresses and deletes it, and only then does the
/// application (reopening on SIGHUP, late) create the new app.log, which gets the inode the
/// old one had. On restart the new app.log is new (read from 0) and the archive is the old
/// one's copy (nothing of it read again), although the old one's inode is "present".
#[test]
fn new_file_in_the_inode_of_a_compressed_original_does_not_hide_the_original_from_its_archive() {
    let env = Env::new();
    let path = env.log("app.log");
    // One glob: files are looked at in directory order (ext4 lists app.log.1.gz first here),
    // not sorted, so the archive is matched before the new app.log is.
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("app.log*")];
    let a = lines("gen-a", 0..2000);
    write_lines(&path, &a);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    wait_msgs(&agent, &mut out, &a);
    agent.term_ok();
    let old_key = inode(&path);
    fs::rename(&path, env.log("app.log.1")).unwrap();
    gzip_in_place(&env.log("app.log.1"));
    let b = lines("gen-b", 0..50);
    write_lines(&path, &b);
    hand_inode_over(&env, old_key, inode(&path));
    let mut agent = env.spawn(&cfg);
    let expected = concat(&[&a, &b]);
    wait_msgs(&agent, &mut out, &expected);
    let gz = env.log("app.log.1.gz");
    wait_archive_complete(&agent, &env, &gz, joined(&a).len() as u64);
    agent.term_ok();
    out.refresh();
    assert_once(&agent, &out, &expected);
}
