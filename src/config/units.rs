//! Durations (`250ms`, `1h 30m`) and sizes (`1MiB`) in the configuration, parsed where the
//! YAML parser still knows the value's position.

use super::*;

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

// Durations and sizes are parsed inside a visitor, while the YAML deserializer still stands on
// the value: an error raised there carries the value's own line and column. (Buffering the
// value first, e.g. through an untagged enum, and failing afterwards reports the position of
// the enclosing mapping instead: the start of the list item.)

pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

pub(super) fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(SizeVisitor)
}

pub(super) struct DurationVisitor;

impl de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration with a unit, like 250ms, 5s or 1m")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
        parse_duration(s).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, i: u64) -> Result<Duration, E> {
        if i == 0 {
            return Ok(Duration::ZERO);
        }
        Err(E::custom(format!(
            "invalid duration {i}; a duration needs a unit, like {i}s or {i}ms"
        )))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Duration, E> {
        match u64::try_from(i) {
            Ok(u) => self.visit_u64(u),
            Err(_) => Err(E::custom(format!(
                "invalid duration {i}; a duration cannot be negative"
            ))),
        }
    }
}

pub(super) struct SizeVisitor;

impl de::Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size in bytes, or a number with a unit like 512KiB or 1MiB")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
        parse_size(s).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, i: u64) -> Result<u64, E> {
        Ok(i)
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<u64, E> {
        u64::try_from(i)
            .map_err(|_| E::custom(format!("invalid size {i}; a size cannot be negative")))
    }
}
