//! The agent's own file output rotated under it with the shipped logrotate stanza
//! (deploy/logrotate/logaggregator, its path pointed at the test's output file): by rename, as
//! shipped, while events are being written, and by copytruncate. Every event ends up exactly
//! once in the output and its rotated (and compressed) copies, none torn.
mod common;

use common::*;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const SHIPPED_PATH: &str = "/var/log/logaggregator/collected.log";

/// The shipped stanza with its path replaced by `out` (and `nocreate` by `copytruncate`).
fn logrotate_conf(env: &Env, out: &Path, copytruncate: bool) -> PathBuf {
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/logrotate/logaggregator"
    );
    let text = fs::read_to_string(shipped)
        .unwrap_or_else(|e| panic!("{shipped}: {e} (the logrotate stanza make install ships)"));
    assert!(
        text.contains(&format!("{SHIPPED_PATH} {{")),
        "{shipped} has no stanza for {SHIPPED_PATH}:\n{text}"
    );
    let mut conf = text.replace(SHIPPED_PATH, out.to_str().unwrap());
    if copytruncate {
        assert!(conf.contains("nocreate"), "{conf}");
        conf = conf.replace("nocreate", "copytruncate");
    }
    let p = env.path("logrotate.conf");
    fs::write(&p, conf).unwrap();
    p
}

fn have_logrotate() -> bool {
    Command::new("logrotate").arg("--version").output().is_ok()
}

/// Rotates `out` now: `logrotate -f` on the stanza, or, where logrotate is not installed, the
/// same by hand (rename, or copy and truncate, to `<out>.r<n>`) with a note on stderr.
fn rotate(env: &Env, conf: &Path, out: &Path, copytruncate: bool, n: usize) {
    if have_logrotate() {
        let r = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(env.path("logrotate.state"))
            .arg(conf)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            r.status.success() && !err.contains("error"),
            "logrotate -f {}: {:?}\n{err}",
            conf.display(),
            r.status
        );
        return;
    }
    eprintln!("logrotate is not installed (.ci/run installs it): rotating by hand");
    let to = PathBuf::from(format!("{}.r{n}", out.display()));
    if copytruncate {
        common::copytruncate(out, &to);
    } else {
        fs::rename(out, &to).unwrap();
    }
}

/// Every line of the output file and of its rotated copies (`.gz` decompressed), as events.
fn all_events(out: &Path) -> Vec<Event> {
    let dir = out.parent().unwrap();
    let name = out.file_name().unwrap().to_str().unwrap();
    let mut events = Vec::new();
    for f in files_with_prefix(dir, name) {
        let p = dir.join(&f);
        let bytes = if f.ends_with(".gz") {
            let r = Command::new("gzip").arg("-dc").arg(&p).output().unwrap();
            assert!(r.status.success(), "gzip -dc {}: {r:?}", p.display());
            r.stdout
        } else {
            fs::read(&p).unwrap_or_default()
        };
        assert!(
            !bytes.contains(&0),
            "{} has NUL bytes (a hole)",
            p.display()
        );
        let text = String::from_utf8_lossy(&bytes);
        for l in text.split_inclusive('\n') {
            // The agent may be mid-write on the live file; a rotated copy has whole lines.
            let Some(l) = l.strip_suffix('\n') else {
                assert_eq!(f, name, "{f} ends with a partial line: {l:?}");
                continue;
            };
            let e = parse_event(l).unwrap_or_else(|| panic!("{f}: not an event: {l:?}"));
            events.push(e);
        }
    }
    events
}

fn counts(out: &Path) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in all_events(out) {
        *m.entry(e.message).or_default() += 1;
    }
    m
}

fn assert_each_once(out: &Path, written: &[String]) {
    let got = counts(out);
    let missing: Vec<&String> = written.iter().filter(|l| !got.contains_key(*l)).collect();
    let dups: Vec<(&String, &usize)> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty() && dups.is_empty() && got.len() == written.len(),
        "{} written, {} distinct in the output files {:?}; missing {:?}; duplicated {:?}",
        written.len(),
        got.len(),
        files_with_prefix(out.parent().unwrap(), "events"),
        &missing[..missing.len().min(10)],
        &dups[..dups.len().min(10)]
    );
}

/// Whether the agent's output descriptor is `out` itself (not a renamed copy).
fn writes_to(agent: &Agent, out: &Path) -> bool {
    let out = out.to_str().unwrap();
    let fds = agent.fd_targets();
    fds.iter().any(|t| t == out) && !fds.iter().any(|t| t.starts_with(&format!("{out}.")))
}

#[test]
fn output_rotated_by_rename_with_the_shipped_stanza_loses_nothing() {
    let env = Env::new();
    let out = env.out();
    let conf = logrotate_conf(&env, &out, false);
    let mut agent = env.spawn(&env.config());
    let mut w = LogWriter::open(&env.log("app.log"), "renamed");
    for n in 0..3 {
        w.write_n(200);
        agent.wait("some events in the output", || {
            counts(&out).contains_key(&w.written[w.written.len() - 1])
        });
        // Rotated while the input keeps coming: events written before the agent notices land
        // at the end of the renamed file, the rest in the new one it creates.
        w.write_n(200);
        rotate(&env, &conf, &out, false, n);
        assert!(
            !out.exists() || !have_logrotate(),
            "nocreate: logrotate left {out:?}"
        );
        agent.wait("the agent writing to a new output file", || {
            w.write_n(5);
            writes_to(&agent, &out)
        });
    }
    w.write_n(100);
    let last = w.written[w.written.len() - 1].clone();
    agent.wait("the last line in the output", || {
        counts(&out).contains_key(&last)
    });
    agent.term_ok();
    assert_each_once(&out, &w.written);
    if have_logrotate() {
        let name = out.file_name().unwrap().to_str().unwrap();
        let files = files_with_prefix(out.parent().unwrap(), name);
        let want: Vec<String> = ["", ".1", ".2.gz", ".3.gz"]
            .iter()
            .map(|s| format!("{name}{s}"))
            .collect();
        assert_eq!(files, want, "delaycompress: the newest copy stays plain");
    }
}

/// copytruncate while the input is quiet (events written between logrotate's copy and its
/// truncate would be lost: that window is copytruncate's): the agent appends with O_APPEND,
/// so the next events go to the start of the truncated file, with no hole before them.
#[test]
fn output_rotated_by_copytruncate_loses_nothing_and_leaves_no_hole() {
    let env = Env::new();
    let out = env.out();
    let conf = logrotate_conf(&env, &out, true);
    let mut agent = env.spawn(&env.config());
    let mut w = LogWriter::open(&env.log("app.log"), "copied");
    for n in 0..3 {
        w.write_n(300);
        let last = w.written[w.written.len() - 1].clone();
        agent.wait("every line so far in the output", || {
            counts(&out).contains_key(&last)
        });
        let ino = inode(&out);
        rotate(&env, &conf, &out, true, n);
        assert_eq!(inode(&out), ino, "copytruncate keeps the file");
        assert_eq!(file_size(&out), 0, "copytruncate empties the file");
    }
    w.write_n(50);
    let last = w.written[w.written.len() - 1].clone();
    agent.wait("the last line in the output", || {
        counts(&out).contains_key(&last)
    });
    agent.term_ok();
    assert_each_once(&out, &w.written);
    let first = fs::read(&out).unwrap();
    assert!(
        first.starts_with(b"{\""),
        "an event at offset 0, no hole: {first:?}"
    );
}
