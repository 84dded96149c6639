//! Built-in multiline rules for stack traces, as small state machines over hand-written line
//! tests (no regex: the preset runs on every line of the file). Learned from Fluent Bit's
//! built-in `java`, `python` and `go` parsers, with these choices of our own:
//!
//! - **java**: log4j/logback print the log line and then the exception (`ERROR Failed` /
//!   `java.lang.IllegalStateException: boom` / `\tat ...`), so an exception line (a class
//!   name ending in `Exception`, `Error` or `Throwable`, alone or followed by `: message`, or
//!   `Exception in thread "..." ...`) *joins the one plain line before it*; that is why each
//!   plain line waits for the next line (or the timeout) before it goes. After an exception
//!   line, frames (`\tat ...`, `\t... N more`, `\t... N common frames omitted`),
//!   `Caused by:`, `Suppressed:` and `Wrapped by:` join, as do blank lines directly after an
//!   exception line (a message ending in a newline). An exception line after a trace begins a
//!   new event; any other line ends the trace and is itself held as a possible head. Other
//!   blank lines go alone.
//! - **python**: `Traceback (most recent call last):` (or `+ Exception Group Traceback ...`)
//!   begins an event; indented lines (`  File ...`, code, `^^^^` markers) join; the first
//!   unindented `dotted.Name: message` or bare `Name` line joins and ends the frames. Chained
//!   tracebacks (`During handling of the above exception, another exception occurred:` /
//!   `The above exception was the direct cause of the following exception:` with their blank
//!   lines) stay in the event, so an ended traceback still waits for one more line. Lines
//!   outside a traceback go alone at once (the `logging` line before a traceback is its own
//!   event).
//! - **go**: `panic: `, `fatal error: `, `http: panic serving ` or a `goroutine N [...]:`
//!   header begins an event; goroutine headers, frames (`pkg.f(...)`, `created by ...`),
//!   indented lines, `[signal ...`, `exit status N`, `runtime stack:` and blank lines join.
//!   Any other line ends the block (stricter than "after a blank line": a log line right
//!   after a trace is not swallowed); an unindented `panic: `, `fatal error: ` or
//!   `http: panic serving` begins the next one. Lines outside a block go alone at once.

use crate::config::Preset;

/// What the lines so far make of the next one; `Idle` when no event is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Outside any event.
    Idle,
    /// Java: one plain line, which an exception line may join.
    JavaHead,
    /// Java: after an exception or `Caused by:` line, before its frames.
    JavaException,
    /// Java: within the frames.
    JavaFrames,
    /// Python: within a traceback's frames.
    PyFrames,
    /// Python: after the final exception line (or its blank lines): a chain may follow.
    PyEnded,
    /// Python: after a chaining sentence, before the next `Traceback`.
    PyChain,
    /// Go: within a panic or goroutine block.
    GoBlock,
}

/// What to do with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// It joins the pending event (or begins one).
    Join,
    /// The pending event goes; the line begins the next one.
    Start,
    /// The pending event goes, then the line alone.
    Single,
}

/// Classifies `line` under `preset` and moves `state` on.
pub(super) fn step(preset: Preset, state: &mut State, line: &[u8]) -> Step {
    let line = line.trim_ascii_end();
    match preset {
        Preset::Java => java(state, line),
        Preset::Python => python(state, line),
        Preset::Go => go(state, line),
    }
}

fn java(state: &mut State, line: &[u8]) -> Step {
    let body = line.trim_ascii_start();
    let indented = body.len() < line.len();
    let (next, step) = if body.is_empty() {
        match *state {
            State::JavaException => (State::JavaException, Step::Join),
            _ => (State::Idle, Step::Single),
        }
    } else if (indented && body.starts_with(b"at ")) || is_omitted(body) {
        (State::JavaFrames, Step::Join)
    } else if [&b"Caused by:"[..], b"Suppressed:", b"Wrapped by:"]
        .iter()
        .any(|p| body.starts_with(p))
    {
        (State::JavaException, Step::Join)
    } else if !indented && is_java_exception(line) {
        let step = match *state {
            State::JavaHead => Step::Join,
            _ => Step::Start,
        };
        (State::JavaException, step)
    } else {
        (State::JavaHead, Step::Start)
    };
    *state = next;
    step
}

/// `... 3 more`, `... 3 common frames omitted`.
fn is_omitted(body: &[u8]) -> bool {
    let Some(rest) = body.strip_prefix(b"... ") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = &rest[digits..];
    digits > 0 && (rest == b" more" || rest == b" common frames omitted")
}

/// `[\w$.]+(Exception|Error|Throwable)(: .*)?` or `Exception in thread "..." ...`.
fn is_java_exception(line: &[u8]) -> bool {
    if line.starts_with(b"Exception in thread \"") {
        return true;
    }
    let n = line
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'.')
        .count();
    let (name, rest) = line.split_at(n);
    let typed = [&b"Exception"[..], b"Error", b"Throwable"]
        .iter()
        .any(|s| name.len() > s.len() && name.ends_with(s));
    typed && (rest.is_empty() || rest.starts_with(b": "))
}

const TRACEBACK: &[u8] = b"Traceback (most recent call last):";

fn python(state: &mut State, line: &[u8]) -> Step {
    let body = line.trim_ascii_start();
    let indented = body.len() < line.len();
    let blank = body.is_empty();
    let chain = line == b"During handling of the above exception, another exception occurred:"
        || line == b"The above exception was the direct cause of the following exception:";
    let joined = match *state {
        State::PyFrames if indented || blank => Some(State::PyFrames),
        State::PyFrames if is_py_exception(line) => Some(State::PyEnded),
        State::PyEnded if blank => Some(State::PyEnded),
        State::PyEnded | State::PyChain if chain => Some(State::PyChain),
        State::PyChain if blank => Some(State::PyChain),
        State::PyChain if line == TRACEBACK => Some(State::PyFrames),
        _ => None,
    };
    if let Some(next) = joined {
        *state = next;
        return Step::Join;
    }
    if line == TRACEBACK || body == b"+ Exception Group Traceback (most recent call last):" {
        *state = State::PyFrames;
        Step::Start
    } else {
        *state = State::Idle;
        Step::Single
    }
}

/// `module.Name: message` or a bare `Name` (`KeyboardInterrupt`), unindented.
fn is_py_exception(line: &[u8]) -> bool {
    let name = |b: &u8| !(b.is_ascii_whitespace() || b"().:".contains(b));
    let mut segment = 0;
    for (i, b) in line.iter().enumerate() {
        match b {
            b'.' if segment > 0 => segment = 0,
            b':' => return segment > 0 && i > 0,
            b if name(b) => segment += 1,
            _ => return false,
        }
    }
    segment > 0
}

fn go(state: &mut State, line: &[u8]) -> Step {
    // These begin an event even inside a block: Go prints one per crash (a re-panic is
    // indented), so another one is the next crash.
    let begins = line.starts_with(b"panic: ")
        || line.starts_with(b"fatal error: ")
        || memchr::memmem::find(line, b"http: panic serving ").is_some();
    if begins || (*state != State::GoBlock && is_goroutine_header(line)) {
        *state = State::GoBlock;
        Step::Start
    } else if *state == State::GoBlock
        && (line.is_empty() || is_goroutine_header(line) || is_go_line(line))
    {
        Step::Join
    } else {
        *state = State::Idle;
        Step::Single
    }
}

/// `goroutine 1 [running]:` (also with Go 1.23's `gp=... m=...` fields).
fn is_goroutine_header(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"goroutine ") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && rest.get(digits) == Some(&b' ') && line.ends_with(b"]:")
}

/// A line of a Go traceback other than a header: frames, file lines, signal and exit lines.
fn is_go_line(line: &[u8]) -> bool {
    if line.first().is_some_and(u8::is_ascii_whitespace) {
        return true;
    }
    const PREFIXES: [&[u8]; 5] = [
        b"created by ",
        b"[signal ",
        b"exit status ",
        b"runtime stack:",
        b"...additional frames elided...",
    ];
    if PREFIXES.iter().any(|p| line.starts_with(p)) {
        return true;
    }
    // A frame: `pkg/path.(*T).Method(0xc000010000, {0x4b8f7a, 0x3})`, `panic({0x45e540?})`:
    // no space before its argument list, which ends the line.
    match memchr::memchr(b'(', line) {
        Some(i) => i > 0 && !line[..i].contains(&b' ') && line.ends_with(b")"),
        None => false,
    }
}

#[cfg(test)]
#[path = "preset_tests.rs"]
mod tests;
