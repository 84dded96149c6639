//! Behaviours 7 and 8: kill -9 loses nothing; SIGTERM/SIGINT stop promptly, exit 0 and make
//! the next run deliver every line exactly once (invariant 2).
mod common;

use common::*;
use std::fs;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Two files written continuously; `a.log` is also rotated by rename every ~400 ms
/// (glob `*.log*` matches the rotated names). Returns every line written.
fn spawn_writers(
    env: &Env,
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Vec<String>> {
    let a = env.log("a.log");
    let b = env.log("b.log");
    let logs = env.logs();
    std::thread::spawn(move || {
        let mut wa = LogWriter::open(&a, "writer-a");
        let mut wb = LogWriter::open(&b, "writer-b");
        let mut rotations = 0;
        let mut last = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            wa.write_n(7);
            wb.write_n(5);
            progress.store(wb.next, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
            if last.elapsed() > Duration::from_millis(400) {
                rotations += 1;
                fs::rename(&wa.path, logs.join(format!("a.log.{rotations}"))).unwrap();
                wa.write_n(3);
                wa.reopen();
                last = Instant::now();
            }
        }
        let mut all = wa.written;
        all.extend(wb.written);
        all
    })
}

fn writer_config(env: &Env) -> Config {
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("*.log*")];
    cfg
}

/// Waits until `writer-b` lines written after this call (`ahead` of its current count) are
/// in the output: the running agent has made real progress, not just re-delivered old lines.
fn wait_for_fresh_progress(agent: &Agent, out: &mut Output, progress: &AtomicUsize, ahead: usize) {
    let target = line("writer-b", progress.load(Ordering::SeqCst) + ahead);
    agent.wait(&format!("output to contain {target:?}"), || {
        out.refresh();
        out.count(&target) > 0
    });
}

/// The start-up warning after a run that did not stop cleanly.
const UNCLEAN: &str = "did not stop cleanly";

#[test]
fn kill9_while_appending_loses_no_line() {
    let env = Env::new();
    let cfg = writer_config(&env);
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let writer = spawn_writers(&env, stop.clone(), progress.clone());
    let mut out = env.output();
    let kills = 4;
    for k in 0..kills {
        let mut agent = env.spawn(&cfg);
        if k == 0 {
            // Killed right after it delivered something: probably before any checkpoint.
            agent.wait_for_lines(&mut out, 1);
            assert!(!agent.stderr().contains(UNCLEAN), "{}", agent.context());
        } else {
            agent.wait("the warning that the previous run was killed", || {
                agent.stderr().contains(UNCLEAN)
            });
            // Killed after real progress, and after at least one periodic checkpoint.
            wait_for_fresh_progress(&agent, &mut out, &progress, 100);
            let ck = checkpoint_file(&env.ckpt());
            let before = fs::metadata(&ck).and_then(|m| m.modified()).ok();
            agent.wait("a periodic checkpoint in this run", || {
                fs::metadata(&ck).and_then(|m| m.modified()).ok() != before
            });
        }
        agent.kill9();
    }
    let mut agent = env.spawn(&cfg);
    wait_for_fresh_progress(&agent, &mut out, &progress, 50);
    assert!(agent.stderr().contains(UNCLEAN), "{}", agent.context());
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    agent.wait_for_messages_within(&mut out, &written, Duration::from_secs(30));
    agent.term_ok();
    out.refresh();
    // A kill can tear the last output line; the next start ends it with a newline.
    assert!(
        out.bad.len() <= kills,
        "more torn output lines ({}) than kills: {:?}",
        out.bad.len(),
        &out.bad[..out.bad.len().min(5)]
    );
    let dups = assert_none_lost(&out, &written);
    eprintln!(
        "kill -9 x{kills}: {} lines written, {} duplicates (allowed), {} torn output lines",
        written.len(),
        dups,
        out.bad.len()
    );
}

#[test]
fn restart_after_sigterm_and_sigint_delivers_every_line_exactly_once() {
    let env = Env::new();
    let cfg = writer_config(&env);
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let writer = spawn_writers(&env, stop.clone(), progress.clone());
    let mut out = env.output();
    for (k, sig) in [libc::SIGTERM, libc::SIGINT, libc::SIGTERM, libc::SIGINT]
        .into_iter()
        .enumerate()
    {
        let mut agent = env.spawn(&cfg);
        wait_for_fresh_progress(&agent, &mut out, &progress, 60 + 20 * k);
        assert!(!agent.stderr().contains(UNCLEAN), "{}", agent.context());
        let status = agent.stop_with(sig, DEADLINE);
        assert_eq!(
            status.code(),
            Some(0),
            "exit status after signal {sig}: {status:?}\n{}",
            agent.context()
        );
        assert!(files_with_prefix(&env.ckpt(), ".tmp").is_empty());
    }
    let mut agent = env.spawn(&cfg);
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    agent.wait_for_messages_within(&mut out, &written, Duration::from_secs(30));
    agent.term_ok();
    out.refresh();
    out.assert_all_parsed();
    assert_exactly_once(&out, &written);
}

const BIG_LINE: usize = 100;

fn big_line(i: usize) -> String {
    let mut s = format!("big backlog line {i:08} ");
    while s.len() < BIG_LINE - 1 {
        s.push('.');
    }
    s
}

/// Checks the output is exactly lines 0..n of the big file, each once, and that the
/// checkpoint offset is the end of line n-1.
fn assert_exact_prefix(
    env: &Env,
    out: &mut Output,
    path: &std::path::Path,
    agent: &Agent,
) -> usize {
    out.refresh();
    out.assert_all_parsed();
    let e = checkpoint_for(&env.ckpt(), path).expect("checkpoint entry for big.log");
    assert_eq!(
        e.offset % BIG_LINE as u64,
        0,
        "checkpoint not at a line boundary"
    );
    let n = (e.offset / BIG_LINE as u64) as usize;
    assert_eq!(
        out.events.len(),
        n,
        "graceful stop must be exact: checkpoint covers {n} lines but output has {} events\n{}",
        out.events.len(),
        agent.context()
    );
    for (i, ev) in out.events.iter().enumerate() {
        if ev.message != big_line(i) {
            panic!(
                "event {i} is {:?}, expected {:?} (duplicate or gap)",
                ev.message,
                big_line(i)
            );
        }
    }
    n
}

#[test]
fn sigterm_with_big_backlog_exits_quickly_and_resumes_exactly() {
    let env = Env::new();
    let path = env.log("big.log");
    let total = 2_000_000; // 200 MB
    {
        let mut f = BufWriter::with_capacity(1 << 20, fs::File::create(&path).unwrap());
        for i in 0..total {
            f.write_all(big_line(i).as_bytes()).unwrap();
            f.write_all(b"\n").unwrap();
        }
        f.flush().unwrap();
    }
    assert_eq!(file_size(&path), (total * BIG_LINE) as u64);

    let mut out = env.output();
    let mut agent = env.spawn(&env.config());
    agent.wait_for_lines(&mut out, 1);
    let t0 = Instant::now();
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(5));
    let Some(status) = status else {
        let ctx = agent.context();
        agent.kill9();
        panic!("agent did not exit within 5 s of SIGTERM with a big backlog\n{ctx}");
    };
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", agent.context());
    eprintln!("exit after SIGTERM took {:?}", t0.elapsed());
    let n1 = assert_exact_prefix(&env, &mut out, &path, &agent);
    assert!(n1 > 0);

    // A second run goes on exactly where the first stopped.
    let mut agent = env.spawn(&env.config());
    agent.wait_for_lines(&mut out, n1 + 1000);
    let status = agent.stop_with(libc::SIGINT, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", agent.context());
    let n2 = assert_exact_prefix(&env, &mut out, &path, &agent);
    assert!(n2 > n1);
}

#[test]
fn partial_line_across_a_clean_restart_is_delivered_whole_once() {
    let env = Env::new();
    let path = env.log("app.log");
    let head = lines("complete", 0..10);
    write_lines(&path, &head);
    append_bytes(&path, b"split-across-restart-");
    let mut agent = env.spawn(&env.config());
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &head);
    agent.term_ok();
    append_bytes(&path, b"second-half\n");
    let tail = lines("complete", 10..20);
    append_lines(&path, &tail);
    let mut agent = env.spawn(&env.config());
    agent.wait_for_messages(&mut out, &tail);
    agent.term_ok();
    out.refresh();
    let whole = "split-across-restart-second-half".to_string();
    let expected: Vec<String> = head
        .iter()
        .chain(std::slice::from_ref(&whole))
        .chain(&tail)
        .cloned()
        .collect();
    assert_exactly_once(&out, &expected);
    let e = out.events.iter().find(|e| e.message == whole).unwrap();
    assert_eq!(e.offset, joined(&head).len() as u64, "offset after resume");
    let t0 = out.events.iter().find(|e| e.message == tail[0]).unwrap();
    assert_eq!(t0.offset, (joined(&head).len() + whole.len() + 1) as u64);
}
