//! The parsers: parse_json, parse_regex, parse_logfmt, parse_delimited. Each reads one field
//! as text, and on success puts what it found at the top level of the event; on failure it
//! leaves the event as it was (the caller marks it). `apply` returns whether it parsed.

use super::{BuildError, read_text, regex_error};
use crate::record::{Event, Key, Value, intern};
use regex::{CaptureLocations, Regex};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use std::fmt;

/// parse_json: the field is a JSON object whose top-level fields take its place in the event
/// (as Fluent Bit's parser does): the raw text is not kept beside its own fields, which would
/// double every event's size. A JSON field named like the source (a log's own `message`)
/// is the new value; otherwise `rename` gives the event a message (`{msg: message}`).
#[derive(Debug, Clone)]
pub(super) struct Json {
    field: String,
    /// The parsed fields, held until the whole object has parsed (a failure changes nothing).
    pending: Vec<(Key, Value)>,
}

impl Json {
    pub(super) fn new(field: &str) -> Json {
        Json {
            field: field.to_string(),
            pending: Vec::new(),
        }
    }

    pub(super) fn apply(&mut self, e: &mut Event) -> bool {
        self.pending.clear();
        let ok = match e.get(&self.field) {
            Some(v) => parse_object_into(&v.to_text(), &mut self.pending).is_ok(),
            None => false,
        };
        if !ok {
            self.pending.clear();
            return false;
        }
        e.fields.remove(&self.field);
        for (k, v) in self.pending.drain(..) {
            e.fields.insert(k, v);
        }
        true
    }
}

/// Parses JSON object text into `out` in the object's order (serde_json straight into
/// `record::Value`: measured fastest for these small objects, see the commit message).
fn parse_object_into(text: &str, out: &mut Vec<(Key, Value)>) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_str(text);
    Pairs(out).deserialize(&mut de)?;
    de.end()
}

/// Deserializes a JSON object's fields into a vector; anything but an object is an error.
struct Pairs<'a>(&'a mut Vec<(Key, Value)>);

impl<'de> DeserializeSeed<'de> for Pairs<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Pairs<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let v: Value = map.next_value()?;
            self.0.push((intern(&k), v));
        }
        Ok(())
    }
}

/// parse_regex: named groups of a match become string fields (a group that took no part in
/// the match is absent); no match is a failure.
#[derive(Debug, Clone)]
pub(super) struct RegexParser {
    field: String,
    re: Regex,
    /// Group index and name of every named group.
    names: Vec<(usize, Key)>,
    /// Reused for every match: no allocation per event.
    locs: CaptureLocations,
    text: String,
}

impl RegexParser {
    /// Errors are about `pattern`.
    pub(super) fn new(pattern: &str, field: &str) -> Result<RegexParser, String> {
        let re = Regex::new(pattern).map_err(|e| regex_error(&e))?;
        let names: Vec<(usize, Key)> = (re.capture_names().enumerate())
            .filter_map(|(i, n)| Some((i, Key::from(n?))))
            .collect();
        if names.is_empty() {
            return Err("has no named group (?P<name>...); captures become fields by name".into());
        }
        Ok(RegexParser {
            field: field.to_string(),
            locs: re.capture_locations(),
            re,
            names,
            text: String::new(),
        })
    }

    pub(super) fn apply(&mut self, e: &mut Event) -> bool {
        if !read_text(e, &self.field, &mut self.text) {
            return false;
        }
        if self.re.captures_read(&mut self.locs, &self.text).is_none() {
            return false;
        }
        for (i, name) in &self.names {
            if let Some((from, to)) = self.locs.get(*i) {
                e.fields
                    .insert(name.clone(), Value::from(&self.text[from..to]));
            }
        }
        true
    }
}

/// parse_logfmt: `key=value key2="quoted \" value" flag`. A bare key is `true`; unquoted
/// integers and decimals become numbers (not ones with leading zeros, like `007`, nor
/// integers beyond i64, which are kept exactly as strings); quoted values stay strings.
/// Keys are letters, digits and `. - _ /`. A line with no `key=value` pair at all, an
/// unbalanced quote, or any other character out of place is a failure.
#[derive(Debug, Clone)]
pub(super) struct Logfmt {
    field: String,
    text: String,
    pending: Vec<(Key, Value)>,
}

impl Logfmt {
    pub(super) fn new(field: &str) -> Logfmt {
        Logfmt {
            field: field.to_string(),
            text: String::new(),
            pending: Vec::new(),
        }
    }

    pub(super) fn apply(&mut self, e: &mut Event) -> bool {
        self.pending.clear();
        if !read_text(e, &self.field, &mut self.text) || !logfmt(&self.text, &mut self.pending) {
            return false;
        }
        for (k, v) in self.pending.drain(..) {
            e.fields.insert(k, v);
        }
        true
    }
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '/')
}

/// Parses logfmt text into `out`; false (with `out` in any state) when it is not logfmt.
fn logfmt(text: &str, out: &mut Vec<(Key, Value)>) -> bool {
    let mut pairs = 0;
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest.find(|c: char| !is_key_char(c)).unwrap_or(rest.len());
        if key_end == 0 {
            return false;
        }
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let value = match rest.strip_prefix('=') {
            None => Value::Bool(true),
            Some(after) => {
                pairs += 1;
                if let Some(quoted) = after.strip_prefix('"') {
                    let Some((v, len)) = unquote(quoted) else {
                        return false;
                    };
                    rest = &quoted[len..];
                    Value::Str(v)
                } else {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    let v = &after[..end];
                    if v.contains('"') {
                        return false;
                    }
                    rest = &after[end..];
                    number(v).unwrap_or_else(|| Value::from(v))
                }
            }
        };
        // Pairs are separated by whitespace: `a=1b=2` or `a="x"y` is not logfmt.
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            return false;
        }
        out.push((intern(key), value));
        rest = rest.trim_start();
    }
    pairs > 0
}

/// Reads a quoted value after its opening quote: the text and the length consumed, closing
/// quote included; None when it never closes. `\"`, `\\`, `\n`, `\t`, `\r` are escapes;
/// another backslash stays as it is.
fn unquote(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let end = (0..b.len()).try_fold(false, |escaped, i| match (escaped, b[i]) {
        (false, b'"') => Err(i),
        (false, b'\\') => Ok(true),
        _ => Ok(false),
    });
    let Err(end) = end else {
        return None;
    };
    let raw = &s[..end];
    if !raw.contains('\\') {
        return Some((raw.to_string(), end + 1));
    }
    let mut v = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            v.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => v.push('\n'),
            Some('t') => v.push('\t'),
            Some('r') => v.push('\r'),
            Some(c @ ('"' | '\\')) => v.push(c),
            Some(c) => {
                v.push('\\');
                v.push(c);
            }
            None => v.push('\\'),
        }
    }
    Some((v, end + 1))
}

/// An unquoted value as a number, when it is written as one: `-12`, `3.5`, `1e3`. Not `007`
/// or `+1` (ids and codes keep their text), nor `inf`/`nan`, nor integers beyond i64.
fn number(v: &str) -> Option<Value> {
    let digits = v.strip_prefix('-').unwrap_or(v).as_bytes();
    let first = *digits.first()?;
    if !first.is_ascii_digit() || (first == b'0' && digits.get(1).is_some_and(u8::is_ascii_digit)) {
        return None;
    }
    if digits.iter().all(u8::is_ascii_digit) {
        return v.parse().ok().map(Value::Int);
    }
    if !(digits.iter()).all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let f: f64 = v.parse().ok()?;
    f.is_finite().then_some(Value::Float(f))
}

/// parse_delimited: the field split by the delimiter into the named fields, each part trimmed
/// of surrounding ASCII whitespace (for the common `ts | LEVEL | svc | msg` style). The last
/// field takes the rest of the line, delimiters included, so a message survives; fewer parts
/// than fields is a failure. Values are strings.
#[derive(Debug, Clone)]
pub(super) struct Delimited {
    field: String,
    delimiter: String,
    names: Vec<Key>,
    text: String,
}

impl Delimited {
    pub(super) fn new(
        delimiter: &str,
        names: &[String],
        field: &str,
    ) -> Result<Delimited, BuildError> {
        if delimiter.is_empty() {
            return Err((Some("delimiter"), "must not be empty".into()));
        }
        if names.is_empty() {
            return Err((Some("fields"), "at least one field name is required".into()));
        }
        if let Some(n) = names.iter().find(|n| n.is_empty()) {
            return Err((Some("fields"), format!("field name {n:?} is empty")));
        }
        Ok(Delimited {
            field: field.to_string(),
            delimiter: delimiter.to_string(),
            names: names.iter().map(|n| Key::from(n.as_str())).collect(),
            text: String::new(),
        })
    }

    pub(super) fn apply(&mut self, e: &mut Event) -> bool {
        if !read_text(e, &self.field, &mut self.text) {
            return false;
        }
        let n = self.names.len();
        // Counted first, so a short line leaves the event unchanged.
        if self.text.splitn(n, self.delimiter.as_str()).count() < n {
            return false;
        }
        let parts = self.text.splitn(n, self.delimiter.as_str());
        for (name, part) in self.names.iter().zip(parts) {
            let part = part.trim_matches(|c: char| c.is_ascii_whitespace());
            e.fields.insert(name.clone(), Value::from(part));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{build, build_err, counter, event, get, json, s};
    use super::*;
    use crate::config::ProcessorConfig;

    fn json_p(field: &str) -> ProcessorConfig {
        ProcessorConfig::ParseJson { field: s(field) }
    }
    fn regex_p(pattern: &str) -> ProcessorConfig {
        ProcessorConfig::ParseRegex {
            pattern: s(pattern),
            field: s("message"),
        }
    }
    fn logfmt_p() -> ProcessorConfig {
        ProcessorConfig::ParseLogfmt {
            field: s("message"),
        }
    }
    fn delim_p(delimiter: &str, fields: &[&str]) -> ProcessorConfig {
        ProcessorConfig::ParseDelimited {
            delimiter: s(delimiter),
            fields: fields.iter().map(|f| s(f)).collect(),
            field: s("message"),
        }
    }

    #[test]
    fn json_fields_take_the_source_s_place_in_order_replacing_same_names() {
        let mut p = build("t-json-ok", vec![json_p("message")]);
        let mut e = event(r#"{"level":"warn","n":-3,"f":0.25,"nested":{"a":[1,null]}}"#);
        e.set("level", Value::from("old"));
        let e = p.apply(e).unwrap();
        let out = json(&e);
        assert!(
            out.ends_with(r#""level":"warn","n":-3,"f":0.25,"nested":{"a":[1,null]}}"#)
                && !out.contains(r#""message""#),
            "{out}"
        );
        assert_eq!(
            get(&e, "nested.a"),
            Some(Value::Array(vec![Value::Int(1), Value::Null]))
        );
        assert_eq!(counter("t-json-ok", "0:parse_json", "failed"), 0);
    }

    #[test]
    fn json_from_another_field_replaces_that_field_and_keeps_the_message() {
        let mut p = build("t-json-field", vec![json_p("payload")]);
        let mut e = event("line");
        e.set("payload", Value::from(r#"{"a":1}"#));
        let e = p.apply(e).unwrap();
        assert_eq!(get(&e, "a"), Some(Value::Int(1)));
        assert_eq!(get(&e, "payload"), None);
        assert_eq!(e.message(), "line");
        let mut e = event("line");
        e.set("payload", Value::from(r#"{"message":"inner"}"#));
        assert_eq!(p.apply(e).unwrap().message(), "inner");
    }

    #[test]
    fn json_failures_leave_the_event_and_count() {
        let mut p = build("t-json-fail", vec![json_p("message")]);
        for line in [
            r#"[1,2]"#,
            r#""text""#,
            r#"{"a":1"#,
            r#"{"a":1} trailing"#,
            "",
            "{\"a\":1,}",
        ] {
            let e = p.apply(event(line)).unwrap();
            assert_eq!(e.message(), line);
            assert_eq!(e.fields.len(), 2, "{line}: {:?}", e.fields);
            assert_eq!(get(&e, "parse_error"), Some(Value::from("parse_json")));
        }
        let mut q = build("t-json-missing", vec![json_p("nope")]);
        let e = q.apply(event("{}")).unwrap();
        assert_eq!(get(&e, "parse_error"), Some(Value::from("parse_json")));
        assert_eq!(counter("t-json-fail", "0:parse_json", "failed"), 6);
        assert_eq!(counter("t-json-missing", "0:parse_json", "failed"), 1);
    }

    #[test]
    fn json_objects_with_whitespace_and_empty_objects_parse() {
        let mut p = build("t-json-ws", vec![json_p("message")]);
        let e = p.apply(event(" { \"a\" : true }  ")).unwrap();
        assert_eq!(get(&e, "a"), Some(Value::Bool(true)));
        let e = p.apply(event("{}")).unwrap();
        assert!(get(&e, "parse_error").is_none());
    }

    #[test]
    fn regex_named_groups_become_strings_and_optional_ones_may_be_absent() {
        let mut p = build(
            "t-re-ok",
            vec![regex_p(
                r"^(?P<level>[A-Z]+)(?: \[(?P<thread>\w+)\])? (\d+) (?P<msg>.*)$",
            )],
        );
        let e = p.apply(event("INFO [main] 42 started")).unwrap();
        assert_eq!(get(&e, "level"), Some(Value::from("INFO")));
        assert_eq!(get(&e, "thread"), Some(Value::from("main")));
        assert_eq!(get(&e, "msg"), Some(Value::from("started")));
        let e = p.apply(event("WARN 7 no thread")).unwrap();
        assert!(get(&e, "thread").is_none());
        assert_eq!(get(&e, "msg"), Some(Value::from("no thread")));
        let e = p.apply(event("lowercase 1 x")).unwrap();
        assert_eq!(get(&e, "parse_error"), Some(Value::from("parse_regex")));
        assert!(get(&e, "msg").is_none());
        assert_eq!(counter("t-re-ok", "0:parse_regex", "failed"), 1);
    }

    #[test]
    fn regex_reads_metadata_fields_too() {
        let mut p = build(
            "t-re-meta",
            vec![ProcessorConfig::ParseRegex {
                pattern: s(r"^/(?P<file>\w+)\.log$"),
                field: s("path"),
            }],
        );
        assert_eq!(
            get(&p.apply(event("x")).unwrap(), "file"),
            Some(Value::from("p"))
        );
    }

    #[test]
    fn regex_build_errors_name_the_pattern() {
        let e = build_err(vec![
            json_p("message"),
            json_p("message"),
            regex_p("(unclosed"),
        ]);
        assert_eq!(
            e,
            "inputs.files[0].processors[2].pattern: invalid regex: unclosed group"
        );
        let e = build_err(vec![regex_p(r"^(\d+) (.*)$")]);
        assert_eq!(
            e,
            "inputs.files[0].processors[0].pattern: has no named group (?P<name>...); captures become fields by name"
        );
    }

    #[test]
    fn logfmt_reads_pairs_quotes_bare_keys_and_numbers() {
        let mut p = build("t-lf-ok", vec![logfmt_p()]);
        let e = p
            .apply(event(
                r#"ts=2024-12-01T10:30:45Z level=info msg="user \"bob\" logged in" http.status=200 took=1.5 neg=-2 id="42" zip=02134 big=99999999999999999999 v=1.2.3 empty= dry-run k8s/pod=api-1 "#,
            ))
            .unwrap();
        let want = [
            ("ts", Value::from("2024-12-01T10:30:45Z")),
            ("level", Value::from("info")),
            ("msg", Value::from(r#"user "bob" logged in"#)),
            ("http.status", Value::Int(200)),
            ("took", Value::Float(1.5)),
            ("neg", Value::Int(-2)),
            ("id", Value::from("42")),
            ("zip", Value::from("02134")),
            ("big", Value::from("99999999999999999999")),
            ("v", Value::from("1.2.3")),
            ("empty", Value::from("")),
            ("dry-run", Value::Bool(true)),
            ("k8s/pod", Value::from("api-1")),
        ];
        for (k, v) in want {
            assert_eq!(e.fields.get(k), Some(&v), "{k}");
        }
        assert!(get(&e, "parse_error").is_none());
        // Dotted keys stay top-level names, as every parser's fields do.
        assert!(e.fields.get("http").is_none());
    }

    #[test]
    fn logfmt_rejects_garbage_unchanged() {
        let mut p = build("t-lf-fail", vec![logfmt_p()]);
        let bad = [
            "just some words",
            r#"a=1 msg="unbalanced"#,
            r#"a="x"b=2"#,
            "a=1 =2",
            "a=b\"c",
            "error: a=1",
            "",
        ];
        for line in bad {
            let e = p.apply(event(line)).unwrap();
            assert_eq!(e.fields.len(), 2, "{line}: {:?}", e.fields);
            assert_eq!(get(&e, "parse_error"), Some(Value::from("parse_logfmt")));
        }
        assert_eq!(
            counter("t-lf-fail", "0:parse_logfmt", "failed"),
            bad.len() as u64
        );
    }

    #[test]
    fn logfmt_escapes_and_numbers() {
        let mut v = Vec::new();
        assert!(logfmt(r#"a="tab\there \\ \q" b="" c=1e3 d=inf"#, &mut v));
        assert_eq!(v[0].1, Value::from("tab\there \\ \\q"));
        assert_eq!(v[1].1, Value::from(""));
        assert_eq!(v[2].1, Value::Float(1000.0));
        assert_eq!(v[3].1, Value::from("inf"));
        assert_eq!(number("0"), Some(Value::Int(0)));
        assert_eq!(number("0.5"), Some(Value::Float(0.5)));
        assert_eq!(number("-"), None);
        assert_eq!(number("1-2"), None);
        assert_eq!(number("+1"), None);
    }

    #[test]
    fn delimited_splits_trims_and_the_last_field_takes_the_rest() {
        let mut p = build(
            "t-dl-ok",
            vec![delim_p("|", &["timestamp", "level", "service", "message"])],
        );
        let e = p
            .apply(event(
                "2024-12-01T10:30:45Z|INFO|api-server|User login successful",
            ))
            .unwrap();
        assert_eq!(
            get(&e, "timestamp"),
            Some(Value::from("2024-12-01T10:30:45Z"))
        );
        assert_eq!(get(&e, "level"), Some(Value::from("INFO")));
        assert_eq!(get(&e, "service"), Some(Value::from("api-server")));
        assert_eq!(e.message(), "User login successful");
        let e = p.apply(event(" ts | WARN |  svc | a | b ")).unwrap();
        assert_eq!(get(&e, "level"), Some(Value::from("WARN")));
        assert_eq!(e.message(), "a | b");
        let e = p.apply(event("ts||svc|")).unwrap();
        assert_eq!(get(&e, "level"), Some(Value::from("")));
        assert_eq!(e.message(), "");
        assert!(get(&e, "parse_error").is_none());
    }

    #[test]
    fn delimited_with_a_multi_char_delimiter_and_short_lines() {
        let mut p = build("t-dl-fail", vec![delim_p(" :: ", &["a", "b", "c"])]);
        let e = p.apply(event("1 :: 2 :: 3 :: 4")).unwrap();
        assert_eq!(
            (get(&e, "a"), get(&e, "c")),
            (Some(Value::from("1")), Some(Value::from("3 :: 4")))
        );
        let e = p.apply(event("1 :: 2")).unwrap();
        assert_eq!(e.fields.len(), 2);
        assert!(get(&e, "a").is_none());
        assert_eq!(get(&e, "parse_error"), Some(Value::from("parse_delimited")));
        assert_eq!(counter("t-dl-fail", "0:parse_delimited", "failed"), 1);
    }

    #[test]
    fn delimited_build_errors() {
        assert_eq!(
            build_err(vec![json_p("message"), delim_p("", &["a"])]),
            "inputs.files[0].processors[1].delimiter: must not be empty"
        );
        assert_eq!(
            build_err(vec![json_p("message"), delim_p(",", &[])]),
            "inputs.files[0].processors[1].fields: at least one field name is required"
        );
    }
}
