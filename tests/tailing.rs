//! Behaviours 2 and 10: appended lines arrive promptly, partial lines wait for their newline,
//! over-long lines are truncated; plus the line format (CRLF, empty lines, bad UTF-8, NULs)
//! and start_at.
mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn appended_lines_reach_output_promptly_with_correct_offsets() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut w = LogWriter::open(&path, "app");
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let batch = w.write_n(10);
        let t0 = Instant::now();
        agent.wait_for_messages(&mut out, &batch);
        latencies.push(t0.elapsed());
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(
        median < Duration::from_secs(2),
        "appended lines are slow to arrive: latencies {latencies:?}"
    );
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &w.written);
    // Offsets are the byte offset of each line's start; path is the matched path.
    let mut offset = 0u64;
    let by_msg: std::collections::HashMap<&str, &Event> =
        out.events.iter().map(|e| (e.message.as_str(), e)).collect();
    for l in &w.written {
        let e = by_msg[l.as_str()];
        assert_eq!(e.offset, offset, "offset of {l:?}");
        assert_eq!(e.path, path.to_str().unwrap(), "path of {l:?}");
        offset += l.len() as u64 + 1;
    }
}

#[test]
fn partial_last_line_waits_for_its_newline_and_is_delivered_whole() {
    let env = Env::new();
    let a = env.log("a.log");
    let b = env.log("b.log");
    // A partial line present before the agent starts.
    append_bytes(&a, b"a first line 000000\nstartup-partial-");
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &["a first line 000000".to_string()]);

    let no_partial_yet = |out: &Output, prefix: &str| {
        let hits: Vec<&String> = out
            .counts()
            .keys()
            .filter(|m| m.starts_with(prefix))
            .collect();
        assert!(
            hits.is_empty(),
            "a partial line was delivered before its newline: {hits:?}\n{}",
            agent.context()
        );
    };

    // Lines written later to another file have arrived: the agent has looked at a.log since.
    let b1 = lines("file-b", 0..5);
    append_lines(&b, &b1);
    agent.wait_for_messages(&mut out, &b1);
    no_partial_yet(&out, "startup-partial");

    // Complete it: delivered whole.
    append_bytes(&a, b"completed\n");
    agent.wait_for_messages(&mut out, &["startup-partial-completed".to_string()]);

    // A partial line written while running, in two pieces.
    append_bytes(&a, b"running-partial-");
    let b2 = lines("file-b", 5..10);
    append_lines(&b, &b2);
    agent.wait_for_messages(&mut out, &b2);
    append_bytes(&a, b"more-");
    let b3 = lines("file-b", 10..15);
    append_lines(&b, &b3);
    agent.wait_for_messages(&mut out, &b3);
    out.refresh();
    no_partial_yet(&out, "running-partial");
    append_bytes(&a, b"done\na after 000001\n");
    agent.wait_for_messages(
        &mut out,
        &[
            "running-partial-more-done".to_string(),
            "a after 000001".to_string(),
        ],
    );

    agent.term_ok();
    out.refresh();
    let mut expected = vec![
        "a first line 000000".to_string(),
        "startup-partial-completed".to_string(),
        "running-partial-more-done".to_string(),
        "a after 000001".to_string(),
    ];
    expected.extend(b1.into_iter().chain(b2).chain(b3));
    assert_exactly_once(&out, &expected);
    // The completed line carries the offset where it started.
    let e = out
        .events
        .iter()
        .find(|e| e.message == "startup-partial-completed")
        .unwrap();
    assert_eq!(e.offset, "a first line 000000\n".len() as u64);
}

#[test]
fn line_format_crlf_empty_lines_invalid_utf8_nul_holes_and_escaping() {
    let env = Env::new();
    let path = env.log("fmt.log");
    let mut content = Vec::new();
    content.extend_from_slice(b"crlf line\r\n");
    content.extend_from_slice(b"before empty\n");
    content.extend_from_slice(b"\n");
    content.extend_from_slice(b"two cr\r\r\n");
    content.extend_from_slice(b"bad \xff\xfe utf8\n");
    content.extend_from_slice(b"\0\0\0\0nul hole\n");
    content.extend_from_slice(b"quote \" back \\ tab \t ctl \x01 uni \xc3\xa9\n");
    content.extend_from_slice(b"last line\n");
    std::fs::write(&path, &content).unwrap();
    let expected: Vec<String> = [
        "crlf line",
        "before empty",
        "",
        "two cr\r",
        "bad \u{fffd}\u{fffd} utf8",
        "nul hole",
        "quote \" back \\ tab \t ctl \u{1} uni \u{e9}",
        "last line",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &expected);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &expected);
    let crlf = out
        .events
        .iter()
        .find(|e| e.message == "last line")
        .unwrap();
    assert_eq!(
        crlf.offset,
        content.len() as u64 - "last line\n".len() as u64
    );
}

#[test]
fn text_format_writes_raw_lines() {
    let env = Env::new();
    let ls = lines("text-format", 0..50);
    write_lines(&env.log("app.log"), &ls);
    let mut cfg = env.config();
    cfg.output_format = "text".into();
    let mut agent = env.spawn(&cfg);
    let mut out = Output::text(&env.out());
    agent.wait_for_messages(&mut out, &ls);
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &ls);
    assert_eq!(std::fs::read(env.out()).unwrap(), joined(&ls));
}

#[test]
fn start_at_end_skips_existing_content_but_new_files_start_at_zero() {
    let env = Env::new();
    let old = lines("old-before-start", 0..50);
    write_lines(&env.log("a.log"), &old);
    let mut cfg = env.config();
    cfg.input().start_at = "end".into();
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    // The startup scan is over once the agent holds a.log open; only then is b.log "created
    // while running".
    let a_path = env.log("a.log").to_str().unwrap().to_string();
    agent.wait("agent opens a.log (startup scan done)", || {
        agent.fd_targets().contains(&a_path)
    });
    // A file created while running is read from its start...
    let b = lines("new-file-b", 0..20);
    write_lines(&env.log("b.log"), &b);
    agent.wait_for_messages(&mut out, &b);
    // ...and the existing file is tailed from its end.
    let a_new = lines("appended-a", 0..20);
    append_lines(&env.log("a.log"), &a_new);
    agent.wait_for_messages(&mut out, &a_new);
    agent.term_ok();
    out.refresh();
    let expected: Vec<String> = b.iter().chain(&a_new).cloned().collect();
    assert_exactly_once(&out, &expected);
}

fn padded(prefix: &str, fill: char, len: usize) -> String {
    let mut s = prefix.to_string();
    while s.len() < len {
        s.push(fill);
    }
    s
}

#[test]
fn over_long_lines_are_truncated_to_max_line_bytes_and_following_lines_intact() {
    let env = Env::new();
    let path = env.log("long.log");
    let max = 1024;
    let long = padded("long-10k ", 'x', 10 * 1024);
    let exact = padded("exact-max ", 'y', max);
    let plus1 = padded("max-plus-1 ", 'z', max + 1);
    let mut content = String::new();
    content += "before 000000\n";
    content += &format!("{long}\n");
    content += "after-long 000001\n";
    content += &format!("{exact}\n");
    content += "after-exact 000002\n";
    content += &format!("{plus1}\n");
    content += "after-plus1 000003\n";
    std::fs::write(&path, &content).unwrap();

    let mut cfg = env.config();
    cfg.input().max_line_bytes = Some("1KiB".into());
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let mut expected = vec![
        "before 000000".to_string(),
        long[..max].to_string(),
        "after-long 000001".to_string(),
        exact.clone(),
        "after-exact 000002".to_string(),
        plus1[..max].to_string(),
        "after-plus1 000003".to_string(),
    ];
    agent.wait_for_messages(&mut out, &expected);

    // A long line arriving in pieces while the agent reads.
    let chunked = padded("chunked-long ", 'w', 6000);
    let chunked_at = file_size(&path);
    for piece in chunked.as_bytes().chunks(1500) {
        append_bytes(&path, piece);
        std::thread::sleep(Duration::from_millis(100));
    }
    append_bytes(&path, b"\nafter-chunked 000004\n");
    expected.push(chunked[..max].to_string());
    expected.push("after-chunked 000004".to_string());
    agent.wait_for_messages(&mut out, &expected);
    agent.wait_for_stderr("truncated");
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &expected);

    let off = |m: &str| out.events.iter().find(|e| e.message == m).unwrap().offset;
    assert_eq!(
        off("after-long 000001"),
        content.find("after-long").unwrap() as u64
    );
    assert_eq!(
        off("after-plus1 000003"),
        content.find("after-plus1").unwrap() as u64
    );
    assert_eq!(off(&chunked[..max]), chunked_at);
    assert_eq!(
        off("after-chunked 000004"),
        chunked_at + chunked.len() as u64 + 1
    );
}

fn open_log_fds(agent: &Agent, logs: &str) -> usize {
    agent
        .fd_targets()
        .iter()
        .filter(|t| t.starts_with(logs))
        .count()
}

#[test]
fn inactive_file_is_closed_and_reopened_at_its_offset() {
    let env = Env::new();
    let path = env.log("quiet.log");
    let path_s = path.to_str().unwrap().to_string();
    let first = lines("before-close", 0..30);
    write_lines(&path, &first);
    let mut cfg = env.config();
    // Rotated names must match too: a closed file renamed out of the globs cannot be found.
    cfg.input().paths = vec![env.glob("quiet.log*")];
    cfg.input().extra.push("close_inactive: 500ms".into());
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &first);
    agent.wait("the quiet file to be closed (close_inactive 500ms)", || {
        !agent.fd_targets().contains(&path_s)
    });
    let second = lines("after-reopen", 0..30);
    append_lines(&path, &second);
    agent.wait_for_messages(&mut out, &second);
    // Closed again, then rotated by rename while closed: both generations are read.
    agent.wait("the quiet file to be closed again", || {
        !agent.fd_targets().contains(&path_s)
    });
    append_lines(&path, &lines("after-reopen", 30..40));
    fs_rename(&path, &env.log("quiet.log.1"));
    let third = lines("new-generation", 0..10);
    write_lines(&path, &third);
    let expected: Vec<String> = first
        .iter()
        .chain(&second)
        .chain(&lines("after-reopen", 30..40))
        .chain(&third)
        .cloned()
        .collect();
    agent.wait_for_messages(&mut out, &expected);
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &expected);
}

fn fs_rename(from: &std::path::Path, to: &std::path::Path) {
    std::fs::rename(from, to).unwrap();
}

#[test]
fn max_open_files_is_respected_and_every_file_is_still_read() {
    let env = Env::new();
    let files = 20;
    let limit = 5;
    let mut expected = Vec::new();
    for f in 0..files {
        let ls = lines(&format!("limited-{f:02}"), 0..50);
        write_lines(&env.log(&format!("f-{f:02}.log")), &ls);
        expected.extend(ls);
    }
    let mut cfg = env.config();
    cfg.input().extra.push(format!("max_open_files: {limit}"));
    cfg.input().extra.push("close_inactive: 1s".into());
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let logs = env.logs().to_str().unwrap().to_string() + "/";
    let mut max_seen = 0;
    agent.wait(
        "all lines of all files, with few files open at once",
        || {
            max_seen = max_seen.max(open_log_fds(&agent, &logs));
            out.refresh();
            expected.iter().all(|l| out.count(l) > 0)
        },
    );
    // A second round of appends to every file.
    for f in 0..files {
        let ls = lines(&format!("limited-{f:02}"), 50..60);
        append_lines(&env.log(&format!("f-{f:02}.log")), &ls);
        expected.extend(ls);
    }
    agent.wait("the appended lines too", || {
        max_seen = max_seen.max(open_log_fds(&agent, &logs));
        out.refresh();
        expected.iter().all(|l| out.count(l) > 0)
    });
    assert!(
        max_seen <= limit,
        "agent held {max_seen} log files open at once (max_open_files {limit})"
    );
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &expected);
}

#[test]
fn huge_line_without_newline_is_truncated_with_bounded_memory() {
    let env = Env::new();
    let path = env.log("huge.log");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"before-huge 000000\n").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..200 {
            f.write_all(&chunk).unwrap(); // 200 MB line, no newline yet
        }
    }
    let mut cfg = env.config();
    cfg.input().max_line_bytes = Some("1KiB".into());
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &["before-huge 000000".to_string()]);
    // End the line: to deliver what follows, the agent must read through all 200 MB of it.
    append_bytes(&path, b"\nafter-huge 000001\n");
    let expected = vec![
        "before-huge 000000".to_string(),
        "x".repeat(1024),
        "after-huge 000001".to_string(),
    ];
    agent.wait_for_messages_within(&mut out, &expected, Duration::from_secs(30));
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid)).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    eprintln!("peak RSS while reading a 200 MB line: {} MB", hwm_kb / 1024);
    assert!(
        hwm_kb < 100 * 1024,
        "peak RSS {} MB: a 200 MB line must not be buffered (max_line_bytes 1KiB)",
        hwm_kb / 1024
    );
    agent.wait_for_stderr("truncated");
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &expected);
}

#[test]
fn multibyte_utf8_split_across_read_chunks_is_intact() {
    let env = Env::new();
    let path = env.log("utf8.log");
    // Lines of varying length with 2-, 3- and 4-byte characters: over several MB, many of
    // them straddle the agent's read-chunk boundaries.
    let ls: Vec<String> = (0..30_000)
        .map(|i| format!("ü漢字🙂 line {i:06} {}", "é漢🙂".repeat(i % 37)))
        .collect();
    write_lines(&path, &ls);
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages_within(&mut out, &ls, Duration::from_secs(30));
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &ls);
}
