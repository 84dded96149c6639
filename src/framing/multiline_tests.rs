use super::*;
use std::sync::atomic::Ordering;

/// A joiner under test: lines go in with consecutive offsets at chosen times.
pub(in crate::framing) struct H {
    pub j: Joiner,
    pub out: Vec<Frame>,
    pub off: u64,
    pub t0: Instant,
    pub cuts: Arc<AtomicU64>,
}

pub(in crate::framing) fn cfg(yaml: &str) -> MultilineConfig {
    serde_yaml::from_str(yaml).unwrap()
}

impl H {
    pub fn new(yaml: &str) -> H {
        let rules = JoinRules::new(&cfg(yaml), "inputs.files[0].multiline").unwrap();
        let cuts = Arc::new(AtomicU64::new(0));
        H {
            j: Joiner::new(rules, cuts.clone(), "/var/log/app.log".into()),
            out: Vec::new(),
            off: 0,
            t0: Instant::now(),
            cuts,
        }
    }

    /// Feeds one line at `ms` after the start; returns its offset.
    pub fn push_at(&mut self, line: &str, ms: u64) -> u64 {
        let off = self.off;
        self.off += line.len() as u64 + 1;
        let rec = Frame {
            text: line.as_bytes().to_vec(),
            offset: off,
            time: None,
            stream: Some("stdout"),
        };
        let now = self.t0 + Duration::from_millis(ms);
        self.j.push(rec, now, &mut self.out);
        off
    }

    /// Feeds lines at time 0.
    pub fn push(&mut self, lines: &[&str]) {
        for l in lines {
            self.push_at(l, 0);
        }
    }

    /// Feeds a text's lines at time 0.
    pub fn push_text(&mut self, text: &str) {
        for l in text.lines() {
            self.push_at(l, 0);
        }
    }

    /// Takes the events emitted so far.
    pub fn take(&mut self) -> Vec<String> {
        self.out
            .drain(..)
            .map(|f| String::from_utf8(f.text).unwrap())
            .collect()
    }

    /// Flushes and takes everything.
    pub fn finish(&mut self) -> Vec<String> {
        self.j.flush(&mut self.out);
        assert_eq!(self.j.pending_start(), None);
        assert_eq!(self.j.deadline(), None);
        self.take()
    }

    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }
}

fn err(yaml: &str) -> String {
    JoinRules::new(&cfg(yaml), "m").unwrap_err()
}

#[test]
fn rules_are_checked_with_the_key_named() {
    let one = "m: exactly one of start, continue and preset is required";
    assert_eq!(err("{}"), one);
    assert_eq!(err("{start: a, preset: java}"), one);
    assert_eq!(err("{start: a, continue: b}"), one);
    assert!(err("{start: '('}").starts_with("m.start: invalid regex: "));
    assert!(err("{continue: 'a{'}").starts_with("m.continue: invalid regex: "));
    assert_eq!(
        err("{preset: go, max_lines: 0}"),
        "m.max_lines: must be at least 1"
    );
    assert_eq!(
        err("{preset: go, max_bytes: 15}"),
        "m.max_bytes: must be at least 16 bytes"
    );
    assert!(JoinRules::new(&cfg("{preset: go, max_bytes: 16, max_lines: 1}"), "m").is_ok());
}

#[test]
fn start_mode() {
    let mut h = H::new(r"{start: '^\d{4}-'}");
    // A non-matching line with nothing pending begins an event.
    h.push(&["orphan", "  more"]);
    assert_eq!(h.j.pending_start(), Some(0));
    let a = h.push_at("2024-12-01 ERROR a", 0);
    assert_eq!(h.take(), ["orphan\n  more"]);
    assert_eq!(h.j.pending_start(), Some(a));
    h.push(&["  detail 1", "  detail 2"]);
    assert_eq!(h.j.pending_start(), Some(a));
    let b = h.push_at("2024-12-01 INFO b", 0);
    assert_eq!(h.take(), ["2024-12-01 ERROR a\n  detail 1\n  detail 2"]);
    assert_eq!(h.j.pending_start(), Some(b));
    assert_eq!(h.finish(), ["2024-12-01 INFO b"]);
    assert_eq!(h.cuts(), 0);
}

#[test]
fn continue_mode() {
    let mut h = H::new(r"{continue: '^\s'}");
    // A matching line with nothing pending begins an event.
    h.push(&["  leading"]);
    assert_eq!(h.j.pending_start(), Some(0));
    let a = h.push_at("first", 0);
    assert_eq!(h.take(), ["  leading"]);
    h.push(&["  x", "\ty"]);
    assert_eq!(h.j.pending_start(), Some(a));
    let b = h.push_at("second", 0);
    assert_eq!(h.take(), ["first\n  x\n\ty"]);
    assert_eq!(h.j.pending_start(), Some(b));
    h.push(&["third"]);
    assert_eq!(h.take(), ["second"]);
    assert_eq!(h.finish(), ["third"]);
}

#[test]
fn identical_lines_and_events_behave_like_distinct_ones() {
    let mut h = H::new("{start: '^START'}");
    h.push(&[
        "START", "x", "x", "START", "x", "x", "START", "START", "START",
    ]);
    assert_eq!(
        h.finish(),
        ["START\nx\nx", "START\nx\nx", "START", "START", "START"]
    );
    let mut h = H::new(r"{continue: '^\s'}");
    h.push(&["a", " b", "a", " b", "a", "a", " b", " b"]);
    assert_eq!(h.finish(), ["a\n b", "a\n b", "a", "a\n b\n b"]);
    // Offsets still name each event's own first line.
    let mut h = H::new("{start: '^S'}");
    h.push(&["S", "S", "S"]);
    h.j.flush(&mut h.out);
    let offs: Vec<u64> = h.out.iter().map(|f| f.offset).collect();
    assert_eq!(offs, [0, 2, 4]);
}

#[test]
fn deadline_follows_the_last_joined_line() {
    let mut h = H::new("{start: '^S', timeout: 1s}");
    assert_eq!(h.j.deadline(), None);
    h.push_at("S one", 0);
    assert_eq!(h.j.deadline(), Some(h.t0 + Duration::from_secs(1)));
    h.push_at("  joins", 900);
    // Growing keeps it alive: the deadline moves with each joined line.
    assert_eq!(h.j.deadline(), Some(h.t0 + Duration::from_millis(1900)));
    // The caller flushes when the deadline passes (also when it is the file's last event).
    h.j.flush(&mut h.out);
    assert_eq!(h.take(), ["S one\n  joins"]);
    assert_eq!((h.j.deadline(), h.j.pending_start()), (None, None));
    // A line that arrives after the quiet period does not join the timed-out event.
    h.push_at("S two", 3000);
    let late = h.push_at("  late", 4500);
    assert_eq!(h.take(), ["S two"]);
    assert_eq!(h.j.pending_start(), Some(late));
    assert_eq!(h.j.deadline(), Some(h.t0 + Duration::from_millis(5500)));
    assert_eq!(h.finish(), ["  late"]);
}

#[test]
fn cut_at_max_lines_counts_only_when_more_would_have_joined() {
    let mut h = H::new("{start: '^S', max_lines: 3}");
    h.push(&["S", "a", "b"]);
    // Reaching max_lines emits at once; whether it was a cut is known with the next line.
    assert_eq!(h.take(), ["S\na\nb"]);
    assert_eq!((h.j.pending_start(), h.cuts()), (None, 0));
    let c = h.push_at("c", 0);
    assert_eq!((h.j.pending_start(), h.cuts()), (Some(c), 1));
    h.push(&["d", "S", "x", "y", "S"]);
    assert_eq!(h.take(), ["c\nd", "S\nx\ny"]);
    // That event had exactly max_lines and the next line began a new one: not a cut.
    assert_eq!(h.cuts(), 1);
    assert_eq!(h.finish(), ["S"]);
    // A trace of 7 lines under max_lines 3: 3 + 3 + 1, two cuts.
    let mut h = H::new("{start: '^S', max_lines: 3}");
    h.push(&["S", "1", "2", "3", "4", "5", "6", "S"]);
    assert_eq!(h.finish(), ["S\n1\n2", "3\n4\n5", "6", "S"]);
    assert_eq!(h.cuts(), 2);
}

#[test]
fn cut_at_max_bytes_and_truncation() {
    let mut h = H::new("{start: '^S', max_bytes: 16}");
    h.push(&["S 1234567", "abcdef"]);
    assert_eq!(h.j.pending_start(), Some(0));
    // 9 + 1 + 6 = 16 fits; one more byte would not.
    let x = h.push_at("x", 0);
    assert_eq!(h.take(), ["S 1234567\nabcdef"]);
    assert_eq!((h.j.pending_start(), h.cuts()), (Some(x), 1));
    h.push(&["S this line is longer than sixteen bytes"]);
    assert_eq!(h.take(), ["x"]);
    assert_eq!(h.cuts(), 2);
    // Truncated at a UTF-8 boundary: `é` is two bytes, the 16th byte is inside one.
    h.push(&["Sééééééééé"]);
    assert_eq!(h.take(), ["S this line is l"]);
    assert_eq!(h.finish(), ["Sééééééé"]);
    assert_eq!(h.cuts(), 3);
    assert_eq!(utf8_floor(b"abc", 5), 3);
    assert_eq!(utf8_floor(&[0x80; 8], 4), 4);
}

#[test]
fn first_cut_per_file_is_warned_once() {
    // The warning's text is checked end to end (tests/pipeline_multiline.rs counts it in the
    // agent's stderr); capturing tracing output here is racy (its interest cache is global).
    let mut h = H::new("{start: '^S', max_lines: 2}");
    h.push(&["S", "1"]);
    assert!(!h.j.warned, "no cut yet");
    h.push(&["2", "3", "4", "5", "S"]);
    assert_eq!(h.finish(), ["S\n1", "2\n3", "4\n5", "S"]);
    assert_eq!(h.cuts(), 2);
    assert!(
        h.j.warned,
        "the first cut is warned about, and only it: the flag is set once"
    );
}

#[test]
fn flush_starts_afresh() {
    let mut h = H::new("{preset: python}");
    h.push(&[
        "Traceback (most recent call last):",
        "  File \"a.py\", line 1, in <module>",
    ]);
    assert_eq!(h.finish().len(), 1);
    // After a flush the preset's state is reset: an indented line is no longer a frame.
    h.push(&["  File \"b.py\", line 2, in f"]);
    assert_eq!(h.take(), ["  File \"b.py\", line 2, in f"]);
    assert_eq!(h.j.pending_start(), None);
}
