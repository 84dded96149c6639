//! RFC 3339 timestamps, written once per event.

use std::time::SystemTime;

/// Appends `t` as RFC 3339 in UTC with microseconds (`2026-12-01T10:00:00.123456Z`), as
/// humantime writes it, without its formatting machinery: this runs once per event.
pub fn write_rfc3339_micros(t: SystemTime, out: &mut Vec<u8>) {
    // Times from log lines can be anything: before 1970 counts back, and beyond what four
    // digits of year can say is clamped (RFC 3339 has no other years), never a panic.
    const MIN: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let (mut secs, mut micros) = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_micros(),
        ),
        Err(e) => {
            let d = e.duration();
            let back = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_micros() {
                0 => (-back, 0),
                m => (-back - 1, 1_000_000 - m),
            }
        }
    };
    if secs < MIN {
        (secs, micros) = (MIN, 0);
    } else if secs > MAX {
        (secs, micros) = (MAX, 999_999);
    }
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, v: i64, n: usize| {
        let mut v = v;
        for i in (0..n).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y, 4);
    put(5, m, 2);
    put(8, d, 2);
    put(11, hh, 2);
    put(14, mm, 2);
    put(17, ss, 2);
    put(20, i64::from(micros), 6);
    out.extend_from_slice(&b);
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
