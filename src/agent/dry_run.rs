//! `logaggregator dry-run`: feeds a sample (or stdin) through one input's framing, multiline
//! and processors and prints the events as JSON lines. No checkpoint, no output: how a config
//! writer sees what a regex or a multiline rule does before deploying it.

use super::{EXIT_CONFIG, EXIT_FATAL, EXIT_OK};
use crate::config::{Config, FileInput};
use crate::pipeline::{Compiled, FilePipeline};
use crate::record::Event;
use std::io::{self, BufRead, Write};
use std::path::Path;
use std::time::{Instant, SystemTime};

/// Runs a dry run of input `id` (default: the first) over `sample` (default: stdin).
pub(super) fn run(cfg: &Config, id: Option<&str>, sample: Option<&Path>) -> u8 {
    let (index, input) = match pick(cfg, id) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("logaggregator: {e}");
            return EXIT_CONFIG;
        }
    };
    let compiled = match Compiled::build(input, index, &super::hostname()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("logaggregator: configuration error: {e}");
            return EXIT_CONFIG;
        }
    };
    let (reader, path): (Box<dyn BufRead>, &Path) = match sample {
        Some(p) => match std::fs::File::open(p) {
            Ok(f) => (Box::new(io::BufReader::with_capacity(128 * 1024, f)), p),
            Err(e) => {
                eprintln!("logaggregator: cannot read sample {}: {e}", p.display());
                return EXIT_FATAL;
            }
        },
        None => (Box::new(io::stdin().lock()), Path::new("-")),
    };
    let mut pipe = compiled.for_file(path);
    match feed(reader, &mut pipe, input.max_line_bytes as usize) {
        Ok(()) => EXIT_OK,
        // `dry-run ... | head` closes the pipe: not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => {
            eprintln!("logaggregator: dry run failed: {e}");
            EXIT_FATAL
        }
    }
}

/// The input named `id`, or the first one.
fn pick<'a>(cfg: &'a Config, id: Option<&str>) -> Result<(usize, &'a FileInput), String> {
    let files = &cfg.inputs.files;
    let Some(id) = id else {
        return files
            .first()
            .map(|f| (0, f))
            .ok_or_else(|| "the configuration has no file input".to_string());
    };
    (files.iter().enumerate())
        .find(|(i, f)| f.id_or_default(*i) == id)
        .ok_or_else(|| {
            let ids: Vec<String> = (files.iter().enumerate())
                .map(|(i, f)| f.id_or_default(i))
                .collect();
            format!(
                "no input with id {id:?}; the inputs are: {}",
                ids.join(", ")
            )
        })
}

/// Reads lines (cut at `max_line` bytes, as the agent cuts them), prints events as
/// they complete, and emits the pending one at the end of the input.
fn feed(mut r: Box<dyn BufRead>, pipe: &mut FilePipeline, max_line: usize) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let (mut line, mut offset, mut events, mut enc) = (Vec::new(), 0u64, Vec::new(), Vec::new());
    let mut line_start = 0u64;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = (max_line + 1).saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        r.consume(take);
        offset += take as u64;
        if done {
            finish_line(&mut line, max_line);
            pipe.push_line(&line, line_start, Instant::now(), &mut events);
            line.clear();
            line_start = offset;
            print(&mut events, &mut enc, &mut out)?;
        }
    }
    // A last line without a newline is still a line.
    if !line.is_empty() {
        finish_line(&mut line, max_line);
        pipe.push_line(&line, line_start, Instant::now(), &mut events);
    }
    pipe.flush(Instant::now(), &mut events);
    print(&mut events, &mut enc, &mut out)?;
    out.flush()
}

/// Drops the newline (and a `\r` before it) and cuts to `max_line`.
fn finish_line(line: &mut Vec<u8>, max_line: usize) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    line.truncate(max_line);
}

fn print(events: &mut Vec<Event>, enc: &mut Vec<u8>, out: &mut impl Write) -> io::Result<()> {
    let now = SystemTime::now();
    for e in events.drain(..) {
        enc.clear();
        e.write_json(now, enc);
        enc.push(b'\n');
        out.write_all(enc)?;
    }
    Ok(())
}
