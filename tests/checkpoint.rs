//! Behaviours 6 and 9: checkpoint file contents, resuming across restarts by file identity,
//! corrupt checkpoint files; invariant 1 (a checkpoint never runs ahead of delivery).
mod common;

use common::*;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[test]
fn sigterm_writes_checkpoint_with_version_and_offsets_at_delivered_end() {
    let env = Env::new();
    let a = env.log("a.log");
    let b = env.log("b.log");
    let la = lines("ckpt-a", 0..100);
    let lb = lines("ckpt-b", 0..40);
    write_lines(&a, &la);
    write_lines(&b, &lb);
    append_bytes(&b, b"partial without newline");
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    let expected: Vec<String> = la.iter().chain(&lb).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);
    agent.term_ok();

    let v = read_checkpoint(&env.ckpt()).expect("checkpoints.json after SIGTERM");
    assert_eq!(v["version"], serde_json::json!(1), "checkpoint: {v}");
    let ea = checkpoint_for(&env.ckpt(), &a).unwrap_or_else(|| panic!("no entry for a.log: {v}"));
    let eb = checkpoint_for(&env.ckpt(), &b).unwrap_or_else(|| panic!("no entry for b.log: {v}"));
    assert_eq!(
        ea.offset,
        file_size(&a),
        "a.log offset should be its size: {v}"
    );
    assert_eq!(
        eb.offset,
        joined(&lb).len() as u64,
        "b.log offset should stop before the undelivered partial line: {v}"
    );
    assert_eq!(ea.path, a.to_str().unwrap());
    for e in [&ea, &eb] {
        for key in ["fingerprint_len", "fingerprint", "marker", "last_seen"] {
            assert!(
                !e.raw[key].is_null(),
                "checkpoint entry lacks {key}: {}",
                e.raw
            );
        }
        let fp = e.raw["fingerprint"].as_str().unwrap();
        assert!(
            fp.chars().all(|c| c.is_ascii_hexdigit()),
            "fingerprint is not hex: {fp}"
        );
    }
    let leftovers = files_with_prefix(&env.ckpt(), ".tmp");
    assert!(
        leftovers.is_empty(),
        "temp files left behind: {leftovers:?}"
    );
    out.refresh();
    assert_exactly_once(&out, &expected);
}

#[test]
fn checkpoint_is_written_periodically_and_never_runs_ahead_of_output() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let p2 = path.clone();
    let writer = std::thread::spawn(move || {
        let mut w = LogWriter::open(&p2, "ahead");
        while !s2.load(Ordering::SeqCst) {
            w.write_n(20);
            std::thread::sleep(Duration::from_millis(5));
        }
        w.written
    });
    // All lines have the same length, so offsets map to line counts.
    let line_len = line("ahead", 0).len() as u64 + 1;
    let mut seen_offsets = std::collections::BTreeSet::new();
    let mut delivered = 0usize; // lines 0..delivered are known to be in the output
    let t0 = std::time::Instant::now();
    // At least 4 s of checks, longer (bounded) on a loaded machine until 3 checkpoints are seen.
    while t0.elapsed() < Duration::from_secs(4)
        || (seen_offsets.len() < 3 && t0.elapsed() < Duration::from_secs(20))
    {
        // Checkpoint first, output second: the output only grows meanwhile.
        let entry = if path.exists() {
            checkpoint_for(&env.ckpt(), &path)
        } else {
            None
        };
        out.refresh();
        if let Some(e) = entry {
            assert_eq!(
                e.offset % line_len,
                0,
                "checkpoint offset {} is not at a line boundary",
                e.offset
            );
            let n = (e.offset / line_len) as usize;
            while delivered < n {
                assert!(
                    out.count(&line("ahead", delivered)) > 0,
                    "checkpoint offset {} covers line {} which is not in the output\n{}",
                    e.offset,
                    delivered,
                    agent.context()
                );
                delivered += 1;
            }
            seen_offsets.insert(e.offset);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(
        seen_offsets.len() >= 3,
        "expected periodic checkpoints while running (checkpoint_interval 200ms), saw offsets {seen_offsets:?}\n{}",
        agent.context()
    );
    agent.wait_for_messages(&mut out, &written);
    // Once delivered and quiet, the periodic checkpoint catches up with the file size.
    let size = file_size(&path);
    agent.wait("periodic checkpoint reaches the file size", || {
        checkpoint_for(&env.ckpt(), &path).map(|e| e.offset) == Some(size)
    });
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &written);
}

#[test]
fn file_renamed_while_stopped_resumes_where_it_left_off() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("app.log*")];
    let first = lines("first-run", 0..100);
    write_lines(&path, &first);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &first);
    agent.term_ok();

    let rotated = env.log("app.log.1");
    fs::rename(&path, &rotated).unwrap();
    let appended = lines("appended-to-renamed", 0..20);
    append_lines(&rotated, &appended);
    let fresh = lines("fresh-file", 0..30);
    write_lines(&path, &fresh);

    let mut agent = env.spawn(&cfg);
    agent.wait_for_messages(&mut out, &appended);
    agent.wait_for_messages(&mut out, &fresh);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = first
        .iter()
        .chain(&appended)
        .chain(&fresh)
        .cloned()
        .collect();
    assert_exactly_once(&out, &expected);
}

#[test]
fn file_deleted_and_recreated_while_stopped_is_read_from_zero() {
    let env = Env::new();
    let path = env.log("app.log");
    let first = lines("first-incarnation", 0..100);
    write_lines(&path, &first);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &first);
    agent.term_ok();

    let old_id = inode(&path);
    fs::remove_file(&path).unwrap();
    // Larger than the old file, so an offset inherited by mistake would skip lines.
    let second = lines("second-incarnation", 0..300);
    write_lines(&path, &second);
    if inode(&path) == old_id {
        eprintln!("note: the new file reused the old inode (the hard case)");
    } else {
        eprintln!("note: the new file got a new inode");
    }
    let mut agent = env.spawn(&env.config());
    agent.wait_for_messages(&mut out, &second);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_exactly_once(&out, &expected);
}

#[test]
fn file_truncated_and_refilled_smaller_while_stopped_is_read_from_zero() {
    let env = Env::new();
    let path = env.log("app.log");
    let first = lines("long-before", 0..200);
    write_lines(&path, &first);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &first);
    agent.term_ok();
    let second = lines("short-after", 0..10);
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.write_all(&joined(&second)).unwrap();
    drop(f);
    let mut agent = env.spawn(&env.config());
    agent.wait_for_messages(&mut out, &second);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_exactly_once(&out, &expected);
}

fn corrupt_checkpoint_case(content: &[u8]) {
    let env = Env::new();
    fs::create_dir_all(env.ckpt()).unwrap();
    let ckpt_file = checkpoint_file(&env.ckpt());
    fs::write(&ckpt_file, content).unwrap();
    let ls = lines("after-corruption", 0..100);
    write_lines(&env.log("app.log"), &ls);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ls);
    agent.wait_for_stderr(ckpt_file.to_str().unwrap());
    let err = agent.stderr();
    assert!(
        err.to_lowercase().contains("checkpoint"),
        "warning should mention the checkpoint\n{err}"
    );
    let corrupt = files_with_prefix(&env.ckpt(), "checkpoints.json.corrupt-");
    assert_eq!(
        corrupt.len(),
        1,
        "corrupt checkpoint should be set aside as checkpoints.json.corrupt-<secs>: {:?}\n{}",
        files_with_prefix(&env.ckpt(), ""),
        agent.context()
    );
    assert_eq!(fs::read(env.ckpt().join(&corrupt[0])).unwrap(), content);
    agent.assert_running();
    agent.term_ok();
    let v = read_checkpoint(&env.ckpt()).expect("a fresh checkpoint after the corrupt one");
    assert_eq!(v["version"], serde_json::json!(1));
    out.refresh();
    assert_exactly_once(&out, &ls);
}

#[test]
fn garbage_checkpoint_is_reported_set_aside_and_ignored() {
    corrupt_checkpoint_case(b"\x00\xff\xfegarbage{{{ not json \x01\x02");
}

#[test]
fn empty_checkpoint_is_reported_set_aside_and_ignored() {
    corrupt_checkpoint_case(b"");
}

#[test]
fn half_written_checkpoint_from_a_real_run_starts_as_if_none() {
    let env = Env::new();
    let ls = lines("reread", 0..100);
    write_lines(&env.log("app.log"), &ls);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ls);
    agent.term_ok();
    let ckpt_file = checkpoint_file(&env.ckpt());
    let full = fs::read(&ckpt_file).unwrap();
    fs::write(&ckpt_file, &full[..full.len() / 2]).unwrap();

    let mut agent = env.spawn(&env.config());
    agent.wait(
        "every line delivered a second time (checkpoint ignored)",
        || {
            out.refresh();
            ls.iter().all(|l| out.count(l) >= 2)
        },
    );
    agent.wait_for_stderr(ckpt_file.to_str().unwrap());
    assert_eq!(
        files_with_prefix(&env.ckpt(), "checkpoints.json.corrupt-").len(),
        1
    );
    agent.term_ok();
    out.refresh();
    for l in &ls {
        assert_eq!(out.count(l), 2, "{l}");
    }
}

#[test]
fn checkpoint_wins_over_start_at_end() {
    let env = Env::new();
    let path = env.log("app.log");
    let first = lines("first-run", 0..20);
    write_lines(&path, &first);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &first);
    agent.term_ok();
    // Written while stopped: a checkpointed file resumes at its offset, not at its end.
    let while_stopped = lines("while-stopped", 0..20);
    append_lines(&path, &while_stopped);
    let mut cfg = env.config();
    cfg.input().start_at = "end".into();
    let mut agent = env.spawn(&cfg);
    agent.wait_for_messages(&mut out, &while_stopped);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = first.iter().chain(&while_stopped).cloned().collect();
    assert_exactly_once(&out, &expected);
}

#[test]
fn empty_file_checkpointed_then_filled_while_stopped_is_read_once() {
    let env = Env::new();
    let path = env.log("app.log");
    let path_s = path.to_str().unwrap().to_string();
    fs::write(&path, b"").unwrap();
    let marker = lines("other-file", 0..5);
    write_lines(&env.log("other.log"), &marker);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &marker);
    agent.wait("agent holds the empty file open", || {
        agent.fd_targets().contains(&path_s)
    });
    agent.term_ok();
    let ls = lines("filled-while-stopped", 0..50);
    append_lines(&path, &ls);
    let mut agent = env.spawn(&env.config());
    agent.wait_for_messages(&mut out, &ls);
    let more = lines("filled-while-stopped", 50..60);
    append_lines(&path, &more);
    agent.wait_for_messages(&mut out, &more);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = marker.iter().chain(&ls).chain(&more).cloned().collect();
    assert_exactly_once(&out, &expected);
}

/// Entries of files not seen for more than a day are dropped from the checkpoint; a file gone
/// for an hour keeps its entry (it may be found again, renamed), and so does a live file.
#[test]
fn entries_of_files_gone_for_over_a_day_are_pruned_recent_ones_kept() {
    let env = Env::new();
    let app = env.log("app.log");
    let first = lines("prune", 0..10);
    write_lines(&app, &first);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &first);
    agent.term_ok();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut ckpt = read_checkpoint(&env.ckpt()).unwrap();
    let files = ckpt["files"].as_array_mut().unwrap();
    let live = files[0].clone();
    for (name, age, ino_shift) in [
        ("gone-two-days.log", 2 * 86_400, 1_000_000),
        ("gone-an-hour.log", 3_600, 2_000_000),
    ] {
        let mut e = live.clone();
        e["ino"] = (live["ino"].as_u64().unwrap() + ino_shift).into();
        e["path"] = env.log(name).to_str().unwrap().into();
        e["last_seen"] = (now - age).into();
        files.push(e);
    }
    fs::write(
        checkpoint_file(&env.ckpt()),
        serde_json::to_vec(&ckpt).unwrap(),
    )
    .unwrap();

    let paths = || -> Vec<String> {
        checkpoint_entries(&env.ckpt())
            .into_iter()
            .map(|e| e.path)
            .collect()
    };
    let mut agent = env.spawn(&env.config());
    agent.wait(
        "the entry of the file gone for two days to be pruned",
        || !paths().iter().any(|p| p.ends_with("gone-two-days.log")),
    );
    let kept = paths();
    assert!(
        kept.iter().any(|p| p.ends_with("gone-an-hour.log"))
            && kept.iter().any(|p| p.ends_with("app.log")),
        "entries kept: {kept:?}"
    );
    let more = lines("prune", 10..20);
    append_lines(&app, &more);
    agent.wait_for_messages(&mut out, &more);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = first.iter().chain(&more).cloned().collect();
    assert_exactly_once(&out, &expected);
    let kept = paths();
    assert!(
        !kept.iter().any(|p| p.ends_with("gone-two-days.log"))
            && kept.iter().any(|p| p.ends_with("gone-an-hour.log")),
        "entries after the final checkpoint: {kept:?}"
    );
}
