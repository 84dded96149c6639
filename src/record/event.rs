//! An event and the metadata its file's events share.

use super::{Key, Map, Value, intern, write_key, write_rfc3339_micros};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

/// What every event of one file shares: written once per file, not per event.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// The agent's host name.
    pub host: Arc<str>,
    /// The file's path as matched.
    pub path: String,
    /// The input's id (`file0`, ... by default).
    pub source: Arc<str>,
    /// Fields derived from the path (`kubernetes: {namespace, pod, pod_uid, container}`).
    pub extra: Map,
    /// host, path and source as values, so that a condition on them does not allocate.
    as_values: [Value; 3],
    /// host, path and source as JSON strings, escaped once per file, not per event.
    as_json: [Vec<u8>; 3],
}

impl Meta {
    /// Metadata for a file of input `source` on `host`.
    pub fn new(host: &str, path: &str, source: &str) -> Meta {
        Meta {
            host: host.into(),
            path: path.to_string(),
            source: source.into(),
            extra: Map::new(),
            as_values: [host.into(), path.into(), source.into()],
            as_json: [host, path, source].map(|v| {
                let mut out = Vec::with_capacity(v.len() + 2);
                Value::write_str(v, &mut out);
                out
            }),
        }
    }
}

/// The metadata names as JSON keys, escaped once.
const META_KEYS: [&[u8]; 5] = [
    b"\"timestamp\":",
    b"\"host\":",
    b"\"path\":",
    b"\"offset\":",
    b"\"source\":",
];

/// The metadata names, in the order they are written.
pub const META_NAMES: [&str; 5] = ["timestamp", "host", "path", "offset", "source"];

/// One event on its way through the processors to the outputs.
#[derive(Debug, Clone)]
pub struct Event {
    /// File offset of its first line.
    pub offset: u64,
    /// Its time: from the record (CRI, Docker) or a `timestamp` processor, else when read.
    pub time: Option<SystemTime>,
    /// `message` and the fields processors added, in order.
    pub fields: Map,
    /// What the file's events share.
    pub meta: Arc<Meta>,
    /// Metadata names removed by a processor (bit i for META_NAMES[i], bit 5 for `extra`).
    pub hidden: u8,
}

/// Bit of `Event::hidden` for the path-derived fields.
const EXTRA_BIT: u8 = 1 << 5;

impl Event {
    /// An event holding `message`, first line at `offset`.
    pub fn new(meta: Arc<Meta>, offset: u64, message: String) -> Event {
        Event::with_message_key(meta, offset, intern("message"), message)
    }

    /// Like `new`, with the `message` key at hand (a per-file pipeline keeps it).
    pub fn with_message_key(meta: Arc<Meta>, offset: u64, key: Key, message: String) -> Event {
        // Room for a parsed line's fields without regrowing.
        let mut fields = Map::with_capacity(8);
        fields.0.push((key, Value::Str(message)));
        Event {
            offset,
            time: None,
            fields,
            meta,
            hidden: 0,
        }
    }

    /// The message as text (empty if there is none).
    pub fn message(&self) -> Cow<'_, str> {
        self.fields
            .get("message")
            .map_or(Cow::Borrowed(""), Value::to_text)
    }

    fn meta_index(name: &str) -> Option<usize> {
        META_NAMES.iter().position(|m| *m == name)
    }

    /// The value at a dotted path: the event's own fields first, then the metadata.
    /// `timestamp` is RFC 3339 text; `offset` a number.
    pub fn get(&self, path: &str) -> Option<Cow<'_, Value>> {
        if let Some(v) = self.fields.get_path(path) {
            return Some(Cow::Borrowed(v));
        }
        if let Some(i) = Self::meta_index(path) {
            if self.hidden & (1 << i) != 0 {
                return None;
            }
            return Some(match i {
                0 => {
                    let mut text = Vec::with_capacity(27);
                    write_rfc3339_micros(self.time.unwrap_or_else(SystemTime::now), &mut text);
                    Cow::Owned(Value::Str(String::from_utf8_lossy(&text).into_owned()))
                }
                3 => Cow::Owned(Value::Int(i64::try_from(self.offset).unwrap_or(i64::MAX))),
                1 => Cow::Borrowed(&self.meta.as_values[0]),
                2 => Cow::Borrowed(&self.meta.as_values[1]),
                _ => Cow::Borrowed(&self.meta.as_values[2]),
            });
        }
        if self.hidden & EXTRA_BIT == 0 {
            return self.meta.extra.get_path(path).map(Cow::Borrowed);
        }
        None
    }

    /// Sets a field (a dotted path makes nested objects). A metadata name set here shadows
    /// the metadata.
    pub fn set(&mut self, path: &str, value: Value) {
        self.fields.insert_path(path, value);
    }

    /// Removes a field or hides a metadata one; returns the value it had.
    pub fn remove(&mut self, path: &str) -> Option<Value> {
        let own = self.fields.remove_path(path);
        if own.is_some() {
            return own;
        }
        let before = self.get(path).map(Cow::into_owned)?;
        match Self::meta_index(path) {
            Some(i) => self.hidden |= 1 << i,
            None => {
                // Path-derived fields are shared: copy them into the event, then remove.
                if self.hidden & EXTRA_BIT == 0 {
                    for (k, v) in self.meta.extra.iter() {
                        if !self.fields.contains(k) {
                            self.fields.insert(k.to_string(), v.clone());
                        }
                    }
                    self.hidden |= EXTRA_BIT;
                }
                self.fields.remove_path(path);
            }
        }
        Some(before)
    }

    /// Appends the event as one JSON object (no newline): metadata first, then the
    /// path-derived fields, then its own fields; a field shadows metadata of its name.
    /// `read_time` stands in for a missing time.
    pub fn write_json(&self, read_time: SystemTime, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !first {
                out.push(b',');
            }
            first = false;
        };
        // One pass over the fields finds the metadata they shadow.
        let mut skip = self.hidden;
        for (k, _) in self.fields.iter() {
            if let Some(i) = Self::meta_index(k) {
                skip |= 1 << i;
            }
        }
        for (i, key) in META_KEYS.iter().enumerate() {
            if skip & (1 << i) != 0 {
                continue;
            }
            sep(out);
            out.extend_from_slice(key);
            match i {
                0 => {
                    out.push(b'"');
                    write_rfc3339_micros(self.time.unwrap_or(read_time), out);
                    out.push(b'"');
                }
                1 => out.extend_from_slice(&self.meta.as_json[0]),
                2 => out.extend_from_slice(&self.meta.as_json[1]),
                3 => {
                    let mut b = itoa::Buffer::new();
                    out.extend_from_slice(b.format(self.offset).as_bytes());
                }
                _ => out.extend_from_slice(&self.meta.as_json[2]),
            }
        }
        if self.hidden & EXTRA_BIT == 0 {
            for (k, v) in self.meta.extra.iter() {
                if !self.fields.contains(k) {
                    sep(out);
                    write_key(k, out);
                    v.write_json(out);
                }
            }
        }
        for (k, v) in self.fields.iter() {
            sep(out);
            write_key(k, out);
            v.write_json(out);
        }
        out.push(b'}');
    }
}
