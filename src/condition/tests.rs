use super::*;
use crate::record::{Event, Map, Meta, Value, parse_object};
use std::sync::Arc;

/// An event from input `app` on host `web-1`, file offset 42, in namespace `prod`, whose own
/// fields are `json`.
fn event(json: &str) -> Event {
    let mut meta = Meta::new("web-1", "/var/log/app.log", "app");
    let mut k = Map::new();
    k.insert("namespace", Value::from("prod"));
    meta.extra.insert("kubernetes", Value::Object(k));
    let mut e = Event::new(Arc::new(meta), 42, String::new());
    e.fields = parse_object(json.as_bytes()).unwrap();
    e
}

fn m(cond: &str, json: &str) -> bool {
    Condition::parse(cond)
        .unwrap_or_else(|e| panic!("{cond:?}: {e}"))
        .matches(&event(json))
}

fn err(cond: &str) -> String {
    match Condition::parse(cond) {
        Ok(c) => panic!("{cond:?} parsed: {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    let c = "a=1 or b=2 and c=3";
    assert!(m(c, r#"{"a":1,"b":0,"c":0}"#), "a=1 or (b=2 and c=3)");
    assert!(!m(c, r#"{"a":0,"b":2,"c":0}"#));
    assert!(m(c, r#"{"a":0,"b":2,"c":3}"#));
    let c = "not a=1 and b=2";
    assert!(m(c, r#"{"a":2,"b":2}"#));
    assert!(!m(c, r#"{"a":1,"b":3}"#), "(not a=1) and b=2");
    assert!(!m("(a=1 or b=2) and c=3", r#"{"a":1,"b":0,"c":0}"#));
    assert!(m("not (a=1 and b=2)", r#"{"a":1,"b":3}"#));
    assert!(m("a=1 | b=2 & c=3", r#"{"a":1}"#));
    assert!(m("a=1 || b=2 && c=3", r#"{"a":1}"#));
    assert!(!m("! a=1 & b=2", r#"{"a":1,"b":2}"#));
    assert!(m("!a=1 & b=2", r#"{"a":0,"b":2}"#));
    assert!(m("NOT a=1 AND b=2 Or c=3", r#"{"c":3}"#));
    assert!(m("not not a=1", r#"{"a":1}"#));
    assert!(m("((a=1))", r#"{"a":1}"#));
    assert!(m(
        "a=1 and (b=2 or c=3) and not d=4",
        r#"{"a":1,"c":3,"d":5}"#
    ));
}

#[test]
fn quoted_values_take_both_quotes_and_escapes() {
    let j = r#"{"s":"say \"hi\"","t":"it's","u":"a\\b","v":"a\nb\tc","w":"a=b&c | (d)","k":"and","e":""}"#;
    assert!(m(r#"s = "say \"hi\"""#, j));
    assert!(m(r#"s = 'say "hi"'"#, j));
    assert!(m(r#"t = "it's""#, j));
    assert!(m(r"t = 'it\'s'", j));
    assert!(m(r#"u = "a\\b""#, j));
    assert!(m(r#"v = "a\nb\tc""#, j));
    assert!(m(r#"w = "a=b&c | (d)""#, j));
    assert!(m(r#"k = "and""#, j) && !m("k = 'AND'", j));
    assert!(m(r#"e = """#, j) && m("e = ''", j));
    // A backslash before anything else stays, so a regex needs no doubling.
    assert!(m(r#"n ~ "^\d+\.\d$""#, r#"{"n":"12.5"}"#));
    assert!(m(r#"n = "\d""#, r#"{"n":"\\d"}"#));
    assert!(m(r#"n ~ "^\\d$""#, r#"{"n":"7"}"#));
}

#[test]
fn every_operator_and_missing_fields() {
    let j = r#"{"n":5}"#;
    let cases = [
        ("n = 5", true),
        ("n == 5", true),
        ("n != 5", false),
        ("n != 6", true),
        ("n > 4", true),
        ("n > 5", false),
        ("n >= 5", true),
        ("n >= 6", false),
        ("n < 6", true),
        ("n < 5", false),
        ("n <= 5", true),
        ("n <= 4", false),
        ("n ~ ^5$", true),
        ("n !~ ^5$", false),
        ("n !~ 6", true),
        // A missing field: only the negative operators hold.
        ("x = 5", false),
        ("x != 5", true),
        ("x > 1", false),
        ("x >= 1", false),
        ("x < 1", false),
        ("x <= 1", false),
        ("x ~ .", false),
        ("x ~ ''", false),
        ("x !~ .", true),
    ];
    for (c, want) in cases {
        assert_eq!(m(c, j), want, "{c}");
    }
    let j = r#"{"path":"/api/v1/users","status":503,"ok":true,"nil":null,"tags":["a","b"]}"#;
    assert!(m(r#"path ~ "^/api/v1""#, j));
    assert!(m("path ~ ^/api/v1", j), "bare-word regex");
    assert!(m("path ~ users", j), "unanchored");
    assert!(!m("path ~ ^users", j));
    assert!(m(r#"path !~ "^/health""#, j));
    assert!(m("status ~ ^5", j), "a number matches as its text");
    assert!(m("ok = true", j) && m("ok != false", j));
    assert!(m("nil = null", j));
    assert!(m(r#"tags = '["a","b"]'"#, j) && m(r#"tags ~ '"b"'"#, j));
}

#[test]
fn levels_compare_by_severity_with_aliases_in_any_case() {
    for level in [
        "WARN", "warn", "Warning", "Error", "err", "FATAL", "critical", "crit",
    ] {
        assert!(
            m("level >= warn", &format!(r#"{{"level":"{level}"}}"#)),
            "{level}"
        );
    }
    for level in ["info", "INFO", "debug", "trace", "information"] {
        assert!(
            !m("level >= warn", &format!(r#"{{"level":"{level}"}}"#)),
            "{level}"
        );
    }
    assert!(m("level = warning", r#"{"level":"warn"}"#));
    assert!(m("level = WARN", r#"{"level":"warning"}"#));
    assert!(m("level != warn", r#"{"level":"error"}"#));
    assert!(m("level < info", r#"{"level":"DEBUG"}"#));
    assert!(m("level > error", r#"{"level":"panic"}"#));
    assert!(m("level <= trace", r#"{"level":"Trace"}"#));
    // The last segment names it, in any case.
    assert!(m("log.level >= error", r#"{"log":{"level":"crit"}}"#));
    assert!(m("Level >= warn", r#"{"Level":"Error"}"#));
    // Not both severities: numbers, then text.
    assert!(m("level = custom", r#"{"level":"custom"}"#));
    assert!(!m("level >= warn", r#"{"level":"custom"}"#));
    assert!(m("level >= 40", r#"{"level":50}"#));
    // A level that is no severity is neither above nor below one (not text order).
    assert!(!m("level >= warn", r#"{"level":"zzz"}"#));
    assert!(!m("level < warn", r#"{"level":"zzz"}"#));
    assert!(m("level != warn", r#"{"level":"zzz"}"#));
    // pino/bunyan numeric levels: 40 warn, 50 error, 30 info.
    assert!(m("level >= warn", r#"{"level":50}"#));
    assert!(m("level = warn", r#"{"level":40}"#));
    assert!(!m("level >= warn", r#"{"level":30}"#));
    // Other fields holding severity names compare as text.
    assert!(!m("sev >= warn", r#"{"sev":"error"}"#));
    assert!(!m("sev = warning", r#"{"sev":"warn"}"#));
}

#[test]
fn numbers_compare_as_numbers_and_text_as_text() {
    assert!(m("x > 9", r#"{"x":"10"}"#), "numeric, not \"10\" < \"9\"");
    assert!(m(r#"x > "9""#, r#"{"x":10}"#));
    assert!(m("x > abb", r#"{"x":"abc"}"#) && !m("x < abb", r#"{"x":"abc"}"#));
    assert!(m("x = 1.0", r#"{"x":"1"}"#) && m("x = 1", r#"{"x":1.0}"#));
    assert!(m("x = 5", r#"{"x":" 5 "}"#));
    assert!(m("t > 1.5", r#"{"t":1.75}"#) && m("t < -1e3", r#"{"t":-1001}"#));
    assert!(m("http.status >= 500", r#"{"http":{"status":"503"}}"#));
    assert!(m("http.status >= 500", r#"{"http":{"status":503}}"#));
    assert!(!m("http.status >= 500", r#"{"http":{"status":499}}"#));
    // Integers compare exactly, past f64's 2^53.
    assert!(!m("id = 9007199254740993", r#"{"id":9007199254740992}"#));
    assert!(m("id > 9007199254740992", r#"{"id":9007199254740993}"#));
    // NaN is not a number here, so it equals itself as text.
    assert!(m("x = nan", r#"{"x":"nan"}"#) && m("x = inf", r#"{"x":"inf"}"#));
    assert!(!m("x = abc", r#"{"x":5}"#) && m("x != abc", r#"{"x":5}"#));
    assert!(m("x = ABC", r#"{"x":"ABC"}"#) && !m("x = abc", r#"{"x":"ABC"}"#));
    assert!(m("ip = 10.0.0.1", r#"{"ip":"10.0.0.1"}"#));
    assert!(m("path = /api/v1", r#"{"path":"/api/v1"}"#));
    let ts = r#"{"ts":"2024-12-01T10:00:00Z"}"#;
    assert!(m("ts = 2024-12-01T10:00:00Z", ts) && m("ts >= 2024-12-01T00:00:00Z", ts));
}

#[test]
fn dotted_names_reach_nested_fields_and_metadata() {
    let j = r#"{"message":"m","http":{"status":503,"req":{"method":"GET"}},"a.b":1}"#;
    assert!(m("http.req.method = GET", j));
    assert!(m("a.b = 1", j), "a dotted key as written");
    assert!(!m("http.req = GET", j) && !m("http.nope = 1", j));
    assert!(m("kubernetes.namespace = prod", j));
    assert!(m("source = app", j) && m("host = web-1", j));
    assert!(m("path = /var/log/app.log", j));
    assert!(m("offset >= 10", j) && !m("offset < 10", j) && m("offset = 42", j));
    assert!(m("message = m", j));
}

#[test]
fn the_issue_example_works_as_written() {
    let c = "service=apsouth-1&level=warn";
    assert!(m(c, r#"{"service":"apsouth-1","level":"WARN"}"#));
    assert!(m(c, r#"{"service":"apsouth-1","level":"warning"}"#));
    assert!(!m(c, r#"{"service":"apsouth-1","level":"error"}"#));
    assert!(!m(c, r#"{"service":"apsouth-2","level":"warn"}"#));
    assert!(!m(c, r#"{"level":"warn"}"#));
}

#[test]
fn has_is_true_for_present_fields_even_null() {
    let j = r#"{"a":1,"n":null,"http":{"status":200}}"#;
    assert!(m("has(a)", j) && m("has(n)", j) && m("HAS ( a )", j));
    assert!(m("has(http.status)", j) && m("has(http)", j));
    assert!(!m("has(b)", j) && m("not has(b)", j) && m("!has(b)", j));
    assert!(m("has(source) and has(kubernetes.namespace)", j));
}

#[test]
fn a_quoted_string_alone_searches_the_message() {
    let j = r#"{"message":"dial tcp: connection refused","level":"error"}"#;
    assert!(m(r#""connection refused""#, j));
    assert!(m("'refused'", j));
    assert!(!m(r#""Connection Refused""#, j), "case-sensitive");
    assert!(m(r#""refused" and level = error"#, j));
    assert!(!m(r#"not "refused""#, j));
    assert!(m(r#""""#, j), "the empty string is in every message");
    assert!(
        !m(r#""refused""#, r#"{"msg":"refused"}"#),
        "only the message"
    );
}

#[test]
fn parse_errors_say_what_and_where() {
    let cases = [
        ("", "empty condition at position 1"),
        ("   ", "empty condition at position 1"),
        (r#"msg = "abc"#, "unclosed quote `\"` at position 7"),
        ("msg = 'abc", "unclosed quote `'` at position 7"),
        (r#""abc\""#, "unclosed quote `\"` at position 1"),
        ("(a=1 or b=2", "unclosed `(` at position 1"),
        ("a=1 and (b=2 or (c=3)", "unclosed `(` at position 9"),
        ("a=1)", "unexpected `)` at position 4"),
        (")", "unexpected `)` at position 1"),
        ("a =", "expected a value after `=` at position 4"),
        (
            "http.status >= and",
            "expected a value after `>=`, found `and` at position 16",
        ),
        ("a ~", "expected a value after `~` at position 4"),
        (
            "a !=)",
            "expected a value after `!=`, found `)` at position 5",
        ),
        ("a=1 and", "expected a field name after `and` at position 8"),
        (
            "a=1 and or b=2",
            "expected a field name after `and`, found `or` at position 9",
        ),
        ("a=1 &", "expected a field name after `&` at position 6"),
        ("not", "expected a field name after `not` at position 4"),
        (
            "()",
            "expected a field name after `(`, found `)` at position 2",
        ),
        ("= 5", "unexpected `=` at position 1"),
        ("error", "expected an operator after `error` at position 6"),
        (
            "level warn",
            "expected an operator after `level`, found `warn` at position 7",
        ),
        (
            "foo(a)",
            "unknown function `foo` (the only function is `has`) at position 1",
        ),
        (
            "a=1 and count (x) > 1",
            "unknown function `count` (the only function is `has`) at position 9",
        ),
        ("a=1 b=2", "unexpected `b` at position 5"),
        ("(a=1 b=2)", "unexpected `b` at position 6"),
        (r#""x" = 1"#, "unexpected `=` at position 5"),
        (
            r#"a ~ "(unclosed""#,
            "invalid regex `(unclosed`: unclosed group at position 5",
        ),
        ("has a", "expected `(` after `has`, found `a` at position 5"),
        ("has", "expected `(` after `has` at position 4"),
        (
            "has()",
            "expected a field name after `(`, found `)` at position 5",
        ),
        ("has(a", "unclosed `(` at position 4"),
        (
            "has(a b)",
            "expected `)` after `a`, found `b` at position 7",
        ),
        (
            r#"has("a")"#,
            "expected a field name after `(`, found `\"a\"` at position 5",
        ),
        // The first error in reading order wins over a later unclosed quote.
        (
            r#"a = ) "x"#,
            "expected a value after `=`, found `)` at position 5",
        ),
        // Positions count characters, not bytes.
        (
            r#""ünïcode" and )"#,
            "expected a field name after `and`, found `)` at position 15",
        ),
    ];
    for (c, want) in cases {
        assert_eq!(err(c), want, "{c:?}");
    }
    let e = err("a !~ [z-a]");
    assert!(e.starts_with("invalid regex `[z-a]`: ") && e.ends_with(" at position 6"));
    assert!(!e.contains('\n'), "{e}");
    let e = Condition::parse("a =").unwrap_err();
    assert_eq!(
        (e.position, e.message.as_str()),
        (4, "expected a value after `=`")
    );
}

#[test]
fn nesting_is_limited_without_overflowing_the_stack() {
    let deep = |n: usize| format!("{}a=1{}", "(".repeat(n), ")".repeat(n));
    assert!(m(&deep(100), r#"{"a":1}"#));
    assert_eq!(err(&deep(101)), "nesting deeper than 100 at position 101");
    assert_eq!(
        err(&"(".repeat(100_000)),
        "nesting deeper than 100 at position 101"
    );
    assert_eq!(
        err(&format!("{}a=1", "not ".repeat(101))),
        "nesting deeper than 100 at position 401"
    );
    assert_eq!(
        err(&"!".repeat(100_000)),
        "nesting deeper than 100 at position 101"
    );
    // Long chains are flat lists, not deep trees: no limit, no overflow.
    let chain = format!("{}a=1", "a=2 or b=1 and ".repeat(50_000));
    assert!(m(&chain, r#"{"a":1,"b":1}"#));
    assert!(!m(&chain, r#"{"a":1}"#));
}

#[test]
fn no_input_panics_and_every_error_points_into_the_text() {
    const PIECES: [&str; 22] = [
        "a", "=", "(", ")", "\"", "'", "\\", "!", "~", "&", "|", "<", ">", " ", "level", "not",
        "has", "5", ".", "é", "warn", "[",
    ];
    let e = event(r#"{"a":"5","level":"warn","message":"a=5"}"#);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        let mut text = String::new();
        // xorshift: deterministic, no dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        for k in 0..(seed % 10) {
            text.push_str(PIECES[((seed >> (k * 5 + 4)) % 22) as usize]);
        }
        match Condition::parse(&text) {
            Ok(c) => {
                c.matches(&e);
            }
            Err(err) => {
                let len = text.chars().count();
                assert!((1..=len + 1).contains(&err.position), "{text:?}: {err}");
            }
        }
    }
}

#[test]
fn conditions_keep_their_text_and_read_any_lookup() {
    let c: Condition = "level >= warn".parse().unwrap();
    assert_eq!(c.text(), "level >= warn");
    assert_eq!(c.to_string(), "level >= warn");
    // A lookup that is not an event, as a stored row will be.
    struct Row(Map);
    impl Lookup for Row {
        fn get(&self, path: &str) -> Option<Cow<'_, Value>> {
            self.0.get_path(path).map(Cow::Borrowed)
        }
        fn message(&self) -> Cow<'_, str> {
            Cow::Borrowed("stored")
        }
    }
    let row = Row(parse_object(br#"{"level":"error"}"#).unwrap());
    assert!(c.matches(&row));
    assert!(Condition::parse(r#""stor""#).unwrap().matches(&row));
    let e: Box<dyn std::error::Error> = Box::new(Condition::parse("").unwrap_err());
    assert_eq!(e.to_string(), "empty condition at position 1");
}
