//! Micro-benchmarks of the hot path: line splitting, event encoding and processors
//! (`cargo bench`).
//! Plain timing loops (no external harness): prints ns per line, best of several rounds.

use logaggregator::config::{EventFormat, ProcessorConfig};
use logaggregator::event::{Batch, FileState, Line, Progress};
use logaggregator::identity::{FileKey, Fingerprint};
use logaggregator::output::encode::Encoder;
use logaggregator::processors::Processors;
use logaggregator::record::{Event, Meta};
use logaggregator::tailer::lines::Splitter;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

const LINES: usize = 100_000;

fn sample() -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..LINES {
        v.extend_from_slice(
            format!(
                "10.0.{}.{} - - [22/Nov/2026:15:00:00 +0000] \"GET /api/v1/items/{i} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0\" id={i:08}\n",
                i % 256,
                i % 200,
                i * 7 % 99_999
            )
            .as_bytes(),
        );
    }
    v
}

fn best_ns_per_line(rounds: usize, mut f: impl FnMut() -> usize) -> f64 {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            let n = f();
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let data = sample();
    let split = best_ns_per_line(10, || {
        let mut s = Splitter::new(1 << 20);
        let mut lines = Vec::with_capacity(LINES);
        black_box(s.split(black_box(&data), &mut lines));
        lines.len()
    });
    println!(
        "split        {split:7.1} ns/line ({} bytes/line)",
        data.len() / LINES
    );

    let mut lines: Vec<Line> = Vec::with_capacity(LINES);
    Splitter::new(1 << 20).split(&data, &mut lines);
    let state = Arc::new(FileState::new(
        FileKey { dev: 1, ino: 1 },
        Path::new("/var/log/app/access.log"),
        Progress::starting_at(
            Fingerprint::default(),
            0,
            0,
            Path::new("/var/log/app/access.log"),
        ),
    ));
    let batch = Batch {
        file: state,
        ticket: logaggregator::ack::Ticket {
            generation: 0,
            seq: 0,
        },
        buf: data.clone(),
        base_offset: 0,
        lines,
        events: None,
        source: "bench".into(),
        end_offset: data.len() as u64,
        marker: 0,
        read_time: SystemTime::now(),
    };
    for (name, format) in [
        ("encode text", EventFormat::Text),
        ("encode json", EventFormat::Json),
    ] {
        let mut enc = Encoder::new(format, "host-1");
        let mut out = Vec::with_capacity(data.len() * 3);
        let ns = best_ns_per_line(10, || {
            out.clear();
            enc.encode(black_box(&batch), &mut out);
            black_box(out.len());
            LINES
        });
        println!("{name}  {ns:7.1} ns/line");
    }

    // Small batches (a trickle of lines): what a batch costs beyond its lines, since the
    // host and path are escaped once per batch.
    let small: Vec<Batch> = batch
        .lines
        .chunks(4)
        .map(|c| {
            let (from, to) = (c[0].start, c[c.len() - 1].end);
            Batch {
                file: batch.file.clone(),
                ticket: batch.ticket,
                buf: data[from as usize..to as usize].to_vec(),
                base_offset: u64::from(from),
                events: None,
                source: batch.source.clone(),
                lines: c
                    .iter()
                    .map(|l| Line {
                        start: l.start - from,
                        end: l.end - from,
                    })
                    .collect(),
                end_offset: u64::from(to),
                marker: 0,
                read_time: batch.read_time,
            }
        })
        .collect();
    let mut enc = Encoder::new(EventFormat::Json, "host-1");
    let mut out = Vec::with_capacity(data.len() * 3);
    let ns = best_ns_per_line(10, || {
        out.clear();
        for b in &small {
            enc.encode(black_box(b), &mut out);
        }
        black_box(out.len());
        LINES
    });
    println!("encode json, 4-line batches  {ns:7.1} ns/line");

    processors(&data);
}

/// Processors on whole events: each line made an event and processed ("apply"), then also
/// written as JSON ("+ out"), as a file's pipeline does.
fn processors(access: &[u8]) {
    let json_line = |key: &str, i: usize| {
        format!(
            r#"{{"ts":"2024-12-01T10:30:{:02}.123Z","level":"info","service":"api","{key}":"request done","status":{},"duration_ms":{}.5,"path":"/v1/users/{i}"}}"#,
            i % 60,
            200 + i % 5,
            i % 100
        )
    };
    // A JSON log without its own `message` keeps the raw line as the message (more to
    // escape on output); with one, the raw line is replaced.
    let json_msg: Vec<String> = (0..LINES).map(|i| json_line("msg", i)).collect();
    let json_message: Vec<String> = (0..LINES).map(|i| json_line("message", i)).collect();
    let access_lines: Vec<String> = (access.split(|b| *b == b'\n'))
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let parse_json = vec![ProcessorConfig::ParseJson {
        field: "message".into(),
    }];
    let regex_time = vec![
        ProcessorConfig::ParseRegex {
            pattern: r#"^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<url>\S+)[^"]*" (?P<status>\d+)"#.into(),
            field: "message".into(),
        },
        ProcessorConfig::Timestamp {
            field: "time".into(),
            format: "%d/%b/%Y:%H:%M:%S %z".into(),
            keep: false,
        },
    ];
    let meta = Arc::new(Meta::new("host-1", "/var/log/app/app.log", "app"));
    let now = SystemTime::now();
    for (name, configs, lines) in [
        ("none, json line        ", vec![], &json_msg),
        ("parse_json (msg)       ", parse_json.clone(), &json_msg),
        ("parse_json (message)   ", parse_json, &json_message),
        ("none, access line      ", vec![], &access_lines),
        ("parse_regex + timestamp", regex_time, &access_lines),
    ] {
        let mut p = match Processors::build(&configs, "bench", "bench") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let apply = best_ns_per_line(10, || {
            for l in lines.iter() {
                black_box(p.apply(Event::new(meta.clone(), 0, black_box(l).clone())));
            }
            lines.len()
        });
        let mut out = Vec::with_capacity(lines.len() * 400);
        let with_out = best_ns_per_line(10, || {
            out.clear();
            for l in lines.iter() {
                if let Some(e) = p.apply(Event::new(meta.clone(), 0, black_box(l).clone())) {
                    e.write_json(now, &mut out);
                    out.push(b'\n');
                }
            }
            black_box(out.len());
            lines.len()
        });
        println!("{name}  apply {apply:7.1}  + out {with_out:7.1} ns/line");
    }
}
