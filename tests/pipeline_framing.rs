//! Container framing end to end, through the real binary: CRI (partial records joined),
//! Docker json-file (records without their newline joined), `auto` per file, malformed
//! records delivered as plain lines, and the Kubernetes fields from pods and containers paths.
mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::path::Path;

/// The default config on `glob` with `format` (and more raw input keys).
fn cfg_format(env: &Env, glob: &str, format: &str, extra: &[&str]) -> Config {
    let mut cfg = env.config();
    cfg.input().paths = vec![glob.to_string()];
    cfg.input().extra.push(format!("format: {format}"));
    cfg.input()
        .extra
        .extend(extra.iter().map(|s| s.to_string()));
    cfg
}

fn ts(v: &Value) -> &str {
    v["timestamp"].as_str().unwrap_or_default()
}

/// Byte offset of line `i` of `lines` written back to back.
fn offset_of(lines: &[&str], i: usize) -> u64 {
    lines[..i].iter().map(|l| l.len() as u64 + 1).sum()
}

#[test]
fn cri_records_give_text_stream_and_runtime_time_and_partials_join_up_to_the_f_record() {
    let env = Env::new();
    let path = env.log("app.log");
    let lines = [
        "2026-12-01T10:00:00.123456789Z stdout F hello from cri",
        "2026-12-01T10:00:01.000000001Z stderr P part one, ",
        "2026-12-01T10:00:01.100000000Z stderr P part two, ",
        "2026-12-01T10:00:01.200000000Z stderr F part three",
        "this line is not a cri record",
        // RFC 3339 with nanoseconds drops trailing zeros: still a CRI record.
        "2026-12-01T10:00:02.5Z stdout F short fraction",
    ];
    write_lines(&path, &strings(&lines));
    let mut agent = env.spawn(&cfg_format(&env, &env.glob("*.log"), "cri", &[]));
    let mut out = env.output();
    let msgs = strings(&[
        "hello from cri",
        "part one, part two, part three",
        "this line is not a cri record",
        "short fraction",
    ]);
    agent.wait_for_messages(&mut out, &msgs);

    let e = event(&out, "hello from cri");
    assert_eq!(e["stream"], "stdout", "{e}");
    assert!(
        ts(&e).starts_with("2026-12-01T10:00:00.123456"),
        "the runtime's time: {e}"
    );
    assert_eq!(e["offset"], 0);
    let e = event(&out, "part one, part two, part three");
    assert_eq!(e["stream"], "stderr", "{e}");
    assert!(ts(&e).starts_with("2026-12-01T10:00:01"), "{e}");
    assert_eq!(
        e["offset"],
        offset_of(&lines, 1),
        "the first P record's offset"
    );
    let e = event(&out, "this line is not a cri record");
    assert!(
        e.get("stream").is_none(),
        "a malformed record is a plain line: {e}"
    );
    assert_eq!(e["offset"], offset_of(&lines, 4));
    let e = event(&out, "short fraction");
    assert!(ts(&e).starts_with("2026-12-01T10:00:02.5"), "{e}");
    assert_eq!(e["stream"], "stdout");

    // A partial record at the end of the file goes out as it is after the partial timeout
    // (1 s without multiline), never dropped.
    append_lines(
        &path,
        &strings(&["2026-12-01T10:00:03.000000000Z stdout P dangling partial"]),
    );
    agent.wait_for_messages(&mut out, &strings(&["dangling partial"]));
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    let mut all = msgs.clone();
    all.push("dangling partial".into());
    assert_exactly_once(&out, &all);
}

#[test]
fn docker_records_give_log_stream_and_time_and_join_records_without_their_newline() {
    let env = Env::new();
    let path = env.log("app.log");
    let lines = [
        r#"{"log":"hello from docker\n","stream":"stdout","time":"2026-12-01T10:00:00.123456789Z"}"#,
        r#"{"log":"first half, ","stream":"stderr","time":"2026-12-01T10:00:01.000000000Z"}"#,
        r#"{"log":"second half\n","stream":"stderr","time":"2026-12-01T10:00:01.000000100Z"}"#,
        r#"{"log":"with \"quotes\", caf\u00e9 and a\ttab\n","stream":"stdout","time":"2026-12-01T10:00:02Z"}"#,
        r#"{"log": "broken json"#,
        "plain text line",
    ];
    write_lines(&path, &strings(&lines));
    let mut agent = env.spawn(&cfg_format(&env, &env.glob("*.log"), "docker", &[]));
    let mut out = env.output();
    let msgs = strings(&[
        "hello from docker",
        "first half, second half",
        "with \"quotes\", café and a\ttab",
        r#"{"log": "broken json"#,
        "plain text line",
    ]);
    agent.wait_for_messages(&mut out, &msgs);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &msgs);

    let e = event(&out, "hello from docker");
    assert_eq!(e["stream"], "stdout", "{e}");
    assert!(ts(&e).starts_with("2026-12-01T10:00:00.123456"), "{e}");
    assert_eq!(e["offset"], 0);
    let e = event(&out, "first half, second half");
    assert_eq!(e["stream"], "stderr", "{e}");
    assert!(ts(&e).starts_with("2026-12-01T10:00:01"), "{e}");
    assert_eq!(e["offset"], offset_of(&lines, 1));
    let e = event(&out, "with \"quotes\", café and a\ttab");
    assert!(ts(&e).starts_with("2026-12-01T10:00:02"), "{e}");
    for m in [r#"{"log": "broken json"#, "plain text line"] {
        let e = event(&out, m);
        assert!(e.get("stream").is_none(), "a plain line: {e}");
    }
}

#[test]
fn auto_tells_cri_docker_and_plain_files_apart_from_their_first_record() {
    let env = Env::new();
    let cri = [
        "2026-12-01T10:00:00.000000001Z stdout F cri one",
        "2026-12-01T10:00:00.000000002Z stderr P cri two ",
        "2026-12-01T10:00:00.000000003Z stderr F joined",
        r#"{"log":"docker-looking line in a cri file\n","stream":"stdout","time":"2026-12-01T10:00:00Z"}"#,
    ];
    let docker = [
        r#"{"log":"docker one\n","stream":"stdout","time":"2026-12-01T10:00:00.000000001Z"}"#,
        r#"{"log":"docker two ","stream":"stderr","time":"2026-12-01T10:00:00.000000002Z"}"#,
        r#"{"log":"joined\n","stream":"stderr","time":"2026-12-01T10:00:00.000000003Z"}"#,
        "2026-12-01T10:00:00.000000004Z stdout F cri-looking line in a docker file",
    ];
    let plain = [
        // An application's own JSON is not Docker's: the file is plain lines.
        r#"{"level":"info","msg":"app json line"}"#,
        "2026-12-01T10:00:00.000000001Z stdout F cri-looking line in a plain file",
        r#"{"log":"docker-looking line in a plain file\n","stream":"stdout","time":"2026-12-01T10:00:00Z"}"#,
    ];
    write_lines(&env.log("cri.log"), &strings(&cri));
    write_lines(&env.log("docker.log"), &strings(&docker));
    write_lines(&env.log("plain.log"), &strings(&plain));
    let mut agent = env.spawn(&cfg_format(&env, &env.glob("*.log"), "auto", &[]));
    let mut out = env.output();
    let mut msgs = strings(&[
        "cri one",
        "cri two joined",
        cri[3],
        "docker one",
        "docker two joined",
        docker[3],
    ]);
    msgs.extend(strings(&plain));
    agent.wait_for_messages(&mut out, &msgs);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &msgs);
    for (m, stream) in [
        ("cri one", "stdout"),
        ("cri two joined", "stderr"),
        ("docker one", "stdout"),
        ("docker two joined", "stderr"),
    ] {
        let e = event(&out, m);
        assert_eq!(e["stream"], stream, "{e}");
        assert!(ts(&e).starts_with("2026-12-01T10:00:00"), "{e}");
    }
    for m in plain {
        let e = event(&out, m);
        assert!(e.get("stream").is_none(), "plain file, plain line: {e}");
        assert!(
            e.get("level").is_none(),
            "no parsing without a processor: {e}"
        );
    }
}

#[test]
fn cri_records_then_multiline_join_a_java_trace_split_over_records() {
    let env = Env::new();
    let path = env.log("app.log");
    let t = "2026-12-01T10:00:00.000000001Z";
    let lines: Vec<String> = [
        "stdout F 10:00:00.001 INFO  started",
        "stderr F 10:00:00.002 ERROR request failed",
        "stderr F java.lang.IllegalStateException: boom",
        "stderr P \tat com.example.App.handle(Ap",
        "stderr F p.java:42)",
        "stderr F \tat com.example.App.main(App.java:10)",
        "stdout F 10:00:00.003 INFO  next",
    ]
    .iter()
    .map(|l| format!("{t} {l}"))
    .collect();
    write_lines(&path, &lines);
    let cfg = cfg_format(
        &env,
        &env.glob("*.log"),
        "cri",
        &[r"multiline: {start: '^\d{2}:\d{2}:\d{2}\.\d{3} ', timeout: 300ms}"],
    );
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let trace = [
        "10:00:00.002 ERROR request failed",
        "java.lang.IllegalStateException: boom",
        "\tat com.example.App.handle(App.java:42)",
        "\tat com.example.App.main(App.java:10)",
    ]
    .join("\n");
    let msgs = vec![
        "10:00:00.001 INFO  started".to_string(),
        trace.clone(),
        "10:00:00.003 INFO  next".to_string(),
    ];
    agent.wait_for_messages(&mut out, &msgs);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &msgs);
    let e = event(&out, &trace);
    assert_eq!(
        e["offset"],
        offset_of(&lines.iter().map(|s| s.as_str()).collect::<Vec<_>>(), 1)
    );
    assert_eq!(e["stream"], "stderr", "{e}");
}

/// `root/<rel>` with parent directories.
fn make(root: &Path, rel: &str, lines: &[String]) -> std::path::PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    write_lines(&p, lines);
    p
}

#[test]
fn kubernetes_fields_come_from_pods_and_containers_paths_also_through_symlinks() {
    let env = Env::new();
    let root = env.root();
    let uid = "0f3c2a9e-1b2c-4d5e-8f90-123456789abc";
    let cid = "4f1bd8a0c3e2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a49382";
    assert_eq!(cid.len(), 64);
    let pods_file = make(
        root,
        &format!("var/log/pods/prod-eu_web-7f9c6b_{uid}/nginx/0.log"),
        &strings(&["2026-12-01T10:00:00.000000001Z stdout F from the pods path"]),
    );
    // /var/log/containers/<pod>_<namespace>_<container>-<id>.log links to the pods file
    // (another pod here, so that each file is tailed by one input only).
    let target = make(
        root,
        "var/log/pods/staging_api-5d8f_11111111-2222-3333-4444-555555555555/app/3.log",
        &strings(&["2026-12-01T10:00:00.000000002Z stderr F through the containers symlink"]),
    );
    let link = root.join(format!("var/log/containers/api-5d8f_staging_app-{cid}.log"));
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    write_lines(&env.log("plain.log"), &strings(&["not a kubernetes path"]));

    let mut cfg = cfg_format(
        &env,
        &format!("{}/var/log/pods/prod-eu_*/*/*.log", root.display()),
        "cri",
        &["id: pods", "kubernetes: true"],
    );
    let mut containers = Input::new(
        &[&format!("{}/var/log/containers/*.log", root.display())],
        &env.path("ckpt-containers"),
    );
    containers.extra = strings(&["id: containers", "format: cri", "kubernetes: true"]);
    let mut plain = Input::new(&[&env.glob("*.log")], &env.path("ckpt-plain"));
    plain.extra = strings(&["id: plain", "kubernetes: true"]);
    cfg.inputs.push(containers);
    cfg.inputs.push(plain);

    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let msgs = strings(&[
        "from the pods path",
        "through the containers symlink",
        "not a kubernetes path",
    ]);
    agent.wait_for_messages(&mut out, &msgs);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &msgs);

    let e = event(&out, "from the pods path");
    assert_eq!(e["source"], "pods");
    assert_eq!(e["path"], pods_file.to_str().unwrap());
    assert_eq!(
        e["kubernetes"],
        serde_json::json!({
            "namespace": "prod-eu", "pod": "web-7f9c6b", "pod_uid": uid, "container": "nginx"
        }),
        "{e}"
    );
    let e = event(&out, "through the containers symlink");
    assert_eq!(e["source"], "containers");
    let k = &e["kubernetes"];
    assert_eq!(k["namespace"], "staging", "{e}");
    assert_eq!(k["pod"], "api-5d8f", "{e}");
    assert_eq!(k["container"], "app", "{e}");
    assert_eq!(e["stream"], "stderr");
    let e = event(&out, "not a kubernetes path");
    assert_eq!(e["source"], "plain");
    assert!(e.get("kubernetes").is_none(), "{e}");

    // JSON order: metadata, then the kubernetes object, then the message and other fields.
    for raw in &out.raw {
        if !raw.contains("\"kubernetes\":") {
            continue;
        }
        let at = |k: &str| {
            raw.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing in {raw}"))
        };
        let order = [
            at("timestamp"),
            at("host"),
            at("path"),
            at("offset"),
            at("source"),
            at("kubernetes"),
            at("message"),
        ];
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "field order timestamp, host, path, offset, source, kubernetes, message: {raw}"
        );
    }
}

/// A graceful restart while a CRI record of one stream is partial and records of the other
/// stream follow it: nothing is delivered twice, nothing lost (the other stream's record ends
/// the partial one, so the checkpoint never lies before records already delivered).
#[test]
fn sigterm_with_streams_interleaved_around_a_partial_record_delivers_each_record_once() {
    let env = Env::new();
    let path = env.log("app.log");
    let t = "2026-12-01T10:00:00.000000000Z";
    let first = [
        format!("{t} stdout F o1"),
        format!("{t} stdout P part-a "),
        format!("{t} stderr F e1"),
        format!("{t} stderr F e2"),
    ];
    write_lines(&path, &first);
    let cfg = cfg_format(&env, &env.glob("*.log"), "cri", &[]);
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &strings(&["o1", "e1", "e2"]));
    agent.term_ok();

    append_lines(&path, &[format!("{t} stdout F part-b")]);
    let mut agent = env.spawn(&cfg);
    let want = strings(&["o1", "part-a ", "e1", "e2", "part-b"]);
    agent.wait_for_messages(&mut out, &want);
    agent.term_ok();
    out.refresh();
    let mut got = out.messages();
    got.sort();
    let mut sorted = want.clone();
    sorted.sort();
    assert_eq!(got, sorted, "each record exactly once");
}
