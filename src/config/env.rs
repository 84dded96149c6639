//! `${ENV}` expansion of the configuration text, and keeping what came from the environment
//! (secrets among it) out of every error message.

use super::*;

#[derive(Debug)]
pub(super) enum ExpandError {
    Unset,
    /// `${VAR:?message}` with VAR unset or empty; None for `${VAR:?}`.
    Required(Option<String>),
    Newline,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::Unset => {
                f.write_str("is not set and has no default (use ${VAR:-default})")
            }
            ExpandError::Required(Some(m)) => f.write_str(m),
            ExpandError::Required(None) => f.write_str("is required and is unset or empty"),
            ExpandError::Newline => f.write_str(
                "contains a newline, which could inject YAML structure; refusing to substitute it",
            ),
        }
    }
}

/// One substitution from the environment: the line it was made on (1-based), the variable's
/// name and the value put in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Substitution {
    pub(super) line: usize,
    pub(super) name: String,
    pub(super) value: String,
}

/// Configuration text after `${ENV}` expansion, with what was substituted where.
pub(super) struct Expanded {
    pub(super) text: String,
    pub(super) subs: Vec<Substitution>,
}

/// Substitutes `${VAR}`, `${VAR:-default}`, `${VAR:?message}` and `$VAR`; `$$` is a literal `$`.
pub fn expand_env(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    expand_tracked(text, lookup).map(|e| e.text)
}

/// Like `expand_env`, remembering each substituted value so that errors can hide it. A value
/// never holds a newline, so line N of the result is line N of the input.
pub(super) fn expand_tracked(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Expanded, ConfigError> {
    let mut out = Expanded {
        text: String::with_capacity(text.len()),
        subs: Vec::new(),
    };
    for (i, line) in text.split_inclusive('\n').enumerate() {
        // Whole-line comments are left alone, so documentation may mention ${VAR}.
        if line.trim_start().starts_with('#') {
            out.text.push_str(line);
        } else {
            expand_line(line, i + 1, lookup, &mut out)?;
        }
    }
    Ok(out)
}

/// Prefix of a variable name that the expansion treats as unset.
pub(super) const UNSET: char = '\u{1}';

/// Shell semantics for `${VAR:-default}`: the default also applies when VAR is set but empty
/// (shellexpand applies it only when unset), so such references are renamed to an unset name.
pub(super) fn defaults_for_empty<'a>(
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

pub(super) fn expand_line(
    text: &str,
    line: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Expanded,
) -> Result<(), ConfigError> {
    // `$$` is split out first so that shellexpand never sees it.
    for (i, part) in text.split("$$").enumerate() {
        if i > 0 {
            out.text.push('$');
        }
        let part = defaults_for_empty(part, lookup);
        let subs = &mut out.subs;
        let expanded = shellexpand::env_with_context(&part, |name: &str| {
            // No environment variable's name starts with a digit: `$1` is a regex group
            // reference (redact's replacement), kept as written.
            if name.starts_with(UNSET) || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Ok(None);
            }
            // shellexpand only knows `:-`; `:?` reaches us inside the name.
            let (var, required) = match name.split_once(":?") {
                Some((v, m)) => (v, Some(m)),
                None => (name, None),
            };
            match lookup(var) {
                Some(v) if v.contains('\n') || v.contains('\r') => Err(ExpandError::Newline),
                Some(v) if !(v.is_empty() && required.is_some()) => {
                    if !v.is_empty() {
                        subs.push(Substitution {
                            line,
                            name: var.to_string(),
                            value: v.clone(),
                        });
                    }
                    Ok(Some(v))
                }
                _ => match required {
                    Some("") => Err(ExpandError::Required(None)),
                    Some(m) => Err(ExpandError::Required(Some(m.to_string()))),
                    None => Err(ExpandError::Unset),
                },
            }
        })
        .map_err(|e| {
            let var = e.var_name.split(":?").next().unwrap_or(&e.var_name);
            let msg = match e.cause {
                // The file's own words (`${LOGDIR:?set LOGDIR to the app log dir}`) after the name.
                ExpandError::Required(Some(m)) => format!("{var}: {m}"),
                cause => format!("environment variable {var} {cause}"),
            };
            err(format!("{msg} (line {line})"))
        })?;
        out.text.push_str(&expanded);
    }
    Ok(())
}

/// Puts `${NAME}` where a substituted value appears in `text` (also in its `{:?}` form, as
/// error messages quote values), so that no environment value reaches an error message. With
/// `pieces`, so do the pieces of at least `PIECE_CHARS` characters that YAML syntax in the
/// value (a quote, a comma, a colon...) could have cut it into: the message then quotes one.
pub(super) fn redact<'a>(
    text: &str,
    subs: impl IntoIterator<Item = &'a Substitution>,
    pieces: bool,
) -> String {
    let mut forms: Vec<(String, &str)> = Vec::new();
    for s in subs {
        let mut add = |v: &str| {
            let quoted = format!("{v:?}");
            for form in [v, &quoted[1..quoted.len() - 1]] {
                if !form.is_empty() && !forms.iter().any(|(f, _)| f == form) {
                    forms.push((form.to_string(), &s.name));
                }
            }
        };
        add(&s.value);
        if pieces {
            let cut = |c: char| c.is_whitespace() || "\"'#:,[]{}&*!|>%@`\\".contains(c);
            for piece in s.value.split(cut) {
                if piece.chars().count() >= PIECE_CHARS {
                    add(piece);
                }
            }
        }
    }
    // Longest first, so that a value wins over its pieces.
    forms.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'next: while let Some(c) = rest.chars().next() {
        for (v, name) in &forms {
            if let Some(after) = rest.strip_prefix(v.as_str()) {
                out.push_str("${");
                out.push_str(name);
                out.push('}');
                rest = after;
                continue 'next;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Shortest piece of a value that `redact` hides on its own.
pub(super) const PIECE_CHARS: usize = 3;

/// Hides a whole `"..."` segment of `text` that shares `PIECE_CHARS` characters in a row with
/// one of `subs`: what a message quotes comes from the value (a parser may quote just a part of
/// it, as humantime does with an unknown unit).
pub(super) fn redact_quoted(text: &str, subs: &[&Substitution]) -> String {
    let shares = |segment: &str, value: &str| {
        let chars: Vec<char> = segment.chars().collect();
        chars.windows(PIECE_CHARS).any(|w| {
            let w: String = w.iter().collect();
            value.contains(&w) || format!("{value:?}").contains(&w)
        })
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        // The closing quote: the next one not escaped by a backslash.
        let mut escaped = false;
        let Some(close) = rest.char_indices().find_map(|(i, c)| {
            let end = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            end.then_some(i)
        }) else {
            break;
        };
        let segment = &rest[..close];
        match subs.iter().find(|s| shares(segment, &s.value)) {
            Some(s) => {
                out.push_str("${");
                out.push_str(&s.name);
                out.push('}');
            }
            None => out.push_str(segment),
        }
        out.push('"');
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Redacts the key path of an error (a key may come from the environment too), leaving the
/// list positions (`[0]`) as they are.
pub(super) fn redact_path(path: &str, subs: &[&Substitution]) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while !rest.is_empty() {
        let (key, tail) = rest.split_at(rest.find('[').unwrap_or(rest.len()));
        out.push_str(&redact(key, subs.iter().copied(), true));
        let (index, tail) = tail.split_at(tail.find(']').map_or(tail.len(), |i| i + 1));
        out.push_str(index);
        rest = tail;
    }
    out
}

/// Values shorter than this are hidden only on the line an error points at: elsewhere in a
/// message, or in a quoted path, they would mostly match digits and words that are not theirs.
pub(super) const REDACT_ANYWHERE: usize = 4;

/// A deserialization error: the full key, the message, the value's line and column.
pub(super) fn deserialize_error(
    e: serde_path_to_error::Error<serde_yaml::Error>,
    subs: &[Substitution],
) -> ConfigError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let line = inner.location().map(|l| l.line());
    let text = inner.to_string();
    // serde_yaml prefixes its own (shorter) path; keep only the full one.
    let text = match text.split_once(": ") {
        Some((p, rest)) if path.starts_with(p) && p != "." => rest.to_string(),
        _ => text,
    };
    // The position stays as it is; the message before it may quote a value.
    let (body, at) = text.split_at(text.find(" at line ").unwrap_or(text.len()));
    // On the line the error points at, even a short value or a piece of one; elsewhere whole
    // values of some length.
    let here: Vec<&Substitution> = subs.iter().filter(|s| Some(s.line) == line).collect();
    let body = redact_quoted(&redact(body, here.iter().copied(), true), &here);
    let body = redact(
        &body,
        subs.iter()
            .filter(|s| Some(s.line) != line && s.value.chars().count() >= REDACT_ANYWHERE),
        false,
    );
    if path == "." || path.is_empty() {
        err(format!("{body}{at}"))
    } else {
        err(format!("{}: {body}{at}", redact_path(&path, &here)))
    }
}
