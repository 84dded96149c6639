//! Multiline joining end to end, through the real binary: joining and offsets, the timeout,
//! SIGTERM and kill -9 in the middle of an event, rotation by rename and copytruncate in the
//! middle of an event, max_lines / max_bytes cuts (warning and metric), the java, python and
//! go presets, and a pending event keeping its tailer awake.
mod common;

use common::*;
use std::collections::HashMap;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A line that begins an event (matches `START`), and its continuation lines.
fn ev(tag: &str, k: usize, conts: usize) -> Vec<String> {
    let mut v = vec![format!("2026-12-01 10:00:00 {tag} event {k:05} head")];
    for j in 0..conts {
        v.push(format!("    {tag} event {k:05} cont {j}"));
    }
    v
}

/// The message of a joined event.
fn msg(lines: &[String]) -> String {
    lines.join("\n")
}

/// The start pattern of these tests (a date at the start of the line).
const START: &str = r"'^\d{4}-\d{2}-\d{2} '";

/// The default test config on `app.log` with `multiline: {start: START, timeout}`.
fn cfg_with_timeout(env: &Env, timeout: &str) -> Config {
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("app.log")];
    cfg.input()
        .extra
        .push(format!("multiline: {{start: {START}, timeout: {timeout}}}"));
    cfg
}

/// Byte offset of each event's first line when `events` are written back to back from 0.
fn offsets(events: &[Vec<String>]) -> Vec<u64> {
    let mut at = 0u64;
    events
        .iter()
        .map(|e| {
            let o = at;
            at += joined(e).len() as u64;
            o
        })
        .collect()
}

fn all_lines(events: &[Vec<String>]) -> Vec<String> {
    events.iter().flatten().cloned().collect()
}

fn event_with<'a>(out: &'a Output, message: &str) -> &'a Event {
    out.events
        .iter()
        .find(|e| e.message == message)
        .unwrap_or_else(|| panic!("no event with message {message:?}"))
}

#[test]
fn multiline_joins_with_newlines_at_the_first_lines_offset_and_times_out_after_quiet() {
    let env = Env::new();
    let path = env.log("app.log");
    let events = vec![ev("j", 0, 3), ev("j", 1, 0), ev("j", 2, 5), ev("j", 3, 2)];
    append_bytes(&path, &joined(&all_lines(&events)));
    let mut agent = env.spawn(&cfg_with_timeout(&env, "1500ms"));
    let mut out = env.output();
    // The last event is the last thing in the file: the timeout emits it.
    let msgs: Vec<String> = events.iter().map(|e| msg(e)).collect();
    agent.wait_for_messages(&mut out, &msgs);
    for (e, off) in events.iter().zip(offsets(&events)) {
        assert_eq!(
            event_with(&out, &msg(e)).offset,
            off,
            "an event's offset is its first line's: {:?}",
            e[0]
        );
    }

    // A pause shorter than the timeout does not cut an event; the event goes out only after
    // `timeout` of quiet after its last line.
    let next = ev("j", 4, 3);
    append_lines(&path, &next[..2]);
    std::thread::sleep(Duration::from_millis(300));
    let t_last = Instant::now();
    append_lines(&path, &next[2..]);
    agent.wait_for_messages(&mut out, &[msg(&next)]);
    let waited = t_last.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "the pending event was emitted {waited:?} after its last line, before the 1500ms timeout"
    );
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    let mut expected = msgs.clone();
    expected.push(msg(&next));
    assert_exactly_once(&out, &expected);
    assert_eq!(
        event_with(&out, &msg(&next)).offset,
        joined(&all_lines(&events)).len() as u64
    );
}

#[test]
fn sigterm_in_the_middle_of_an_event_keeps_it_whole_for_the_next_run() {
    let env = Env::new();
    let path = env.log("app.log");
    let mut events = vec![ev("t", 0, 2), ev("t", 1, 3), ev("t", 2, 1), ev("t", 3, 4)];
    // Event 3 is pending: its first 3 lines are written, 2 more come while stopped.
    let written: Vec<String> = events[..3]
        .iter()
        .flatten()
        .chain(&events[3][..3])
        .cloned()
        .collect();
    append_lines(&path, &written);
    let pending_at = offsets(&events)[3];

    // A timeout that cannot fire during this run.
    let mut agent = env.spawn(&cfg_with_timeout(&env, "60s"));
    let mut out = env.output();
    let done: Vec<String> = events[..3].iter().map(|e| msg(e)).collect();
    agent.wait_for_messages(&mut out, &done);
    agent.wait(
        "the checkpoint to hold at the pending event's first line",
        || checkpoint_for(&env.ckpt(), &path).is_some_and(|e| e.offset == pending_at),
    );
    agent.term_ok();
    let e = checkpoint_for(&env.ckpt(), &path).expect("checkpoint entry for app.log");
    assert_eq!(
        e.offset, pending_at,
        "after SIGTERM the checkpoint stays at the pending event's first line"
    );
    out.refresh();
    let seen = line_counts(&out);
    for l in &events[3] {
        assert!(
            !seen.contains_key(l),
            "a line of the pending event was emitted at shutdown: {l:?}\n{:#?}",
            out.messages()
        );
    }

    // Meanwhile the event goes on, and one more follows.
    append_lines(&path, &events[3][3..]);
    events.push(ev("t", 4, 1));
    append_lines(&path, &events[4]);
    let mut agent = env.spawn(&cfg_with_timeout(&env, "500ms"));
    let msgs: Vec<String> = events.iter().map(|e| msg(e)).collect();
    agent.wait_for_messages(&mut out, &msgs);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &msgs);
    assert_lines(&out, &all_lines(&events), false);
    assert_eq!(event_with(&out, &msgs[3]).offset, pending_at);
    let e = checkpoint_for(&env.ckpt(), &path).unwrap();
    assert_eq!(
        e.offset,
        file_size(&path),
        "everything delivered is checkpointed"
    );
}

/// The start-up warning after a run that did not stop cleanly (as in tests/shutdown.rs).
const UNCLEAN: &str = "did not stop cleanly";

/// A tiny deterministic generator for the kill moments (seed printed on failure).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn kill9_at_random_moments_while_multiline_events_are_written_loses_no_line() {
    let env = Env::new();
    let path = env.log("app.log");
    let cfg = cfg_with_timeout(&env, "300ms");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments seed: {seed}");
    let mut rng = Lcg(seed);
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, progress, path) = (stop.clone(), progress.clone(), path.clone());
        std::thread::spawn(move || {
            let mut w = LogWriter::open(&path, "unused");
            let mut events = Vec::new();
            let mut k = 0;
            while !stop.load(Ordering::SeqCst) {
                let e = ev("k", k, k % 6);
                // One write per line: a kill often falls in the middle of an event.
                for l in &e {
                    use std::io::Write;
                    w.file.write_all(format!("{l}\n").as_bytes()).unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
                events.push(e);
                k += 1;
                progress.store(k, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
            events
        })
    };
    let mut out = env.output();
    // Waits until an event written after this call is in the output (its head line).
    let fresh = |agent: &Agent, out: &mut Output, ahead: usize| {
        let head = ev("k", progress.load(Ordering::SeqCst) + ahead, 0).remove(0);
        agent.wait(&format!("output to contain {head:?}"), || {
            out.refresh();
            line_counts(out).contains_key(&head)
        });
    };
    let kills = 4;
    for k in 0..kills {
        let mut agent = env.spawn(&cfg);
        if k > 0 {
            agent.wait_for_stderr(UNCLEAN);
        }
        fresh(&agent, &mut out, 20);
        std::thread::sleep(Duration::from_millis(rng.next(400)));
        agent.kill9();
    }
    let mut agent = env.spawn(&cfg);
    agent.wait_for_stderr(UNCLEAN);
    let warning = log_records(&agent, "WARN", UNCLEAN);
    assert!(
        warning
            .iter()
            .any(|r| r.to_string().contains("delivered again")),
        "the restart warning names the possible re-delivery: {warning:?}"
    );
    fresh(&agent, &mut out, 20);
    stop.store(true, Ordering::SeqCst);
    let events = writer.join().unwrap();
    let expected = all_lines(&events);
    agent.wait_for(
        Duration::from_secs(30),
        "every written line in some event",
        || {
            out.refresh();
            let got = line_counts(&out);
            expected.iter().all(|l| got.contains_key(l))
        },
    );
    agent.term_ok();
    out.refresh();
    assert!(
        out.bad.len() <= kills,
        "more torn output lines ({}) than kills: {:?}",
        out.bad.len(),
        &out.bad[..out.bad.len().min(5)]
    );
    let dups = assert_lines(&out, &expected, true);
    // Never glued across events, never reordered: the lines of one output event are
    // consecutive lines of one written event.
    let mut at: HashMap<&str, (usize, usize)> = HashMap::new();
    for (k, e) in events.iter().enumerate() {
        for (j, l) in e.iter().enumerate() {
            at.insert(l.as_str(), (k, j));
        }
    }
    for e in &out.events {
        let pos: Vec<(usize, usize)> = e.message.split('\n').map(|l| at[l]).collect();
        for w in pos.windows(2) {
            assert!(
                w[1].0 == w[0].0 && w[1].1 == w[0].1 + 1,
                "an output event mixes or reorders written events: {:?}",
                e.message
            );
        }
    }
    eprintln!(
        "kill -9 x{kills}: {} events ({} lines) written, {} duplicate lines (allowed), {} torn",
        events.len(),
        expected.len(),
        dups,
        out.bad.len()
    );
}

#[test]
fn rename_rotation_mid_event_completes_it_from_the_rotated_file_never_glued_to_the_new_one() {
    let env = Env::new();
    let path = env.log("app.log");
    // The timeout cannot fire in this test: the rotated file's event goes out because the
    // file is drained and quiet (rotate_wait), the new file's events because a next one began.
    let mut cfg = cfg_with_timeout(&env, "60s");
    cfg.input().rotate_wait = "1s".into();
    let old_events = vec![ev("old", 0, 2), ev("old", 1, 1), ev("old", 2, 4)];
    let mut old = LogWriter::open(&path, "unused");
    {
        use std::io::Write;
        old.file
            .write_all(&joined(
                &old_events[..2]
                    .iter()
                    .flatten()
                    .chain(&old_events[2][..2])
                    .cloned()
                    .collect::<Vec<_>>(),
            ))
            .unwrap();
    }
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &[msg(&old_events[0]), msg(&old_events[1])]);
    agent.wait("the checkpoint to hold at the pending event", || {
        checkpoint_for(&env.ckpt(), &path).is_some_and(|e| e.offset == offsets(&old_events)[2])
    });

    fs::rename(&path, env.log("app.log.1")).unwrap();
    let t_rotated = Instant::now();
    append_lines(&env.log("app.log.1"), &old_events[2][2..3]); // after the rename
    // The new file begins with lines that would continue an event: they must not join the
    // rotated file's event.
    let orphan = vec![
        "    orphan continuation 0".to_string(),
        "    orphan continuation 1".to_string(),
    ];
    let new_events = [ev("new", 0, 2), ev("new", 1, 1)];
    append_lines(&path, &orphan);
    append_lines(&env.log("app.log.1"), &old_events[2][3..]); // old file again
    append_lines(&path, &new_events[0]);
    append_lines(&path, &new_events[1]); // pending at the end (60s timeout)

    agent.wait_for_messages(&mut out, &[msg(&old_events[2])]);
    let took = t_rotated.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "the rotated file's event took {took:?}: not emitted when drained and quiet"
    );
    agent.wait_for_messages(&mut out, &[msg(&orphan), msg(&new_events[0])]);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    let mut expected: Vec<String> = old_events.iter().map(|e| msg(e)).collect();
    expected.push(msg(&orphan));
    expected.push(msg(&new_events[0]));
    assert_exactly_once(&out, &expected);
    assert_eq!(
        event_with(&out, &msg(&orphan)).offset,
        0,
        "the new file from 0"
    );
    assert_eq!(
        event_with(&out, &msg(&old_events[2])).offset,
        offsets(&old_events)[2]
    );
}

#[test]
fn copytruncate_mid_event_emits_the_old_generations_event_and_the_new_starts_fresh() {
    let env = Env::new();
    let path = env.log("app.log");
    let cfg = cfg_with_timeout(&env, "60s");
    let old_events = vec![ev("gen0", 0, 1), ev("gen0", 1, 3), ev("gen0", 2, 2)];
    let mut w = LogWriter::open(&path, "unused");
    {
        use std::io::Write;
        w.file.write_all(&joined(&all_lines(&old_events))).unwrap();
    }
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &[msg(&old_events[0]), msg(&old_events[1])]);
    agent.wait("the checkpoint to hold at the pending event", || {
        checkpoint_for(&env.ckpt(), &path).is_some_and(|e| e.offset == offsets(&old_events)[2])
    });

    copytruncate(&path, &env.log("app.log.1")); // the copy is not matched by app.log
    let t_truncated = Instant::now();
    let orphan = vec!["    fresh generation continuation".to_string()];
    let new_events = [ev("gen1", 0, 1), ev("gen1", 1, 0)];
    {
        use std::io::Write;
        let lines: Vec<String> = orphan
            .iter()
            .chain(new_events.iter().flatten())
            .cloned()
            .collect();
        w.file.write_all(&joined(&lines)).unwrap();
    }
    agent.wait_for_messages(&mut out, &[msg(&old_events[2])]);
    let took = t_truncated.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "the old generation's event took {took:?}: not emitted at the truncation"
    );
    agent.wait_for_messages(&mut out, &[msg(&orphan), msg(&new_events[0])]);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    let mut expected: Vec<String> = old_events.iter().map(|e| msg(e)).collect();
    expected.push(msg(&orphan));
    expected.push(msg(&new_events[0]));
    assert_exactly_once(&out, &expected);
    assert_eq!(event_with(&out, &msg(&orphan)).offset, 0);
    assert_eq!(
        event_with(&out, &msg(&new_events[0])).offset,
        joined(&orphan).len() as u64
    );
}

#[test]
fn max_lines_and_max_bytes_cut_events_warn_once_per_file_and_are_counted() {
    let env = Env::new();
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("lines-*.log")];
    cfg.input().extra = vec![
        "id: lines".into(),
        format!("multiline: {{start: {START}, timeout: 300ms, max_lines: 5}}"),
    ];
    let mut bytes = Input::new(&[&env.glob("bytes-*.log")], &env.path("ckpt-bytes"));
    bytes.extra = vec![
        "id: bytes".into(),
        format!("multiline: {{start: {START}, timeout: 300ms, max_bytes: 1000}}"),
    ];
    cfg.inputs.push(bytes);

    // Per lines-file: two events of 8 lines (each cut once: 5 + 3), one of 3 between.
    let mut line_events: HashMap<String, Vec<Vec<String>>> = HashMap::new();
    for f in ["a", "b"] {
        let tag = format!("lines-{f}");
        let events = vec![
            ev(&tag, 0, 7),
            ev(&tag, 1, 2),
            ev(&tag, 2, 7),
            ev(&tag, 3, 0),
        ];
        write_lines(&env.log(&format!("{tag}.log")), &all_lines(&events));
        line_events.insert(f.to_string(), events);
    }
    // The bytes-file: two records of 15 lines of 99 bytes (1499 bytes joined, one cut each
    // at 1000), one small record between, one after.
    let big = |k: usize| -> Vec<String> {
        let mut v = ev("bytes", k, 14);
        for l in &mut v {
            while l.len() < 99 {
                l.push('.');
            }
        }
        v
    };
    let byte_events = vec![big(0), ev("bytes", 1, 1), big(2), ev("bytes", 3, 0)];
    let bytes_path = env.log("bytes-a.log");
    write_lines(&bytes_path, &all_lines(&byte_events));

    let (mut agent, port) = spawn_with_api(&env, &cfg);
    let cut_lines = "logaggregator_multiline_cut_total{input=\"lines\"}";
    let cut_bytes = "logaggregator_multiline_cut_total{input=\"bytes\"}";
    let mut last = HashMap::new();
    let ok = poll_until(DEADLINE, || {
        last = scrape_metrics(port).unwrap_or_default();
        last.get(cut_lines) == Some(&4.0) && last.get(cut_bytes) == Some(&2.0)
    });
    assert!(
        ok,
        "expected {cut_lines} 4 and {cut_bytes} 2; last scrape: {:?}\n{}",
        last.iter()
            .filter(|(k, _)| k.contains("multiline"))
            .collect::<Vec<_>>(),
        agent.context()
    );
    let mut out = env.output();
    // Each file's last record is a single line, emitted last (at the timeout): once it is
    // out, everything before it in that file is.
    let lasts: Vec<String> = line_events
        .values()
        .map(|e| e[3][0].clone())
        .chain([byte_events[3][0].clone()])
        .collect();
    agent.wait_for_messages(&mut out, &lasts);
    // Scrape once more after a moment: the counts do not grow further.
    assert_eq!(scrape_metrics(port).unwrap().get(cut_lines), Some(&4.0));
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();

    // max_lines: each 8-line event is delivered as its first 5 lines, then the other 3.
    for events in line_events.values() {
        for e in [&events[0], &events[2]] {
            let (head, tail) = e.split_at(5);
            for part in [head, tail] {
                assert_eq!(
                    out.count(&msg(part)),
                    1,
                    "max_lines 5: expected the event {:?} cut into 5 + 3 lines; events: {:#?}",
                    e[0],
                    out.messages()
                );
            }
        }
        assert_eq!(out.count(&msg(&events[1])), 1);
        assert_eq!(out.count(&msg(&events[3])), 1);
    }
    // max_bytes: an event is cut at the line where it reaches 1000 bytes (the line that
    // reaches it may end in it or begin the next one: at most one 99-byte line over), and no
    // byte is lost or reordered.
    let bytes_events: Vec<&Event> = out
        .events
        .iter()
        .filter(|e| e.path == bytes_path.to_str().unwrap())
        .collect();
    for e in &bytes_events {
        assert!(
            e.message.len() <= 1000 + 100,
            "max_bytes 1000: an event of {} bytes: {:?}...",
            e.message.len(),
            &e.message[..80]
        );
    }
    let got: String = bytes_events
        .iter()
        .map(|e| e.message.replace('\n', ""))
        .collect();
    let want: String = all_lines(&byte_events).concat();
    assert_eq!(got, want, "max_bytes cuts must not lose or reorder bytes");
    assert_eq!(
        bytes_events.len(),
        6,
        "two 1499-byte records cut once each plus two small ones"
    );

    // One warning per file, however many cuts.
    for f in ["lines-a.log", "lines-b.log", "bytes-a.log"] {
        let p = env.log(f);
        let warns = log_records(&agent, "WARN", p.to_str().unwrap());
        assert_eq!(
            warns.len(),
            1,
            "expected exactly one WARN naming {f} (two cuts in it): {warns:#?}\n{}",
            agent.context()
        );
    }
}

/// Writes `records` (each a list of lines) into app.log with `multiline: {preset}`, waits
/// until each arrives as one event, and checks nothing else arrived. With `blank_lines_free`,
/// blank lines separating records may be their own (empty) events or belong to a neighbour;
/// messages are compared without leading and trailing newlines, empty events are ignored.
fn preset_roundtrip(preset: &str, records: &[Vec<&str>], blank_lines_free: bool) {
    let env = Env::new();
    let path = env.log("app.log");
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("app.log")];
    cfg.input()
        .extra
        .push(format!("multiline: {{preset: {preset}, timeout: 300ms}}"));
    let lines: Vec<String> = records.iter().flatten().map(|s| s.to_string()).collect();
    // Half first, the rest once the first half is out: timeouts and reads split anywhere.
    let half = records.len() / 2;
    let first: Vec<String> = records[..half]
        .iter()
        .flatten()
        .map(|s| s.to_string())
        .collect();
    write_lines(&path, &first);
    let norm = |m: &str| -> String {
        if blank_lines_free {
            m.trim_matches('\n').to_string()
        } else {
            m.to_string()
        }
    };
    let expected: Vec<String> = records
        .iter()
        .map(|r| norm(&r.join("\n")))
        .filter(|m| !(blank_lines_free && m.trim().is_empty()))
        .collect();
    let got = |out: &Output| -> Vec<String> {
        out.events
            .iter()
            .map(|e| norm(&e.message))
            .filter(|m| !(blank_lines_free && m.trim().is_empty()))
            .collect()
    };
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let wait_all = |agent: &Agent, out: &mut Output, want: &[String]| {
        let ok = poll_until(DEADLINE, || {
            out.refresh();
            let g = got(out);
            want.iter().all(|m| g.contains(m))
        });
        if !ok {
            panic!(
                "{preset} preset: expected events (one per record) not all delivered\n\
                 expected: {want:#?}\ngot: {:#?}\n{}",
                got(out),
                agent.context()
            );
        }
    };
    let first_expected: Vec<String> = records[..half]
        .iter()
        .map(|r| norm(&r.join("\n")))
        .filter(|m| !(blank_lines_free && m.trim().is_empty()))
        .collect();
    wait_all(&agent, &mut out, &first_expected);
    append_lines(
        &path,
        &records[half..]
            .iter()
            .flatten()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    );
    wait_all(&agent, &mut out, &expected);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    let mut g = got(&out);
    let mut e = expected.clone();
    g.sort();
    e.sort();
    assert_eq!(
        g, e,
        "{preset} preset: every record exactly once, as one event each"
    );
    // Every line shipped (blank ones included, when they are their own events).
    let counts = line_counts(&out);
    for l in lines.iter().filter(|l| !l.trim().is_empty()) {
        assert!(counts.contains_key(l), "line lost: {l:?}");
    }
}

#[test]
fn java_preset_joins_stack_traces_back_to_back_and_between_single_lines() {
    let records: Vec<Vec<&str>> = vec![
        vec!["2026-12-01 10:00:00,001 INFO  [main] com.example.App - starting"],
        vec![
            "2026-12-01 10:00:00,002 ERROR [http-nio-8080-exec-1] com.example.Api - request failed",
            "java.lang.IllegalStateException: order 42 is closed",
            "\tat com.example.Orders.update(Orders.java:118)",
            "\tat com.example.Api.handle(Api.java:57)",
            "\tat java.base/java.lang.Thread.run(Thread.java:1583)",
            "Caused by: java.io.IOException: disk full",
            "\tat com.example.Store.write(Store.java:88)",
            "\tat com.example.Orders.update(Orders.java:110)",
            "\t... 2 more",
            "\tSuppressed: java.lang.RuntimeException: close failed",
            "\t\tat com.example.Store.close(Store.java:99)",
            "\t\t... 3 more",
        ],
        // Back to back with the previous trace.
        vec![
            "2026-12-01 10:00:00,003 ERROR [main] com.example.App - giving up",
            "java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"s\" is null",
            "\tat com.example.App.size(App.java:12)",
            "\tat com.example.App.main(App.java:5)",
        ],
        vec!["2026-12-01 10:00:01,000 INFO  [main] com.example.App - retrying"],
        vec!["2026-12-01 10:00:01,001 WARN  [main] com.example.App - slow disk"],
        vec![
            "2026-12-01 10:00:02,000 ERROR [worker-3] com.example.Jobs - job 7 failed",
            "com.example.JobException: timeout after 30s",
            "\tat com.example.Jobs.run(Jobs.java:77)",
            "Caused by: java.util.concurrent.TimeoutException",
            "\tat java.base/java.util.concurrent.FutureTask.get(FutureTask.java:204)",
            "\t... 1 more",
        ],
        vec!["2026-12-01 10:00:03,000 INFO  [main] com.example.App - stopped"],
    ];
    preset_roundtrip("java", &records, false);
}

#[test]
fn python_preset_joins_tracebacks_back_to_back_and_between_single_lines() {
    let records: Vec<Vec<&str>> = vec![
        vec!["2026-12-01 10:00:00,001 INFO app: starting"],
        vec![
            "Traceback (most recent call last):",
            "  File \"/app/main.py\", line 10, in <module>",
            "    main()",
            "  File \"/app/main.py\", line 6, in main",
            "    raise ValueError(\"bad value: 3\")",
            "ValueError: bad value: 3",
        ],
        vec!["2026-12-01 10:00:01,000 INFO app: next"],
        vec![
            "Traceback (most recent call last):",
            "  File \"/app/worker.py\", line 3, in <module>",
            "    import missing_module",
            "ModuleNotFoundError: No module named 'missing_module'",
        ],
        // Back to back with the previous traceback.
        vec![
            "Traceback (most recent call last):",
            "  File \"/usr/lib/python3.12/json/__init__.py\", line 346, in loads",
            "    return _default_decoder.decode(s)",
            "           ^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "  File \"/app/handlers.py\", line 21, in handle",
            "    payload[\"id\"]",
            "KeyError: 'id'",
        ],
        vec!["2026-12-01 10:00:02,000 WARNING app: retrying"],
        vec!["2026-12-01 10:00:03,000 INFO app: stopped"],
    ];
    preset_roundtrip("python", &records, false);
}

#[test]
fn go_preset_joins_panics_and_goroutine_dumps_until_the_next_record() {
    let records: Vec<Vec<&str>> = vec![
        vec!["2026/12/01 10:00:00 server listening on :8080"],
        vec![""],
        vec![
            "panic: runtime error: index out of range [5] with length 3",
            "",
            "goroutine 1 [running]:",
            "main.handler(...)",
            "\t/app/main.go:21",
            "main.main()",
            "\t/app/main.go:12 +0x1d",
            "",
            "goroutine 18 [chan receive]:",
            "main.worker(0xc000012345)",
            "\t/app/worker.go:40 +0x65",
            "created by main.main in goroutine 1",
            "\t/app/main.go:10 +0x3a",
        ],
        vec![""],
        vec!["2026/12/01 10:00:01 restarted"],
        vec![""],
        vec![
            "goroutine 7 [running]:",
            "runtime/debug.Stack()",
            "\t/usr/local/go/src/runtime/debug/stack.go:26 +0x5e",
            "main.dump()",
            "\t/app/debug.go:9 +0x13",
        ],
        vec![""],
        // Back to back with the previous block (a blank line between, as Go prints them).
        vec![
            "panic: close of closed channel",
            "",
            "goroutine 33 [running]:",
            "main.(*Pool).Close(0xc0000a4000)",
            "\t/app/pool.go:55 +0x2b",
        ],
        vec![""],
        vec!["2026/12/01 10:00:02 shutting down"],
    ];
    preset_roundtrip("go", &records, true);
}

#[test]
fn a_pending_event_keeps_its_tailer_awake_and_goes_out_at_the_timeout() {
    let env = Env::new();
    let path = env.log("app.log");
    let events = vec![ev("awake", 0, 2), ev("awake", 1, 2)];
    write_lines(&path, &all_lines(&events));
    let t_written = Instant::now();
    let mut agent = env.spawn(&cfg_with_timeout(&env, "4s"));
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &[msg(&events[0])]);
    let t_read = Instant::now(); // the pending event's lines were read by now
    // The file stays quiet: nothing but the pending event's deadline can emit it. A parked
    // tailer (after ~2 s of quiet) would only see it at the ~10 s safety poll.
    agent.wait_for_messages_within(&mut out, &[msg(&events[1])], Duration::from_secs(20));
    let since_write = t_written.elapsed();
    let since_read = t_read.elapsed();
    assert!(
        since_write >= Duration::from_millis(3900),
        "emitted {since_write:?} after its lines were written: before the 4s timeout"
    );
    assert!(
        since_read < Duration::from_secs(8),
        "emitted {since_read:?} after its lines were read: the tailer parked with a pending \
         event instead of emitting it at the 4s timeout"
    );
    agent.term_ok();
    out.refresh();
    assert_exactly_once(&out, &[msg(&events[0]), msg(&events[1])]);
}

#[test]
fn continue_pattern_joins_matching_lines_to_the_previous_event() {
    let env = Env::new();
    let path = env.log("app.log");
    let records = vec![
        strings(&["first record", "  indented joins", "\ttab joins too"]),
        strings(&["second record"]),
        strings(&["third record", "  last continuation"]),
    ];
    write_lines(&path, &all_lines(&records));
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("app.log")];
    cfg.input()
        .extra
        .push(r"multiline: {continue: '^\s', timeout: 300ms}".into());
    let mut agent = env.spawn(&cfg);
    let mut out = env.output();
    let msgs: Vec<String> = records.iter().map(|r| msg(r)).collect();
    agent.wait_for_messages(&mut out, &msgs);
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &msgs);
    for (r, off) in records.iter().zip(offsets(&records)) {
        assert_eq!(event_with(&out, &msg(r)).offset, off);
    }
}

#[test]
fn bad_multiline_options_exit_2_naming_the_key() {
    for (multiline, key) in [
        (
            "{start: '(unclosed', timeout: 1s}",
            "inputs.files[0].multiline.start",
        ),
        (
            "{continue: '[a-', timeout: 1s}",
            "inputs.files[0].multiline.continue",
        ),
        ("{preset: cobol}", "inputs.files[0].multiline"),
    ] {
        let env = Env::new();
        let mut cfg = env.config();
        cfg.input().extra.push(format!("multiline: {multiline}"));
        let p = env.write_config(&cfg);
        let r = env.run(&["--config", p.to_str().unwrap()], |_| {});
        assert_eq!(r.code, Some(2), "multiline: {multiline}: {r:#?}");
        assert!(
            r.stderr.contains(key),
            "multiline: {multiline}: stderr should name {key}:\n{}",
            r.stderr
        );
    }
}
