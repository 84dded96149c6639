//! Behaviour 1: which files are read (globs, new files, exclusions, unreadable files).
mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

#[test]
fn files_at_start_and_created_later_are_read_excluded_are_not() {
    let env = Env::new();
    let a = lines("file-a", 0..50);
    let b = lines("file-b", 0..50);
    write_lines(&env.log("a.log"), &a);
    write_lines(&env.log("b.log"), &b);
    write_lines(&env.log("skip-1.log"), &lines("excluded-1", 0..10));
    write_lines(&env.log("other.txt"), &lines("not-matched", 0..10));

    let mut cfg = env.config();
    cfg.input().exclude = vec![env.glob("skip-*.log")];
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let mut expected: Vec<String> = a.iter().chain(&b).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);

    // Excluded and non-matching files created/extended while running; then new matching files.
    write_lines(&env.log("skip-2.log"), &lines("excluded-2", 0..10));
    append_lines(&env.log("skip-1.log"), &lines("excluded-1", 10..20));
    append_lines(&env.log("other.txt"), &lines("not-matched", 10..20));
    let c = lines("file-c", 0..30);
    write_lines(&env.log("c.log"), &c);
    expected.extend(c.iter().cloned());
    agent.wait_for_messages(&mut out, &expected);
    // A second new file, found by a later scan than the one that saw skip-2.log.
    let d = lines("file-d", 0..30);
    write_lines(&env.log("d.log"), &d);
    expected.extend(d.iter().cloned());
    agent.wait_for_messages(&mut out, &expected);
    // And the files found at start keep being tailed.
    let a2 = lines("file-a", 50..60);
    append_lines(&env.log("a.log"), &a2);
    expected.extend(a2.iter().cloned());
    agent.wait_for_messages(&mut out, &expected);

    agent.assert_running();
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    // Exactly once also proves no excluded / non-matching line appeared ("unexpected").
    assert_exactly_once(&out, &expected);
}

#[test]
fn recursive_glob_finds_nested_files_and_new_directories() {
    let env = Env::new();
    fs::create_dir_all(env.log("x/y")).unwrap();
    let top = lines("top", 0..20);
    let deep = lines("deep", 0..20);
    write_lines(&env.log("top.log"), &top);
    write_lines(&env.log("x/y/deep.log"), &deep);
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("**/*.log")];
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let mut expected: Vec<String> = top.iter().chain(&deep).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);

    fs::create_dir_all(env.log("new/dir")).unwrap();
    let fresh = lines("fresh-nested", 0..20);
    write_lines(&env.log("new/dir/fresh.log"), &fresh);
    expected.extend(fresh.iter().cloned());
    agent.wait_for_messages(&mut out, &expected);

    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &expected);
}

/// Makes the temp tree usable by an unprivileged agent (uid/gid 65534) and returns a copy of
/// the binary that it can execute: the checkout (where cargo put the binary) may sit under a
/// directory nobody cannot traverse (`mktemp -d`, a 0700 home). None, with the reason, when
/// the temp dir itself is out of nobody's reach.
fn open_up_for_nobody(env: &Env) -> Result<std::path::PathBuf, String> {
    for d in [
        env.root().to_path_buf(),
        env.logs(),
        env.ckpt(),
        env.path("out"),
        env.path("bin"),
    ] {
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
    }
    for dir in env.root().ancestors().skip(1) {
        let mode = fs::metadata(dir).unwrap().permissions().mode();
        if mode & 0o001 == 0 {
            return Err(format!(
                "{} (mode {:o}) cannot be traversed by uid 65534; set TMPDIR to a directory it can reach",
                dir.display(),
                mode & 0o7777
            ));
        }
    }
    let copy = env.path("bin/logaggregator");
    // A hard link is never open for writing, so exec cannot fail with ETXTBSY because a
    // parallel test forked while a copy was being written.
    if fs::hard_link(bin(), &copy).is_err() {
        fs::copy(bin(), &copy).unwrap();
    }
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    Ok(copy)
}

#[test]
fn unreadable_file_is_warned_about_and_retried_not_fatal() {
    let env = Env::new();
    let locked_path = env.log("locked.log");
    let locked = lines("locked", 0..20);
    let ok = lines("readable", 0..20);
    write_lines(&locked_path, &locked);
    write_lines(&env.log("ok.log"), &ok);
    fs::set_permissions(env.log("ok.log"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&locked_path, fs::Permissions::from_mode(0o000)).unwrap();

    let cfg = env.config();
    // As root chmod 000 does not stop reading: run the agent as nobody instead, from a copy
    // of the binary nobody can reach wherever the checkout is.
    let mut agent = if is_root() {
        let program = match open_up_for_nobody(&env) {
            Ok(p) => p,
            Err(why) => {
                eprintln!("SKIPPED unreadable_file_is_warned_about_and_retried_not_fatal: {why}");
                return;
            }
        };
        let mut cmd = std::process::Command::new(&program);
        cmd.arg("--config").arg(env.write_config(&cfg));
        cmd.uid(65534).gid(65534);
        env.spawn_cmd(cmd, cfg.output_path.clone())
    } else {
        env.spawn(&cfg)
    };
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ok);

    // Warned about (the message names the file), not fatal.
    agent.wait_for_stderr("locked.log");
    agent.assert_running();
    out.refresh();
    for l in &locked {
        assert_eq!(
            out.count(l),
            0,
            "read a file the agent has no permission for"
        );
    }
    // Still tailing the readable file.
    let ok2 = lines("readable", 20..40);
    append_lines(&env.log("ok.log"), &ok2);
    agent.wait_for_messages(&mut out, &ok2);

    // Retried: once readable, its lines arrive.
    fs::set_permissions(&locked_path, fs::Permissions::from_mode(0o644)).unwrap();
    agent.wait_for_messages(&mut out, &locked);

    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = ok.iter().chain(&ok2).chain(&locked).cloned().collect();
    assert_exactly_once(&out, &expected);
}

#[test]
fn hundreds_of_files_each_line_exactly_once_and_idle_cpu_is_low() {
    let env = Env::new();
    let files = 300;
    let mut expected = Vec::new();
    for f in 0..files {
        let ls = lines(&format!("many-{f:03}"), 0..100);
        write_lines(&env.log(&format!("f-{f:03}.log")), &ls);
        expected.extend(ls);
    }
    let mut cfg = env.config();
    // The idle-CPU figure is about a realistic agent: default scan and poll intervals.
    cfg.input().scan_interval = "1s".into();
    cfg.input().poll_interval = "250ms".into();
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages_within(&mut out, &expected, std::time::Duration::from_secs(30));
    // Every file is being tailed: one more line each.
    let mut more = Vec::new();
    for f in 0..files {
        let l = line(&format!("many-{f:03}"), 100);
        append_lines(&env.log(&format!("f-{f:03}.log")), std::slice::from_ref(&l));
        more.push(l);
    }
    agent.wait_for_messages_within(&mut out, &more, std::time::Duration::from_secs(30));
    expected.extend(more);
    out.refresh();
    assert_exactly_once(&out, &expected);

    // Let the last checkpoint be written, then measure a quiet window. (A measurement,
    // not a wait for a result.)
    agent.wait("checkpoint covering all files", || {
        checkpoint_entries(&env.ckpt()).len() >= files
    });
    // Idle means settled: quiet tailers park about 2 s after their last line.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let window = std::time::Duration::from_secs(3);
    let t0 = std::time::Instant::now();
    let c0 = cpu_ticks(agent.pid);
    std::thread::sleep(window);
    let c1 = cpu_ticks(agent.pid);
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (c1 - c0) as f64 / clk_tck() as f64 / secs;
    eprintln!(
        "idle agent with {files} files: {:.2}% of a core ({} ticks over {secs:.2}s)",
        cpu * 100.0,
        c1 - c0
    );
    assert!(
        cpu < 0.01,
        "idle agent watching {files} files used {:.2}% of a core (limit 1%)",
        cpu * 100.0
    );
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &expected);
}

#[test]
fn dangling_symlink_and_directory_matching_the_glob_are_not_fatal() {
    let env = Env::new();
    let targets = env.path("targets");
    fs::create_dir_all(&targets).unwrap();
    std::os::unix::fs::symlink(targets.join("later.txt"), env.log("dangling.log")).unwrap();
    fs::create_dir_all(env.log("a-directory.log")).unwrap();
    let real = lines("real-file", 0..20);
    write_lines(&env.log("real.log"), &real);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &real);
    agent.assert_running();
    // The link's target appears: it is read (a file created while running starts at 0).
    let later = lines("link-target-created-later", 0..20);
    write_lines(&targets.join("later.txt"), &later);
    agent.wait_for_messages(&mut out, &later);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = real.iter().chain(&later).cloned().collect();
    assert_exactly_once(&out, &expected);
}

/// The watched directory is removed with its files and created again: files in the new
/// directory are found and tailed promptly (not only by the periodic full scan, every 30
/// scans: 30 s here).
#[test]
fn directory_removed_and_created_again_is_watched_and_read_again() {
    let env = Env::new();
    let dir = env.log("app");
    fs::create_dir_all(&dir).unwrap();
    let first = lines("first-dir", 0..20);
    write_lines(&dir.join("a.log"), &first);
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("app/*.log")];
    cfg.input().scan_interval = "1s".into();
    cfg.input().poll_interval = "10s".into();
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &first);

    fs::remove_dir_all(&dir).unwrap();
    fs::create_dir_all(&dir).unwrap();
    let second = lines("second-dir", 0..20);
    write_lines(&dir.join("b.log"), &second);
    let mut expected: Vec<String> = first.iter().chain(&second).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);
    // Appends arrive by events again (poll_interval is 10 s).
    let t0 = std::time::Instant::now();
    let more = lines("second-dir", 20..30);
    append_lines(&dir.join("b.log"), &more);
    expected.extend(more.iter().cloned());
    agent.wait_for_messages(&mut out, &expected);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "appends took {:?}: the new directory is not watched",
        t0.elapsed()
    );
    agent.assert_running();
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &expected);
}

/// The glob's directory is reached through a symlink (`/var/log -> /data/log`): events for
/// its files carry the real path, which the glob does not match, so a file closed after
/// close_inactive that grows must still be found by the regular scan (every second here; the
/// full scan would take 30 s).
#[test]
fn closed_file_in_a_directory_reached_through_a_symlink_is_read_when_it_grows() {
    let env = Env::new();
    let real = env.log("data/app");
    fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(env.log("data"), env.log("varlog")).unwrap();
    let file = real.join("a.log");
    let first = lines("through-link", 0..10);
    write_lines(&file, &first);
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("varlog/app/*.log")];
    cfg.input().scan_interval = "1s".into();
    cfg.input().poll_interval = "1s".into();
    cfg.input().extra.push("close_inactive: 300ms".into());
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &first);
    let real_s = file.to_str().unwrap().to_string();
    agent.wait("the quiet file to be closed (close_inactive 300ms)", || {
        !agent.fd_targets().contains(&real_s)
    });
    let more = lines("through-link", 10..20);
    append_lines(&file, &more);
    let expected: Vec<String> = first.iter().chain(&more).cloned().collect();
    agent.wait_for_messages(&mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &expected);
}
