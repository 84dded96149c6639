//! Line splitting: finds whole lines in a chunk, truncates over-long ones, skips NUL holes.

use crate::event::Line;
use memchr::memchr;

/// State carried between chunks of one file.
#[derive(Debug)]
pub struct Splitter {
    /// Longest line kept; the rest of a longer line is skipped.
    pub max_line: usize,
    /// Inside the tail of an over-long line, discarding until its newline.
    pub skipping: bool,
    /// Lines truncated so far.
    pub truncated: u64,
    /// NUL bytes skipped at line starts so far.
    pub nul_bytes: u64,
}

/// Result of splitting one chunk.
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    /// Bytes consumed; `chunk[cut..]` is a partial line to carry into the next chunk.
    pub cut: usize,
    /// End of the last whole line (just past its newline), if any ended in this chunk.
    pub boundary: Option<usize>,
}

impl Splitter {
    /// A splitter for lines of at most `max_line` bytes.
    pub fn new(max_line: usize) -> Splitter {
        Splitter {
            max_line,
            skipping: false,
            truncated: 0,
            nul_bytes: 0,
        }
    }

    /// Splits `chunk` (which starts at a line start unless skipping) and appends its lines.
    pub fn split(&mut self, chunk: &[u8], lines: &mut Vec<Line>) -> Split {
        let len = chunk.len();
        let mut start = 0;
        let mut boundary = None;
        loop {
            if self.skipping {
                match memchr(b'\n', &chunk[start..]) {
                    Some(i) => {
                        start += i + 1;
                        self.skipping = false;
                        boundary = Some(start);
                    }
                    None => return Split { cut: len, boundary },
                }
            }
            // A writer without O_APPEND after copytruncate leaves a hole of NULs: not lines.
            if start < len && chunk[start] == 0 {
                let n = chunk[start..]
                    .iter()
                    .position(|&b| b != 0)
                    .unwrap_or(len - start);
                self.nul_bytes += n as u64;
                start += n;
            }
            match memchr(b'\n', &chunk[start..]) {
                Some(i) => {
                    let nl = start + i;
                    let mut end = nl;
                    if end > start && chunk[end - 1] == b'\r' {
                        end -= 1;
                    }
                    if end - start > self.max_line {
                        end = start + self.max_line;
                        self.truncated += 1;
                    }
                    lines.push(Line {
                        start: start as u32,
                        end: end as u32,
                    });
                    start = nl + 1;
                    boundary = Some(start);
                }
                None if len - start > self.max_line => {
                    // No newline within the limit: keep the head, skip the rest of the line.
                    lines.push(Line {
                        start: start as u32,
                        end: (start + self.max_line) as u32,
                    });
                    self.truncated += 1;
                    self.skipping = true;
                    start += self.max_line;
                }
                None => {
                    return Split {
                        cut: start,
                        boundary,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &mut Splitter, chunk: &[u8]) -> (Vec<String>, Split) {
        let mut lines = Vec::new();
        let r = s.split(chunk, &mut lines);
        let v = lines
            .iter()
            .map(|l| String::from_utf8_lossy(&chunk[l.start as usize..l.end as usize]).into_owned())
            .collect();
        (v, r)
    }

    #[test]
    fn whole_and_partial_lines() {
        let mut s = Splitter::new(100);
        let (v, r) = run(&mut s, b"a\r\n\nbc\npart");
        assert_eq!(v, vec!["a", "", "bc"]);
        assert_eq!(
            r,
            Split {
                cut: 7,
                boundary: Some(7)
            }
        );
        let (v, r) = run(&mut s, b"partial");
        assert!(v.is_empty());
        assert_eq!(
            r,
            Split {
                cut: 0,
                boundary: None
            }
        );
    }

    #[test]
    fn only_one_cr_stripped() {
        let mut s = Splitter::new(100);
        let (v, _) = run(&mut s, b"x\r\r\n");
        assert_eq!(v, vec!["x\r"]);
    }

    #[test]
    fn long_lines_truncated_across_chunks() {
        let mut s = Splitter::new(4);
        let (v, r) = run(&mut s, b"abcd\nabcde\nabcdefgh");
        assert_eq!(v, vec!["abcd", "abcd", "abcd"]);
        assert!(s.skipping);
        assert_eq!(
            r,
            Split {
                cut: 19,
                boundary: Some(11)
            }
        );
        let (v, r) = run(&mut s, b"ijk");
        assert!(v.is_empty());
        assert_eq!(
            r,
            Split {
                cut: 3,
                boundary: None
            }
        );
        let (v, r) = run(&mut s, b"xyz\nok\n");
        assert_eq!(v, vec!["ok"]);
        assert_eq!(
            r,
            Split {
                cut: 7,
                boundary: Some(7)
            }
        );
        assert_eq!(s.truncated, 2);
    }

    #[test]
    fn nul_holes_skipped() {
        let mut s = Splitter::new(100);
        let (v, r) = run(&mut s, b"\0\0\0\0hello\n\0\0");
        assert_eq!(v, vec!["hello"]);
        assert_eq!(r.cut, 12);
        assert_eq!(s.nul_bytes, 6);
    }
}
