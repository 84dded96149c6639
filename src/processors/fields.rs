//! set, rename, remove, redact: field edits that cannot fail at run time. Names are dotted
//! paths (`http.status`); metadata names (`path`, `host`, ...) work as through `Event`.

use super::{BuildError, regex_error};
use crate::config::SetValue;
use crate::record::{Event, Map, Value};
use regex::Regex;
use std::borrow::Cow;

/// set: each name gets its value (a dotted name nests; a metadata name shadows it).
#[derive(Debug, Clone)]
pub(super) struct Set(Vec<(String, Value)>);

impl Set {
    pub(super) fn new(pairs: &[(String, SetValue)]) -> Set {
        Set(pairs
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    SetValue::Bool(b) => Value::Bool(*b),
                    SetValue::Int(i) => Value::Int(*i),
                    SetValue::Float(f) => Value::Float(*f),
                    SetValue::Str(s) => Value::from(s.as_str()),
                };
                (k.clone(), v)
            })
            .collect())
    }

    pub(super) fn apply(&mut self, e: &mut Event) -> bool {
        for (k, v) in &self.0 {
            e.set(k, v.clone());
        }
        true
    }
}

/// rename: a present field moves to its new name (replacing one there); an absent one is
/// no change. A metadata name moves too: it is hidden and its value set under the new name.
#[derive(Debug, Clone)]
pub(super) struct Rename(Vec<(String, String)>);

impl Rename {
    pub(super) fn new(pairs: &[(String, String)]) -> Rename {
        Rename(pairs.to_vec())
    }

    pub(super) fn apply(&mut self, e: &mut Event) -> bool {
        for (old, new) in &self.0 {
            if let Some(v) = e.remove(old) {
                e.set(new, v);
            }
        }
        true
    }
}

/// remove: each field removed, or its metadata hidden.
#[derive(Debug, Clone)]
pub(super) struct Remove(Vec<String>);

impl Remove {
    pub(super) fn new(names: &[String]) -> Remove {
        Remove(names.to_vec())
    }

    pub(super) fn apply(&mut self, e: &mut Event) -> bool {
        for n in &self.0 {
            e.remove(n);
        }
        true
    }
}

/// redact: matches of the pattern replaced (regex's `$1` / `${name}` syntax) in the message
/// and in each named field that holds a string; other values are left alone. A field is
/// rewritten only when something matched.
#[derive(Debug, Clone)]
pub(super) struct Redact {
    re: Regex,
    replacement: String,
    /// The named fields, `message` left out (it is always redacted, once).
    fields: Vec<String>,
}

impl Redact {
    pub(super) fn new(
        pattern: &str,
        replacement: &str,
        fields: &[String],
    ) -> Result<Redact, BuildError> {
        let re = Regex::new(pattern).map_err(|e| (Some("pattern"), regex_error(&e)))?;
        check_replacement(replacement, &re).map_err(|m| (Some("replacement"), m))?;
        Ok(Redact {
            re,
            replacement: replacement.to_string(),
            fields: (fields.iter())
                .filter(|f| *f != "message")
                .cloned()
                .collect(),
        })
    }

    pub(super) fn apply(&mut self, e: &mut Event) -> bool {
        self.redact(e, "message");
        for f in &self.fields {
            self.redact(e, f);
        }
        true
    }

    fn redact(&self, e: &mut Event, path: &str) {
        if let Some(v) = path_mut(&mut e.fields, path) {
            if let Value::Str(s) = v
                && let Cow::Owned(r) = self.re.replace_all(s, self.replacement.as_str())
            {
                *s = r;
            }
            return;
        }
        // Not an own field: metadata (`path`, `kubernetes.pod`) that matched is replaced as
        // `rename` moves it (removed first, so the siblings of a path-derived field stay).
        let replaced = match e.get(path).as_deref() {
            Some(Value::Str(s)) => match self.re.replace_all(s, self.replacement.as_str()) {
                Cow::Owned(r) => Some(r),
                Cow::Borrowed(_) => None,
            },
            _ => None,
        };
        if let Some(r) = replaced {
            e.remove(path);
            e.set(path, Value::Str(r));
        }
    }
}

/// The value at a dotted path, mutable; resolves names as `Map::get_path` does (a top-level
/// name with a dot wins over the nested reading).
fn path_mut<'a>(m: &'a mut Map, path: &str) -> Option<&'a mut Value> {
    if m.contains(path) {
        return m.get_mut(path);
    }
    let (head, rest) = path.split_once('.')?;
    match m.get_mut(head)? {
        Value::Object(inner) => path_mut(inner, rest),
        _ => None,
    }
}

/// Checks that every group a replacement refers to exists, as regex's expansion reads them:
/// `$$` is a dollar, `${name}` or `$name` (the longest run of letters, digits and `_`) a
/// group by number or name, and a `$` followed by nothing of that is itself.
fn check_replacement(rep: &str, re: &Regex) -> Result<(), String> {
    let mut rest = rep;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            rest = a;
            continue;
        }
        let (name, braced, next) = match after.strip_prefix('{') {
            Some(b) => match b.find('}') {
                Some(end) => (&b[..end], true, &b[end + 1..]),
                None => ("", true, b),
            },
            None => {
                let end = (after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
                    .unwrap_or(after.len());
                (&after[..end], false, &after[end..])
            }
        };
        rest = next;
        if name.is_empty() {
            continue;
        }
        let written = if braced {
            format!("${{{name}}}")
        } else {
            format!("${name}")
        };
        let groups = re.captures_len() - 1;
        match name.parse::<usize>() {
            Ok(n) if n > groups => {
                return Err(format!(
                    "refers to group {written}, but the pattern has {groups} group{}",
                    if groups == 1 { "" } else { "s" }
                ));
            }
            Ok(_) => {}
            Err(_) if re.capture_names().flatten().any(|g| g == name) => {}
            Err(_) => {
                let digits = name.bytes().take_while(u8::is_ascii_digit).count();
                let hint = if digits > 0 && !braced {
                    format!(
                        " (write ${{{}}}{} for group {} then text)",
                        &name[..digits],
                        &name[digits..],
                        &name[..digits]
                    )
                } else {
                    String::new()
                };
                return Err(format!(
                    "refers to group {written}, which the pattern does not have{hint}"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{build, build_err, event, get, json, s};
    use super::*;
    use crate::config::{Pairs, ProcessorConfig};
    use crate::record::Meta;
    use std::sync::Arc;

    fn redact(pattern: &str, replacement: &str, fields: &[&str]) -> ProcessorConfig {
        ProcessorConfig::Redact {
            pattern: s(pattern),
            replacement: s(replacement),
            fields: fields.iter().map(|f| s(f)).collect(),
        }
    }

    #[test]
    fn set_makes_typed_and_nested_fields_and_shadows_metadata() {
        let mut p = build(
            "t-set",
            vec![ProcessorConfig::Set {
                fields: Pairs(vec![
                    (s("env"), SetValue::Str(s("prod"))),
                    (s("team"), SetValue::Str(s("payments"))),
                    (s("replicas"), SetValue::Int(3)),
                    (s("ratio"), SetValue::Float(0.5)),
                    (s("on"), SetValue::Bool(true)),
                    (s("k8s.cluster"), SetValue::Str(s("eu-1"))),
                    (s("host"), SetValue::Str(s("other"))),
                ]),
            }],
        );
        let e = p.apply(event("m")).unwrap();
        let out = json(&e);
        assert!(
            out.ends_with(r#""message":"m","env":"prod","team":"payments","replicas":3,"ratio":0.5,"on":true,"k8s":{"cluster":"eu-1"},"host":"other"}"#),
            "{out}"
        );
        assert_eq!(out.matches("\"host\"").count(), 1);
    }

    #[test]
    fn rename_moves_fields_and_metadata_and_skips_absent_ones() {
        let mut p = build(
            "t-rename",
            vec![
                ProcessorConfig::Set {
                    fields: Pairs(vec![(s("a.b"), SetValue::Int(1))]),
                },
                ProcessorConfig::Rename {
                    fields: Pairs(vec![
                        (s("a.b"), s("flat")),
                        (s("path"), s("file.path")),
                        (s("nope"), s("x")),
                    ]),
                },
            ],
        );
        let e = p.apply(event("m")).unwrap();
        assert_eq!(get(&e, "flat"), Some(Value::Int(1)));
        assert_eq!(get(&e, "file.path"), Some(Value::from("/p.log")));
        assert!(get(&e, "path").is_none() && get(&e, "x").is_none());
        assert!(!json(&e).contains(r#""path":"/p.log","offset""#));
        assert_eq!(get(&e, "a"), Some(Value::Object(Map::new())));
    }

    #[test]
    fn remove_drops_fields_and_hides_metadata() {
        let mut p = build(
            "t-remove",
            vec![ProcessorConfig::Remove {
                fields: vec![s("message"), s("host"), s("absent")],
            }],
        );
        let e = p.apply(event("m")).unwrap();
        assert_eq!(
            json(&e),
            r#"{"timestamp":"1970-01-01T00:00:00.000000Z","path":"/p.log","offset":0,"source":"app"}"#
        );
    }

    #[test]
    fn redact_rewrites_the_message_and_named_string_fields_only() {
        let mut p = build(
            "t-redact",
            vec![
                ProcessorConfig::Set {
                    fields: Pairs(vec![
                        (s("user.email"), SetValue::Str(s("bob@example.com"))),
                        (s("n"), SetValue::Int(5)),
                        (s("other"), SetValue::Str(s("carol@example.com"))),
                    ]),
                },
                redact(
                    r"(?P<user>[\w.]+)@(\w+)\.com",
                    "${user}@$2.***",
                    &["user.email", "n", "missing", "message"],
                ),
            ],
        );
        let e = p.apply(event("mail alice@corp.com and x@y.com")).unwrap();
        assert_eq!(e.message(), "mail alice@corp.*** and x@y.***");
        assert_eq!(get(&e, "user.email"), Some(Value::from("bob@example.***")));
        assert_eq!(get(&e, "n"), Some(Value::Int(5)));
        assert_eq!(get(&e, "other"), Some(Value::from("carol@example.com")));
        assert!(get(&e, "missing").is_none());
        let e = p.apply(event("nothing here")).unwrap();
        assert_eq!(e.message(), "nothing here");
    }

    #[test]
    fn redact_default_stars_and_metadata() {
        let mut meta = Meta::new("h", "/home/alice/app.log", "app");
        let mut k8s = Map::new();
        k8s.insert("namespace", Value::from("prod"));
        k8s.insert("pod", Value::from("alice-pod"));
        meta.extra.insert("kubernetes", Value::Object(k8s));
        let mut p = build(
            "t-redact-meta",
            vec![redact("alice", "***", &["path", "kubernetes.pod", "host"])],
        );
        let e = p
            .apply(Event::new(Arc::new(meta), 0, "by alice".into()))
            .unwrap();
        assert_eq!(e.message(), "by ***");
        assert_eq!(get(&e, "path"), Some(Value::from("/home/***/app.log")));
        assert_eq!(get(&e, "kubernetes.pod"), Some(Value::from("***-pod")));
        assert_eq!(get(&e, "kubernetes.namespace"), Some(Value::from("prod")));
        let out = json(&e);
        assert_eq!(out.matches("alice").count(), 0, "{out}");
        // Metadata that did not match is not copied into the event.
        assert!(e.fields.get("host").is_none());
    }

    #[test]
    fn redact_replacements_must_name_groups_the_pattern_has() {
        let e = build_err(vec![redact(r"(\d+)", "$2", &[])]);
        assert_eq!(
            e,
            "inputs.files[0].processors[0].replacement: refers to group $2, but the pattern has 1 group"
        );
        let e = build_err(vec![redact(r"(?P<a>x)", "${b}", &[])]);
        assert_eq!(
            e,
            "inputs.files[0].processors[0].replacement: refers to group ${b}, which the pattern does not have"
        );
        let e = build_err(vec![redact(r"(x)", "$1a", &[])]);
        assert!(e.ends_with("(write ${1}a for group 1 then text)"), "{e}");
        let e = build_err(vec![redact(r"(x", "*", &[])]);
        assert_eq!(
            e,
            "inputs.files[0].processors[0].pattern: invalid regex: unclosed group"
        );
        let one_group = Regex::new("(x)").unwrap();
        for ok in ["$$2", "$0", "${1}a", "cost: $", "$ 1", "${unclosed", "$1"] {
            assert!(check_replacement(ok, &one_group).is_ok(), "{ok}");
        }
    }
}
