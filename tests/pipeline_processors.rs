//! Processors end to end, through the real binary: parse_json on a mixed file (parse_error,
//! numbers, the log's own message, the failure metric), a chain of the other processors, a
//! filter dropping most events (the checkpoint still reaches the end), `format: text`
//! output, and the config errors of processors and conditions (exit 2 naming the key).
mod common;

use common::*;
use serde_json::json;
use std::fs;

#[test]
fn parse_json_on_a_mixed_file_keeps_plain_lines_with_parse_error_and_numbers_as_numbers() {
    let env = Env::new();
    let path = env.log("app.log");
    let lines = [
        r#"{"message":"user logged in","level":"info","status":200,"latency":0.25,"user":{"id":42,"admin":false}}"#,
        "plain text line",
        r#"{"level":"warn","message":"disk at 91%","free_bytes":123456789012}"#,
        r#"{"broken json"#,
    ];
    write_lines(&path, &strings(&lines));
    let mut cfg = env.config();
    cfg.input().extra = strings(&["id: app", "processors: [{type: parse_json}]"]);
    let (mut agent, port) = spawn_with_api(&env, &cfg);
    let mut out = env.output();
    let msgs = strings(&[
        "user logged in",
        "plain text line",
        "disk at 91%",
        r#"{"broken json"#,
    ]);
    agent.wait_for_messages(&mut out, &msgs);
    let key = "logaggregator_processor_failures_total{input=\"app\",processor=\"0:parse_json\"}";
    let mut last = None;
    let ok = poll_until(DEADLINE, || {
        last = scrape_metrics(port).ok().and_then(|m| m.get(key).copied());
        last == Some(2.0)
    });
    assert!(ok, "{key} should be 2, is {last:?}\n{}", agent.context());
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &msgs);

    let e = event(&out, "user logged in");
    assert_eq!(e["level"], "info");
    assert_eq!(e["status"], json!(200), "numbers stay JSON numbers: {e}");
    assert!(e["status"].is_u64(), "{e}");
    assert_eq!(e["latency"], json!(0.25), "{e}");
    assert_eq!(e["user"], json!({"id": 42, "admin": false}), "nested: {e}");
    assert!(e.get("parse_error").is_none(), "{e}");
    assert_eq!(e["source"], "app");
    assert_eq!(e["offset"], 0);
    let e = event(&out, "disk at 91%");
    assert_eq!(e["free_bytes"], json!(123456789012u64), "{e}");
    for m in ["plain text line", r#"{"broken json"#] {
        let e = event(&out, m);
        assert_eq!(
            e["parse_error"], "parse_json",
            "a line parse_json cannot parse: {e}"
        );
    }
}

#[test]
fn a_chain_of_processors_parses_sets_renames_removes_redacts_and_times_events() {
    let env = Env::new();
    // Input 0 (no id: source file0): logfmt, timestamp from a field, rename, redact, set,
    // remove.
    write_lines(
        &env.log("app.log"),
        &strings(&[
            r#"ts=2026-12-01T10:00:00Z level=info msg="card 4111-1111-1111-1111 charged" user=bob attempt=2"#,
        ]),
    );
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("app.log")];
    cfg.input().extra = strings(&[
        "processors:",
        "  - {type: parse_logfmt}",
        "  - {type: timestamp, field: ts}",
        "  - {type: rename, fields: {msg: message, level: severity}}",
        r"  - {type: redact, pattern: '\d{4}-\d{4}-\d{4}-(\d{4})', replacement: 'XXXX-$1'}",
        "  - {type: set, fields: {env: prod, replicas: 3, http.route: /charge}}",
        "  - {type: remove, fields: [user]}",
    ]);
    // Input 1: an access log through parse_regex and a strftime timestamp; a line that does
    // not match goes on with parse_error.
    let mut access = Input::new(&[&env.glob("access.log")], &env.path("ckpt-access"));
    access.extra = strings(&[
        "id: access",
        "processors:",
        r#"  - {type: parse_regex, pattern: '^(?P<ip>\S+) \[(?P<when>[^\]]+)\] "(?P<method>[A-Z]+) (?P<route>\S+)" (?P<status>\d{3})$'}"#,
        "  - {type: timestamp, field: when, format: '%d/%b/%Y:%H:%M:%S %z'}",
        "  - {type: filter, drop: 'route ~ \"^/health\"'}",
    ]);
    write_lines(
        &env.log("access.log"),
        &strings(&[
            r#"10.0.0.7 [01/Dec/2026:11:00:00 +0100] "GET /api/v1/orders" 200"#,
            r#"10.0.0.8 [01/Dec/2026:11:00:01 +0100] "GET /healthz" 200"#,
            "garbage that is no access log line",
        ]),
    );
    // Input 2: parse_delimited; the last field takes the rest.
    let mut csv = Input::new(&[&env.glob("pipe.log")], &env.path("ckpt-pipe"));
    csv.extra = strings(&[
        "id: pipe",
        "processors: [{type: parse_delimited, delimiter: '|', fields: [a, b, rest]}, {type: remove, fields: [source]}]",
    ]);
    write_lines(
        &env.log("pipe.log"),
        &strings(&["x | y|z|w", "only-one-part"]),
    );
    cfg.inputs.push(access);
    cfg.inputs.push(csv);

    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let msgs = strings(&[
        "card XXXX-1111 charged",
        r#"10.0.0.7 [01/Dec/2026:11:00:00 +0100] "GET /api/v1/orders" 200"#,
        "garbage that is no access log line",
        "x | y|z|w",
        "only-one-part",
    ]);
    agent.wait_for_messages(&mut out, &msgs);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &msgs);

    let e = event(&out, "card XXXX-1111 charged");
    assert_eq!(e["source"], "file0", "default id by position: {e}");
    assert!(
        e["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-01T10:00:00"),
        "time from ts: {e}"
    );
    assert!(
        e.get("ts").is_none(),
        "the timestamp field is consumed: {e}"
    );
    assert_eq!(e["severity"], "info", "{e}");
    assert!(e.get("level").is_none() && e.get("msg").is_none(), "{e}");
    assert_eq!(e["attempt"], json!(2), "logfmt numbers are numbers: {e}");
    assert_eq!(e["env"], "prod");
    assert_eq!(e["replicas"], json!(3));
    assert_eq!(
        e["http"],
        json!({"route": "/charge"}),
        "dotted names nest: {e}"
    );
    assert!(e.get("user").is_none(), "{e}");
    assert!(e.get("parse_error").is_none(), "{e}");

    let e = event(
        &out,
        r#"10.0.0.7 [01/Dec/2026:11:00:00 +0100] "GET /api/v1/orders" 200"#,
    );
    assert_eq!(e["source"], "access");
    assert_eq!(e["ip"], "10.0.0.7");
    assert_eq!(e["method"], "GET");
    assert_eq!(e["route"], "/api/v1/orders");
    assert_eq!(e["status"], "200", "parse_regex captures are strings: {e}");
    assert!(
        e["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-01T10:00:00"),
        "11:00 +0100 is 10:00 UTC: {e}"
    );
    assert!(e.get("when").is_none(), "{e}");
    let e = event(&out, "garbage that is no access log line");
    // parse_regex failed; whether the timestamp of a missing field counts as a second
    // failure is not this test's business.
    assert!(
        e["parse_error"]
            .as_str()
            .is_some_and(|p| p.starts_with("parse_regex")),
        "{e}"
    );

    let e = event(&out, "x | y|z|w");
    assert_eq!(
        (&e["a"], &e["b"], &e["rest"]),
        (&json!("x"), &json!("y"), &json!("z|w")),
        "{e}"
    );
    assert!(e.get("source").is_none(), "remove works on metadata: {e}");
    let e = event(&out, "only-one-part");
    assert_eq!(e["parse_error"], "parse_delimited", "{e}");
}

#[test]
fn a_filter_dropping_most_events_still_lets_the_checkpoint_reach_the_end_of_the_file() {
    let env = Env::new();
    let path = env.log("app.log");
    let all: Vec<String> = (0..2000)
        .map(|i| {
            let kind = if i % 200 == 7 { "KEEP" } else { "noise" };
            format!("{kind} line {i:06}")
        })
        .collect();
    let kept: Vec<String> = all
        .iter()
        .filter(|l| l.starts_with("KEEP"))
        .cloned()
        .collect();
    assert_eq!(kept.len(), 10);
    // The file ends with 193 dropped lines.
    write_lines(&path, &all);
    let mut cfg = env.config();
    cfg.input()
        .extra
        .push(r#"processors: [{type: filter, keep: '"KEEP"'}]"#.into());
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &kept);
    let size = file_size(&path);
    agent.wait("the checkpoint to reach the end of the file", || {
        checkpoint_for(&env.ckpt(), &path).is_some_and(|e| e.offset == size)
    });
    agent.term_ok();
    let e = checkpoint_for(&env.ckpt(), &path).expect("checkpoint entry");
    assert_eq!(e.offset, size, "after SIGTERM the checkpoint is at the end");
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &kept);

    // A restart reads nothing again: only what is appended comes.
    let more = strings(&["noise after restart", "KEEP after restart", "noise tail"]);
    append_lines(&path, &more);
    let mut agent = env.spawn(&cfg);
    agent.wait_for_messages(&mut out, &more[1..2]);
    let size = file_size(&path);
    agent.wait("the checkpoint to reach the end of the file again", || {
        checkpoint_for(&env.ckpt(), &path).is_some_and(|e| e.offset == size)
    });
    agent.term_ok();
    out.refresh();
    let mut expected = kept.clone();
    expected.push(more[1].clone());
    assert_exactly_once(&out, &expected);
}

#[test]
fn text_output_writes_the_message_alone() {
    let env = Env::new();
    let path = env.log("app.log");
    write_lines(
        &path,
        &strings(&[
            r#"{"message":"json message","level":"info"}"#,
            "plain line",
            r#"{"message":"second json","n":1}"#,
        ]),
    );
    let mut cfg = env.config();
    cfg.output_format = "text".into();
    cfg.input()
        .extra
        .push("processors: [{type: parse_json}, {type: set, fields: {env: prod}}]".into());
    let mut agent = env.spawn(&cfg);
    let mut out = Output::text(&env.out());
    let msgs = strings(&["json message", "plain line", "second json"]);
    agent.wait_for_messages(&mut out, &msgs);
    agent.term_ok();
    out.refresh();
    assert_eq!(out.raw, msgs, "text output: the message alone, in order");
}

/// Runs the agent on `processors:` text (YAML flow list) and expects exit 2 with `needles`.
fn expect_config_error(processors: &str, needles: &[&str]) {
    let env = Env::new();
    let mut cfg = env.config();
    cfg.input().extra.push(format!("processors: {processors}"));
    let p = env.write_config(&cfg);
    let r = env.run(&["--config", p.to_str().unwrap()], |_| {});
    assert_eq!(r.code, Some(2), "expected exit 2 for {processors}: {r:#?}");
    for n in needles {
        assert!(
            r.stderr.contains(n),
            "stderr for {processors} should contain {n:?}:\n{}",
            r.stderr
        );
    }
    assert!(
        !env.out().exists() && !env.ckpt().join("checkpoints.json").exists(),
        "a config error starts nothing"
    );
    // dry-run checks the same.
    let r = env.run(
        &["dry-run", "--config", p.to_str().unwrap(), "/dev/null"],
        |_| {},
    );
    assert_eq!(r.code, Some(2), "dry-run with {processors}: {r:#?}");
    assert!(r.stderr.contains(needles[0]), "{}", r.stderr);
    let _ = fs::remove_dir_all(env.ckpt());
}

#[test]
fn a_bad_regex_in_parse_regex_exits_2_naming_the_key() {
    expect_config_error(
        "[{type: parse_json}, {type: parse_regex, pattern: '(?P<a>[a-z'}]",
        &["inputs.files[0].processors[1].pattern"],
    );
    expect_config_error(
        r"[{type: redact, pattern: '(unclosed'}]",
        &["inputs.files[0].processors[0].pattern"],
    );
}

#[test]
fn an_unknown_processor_type_exits_2_naming_it() {
    expect_config_error(
        "[{type: set, fields: {a: b}}, {type: parse_xml}]",
        &["inputs.files[0].processors[1]", "parse_xml"],
    );
}

#[test]
fn a_condition_that_does_not_parse_exits_2_with_the_key_and_the_position() {
    // `status >=` lacks its value: the error is at position 10 (after `>=`).
    expect_config_error(
        "[{type: parse_json}, {type: filter, drop: 'status >='}]",
        &["inputs.files[0].processors[1].drop", "position 10"],
    );
    expect_config_error(
        "[{type: filter, keep: 'level = info and (a = 1'}]",
        &["inputs.files[0].processors[0].keep", "position"],
    );
}

#[test]
fn a_bad_strftime_pattern_exits_2_naming_the_key() {
    expect_config_error(
        "[{type: timestamp, field: when, format: '%d/%b/%Y %Q'}]",
        &["inputs.files[0].processors[0].format"],
    );
}
