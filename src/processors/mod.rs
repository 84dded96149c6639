//! Processors: applied in order to every event of an input (parse_json, parse_regex,
//! parse_logfmt, parse_delimited, timestamp, filter, set, rename, remove, redact).
//!
//! Parsed fields join the event at the top level and replace fields of the same name. A line
//! a parser (or `timestamp`) cannot read is never dropped: it goes on unchanged apart from
//! `parse_error`, which names the processors that failed (`"parse_json, parse_regex"`), and
//! the processor's `failed` counter. Everything is compiled once by [`Processors::build`];
//! `apply` reuses per-processor scratch buffers, so a compiled list is cloned per file (each
//! tailer thread owns its copy; the clones share the regexes and counters).

mod fields;
mod parse;
mod timestamp;

use crate::condition::Condition;
use crate::config::ProcessorConfig;
use crate::record::{Event, Value};
use crate::stats;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// An input's processors, compiled.
#[derive(Debug, Default, Clone)]
pub struct Processors {
    steps: Vec<Step>,
}

/// One compiled processor with its counter.
#[derive(Debug, Clone)]
struct Step {
    /// The `type:` name, written to `parse_error` on failure.
    name: &'static str,
    kind: Kind,
    /// `failed` for parsers and timestamp, `dropped` for a filter; None for the others.
    counter: Option<Arc<AtomicU64>>,
}

#[derive(Debug, Clone)]
enum Kind {
    Json(parse::Json),
    Regex(parse::RegexParser),
    Logfmt(parse::Logfmt),
    Delimited(parse::Delimited),
    Timestamp(timestamp::Timestamp),
    Filter { cond: Condition, keep: bool },
    Set(fields::Set),
    Rename(fields::Rename),
    Remove(fields::Remove),
    Redact(fields::Redact),
}

impl Processors {
    /// Compiles `configs` of input `input_id`; `at` is the key path of the list
    /// (`inputs.files[0].processors`). An error names the key: `<at>[2].pattern: ...`.
    pub fn build(
        configs: &[ProcessorConfig],
        at: &str,
        input_id: &str,
    ) -> Result<Processors, String> {
        let steps = configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                build_step(c, i, input_id).map_err(|(key, msg)| match key {
                    Some(key) => format!("{at}[{i}].{key}: {msg}"),
                    None => format!("{at}[{i}]: {msg}"),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Processors { steps })
    }

    /// Runs the event through every processor; None when a filter dropped it.
    pub fn apply(&mut self, mut e: Event) -> Option<Event> {
        for s in &mut self.steps {
            let ok = match &mut s.kind {
                Kind::Json(p) => p.apply(&mut e),
                Kind::Regex(p) => p.apply(&mut e),
                Kind::Logfmt(p) => p.apply(&mut e),
                Kind::Delimited(p) => p.apply(&mut e),
                Kind::Timestamp(p) => p.apply(&mut e),
                Kind::Filter { cond, keep } => {
                    if cond.matches(&e) != *keep {
                        bump(&s.counter);
                        return None;
                    }
                    true
                }
                Kind::Set(p) => p.apply(&mut e),
                Kind::Rename(p) => p.apply(&mut e),
                Kind::Remove(p) => p.apply(&mut e),
                Kind::Redact(p) => p.apply(&mut e),
            };
            if !ok {
                mark_failed(&mut e, s.name);
                bump(&s.counter);
            }
        }
        Some(e)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// A build error: the key under the processor (None for the processor itself) and what.
type BuildError = (Option<&'static str>, String);

fn build_step(c: &ProcessorConfig, index: usize, input_id: &str) -> Result<Step, BuildError> {
    let name = c.type_name();
    let counter = |what| {
        Some(stats::stage_counter(
            input_id,
            &format!("{index}:{name}"),
            what,
        ))
    };
    let (kind, counter) = match c {
        ProcessorConfig::ParseJson { field } => {
            (Kind::Json(parse::Json::new(field)), counter("failed"))
        }
        ProcessorConfig::ParseRegex { pattern, field } => {
            let p = parse::RegexParser::new(pattern, field).map_err(|m| (Some("pattern"), m))?;
            (Kind::Regex(p), counter("failed"))
        }
        ProcessorConfig::ParseLogfmt { field } => {
            (Kind::Logfmt(parse::Logfmt::new(field)), counter("failed"))
        }
        ProcessorConfig::ParseDelimited {
            delimiter,
            fields,
            field,
        } => (
            Kind::Delimited(parse::Delimited::new(delimiter, fields, field)?),
            counter("failed"),
        ),
        ProcessorConfig::Timestamp {
            field,
            format,
            keep,
        } => {
            let t =
                timestamp::Timestamp::new(field, format, *keep).map_err(|m| (Some("format"), m))?;
            (Kind::Timestamp(t), counter("failed"))
        }
        ProcessorConfig::Filter { keep, drop } => {
            let (key, text, keep) = match (keep, drop) {
                (Some(k), None) => ("keep", k, true),
                (None, Some(d)) => ("drop", d, false),
                _ => return Err((None, "exactly one of keep and drop is required".into())),
            };
            let cond = Condition::parse(text).map_err(|e| (Some(key), e.to_string()))?;
            (Kind::Filter { cond, keep }, counter("dropped"))
        }
        ProcessorConfig::Set { fields } => (Kind::Set(fields::Set::new(&fields.0)), None),
        ProcessorConfig::Rename { fields } => (Kind::Rename(fields::Rename::new(&fields.0)), None),
        ProcessorConfig::Remove { fields } => (Kind::Remove(fields::Remove::new(fields)), None),
        ProcessorConfig::Redact {
            pattern,
            replacement,
            fields,
        } => (
            Kind::Redact(fields::Redact::new(pattern, replacement, fields)?),
            None,
        ),
    };
    Ok(Step {
        name,
        kind,
        counter,
    })
}

fn bump(counter: &Option<Arc<AtomicU64>>) {
    if let Some(c) = counter {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Name of the field that says which processors failed.
const PARSE_ERROR: &str = "parse_error";

/// Adds `name` to the event's `parse_error` (appending after an earlier failure).
fn mark_failed(e: &mut Event, name: &str) {
    match e.fields.get_mut(PARSE_ERROR) {
        Some(Value::Str(s)) => {
            s.push_str(", ");
            s.push_str(name);
        }
        _ => e.fields.insert(PARSE_ERROR, Value::from(name)),
    }
}

/// Copies the text of the field at `path` (own fields, then metadata) into `buf`, so a parser
/// can slice it while inserting into the event; false when there is no such field.
fn read_text(e: &Event, path: &str, buf: &mut String) -> bool {
    buf.clear();
    match e.get(path) {
        Some(v) => {
            buf.push_str(&v.to_text());
            true
        }
        None => false,
    }
}

/// A regex error on one line, as the condition language words it.
fn regex_error(e: &regex::Error) -> String {
    format!("invalid regex: {}", crate::condition::regex_reason(e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{Pairs, SetValue};
    use crate::record::Meta;
    use std::time::UNIX_EPOCH;

    pub(crate) fn event(line: &str) -> Event {
        Event::new(Arc::new(Meta::new("h", "/p.log", "app")), 0, line.into())
    }

    pub(crate) fn build(input: &str, configs: Vec<ProcessorConfig>) -> Processors {
        match Processors::build(&configs, "inputs.files[0].processors", input) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    pub(crate) fn build_err(configs: Vec<ProcessorConfig>) -> String {
        Processors::build(&configs, "inputs.files[0].processors", "t-err").unwrap_err()
    }

    pub(crate) fn counter(input: &str, stage: &str, what: &'static str) -> u64 {
        stats::get(&stats::stage_counter(input, stage, what))
    }

    pub(crate) fn json(e: &Event) -> String {
        let mut out = Vec::new();
        e.write_json(UNIX_EPOCH, &mut out);
        String::from_utf8(out).unwrap()
    }

    pub(crate) fn s(v: &str) -> String {
        v.to_string()
    }

    pub(crate) fn get(e: &Event, path: &str) -> Option<Value> {
        e.get(path).map(|v| v.into_owned())
    }

    fn filter(keep: Option<&str>, drop: Option<&str>) -> ProcessorConfig {
        ProcessorConfig::Filter {
            keep: keep.map(s),
            drop: drop.map(s),
        }
    }

    #[test]
    fn processors_are_clone_and_send_and_empty_lists_pass_events_through() {
        fn is_send<T: Send + Clone>() {}
        is_send::<Processors>();
        let mut p = build("t-empty", vec![]);
        assert!(p.is_empty());
        let e = p.apply(event("x")).unwrap();
        assert_eq!(e.message(), "x");
    }

    #[test]
    fn a_filter_drops_and_counts_with_either_condition_language() {
        // A bare quoted string: the message contains it.
        let mut p = build("t-filter-any", vec![filter(None, Some(r#""debug""#))]);
        assert!(!p.is_empty());
        assert!(p.apply(event(r#"level="debug" noisy"#)).is_none());
        assert!(p.apply(event("level=info fine")).is_some());
        assert_eq!(counter("t-filter-any", "0:filter", "dropped"), 1);
        let mut p = build("t-filter-any2", vec![filter(Some(r#""debug""#), None)]);
        assert!(p.apply(event(r#"level="debug" kept"#)).is_some());
        assert!(p.apply(event("level=info gone")).is_none());
        assert_eq!(counter("t-filter-any2", "0:filter", "dropped"), 1);
    }

    #[test]
    fn filters_see_parsed_fields() {
        let mut p = build(
            "t-filter-real",
            vec![
                ProcessorConfig::ParseLogfmt {
                    field: s("message"),
                },
                filter(Some("level >= warn"), None),
                filter(None, Some(r#"message ~ "health""#)),
            ],
        );
        assert!(p.apply(event("level=info msg=hi")).is_none());
        assert!(p.apply(event("level=error msg=boom")).is_some());
        assert!(p.apply(event("level=error msg=health")).is_none());
        assert_eq!(counter("t-filter-real", "1:filter", "dropped"), 1);
        assert_eq!(counter("t-filter-real", "2:filter", "dropped"), 1);
    }

    #[test]
    fn filter_build_errors_name_the_key() {
        let e = build_err(vec![
            ProcessorConfig::ParseJson {
                field: s("message"),
            },
            filter(Some("a"), Some("b")),
        ]);
        assert_eq!(
            e,
            "inputs.files[0].processors[1]: exactly one of keep and drop is required"
        );
        let e = build_err(vec![filter(None, None)]);
        assert_eq!(
            e,
            "inputs.files[0].processors[0]: exactly one of keep and drop is required"
        );
        let e = build_err(vec![filter(Some("level >="), None)]);
        assert!(
            e.starts_with("inputs.files[0].processors[0].keep: ") && e.contains(" at position "),
            "{e}"
        );
        let e = build_err(vec![filter(None, Some("("))]);
        assert!(e.starts_with("inputs.files[0].processors[0].drop: "), "{e}");
    }

    #[test]
    fn a_json_log_s_own_message_becomes_the_message_and_numbers_stay_numbers() {
        let mut p = build(
            "t-issue-json",
            vec![
                ProcessorConfig::ParseJson {
                    field: s("message"),
                },
                ProcessorConfig::Set {
                    fields: Pairs(vec![
                        (s("env"), SetValue::Str(s("prod"))),
                        (s("replicas"), SetValue::Int(3)),
                    ]),
                },
            ],
        );
        let line = r#"{"level":"info","message":"user \"bob\" in","status":200,"took":1.5}"#;
        let e = p.apply(event(line)).unwrap();
        assert_eq!(e.message(), r#"user "bob" in"#);
        assert_eq!(
            json(&e),
            r#"{"timestamp":"1970-01-01T00:00:00.000000Z","host":"h","path":"/p.log","offset":0,"source":"app","level":"info","message":"user \"bob\" in","status":200,"took":1.5,"env":"prod","replicas":3}"#
        );
    }

    #[test]
    fn the_access_log_example_parses_and_takes_its_time() {
        let mut p = build(
            "t-issue-access",
            vec![
                ProcessorConfig::ParseRegex {
                    pattern: s(
                        r#"^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<url>\S+)[^"]*" (?P<status>\d+)"#,
                    ),
                    field: s("message"),
                },
                ProcessorConfig::Timestamp {
                    field: s("time"),
                    format: s("%d/%b/%Y:%H:%M:%S %z"),
                    keep: false,
                },
            ],
        );
        let line = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#;
        let e = p.apply(event(line)).unwrap();
        assert_eq!(get(&e, "ip"), Some(Value::from("127.0.0.1")));
        assert_eq!(get(&e, "method"), Some(Value::from("GET")));
        assert_eq!(get(&e, "url"), Some(Value::from("/apache_pb.gif")));
        assert_eq!(get(&e, "status"), Some(Value::from("200")));
        assert!(e.fields.get("time").is_none());
        assert_eq!(
            e.time
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            971_211_336
        );
        assert!(json(&e).starts_with(r#"{"timestamp":"2000-10-10T20:55:36.000000Z""#));
        assert_eq!(e.message(), line);
        assert!(get(&e, "parse_error").is_none());
    }

    #[test]
    fn failures_of_several_processors_are_listed_in_order_and_counted_each() {
        let mut p = build(
            "t-fail-chain",
            vec![
                ProcessorConfig::ParseJson {
                    field: s("message"),
                },
                ProcessorConfig::ParseRegex {
                    pattern: s(r"^(?P<n>\d+)$"),
                    field: s("message"),
                },
                ProcessorConfig::Timestamp {
                    field: s("timestamp"),
                    format: s("rfc3339"),
                    keep: false,
                },
            ],
        );
        let e = p.apply(event("plain text")).unwrap();
        assert_eq!(e.message(), "plain text");
        assert_eq!(
            get(&e, "parse_error"),
            Some(Value::from("parse_json, parse_regex, timestamp"))
        );
        assert!(e.time.is_none());
        let mut q = p.clone();
        q.apply(event("also text"));
        for stage in ["0:parse_json", "1:parse_regex", "2:timestamp"] {
            assert_eq!(counter("t-fail-chain", stage, "failed"), 2, "{stage}");
        }
    }
}
