//! The event model of the processing pipeline: an event is a set of named fields. The
//! metadata (`timestamp`, `host`, `path`, `offset`, `source`, and `kubernetes.*` where the
//! input asks for it) is shared per file and written unless a field of the same name shadows
//! it or a processor removed it; `message` and whatever the processors add are the event's
//! own fields, in order. Framing, multiline, processors, conditions and encoders all see
//! events through this module.

mod event;
mod time;

pub use event::{Event, META_NAMES, Meta};
pub use time::write_rfc3339_micros;

use crate::output::encode::escape_str;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A field's value, as JSON has them (numbers stay numbers).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JSON null.
    Null,
    /// true or false.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction or exponent (or out of i64's range).
    Float(f64),
    /// Text.
    Str(String),
    /// A list.
    Array(Vec<Value>),
    /// Nested fields, in order.
    Object(Map),
}

/// Fields in insertion order; a name appears once. Events have few fields, so a vector beats
/// a hash map for both lookup and encoding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map(Vec<(Key, Value)>);

/// A field name. Shared (see `intern`): events of one file repeat the same few names, and a
/// name per field per event would be most of the allocations of a parsed event.
pub type Key = Arc<str>;

/// Names seen lately on this thread; bounded, cleared when full (the names of a log format
/// are few; a log with a fresh key in every line only loses the sharing).
const INTERNED_MAX: usize = 1024;

/// A multiply-rotate hasher (FxHash's): names are short and not attacker-chosen keys of a
/// long-lived table (it is bounded and cleared), and SipHash cost more than the allocation
/// it saved.
#[derive(Default, Clone, Copy)]
struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type NameMap = std::collections::HashMap<Box<str>, Key, std::hash::BuildHasherDefault<NameHasher>>;

thread_local! {
    static NAMES: std::cell::RefCell<NameMap> = std::cell::RefCell::new(NameMap::default());
}

/// The shared key for `name` on this thread.
pub fn intern(name: &str) -> Key {
    NAMES.with(|n| {
        let mut n = n.borrow_mut();
        if let Some(k) = n.get(name) {
            return k.clone();
        }
        if n.len() >= INTERNED_MAX {
            n.clear();
        }
        let k: Key = Arc::from(name);
        n.insert(name.into(), k.clone());
        k
    })
}

impl Map {
    /// An empty map.
    pub fn new() -> Map {
        Map(Vec::new())
    }

    /// An empty map with room for `n` fields.
    pub fn with_capacity(n: usize) -> Map {
        Map(Vec::with_capacity(n))
    }

    /// The value of a top-level name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| &**k == name).map(|(_, v)| v)
    }

    /// A mutable reference to a top-level name's value.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.0
            .iter_mut()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| v)
    }

    /// Whether a top-level name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| &**k == name)
    }

    /// Sets a top-level name: replaces its value in place, or appends it.
    pub fn insert(&mut self, name: impl Into<Key> + AsRef<str>, value: Value) {
        match self.get_mut(name.as_ref()) {
            Some(v) => *v = value,
            None => self.0.push((name.into(), value)),
        }
    }

    /// Removes a top-level name; returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.0.iter().position(|(k, _)| &**k == name)?;
        Some(self.0.remove(i).1)
    }

    /// The value at a dotted path (`kubernetes.namespace`, `http.status`).
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        if let Some(v) = self.get(path) {
            // A name that itself has a dot (from a JSON log) wins over the nested reading.
            return Some(v);
        }
        let (head, rest) = path.split_once('.')?;
        match self.get(head)? {
            Value::Object(m) => m.get_path(rest),
            _ => None,
        }
    }

    /// Sets the value at a dotted path, creating objects on the way (a non-object on the way
    /// is replaced by one).
    pub fn insert_path(&mut self, path: &str, value: Value) {
        match path.split_once('.') {
            None => self.insert(path, value),
            Some(_) if self.contains(path) => self.insert(path, value),
            Some((head, rest)) => {
                if !matches!(self.get(head), Some(Value::Object(_))) {
                    self.insert(head, Value::Object(Map::new()));
                }
                if let Some(Value::Object(m)) = self.get_mut(head) {
                    m.insert_path(rest, value);
                }
            }
        }
    }

    /// Removes the value at a dotted path; returns it.
    pub fn remove_path(&mut self, path: &str) -> Option<Value> {
        if self.contains(path) {
            return self.remove(path);
        }
        let (head, rest) = path.split_once('.')?;
        match self.get_mut(head)? {
            Value::Object(m) => m.remove_path(rest),
            _ => None,
        }
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }

    /// Number of top-level fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends the map as a JSON object.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_key(k, out);
            v.write_json(out);
        }
        out.push(b'}');
    }
}

/// Appends `"key":`.
pub fn write_key(k: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    escape_str(k, out);
    out.extend_from_slice(b"\":");
}

impl Value {
    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a number, when it is one or is text that reads as one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as text: strings as they are, everything else as JSON.
    pub fn to_text(&self) -> Cow<'_, str> {
        match self {
            Value::Str(s) => Cow::Borrowed(s),
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Value::Null => Cow::Borrowed("null"),
            other => {
                let mut out = Vec::new();
                other.write_json(&mut out);
                Cow::Owned(String::from_utf8_lossy(&out).into_owned())
            }
        }
    }

    /// Appends the value as JSON.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Int(i) => {
                let mut b = itoa::Buffer::new();
                out.extend_from_slice(b.format(*i).as_bytes());
            }
            // JSON has no NaN or infinity.
            Value::Float(f) if !f.is_finite() => out.extend_from_slice(b"null"),
            Value::Float(f) => {
                let mut b = ryu::Buffer::new();
                out.extend_from_slice(b.format_finite(*f).as_bytes());
            }
            Value::Str(s) => {
                out.push(b'"');
                escape_str(s, out);
                out.push(b'"');
            }
            Value::Array(a) => {
                out.push(b'[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write_json(out);
                }
                out.push(b']');
            }
            Value::Object(m) => m.write_json(out),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

// Parsing JSON straight into `Value` (not through serde_json::Value and its BTreeMap) keeps
// the log's own field order and allocates only the strings.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(x) = seq.next_element()? {
            v.push(x);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            let v: Value = map.next_value()?;
            // A duplicate key keeps the last value, as most JSON readers do.
            m.insert(intern(&k), v);
        }
        Ok(Value::Object(m))
    }
}

impl Value {
    /// Parses JSON text into a value.
    pub fn from_json(text: &[u8]) -> Result<Value, String> {
        serde_json::from_slice(text).map_err(|e| e.to_string())
    }
}

impl Value {
    /// Appends `s` as a JSON string.
    pub fn write_str(s: &str, out: &mut Vec<u8>) {
        out.push(b'"');
        escape_str(s, out);
        out.push(b'"');
    }
}

/// Reads JSON object text into a `Map` (tests build events with it).
pub fn parse_object(text: &[u8]) -> Result<Map, String> {
    match Value::from_json(text)? {
        Value::Object(m) => Ok(m),
        _ => Err("not a JSON object".into()),
    }
}

/// Deserializes a YAML/JSON mapping into a `Map`-like ordered list of pairs.
pub fn ordered_pairs<'de, D, V>(d: D) -> Result<Vec<(String, V)>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Pairs<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for Pairs<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping of field names to values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut v: Vec<(String, V)> = Vec::new();
            while let Some(k) = map.next_key::<String>()? {
                if v.iter().any(|(x, _)| *x == k) {
                    return Err(de::Error::custom(format!("field {k:?} is named twice")));
                }
                let val = map.next_value()?;
                v.push((k, val));
            }
            Ok(v)
        }
    }
    d.deserialize_map(Pairs(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn meta() -> Arc<Meta> {
        let mut m = Meta::new("h", "/l/a.log", "app");
        let mut k = Map::new();
        k.insert("namespace", Value::from("prod"));
        m.extra.insert("kubernetes", Value::Object(k));
        Arc::new(m)
    }

    fn json(e: &Event) -> String {
        let mut out = Vec::new();
        e.write_json(std::time::UNIX_EPOCH, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn parsed_json_keeps_order_numbers_and_nesting() {
        let m =
            parse_object(br#"{"b":1,"a":{"x":[1.5,"s",null,true]},"big":18446744073709551615}"#)
                .unwrap();
        let mut out = Vec::new();
        m.write_json(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"b":1,"a":{"x":[1.5,"s",null,true]},"big":1.8446744073709552e19}"#
        );
        assert_eq!(
            m.get_path("a.x"),
            m.get("a").and_then(|a| match a {
                Value::Object(o) => o.get("x"),
                _ => None,
            })
        );
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"{").is_err());
    }

    #[test]
    fn events_write_metadata_then_fields_and_fields_shadow_metadata() {
        let mut e = Event::new(meta(), 7, "hi \"there\"".into());
        assert_eq!(
            json(&e),
            r#"{"timestamp":"1970-01-01T00:00:00.000000Z","host":"h","path":"/l/a.log","offset":7,"source":"app","kubernetes":{"namespace":"prod"},"message":"hi \"there\""}"#
        );
        e.set("host", Value::from("other"));
        e.set("http.status", Value::Int(500));
        assert_eq!(e.get("host").unwrap().as_str(), Some("other"));
        assert_eq!(e.get("http.status").unwrap().into_owned(), Value::Int(500));
        assert_eq!(
            e.get("kubernetes.namespace").unwrap().as_str(),
            Some("prod")
        );
        assert_eq!(e.get("offset").unwrap().into_owned(), Value::Int(7));
        let j = json(&e);
        assert!(
            j.contains(r#""message":"hi \"there\"","host":"other","http":{"status":500}}"#),
            "{j}"
        );
        assert_eq!(j.matches("\"host\"").count(), 1, "{j}");
    }

    #[test]
    fn removing_metadata_hides_it_and_removing_a_derived_field_keeps_its_siblings() {
        let mut e = Event::new(meta(), 0, "m".into());
        assert_eq!(e.remove("path").unwrap().as_str(), Some("/l/a.log"));
        assert!(e.get("path").is_none());
        assert!(!json(&e).contains("\"path\""));
        let mut m = (*meta()).clone();
        if let Some(Value::Object(k)) = m.extra.get_mut("kubernetes") {
            k.insert("pod", Value::from("p1"));
        }
        let mut e = Event::new(Arc::new(m), 0, "m".into());
        e.remove("kubernetes.namespace");
        assert!(e.get("kubernetes.namespace").is_none());
        assert_eq!(e.get("kubernetes.pod").unwrap().as_str(), Some("p1"));
        assert!(
            json(&e).contains(r#""kubernetes":{"pod":"p1"}"#),
            "{}",
            json(&e)
        );
        assert!(e.remove("nope").is_none());
    }

    #[test]
    fn timestamps_are_written_as_humantime_writes_them() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Up to the year 2500, any microsecond.
            let t = std::time::UNIX_EPOCH
                + std::time::Duration::from_micros(rng % 16_725_225_600_000_000);
            let mut out = Vec::new();
            write_rfc3339_micros(t, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                humantime::format_rfc3339_micros(t).to_string()
            );
        }
    }

    #[test]
    fn any_time_is_written_without_panicking_clamped_to_four_digit_years() {
        let w = |t: SystemTime| {
            let mut out = Vec::new();
            write_rfc3339_micros(t, &mut out);
            String::from_utf8(out).unwrap()
        };
        let epoch = std::time::UNIX_EPOCH;
        let d = std::time::Duration::from_micros;
        assert_eq!(w(epoch - d(1)), "1969-12-31T23:59:59.999999Z");
        assert_eq!(w(epoch - d(1_000_000)), "1969-12-31T23:59:59.000000Z");
        assert_eq!(
            w(epoch - std::time::Duration::from_secs(62_167_219_200)),
            "0000-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            w(epoch - std::time::Duration::from_secs(99_999_999_999)),
            "0000-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            w(epoch + std::time::Duration::from_secs(300_000_000_000)),
            "9999-12-31T23:59:59.999999Z"
        );
        let mut e = Event::new(meta(), 0, "m".into());
        e.time = Some(epoch + std::time::Duration::from_secs(300_000_000_000));
        assert_eq!(
            e.get("timestamp").unwrap().as_str(),
            Some("9999-12-31T23:59:59.999999Z")
        );
    }

    #[test]
    fn values_as_text_and_numbers() {
        assert_eq!(Value::Int(3).to_text(), "3");
        assert_eq!(Value::from("4.5").as_f64(), Some(4.5));
        assert_eq!(Value::Float(f64::NAN).to_text(), "null");
        assert_eq!(Value::Array(vec![Value::Int(1)]).to_text(), "[1]");
    }
}
