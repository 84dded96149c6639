//! A glob that matches only the live file, and rotation while the agent is stopped: the
//! checkpointed file is found among its directory's files (renamed, copied, compressed) and
//! drained from its offset; when nothing holds it, a warning names it. Loss is never silent.
mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The agent's JSON log records at WARN that mention `needle`.
fn warnings_naming(agent: &Agent, needle: &str) -> Vec<serde_json::Value> {
    agent
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["level"] == "WARN" && r.to_string().contains(needle))
        .collect()
}

const LOST: &str = "no file in its directory holds it";

/// Fails unless the agent logged no warning about a file rotated while it was stopped.
fn assert_no_rotation_warning(agent: &Agent) {
    assert!(
        warnings_naming(agent, "rotated").is_empty(),
        "warned about a file rotated while stopped:\n{}",
        agent.stderr()
    );
}

/// The paths of the events whose message is `line`.
fn paths_of<'a>(out: &'a Output, line: &str) -> Vec<&'a str> {
    out.events
        .iter()
        .filter(|e| e.message == line)
        .map(|e| e.path.as_str())
        .collect()
}

/// A live-file glob: the first run reads gen0 and stops cleanly.
struct Stopped {
    env: Env,
    cfg: Config,
    out: Output,
    app: LogWriter,
}

fn first_run() -> Stopped {
    let env = Env::new();
    let path = env.log("app.log");
    let mut cfg = env.config();
    cfg.input().paths = vec![ps(&path)];
    let mut app = LogWriter::open(&path, "gen0");
    app.write_n(200);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &app.written);
    agent.term_ok();
    Stopped { env, cfg, out, app }
}

fn ps(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Starts the agent again, waits for `expected`, stops it, then proves that a third run
/// reads nothing twice, and that nothing was warned about as lost.
fn resume_and_check(mut s: Stopped, expected: Vec<String>) {
    let mut agent = s.env.spawn(&s.cfg);
    agent.wait_for_messages(&mut s.out, &expected);
    agent.term_ok();
    assert!(
        warnings_naming(&agent, LOST).is_empty(),
        "warned about a loss although every line was found:\n{}",
        agent.stderr()
    );
    let marker = lines("third-run", 0..5);
    append_lines(&s.env.log("app.log"), &marker);
    let mut agent = s.env.spawn(&s.cfg);
    agent.wait_for_messages(&mut s.out, &marker);
    agent.term_ok();
    s.out.refresh();
    s.out.assert_all_parsed();
    let all: Vec<String> = expected.iter().chain(&marker).cloned().collect();
    assert_exactly_once(&s.out, &all);
    // Events keep the path the glob matched.
    let app = ps(&s.env.log("app.log"));
    assert!(
        s.out.events.iter().all(|e| e.path == app),
        "an event carries another path than {app}"
    );
}

/// logrotate `compress` without `delaycompress` while stopped: the app writes on through its
/// handle, app.log is renamed, compressed (gzip deletes app.log.1) and created anew.
fn compress_while_stopped(inode_reused: bool) {
    let mut s = first_run();
    let path = s.env.log("app.log");
    let k0 = inode(&path);
    s.app.write_n(150);
    let rotated = s.env.log("app.log.1");
    fs::rename(&path, &rotated).unwrap();
    s.app.write_n(20); // through the old handle, before the app reopens
    gzip_in_place(&rotated);
    let mut gen1 = LogWriter::open(&path, "gen1");
    gen1.write_n(40);
    if inode_reused {
        // As ext4 often does: the new app.log got the inode gzip freed (made certain by
        // giving the checkpoint entry the new file's inode).
        let new_key = inode(&path);
        let mut ck = read_checkpoint(&s.env.ckpt()).expect("checkpoint");
        for f in ck["files"].as_array_mut().unwrap() {
            if (f["dev"].as_u64(), f["ino"].as_u64()) == (Some(k0.0), Some(k0.1)) {
                f["ino"] = new_key.1.into();
            }
        }
        fs::write(
            checkpoint_file(&s.env.ckpt()),
            serde_json::to_vec(&ck).unwrap(),
        )
        .unwrap();
    }
    let expected: Vec<String> = s.app.written.iter().chain(&gen1.written).cloned().collect();
    resume_and_check(s, expected);
}

#[test]
fn compressed_while_stopped_with_a_live_file_glob_is_drained_from_its_offset() {
    compress_while_stopped(false);
}

#[test]
fn compressed_while_stopped_and_inode_reused_by_the_new_live_file_is_drained() {
    compress_while_stopped(true);
}

/// logrotate `copytruncate` (optionally with `compress`) while stopped: the copy outside the
/// glob holds what was written after the checkpoint; app.log, truncated, gets new lines.
fn copytruncate_while_stopped(compress: bool) {
    let mut s = first_run();
    let path = s.env.log("app.log");
    s.app.write_n(120);
    let copy = s.env.log("app.log.1");
    copytruncate(&path, &copy);
    if compress {
        gzip_in_place(&copy);
    }
    s.app.write_n(30); // O_APPEND: after the truncation, at the new start
    let expected = s.app.written.clone();
    resume_and_check(s, expected);
}

#[test]
fn copytruncate_while_stopped_with_a_live_file_glob_drains_the_copy() {
    copytruncate_while_stopped(false);
}

#[test]
fn copytruncate_and_compress_while_stopped_with_a_live_file_glob_drains_the_archive() {
    copytruncate_while_stopped(true);
}

/// Two rotations with `delaycompress` while stopped: the checkpointed generation is now
/// app.log.2.gz and is drained from its offset; the generation created and rotated entirely
/// while stopped (app.log.1) cannot be known from a live-file glob.
#[test]
fn rotated_twice_with_delaycompress_while_stopped_drains_the_checkpointed_generation() {
    let mut s = first_run();
    let path = s.env.log("app.log");
    s.app.write_n(100);
    fs::rename(&path, s.env.log("app.log.1")).unwrap();
    let mut gen1 = LogWriter::open(&path, "gen1-unknowable");
    gen1.write_n(30);
    fs::rename(s.env.log("app.log.1"), s.env.log("app.log.2")).unwrap();
    gzip_in_place(&s.env.log("app.log.2"));
    fs::rename(&path, s.env.log("app.log.1")).unwrap();
    let mut gen2 = LogWriter::open(&path, "gen2");
    gen2.write_n(25);
    let expected: Vec<String> = s.app.written.iter().chain(&gen2.written).cloned().collect();
    resume_and_check(s, expected);
}

/// The live file rotated and deleted while stopped: nothing holds it, and a warning names it,
/// its inode and offset, once (the next start does not warn again).
#[test]
fn file_rotated_and_deleted_while_stopped_is_warned_about_once() {
    let mut s = first_run();
    let path = s.env.log("app.log");
    let (_, ino) = inode(&path);
    let offset = file_size(&path);
    s.app.write_n(40); // never to be read: deleted below
    fs::rename(&path, s.env.log("app.log.1")).unwrap();
    fs::remove_file(s.env.log("app.log.1")).unwrap();
    let mut gen1 = LogWriter::open(&path, "gen1");
    gen1.write_n(10);

    let mut agent = s.env.spawn(&s.cfg);
    agent.wait_for_messages(&mut s.out, &gen1.written);
    agent.wait("a warning naming the lost file", || {
        !warnings_naming(&agent, LOST).is_empty()
    });
    let w = warnings_naming(&agent, LOST);
    assert_eq!(w.len(), 1, "{w:?}");
    let f = &w[0]["fields"];
    assert_eq!(f["path"].as_str(), Some(ps(&path).as_str()), "{f}");
    assert_eq!(f["inode"].as_u64(), Some(ino), "{f}");
    assert_eq!(f["offset"].as_u64(), Some(offset), "{f}");
    agent.term_ok();

    let mut agent = s.env.spawn(&s.cfg);
    gen1.write_n(5);
    agent.wait_for_messages(&mut s.out, &gen1.written);
    agent.term_ok();
    assert!(
        warnings_naming(&agent, LOST).is_empty(),
        "warned again:\n{}",
        agent.stderr()
    );
    s.out.refresh();
    let all: Vec<String> = s.app.written[..200]
        .iter()
        .chain(&gen1.written)
        .cloned()
        .collect();
    assert_exactly_once(&s.out, &all);
}

/// A generation rotated and drained while the agent ran, deleted while it was stopped, held
/// nothing unread: no warning.
#[test]
fn drained_generation_deleted_while_stopped_is_not_warned_about() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut cfg = env.config();
    cfg.input().paths = vec![ps(&path)];
    let mut app = LogWriter::open(&path, "gen0");
    app.write_n(50);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &app.written);
    let rotated = env.log("app.log.1");
    fs::rename(&path, &rotated).unwrap();
    let mut gen1 = LogWriter::open(&path, "gen1");
    gen1.write_n(20);
    let all: Vec<String> = app.written.iter().chain(&gen1.written).cloned().collect();
    agent.wait_for_messages(&mut out, &all);
    let rotated_s = ps(&rotated);
    agent.wait("the drained app.log.1 to be closed", || {
        !agent.fd_targets().contains(&rotated_s)
    });
    agent.term_ok();
    fs::remove_file(&rotated).unwrap();

    let mut agent = env.spawn(&cfg);
    gen1.write_n(5);
    let all: Vec<String> = app.written.iter().chain(&gen1.written).cloned().collect();
    agent.wait_for_messages(&mut out, &all);
    agent.term_ok();
    assert!(
        warnings_naming(&agent, LOST).is_empty(),
        "warned about a generation that was fully read:\n{}",
        agent.stderr()
    );
    out.refresh();
    assert_exactly_once(&out, &all);
}

/// `kill -9` while lines flow, then rotation and compression while the agent is down: the
/// archive is found by the checkpointed offset (behind what was delivered) and nothing is
/// lost; only what came after the last checkpoint may come twice.
#[test]
fn kill9_then_compressed_while_down_loses_nothing() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut cfg = env.config();
    cfg.input().paths = vec![ps(&path)];
    let mut app = LogWriter::open(&path, "gen0");
    app.write_n(100);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &app.written);
    agent.wait("a checkpoint covering the first lines", || {
        checkpoint_for(&env.ckpt(), &path).is_some_and(|c| c.offset > 0)
    });
    for _ in 0..20 {
        app.write_n(50);
    }
    agent.kill9();
    app.write_n(100);
    let rotated = env.log("app.log.1");
    fs::rename(&path, &rotated).unwrap();
    gzip_in_place(&rotated);
    let mut gen1 = LogWriter::open(&path, "gen1");
    gen1.write_n(30);

    let mut agent = env.spawn(&cfg);
    let expected: Vec<String> = app.written.iter().chain(&gen1.written).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_none_lost(&out, &expected);
    assert!(
        warnings_naming(&agent, LOST).is_empty(),
        "warned about a loss although every line was found:\n{}",
        agent.stderr()
    );
}

/// Sets `path`'s modification time `ago` (as `touch -d` reads it): an archive keeps the time
/// of its file's last write, which for an idle file is long before the rotation.
fn touch_back(path: &Path, ago: &str) {
    let st = Command::new("touch")
        .arg("-d")
        .arg(ago)
        .arg(path)
        .status()
        .expect("run touch");
    assert!(st.success());
}

/// logrotate `create` + `compress` (no `delaycompress`) while stopped: older archives shift
/// up, `dir/name` is renamed to `name.1`, an empty `name` is created, then `name.1` is
/// compressed (in that order, as logrotate does: the new file cannot take the freed inode).
fn rotate_compress(dir: &Path, name: &str) {
    let n = |i: usize| dir.join(format!("{name}.{i}.gz"));
    for i in (1..10).rev() {
        if n(i).exists() {
            fs::rename(n(i), n(i + 1)).unwrap();
        }
    }
    let plain = dir.join(format!("{name}.1"));
    fs::rename(dir.join(name), &plain).unwrap();
    fs::File::create(dir.join(name)).unwrap();
    gzip_in_place(&plain);
}

/// An empty live file rotated while stopped: its (empty) archive holds all of it; another
/// file of the directory whose head is trivially "the same" (empty) is not taken for it.
#[test]
fn empty_live_file_rotated_while_stopped_does_not_take_an_unrelated_file() {
    let env = Env::new();
    let path = env.log("app.log");
    fs::File::create(&path).unwrap();
    let other = env.log("other.txt");
    write_lines(&other, &lines("unrelated", 0..20));
    let mut cfg = env.config();
    cfg.input().paths = vec![ps(&path)];
    let mut agent = env.spawn(&cfg);
    agent.wait("app.log to be checkpointed", || {
        checkpoint_for(&env.ckpt(), &path).is_some()
    });
    agent.term_ok();
    rotate_compress(&env.logs(), "app.log");
    // The empty file's archive is older than the other file, written to since.
    touch_back(&env.log("app.log.1.gz"), "1 hour ago");
    append_lines(&other, &lines("unrelated", 20..40));

    let mut agent = env.spawn(&cfg);
    let fresh = lines("fresh", 0..10);
    append_lines(&path, &fresh);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &fresh);
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &fresh);
    assert_no_rotation_warning(&agent);
}

/// Files with one banner, one of them read only as far as the banner, all rotated and
/// compressed while stopped, beside an older archive with the same banner: each is drained
/// from its own archive, its lines under its own path, nothing twice, the old archive never.
#[test]
fn files_sharing_a_banner_rotated_and_compressed_while_stopped_each_drain_their_own() {
    let env = Env::new();
    let banner = "=== worker starting: version 1.2.3 ===".to_string();
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("*.log")];
    // An archive from before (not matched by the glob): the same banner, other lines.
    let old = env.log("w2.log.1");
    write_lines(&old, std::slice::from_ref(&banner));
    append_lines(&old, &lines("w2-old-archive", 0..50));
    gzip_in_place(&old);
    touch_back(&env.log("w2.log.1.gz"), "1 minute ago");
    let mut expected: Vec<(String, Vec<String>)> = Vec::new();
    for w in ["w1", "w2", "w3"] {
        let mut first = vec![banner.clone()];
        if w != "w1" {
            first.extend(lines(w, 0..50));
        }
        write_lines(&env.log(&format!("{w}.log")), &first);
        expected.push((w.to_string(), first));
    }
    let all = |e: &[(String, Vec<String>)]| -> Vec<String> {
        e.iter().flat_map(|(_, l)| l.iter().cloned()).collect()
    };
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let want = all(&expected);
    agent.wait("every first line", || {
        out.refresh();
        out.events.len() >= want.len()
    });
    agent.term_ok();
    for (w, ls) in &mut expected {
        let more = lines(w, 50..100);
        append_lines(&env.log(&format!("{w}.log")), &more);
        ls.extend(more);
        rotate_compress(&env.logs(), &format!("{w}.log"));
    }
    // w1 was written to first: its archive is the oldest, the others look likelier.
    touch_back(&env.log("w1.log.1.gz"), "2 hours ago");
    let want = all(&expected);

    let mut agent = env.spawn(&cfg);
    agent.wait("every line", || {
        out.refresh();
        out.events.len() >= want.len()
    });
    agent.term_ok();
    out.refresh();
    assert_no_rotation_warning(&agent);
    // Each line once, under its own file's path; the banner once per file.
    for (w, ls) in &expected {
        let own = ps(&env.log(&format!("{w}.log")));
        for l in ls.iter().filter(|l| **l != banner) {
            let at = paths_of(&out, l);
            assert_eq!(at, [own.as_str()], "{l}");
        }
    }
    assert_eq!(out.count(&banner), 3);
    assert_eq!(out.events.len(), want.len(), "the old archive was read");
}

/// An nginx-like directory: a busy access.log and an idle, empty error.log, both rotated
/// with `compress` (no `delaycompress`) while the agent is stopped, three times: every line
/// once under its own path, and no warning about the empty file.
#[test]
fn busy_and_empty_logs_rotated_while_stopped_three_times() {
    let env = Env::new();
    let access = env.log("access.log");
    fs::File::create(env.log("error.log")).unwrap();
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("*.log")];
    let mut app = LogWriter::open(&access, "access");
    app.write_n(50);
    let mut out = env.output();
    for _ in 0..3 {
        let mut agent = env.spawn(&cfg);
        agent.wait_for_messages(&mut out, &app.written);
        agent.term_ok();
        assert_no_rotation_warning(&agent);
        app.write_n(30);
        rotate_compress(&env.logs(), "access.log");
        rotate_compress(&env.logs(), "error.log");
        // Idle since it was created: its archive is older than access.log's.
        touch_back(&env.log("error.log.1.gz"), "1 day ago");
        app.reopen();
        app.write_n(10);
    }
    let mut agent = env.spawn(&cfg);
    agent.wait_for_messages(&mut out, &app.written);
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &app.written);
    let a = ps(&access);
    assert!(
        out.events.iter().all(|e| e.path == a),
        "a line under another path"
    );
    assert_no_rotation_warning(&agent);
}

const BANNER: &str = "=== service starting: version 4.5.6 ===";

/// A generation rotated and drained while running (and compressed), then the new file, read
/// only as far as its banner, rotated while stopped with nothing new: the older archive holds
/// the banner too and more, but it is the older generation's, already delivered.
#[test]
fn banner_only_file_rotated_while_stopped_beside_an_older_archive_delivers_nothing_again() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut cfg = env.config();
    cfg.input().paths = vec![ps(&path)];
    let mut first = vec![BANNER.to_string()];
    first.extend(lines("day1", 0..30));
    write_lines(&path, &first);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &first);
    fs::rename(&path, env.log("app.log.1")).unwrap();
    write_lines(&path, &[BANNER.to_string()]);
    agent.wait("the new file's banner", || {
        out.refresh();
        out.count(BANNER) == 2
    });
    let old = ps(&env.log("app.log.1"));
    agent.wait("the drained app.log.1 to be closed", || {
        !agent.fd_targets().iter().any(|t| t.starts_with(&old))
    });
    gzip_in_place(&env.log("app.log.1"));
    agent.term_ok();
    rotate_compress(&env.logs(), "app.log");

    let mut agent = env.spawn(&cfg);
    let fresh = lines("day2", 0..5);
    append_lines(&path, &fresh);
    agent.wait_for_messages(&mut out, &fresh);
    agent.term_ok();
    out.refresh();
    let mut all = first.clone();
    all.push(BANNER.to_string());
    all.extend(fresh);
    assert_exactly_once_but(&out, &all, BANNER, 2);
    assert_no_rotation_warning(&agent);
}

/// `expected` exactly once, except `repeated`, which comes `n` times.
fn assert_exactly_once_but(out: &Output, expected: &[String], repeated: &str, n: usize) {
    assert_eq!(out.count(repeated), n, "{repeated}");
    let rest: Vec<String> = expected
        .iter()
        .filter(|l| *l != repeated)
        .cloned()
        .collect();
    for l in &rest {
        assert_eq!(out.count(l), 1, "{l}");
    }
    assert_eq!(out.events.len(), rest.len() + n, "unexpected lines");
}

/// `app-worker.log` is not a rotated name of `app.log`: with both sharing a banner and
/// rotated while stopped, the worker's lines stay under the worker's path.
#[test]
fn a_sibling_with_a_longer_name_is_not_taken_for_a_rotated_generation() {
    let env = Env::new();
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("*.log")];
    let app = env.log("app.log");
    let worker = env.log("app-worker.log");
    write_lines(&app, &[BANNER.to_string()]);
    write_lines(&worker, &[BANNER.to_string()]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait("both banners", || {
        out.refresh();
        out.count(BANNER) == 2
    });
    agent.term_ok();
    let work = lines("worker", 0..20);
    append_lines(&worker, &work);
    rotate_compress(&env.logs(), "app-worker.log");
    rotate_compress(&env.logs(), "app.log");
    touch_back(&env.log("app.log.1.gz"), "1 hour ago");

    let mut agent = env.spawn(&cfg);
    agent.wait_for_messages(&mut out, &work);
    agent.term_ok();
    out.refresh();
    let w = ps(&worker);
    for l in &work {
        let at = paths_of(&out, l);
        assert_eq!(at, [w.as_str()], "{l}");
    }
    assert_no_rotation_warning(&agent);
}

/// Two generations rotated while stopped after only the banner was read: both archives hold
/// what was read, so neither is guessed; one warning lists both, and the next start is quiet.
#[test]
fn two_archives_holding_what_was_read_are_warned_about_once_and_neither_read() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut cfg = env.config();
    cfg.input().paths = vec![ps(&path)];
    write_lines(&path, &[BANNER.to_string()]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &[BANNER.to_string()]);
    agent.term_ok();
    append_lines(&path, &lines("gen0", 0..10));
    rotate_compress(&env.logs(), "app.log");
    write_lines(&path, &[BANNER.to_string()]);
    append_lines(&path, &lines("gen1", 0..10));
    rotate_compress(&env.logs(), "app.log");

    let fresh = lines("gen2", 0..3);
    append_lines(&path, &fresh);
    let mut agent = env.spawn(&cfg);
    agent.wait_for_messages(&mut out, &fresh);
    agent.wait("a warning listing both archives", || {
        !warnings_naming(&agent, "several files hold").is_empty()
    });
    agent.term_ok();
    let w = warnings_naming(&agent, "several files hold");
    assert_eq!(w.len(), 1, "{w:?}");
    let listed = w[0]["fields"]["candidates"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        listed.contains("app.log.1.gz") && listed.contains("app.log.2.gz"),
        "{listed}"
    );
    out.refresh();
    assert_eq!(
        out.count("gen0 line 000000"),
        0,
        "a guessed archive was read"
    );
    assert_eq!(
        out.count("gen1 line 000000"),
        0,
        "a guessed archive was read"
    );

    let mut agent = env.spawn(&cfg);
    let more = lines("gen2", 3..6);
    append_lines(&path, &more);
    agent.wait_for_messages(&mut out, &more);
    agent.term_ok();
    assert_no_rotation_warning(&agent);
}
