//! Configuration: `${ENV}` expansion, YAML parsing, validation and defaults.

use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Parses a duration such as `250ms`, `5s`, `1m`, `1h 30m`; a bare `0` means zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("invalid duration {s:?} ({e}); expected a number with a unit, like 250ms, 5s or 1m")
    })
}

/// Parses a size: a plain integer (bytes) or a number with a unit (`512KiB`, `1MiB`, `2GB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        format!(
            "invalid size {s:?}; expected bytes as an integer or a number with a unit, like 512KiB or 1MiB"
        )
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = StringOrInt::deserialize(d)?;
    match s {
        StringOrInt::S(s) => parse_duration(&s).map_err(de::Error::custom),
        StringOrInt::I(0) => Ok(Duration::ZERO),
        StringOrInt::I(i) => Err(de::Error::custom(format!(
            "invalid duration {i}; a duration needs a unit, like {i}s or {i}ms"
        ))),
    }
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match StringOrInt::deserialize(d)? {
        StringOrInt::S(s) => parse_size(&s).map_err(de::Error::custom),
        StringOrInt::I(i) => Ok(i),
    }
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a string such as \"5s\" or \"1MiB\", or an integer"
)]
enum StringOrInt {
    I(u64),
    S(String),
}

/// Environment overrides read through envy (`LOGAGGREGATOR_LOG_LEVEL`, `LOGAGGREGATOR_LOG_FORMAT`).
#[derive(Debug, Deserialize, Default)]
struct EnvOverrides {
    log_level: Option<Level>,
    log_format: Option<LogFormat>,
}

#[derive(Debug)]
enum ExpandError {
    Unset,
    Required(String),
    Newline,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::Unset => {
                f.write_str("is not set and has no default (use ${VAR:-default})")
            }
            ExpandError::Required(m) => f.write_str(m),
            ExpandError::Newline => f.write_str(
                "contains a newline, which could inject YAML structure; refusing to substitute it",
            ),
        }
    }
}

/// Substitutes `${VAR}`, `${VAR:-default}`, `${VAR:?message}` and `$VAR`; `$$` is a literal `$`.
pub fn expand_env(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        // Whole-line comments are left alone, so documentation may mention ${VAR}.
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            expand_line(line, lookup, &mut out)?;
        }
    }
    Ok(out)
}

/// Prefix of a variable name that the expansion treats as unset.
const UNSET: char = '\u{1}';

/// Shell semantics for `${VAR:-default}`: the default also applies when VAR is set but empty
/// (shellexpand applies it only when unset), so such references are renamed to an unset name.
fn defaults_for_empty<'a>(
    text: &'a str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> std::borrow::Cow<'a, str> {
    let mut out = String::new();
    let mut done = 0;
    let mut from = 0;
    while let Some(i) = text[from..].find("${").map(|i| i + from) {
        let name_start = i + 2;
        let name_len = text[name_start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len() - name_start);
        let name_end = name_start + name_len;
        from = name_end;
        if name_len > 0
            && text[name_end..].starts_with(":-")
            && lookup(&text[name_start..name_end]).is_some_and(|v| v.is_empty())
        {
            out.push_str(&text[done..name_start]);
            out.push(UNSET);
            done = name_start;
        }
    }
    if done == 0 {
        return std::borrow::Cow::Borrowed(text);
    }
    out.push_str(&text[done..]);
    std::borrow::Cow::Owned(out)
}

fn expand_line(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), ConfigError> {
    // `$$` is split out first so that shellexpand never sees it.
    for (i, part) in text.split("$$").enumerate() {
        if i > 0 {
            out.push('$');
        }
        let part = defaults_for_empty(part, lookup);
        let expanded = shellexpand::env_with_context(&part, |name: &str| {
            if name.starts_with(UNSET) {
                return Ok(None);
            }
            // shellexpand only knows `:-`; `:?` reaches us inside the name.
            let (var, required) = match name.split_once(":?") {
                Some((v, m)) => (v, Some(m)),
                None => (name, None),
            };
            match lookup(var) {
                Some(v) if v.contains('\n') || v.contains('\r') => Err(ExpandError::Newline),
                Some(v) if !(v.is_empty() && required.is_some()) => Ok(Some(v)),
                _ => match required {
                    Some("") => Err(ExpandError::Required("is required".into())),
                    Some(m) => Err(ExpandError::Required(m.to_string())),
                    None => Err(ExpandError::Unset),
                },
            }
        })
        .map_err(|e| {
            let var = e.var_name.split(":?").next().unwrap_or(&e.var_name);
            err(format!("environment variable {var} {}", e.cause))
        })?;
        out.push_str(&expanded);
    }
    Ok(())
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
        let expanded = expand_env(text, lookup)?;
        // serde_path_to_error names the key even when our own deserializers reject a value.
        let cfg: Config =
            serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(&expanded))
                .map_err(|e| {
                    let path = e.path().to_string();
                    let inner = e.into_inner().to_string();
                    // serde_yaml prefixes its own (shorter) path; keep only the full one.
                    let inner = match inner.split_once(": ") {
                        Some((p, rest)) if path.starts_with(p) && p != "." => rest.to_string(),
                        _ => inner,
                    };
                    if path == "." || path.is_empty() {
                        err(inner)
                    } else {
                        err(format!("{path}: {inner}"))
                    }
                })?;
        cfg.validate()?;
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

    fn validate(&self) -> Result<(), ConfigError> {
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
                    glob::Pattern::new(g)
                        .map_err(|e| err(format!("{at}.{key}: invalid glob {g:?}: {e}")))?;
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
            for (j, other) in self.inputs.files.iter().enumerate().take(i) {
                if other.checkpoint_path == input.checkpoint_path {
                    return Err(err(format!(
                        "{at}.checkpoint_path: {} is already used by inputs.files[{j}]; each input needs its own checkpoint directory",
                        input.checkpoint_path.display()
                    )));
                }
            }
        }
        if let Some(api) = &self.api
            && api.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(err(format!(
                "api.listen: invalid address {:?}; expected host:port such as 127.0.0.1:9810",
                api.listen
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

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
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
        let text = include_str!("../config.yaml.example");
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
}
