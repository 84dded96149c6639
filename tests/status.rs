//! `logaggregator status` as an operator reads it: before the first checkpoint, after many
//! rotations (inode and last-seen per row, finished generations folded into one line, `--json`
//! complete), a deleted file the agent still reads, compressed files; and the absolute path
//! events carry for a relative glob.
mod common;

use common::*;
use serde_json::Value;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One row of the status table.
#[derive(Debug, Clone)]
struct Row {
    path: String,
    inode: String,
    size: String,
    offset: String,
    lag: String,
    last_seen: String,
    state: String,
}

/// The table's rows (`PATH INODE SIZE OFFSET LAG LAST SEEN STATE`) in order, and its other
/// lines (`input`, `checkpoint`, the column header, `+ N gone generations ...`).
fn table(stdout: &str) -> (Vec<Row>, Vec<String>) {
    let (mut rows, mut other) = (Vec::new(), Vec::new());
    for l in stdout.lines() {
        let t: Vec<&str> = l.split_whitespace().collect();
        let is_row = l.starts_with("  /") && t.len() >= 7;
        if !is_row {
            other.push(l.to_string());
            continue;
        }
        // LAST SEEN is `-` or `<n><unit> ago`.
        let seen = if t[5] == "-" { 1 } else { 2 };
        rows.push(Row {
            path: t[0].into(),
            inode: t[1].into(),
            size: t[2].into(),
            offset: t[3].into(),
            lag: t[4].into(),
            last_seen: t[5..5 + seen].join(" "),
            state: t[5 + seen..].join(" "),
        });
    }
    (rows, other)
}

fn status(env: &Env, cfg_path: &Path, json: bool) -> RunResult {
    let mut args = vec!["status", "--config", cfg_path.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    let r = env.run(&args, |_| {});
    assert_eq!(r.code, Some(0), "status {args:?}: {r:#?}");
    r
}

fn status_json(env: &Env, cfg_path: &Path) -> Value {
    let r = status(env, cfg_path, true);
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {r:#?}"))
}

/// Spawns the agent; returns it and its config file (for `status --config`).
fn spawn(env: &Env, cfg: &Config, tweak: impl FnOnce(&mut Command)) -> (Agent, PathBuf) {
    let cfg_path = env.write_config(cfg);
    let mut cmd = Command::new(bin());
    cmd.arg("--config").arg(&cfg_path);
    tweak(&mut cmd);
    (env.spawn_cmd(cmd, cfg.output_path.clone()), cfg_path)
}

fn ino(p: &Path) -> u64 {
    fs::metadata(p).unwrap().ino()
}

fn is_ago(s: &str) -> bool {
    s.strip_suffix(" ago").is_some_and(|n| {
        n.len() > 1
            && n[..n.len() - 1].chars().all(|c| c.is_ascii_digit())
            && "smhd".contains(&n[n.len() - 1..])
    })
}

#[test]
fn before_the_first_checkpoint_status_says_not_written_yet() {
    let env = Env::new();
    let a = env.log("a.log");
    write_lines(&a, &lines("fresh", 0..3));
    let cfg_path = env.write_config(&env.config());

    let r = status(&env, &cfg_path, false);
    assert!(!r.stdout.contains("never ago"), "{}", r.stdout);
    let ckpt = checkpoint_file(&env.ckpt());
    assert!(
        r.stdout.contains(&format!(
            "  checkpoint {} (not written yet)",
            ckpt.display()
        )),
        "{}",
        r.stdout
    );
    let (rows, _) = table(&r.stdout);
    assert_eq!(rows.len(), 1, "{}", r.stdout);
    assert_eq!(rows[0].path, a.to_str().unwrap());
    assert_eq!(rows[0].inode, ino(&a).to_string(), "{rows:?}");
    assert_eq!(rows[0].size, file_size(&a).to_string(), "{rows:?}");
    assert_eq!(
        (rows[0].offset.as_str(), rows[0].last_seen.as_str()),
        ("0", "-")
    );
    assert_eq!(rows[0].state, "not checkpointed yet", "{rows:?}");

    let v = status_json(&env, &cfg_path);
    let input = &v["inputs"][0];
    assert_eq!(input["checkpoint_age_seconds"], Value::Null, "{v}");
    assert_eq!(input["files"][0]["inode"], ino(&a), "{v}");
    assert_eq!(input["files"][0]["last_seen"], Value::Null, "{v}");
    assert_eq!(input["files"][0]["folded"], false, "{v}");
}

/// Generations of `app.log` (glob: that name only) rotated by rename and deleted, each after
/// its lines were delivered: the table shows the live file with its inode and last-seen time,
/// and one line for the deleted generations; `--json` lists each of them.
#[test]
fn rotated_and_deleted_generations_are_told_apart_and_folded() {
    const GENERATIONS: usize = 6;
    let env = Env::new();
    let app = env.log("app.log");
    let mut cfg = env.config();
    cfg.input().paths = vec![app.to_str().unwrap().to_string()];
    let (mut agent, cfg_path) = spawn(&env, &cfg, |_| {});
    let mut out = env.output();
    // The test keeps every generation open, as a writer would: a deleted file's inode is not
    // freed, so the next app.log cannot reuse it and every generation keeps its own entry.
    let mut held: Vec<File> = Vec::new();
    let mut inodes = Vec::new();
    for g in 0..=GENERATIONS {
        let ls = lines(&format!("gen{g}"), 0..50);
        write_lines(&app, &ls);
        held.push(File::open(&app).unwrap());
        inodes.push(ino(&app));
        agent.wait_for_messages(&mut out, &ls);
        agent.wait("the generation's offset checkpointed", || {
            checkpoint_for(&env.ckpt(), &app).is_some_and(|e| e.offset == file_size(&app))
        });
        if g < GENERATIONS {
            let rotated = env.log("app.log.1");
            fs::rename(&app, &rotated).unwrap();
            fs::remove_file(&rotated).unwrap();
        }
    }
    agent.wait("the agent closed every deleted generation", || {
        !agent
            .fd_targets()
            .iter()
            .any(|t| t.starts_with(env.logs().to_str().unwrap()) && t.ends_with("(deleted)"))
    });
    agent.term_ok();
    let entries = checkpoint_entries(&env.ckpt());
    assert_eq!(entries.len(), GENERATIONS + 1, "{entries:?}");

    let r = status(&env, &cfg_path, false);
    let (rows, other) = table(&r.stdout);
    assert_eq!(
        rows.len(),
        1,
        "only the live file gets a row:\n{}",
        r.stdout
    );
    let live = &rows[0];
    assert_eq!(live.path, app.to_str().unwrap(), "{live:?}");
    assert_eq!(live.inode, inodes[GENERATIONS].to_string(), "{live:?}");
    assert_eq!((live.lag.as_str(), live.state.as_str()), ("0", "tracked"));
    assert!(
        is_ago(&live.last_seen),
        "LAST SEEN {:?}:\n{}",
        live.last_seen,
        r.stdout
    );
    let header = other.iter().find(|l| l.contains("PATH")).unwrap();
    for col in ["INODE", "SIZE", "OFFSET", "LAG", "LAST SEEN", "STATE"] {
        assert!(header.contains(col), "{header}");
    }
    let summary = format!(
        "  + {GENERATIONS} gone generations of {}, fully delivered (no longer on disk; last seen ",
        app.display()
    );
    assert!(
        other.iter().any(|l| l.starts_with(&summary)),
        "no {summary:?} line:\n{}",
        r.stdout
    );

    // --json: every generation, with inode, last_seen and whether the table folded it.
    let v = status_json(&env, &cfg_path);
    let files = v["inputs"][0]["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), GENERATIONS + 1, "{v}");
    assert_eq!(files[0]["inode"], inodes[GENERATIONS], "newest first: {v}");
    for e in &entries {
        let f = files
            .iter()
            .find(|f| f["inode"] == e.ino)
            .unwrap_or_else(|| panic!("inode {} missing: {v}", e.ino));
        assert_eq!(f["dev"], e.dev, "{f}");
        assert_eq!(f["offset"], e.offset, "{f}");
        assert_eq!(f["last_seen"], e.raw["last_seen"], "{f}");
        assert!(f["last_seen_age_seconds"].is_u64(), "{f}");
        let gone = e.ino != inodes[GENERATIONS];
        assert_eq!(f["folded"], gone, "{f}");
        assert_eq!(f["state"], if gone { "gone" } else { "tracked" }, "{f}");
    }
    drop(held);
}

/// A rotated file deleted while the agent still drains it (rotate_wait not over) is not
/// finished: it keeps its row, with the size the agent sees through its descriptor.
#[test]
fn a_deleted_file_the_agent_still_reads_keeps_its_row() {
    let env = Env::new();
    let app = env.log("app.log");
    let mut cfg = env.config();
    cfg.input().paths = vec![app.to_str().unwrap().to_string()];
    cfg.input().rotate_wait = "1h".into();
    let (mut agent, cfg_path) = spawn(&env, &cfg, |_| {});
    let mut out = env.output();
    let ls = lines("draining", 0..40);
    write_lines(&app, &ls);
    let (size, old_ino) = (file_size(&app), ino(&app));
    let held = File::open(&app).unwrap();
    agent.wait_for_messages(&mut out, &ls);
    let rotated = env.log("app.log.1");
    fs::rename(&app, &rotated).unwrap();
    fs::remove_file(&rotated).unwrap();
    agent.wait("the deleted file's offset checkpointed", || {
        checkpoint_entries(&env.ckpt())
            .iter()
            .any(|e| e.ino == old_ino && e.offset == size)
    });
    assert!(
        agent
            .fd_targets()
            .iter()
            .any(|t| t.ends_with("app.log.1 (deleted)")),
        "rotate_wait 1h: the agent should still hold the deleted file: {:?}",
        agent.fd_targets()
    );

    let r = status(&env, &cfg_path, false);
    assert!(
        r.stdout
            .contains(&format!("agent running, pid {})", agent.pid)),
        "{}",
        r.stdout
    );
    let (rows, other) = table(&r.stdout);
    let row = rows
        .iter()
        .find(|r| r.inode == old_ino.to_string())
        .unwrap_or_else(|| panic!("no row for inode {old_ino}:\n{}", r.stdout));
    assert_eq!(row.state, "gone, still open by the agent", "{}", r.stdout);
    assert_eq!(
        (row.size.clone(), row.lag.as_str()),
        (size.to_string(), "0")
    );
    assert!(
        !other.iter().any(|l| l.contains("gone generation")),
        "{}",
        r.stdout
    );
    let v = status_json(&env, &cfg_path);
    assert_eq!(v["inputs"][0]["agent_pid"], agent.pid, "{v}");
    agent.term_ok();
    drop(held);
}

/// A checkpoint whose entries say how large each file was when last seen (`size`): a gone file
/// last seen larger than its offset lost those bytes and keeps its row; nineteen delivered gone
/// generations (and one from a checkpoint without `size`) fold into one line.
#[test]
fn gone_files_last_seen_larger_than_their_offset_are_not_folded() {
    let env = Env::new();
    fs::create_dir_all(env.ckpt()).unwrap();
    let dev = fs::metadata(env.logs()).unwrap().dev();
    let app = env.log("app.log");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let entry = |ino: u64, offset: u64, size: Option<u64>, seen: u64| {
        let mut e = serde_json::json!({"dev": dev, "ino": ino, "fingerprint_len": 20,
            "fingerprint": "00000000000000aa", "offset": offset, "marker": "00000000000000bb",
            "path": app, "last_seen": seen});
        if let Some(s) = size {
            e["size"] = s.into();
        }
        e
    };
    // Inode numbers no file in logs/ has: all of these are gone.
    let mut files: Vec<Value> = (0..19)
        .map(|i| {
            entry(
                4_000_000_000 + i,
                535_920,
                Some(535_920),
                now - 3600 * (i + 2) - 100,
            )
        })
        .collect();
    files.push(entry(4_100_000_000, 1000, Some(1500), now - 610));
    files.push(entry(4_100_000_001, 700, None, now - 910));
    let doc = serde_json::json!({"version": 1, "running": false, "files": files});
    fs::write(checkpoint_file(&env.ckpt()), doc.to_string()).unwrap();
    let cfg_path = env.write_config(&env.config());

    let r = status(&env, &cfg_path, false);
    let (rows, other) = table(&r.stdout);
    assert_eq!(rows.len(), 1, "{}", r.stdout);
    assert_eq!(rows[0].inode, "4100000000", "{}", r.stdout);
    assert_eq!(rows[0].state, "gone, not fully delivered", "{}", r.stdout);
    assert_eq!(
        (rows[0].size.as_str(), rows[0].offset.as_str()),
        ("1500", "1000")
    );
    assert_eq!(rows[0].lag, "500", "{}", r.stdout);
    assert_eq!(rows[0].last_seen, "10m ago", "{}", r.stdout);
    // 19 with size == offset, and the one without a size (older agent: nothing says otherwise).
    let want = format!(
        "  + 20 gone generations of {}, fully delivered (no longer on disk; last seen 15m ago to 20h ago; --json lists each)",
        app.display()
    );
    assert!(other.contains(&want), "no {want:?}:\n{}", r.stdout);
    let v = status_json(&env, &cfg_path);
    let files = v["inputs"][0]["files"].as_array().unwrap();
    assert_eq!(files.len(), 21, "{v}");
    assert_eq!(
        files.iter().filter(|f| f["folded"] == true).count(),
        20,
        "{v}"
    );
}

/// A compressed file read to its end: its offset counts decompressed bytes, so it is compared
/// with its decompressed length, not taken for a file smaller than its offset.
#[test]
fn a_compressed_file_read_to_its_end_is_tracked_not_replaced() {
    let env = Env::new();
    let plain = env.log("app.log.1");
    let ls = lines("compressed", 0..2000);
    write_lines(&plain, &ls);
    let length = file_size(&plain);
    let st = Command::new("gzip").arg(&plain).status().expect("run gzip");
    assert!(st.success(), "gzip failed: {st:?}");
    let gz = env.log("app.log.1.gz");
    assert!(
        file_size(&gz) < length / 4,
        "gzip should shrink repetitive lines"
    );
    let mut cfg = env.config();
    cfg.input().paths = vec![env.glob("*.gz")];
    let (mut agent, cfg_path) = spawn(&env, &cfg, |_| {});
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ls);
    agent.wait("the archive checkpointed as read to its end", || {
        checkpoint_for(&env.ckpt(), &gz).is_some_and(|e| e.raw["gzip_length"] == length)
    });
    agent.term_ok();

    let r = status(&env, &cfg_path, false);
    let (rows, _) = table(&r.stdout);
    assert_eq!(rows.len(), 1, "{}", r.stdout);
    assert_eq!(rows[0].state, "tracked", "{}", r.stdout);
    assert_eq!(rows[0].size, length.to_string(), "{}", r.stdout);
    assert_eq!(rows[0].lag, "0", "{}", r.stdout);
}

/// A relative glob (with `.` and `..` in it) is made absolute against the agent's working
/// directory and normalized: events carry `/…/logs/app.log`, as the README says.
#[test]
fn a_relative_glob_gives_events_an_absolute_normalized_path() {
    let env = Env::new();
    let app = env.log("app.log");
    let ls = lines("relative", 0..5);
    write_lines(&app, &ls);
    let mut cfg = env.config();
    cfg.input().paths = vec!["./logs/../logs/./*.log".into()];
    // getcwd() names the directory without symlinks, so the expected path does too.
    let root: PathBuf = fs::canonicalize(env.root()).unwrap();
    let (mut agent, _) = spawn(&env, &cfg, |c| {
        c.current_dir(&root);
    });
    let mut out = env.output();
    agent.wait_for_messages(&mut out, &ls);
    let want = root.join("logs").join("app.log");
    for e in &out.events {
        assert_eq!(e.path, want.to_str().unwrap(), "{}", e.raw);
    }
    agent.term_ok();
}
