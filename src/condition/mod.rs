//! The condition language: one grammar for filters, output routing, alert rules and store
//! queries.
//!
//! ```text
//! service=apsouth-1&level=warn
//! kubernetes.namespace = prod and not (http.status < 500 or path ~ "^/health")
//! has(trace_id) or "connection refused"
//! ```
//!
//! - **Comparisons** are `field OP value` with `=` (or `==`), `!=`, `>`, `>=`, `<`, `<=`.
//!   A field whose name (its last dotted segment) is `level`, in any case, compares by
//!   severity when both sides are one: trace < debug < info < warn < error < fatal, in any
//!   case, with the aliases warning → warn, err → error, information/informational → info,
//!   critical/crit/alert/emerg/emergency/panic → fatal. Otherwise, when both sides read as
//!   finite numbers (text such as `"503"` counts), they compare as numbers. Otherwise they
//!   compare as text: `=` exactly and case-sensitively, `<` and `>` byte by byte. Values
//!   that are not text compare as their JSON (`null`, `true`, `[1,2]`).
//! - **Regexes**: `field ~ "regex"` and `field !~ "regex"` (Rust `regex` syntax, unanchored,
//!   `(?i)` for any case, checked when the condition is parsed) match the field's text. A
//!   regex with spaces or any of `()&|!=<>~` must be quoted: `path ~ "^/(api|v1)/"`.
//! - **A missing field** makes every comparison and `~` false, and `!=` and `!~` true.
//!   `has(field)` is true when the field is present, even as null.
//! - **A quoted string alone**, `"connection refused"`, is true when the message contains it
//!   (case-sensitive). A bare word alone (`error`) is an error, not a search.
//! - **Logic**: `not`/`!` binds tightest, then `and`/`&`/`&&`, then `or`/`|`/`||`, each
//!   left to right; parentheses group. So `a=1 or b=2 and c=3` is `a=1 or (b=2 and c=3)`
//!   and `not a=1 and b=2` is `(not a=1) and b=2`. Parentheses and `not` nest 100 deep at most.
//! - **Words**: names and values are bare words, runs of anything but whitespace and
//!   `()&|!=<>~"'` (so `apsouth-1`, `10.0.0.1`, `/api/v1` and `2024-12-01T10:00:00Z` need no
//!   quotes), or values quoted in `"…"` or `'…'` with the escapes `\"`, `\'`, `\\`, `\n`,
//!   `\t`; any other backslash stays as written, so `"\d+"` needs no doubling. Dots in a name
//!   reach nested fields (`http.status`). `and`, `or`, `not` and `has` are keywords in any
//!   case; quote them to use them as values.
//! - **Errors** say what is wrong and where, as a 1-based character position:
//!   `http.status >=` fails with ``expected a value after `>=` at position 15``.

mod eval;
mod lex;
mod parse;

pub(crate) use parse::regex_reason;
#[cfg(test)]
mod tests;

use crate::record::{Event, Value};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// What a condition reads from: an event, or a stored row later.
pub trait Lookup {
    /// The value at a dotted path.
    fn get(&self, path: &str) -> Option<Cow<'_, Value>>;
    /// The message, for a bare quoted string.
    fn message(&self) -> Cow<'_, str>;
}

impl Lookup for Event {
    fn get(&self, path: &str) -> Option<Cow<'_, Value>> {
        Event::get(self, path)
    }
    fn message(&self) -> Cow<'_, str> {
        Event::message(self)
    }
}

/// A condition that did not parse, with where.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionError {
    /// 1-based character position in the condition text.
    pub position: usize,
    /// What is wrong there.
    pub message: String,
}

impl ConditionError {
    fn new(position: usize, message: impl Into<String>) -> ConditionError {
        ConditionError {
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

impl std::error::Error for ConditionError {}

/// A parsed condition.
#[derive(Debug, Clone)]
pub struct Condition {
    text: String,
    root: eval::Node,
}

impl Condition {
    /// Parses condition text.
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        Ok(Condition {
            text: text.to_string(),
            root: parse::parse(text)?,
        })
    }

    /// Whether `e` satisfies it.
    pub fn matches(&self, e: &dyn Lookup) -> bool {
        self.root.eval(e)
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl FromStr for Condition {
    type Err = ConditionError;

    fn from_str(text: &str) -> Result<Condition, ConditionError> {
        Condition::parse(text)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
