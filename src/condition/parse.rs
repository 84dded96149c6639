//! Recursive descent over the tokens: `or` of `and`s of (possibly negated) primaries.
//!
//! ```text
//! or      = and { ("or" | "|" | "||") and }
//! and     = unary { ("and" | "&" | "&&") unary }
//! unary   = ("not" | "!") unary | primary
//! primary = "(" or ")" | "has" "(" word ")" | quoted | word op value
//! op      = "=" | "==" | "!=" | ">" | ">=" | "<" | "<=" | "~" | "!~"
//! value   = word | quoted
//! ```

use super::ConditionError;
use super::eval::{Literal, Node};
use super::lex::{Kind, Token, lex};
use regex::Regex;

/// How deep parentheses and `not` may nest: the parser recurses once per level, and no
/// real condition needs more.
const MAX_DEPTH: usize = 100;

/// Parses condition text into its tree.
pub(super) fn parse(src: &str) -> Result<Node, ConditionError> {
    let lexed = lex(src);
    let mut p = Parser {
        src,
        tokens: lexed.tokens,
        error: lexed.error,
        end: lexed.end,
        i: 0,
        depth: 0,
    };
    if p.peek()?.is_none() {
        return Err(ConditionError::new(1, "empty condition"));
    }
    let root = p.or()?;
    match p.peek()? {
        None => Ok(root),
        Some(t) => Err(p.unexpected(t)),
    }
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    /// The lexical error after the last token, reported when the parser gets there.
    error: Option<ConditionError>,
    end: usize,
    /// The next token.
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    /// The next token; `None` at the end of the text, the lexical error where lexing stopped.
    fn peek(&self) -> Result<Option<&Token>, ConditionError> {
        match (self.tokens.get(self.i), &self.error) {
            (Some(t), _) => Ok(Some(t)),
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Ok(None),
        }
    }

    /// Consumes the next token if it is `kind`.
    fn eat(&mut self, kind: &Kind) -> Result<bool, ConditionError> {
        let yes = self.peek()?.is_some_and(|t| t.kind == *kind);
        if yes {
            self.i += 1;
        }
        Ok(yes)
    }

    /// The next token, consumed; `what` names what was expected, for the error at the end.
    fn next(&mut self, what: &str) -> Result<Token, ConditionError> {
        match self.peek()? {
            Some(t) => {
                let t = t.clone();
                self.i += 1;
                Ok(t)
            }
            None => Err(self.expected(what)),
        }
    }

    /// The token as written.
    fn text(&self, t: &Token) -> &str {
        &self.src[t.start..t.end]
    }

    fn unexpected(&self, t: &Token) -> ConditionError {
        ConditionError::new(t.pos, format!("unexpected `{}`", self.text(t)))
    }

    /// "expected `what` after <the last token>", at the next token or the end.
    fn expected(&self, what: &str) -> ConditionError {
        let next = self.tokens.get(self.i);
        let Some(prev) = self.i.checked_sub(1).and_then(|j| self.tokens.get(j)) else {
            // Nothing before: the text starts with something that cannot start a condition.
            return match next {
                Some(t) => self.unexpected(t),
                None => ConditionError::new(1, "empty condition"),
            };
        };
        let mut msg = format!("expected {what} after `{}`", self.text(prev));
        match next {
            Some(t) => {
                msg.push_str(&format!(", found `{}`", self.text(t)));
                ConditionError::new(t.pos, msg)
            }
            None => ConditionError::new(self.end, msg),
        }
    }

    /// One level deeper into parentheses or `not`, which starts at position `pos`.
    fn enter(&mut self, pos: usize) -> Result<(), ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ConditionError::new(
                pos,
                format!("nesting deeper than {MAX_DEPTH}"),
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Node, ConditionError> {
        let first = self.and()?;
        if !self.eat(&Kind::Or)? {
            return Ok(first);
        }
        let mut any = vec![first, self.and()?];
        while self.eat(&Kind::Or)? {
            any.push(self.and()?);
        }
        Ok(Node::Any(any))
    }

    fn and(&mut self) -> Result<Node, ConditionError> {
        let first = self.unary()?;
        if !self.eat(&Kind::And)? {
            return Ok(first);
        }
        let mut all = vec![first, self.unary()?];
        while self.eat(&Kind::And)? {
            all.push(self.unary()?);
        }
        Ok(Node::All(all))
    }

    fn unary(&mut self) -> Result<Node, ConditionError> {
        let Some(t) = self.peek()? else {
            return Err(self.expected("a field name"));
        };
        if t.kind != Kind::Not {
            return self.primary();
        }
        let pos = t.pos;
        self.i += 1;
        self.enter(pos)?;
        let inner = self.unary()?;
        self.depth -= 1;
        Ok(Node::Not(Box::new(inner)))
    }

    fn primary(&mut self) -> Result<Node, ConditionError> {
        let t = self.next("a field name")?;
        match t.kind {
            Kind::LParen => {
                self.enter(t.pos)?;
                let inner = self.or()?;
                self.depth -= 1;
                match self.peek()? {
                    Some(r) if r.kind == Kind::RParen => {
                        self.i += 1;
                        Ok(inner)
                    }
                    Some(other) => Err(self.unexpected(other)),
                    None => Err(ConditionError::new(t.pos, "unclosed `(`")),
                }
            }
            Kind::Has => self.has(),
            Kind::Quoted(s) => Ok(Node::Contains(s)),
            Kind::Word(name) => self.comparison(t.pos, name),
            _ => {
                // Step back so the message names this token as found, after the one before.
                self.i -= 1;
                Err(self.expected("a field name"))
            }
        }
    }

    /// `has(field)`, after `has`.
    fn has(&mut self) -> Result<Node, ConditionError> {
        let open = match self.peek()? {
            Some(t) if t.kind == Kind::LParen => t.pos,
            _ => return Err(self.expected("`(`")),
        };
        self.i += 1;
        let path = match self.peek()? {
            Some(Token {
                kind: Kind::Word(w),
                ..
            }) => w.clone(),
            _ => return Err(self.expected("a field name")),
        };
        self.i += 1;
        match self.peek()? {
            Some(t) if t.kind == Kind::RParen => {
                self.i += 1;
                Ok(Node::Has(path))
            }
            Some(_) => Err(self.expected("`)`")),
            None => Err(ConditionError::new(open, "unclosed `(`")),
        }
    }

    /// `field OP value`, after the field's name.
    fn comparison(&mut self, field_pos: usize, path: String) -> Result<Node, ConditionError> {
        let op = match self.peek()? {
            Some(t) if t.kind == Kind::LParen => {
                return Err(ConditionError::new(
                    field_pos,
                    format!("unknown function `{path}` (the only function is `has`)"),
                ));
            }
            Some(Token {
                kind: op @ (Kind::Cmp(_) | Kind::Match | Kind::NotMatch),
                ..
            }) => op.clone(),
            _ => return Err(self.expected("an operator")),
        };
        self.i += 1;
        let (value, value_pos) = match self.peek()? {
            Some(Token {
                kind: Kind::Word(v) | Kind::Quoted(v),
                pos,
                ..
            }) => (v.clone(), *pos),
            _ => return Err(self.expected("a value")),
        };
        self.i += 1;
        Ok(match op {
            Kind::Cmp(op) => Node::Compare {
                level: path
                    .rsplit('.')
                    .next()
                    .is_some_and(|last| last.eq_ignore_ascii_case("level")),
                path,
                op,
                lit: Literal::new(value),
            },
            _ => Node::Matches {
                re: Regex::new(&value).map_err(|e| {
                    ConditionError::new(
                        value_pos,
                        format!("invalid regex `{value}`: {}", regex_reason(&e)),
                    )
                })?,
                path,
                negate: op == Kind::NotMatch,
            },
        })
    }
}

/// The line of a regex error that says what is wrong: the crate's message starts with
/// "regex parse error:" and a drawing of the pattern, and ends with "error: <reason>".
pub(crate) fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let reason = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .or_else(|| text.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("not a regex");
    reason.trim().to_string()
}
