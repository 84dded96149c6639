//! The condition language: one grammar for filters, output routing, alert rules and store
//! queries. STUB: the parser and evaluator are being written; the API below is fixed.

use crate::record::{Event, Value};
use std::borrow::Cow;
use std::fmt;

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

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

/// A parsed condition.
#[derive(Debug, Clone)]
pub struct Condition {
    text: String,
}

impl Condition {
    /// Parses condition text.
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        Ok(Condition {
            text: text.to_string(),
        })
    }

    /// Whether `e` satisfies it.
    pub fn matches(&self, e: &dyn Lookup) -> bool {
        e.message().contains(&self.text)
    }
}
