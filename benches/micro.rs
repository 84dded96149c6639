//! Micro-benchmarks of the hot path: line splitting and event encoding (`cargo bench`).
//! Plain timing loops (no external harness): prints ns per line, best of several rounds.

use logaggregator::config::EventFormat;
use logaggregator::event::{Batch, FileState, Line, Progress};
use logaggregator::identity::{FileKey, Fingerprint};
use logaggregator::output::encode::Encoder;
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
}
