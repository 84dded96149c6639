//! The CRI log line (containerd, CRI-O): `<RFC3339Nano time> <stdout|stderr> <P|F>[:tags] <text>`.
//! Parsed by hand with `memchr`: it runs for every line of every container.

use super::rfc3339;
use memchr::memchr;
use std::time::SystemTime;

/// One parsed CRI line; `text` borrows from the raw line.
#[derive(Debug, PartialEq)]
pub(crate) struct CriLine<'a> {
    /// The runtime's time.
    pub time: SystemTime,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// `F`: the line ends here; `P`: it goes on in the next record of the stream.
    pub full: bool,
    /// The payload (may be empty).
    pub text: &'a [u8],
}

/// Parses one raw line; `None` when it is not CRI-shaped.
pub(crate) fn parse(line: &[u8]) -> Option<CriLine<'_>> {
    let sp = memchr(b' ', line)?;
    let time = rfc3339::parse(&line[..sp])?;
    let rest = &line[sp + 1..];
    let (stream, rest) = if let Some(r) = rest.strip_prefix(b"stdout ") {
        ("stdout", r)
    } else if let Some(r) = rest.strip_prefix(b"stderr ") {
        ("stderr", r)
    } else {
        return None;
    };
    // `... stdout F` without the separating space is an empty message too.
    let (tags, text) = match memchr(b' ', rest) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    // Further tags after `:` are reserved by the CRI spec; only the first one matters.
    let first = match memchr(b':', tags) {
        Some(i) => &tags[..i],
        None => tags,
    };
    let full = match first {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some(CriLine {
        time,
        stream,
        full,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn parses_full_partial_tags_and_empty_text() {
        let l = parse(b"2026-12-01T10:00:00.123456789Z stdout F text with  spaces ").unwrap();
        assert_eq!(l.stream, "stdout");
        assert!(l.full);
        assert_eq!(l.text, b"text with  spaces ");
        assert_eq!(
            l.time,
            UNIX_EPOCH + Duration::new(1_796_119_200, 123_456_789)
        );
        let l = parse(b"2026-12-01T10:00:00+01:00 stderr P part").unwrap();
        assert_eq!((l.stream, l.full, l.text), ("stderr", false, &b"part"[..]));
        let l = parse(b"2026-12-01T10:00:00Z stdout F:x:y tagged").unwrap();
        assert_eq!((l.full, l.text), (true, &b"tagged"[..]));
        for empty in [
            &b"2026-12-01T10:00:00Z stdout F "[..],
            b"2026-12-01T10:00:00Z stdout F",
        ] {
            let l = parse(empty).unwrap();
            assert_eq!((l.full, l.text), (true, &b""[..]));
        }
    }

    #[test]
    fn rejects_other_shapes() {
        for s in [
            "",
            "plain text",
            "2026-12-01T10:00:00Z",
            "2026-12-01T10:00:00Z stdout",
            "2026-12-01T10:00:00Z stdin F x",
            "2026-12-01T10:00:00Z stdout X x",
            "2026-12-01T10:00:00Z stdout FF x",
            "2026-12-01T10:00:00Z stdout  F x",
            "2026-12-01 stdout F x",
            "{\"log\":\"x\\n\"}",
        ] {
            assert_eq!(parse(s.as_bytes()), None, "{s}");
        }
    }
}
