//! Splits condition text into tokens, each with its 1-based character position.

use super::ConditionError;
use super::eval::CmpOp;
use std::iter::Peekable;
use std::str::CharIndices;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    /// A bare word that is not a keyword: a field name or a value.
    Word(String),
    /// A quoted string, escapes resolved.
    Quoted(String),
    LParen,
    RParen,
    And,
    Or,
    Not,
    Has,
    Cmp(CmpOp),
    Match,
    NotMatch,
}

/// A token and where it is.
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) kind: Kind,
    /// 1-based character position of its first character.
    pub(super) pos: usize,
    /// Byte range in the text, for naming the token in messages as it was written.
    pub(super) start: usize,
    pub(super) end: usize,
}

/// The tokens of a text, up to its first lexical error if any.
pub(super) struct Lexed {
    pub(super) tokens: Vec<Token>,
    /// Kept aside rather than returned at once, so the parser reports an earlier syntax
    /// error first, as a reader of the text would find them.
    pub(super) error: Option<ConditionError>,
    /// The position just past the last character, where "expected …" at the end points.
    pub(super) end: usize,
}

/// Characters that end a bare word.
fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !"()&|!=<>~\"'".contains(c)
}

struct Lexer<'a> {
    src: &'a str,
    chars: Peekable<CharIndices<'a>>,
    /// Characters consumed so far, i.e. the 1-based position of the last one.
    pos: usize,
}

impl Lexer<'_> {
    fn bump(&mut self) -> Option<char> {
        let (_, c) = self.chars.next()?;
        self.pos += 1;
        Some(c)
    }

    /// Consumes the next character if it is `want`.
    fn eat(&mut self, want: char) -> bool {
        if self.chars.peek().is_some_and(|&(_, c)| c == want) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn offset(&mut self) -> usize {
        self.chars.peek().map_or(self.src.len(), |&(i, _)| i)
    }

    /// The rest of a quoted string whose opening `quote` is at position `at`.
    fn quoted(&mut self, quote: char, at: usize) -> Result<String, ConditionError> {
        let unclosed = || ConditionError::new(at, format!("unclosed quote `{quote}`"));
        let mut s = String::new();
        loop {
            match self.bump().ok_or_else(unclosed)? {
                '\\' => match self.bump().ok_or_else(unclosed)? {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    c @ ('"' | '\'' | '\\') => s.push(c),
                    // Kept as written so regexes (`"\d+"`, `"\."`) read as in any regex tool.
                    c => {
                        s.push('\\');
                        s.push(c);
                    }
                },
                c if c == quote => return Ok(s),
                c => s.push(c),
            }
        }
    }

    fn word(&mut self, start: usize) -> Kind {
        while self.chars.peek().is_some_and(|&(_, c)| is_word_char(c)) {
            self.bump();
        }
        let w = &self.src[start..self.offset()];
        const KEYWORDS: [(&str, Kind); 4] = [
            ("and", Kind::And),
            ("or", Kind::Or),
            ("not", Kind::Not),
            ("has", Kind::Has),
        ];
        KEYWORDS
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(w))
            .map_or_else(|| Kind::Word(w.to_string()), |(_, kind)| kind.clone())
    }
}

/// Splits `src` into tokens.
pub(super) fn lex(src: &str) -> Lexed {
    let mut lx = Lexer {
        src,
        chars: src.char_indices().peekable(),
        pos: 0,
    };
    let mut tokens = Vec::new();
    let mut error = None;
    while let Some(&(start, _)) = lx.chars.peek() {
        let Some(c) = lx.bump() else { break };
        let at = lx.pos;
        let kind = match c {
            c if c.is_whitespace() => continue,
            '(' => Kind::LParen,
            ')' => Kind::RParen,
            '&' => {
                lx.eat('&');
                Kind::And
            }
            '|' => {
                lx.eat('|');
                Kind::Or
            }
            '!' if lx.eat('=') => Kind::Cmp(CmpOp::Ne),
            '!' if lx.eat('~') => Kind::NotMatch,
            '!' => Kind::Not,
            '=' => {
                lx.eat('=');
                Kind::Cmp(CmpOp::Eq)
            }
            '<' if lx.eat('=') => Kind::Cmp(CmpOp::Le),
            '<' => Kind::Cmp(CmpOp::Lt),
            '>' if lx.eat('=') => Kind::Cmp(CmpOp::Ge),
            '>' => Kind::Cmp(CmpOp::Gt),
            '~' => Kind::Match,
            '"' | '\'' => match lx.quoted(c, at) {
                Ok(s) => Kind::Quoted(s),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            },
            _ => lx.word(start),
        };
        let end = lx.offset();
        tokens.push(Token {
            kind,
            pos: at,
            start,
            end,
        });
    }
    Lexed {
        tokens,
        error,
        end: src.chars().count() + 1,
    }
}
