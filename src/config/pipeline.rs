//! The processing options of a file input: framing (`format`), `kubernetes`, `multiline` and
//! `processors`. Only their shape lives here; what they mean is compiled and checked by the
//! modules that run them (`framing`, `processors`, `condition`), through `pipeline::build`.

use super::*;
use crate::record::ordered_pairs;

/// How a file frames its records (`format:` of a file input).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Framing {
    /// One record per line.
    #[default]
    Lines,
    /// The container runtime interface's log format (containerd, CRI-O).
    Cri,
    /// Docker's json-file driver.
    Docker,
    /// Told apart per file from its first record.
    Auto,
}

/// Built-in multiline rules for stack traces.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Java exceptions: `at ...`, `... N more`, `Caused by:`, `Suppressed:`.
    Java,
    /// Python tracebacks.
    Python,
    /// Go panics and goroutine dumps.
    Go,
}

/// The `multiline:` section of a file input: exactly one of start, continue, preset.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A line that matches begins an event; other lines join it.
    #[serde(default)]
    pub start: Option<String>,
    /// A line that matches joins the previous event.
    #[serde(default, rename = "continue")]
    pub continue_: Option<String>,
    /// Built-in rules.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// A pending event is emitted when no line joined it for this long.
    #[serde(default = "d_1s", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Events are cut after this many lines.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
    /// Events are cut at this many bytes.
    #[serde(default = "default_max_event_bytes", deserialize_with = "size")]
    pub max_bytes: u64,
}

fn default_max_lines() -> usize {
    500
}
fn default_max_event_bytes() -> u64 {
    1 << 20
}
fn message() -> String {
    "message".into()
}
fn timestamp() -> String {
    "timestamp".into()
}
fn rfc3339() -> String {
    "rfc3339".into()
}
fn stars() -> String {
    "***".into()
}

/// A YAML value given to `set` (text, number or boolean).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SetValue {
    /// true or false.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text.
    Str(String),
}

/// Field name → value pairs, in the order written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pairs<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Pairs<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ordered_pairs(d).map(Pairs)
    }
}

/// One entry of `processors:`, by its `type`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProcessorConfig {
    /// The field (default `message`) is a JSON object: its fields join the event.
    ParseJson {
        /// Which field holds the JSON.
        #[serde(default = "message")]
        field: String,
    },
    /// Named captures of a regex join the event (as strings).
    ParseRegex {
        /// The regex, with `(?P<name>...)` groups.
        pattern: String,
        /// Which field is matched.
        #[serde(default = "message")]
        field: String,
    },
    /// `key=value key2="quoted value"` pairs join the event.
    ParseLogfmt {
        /// Which field is parsed.
        #[serde(default = "message")]
        field: String,
    },
    /// Split by a delimiter into the named fields (as strings); the last takes the rest.
    ParseDelimited {
        /// The separator.
        delimiter: String,
        /// Names of the parts, in order.
        fields: Vec<String>,
        /// Which field is split.
        #[serde(default = "message")]
        field: String,
    },
    /// The event's time from a field.
    Timestamp {
        /// The field holding the time.
        #[serde(default = "timestamp")]
        field: String,
        /// rfc3339 | unix | unix_ms | a strftime pattern.
        #[serde(default = "rfc3339")]
        format: String,
        /// Keep the source field (by default it is consumed: the event's time carries it).
        #[serde(default)]
        keep: bool,
    },
    /// Keeps or drops events by a condition: exactly one of keep, drop.
    Filter {
        /// Events that match are kept, the others dropped.
        #[serde(default)]
        keep: Option<String>,
        /// Events that match are dropped.
        #[serde(default)]
        drop: Option<String>,
    },
    /// Sets fields to values (`${ENV}` works as everywhere in the file).
    Set {
        /// name → value.
        fields: Pairs<SetValue>,
    },
    /// Renames fields.
    Rename {
        /// old name → new name.
        fields: Pairs<String>,
    },
    /// Removes fields.
    Remove {
        /// The names.
        fields: Vec<String>,
    },
    /// Replaces matches of a regex in the message and the named fields.
    Redact {
        /// The regex.
        pattern: String,
        /// What a match becomes (`$1` refers to a group).
        #[serde(default = "stars")]
        replacement: String,
        /// Fields besides `message` to redact.
        #[serde(default)]
        fields: Vec<String>,
    },
}

impl ProcessorConfig {
    /// The `type:` name, for metrics and messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            ProcessorConfig::ParseJson { .. } => "parse_json",
            ProcessorConfig::ParseRegex { .. } => "parse_regex",
            ProcessorConfig::ParseLogfmt { .. } => "parse_logfmt",
            ProcessorConfig::ParseDelimited { .. } => "parse_delimited",
            ProcessorConfig::Timestamp { .. } => "timestamp",
            ProcessorConfig::Filter { .. } => "filter",
            ProcessorConfig::Set { .. } => "set",
            ProcessorConfig::Rename { .. } => "rename",
            ProcessorConfig::Remove { .. } => "remove",
            ProcessorConfig::Redact { .. } => "redact",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, String> {
        Config::parse(yaml, &|_| None).map_err(|e| e.0)
    }

    const BASE: &str = "inputs:\n  files:\n    - paths: [\"/x/*.log\"]\n";

    #[test]
    fn processors_parse_by_type_and_reject_unknown_types_and_keys() {
        let c = parse(&format!(
            "{BASE}      processors:\n        - type: parse_json\n        - {{type: set, fields: {{b: x, a: 2}}}}\n        - {{type: filter, drop: 'message ~ \"x\"'}}\n"
        ))
        .unwrap();
        let p = &c.inputs.files[0].processors;
        assert_eq!(
            p[0],
            ProcessorConfig::ParseJson {
                field: "message".into()
            }
        );
        match &p[1] {
            ProcessorConfig::Set { fields } => assert_eq!(
                fields.0,
                [
                    ("b".into(), SetValue::Str("x".into())),
                    ("a".into(), SetValue::Int(2))
                ]
            ),
            other => panic!("{other:?}"),
        }
        let e = parse(&format!(
            "{BASE}      processors:\n        - type: parse_xml\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("inputs.files[0].processors[0]") && e.contains("parse_xml"),
            "{e}"
        );
        let e = parse(&format!(
            "{BASE}      processors:\n        - type: parse_json\n        - {{type: parse_regex, patern: x}}\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("inputs.files[0].processors[1]") && e.contains("patern"),
            "{e}"
        );
    }

    #[test]
    fn multiline_defaults() {
        let c = parse(&format!("{BASE}      multiline: {{preset: java}}\n")).unwrap();
        let m = c.inputs.files[0].multiline.clone().unwrap();
        assert_eq!(
            (m.timeout, m.max_lines, m.max_bytes),
            (Duration::from_secs(1), 500, 1 << 20)
        );
        assert_eq!(m.preset, Some(Preset::Java));
        assert_eq!(c.inputs.files[0].format, Framing::Lines);
    }
}
