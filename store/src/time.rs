//! Time as every body and message of the project writes it: RFC 3339 in UTC with exactly six
//! fractional digits (`2025-07-18T13:42:33.000123Z`), the precision PostgreSQL stores.
//!
//! One formatter for the broker messages (streamer), the collector's decoding and the API's
//! answers. A leap second (chrono's nanosecond >= 1e9) is written as second 60, as chrono's own
//! formatter does; PostgreSQL never stores one, so the API never meets it.

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 in UTC with exactly six fractional digits, the wire form of `ts`.
pub fn format_ts(ts: &DateTime<Utc>) -> String {
    let mut buf = [0u8; TS_LEN];
    match write_ts(ts, &mut buf) {
        Some(text) => text.to_string(),
        None => ts.to_rfc3339_opts(SecondsFormat::Micros, true),
    }
}

/// Length of `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
const TS_LEN: usize = 27;

/// Formats `ts` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` into `buf` without allocating (this runs
/// twice per row); `None` for years outside 0–9999, which chrono's formatter handles.
fn write_ts<'b>(ts: &DateTime<Utc>, buf: &'b mut [u8; TS_LEN]) -> Option<&'b str> {
    use chrono::{Datelike, Timelike};
    let year = u32::try_from(ts.year()).ok().filter(|y| *y <= 9999)?;
    // A leap second shows as nanosecond >= 1e9; chrono prints it as second 60.
    let (second, nanos) = match ts.nanosecond() {
        n if n >= 1_000_000_000 => (60, n - 1_000_000_000),
        n => (ts.second(), n),
    };
    let fields: [(usize, u32, usize); 7] = [
        (0, year, 4),
        (5, ts.month(), 2),
        (8, ts.day(), 2),
        (11, ts.hour(), 2),
        (14, ts.minute(), 2),
        (17, second, 2),
        (20, nanos / 1000, 6),
    ];
    buf.copy_from_slice(b"0000-00-00T00:00:00.000000Z");
    for (at, mut value, width) in fields {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    std::str::from_utf8(buf).ok()
}

/// Parses RFC 3339; the exact form [`format_ts`] writes takes a fast path.
pub fn parse_ts(text: &str) -> Option<DateTime<Utc>> {
    parse_ts_fast(text).or_else(|| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    })
}

fn parse_ts_fast(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != TS_LEN || &b[4..5] != b"-" || b[10] != b'T' || b[19] != b'.' || b[26] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let seps = [(7, b'-'), (13, b':'), (16, b':')];
    if seps.iter().any(|(i, c)| b[*i] != *c) {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?
        .and_hms_micro_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 26)?)
        .map(|t| t.and_utc())
}

pub mod rfc3339_micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; super::TS_LEN];
        match super::write_ts(ts, &mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&super::format_ts(ts)),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = crate::point::BorrowedStr::deserialize(d)?.0;
        super::parse_ts(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time")))
    }
}

pub mod rfc3339_micros_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(ts) => super::rfc3339_micros::serialize(ts, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text = Option::<crate::point::BorrowedStr<'de>>::deserialize(d)?;
        text.map(|t| {
            super::parse_ts(&t.0).ok_or_else(|| {
                serde::de::Error::custom(format!("{:?} is not an RFC 3339 time", t.0))
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike};

    #[test]
    fn times_are_formatted_like_chrono_with_microseconds() {
        let times = [
            Utc.with_ymd_and_hms(2025, 7, 18, 13, 42, 33).unwrap(),
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::microseconds(999_999),
            Utc.with_ymd_and_hms(2000, 2, 29, 9, 5, 7).unwrap()
                + chrono::Duration::nanoseconds(123_456_789),
            Utc.with_ymd_and_hms(12000, 1, 1, 0, 0, 0).unwrap(),
        ];
        for t in times {
            assert_eq!(
                format_ts(&t),
                t.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
            if t.year() <= 9999 {
                assert_eq!(
                    parse_ts(&format_ts(&t)),
                    Some(t.with_nanosecond(t.nanosecond() / 1000 * 1000).unwrap())
                );
            }
        }
    }

    #[test]
    fn a_leap_second_is_second_60_like_chrono() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 1_500_000)
            .unwrap()
            .and_utc();
        assert_eq!(format_ts(&leap), "2016-12-31T23:59:60.500000Z");
        assert_eq!(
            format_ts(&leap),
            leap.to_rfc3339_opts(SecondsFormat::Micros, true)
        );
    }
}
