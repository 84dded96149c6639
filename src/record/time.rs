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
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    b[..11].copy_from_slice(&day_prefix(days));
    let micros = micros as usize;
    b[11..13].copy_from_slice(&TWO[(rem / 3600) as usize]);
    b[14..16].copy_from_slice(&TWO[(rem / 60 % 60) as usize]);
    b[17..19].copy_from_slice(&TWO[(rem % 60) as usize]);
    b[20..22].copy_from_slice(&TWO[micros / 10_000]);
    b[22..24].copy_from_slice(&TWO[micros / 100 % 100]);
    b[24..26].copy_from_slice(&TWO[micros % 100]);
    out.extend_from_slice(&b);
}

/// "00" to "99".
static TWO: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

thread_local! {
    /// The last day written on this thread: events of a file mostly share it.
    static DAY: std::cell::Cell<(i64, [u8; 11])> = const { std::cell::Cell::new((i64::MIN, [0; 11])) };
}

/// `YYYY-MM-DDT` of a day count since 1970-01-01.
fn day_prefix(days: i64) -> [u8; 11] {
    DAY.with(|c| {
        let (d, p) = c.get();
        if d == days {
            return p;
        }
        let (y, m, day) = civil_from_days(days);
        let mut p = *b"0000-00-00T";
        let y = y as usize;
        p[0..2].copy_from_slice(&TWO[y / 100 % 100]);
        p[2..4].copy_from_slice(&TWO[y % 100]);
        p[5..7].copy_from_slice(&TWO[m as usize]);
        p[8..10].copy_from_slice(&TWO[day as usize]);
        c.set((days, p));
        p
    })
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
