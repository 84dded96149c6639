//! Config and CLI: --check, config errors (exit 2 naming the key / variable / file), the ways
//! to name the config file, env expansion, --version, several inputs, the checkpoint lock.
mod common;

use common::*;
use std::fs;
use std::path::Path;

fn write(env: &Env, name: &str, text: &str) -> String {
    let p = env.path(name);
    fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Runs with `--config <text written to a file>` and expects exit 2 with all `needles` in stderr.
fn expect_config_error(env: &Env, yaml: &str, needles: &[&str]) -> RunResult {
    let cfg = write(env, "bad.yaml", yaml);
    let r = env.run(&["--config", &cfg], |_| {});
    assert_eq!(
        r.code,
        Some(2),
        "expected exit 2 for a config error: {r:#?}"
    );
    for n in needles {
        assert!(
            r.stderr.contains(n),
            "stderr should contain {n:?}:\n{}",
            r.stderr
        );
    }
    assert!(r.stdout.is_empty(), "nothing on stdout: {:?}", r.stdout);
    r
}

#[test]
fn check_prints_matched_files_and_exits_0() {
    let env = Env::new();
    write_lines(&env.log("one.log"), &lines("x", 0..1));
    write_lines(&env.log("two.log"), &lines("x", 0..1));
    write_lines(&env.log("skipped-9.log"), &lines("x", 0..1));
    write_lines(&env.log("other.txt"), &lines("x", 0..1));
    let mut cfg = env.config();
    cfg.input().exclude = vec![env.glob("skipped-*.log")];
    let cfg_path = env.write_config(&cfg);
    let r = env.run(&["--config", cfg_path.to_str().unwrap(), "--check"], |_| {});
    assert_eq!(r.code, Some(0), "{r:#?}");
    let glob = env.glob("*.log");
    for want in [
        glob.as_str(),
        env.log("one.log").to_str().unwrap(),
        env.log("two.log").to_str().unwrap(),
    ] {
        assert!(
            r.stdout.contains(want),
            "--check output lacks {want}: {r:#?}"
        );
    }
    for not in ["skipped-9.log", "other.txt"] {
        assert!(!r.stdout.contains(not), "--check lists {not}: {r:#?}");
    }
    // --check validates only: no output file written.
    assert!(!env.out().exists(), "--check must not start tailing");
}

#[test]
fn check_reports_config_errors_with_exit_2() {
    let env = Env::new();
    let yaml = env
        .config()
        .yaml()
        .replace("rotate_wait: 500ms", "rotate_wait: later");
    let cfg = write(&env, "bad.yaml", &yaml);
    let r = env.run(&["--check", "--config", &cfg], |_| {});
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(r.stderr.contains("rotate_wait"), "{r:#?}");
}

#[test]
fn bad_duration_exits_2_naming_the_key_and_value() {
    let env = Env::new();
    let yaml = env
        .config()
        .yaml()
        .replace("poll_interval: 50ms", "poll_interval: soon");
    expect_config_error(&env, &yaml, &["inputs.files[0].poll_interval", "soon"]);
}

#[test]
fn bad_size_exits_2_naming_the_key() {
    let env = Env::new();
    let mut cfg = env.config();
    cfg.input().max_line_bytes = Some("12XB".into());
    expect_config_error(
        &env,
        &cfg.yaml(),
        &["inputs.files[0].max_line_bytes", "12XB"],
    );
    cfg.input().max_line_bytes = Some("8".into());
    expect_config_error(&env, &cfg.yaml(), &["max_line_bytes"]);
}

#[test]
fn unknown_key_exits_2_naming_it() {
    let env = Env::new();
    let mut cfg = env.config();
    cfg.input().extra.push("bogus_option: 3".into());
    expect_config_error(&env, &cfg.yaml(), &["bogus_option"]);
    let yaml = format!("{}colour: blue\n", env.config().yaml());
    expect_config_error(&env, &yaml, &["colour"]);
}

#[test]
fn bad_enum_value_and_missing_required_key_exit_2() {
    let env = Env::new();
    let mut cfg = env.config();
    cfg.input().start_at = "middle".into();
    expect_config_error(&env, &cfg.yaml(), &["start_at", "middle"]);
    let mut cfg = env.config();
    cfg.output_path = None;
    expect_config_error(&env, &cfg.yaml(), &["output.path"]);
    let yaml = env.config().yaml().replace("    - paths:", "    - pathz:");
    expect_config_error(&env, &yaml, &["paths"]);
}

#[test]
fn yaml_syntax_error_exits_2_naming_the_file() {
    let env = Env::new();
    let r = expect_config_error(&env, "inputs:\n  files: [\n    - {paths: \n", &[]);
    let path = env.path("bad.yaml");
    assert!(
        r.stderr.contains(path.to_str().unwrap()),
        "stderr should name the config file: {}",
        r.stderr
    );
}

#[test]
fn missing_config_file_exits_2_naming_it() {
    let env = Env::new();
    let missing = env.path("no-such-config.yaml");
    let r = env.run(&["--config", missing.to_str().unwrap()], |_| {});
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(r.stderr.contains(missing.to_str().unwrap()), "{r:#?}");
}

#[test]
fn unset_env_var_exits_2_naming_it() {
    let env = Env::new();
    let yaml = env.config().yaml().replace(
        &env.logs().display().to_string(),
        "${LOGAGG_E2E_SURELY_UNSET_VAR}",
    );
    let cfg = write(&env, "bad.yaml", &yaml);
    let r = env.run(&["--config", &cfg], |c| {
        c.env_remove("LOGAGG_E2E_SURELY_UNSET_VAR");
    });
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(r.stderr.contains("LOGAGG_E2E_SURELY_UNSET_VAR"), "{r:#?}");

    // ${VAR:?message} shows the message.
    let yaml = env.config().yaml().replace(
        &env.logs().display().to_string(),
        "${LOGAGG_E2E_SURELY_UNSET_VAR:?set it to the log directory}",
    );
    let cfg = write(&env, "bad2.yaml", &yaml);
    let r = env.run(&["--config", &cfg], |c| {
        c.env_remove("LOGAGG_E2E_SURELY_UNSET_VAR");
    });
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(r.stderr.contains("set it to the log directory"), "{r:#?}");
}

fn assert_check_lists(r: &RunResult, file: &Path) {
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stdout.contains(file.to_str().unwrap()),
        "--check should list {}: {r:#?}",
        file.display()
    );
}

#[test]
fn config_can_be_named_by_long_short_single_dash_flag_env_var_and_default_path() {
    let env = Env::new();
    write_lines(&env.log("found.log"), &lines("x", 0..1));
    let cfg_path = env.write_config(&env.config());
    let cfg = cfg_path.to_str().unwrap();
    let found = env.log("found.log");
    assert_check_lists(&env.run(&["--config", cfg, "--check"], |_| {}), &found);
    assert_check_lists(&env.run(&["-c", cfg, "--check"], |_| {}), &found);
    assert_check_lists(&env.run(&["-config", cfg, "--check"], |_| {}), &found);
    assert_check_lists(
        &env.run(&["--check"], |c| {
            c.env("LOGAGGREGATOR_CONFIG", cfg);
        }),
        &found,
    );
    // No flag, no env var: ./config.yaml.
    let cwd = env.path("cwd");
    fs::create_dir_all(&cwd).unwrap();
    fs::copy(&cfg_path, cwd.join("config.yaml")).unwrap();
    assert_check_lists(
        &env.run(&["--check"], |c| {
            c.env_remove("LOGAGGREGATOR_CONFIG").current_dir(&cwd);
        }),
        &found,
    );
    // The flag wins over the env var.
    let r = env.run(&["--config", cfg, "--check"], |c| {
        c.env("LOGAGGREGATOR_CONFIG", "/nonexistent/config.yaml");
    });
    assert_check_lists(&r, &found);
}

#[test]
fn single_dash_config_flag_runs_the_agent() {
    let env = Env::new();
    let ls = lines("single-dash", 0..20);
    write_lines(&env.log("app.log"), &ls);
    let cfg_path = env.write_config(&env.config());
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("-config").arg(&cfg_path);
    let mut agent = env.spawn_cmd(cmd, Some(env.out()));
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ls);
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &ls);
}

#[test]
fn env_default_expansion_in_paths_works_end_to_end() {
    let env = Env::new();
    let ls = lines("env-expanded", 0..20);
    write_lines(&env.log("excluded-1.log"), &lines("excluded", 0..5));
    write_lines(&env.log("app.log"), &ls);
    let mut cfg = env.config();
    cfg.input().paths = vec![format!(
        "${{LOGAGG_E2E_UNSET_DIR:-{}}}/*.log",
        env.logs().display()
    )];
    // Set but empty: the default applies, as in a shell.
    cfg.input().exclude = vec![format!(
        "${{LOGAGG_E2E_EMPTY:-{}/excluded-*.log}}",
        env.logs().display()
    )];
    cfg.input().checkpoint_path = "${LOGAGG_E2E_CKPT}".into();
    let mut agent = env.spawn_with(&cfg, |c| {
        c.env_remove("LOGAGG_E2E_UNSET_DIR")
            .env("LOGAGG_E2E_EMPTY", "")
            .env("LOGAGG_E2E_CKPT", env.ckpt());
    });
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ls);
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &ls);
    assert!(
        checkpoint_file(&env.ckpt()).exists(),
        "checkpoint under the expanded ${{LOGAGG_E2E_CKPT}}"
    );
}

#[test]
fn version_and_help() {
    let env = Env::new();
    let r = env.run(&["--version"], |_| {});
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(r.stdout.contains(env!("CARGO_PKG_VERSION")), "{r:#?}");
    let r = env.run(&["--help"], |_| {});
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stdout.contains("--config") && r.stdout.contains("--check"),
        "{r:#?}"
    );
}

#[test]
fn several_inputs_each_with_its_own_checkpoint_dir_work_independently() {
    let env = Env::new();
    fs::create_dir_all(env.log("a")).unwrap();
    fs::create_dir_all(env.log("b")).unwrap();
    let a_old = lines("input-a", 0..30);
    let b_old = lines("input-b-before-start", 0..30);
    write_lines(&env.log("a/app.log"), &a_old);
    write_lines(&env.log("b/app.log"), &b_old);
    let mut cfg = env.config();
    let ck_a = env.path("ckpt-a");
    let ck_b = env.path("ckpt-b");
    let mut ia = Input::new(&[&env.glob("a/*.log")], &ck_a);
    ia.start_at = "beginning".into();
    let mut ib = Input::new(&[&env.glob("b/*.log")], &ck_b);
    ib.start_at = "end".into();
    ib.max_line_bytes = Some("32".into());
    cfg.inputs = vec![ia, ib];

    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &a_old);
    // Input b started at the end: once it holds b/app.log open its startup scan is over,
    // and a file created now is read from 0.
    let b_app = env.log("b/app.log").to_str().unwrap().to_string();
    agent.wait("input b opens b/app.log", || {
        agent.fd_targets().contains(&b_app)
    });
    let b_new_file = lines("input-b-new-file", 0..10);
    write_lines(&env.log("b/new.log"), &b_new_file);
    agent.wait_for_messages(&mut out, &b_new_file);
    let b_more = lines("input-b-appended", 0..10);
    append_lines(&env.log("b/app.log"), &b_more);
    // max_line_bytes 32 applies to input b only.
    let long = format!("input-a-long-line {}", "y".repeat(100));
    append_lines(&env.log("a/app.log"), std::slice::from_ref(&long));
    agent.wait_for_messages(&mut out, &b_more);
    agent.wait_for_messages(&mut out, std::slice::from_ref(&long));
    agent.term_ok();

    // Each checkpoint file has only its own input's files.
    let ea = checkpoint_entries(&ck_a);
    let eb = checkpoint_entries(&ck_b);
    assert!(!ea.is_empty() && !eb.is_empty(), "a: {ea:?}\nb: {eb:?}");
    assert!(ea.iter().all(|e| e.path.contains("/logs/a/")), "{ea:?}");
    assert!(eb.iter().all(|e| e.path.contains("/logs/b/")), "{eb:?}");

    // Restart: each resumes from its own checkpoint.
    let a2 = lines("input-a-second-run", 0..10);
    let b2 = lines("input-b-second-run", 0..10);
    append_lines(&env.log("a/app.log"), &a2);
    append_lines(&env.log("b/app.log"), &b2);
    let mut agent = env.spawn(&cfg);
    agent.wait_for_messages(&mut out, &a2);
    agent.wait_for_messages(&mut out, &b2);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = a_old
        .iter()
        .chain(&b_new_file)
        .chain(&b_more)
        .chain(std::slice::from_ref(&long))
        .chain(&a2)
        .chain(&b2)
        .cloned()
        .collect();
    assert_exactly_once(&out, &expected);
}

#[test]
fn inputs_sharing_a_checkpoint_dir_are_rejected() {
    let env = Env::new();
    let mut cfg = env.config();
    let second = Input::new(&[&env.glob("*.txt")], &env.ckpt());
    cfg.inputs.push(second);
    expect_config_error(&env, &cfg.yaml(), &["checkpoint_path"]);
}

#[test]
fn second_agent_on_the_same_checkpoint_dir_exits_2_naming_lock_and_pid() {
    let env = Env::new();
    let ls = lines("first-agent", 0..10);
    write_lines(&env.log("app.log"), &ls);
    let cfg = env.config();
    let mut first = env.spawn(&cfg);
    let mut out = env.output();
    first.wait_for_messages(&mut out, &ls);

    let mut cfg2 = cfg.clone();
    cfg2.output_path = Some(env.path("out/second.json"));
    let cfg2_path = env.write_config(&cfg2);
    let r = env.run(&["--config", cfg2_path.to_str().unwrap()], |_| {});
    assert_eq!(r.code, Some(2), "second agent: {r:#?}");
    let lock = env.ckpt().join("lock");
    assert!(
        r.stderr.contains(lock.to_str().unwrap()),
        "should name the lock {}: {}",
        lock.display(),
        r.stderr
    );
    assert!(
        r.stderr.contains(&first.pid.to_string()),
        "should name the holder's PID {}: {}",
        first.pid,
        r.stderr
    );
    assert!(
        !env.path("out/second.json").exists()
            || fs::read(env.path("out/second.json")).unwrap().is_empty(),
        "the second agent must not deliver anything"
    );
    let lock_text = fs::read_to_string(&lock).unwrap();
    assert!(
        lock_text.contains(&first.pid.to_string()),
        "the lock file should hold the PID {}: {lock_text:?}",
        first.pid
    );
    first.assert_running();
    first.term_ok();
    out.refresh();
    assert_exactly_once(&out, &ls);
}

#[test]
fn checkpoint_dir_that_cannot_be_created_exits_2() {
    let env = Env::new();
    let blocker = env.path("not-a-dir");
    fs::write(&blocker, b"a regular file").unwrap();
    let mut cfg = env.config();
    cfg.input().checkpoint_path = blocker.join("ckpt");
    let cfg_path = env.write_config(&cfg);
    let r = env.run(&["--config", cfg_path.to_str().unwrap()], |_| {});
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(
        r.stderr.contains("not-a-dir"),
        "should name the directory: {r:#?}"
    );
}

fn json_log_levels(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l:?}"));
            v["level"].as_str().unwrap_or("").to_uppercase()
        })
        .collect()
}

#[test]
fn agent_logs_are_json_and_level_can_be_overridden_by_env() {
    let env = Env::new();
    let ls = lines("logs-test", 0..10);
    write_lines(&env.log("app.log"), &ls);
    let mut out = env.output();

    // Level warn from the config: nothing below warn.
    let mut cfg = env.config();
    cfg.log_level = "warn".into();
    let mut agent = env.spawn_with(&cfg, |c| {
        c.env_remove("LOGAGGREGATOR_LOG_LEVEL")
            .env_remove("LOGAGGREGATOR_LOG_FORMAT");
    });
    agent.wait_for_messages(&mut out, &ls);
    agent.term_ok();
    let levels = json_log_levels(&agent.stderr());
    assert!(
        levels.iter().all(|l| l == "WARN" || l == "ERROR"),
        "level warn logged {levels:?}"
    );

    // LOGAGGREGATOR_LOG_LEVEL=debug overrides it.
    let more = lines("logs-test", 10..20);
    append_lines(&env.log("app.log"), &more);
    let mut agent = env.spawn_with(&cfg, |c| {
        c.env("LOGAGGREGATOR_LOG_LEVEL", "debug")
            .env_remove("LOGAGGREGATOR_LOG_FORMAT");
    });
    agent.wait_for_messages(&mut out, &more);
    agent.term_ok();
    let levels = json_log_levels(&agent.stderr());
    assert!(
        levels.iter().any(|l| l == "DEBUG" || l == "INFO"),
        "LOGAGGREGATOR_LOG_LEVEL=debug logged only {levels:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 8: where errors point, what they say, what --check proves, what start-up logs count.

/// `at line L column C` (1-based, as YAML counts) of where `needle` starts in `text`, plus
/// `skip` characters.
fn position_of(text: &str, needle: &str, skip: usize) -> String {
    let (n, l) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {text}"));
    format!(
        "at line {} column {}",
        n + 1,
        l.find(needle).unwrap() + skip + 1
    )
}

#[test]
fn bad_duration_or_size_is_reported_at_the_line_of_the_value() {
    let env = Env::new();
    let mut cfg = env.config();
    cfg.input().max_line_bytes = Some("64KiB".into());
    let good = cfg.yaml();
    let item = position_of(&good, "paths:", 0);
    for (from, key, value) in [
        ("poll_interval: 50ms", "poll_interval", "soon"),
        ("rotate_wait: 500ms", "rotate_wait", "5"),
        ("max_line_bytes: 64KiB", "max_line_bytes", "1MiBs"),
    ] {
        let bad = format!("{key}: {value}");
        let yaml = good.replace(from, &bad);
        // The value's own line and column, e.g. `at line 8 column 22`.
        let at = position_of(&yaml, &bad, key.len() + 2);
        let r = expect_config_error(
            &env,
            &yaml,
            &[&format!("inputs.files[0].{key}: "), value, &at],
        );
        assert!(
            !r.stderr.contains(&item),
            "points at the list item: {}",
            r.stderr
        );
    }
}

#[test]
fn required_env_var_message_reads_as_a_sentence() {
    let env = Env::new();
    let yaml = env.config().yaml().replace(
        &env.logs().display().to_string(),
        "${LOGAGG_E2E_SURELY_UNSET_VAR:?set LOGAGG_E2E_SURELY_UNSET_VAR to the app log dir}",
    );
    let cfg = write(&env, "bad.yaml", &yaml);
    for args in [vec!["--config", &cfg], vec!["--check", "--config", &cfg]] {
        let r = env.run(&args, |c| {
            c.env_remove("LOGAGG_E2E_SURELY_UNSET_VAR");
        });
        assert_eq!(r.code, Some(2), "{r:#?}");
        assert!(
            r.stderr.contains(
                "LOGAGG_E2E_SURELY_UNSET_VAR: set LOGAGG_E2E_SURELY_UNSET_VAR to the app log dir (line 3)"
            ),
            "{r:#?}"
        );
        assert!(
            !r.stderr
                .contains("environment variable LOGAGG_E2E_SURELY_UNSET_VAR set"),
            "{r:#?}"
        );
    }
}

#[test]
fn config_errors_show_the_variable_never_its_value() {
    let env = Env::new();
    let secret = "tok3n-s3cr3t-value";
    for (from, to) in [
        ("poll_interval: 50ms", "poll_interval: ${LOGAGG_E2E_SECRET}"),
        // humantime quotes the unknown unit, a piece of the value.
        (
            "poll_interval: 50ms",
            "poll_interval: 5${LOGAGG_E2E_SECRET}",
        ),
        (
            "rotate_wait: 500ms",
            "rotate_wait: \"x${LOGAGG_E2E_SECRET}\"",
        ),
        ("start_at: beginning", "start_at: ${LOGAGG_E2E_SECRET}"),
        ("start_at: beginning", "${LOGAGG_E2E_SECRET}: 1"),
    ] {
        let yaml = env.config().yaml().replace(from, to);
        let cfg = write(&env, "secret.yaml", &yaml);
        for args in [vec!["--config", &cfg], vec!["--check", "--config", &cfg]] {
            let r = env.run(&args, |c| {
                c.env("LOGAGG_E2E_SECRET", secret);
            });
            assert_eq!(r.code, Some(2), "{r:#?}");
            assert!(r.stderr.contains("${LOGAGG_E2E_SECRET}"), "{r:#?}");
            for out in [&r.stderr, &r.stdout] {
                for piece in ["tok3n", "s3cr3t", "\"tok\""] {
                    assert!(!out.contains(piece), "the value leaked: {r:#?}");
                }
            }
        }
    }
}

/// Names in `dir`, sorted (empty when it does not exist).
fn names_in(dir: &Path) -> Vec<String> {
    files_with_prefix(dir, "")
}

#[test]
fn check_fails_for_a_checkpoint_dir_a_start_could_not_use() {
    let env = Env::new();
    write_lines(&env.log("app.log"), &lines("x", 0..1));
    let blocker = env.path("not-a-dir");
    fs::write(&blocker, b"a regular file").unwrap();
    for (bad, position) in [
        (Path::new("/proc/nope/cp").to_path_buf(), 0),
        (blocker.join("ckpt"), 1),
    ] {
        let mut cfg = env.config();
        let second = Input::new(&[&env.glob("*.txt")], &env.path("ckpt-2"));
        cfg.inputs.push(second);
        cfg.inputs[position].checkpoint_path = bad.clone();
        let cfg_path = env.write_config(&cfg);
        let r = env.run(&["--check", "--config", cfg_path.to_str().unwrap()], |_| {});
        assert_eq!(
            r.code,
            Some(2),
            "--check must refuse {}: {r:#?}",
            bad.display()
        );
        let key =
            format!("inputs.files[{position}].checkpoint_path: cannot create checkpoint directory");
        assert!(r.stderr.contains(&key), "{r:#?}");
        assert!(r.stderr.contains(bad.to_str().unwrap()), "{r:#?}");
        assert!(!r.stdout.contains("valid"), "{r:#?}");
        // A real start refuses it the same way.
        let r = env.run(&["--config", cfg_path.to_str().unwrap()], |_| {});
        assert_eq!(r.code, Some(2), "{r:#?}");
    }
    assert!(
        !env.path("ckpt-2").exists(),
        "--check left a directory behind"
    );
}

#[test]
fn check_proves_checkpoint_dirs_writable_leaving_nothing_even_beside_a_running_agent() {
    let env = Env::new();
    let ls = lines("beside-check", 0..10);
    write_lines(&env.log("app.log"), &ls);

    // A directory that does not exist yet: created, written, and removed again.
    let mut cfg = env.config();
    cfg.input().checkpoint_path = env.path("state/deep/ckpt");
    let cfg_path = env.write_config(&cfg);
    let r = env.run(&["--check", "--config", cfg_path.to_str().unwrap()], |_| {});
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(r.stdout.contains("can be created and written"), "{r:#?}");
    assert!(!env.path("state").exists(), "--check left state/ behind");

    // Beside a running agent that holds the lock.
    let cfg = env.config();
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ls);
    let lock = env.ckpt().join("lock");
    let before = names_in(&env.ckpt());
    let cfg_path = env.write_config(&cfg);
    let r = env.run(&["--check", "--config", cfg_path.to_str().unwrap()], |_| {});
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert!(r.stdout.contains("exists, writable"), "{r:#?}");
    assert_eq!(names_in(&env.ckpt()), before, "--check left files behind");
    assert_eq!(fs::read_to_string(&lock).unwrap(), agent.pid.to_string());
    // The lock is still the running agent's: a second agent is still refused.
    let r = env.run(&["--config", cfg_path.to_str().unwrap()], |_| {});
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(r.stderr.contains(&agent.pid.to_string()), "{r:#?}");
    agent.assert_running();
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &ls);
}

#[test]
fn fatal_start_up_error_is_printed_once_as_plain_text() {
    let env = Env::new();
    write_lines(&env.log("app.log"), &lines("x", 0..1));
    let blocker = env.path("not-a-dir");
    fs::write(&blocker, b"a regular file").unwrap();
    let mut cfg = env.config();
    cfg.input().checkpoint_path = blocker.join("ckpt");
    let cfg_path = env.write_config(&cfg);
    let r = env.run(&["--config", cfg_path.to_str().unwrap()], |_| {});
    assert_eq!(r.code, Some(2), "{r:#?}");
    let about: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("not-a-dir"))
        .collect();
    assert_eq!(about.len(), 1, "printed once: {r:#?}");
    assert!(
        about[0].starts_with("logaggregator: cannot create checkpoint directory"),
        "{r:#?}"
    );

    // An API port in use, after the config was read and logging set up.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let yaml = format!("{}api:\n  listen: {addr}\n", env.config().yaml());
    let cfg = write(&env, "port.yaml", &yaml);
    let r = env.run(&["--config", &cfg], |_| {});
    assert_eq!(r.code, Some(2), "{r:#?}");
    let about: Vec<&str> = r.stderr.lines().filter(|l| l.contains(&addr)).collect();
    assert_eq!(about.len(), 1, "printed once: {r:#?}");
    assert!(
        about[0].starts_with("logaggregator: configuration error: api.listen"),
        "{r:#?}"
    );
    drop(taken);
}

#[test]
fn without_a_config_file_the_error_says_how_to_name_one() {
    let env = Env::new();
    let cwd = env.path("empty-cwd");
    fs::create_dir_all(&cwd).unwrap();
    for args in [vec![], vec!["--check"], vec!["status"]] {
        let r = env.run(&args, |c| {
            c.env_remove("LOGAGGREGATOR_CONFIG").current_dir(&cwd);
        });
        assert_eq!(r.code, Some(2), "{r:#?}");
        for want in [
            cwd.join("config.yaml").to_str().unwrap(),
            "--config",
            "LOGAGGREGATOR_CONFIG",
            "config.yaml.example",
        ] {
            assert!(r.stderr.contains(want), "stderr lacks {want:?}: {r:#?}");
        }
        assert_eq!(r.stderr.lines().count(), 1, "{r:#?}");
    }
    // Named by the environment variable: the error says so.
    let missing = env.path("nowhere/config.yaml");
    let r = env.run(&["--check"], |c| {
        c.env("LOGAGGREGATOR_CONFIG", &missing).current_dir(&cwd);
    });
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(
        r.stderr.contains(missing.to_str().unwrap()) && r.stderr.contains("LOGAGGREGATOR_CONFIG"),
        "{r:#?}"
    );
}

/// The agent's JSON log records with this message.
fn records(stderr: &str, message: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

#[test]
fn start_up_log_says_what_it_counts_and_numbers_inputs_as_the_config() {
    let env = Env::new();
    fs::create_dir_all(env.log("a")).unwrap();
    fs::create_dir_all(env.log("b")).unwrap();
    let a = lines("count-a", 0..3);
    let b = lines("count-b", 0..3);
    write_lines(&env.log("a/app.log"), &a);
    write_lines(&env.log("b/one.log"), &b[..1]);
    write_lines(&env.log("b/two.log"), &b[1..]);
    let mut cfg = env.config();
    cfg.inputs = vec![
        Input::new(&[&env.glob("a/*.log")], &env.path("ckpt-a")),
        Input::new(&[&env.glob("b/*.log")], &env.path("ckpt-b")),
    ];
    let mut out = env.output();
    // First run: nothing checkpointed yet; second run: what the first one read.
    for (run, checkpointed) in [(0, [0, 0]), (1, [1, 2])] {
        let mut agent = env.spawn(&cfg);
        agent.wait_for_stderr("logaggregator started");
        let err = agent.stderr();
        let started = records(&err, "input started");
        assert_eq!(started.len(), 2, "run {run}: {err}");
        for (i, (matched, rec)) in [1, 2].iter().zip(&started).enumerate() {
            let f = &rec["fields"];
            assert_eq!(f["input"], i, "input={i} is inputs.files[{i}]: {rec}");
            assert_eq!(f["files_matched"], *matched, "run {run}: {rec}");
            assert_eq!(f["checkpointed_files"], checkpointed[i], "run {run}: {rec}");
            assert!(f.get("files").is_none(), "{rec}");
        }
        let top = records(&err, "logaggregator started");
        assert_eq!(top[0]["fields"]["inputs_running"], 2, "{err}");
        assert!(top[0]["fields"].get("inputs").is_none(), "{err}");
        if run == 0 {
            agent.wait_for_messages(&mut out, &a);
            agent.wait_for_messages(&mut out, &b);
        }
        agent.term_ok();
    }
    out.refresh();
    let all: Vec<String> = a.iter().chain(&b).cloned().collect();
    assert_exactly_once(&out, &all);
}
