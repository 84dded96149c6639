//! Configuration: `${ENV}` expansion, YAML parsing, validation and defaults.

use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod checkpoint_dir;
mod env;
mod pipeline;
mod units;

pub use checkpoint_dir::{CheckpointDir, check_checkpoint_dir};
pub use env::expand_env;
use env::*;
pub use pipeline::{Framing, MultilineConfig, Pairs, Preset, ProcessorConfig, SetValue};
use units::*;
pub use units::{parse_duration, parse_size};

/// A configuration problem; the agent exits 2 on any of these.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where lines come from.
    pub inputs: Inputs,
    /// The agent's own logs.
    #[serde(default)]
    pub logging: Logging,
    /// Where events go.
    #[serde(default)]
    pub output: OutputConfig,
    /// The HTTP API for metrics, health and stats; absent means no HTTP server.
    #[serde(default)]
    pub api: Option<ApiConfig>,
}

/// The `api:` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on, e.g. `127.0.0.1:9810`.
    pub listen: String,
}

/// The `inputs:` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// File inputs, each with its own globs and checkpoint directory.
    pub files: Vec<FileInput>,
}

/// Where a file with no checkpoint starts.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Read the whole file.
    Beginning,
    /// Only lines written after the agent found the file.
    End,
}

/// One entry under `inputs.files`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileInput {
    /// Names the input: events carry it as `source`; `file0`, `file1`, ... by position.
    #[serde(default)]
    pub id: Option<String>,
    /// Globs of files to tail.
    pub paths: Vec<String>,
    /// Globs of files never to tail, even when `paths` matches them.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Directory holding this input's checkpoint file and lock.
    #[serde(default = "default_checkpoint_path")]
    pub checkpoint_path: PathBuf,
    /// How often acknowledged offsets are persisted.
    #[serde(default = "d_5s", deserialize_with = "duration")]
    pub checkpoint_interval: Duration,
    /// Where a file with no checkpoint starts (files present at start-up only).
    #[serde(default = "default_start_at")]
    pub start_at: StartAt,
    /// How often globs are re-evaluated.
    #[serde(default = "d_1s", deserialize_with = "duration")]
    pub scan_interval: Duration,
    /// Fallback wake-up when no filesystem event arrives.
    #[serde(default = "d_250ms", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// How long a rotated or deleted file must be quiet before it is closed.
    #[serde(default = "d_5s", deserialize_with = "duration")]
    pub rotate_wait: Duration,
    /// Longer lines are truncated to this many bytes.
    #[serde(default = "default_max_line", deserialize_with = "size")]
    pub max_line_bytes: u64,
    /// A drained file quiet this long is closed and reopened when it changes.
    #[serde(default = "d_5m", deserialize_with = "duration")]
    pub close_inactive: Duration,
    /// At most this many files open at once; 0 derives it from RLIMIT_NOFILE.
    #[serde(default)]
    pub max_open_files: usize,
    /// How the files frame their records.
    #[serde(default)]
    pub format: Framing,
    /// Adds `kubernetes.*` fields from Kubernetes log paths.
    #[serde(default)]
    pub kubernetes: bool,
    /// Joins lines into multiline events.
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
    /// Applied in order to every event.
    #[serde(default)]
    pub processors: Vec<ProcessorConfig>,
}

impl FileInput {
    /// The input's id: as configured, else `file<index>`.
    pub fn id_or_default(&self, index: usize) -> String {
        self.id.clone().unwrap_or_else(|| format!("file{index}"))
    }

    /// Whether events need more than the line: framing, path fields, multiline or processors.
    pub fn processes(&self) -> bool {
        self.format != Framing::Lines
            || self.kubernetes
            || self.multiline.is_some()
            || !self.processors.is_empty()
    }
}

/// Log level of the agent's own logs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Everything.
    Trace,
    /// Diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Problems that do not stop the agent.
    Warn,
    /// Failures.
    Error,
}

/// Format of the agent's own logs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Console,
}

/// The `logging:` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// Minimum level logged.
    #[serde(default = "default_level")]
    pub level: Level,
    /// json or console.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// How often a stats line is logged; 0 turns it off.
    #[serde(default = "d_60s", deserialize_with = "duration")]
    pub stats_interval: Duration,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            level: Level::Info,
            format: LogFormat::Json,
            stats_interval: d_60s(),
        }
    }
}

/// Kind of output.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputType {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File,
}

/// How an event is written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    /// One JSON object per line.
    Json,
    /// The line's bytes and a newline.
    Text,
}

/// The `output:` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// stdout or file.
    #[serde(default = "default_output_type", rename = "type")]
    pub kind: OutputType,
    /// File path (file output only).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// json or text.
    #[serde(default = "default_event_format")]
    pub format: EventFormat,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            kind: OutputType::Stdout,
            path: None,
            format: EventFormat::Json,
        }
    }
}

fn default_checkpoint_path() -> PathBuf {
    PathBuf::from("/var/lib/logaggregator/checkpoints")
}
fn d_5s() -> Duration {
    Duration::from_secs(5)
}
fn d_60s() -> Duration {
    Duration::from_secs(60)
}
fn d_1s() -> Duration {
    Duration::from_secs(1)
}
fn d_250ms() -> Duration {
    Duration::from_millis(250)
}
fn d_5m() -> Duration {
    Duration::from_secs(300)
}
fn default_start_at() -> StartAt {
    StartAt::Beginning
}
fn default_max_line() -> u64 {
    1024 * 1024
}
fn default_level() -> Level {
    Level::Info
}
fn default_log_format() -> LogFormat {
    LogFormat::Json
}
fn default_output_type() -> OutputType {
    OutputType::Stdout
}
fn default_event_format() -> EventFormat {
    EventFormat::Json
}

/// Environment overrides read through envy (`LOGAGGREGATOR_LOG_LEVEL`, `LOGAGGREGATOR_LOG_FORMAT`).
#[derive(Debug, Deserialize, Default)]
struct EnvOverrides {
    log_level: Option<Level>,
    log_format: Option<LogFormat>,
}

impl Config {
    /// Reads, expands and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read config file {}: {e}", path.display())))?;
        let mut cfg = Self::parse(&text, &|k| std::env::var(k).ok())
            .map_err(|e| err(format!("config file {}: {e}", path.display())))?;
        cfg.apply_env_overrides()?;
        Ok(cfg)
    }

    /// Parses configuration text with the given environment lookup.
    pub fn parse(
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let expanded = expand_tracked(text, lookup)?;
        // serde_path_to_error names the key even when our own deserializers reject a value.
        let cfg: Config =
            serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(&expanded.text))
                .map_err(|e| deserialize_error(e, &expanded.subs))?;
        // Validation quotes globs, paths and addresses: values of some length are hidden there
        // (a short one, often a digit, would garble the path it is part of).
        let long: Vec<&Substitution> = (expanded.subs.iter())
            .filter(|s| s.value.chars().count() >= REDACT_ANYWHERE)
            .collect();
        cfg.validate(&|value: &str| redact(value, long.iter().copied(), false))?;
        let mut cfg = cfg;
        // Ids by position are fixed here: an input a reload adds keeps its position's id.
        for (i, f) in cfg.inputs.files.iter_mut().enumerate() {
            f.id = Some(f.id_or_default(i));
        }
        Ok(cfg)
    }

    fn apply_env_overrides(&mut self) -> Result<(), ConfigError> {
        let env: EnvOverrides = envy::prefixed("LOGAGGREGATOR_")
            .from_env()
            .map_err(|e| err(format!("environment override: {e} (LOGAGGREGATOR_LOG_LEVEL takes trace|debug|info|warn|error, LOGAGGREGATOR_LOG_FORMAT takes json|console)")))?;
        if let Some(l) = env.log_level {
            self.logging.level = l;
        }
        if let Some(f) = env.log_format {
            self.logging.format = f;
        }
        Ok(())
    }

    /// Checks what the types cannot say; `shown` hides environment values in a value quoted.
    fn validate(&self, shown: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        if self.inputs.files.is_empty() {
            return Err(err("inputs.files: at least one file input is required"));
        }
        for (i, input) in self.inputs.files.iter().enumerate() {
            let at = format!("inputs.files[{i}]");
            if input.paths.is_empty() {
                return Err(err(format!("{at}.paths: at least one glob is required")));
            }
            for (key, globs) in [("paths", &input.paths), ("exclude", &input.exclude)] {
                for g in globs {
                    glob::Pattern::new(g).map_err(|e| {
                        err(format!("{at}.{key}: invalid glob {:?}: {e}", shown(g)))
                    })?;
                }
            }
            for (key, d) in [
                ("checkpoint_interval", input.checkpoint_interval),
                ("scan_interval", input.scan_interval),
                ("poll_interval", input.poll_interval),
            ] {
                if d.is_zero() {
                    return Err(err(format!("{at}.{key}: must be greater than 0")));
                }
            }
            if input.max_line_bytes < 16 {
                return Err(err(format!(
                    "{at}.max_line_bytes: must be at least 16 bytes"
                )));
            }
            if input.max_line_bytes > 1 << 30 {
                return Err(err(format!("{at}.max_line_bytes: must be at most 1GiB")));
            }
            if let Some(id) = &input.id
                && (id.is_empty()
                    || !id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)))
            {
                return Err(err(format!(
                    "{at}.id: {:?} is not a valid id; use letters, digits, '_', '-' and '.'",
                    shown(id)
                )));
            }
            let id = input.id_or_default(i);
            // Compiling the pipeline checks every regex, condition and pattern in it.
            crate::pipeline::Compiled::build(input, i, "").map_err(|e| err(shown(&e)))?;
            for (j, other) in self.inputs.files.iter().enumerate().take(i) {
                if other.id_or_default(j) == id {
                    return Err(err(format!(
                        "{at}.id: {:?} is already the id of inputs.files[{j}]; ids must be unique",
                        shown(&id)
                    )));
                }
                if other.checkpoint_path == input.checkpoint_path {
                    return Err(err(format!(
                        "{at}.checkpoint_path: {} is already used by inputs.files[{j}]; each input needs its own checkpoint directory",
                        shown(&input.checkpoint_path.display().to_string())
                    )));
                }
            }
        }
        if let Some(api) = &self.api
            && api.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(err(format!(
                "api.listen: invalid address {:?}; expected host:port such as 127.0.0.1:9810",
                shown(&api.listen)
            )));
        }
        if self.output.kind == OutputType::File && self.output.path.is_none() {
            return Err(err("output.path: required when output.type is file"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const MIN: &str = "inputs:\n  files:\n    - paths: [\"/tmp/x/*.log\"]\n";

    #[test]
    fn defaults() {
        let c = Config::parse(MIN, &env(&[])).unwrap();
        let f = &c.inputs.files[0];
        assert_eq!(f.checkpoint_interval, Duration::from_secs(5));
        assert_eq!(f.poll_interval, Duration::from_millis(250));
        assert_eq!(f.max_line_bytes, 1 << 20);
        assert_eq!(f.start_at, StartAt::Beginning);
        assert_eq!(c.output.kind, OutputType::Stdout);
        assert_eq!(c.logging.level, Level::Info);
    }

    #[test]
    fn full_example_parses() {
        let text = include_str!("../../config.yaml.example");
        Config::parse(text, &env(&[])).unwrap();
    }

    #[test]
    fn env_expansion() {
        let lookup = env(&[("DIR", "/data"), ("EMPTY", "")]);
        assert_eq!(expand_env("a ${DIR}/b", &lookup).unwrap(), "a /data/b");
        assert_eq!(expand_env("${NOPE:-/d}", &lookup).unwrap(), "/d");
        // As in a shell: `:-` also covers a variable that is set but empty.
        assert_eq!(
            expand_env("[${EMPTY:-/d}] [${EMPTY}] ${DIR:-/d} ${EMPTY:-}x", &lookup).unwrap(),
            "[/d] [] /data x"
        );
        assert_eq!(
            expand_env("cost $$5 ${DIR}", &lookup).unwrap(),
            "cost $5 /data"
        );
        assert_eq!(expand_env("$$$DIR", &lookup).unwrap(), "$/data");
        // Regex group references are no variables.
        assert_eq!(
            expand_env("'$1=***' ${1}", &lookup).unwrap(),
            "'$1=***' ${1}"
        );
        let e = expand_env("${NOPE}", &lookup).unwrap_err().0;
        assert!(e.contains("NOPE") && e.contains("not set"), "{e}");
        let e = expand_env("${NOPE:?set NOPE to the log dir}", &lookup)
            .unwrap_err()
            .0;
        assert!(
            e.contains("NOPE") && e.contains("set NOPE to the log dir"),
            "{e}"
        );
        let e = expand_env("${EMPTY:?must not be empty}", &lookup)
            .unwrap_err()
            .0;
        assert!(e.contains("must not be empty"), "{e}");
        let nl = env(&[("EVIL", "x\n  evil: 1")]);
        let e = expand_env("${EVIL}", &nl).unwrap_err().0;
        assert!(e.contains("EVIL") && e.contains("newline"), "{e}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("1XB").is_err());
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn errors_name_the_key() {
        let bad = format!("{MIN}      poll_interval: soon\n");
        let e = Config::parse(&bad, &env(&[])).unwrap_err().0;
        assert!(e.contains("poll_interval") && e.contains("250ms"), "{e}");
        let bad = format!("{MIN}      max_line_bytes: 1XB\n");
        let e = Config::parse(&bad, &env(&[])).unwrap_err().0;
        assert!(e.contains("max_line_bytes") && e.contains("1MiB"), "{e}");
        let bad = format!("{MIN}      colour: blue\n");
        let e = Config::parse(&bad, &env(&[])).unwrap_err().0;
        assert!(e.contains("colour"), "{e}");
        let e = Config::parse("inputs: [\n", &env(&[])).unwrap_err().0;
        assert!(e.contains("line") && e.contains("column"), "{e}");
        let bad = format!("{MIN}output:\n  type: file\n");
        let e = Config::parse(&bad, &env(&[])).unwrap_err().0;
        assert!(e.contains("output.path"), "{e}");
    }

    /// The line and column of `needle` in `text`, 1-based, as serde_yaml counts them.
    fn at(text: &str, needle: &str) -> String {
        let (n, l) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(needle))
            .unwrap();
        let col = l.find(needle).unwrap() + 1;
        format!("at line {} column {col}", n + 1)
    }

    #[test]
    fn value_errors_point_at_the_value_not_the_list_item() {
        let item =
            "inputs:\n  files:\n    - paths: [\"/tmp/x/*.log\"]\n      checkpoint_path: /tmp/c\n";
        for (line, value) in [
            ("poll_interval: soon", "soon"),
            ("rotate_wait: 5", "5"),
            ("max_line_bytes: 1MiBs", "1MiBs"),
            ("checkpoint_interval: -3", "-3"),
            ("close_inactive: 1.5", "1.5"),
        ] {
            let text = format!("{item}      {line}\n      start_at: end\n");
            let e = Config::parse(&text, &env(&[])).unwrap_err().0;
            let key = line.split(':').next().unwrap();
            assert!(e.contains(&format!("inputs.files[0].{key}: ")), "{e}");
            assert!(
                e.ends_with(&at(&text, &format!("{key}: {value}")[key.len() + 2..])),
                "{e}"
            );
            assert!(e.contains("line 5 column"), "{e}");
        }
        // A flow mapping: the value's column, not the item's.
        let text = "inputs:\n  files:\n    - {paths: [a], rotate_wait: 5}\n";
        let e = Config::parse(text, &env(&[])).unwrap_err().0;
        assert!(e.ends_with("at line 3 column 33"), "{e}");
        // Good values still parse, in every accepted form.
        let text = format!(
            "{item}      rotate_wait: 0\n      scan_interval: \"2s\"\n      max_line_bytes: 4096\n      close_inactive: 1h 30m\n"
        );
        let f = &Config::parse(&text, &env(&[])).unwrap().inputs.files[0];
        assert_eq!(f.rotate_wait, Duration::ZERO);
        assert_eq!(f.scan_interval, Duration::from_secs(2));
        assert_eq!(f.max_line_bytes, 4096);
        assert_eq!(f.close_inactive, Duration::from_secs(5400));
    }

    #[test]
    fn env_errors_read_as_sentences_with_the_line() {
        let text = "inputs:\n  files:\n    - paths: [\"${LOGDIR:?set LOGDIR to the app log dir}/*.log\"]\n";
        let e = Config::parse(text, &env(&[])).unwrap_err().0;
        assert_eq!(e, "LOGDIR: set LOGDIR to the app log dir (line 3)");
        let e = Config::parse(text, &env(&[("LOGDIR", "")])).unwrap_err().0;
        assert_eq!(e, "LOGDIR: set LOGDIR to the app log dir (line 3)");
        let e = expand_env("a\n${NOPE}", &env(&[])).unwrap_err().0;
        assert!(e.starts_with("environment variable NOPE is not set"), "{e}");
        assert!(e.ends_with("(line 2)"), "{e}");
        let e = expand_env("${NOPE:?}", &env(&[])).unwrap_err().0;
        assert_eq!(
            e,
            "environment variable NOPE is required and is unset or empty (line 1)"
        );
    }

    #[test]
    fn errors_show_the_reference_never_the_environment_value() {
        let secret = "hunter2-\"quoted\"-secret";
        let lookup = env(&[
            ("SECRET", secret),
            ("PLAIN", "hunter2-plain"),
            ("N", "5"),
            ("DIR", "/data"),
        ]);
        let base = "inputs:\n  files:\n    - paths: [\"${DIR}/*.log\"]\n";
        for (line, key) in [
            ("poll_interval: ${SECRET}", "poll_interval"),
            ("max_line_bytes: \"${SECRET}\"", "max_line_bytes"),
            ("start_at: ${SECRET}", "start_at"),
            ("max_open_files: x${SECRET}", "max_open_files"),
            ("${SECRET}: 1", ""),
            ("rotate_wait: 5${SECRET}", "rotate_wait"),
        ] {
            let text = format!("{base}      {line}\n");
            let e = Config::parse(&text, &lookup).unwrap_err().0;
            assert!(e.contains("${SECRET}") && e.contains(key), "{e}");
            assert!(!e.contains("hunter2") && !e.contains("secret"), "{e}");
            assert!(e.contains("line 4 column"), "{e}");
        }
        // A short value is hidden on the line the error points at, and only there.
        let text = format!("{base}      rotate_wait: ${{N}}\n");
        let e = Config::parse(&text, &lookup).unwrap_err().0;
        assert!(
            e.starts_with("inputs.files[0].rotate_wait: invalid duration ${N};")
                && e.ends_with("at line 4 column 20"),
            "{e}"
        );
        for (text, key) in [
            (format!("{base}api:\n  listen: ${{PLAIN}}\n"), "api.listen"),
            (
                format!("{base}      exclude: [\"[${{PLAIN}}\"]\n"),
                "exclude",
            ),
        ] {
            let e = Config::parse(&text, &lookup).unwrap_err().0;
            assert!(e.contains("${PLAIN}") && e.contains(key), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn redact_replaces_values_and_their_quoted_forms() {
        let s = |name: &str, value: &str| Substitution {
            line: 1,
            name: name.into(),
            value: value.into(),
        };
        let subs = [s("A", "ab"), s("AB", "abc"), s("Q", "x\"y")];
        assert_eq!(redact("abc ab a", &subs, false), "${AB} ${A} a");
        assert_eq!(redact(&format!("{:?}", "x\"y"), &subs, false), "\"${Q}\"");
        assert_eq!(redact("x\"y", &subs, false), "${Q}");
        assert_eq!(redact("nothing", &subs, true), "nothing");
        // Pieces between YAML syntax characters, of at least 3 characters, only when asked.
        let subs = [s("S", "hunter2-\"quoted\", x:ab")];
        assert_eq!(
            redact("\"hunter2-\" \"quoted\" ab hunter", &subs, true),
            "\"${S}\" \"${S}\" ab hunter"
        );
        assert_eq!(redact("\"hunter2-\"", &subs, false), "\"hunter2-\"");
        let q = [&subs[0]];
        assert_eq!(
            redact_quoted(r#"a "unter" b "xyz" c "q\"uot" `hunter` "open"#, &q),
            r#"a "${S}" b "xyz" c "${S}" `hunter` "open"#
        );
        assert_eq!(
            redact_path("inputs.files[1].hunter2-", &[&subs[0], &s("N", "1")]),
            "inputs.files[1].${S}"
        );
    }

    #[test]
    fn checkpoint_dir_check_creates_writes_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a/b/c");
        assert_eq!(check_checkpoint_dir(&deep), Ok(CheckpointDir::Creatable));
        assert!(
            !tmp.path().join("a").exists(),
            "created directories are removed"
        );

        let dir = tmp.path().join("ckpt");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("checkpoints.json"), "{}").unwrap();
        // A running agent holds the lock: the check neither needs nor breaks it.
        let held = std::fs::File::create(dir.join(crate::checkpoint::LOCK_NAME)).unwrap();
        held.try_lock().unwrap();
        assert_eq!(check_checkpoint_dir(&dir), Ok(CheckpointDir::Writable));
        let other = std::fs::File::open(dir.join(crate::checkpoint::LOCK_NAME)).unwrap();
        assert!(other.try_lock().is_err(), "the lock is still held");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["checkpoints.json", "lock"]);

        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = check_checkpoint_dir(&file.join("ckpt")).unwrap_err();
        assert!(
            e.starts_with("cannot create checkpoint directory") && e.contains("file/ckpt"),
            "{e}"
        );
        let e = check_checkpoint_dir(Path::new("/proc/nope/cp")).unwrap_err();
        assert!(e.contains("/proc/nope/cp"), "{e}");
    }
}
