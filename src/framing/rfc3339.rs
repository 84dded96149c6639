//! RFC 3339 timestamps (`2026-12-01T10:00:00.123456789Z`, `...+02:00`) as container runtimes
//! write them, parsed by hand: this runs once per CRI/Docker line, where chrono's general
//! parser costs several times more.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; digits past nanoseconds are ignored.
pub(crate) fn parse(s: &[u8]) -> Option<SystemTime> {
    // A fixed-size head lets the compiler drop the bounds checks of the fixed fields.
    let h: &[u8; 19] = s.get(..19)?.try_into().ok()?;
    if s.len() < 20
        || h[4] != b'-'
        || h[7] != b'-'
        || !matches!(h[10], b'T' | b't')
        || h[13] != b':'
        || h[16] != b':'
    {
        return None;
    }
    let year = i64::from(d2(h[0], h[1])? * 100 + d2(h[2], h[3])?);
    let (month, day) = (d2(h[5], h[6])?, d2(h[8], h[9])?);
    let (hour, min, sec) = (d2(h[11], h[12])?, d2(h[14], h[15])?, d2(h[17], h[18])?);
    // 60 is a leap second; it reads as the next second's start, as the runtimes' clocks do.
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if s[i] == b'.' {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(s[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        if n < 9 {
            nanos *= 10u32.pow((9 - n) as u32);
        }
    }
    let offset: i64 = match s.get(i)? {
        b'Z' | b'z' if i + 1 == s.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == s.len() && s[i + 3] == b':' => {
            let (oh, om) = (d2(s[i + 1], s[i + 2])?, d2(s[i + 4], s[i + 5])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + min * 60 + sec)
        - offset;
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

/// The two-digit number `ab`.
fn d2(a: u8, b: u8) -> Option<u32> {
    let (a, b) = (a.wrapping_sub(b'0'), b.wrapping_sub(b'0'));
    (a <= 9 && b <= 9).then(|| u32::from(a) * 10 + u32::from(b))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono(s: &str) -> SystemTime {
        let t = chrono::DateTime::parse_from_rfc3339(s).unwrap();
        let (s, n) = (t.timestamp(), t.timestamp_subsec_nanos());
        if s >= 0 {
            UNIX_EPOCH + Duration::new(s as u64, n)
        } else {
            UNIX_EPOCH - Duration::from_secs(s.unsigned_abs()) + Duration::from_nanos(n.into())
        }
    }

    #[test]
    fn agrees_with_chrono() {
        for s in [
            "2026-12-01T10:00:00.123456789Z",
            "2026-12-01T10:00:00Z",
            "2026-12-01t10:00:00.5z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.25Z",
            "1900-03-01T12:34:56.000001Z",
            "2024-02-29T23:59:59.999999999+02:00",
            "2000-02-29T00:00:00-05:30",
            "2016-10-06T00:17:09.669794202Z",
            "2100-12-31T23:59:59.1+14:00",
            "0001-01-01T00:00:00Z",
        ] {
            assert_eq!(parse(s.as_bytes()), Some(chrono(s)), "{s}");
        }
    }

    #[test]
    fn known_values() {
        let t = parse(b"2026-12-01T10:00:00.123456789Z").unwrap();
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(
            (d.as_secs(), d.subsec_nanos()),
            (1_796_119_200, 123_456_789)
        );
        // More than nine fraction digits: the extra ones are ignored.
        let t = parse(b"1970-01-01T00:00:01.1234567891Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::new(1, 123_456_789));
        // A leap second reads as the next second.
        assert_eq!(
            parse(b"2016-12-31T23:59:60Z"),
            parse(b"2017-01-01T00:00:00Z")
        );
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "2026-12-01",
            "2026-12-01 10:00:00Z",
            "2026-12-01T10:00:00",
            "2026-12-01T10:00:00.Z",
            "2026-13-01T10:00:00Z",
            "2026-02-29T10:00:00Z",
            "2026-04-31T10:00:00Z",
            "2026-12-00T10:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T10:60:00Z",
            "2026-12-01T10:00:61Z",
            "2026-12-01T10:00:00ZZ",
            "2026-12-01T10:00:00+0200",
            "2026-12-01T10:00:00+02:00x",
            "2026-12-01T10:00:00+24:00",
            "2026-1a-01T10:00:00Z",
            "+026-12-01T10:00:00Z",
            "2026-12-01T10:00:00.12a3Z",
        ] {
            assert_eq!(parse(s.as_bytes()), None, "{s}");
        }
    }
}
