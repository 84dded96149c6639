//! The parsed form of a condition and how it is evaluated against a `Lookup`.

use super::Lookup;
use crate::record::Value;
use regex::Regex;
use std::cmp::Ordering;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    /// Whether `field OP literal` holds when the field compares to the literal as `o`.
    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o.is_eq(),
            CmpOp::Ne => o.is_ne(),
            CmpOp::Gt => o.is_gt(),
            CmpOp::Ge => o.is_ge(),
            CmpOp::Lt => o.is_lt(),
            CmpOp::Le => o.is_le(),
        }
    }
}

/// The right-hand side of a comparison, read every way it can compare once, when parsed, so
/// evaluating does not parse or allocate.
#[derive(Debug, Clone)]
pub(super) struct Literal {
    text: String,
    /// Exact when both sides are integers: i64 → f64 loses precision past 2^53.
    int: Option<i64>,
    num: Option<f64>,
    severity: Option<u8>,
}

impl Literal {
    /// The literal `text`, read as a number and a severity where it is one.
    pub(super) fn new(text: String) -> Literal {
        Literal {
            int: text.trim().parse().ok(),
            num: finite(text.trim().parse().ok()),
            severity: severity(&text),
            text,
        }
    }
}

/// A parsed condition. `and` and `or` chains are flat lists, so a long chain is not a deep
/// tree (evaluating and dropping it cannot overflow the stack); depth comes only from
/// parentheses and `not`, which the parser limits.
#[derive(Debug, Clone)]
pub(super) enum Node {
    /// `or`: any holds.
    Any(Vec<Node>),
    /// `and`: all hold.
    All(Vec<Node>),
    Not(Box<Node>),
    /// `has(path)`.
    Has(String),
    /// A quoted string alone: the message contains it.
    Contains(String),
    /// `path OP literal`.
    Compare {
        path: String,
        /// The field is a `level`: compare severities when both sides are one.
        level: bool,
        op: CmpOp,
        lit: Literal,
    },
    /// `path ~ re`, or `!~` when `negate`.
    Matches {
        path: String,
        re: Regex,
        negate: bool,
    },
}

impl Node {
    /// Whether `e` satisfies this node.
    pub(super) fn eval(&self, e: &dyn Lookup) -> bool {
        match self {
            Node::Any(v) => v.iter().any(|n| n.eval(e)),
            Node::All(v) => v.iter().all(|n| n.eval(e)),
            Node::Not(n) => !n.eval(e),
            Node::Has(path) => e.get(path).is_some(),
            Node::Contains(s) => e.message().contains(s.as_str()),
            Node::Compare {
                path,
                level,
                op,
                lit,
            } => match e.get(path) {
                Some(v) => match compare(&v, *level, lit) {
                    Some(order) => op.holds(order),
                    // A level that is no severity is not above or below one: only `!=` holds.
                    None => *op == CmpOp::Ne,
                },
                // A missing field equals nothing, so only `!=` holds.
                None => *op == CmpOp::Ne,
            },
            Node::Matches { path, re, negate } => match e.get(path) {
                Some(v) => re.is_match(&v.to_text()) != *negate,
                None => *negate,
            },
        }
    }
}

/// How the field's value `v` orders against the literal: by severity, else as numbers, else
/// as text. None when the literal is a severity and a level field's value is none.
fn compare(v: &Value, level: bool, lit: &Literal) -> Option<Ordering> {
    if level && let Some(want) = lit.severity {
        let have = match v {
            Value::Str(s) => severity(s),
            // pino and bunyan write levels as numbers: 10 trace ... 60 fatal.
            Value::Int(n @ 10..=60) if n % 10 == 0 => Some((n / 10 - 1) as u8),
            _ => None,
        };
        return have.map(|h| h.cmp(&want));
    }
    if let Some(want) = lit.num
        && let Some(have) = finite(v.as_f64())
    {
        if let (Value::Int(i), Some(j)) = (v, lit.int) {
            return Some(i.cmp(&j));
        }
        // Both are finite, so there is always an order.
        return Some(have.partial_cmp(&want).unwrap_or(Ordering::Equal));
    }
    Some(v.to_text().as_ref().cmp(lit.text.as_str()))
}

/// NaN and infinities are not numbers here: `"nan" = nan` should hold, as text.
fn finite(n: Option<f64>) -> Option<f64> {
    n.filter(|f| f.is_finite())
}

/// Severity names and their rank, lowest first. Beyond the six levels and the common
/// aliases, only names that can mean nothing but "worse than error" (syslog's and Go's) or
/// that spell out info (.NET, syslog) are here; `notice` and `verbose` sit between levels, so
/// they stay text.
const SEVERITIES: [(&str, u8); 16] = [
    ("trace", 0),
    ("debug", 1),
    ("info", 2),
    ("information", 2),
    ("informational", 2),
    ("warn", 3),
    ("warning", 3),
    ("error", 4),
    ("err", 4),
    ("fatal", 5),
    ("critical", 5),
    ("crit", 5),
    ("alert", 5),
    ("emerg", 5),
    ("emergency", 5),
    ("panic", 5),
];

/// The rank of a severity name, in any case.
fn severity(s: &str) -> Option<u8> {
    let s = s.trim();
    SEVERITIES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|&(_, rank)| rank)
}
