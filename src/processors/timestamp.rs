//! timestamp: the event's time from one of its own fields. On success the time is the
//! event's (`Event::time`, written as `timestamp`) and the field is consumed unless `keep`;
//! a value that does not read is a failure like a parser's and changes nothing.

use crate::record::{Event, Value};
use chrono::format::{Fixed, Item, Numeric, Parsed, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveTime, TimeZone};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A compiled timestamp processor.
#[derive(Debug, Clone)]
pub(super) struct Timestamp {
    field: String,
    keep: bool,
    format: Format,
}

#[derive(Debug, Clone)]
enum Format {
    /// RFC 3339 (a space for the `T` is fine); the offset is required.
    Rfc3339,
    /// Seconds since the epoch: an integer, a decimal, or text holding one.
    Unix,
    /// Milliseconds since the epoch, read as `Unix` is.
    UnixMs,
    /// A strftime pattern, parsed once. Without an offset in the text the time is UTC
    /// (chrono skips a `%Z` name without resolving it); without a time of day (`has_time`
    /// false) it is midnight UTC.
    Strftime {
        items: Vec<Item<'static>>,
        has_time: bool,
    },
}

impl Timestamp {
    /// Errors are about `format`.
    pub(super) fn new(field: &str, format: &str, keep: bool) -> Result<Timestamp, String> {
        let format = match format {
            "rfc3339" => Format::Rfc3339,
            "unix" => Format::Unix,
            "unix_ms" => Format::UnixMs,
            p if !p.contains('%') => {
                return Err(format!(
                    "unknown format {p:?}: use rfc3339, unix, unix_ms or a strftime pattern"
                ));
            }
            p => strftime(p)?,
        };
        Ok(Timestamp {
            field: field.to_string(),
            keep,
            format,
        })
    }

    pub(super) fn apply(&mut self, e: &mut Event) -> bool {
        // Own fields only: the metadata `timestamp` is this very time, not a source of it.
        let Some(t) = e.fields.get_path(&self.field).and_then(|v| self.read(v)) else {
            return false;
        };
        e.time = Some(t);
        if !self.keep {
            e.remove(&self.field);
        }
        true
    }

    fn read(&self, v: &Value) -> Option<SystemTime> {
        match &self.format {
            Format::Rfc3339 => {
                let text = v.as_str()?.trim();
                // The framing's hand-written parser first (this runs per event); chrono for
                // what it leaves (a space for the `T`).
                crate::framing::rfc3339::parse(text.as_bytes()).or_else(|| {
                    DateTime::parse_from_rfc3339(text)
                        .ok()
                        .map(SystemTime::from)
                })
            }
            Format::Unix => epoch(v, 1),
            Format::UnixMs => epoch(v, 1000),
            Format::Strftime { items, has_time } => {
                let text = v.to_text();
                let mut p = Parsed::new();
                chrono::format::parse(&mut p, text.trim(), items.iter()).ok()?;
                let offset = p.offset().unwrap_or(0);
                let local = if *has_time {
                    p.to_naive_datetime_with_offset(offset).ok()?
                } else {
                    p.to_naive_date().ok()?.and_time(NaiveTime::MIN)
                };
                let dt = FixedOffset::east_opt(offset)?
                    .from_local_datetime(&local)
                    .single()?;
                Some(SystemTime::from(dt))
            }
        }
    }
}

/// A count of `1/per` seconds since the epoch as a time (negative ones are before it).
fn epoch(v: &Value, per: u32) -> Option<SystemTime> {
    let int = match v {
        Value::Int(i) => Some(*i),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    };
    let (negative, d) = match int {
        Some(i) => {
            let n = i.unsigned_abs();
            let d = Duration::from_secs(n / u64::from(per))
                + Duration::from_nanos(n % u64::from(per) * u64::from(1_000_000_000 / per));
            (i < 0, d)
        }
        None => {
            let f = v.as_f64()? / f64::from(per);
            (f < 0.0, Duration::try_from_secs_f64(f.abs()).ok()?)
        }
    };
    if negative {
        UNIX_EPOCH.checked_sub(d)
    } else {
        UNIX_EPOCH.checked_add(d)
    }
}

/// Compiles a strftime pattern; it must be valid and name at least a year (or be `%s`).
fn strftime(pattern: &str) -> Result<Format, String> {
    let items = StrftimeItems::new(pattern).parse_to_owned().map_err(|_| {
        format!(
            "invalid strftime pattern {pattern:?}: {}",
            bad_specifier(pattern)
        )
    })?;
    let (mut year, mut date, mut time) = (false, false, false);
    for item in &items {
        match item {
            Item::Numeric(n, _) => match n {
                Numeric::Year
                | Numeric::YearDiv100
                | Numeric::YearMod100
                | Numeric::IsoYear
                | Numeric::IsoYearDiv100
                | Numeric::IsoYearMod100 => year = true,
                Numeric::Month
                | Numeric::Day
                | Numeric::Ordinal
                | Numeric::IsoWeek
                | Numeric::WeekFromSun
                | Numeric::WeekFromMon => date = true,
                Numeric::Timestamp => (year, time) = (true, true),
                Numeric::Hour | Numeric::Hour12 | Numeric::Minute | Numeric::Second => time = true,
                _ => {}
            },
            Item::Fixed(Fixed::RFC2822 | Fixed::RFC3339) => (year, time) = (true, true),
            Item::Fixed(Fixed::ShortMonthName | Fixed::LongMonthName) => date = true,
            _ => {}
        }
    }
    if !year {
        let what = if date { "no year" } else { "no date" };
        return Err(format!(
            "strftime pattern {pattern:?} cannot work: {what} in it"
        ));
    }
    Ok(Format::Strftime {
        items,
        has_time: time,
    })
}

/// Which `%` specifier of a pattern chrono rejects, for the error message.
fn bad_specifier(pattern: &str) -> String {
    let mut rest = pattern;
    while let Some(i) = rest.find('%') {
        let spec = &rest[i..];
        // A specifier is `%`, an optional flag or colons, then one letter: at most 5 bytes.
        let end = (spec.char_indices().skip(1))
            .find(|(_, c)| !matches!(c, '-' | '_' | '0' | '#' | ':' | '.' | '3' | '6' | '9'))
            .map_or(spec.len(), |(j, c)| j + c.len_utf8());
        let one = &spec[..end];
        if one == "%" {
            return "it ends in a lone % (write %% for a percent sign)".into();
        }
        if (StrftimeItems::new(one)).any(|it| matches!(it, Item::Error)) {
            return format!("{one} is not a specifier chrono knows");
        }
        rest = &spec[end..];
    }
    "unknown or incomplete specifier".into()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{build, build_err, counter, event, get};
    use super::*;
    use crate::config::ProcessorConfig;

    fn ts(field: &str, format: &str, keep: bool) -> ProcessorConfig {
        ProcessorConfig::Timestamp {
            field: field.into(),
            format: format.into(),
            keep,
        }
    }

    fn secs(e: &Event) -> f64 {
        e.time
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    fn with(field: &str, v: Value) -> Event {
        let mut e = event("m");
        e.set(field, v);
        e
    }

    #[test]
    fn rfc3339_with_t_or_space_sets_the_time_and_consumes_the_field() {
        let mut p = build("t-ts-rfc", vec![ts("timestamp", "rfc3339", false)]);
        for text in ["2024-12-01T10:30:45.5Z", "2024-12-01 11:30:45.5+01:00"] {
            let e = p.apply(with("timestamp", Value::from(text))).unwrap();
            assert_eq!(secs(&e), 1_733_049_045.5, "{text}");
            assert!(e.fields.get("timestamp").is_none());
            assert!(get(&e, "parse_error").is_none());
        }
        let mut k = build("t-ts-keep", vec![ts("t", "rfc3339", true)]);
        let e = k
            .apply(with("t", Value::from("2024-12-01T10:30:45Z")))
            .unwrap();
        assert_eq!(get(&e, "t"), Some(Value::from("2024-12-01T10:30:45Z")));
        assert!(e.time.is_some());
    }

    #[test]
    fn failures_leave_the_event_and_count() {
        let mut p = build("t-ts-fail", vec![ts("timestamp", "rfc3339", false)]);
        for v in [
            Value::from("2024-12-01T10:30:45"),
            Value::from("yesterday"),
            Value::Int(5),
        ] {
            let e = p.apply(with("timestamp", v.clone())).unwrap();
            assert!(e.time.is_none());
            assert_eq!(e.fields.get("timestamp"), Some(&v));
            assert_eq!(get(&e, "parse_error"), Some(Value::from("timestamp")));
        }
        // A missing field fails too: the metadata `timestamp` is not read.
        let e = p.apply(event("m")).unwrap();
        assert_eq!(get(&e, "parse_error"), Some(Value::from("timestamp")));
        assert_eq!(counter("t-ts-fail", "0:timestamp", "failed"), 4);
    }

    #[test]
    fn unix_seconds_and_millis_from_numbers_and_text() {
        let mut p = build("t-ts-unix", vec![ts("t", "unix", false)]);
        let cases = [
            (Value::Int(1_700_000_000), 1_700_000_000.0),
            (Value::Float(1_700_000_000.25), 1_700_000_000.25),
            (Value::from(" 1700000000.5 "), 1_700_000_000.5),
        ];
        for (v, want) in cases {
            assert_eq!(secs(&p.apply(with("t", v)).unwrap()), want);
        }
        let e = p.apply(with("t", Value::Int(-1))).unwrap();
        assert_eq!(
            UNIX_EPOCH
                .duration_since(e.time.unwrap())
                .unwrap()
                .as_secs(),
            1
        );
        for bad in [
            Value::from("soon"),
            Value::Float(f64::INFINITY),
            Value::Bool(true),
        ] {
            let e = p.apply(with("t", bad)).unwrap();
            assert_eq!(get(&e, "parse_error"), Some(Value::from("timestamp")));
        }
        let mut m = build("t-ts-ms", vec![ts("t", "unix_ms", false)]);
        assert_eq!(
            secs(&m.apply(with("t", Value::Int(1_700_000_000_123))).unwrap()),
            1_700_000_000.123
        );
        assert_eq!(
            secs(&m.apply(with("t", Value::from("1500.5"))).unwrap()),
            1.5005
        );
    }

    #[test]
    fn strftime_with_offset_naive_and_date_only() {
        let mut p = build("t-ts-strf", vec![ts("time", "%d/%b/%Y:%H:%M:%S %z", false)]);
        let e = p
            .apply(with("time", Value::from("10/Oct/2000:13:55:36 -0700")))
            .unwrap();
        assert_eq!(secs(&e), 971_211_336.0);
        assert!(e.fields.get("time").is_none());
        let mut n = build(
            "t-ts-naive",
            vec![ts("time", "%Y-%m-%d %H:%M:%S%.f", false)],
        );
        let e = n
            .apply(with("time", Value::from("2000-10-10 20:55:36.250")))
            .unwrap();
        assert_eq!(secs(&e), 971_211_336.25);
        let mut d = build("t-ts-date", vec![ts("day", "%Y%m%d", false)]);
        let e = d.apply(with("day", Value::Int(20001010))).unwrap();
        assert_eq!(secs(&e), 971_136_000.0);
        let mut s = build("t-ts-epoch", vec![ts("t", "%s", false)]);
        assert_eq!(
            secs(&s.apply(with("t", Value::from("971211336"))).unwrap()),
            971_211_336.0
        );
        let e = p
            .apply(with("time", Value::from("10/Oct/2000:13:55:36")))
            .unwrap();
        assert_eq!(get(&e, "parse_error"), Some(Value::from("timestamp")));
        assert_eq!(counter("t-ts-strf", "0:timestamp", "failed"), 1);
    }

    #[test]
    fn bad_formats_are_build_errors_on_format() {
        let at = |i| {
            let mut v = vec![
                ProcessorConfig::ParseJson {
                    field: "message".into()
                };
                i
            ];
            v.push(ts("t", "x", false));
            v
        };
        let with_format = |f: &str| {
            let mut v = at(3);
            v[3] = ts("t", f, false);
            build_err(v)
        };
        assert_eq!(
            with_format("%Q"),
            r#"inputs.files[0].processors[3].format: invalid strftime pattern "%Q": %Q is not a specifier chrono knows"#
        );
        assert_eq!(
            with_format("%Y-%m-%d %"),
            r#"inputs.files[0].processors[3].format: invalid strftime pattern "%Y-%m-%d %": it ends in a lone % (write %% for a percent sign)"#
        );
        assert_eq!(
            with_format("%H:%M:%S"),
            r#"inputs.files[0].processors[3].format: strftime pattern "%H:%M:%S" cannot work: no date in it"#
        );
        assert_eq!(
            with_format("%d/%m %H:%M"),
            r#"inputs.files[0].processors[3].format: strftime pattern "%d/%m %H:%M" cannot work: no year in it"#
        );
        assert_eq!(
            with_format("iso8601"),
            r#"inputs.files[0].processors[3].format: unknown format "iso8601": use rfc3339, unix, unix_ms or a strftime pattern"#
        );
    }
}
