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
    let crlf = out.events.iter().find(|e| e.message == "last line").unwrap();
    assert_eq!(crlf.offset, content.len() as u64 - "last line\n".len() as u64);
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
    assert_eq!(off("after-long 000001"), content.find("after-long").unwrap() as u64);
    assert_eq!(off("after-plus1 000003"), content.find("after-plus1").unwrap() as u64);
    assert_eq!(off(&chunked[..max]), chunked_at);
    assert_eq!(
        off("after-chunked 000004"),
        chunked_at + chunked.len() as u64 + 1
    );
}
