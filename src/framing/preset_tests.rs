use super::*;
use crate::framing::multiline::tests::H;
use std::time::Duration;

const JAVA: &str = "\
2024-12-01 10:00:00.123 ERROR [main] c.x.OrderService - Failed to process order 42
java.lang.IllegalStateException: boom
\tat com.x.Y.z(Y.java:10)
\tat com.x.OrderService.process(OrderService.java:55) ~[app.jar:1.0]
\tat com.x.App.main(App.java:5)
Caused by: java.io.IOException: disk full
\tat com.x.Disk.write(Disk.java:77)
\t... 3 more
\tSuppressed: java.lang.RuntimeException: close failed
\t\tat com.x.Disk.close(Disk.java:90)
\t\t... 4 common frames omitted";

const JAVA_BARE: &str = "\
Exception in thread \"main\" java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"s\" is null
\tat com.example.Main.len(Main.java:12)
\tat com.example.Main.main(Main.java:5)";

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn java_joins_the_log_line_its_exception_and_frames() {
    let mut h = H::new("{preset: java}");
    h.push_text(JAVA);
    assert_eq!(h.j.pending_start(), Some(0));
    assert!(h.take().is_empty());
    let next = h.push_at("2024-12-01 10:00:01.000 INFO  [main] c.x.App - next", 0);
    assert_eq!(h.take(), [JAVA]);
    // A plain line waits: the next line may be its exception.
    assert_eq!(h.j.pending_start(), Some(next));
    assert_eq!(
        h.finish(),
        ["2024-12-01 10:00:01.000 INFO  [main] c.x.App - next"]
    );
}

#[test]
fn java_single_lines_traces_back_to_back_and_identical() {
    let mut h = H::new("{preset: java}");
    h.push(&["INFO a", "INFO a", "WARN b"]);
    assert_eq!(h.take(), ["INFO a", "INFO a"]);
    h.push_text(JAVA);
    h.push_text(JAVA);
    h.push_text(JAVA_BARE);
    h.push_text(JAVA_BARE);
    h.push(&["INFO c", "", "INFO d"]);
    let bare_after_line = format!("INFO c\n{}", lines(JAVA_BARE)[0]);
    assert_eq!(
        h.finish(),
        [
            "WARN b", JAVA, JAVA, JAVA_BARE, JAVA_BARE, "INFO c", "", "INFO d"
        ]
    );
    // An exception right after a plain line joins it, even the `Exception in thread` form.
    let mut h = H::new("{preset: java}");
    h.push_text(&bare_after_line);
    assert_eq!(h.finish(), [bare_after_line]);
}

#[test]
fn java_exception_forms_and_fragments() {
    let mut h = H::new("{preset: java}");
    // A trace whose log line was elsewhere; a bare exception without message; a blank line
    // right after an exception (a message that ended in a newline) stays with it.
    h.push(&[
        "com.x.MyError",
        "\tat com.x.A.b(A.java:1)",
        "org.springframework.web.util.NestedServletException: Request failed; nested exception is x",
        "",
        "\tat org.x.F.g(F.java:2)",
        "\t... 12 more",
    ]);
    assert_eq!(h.take(), ["com.x.MyError\n\tat com.x.A.b(A.java:1)"]);
    // Frames with nothing before them (the head was flushed) still form one event.
    h.j.flush(&mut h.out);
    h.take();
    h.push(&[
        "\tat x.Y.z(Y.java:3)",
        "\tat x.Y.w(Y.java:4)",
        "Caused by: x.E: e",
        "plain",
    ]);
    assert_eq!(
        h.take(),
        ["\tat x.Y.z(Y.java:3)\n\tat x.Y.w(Y.java:4)\nCaused by: x.E: e"]
    );
    // Not exceptions: a bare `Error:`, a word merely containing Exception, an indented one.
    for s in [
        "Error: x",
        "Exceptions happen",
        "MyErrorCount: 3x y",
        "  java.lang.Error",
    ] {
        let mut st = State::JavaHead;
        assert_eq!(
            step(Preset::Java, &mut st, s.as_bytes()),
            Step::Start,
            "{s}"
        );
    }
    for s in [
        "java.lang.Error",
        "a.b$Inner_Exception: m",
        "x.Throwable: y",
    ] {
        let mut st = State::JavaHead;
        assert_eq!(step(Preset::Java, &mut st, s.as_bytes()), Step::Join, "{s}");
    }
}

const PY: &str = "\
Traceback (most recent call last):
  File \"/app/main.py\", line 10, in <module>
    main()
  File \"/app/main.py\", line 6, in main
    return 1 / 0
           ~~^~~
ZeroDivisionError: division by zero";

const PY_CHAINED: &str = "\
Traceback (most recent call last):
  File \"/app/db.py\", line 3, in get
    return cache[key]
           ~~~~~^^^^^
KeyError: 'user'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"/app/main.py\", line 9, in <module>
    get(\"user\")
  File \"/app/db.py\", line 5, in get
    raise LookupError(\"no user\") from exc
builtins.LookupError: no user

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File \"/app/main.py\", line 12, in <module>
    raise RuntimeError(\"startup failed\")
RuntimeError: startup failed";

const PY_INTERRUPT: &str = "\
Traceback (most recent call last):
  File \"/app/worker.py\", line 22, in <module>
    time.sleep(1)
KeyboardInterrupt";

#[test]
fn python_tracebacks() {
    let mut h = H::new("{preset: python}");
    // Lines outside a traceback go at once.
    h.push(&["ERROR:root:request failed", "ERROR:root:request failed"]);
    assert_eq!(
        h.take(),
        ["ERROR:root:request failed", "ERROR:root:request failed"]
    );
    assert_eq!(h.j.pending_start(), None);
    let start = h.off;
    h.push_text(PY);
    // Ended, but a chained traceback may follow.
    assert_eq!(h.j.pending_start(), Some(start));
    h.push_text(PY);
    h.push_text(PY_CHAINED);
    h.push(&["INFO:app:after"]);
    assert_eq!(h.take(), [PY, PY, PY_CHAINED, "INFO:app:after"]);
    assert_eq!(h.j.pending_start(), None);
    h.push_text(PY_INTERRUPT);
    h.push(&["INFO:app:x"]);
    h.push_text(PY_INTERRUPT);
    assert_eq!(h.finish(), [PY_INTERRUPT, "INFO:app:x", PY_INTERRUPT]);
}

#[test]
fn python_unfinished_and_group_tracebacks() {
    let group = "  + Exception Group Traceback (most recent call last):
  |   File \"<stdin>\", line 1, in <module>
  | ExceptionGroup: eg (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | ValueError: 1
    +------------------------------------";
    let mut h = H::new("{preset: python}");
    h.push_text(group);
    h.push(&[
        "Traceback (most recent call last):",
        "  File \"x.py\", line 1",
        "log line",
    ]);
    // A traceback cut short ends at the first line that is none of its parts.
    assert_eq!(
        h.take(),
        [
            group,
            "Traceback (most recent call last):\n  File \"x.py\", line 1",
            "log line"
        ]
    );
    // A blank line after an ended traceback stays in it when no chain follows.
    h.push_text(PY);
    h.push(&["", "next"]);
    assert_eq!(h.finish(), [format!("{PY}\n"), "next".into()]);
}

const GO: &str = "\
panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
main.lookup(...)
\t/app/main.go:12
main.main()
\t/app/main.go:8 +0x1d
exit status 2";

const GO_RECOVERED: &str = "\
panic: boom [recovered]
\tpanic: boom

goroutine 18 [running]:
testing.tRunner.func1.2({0x5f1a40, 0x6a3b10})
\t/usr/local/go/src/testing/testing.go:1632 +0x230
panic({0x5f1a40?, 0x6a3b10?})
\t/usr/local/go/src/runtime/panic.go:770 +0x132
example.com/app.(*Server).handle(0xc000010000, {0x6a5e20, 0xc0000a2000})
\t/app/server.go:42 +0x45
created by testing.(*T).Run in goroutine 1
\t/usr/local/go/src/testing/testing.go:1742 +0x390

goroutine 1 gp=0xc000002380 m=0 mp=0x5b7ec0 [chan receive]:
testing.(*T).Run(0xc0000076c0, {0x5f2b33?, 0x0?}, 0x6053c8)
\t/usr/local/go/src/testing/testing.go:1750 +0x3ab
...additional frames elided...";

const GO_HTTP: &str = "\
2024/12/01 10:00:00 http: panic serving 10.0.0.1:52144: runtime error: invalid memory address or nil pointer dereference
goroutine 34 [running]:
net/http.(*conn).serve.func1()
\t/usr/local/go/src/net/http/server.go:1903 +0xbe
panic({0x6c5e40?, 0x9d4d30?})
\t/usr/local/go/src/runtime/panic.go:770 +0x132
main.handler({0x7b0a38, 0xc0001a0000}, 0xc000196000)
\t/app/main.go:20 +0x1a";

const GO_FATAL: &str = "\
fatal error: concurrent map writes

goroutine 7 [running]:
main.worker(0xc000012345)
\t/app/main.go:30 +0x55
created by main.main in goroutine 1
\t/app/main.go:40 +0x65

goroutine 1 [sleep]:
time.Sleep(0x3b9aca00)
\t/usr/local/go/src/runtime/time.go:195 +0x125
main.main()
\t/app/main.go:44 +0x90";

#[test]
fn go_panics() {
    let mut h = H::new("{preset: go}");
    h.push(&[
        "2024/12/01 10:00:00 starting",
        "2024/12/01 10:00:00 starting",
    ]);
    assert_eq!(h.take().len(), 2);
    let start = h.off;
    h.push_text(GO);
    assert_eq!(h.j.pending_start(), Some(start));
    h.push(&["2024/12/01 10:00:05 GET /health 200 (3ms)"]);
    assert_eq!(h.take(), [GO, "2024/12/01 10:00:05 GET /health 200 (3ms)"]);
    h.push_text(GO_RECOVERED);
    h.push_text(GO_HTTP);
    h.push_text(GO_HTTP);
    h.push(&["2024/12/01 10:00:06 served"]);
    h.push_text(GO_FATAL);
    assert_eq!(
        h.finish(),
        [
            GO_RECOVERED,
            GO_HTTP,
            GO_HTTP,
            "2024/12/01 10:00:06 served",
            GO_FATAL
        ]
    );
}

#[test]
fn go_blocks_back_to_back_after_blank_lines() {
    let mut h = H::new("{preset: go}");
    // The blank line separating two runs' panics stays with the first; the second begins
    // anew because `panic:` follows a blank line.
    h.push_text(GO);
    h.push(&[""]);
    h.push_text(GO);
    h.push(&["", "server restarted"]);
    assert_eq!(
        h.finish(),
        [
            format!("{GO}\n"),
            format!("{GO}\n"),
            "server restarted".into()
        ]
    );
    let mut st = State::GoBlock;
    for s in [
        "main.main()",
        "\t/x.go:1",
        "goroutine 5 [select]:",
        "[signal SIGSEGV: x]",
    ] {
        assert_eq!(step(Preset::Go, &mut st, s.as_bytes()), Step::Join, "{s}");
    }
    for s in [
        "2024/12/01 done (x)",
        "level=info msg=x",
        "goroutine x [y]:",
    ] {
        let mut st = State::GoBlock;
        assert_eq!(step(Preset::Go, &mut st, s.as_bytes()), Step::Single, "{s}");
    }
}

#[test]
fn presets_hold_pending_start_and_cut_long_traces() {
    let mut h = H::new("{preset: java, max_lines: 4}");
    h.push_text(JAVA);
    // 11 lines: 4 + 4 emitted, the 9th on holds the checkpoint.
    let ninth: usize = lines(JAVA)[..8].iter().map(|l| l.len() + 1).sum();
    assert_eq!(h.take().len(), 2);
    assert_eq!((h.cuts(), h.j.pending_start()), (2, Some(ninth as u64)));
    h.push(&["\tat extra.Frame(E.java:1)"]);
    // 12 lines: the third part is full too; a cut is counted when the next line would join.
    assert_eq!(h.take().len(), 1);
    assert_eq!((h.cuts(), h.j.pending_start()), (2, None));
    let more = h.push_at("\tat more.Frames(F.java:1)", 0);
    assert_eq!((h.cuts(), h.j.pending_start()), (3, Some(more)));
    let y = h.push_at("INFO y", 0);
    assert_eq!(h.take(), ["\tat more.Frames(F.java:1)"]);
    assert_eq!(h.j.pending_start(), Some(y));
    // The remainder of a cut trace goes on under the same rules.
    let mut h = H::new("{preset: python, max_lines: 3}");
    h.push_text(PY);
    h.push(&["after"]);
    assert_eq!(
        h.take(),
        [
            lines(PY)[..3].join("\n"),
            lines(PY)[3..6].join("\n"),
            lines(PY)[6].to_string(),
            "after".into()
        ]
    );
    assert_eq!(h.cuts(), 2);
}

#[test]
fn pending_start_is_the_first_line_not_yet_emitted_at_every_step() {
    let mut all = String::new();
    for part in [
        "INFO a",
        JAVA,
        JAVA,
        "INFO b",
        "",
        PY,
        PY_CHAINED,
        "x",
        PY_INTERRUPT,
        GO,
        "",
        GO,
        GO_HTTP,
        "y",
        GO_FATAL,
        JAVA_BARE,
        "INFO a",
        "INFO a",
    ] {
        all.push_str(part);
        all.push('\n');
    }
    let lines = lines(&all);
    let offsets: Vec<u64> = lines
        .iter()
        .scan(0u64, |o, l| {
            let at = *o;
            *o += l.len() as u64 + 1;
            Some(at)
        })
        .collect();
    for yaml in [
        "{preset: java}",
        "{preset: python}",
        "{preset: go}",
        "{preset: java, max_lines: 3}",
        "{preset: go, max_bytes: 64}",
        r"{start: '^\S'}",
        r"{continue: '^\s', max_lines: 2}",
    ] {
        let mut h = H::new(yaml);
        let mut emitted = 0;
        for (i, l) in lines.iter().enumerate() {
            h.push_at(l, i as u64);
            // Events are runs of consecutive lines: count lines out to know what is pending.
            emitted += h
                .take()
                .iter()
                .map(|e| e.matches('\n').count() + 1)
                .sum::<usize>();
            assert_eq!(
                h.j.pending_start(),
                (emitted <= i).then(|| offsets[emitted]),
                "{yaml} line {i}"
            );
            assert!(emitted <= i + 1);
        }
        h.j.flush(&mut h.out);
        emitted += h
            .take()
            .iter()
            .map(|e| e.matches('\n').count() + 1)
            .sum::<usize>();
        assert_eq!(emitted, lines.len(), "{yaml}");
    }
}

#[test]
fn the_last_event_of_a_file_goes_at_its_deadline() {
    // Fluent Bit held the last record until more input came; here the deadline frees it.
    let mut h = H::new("{preset: java, timeout: 2s}");
    h.push_at("2024-12-01 10:00:00 INFO last line of the file", 500);
    assert_eq!(h.j.deadline(), Some(h.t0 + Duration::from_millis(2500)));
    h.j.flush(&mut h.out);
    assert_eq!(h.take(), ["2024-12-01 10:00:00 INFO last line of the file"]);
}
