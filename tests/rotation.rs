//! Behaviours 3, 4, 5 and 11: rename rotation, copytruncate, in-place rewrites, symlinks,
//! and releasing deleted files.
mod common;

use common::*;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[test]
fn rename_rotation_drains_old_handle_and_reads_new_file_from_zero() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("app.log")];
    let mut old = LogWriter::open(&path, "gen0");
    old.write_n(100);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &old.written);

    fs::rename(&path, env.log("app.log.1")).unwrap();
    old.write_n(50); // through the old handle, after the rename
    let mut new = LogWriter::open(&path, "gen1");
    new.write_n(100);
    old.write_n(20); // old handle again, after the new file exists
    let expected: Vec<String> = old.written.iter().chain(&new.written).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);
    new.write_n(30);
    let expected: Vec<String> = old.written.iter().chain(&new.written).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);

    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &expected);
    // The new file was read from offset 0.
    let first_new = out
        .events
        .iter()
        .find(|e| e.message == new.written[0])
        .unwrap();
    assert_eq!(first_new.offset, 0);
}

/// A writer thread appends `total` lines while rotating every ~250 ms, writing a few lines
/// through the old handle after each rename (as an application does until it reopens).
fn rotation_under_load(glob_rotated_too: bool, logrotate_shift: bool) {
    let env = Env::new();
    let path = env.log("app.log");
    let mut cfg = env.config();
    let pattern = if glob_rotated_too {
        "app.log*"
    } else {
        "app.log"
    };
    cfg.input().paths = vec![env.glob(pattern)];
    cfg.input().rotate_wait = "1s".into();
    let mut w = LogWriter::open(&path, "load");
    w.write_n(100);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &w.written);

    let total = 20_000;
    let logs = env.logs();
    let writer = std::thread::spawn(move || {
        let mut rotations = 0;
        let mut last_rotation = Instant::now();
        while w.next < total {
            w.write_n(40);
            std::thread::sleep(Duration::from_millis(5));
            if last_rotation.elapsed() >= Duration::from_millis(250) {
                rotations += 1;
                if logrotate_shift {
                    // app.log.N -> app.log.N+1 ... app.log -> app.log.1
                    for k in (1..rotations).rev() {
                        fs::rename(
                            logs.join(format!("app.log.{k}")),
                            logs.join(format!("app.log.{}", k + 1)),
                        )
                        .unwrap();
                    }
                    fs::rename(&w.path, logs.join("app.log.1")).unwrap();
                } else {
                    fs::rename(&w.path, logs.join(format!("app.log.{rotations}"))).unwrap();
                }
                w.write_n(15); // old handle, already renamed
                w.reopen(); // creates the new app.log
                last_rotation = Instant::now();
            }
        }
        (w, rotations)
    });
    let (w, rotations) = writer.join().unwrap();
    assert!(rotations >= 5, "writer rotated only {rotations} times");
    agent.wait_for_messages_within(&mut out, &w.written, Duration::from_secs(30));
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &w.written);
}

#[test]
fn rename_rotation_under_load_loses_and_duplicates_nothing() {
    rotation_under_load(false, false);
}

#[test]
fn rename_rotation_under_load_with_glob_matching_rotated_names() {
    rotation_under_load(true, true);
}

#[test]
fn copytruncate_shrunk_file_is_read_again_from_zero() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut w = LogWriter::open(&path, "before-truncate");
    w.write_n(200);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &w.written);

    copytruncate(&path, &env.log("app.log.1")); // rotated copy is not matched by *.log
    w.prefix = "after-truncate".into();
    w.next = 0;
    w.write_n(20);
    agent.wait_for_messages(&mut out, &w.written);
    w.write_n(20);
    agent.wait_for_messages(&mut out, &w.written);
    // A second copytruncate cycle.
    copytruncate(&path, &env.log("app.log.2"));
    w.prefix = "after-second-truncate".into();
    w.next = 0;
    w.write_n(10);
    agent.wait_for_messages(&mut out, &w.written);

    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &w.written);
    let first = out
        .events
        .iter()
        .find(|e| e.message == line("after-truncate", 0))
        .unwrap();
    assert_eq!(first.offset, 0);
}

#[test]
fn copytruncate_with_non_append_writer_skips_nul_hole() {
    let env = Env::new();
    let path = env.log("app.log");
    // The application writes at its own offset (no O_APPEND): after the truncate its next
    // write leaves a hole of NUL bytes before it.
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let before = lines("pre-hole", 0..100);
    f.write_all(&joined(&before)).unwrap();
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &before);
    copytruncate(&path, &env.log("app.log.1"));
    let after = lines("post-hole", 0..10);
    f.write_all(&joined(&after)).unwrap();
    agent.wait_for_messages(&mut out, &after);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = before.iter().chain(&after).cloned().collect();
    assert_exactly_once(&out, &expected);
}

#[test]
fn file_rewritten_in_place_and_larger_while_stopped_is_read_from_zero() {
    let env = Env::new();
    let path = env.log("app.log");
    let old = lines("old-content", 0..50);
    write_lines(&path, &old);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &old);
    agent.term_ok();

    let id_before = inode(&path);
    // Same inode, new content, larger than the checkpointed offset.
    let new = lines("rewritten-content", 0..200);
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.write_all(&joined(&new)).unwrap();
    drop(f);
    assert_eq!(inode(&path), id_before, "test precondition: same inode");
    assert!(file_size(&path) > joined(&old).len() as u64);

    let mut agent = env.spawn(&env.config());
    agent.wait_for_messages(&mut out, &new);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = old.iter().chain(&new).cloned().collect();
    assert_exactly_once(&out, &expected);
}

#[test]
fn file_rewritten_in_place_and_larger_while_running_is_read_from_zero() {
    let env = Env::new();
    let path = env.log("app.log");
    let old = lines("old-content", 0..50);
    write_lines(&path, &old);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &old);

    let id_before = inode(&path);
    let new = lines("rewritten-content", 0..500);
    // Truncate and refill in one write call.
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.write_all(&joined(&new)).unwrap();
    drop(f);
    assert_eq!(inode(&path), id_before, "test precondition: same inode");
    agent.wait_for_messages(&mut out, &new);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = old.iter().chain(&new).cloned().collect();
    assert_exactly_once(&out, &expected);
}

fn repoint_symlink(target: &Path, link: &Path) {
    let tmp = link.with_extension("tmp-link");
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    fs::rename(&tmp, link).unwrap();
}

#[test]
fn symlink_is_followed_and_repointed_target_is_read() {
    let env = Env::new();
    let targets = env.path("targets");
    fs::create_dir_all(&targets).unwrap();
    let link = env.log("current.log");
    let mut t1 = LogWriter::open(&targets.join("real-1.log"), "target-1");
    t1.write_n(50);
    std::os::unix::fs::symlink(targets.join("real-1.log"), &link).unwrap();
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &t1.written);
    t1.write_n(10);
    agent.wait_for_messages(&mut out, &t1.written);

    let mut t2 = LogWriter::open(&targets.join("real-2.log"), "target-2");
    t2.write_n(30);
    repoint_symlink(&targets.join("real-2.log"), &link);
    t1.write_n(20); // the old target is drained
    t2.write_n(30);
    let expected: Vec<String> = t1.written.iter().chain(&t2.written).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);

    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &expected);
    let link_s = link.to_str().unwrap();
    for e in &out.events {
        assert_eq!(
            e.path, link_s,
            "event path should be the matched path: {e:?}"
        );
    }
}

#[test]
fn symlink_and_its_target_both_matched_are_read_once() {
    let env = Env::new();
    let real = env.log("real.log");
    let ls = lines("linked", 0..100);
    write_lines(&real, &ls);
    std::os::unix::fs::symlink(&real, env.log("alias.log")).unwrap();
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ls);
    let more = lines("linked", 100..150);
    append_lines(&real, &more);
    let expected: Vec<String> = ls.iter().chain(&more).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);
    // Another file's lines written after it have arrived: any duplicate would be there too.
    let marker = lines("marker", 0..5);
    write_lines(&env.log("marker.log"), &marker);
    agent.wait_for_messages(&mut out, &marker);
    agent.term_ok();
    out.refresh();
    let all: Vec<String> = expected.iter().chain(&marker).cloned().collect();
    assert_exactly_once(&out, &all);
}

#[test]
fn partial_last_line_of_rotated_file_is_delivered_after_rotate_wait() {
    let env = Env::new();
    let path = env.log("app.log");
    append_bytes(&path, b"complete line 000000\ndangling partial at rotation");
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("app.log")];
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &["complete line 000000".to_string()]);
    rotate_rename(&path, &env.log("app.log.1"));
    let new = lines("after-rotation", 0..10);
    append_lines(&path, &new);
    let mut expected = new.clone();
    expected.push("complete line 000000".into());
    expected.push("dangling partial at rotation".into());
    agent.wait_for_messages(&mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &expected);
}

#[test]
fn deleted_file_is_drained_and_its_descriptor_closed() {
    let env = Env::new();
    let path = env.log("app.log");
    let path_s = path.to_str().unwrap().to_string();
    let mut w = LogWriter::open(&path, "doomed");
    w.write_n(50);
    let keep = lines("survivor", 0..10);
    write_lines(&env.log("keep.log"), &keep);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &w.written);
    agent.wait_for_messages(&mut out, &keep);
    agent.wait("agent holds app.log open (test precondition)", || {
        agent.fd_targets().contains(&path_s)
    });

    // Lines written just before the delete, and a final partial line, are still delivered.
    w.write_n(20);
    w.file.write_all(b"doomed partial tail").unwrap();
    fs::remove_file(&path).unwrap();
    let mut expected = w.written.clone();
    expected.push("doomed partial tail".into());
    agent.wait_for_messages(&mut out, &expected);
    drop(w); // our own handle is closed; only the agent could still hold the file

    let deleted = format!("{path_s} (deleted)");
    agent.wait("agent closes the deleted file's descriptor", || {
        !agent
            .fd_targets()
            .iter()
            .any(|t| *t == deleted || *t == path_s)
    });
    agent.assert_running();
    // Still tailing the other file.
    let keep2 = lines("survivor", 10..20);
    append_lines(&env.log("keep.log"), &keep2);
    agent.wait_for_messages(&mut out, &keep2);
    agent.term_ok();
    out.refresh();
    expected.extend(keep.into_iter().chain(keep2));
    assert_exactly_once(&out, &expected);
}

#[test]
fn rotation_keeps_other_files_flowing() {
    // Rotations of one file while another is written continuously: both complete.
    let env = Env::new();
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("*.log")];
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let stop = Arc::new(AtomicBool::new(false));
    let other_path = env.log("steady.log");
    let s2 = stop.clone();
    let steady = std::thread::spawn(move || {
        let mut w = LogWriter::open(&other_path, "steady");
        while !s2.load(Ordering::SeqCst) {
            w.write_n(5);
            std::thread::sleep(Duration::from_millis(10));
        }
        w.written
    });
    let path = env.log("rot.log");
    let mut w = LogWriter::open(&path, "rotating");
    for k in 0..5 {
        w.write_n(200);
        agent.wait_for_messages(&mut out, &w.written);
        // Rotated names end in .N and are not matched by *.log.
        fs::rename(&path, env.log(&format!("rot.log.{k}"))).unwrap();
        w.write_n(10);
        w.reopen();
    }
    w.write_n(10);
    stop.store(true, Ordering::SeqCst);
    let steady_lines = steady.join().unwrap();
    let expected: Vec<String> = w.written.iter().chain(&steady_lines).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &expected);
}

/// Freezes the agent (SIGSTOP) while `f` changes files, so the agent cannot look in between,
/// then lets it go on (SIGCONT).
fn while_frozen(agent: &Agent, f: impl FnOnce()) {
    agent.signal(libc::SIGSTOP);
    // The stop is asynchronous: wait until /proc says the process is stopped.
    agent.wait("agent to be stopped by SIGSTOP", || {
        fs::read_to_string(format!("/proc/{}/stat", agent.pid))
            .map(|s| {
                let after = &s[s.rfind(')').unwrap() + 2..];
                after.starts_with('T')
            })
            .unwrap_or(false)
    });
    f();
    agent.signal(libc::SIGCONT);
}

#[test]
fn file_rewritten_in_place_and_larger_while_agent_is_frozen_is_read_from_zero() {
    let env = Env::new();
    let path = env.log("app.log");
    let old = lines("old-content", 0..50);
    write_lines(&path, &old);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &old);
    let id_before = inode(&path);
    let new = lines("rewritten-while-frozen", 0..200);
    while_frozen(&agent, || {
        let mut f = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.write_all(&joined(&new)).unwrap();
    });
    assert_eq!(inode(&path), id_before, "test precondition: same inode");
    agent.wait_for_messages(&mut out, &new);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = old.iter().chain(&new).cloned().collect();
    assert_exactly_once(&out, &expected);
}

#[test]
fn file_deleted_and_recreated_larger_while_agent_is_frozen_is_read_from_zero() {
    let env = Env::new();
    let path = env.log("app.log");
    let old = lines("first-incarnation", 0..50);
    write_lines(&path, &old);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &old);
    let old_id = inode(&path);
    let new = lines("second-incarnation", 0..200);
    while_frozen(&agent, || {
        fs::remove_file(&path).unwrap();
        write_lines(&path, &new);
    });
    eprintln!(
        "note: inode {}reused",
        if inode(&path) == old_id { "" } else { "not " }
    );
    agent.wait_for_messages(&mut out, &new);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = old.iter().chain(&new).cloned().collect();
    assert_exactly_once(&out, &expected);
}

#[test]
fn rename_rotation_while_agent_is_frozen_drains_old_and_reads_new() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("app.log")];
    let mut w = LogWriter::open(&path, "gen0");
    w.write_n(50);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &w.written);
    let mut new = LogWriter::open(&env.path("placeholder"), "gen1");
    while_frozen(&agent, || {
        w.write_n(30); // not yet seen
        fs::rename(&path, env.log("app.log.1")).unwrap();
        w.write_n(30); // after the rename, old handle
        new = LogWriter::open(&path, "gen1");
        new.write_n(300); // bigger than the old file
    });
    w.write_n(10);
    let expected: Vec<String> = w.written.iter().chain(&new.written).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &expected);
}

#[test]
fn inode_reused_while_file_is_closed_inactive_is_read_from_zero() {
    let env = Env::new();
    let path = env.log("app.log");
    let path_s = path.to_str().unwrap().to_string();
    let old = lines("first-incarnation", 0..50);
    write_lines(&path, &old);
    let mut cfg = env.config();
    cfg.input().extra.push("close_inactive: 300ms".into());
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &old);
    agent.wait("the quiet file to be closed (close_inactive 300ms)", || {
        !agent.fd_targets().contains(&path_s)
    });
    let old_id = inode(&path);
    let new = lines("second-incarnation", 0..200);
    while_frozen(&agent, || {
        fs::remove_file(&path).unwrap();
        write_lines(&path, &new);
    });
    eprintln!(
        "note: inode {}reused",
        if inode(&path) == old_id { "" } else { "not " }
    );
    agent.wait_for_messages(&mut out, &new);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = old.iter().chain(&new).cloned().collect();
    assert_exactly_once(&out, &expected);
}

fn long_line(prefix: &str, i: usize) -> String {
    let mut s = format!("{prefix} line {i:06} ");
    while s.len() < 199 {
        s.push('-');
    }
    s
}

#[test]
fn file_rewritten_in_place_while_agent_is_busy_reading_it_is_read_from_zero() {
    // The agent is catching up on a big file when the file is truncated and rewritten larger
    // (same inode). It must notice by fingerprint, not go on at its old offset in new content.
    let env = Env::new();
    let path = env.log("busy.log");
    let old: Vec<String> = (0..150_000).map(|i| long_line("old-busy", i)).collect(); // 30 MB
    write_lines(&path, &old);
    let new: Vec<String> = (0..160_000).map(|i| long_line("new-busy", i)).collect(); // 32 MB
    let new_bytes = joined(&new);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    // Cheap condition (no parsing), so the freeze comes right after the first output.
    agent.wait("first output", || file_size(&env.out()) > 0);
    let id = inode(&path);
    let mut old_seen_when_frozen = 0;
    while_frozen(&agent, || {
        let mut f = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.write_all(&new_bytes).unwrap();
        out.refresh();
        old_seen_when_frozen = out.events.len();
    });
    assert_eq!(inode(&path), id);
    eprintln!(
        "frozen after {old_seen_when_frozen} of {} old lines",
        old.len()
    );
    assert!(
        old_seen_when_frozen < old.len() / 2,
        "test precondition: the agent was still reading the old content"
    );
    agent.wait_for_messages(&mut out, &new);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    // Old lines not read before the rewrite are gone (overwritten): each old line at most
    // once, each new line exactly once, no fragments.
    let delivered_old: Vec<String> = old.iter().filter(|l| out.count(l) > 0).cloned().collect();
    let expected: Vec<String> = delivered_old.iter().chain(&new).cloned().collect();
    assert_exactly_once(&out, &expected);
}
