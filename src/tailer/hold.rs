//! How far a file may be acknowledged while events are pending. A pending event (a partial
//! CRI record, a multiline event waiting for lines) holds the checkpoint at its first line,
//! so that a restart reads it again, whole; the acknowledgement then needs the marker of
//! the bytes before that line, which is known only while its buffer is at hand. So markers
//! are kept for the line starts that may yet become that point.

use super::reader::last_bytes;
use crate::event::Line;
use crate::identity::{MARKER_BYTES, fnv1a};
use std::collections::VecDeque;

/// Markers kept at most: a pending event has at most max_lines lines, so this bounds only
/// pathological framing (thousands of partial records); beyond it the hold falls back to
/// an earlier point, which re-reads more after a restart but never skips a line.
const MAX_MARKS: usize = 8192;

/// Line starts at or after the oldest pending event, with their markers.
#[derive(Debug)]
pub struct Holds {
    marks: VecDeque<(u64, u64)>,
    /// The last point handed out: the fallback.
    last: (u64, u64),
}

/// One batch's bytes, to compute markers of its line starts.
pub struct Span<'a> {
    /// The bytes, starting at file offset `base`.
    pub buf: &'a [u8],
    /// Offset of `buf[0]`.
    pub base: u64,
    /// Up to MARKER_BYTES bytes before `buf`.
    pub before: &'a [u8],
    /// The lines of `buf`.
    pub lines: &'a [Line],
}

impl Holds {
    /// Nothing pending; reading starts at `offset` (marker `marker`).
    pub fn new(offset: u64, marker: u64) -> Holds {
        Holds {
            marks: VecDeque::new(),
            last: (offset, marker),
        }
    }

    /// The point to acknowledge up to after a batch: `boundary` when nothing is pending,
    /// else the first line of the oldest pending event (`pending`).
    pub fn point(
        &mut self,
        pending: Option<u64>,
        span: Option<Span<'_>>,
        boundary: (u64, u64),
    ) -> (u64, u64) {
        let Some(start) = pending else {
            self.marks.clear();
            self.last = boundary;
            return boundary;
        };
        while self.marks.front().is_some_and(|m| m.0 < start) {
            self.marks.pop_front();
        }
        if let Some(s) = span {
            for l in s.lines {
                let at = s.base + u64::from(l.start);
                if at < start || self.marks.len() >= MAX_MARKS {
                    continue;
                }
                let head = &s.buf[..l.start as usize];
                self.marks
                    .push_back((at, fnv1a(&last_bytes(s.before, head, MARKER_BYTES))));
            }
        }
        if let Some(&m) = self.marks.front().filter(|m| m.0 == start) {
            self.last = m;
        }
        self.last
    }

    /// Where a reopen would resume: the last point handed out.
    pub fn last(&self) -> (u64, u64) {
        self.last
    }

    /// Starts over (a new generation from offset 0).
    pub fn reset(&mut self) {
        self.marks.clear();
        self.last = (0, fnv1a(b""));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(buf: &[u8]) -> Vec<Line> {
        let mut v = Vec::new();
        let mut s = 0;
        for (i, b) in buf.iter().enumerate() {
            if *b == b'\n' {
                v.push(Line {
                    start: s as u32,
                    end: i as u32,
                });
                s = i + 1;
            }
        }
        v
    }

    #[test]
    fn holds_at_the_pending_line_with_its_marker_across_batches() {
        let mut h = Holds::new(0, fnv1a(b""));
        let a = b"one\ntwo\n";
        let la = lines(a);
        let span = Span {
            buf: a,
            base: 0,
            before: b"",
            lines: &la,
        };
        // "two" (offset 4) starts a pending event.
        assert_eq!(
            h.point(Some(4), Some(span), (8, fnv1a(a))),
            (4, fnv1a(b"one\n"))
        );
        let b = b"  at x\n";
        let lb = lines(b);
        let span = Span {
            buf: b,
            base: 8,
            before: a,
            lines: &lb,
        };
        // Still pending at 4: the marker computed in the first batch is kept.
        assert_eq!(h.point(Some(4), Some(span), (15, 0)), (4, fnv1a(b"one\n")));
        // The event is emitted; the line in the second batch begins the next one.
        assert_eq!(h.point(Some(8), None, (15, 0)), (8, fnv1a(a)));
        assert_eq!(h.point(None, None, (15, 7)), (15, 7));
        assert_eq!(h.last(), (15, 7));
    }

    #[test]
    fn an_unknown_start_falls_back_to_the_last_point() {
        let mut h = Holds::new(10, 3);
        assert_eq!(h.point(Some(50), None, (60, 0)), (10, 3));
    }
}
