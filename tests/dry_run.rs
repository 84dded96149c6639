//! `logaggregator dry-run`: a sample (file or stdin) through one input's framing, multiline
//! and processors, events printed as JSON lines; no checkpoint, no output; the pending event
//! emitted at the end; an unknown `--input` exits 2 listing the ids.
mod common;

use common::*;
use serde_json::{Value, json};
use std::fs;
use std::process::Stdio;

/// Two inputs: `web` (plain lines, parse_json) first, `app` (multiline + logfmt) second.
fn config(env: &Env) -> Config {
    let mut cfg = env.config();
    cfg.input().extra = strings(&["id: web", "processors: [{type: parse_json}]"]);
    let mut app = Input::new(&[&env.glob("app-*.log")], &env.path("ckpt-app"));
    app.extra = strings(&[
        "id: app",
        r"multiline: {start: '^\d{4}-\d{2}-\d{2} ', timeout: 60s}",
        r"processors: [{type: parse_regex, pattern: '^\S+ \S+ (?P<level>[A-Z]+) '}, {type: filter, drop: 'level = debug'}]",
    ]);
    cfg.inputs.push(app);
    cfg
}

const SAMPLE: &[&str] = &[
    "2026-12-01 10:00:00 ERROR request failed",
    "java.lang.IllegalStateException: boom",
    "\tat com.example.App.main(App.java:10)",
    "2026-12-01 10:00:01 DEBUG noisy detail",
    "2026-12-01 10:00:02 INFO recovered",
    "2026-12-01 10:00:03 WARN last event, pending at the end",
    "  with a continuation",
];

fn parse_stdout(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

fn assert_app_events(events: &[Value], path: &str) {
    let msgs: Vec<&str> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        msgs,
        [
            SAMPLE[..3].join("\n"),
            SAMPLE[4].to_string(),
            SAMPLE[5..].join("\n"),
        ],
        "joined, the debug event filtered out, the pending one emitted at the end"
    );
    let offsets: Vec<u64> = events
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    let at = |i: usize| SAMPLE[..i].iter().map(|l| l.len() as u64 + 1).sum::<u64>();
    assert_eq!(offsets, [0, at(4), at(5)]);
    let levels: Vec<&Value> = events.iter().map(|e| &e["level"]).collect();
    assert_eq!(levels, [&json!("ERROR"), &json!("INFO"), &json!("WARN")]);
    for e in events {
        assert_eq!(e["source"], "app", "{e}");
        assert_eq!(e["path"], path, "{e}");
        assert!(e["host"].is_string() && e["timestamp"].is_string(), "{e}");
    }
}

/// Nothing was read, written or created but the config and the sample.
fn assert_nothing_written(env: &Env) {
    assert!(!env.out().exists(), "dry-run wrote the output");
    for d in ["ckpt", "ckpt-app"] {
        let p = env.path(d);
        assert!(
            !p.join("checkpoints.json").exists(),
            "dry-run wrote a checkpoint in {}",
            p.display()
        );
    }
}

#[test]
fn dry_run_prints_the_events_of_a_sample_file_and_writes_nothing() {
    let env = Env::new();
    let cfg = config(&env);
    let cfg_path = env.write_config(&cfg);
    let sample = env.path("sample.log");
    write_lines(&sample, &strings(SAMPLE));
    // A file the inputs match: dry-run must not tail it.
    write_lines(
        &env.log("app-live.log"),
        &strings(&["2026-12-01 10:00:00 INFO live"]),
    );
    let r = env.run(
        &[
            "dry-run",
            "--config",
            cfg_path.to_str().unwrap(),
            "--input",
            "app",
            sample.to_str().unwrap(),
        ],
        |_| {},
    );
    assert_eq!(r.code, Some(0), "{r:#?}");
    let events = parse_stdout(&r.stdout);
    assert_app_events(&events, sample.to_str().unwrap());
    assert!(
        !r.stdout.contains("live"),
        "dry-run read a tailed file: {}",
        r.stdout
    );
    assert_nothing_written(&env);
}

#[test]
fn dry_run_reads_stdin_and_defaults_to_the_first_input() {
    let env = Env::new();
    let cfg = config(&env);
    let cfg_path = env.write_config(&cfg);
    let sample = env.path("sample.log");
    write_lines(&sample, &strings(SAMPLE));
    // --input app, the sample on stdin.
    let r = env.run(
        &[
            "dry-run",
            "--config",
            cfg_path.to_str().unwrap(),
            "--input",
            "app",
        ],
        |c| {
            c.stdin(Stdio::from(fs::File::open(&sample).unwrap()));
        },
    );
    assert_eq!(r.code, Some(0), "{r:#?}");
    assert_app_events(&parse_stdout(&r.stdout), "-");

    // No --input: the first input (web: parse_json, no multiline), one event per line.
    let web = env.path("web.log");
    write_lines(
        &web,
        &strings(&[r#"{"message":"hi","status":200}"#, "not json"]),
    );
    let r = env.run(
        &[
            "dry-run",
            "--config",
            cfg_path.to_str().unwrap(),
            web.to_str().unwrap(),
        ],
        |_| {},
    );
    assert_eq!(r.code, Some(0), "{r:#?}");
    let events = parse_stdout(&r.stdout);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["message"], "hi");
    assert_eq!(events[0]["status"], json!(200));
    assert_eq!(events[0]["source"], "web");
    assert_eq!(events[1]["message"], "not json");
    assert_eq!(events[1]["parse_error"], "parse_json");
    assert_nothing_written(&env);
}

#[test]
fn dry_run_with_an_unknown_input_exits_2_listing_the_ids() {
    let env = Env::new();
    let cfg_path = env.write_config(&config(&env));
    let r = env.run(
        &[
            "dry-run",
            "--config",
            cfg_path.to_str().unwrap(),
            "--input",
            "nope",
            "/dev/null",
        ],
        |_| {},
    );
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(
        r.stderr.contains("nope") && r.stderr.contains("web") && r.stderr.contains("app"),
        "the error names the unknown id and lists the ids: {}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{r:#?}");
    assert_nothing_written(&env);
}
