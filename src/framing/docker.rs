//! Docker's json-file records: `{"log":"text\n","stream":"stderr","time":"..."}`.

use super::rfc3339;
use serde::Deserialize;
use std::borrow::Cow;
use std::time::SystemTime;

/// One parsed Docker record.
#[derive(Debug, PartialEq)]
pub(crate) struct DockerLine<'a> {
    /// The runtime's time, if present and valid.
    pub time: Option<SystemTime>,
    /// `stdout` or `stderr`, if one of them.
    pub stream: Option<&'static str>,
    /// Whether `log` ended with a newline (the line is complete).
    pub full: bool,
    /// `log` without its trailing newline (owned when it had escapes, as `\n` is).
    pub text: Cow<'a, [u8]>,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    // Cow rather than Option<Cow>: only a bare Cow field borrows (serde's special case).
    #[serde(borrow, default)]
    stream: Cow<'a, str>,
    #[serde(borrow, default)]
    time: Cow<'a, str>,
}

/// Parses one raw line; `None` when it is not a JSON object with a string `log`.
pub(crate) fn parse(line: &[u8]) -> Option<DockerLine<'_>> {
    // Cheap pre-check: most non-Docker lines never reach the JSON parser.
    if line.first() != Some(&b'{') {
        return None;
    }
    let raw: Raw<'_> = serde_json::from_slice(line).ok()?;
    let stream = match &*raw.stream {
        "stdout" => Some("stdout"),
        "stderr" => Some("stderr"),
        _ => None,
    };
    let time = rfc3339::parse(raw.time.as_bytes());
    let full = raw.log.ends_with('\n');
    let text = match raw.log {
        Cow::Borrowed(s) => Cow::Borrowed(s.strip_suffix('\n').unwrap_or(s).as_bytes()),
        Cow::Owned(s) => {
            let mut v = s.into_bytes();
            if full {
                v.pop();
            }
            Cow::Owned(v)
        }
    };
    Some(DockerLine {
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
    fn parses_records() {
        let l = parse(br#"{"log":"text\n","stream":"stderr","time":"2026-12-01T10:00:00.5Z"}"#)
            .unwrap();
        assert_eq!(l.text, &b"text"[..]);
        assert_eq!(l.stream, Some("stderr"));
        assert!(l.full);
        assert_eq!(
            l.time,
            Some(UNIX_EPOCH + Duration::new(1_796_119_200, 500_000_000))
        );
        let l =
            parse(br#"{"log":"a \"quoted\" \u00e9 part","stream":"stdout","time":"x"}"#).unwrap();
        assert_eq!(&*l.text, "a \"quoted\" é part".as_bytes());
        assert_eq!((l.full, l.stream, l.time), (false, Some("stdout"), None));
        let l = parse(br#"{"log":"esc\t\n","attrs":{"tag":"x"}}"#).unwrap();
        assert_eq!((&*l.text, l.full, l.stream), (&b"esc\t"[..], true, None));
        let l = parse(br#"{"log":"\n"}"#).unwrap();
        assert_eq!((&*l.text, l.full), (&b""[..], true));
    }

    #[test]
    fn rejects_other_shapes() {
        for s in [
            "",
            "plain",
            "{}",
            r#"{"log":1}"#,
            r#"{"log":null}"#,
            r#"{"msg":"x"}"#,
            r#"{"log":"x\n""#,
            r#"["log"]"#,
            "2026-12-01T10:00:00Z stdout F x",
        ] {
            assert_eq!(parse(s.as_bytes()), None, "{s}");
        }
    }
}
