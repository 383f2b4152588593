//! Graph instants at full precision: 100 ns ticks, 7 fractional digits, always UTC with `Z`.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const TICKS_PER_SEC: i64 = 10_000_000;

/// An instant as Graph writes `lastUpdateDateTime` (`2021-04-27T12:19:27.7211305Z`).
///
/// Kept in ticks so a cursor round-trips Graph's 7 digits exactly (PEERS.md §2.6: peers that
/// stored 6 digits or seconds re-read or skipped boundary alerts).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GraphTime(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a UTC instant like 2026-11-26T09:00:00.1234567Z")]
pub struct TimeParseError(pub String);

impl GraphTime {
    pub const fn from_ticks(t: i64) -> Self {
        GraphTime(t)
    }

    pub const fn ticks(self) -> i64 {
        self.0
    }

    pub fn from_unix_seconds(s: i64) -> Self {
        GraphTime(s.saturating_mul(TICKS_PER_SEC))
    }

    pub fn from_unix_millis(ms: i64) -> Self {
        GraphTime(ms.saturating_mul(10_000))
    }

    /// Whole milliseconds since the epoch, rounded down.
    pub fn unix_millis(self) -> i64 {
        self.0.div_euclid(10_000)
    }

    pub fn from_chrono(t: DateTime<Utc>) -> Self {
        GraphTime(t.timestamp().saturating_mul(TICKS_PER_SEC).saturating_add(i64::from(t.timestamp_subsec_nanos()) / 100))
    }

    pub fn now() -> Self {
        Self::from_chrono(Utc::now())
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(TICKS_PER_SEC)
    }

    pub fn plus(self, d: std::time::Duration) -> Self {
        GraphTime(self.0.saturating_add(duration_ticks(d)))
    }

    pub fn minus(self, d: std::time::Duration) -> Self {
        GraphTime(self.0.saturating_sub(duration_ticks(d)))
    }

    /// How long after `earlier` this is (zero when it is not after it).
    pub fn since(self, earlier: GraphTime) -> std::time::Duration {
        let ticks = self.0.saturating_sub(earlier.0).max(0) as u64;
        std::time::Duration::from_nanos(ticks.saturating_mul(100))
    }

    /// Parses `Z` or `+hh:mm` instants with 0–7 fractional digits. Any other input, however
    /// malformed (non-ASCII, out-of-range years), is an error, never a panic.
    pub fn parse(s: &str) -> Result<Self, TimeParseError> {
        let err = || TimeParseError(s.chars().take(64).collect());
        // Every valid instant is ASCII; checking first makes every byte offset below a char boundary.
        if !s.is_ascii() {
            return Err(err());
        }
        let (body, offset) = if let Some(b) = s.strip_suffix('Z') {
            (b, 0)
        } else if s.len() > 6 && matches!(s.as_bytes()[s.len() - 6], b'+' | b'-') {
            let (b, z) = s.split_at(s.len() - 6);
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let digits =
                |r: std::ops::Range<usize>| z.get(r).filter(|d| d.bytes().all(|c| c.is_ascii_digit())).and_then(|d| d.parse::<i64>().ok());
            let (Some(h), Some(m)) = (digits(1..3), digits(4..6)) else { return Err(err()) };
            if z.as_bytes()[3] != b':' || h > 23 || m > 59 {
                return Err(err());
            }
            (b, sign * (h * 3600 + m * 60))
        } else {
            return Err(err());
        };
        let (main, frac) = body.split_once('.').unwrap_or((body, ""));
        if frac.len() > 7 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let naive = match fixed_width(main) {
            Some(t) => t,
            None => NaiveDateTime::parse_from_str(main, "%Y-%m-%dT%H:%M:%S").map_err(|_| err())?,
        };
        let mut frac_ticks = 0i64;
        for (i, b) in frac.bytes().enumerate() {
            frac_ticks += i64::from(b - b'0') * 10i64.pow(6 - i as u32);
        }
        naive
            .and_utc()
            .timestamp()
            .checked_sub(offset)
            .and_then(|secs| secs.checked_mul(TICKS_PER_SEC))
            .and_then(|t| t.checked_add(frac_ticks))
            .map(GraphTime)
            .ok_or_else(err)
    }
}

/// `YYYY-MM-DDTHH:MM:SS`, the form every Graph instant has, without a strftime parser (it was
/// on the hot path: one parse per alert). Anything else is left to `parse_from_str`.
fn fixed_width(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    let date = NaiveDate::from_ymd_opt(n(0..4)? as i32, n(5..7)?, n(8..10)?)?;
    date.and_hms_opt(n(11..13)?, n(14..16)?, n(17..19)?)
}

fn duration_ticks(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos() / 100).unwrap_or(i64::MAX)
}

impl fmt::Display for GraphTime {
    /// Always 7 digits and `Z`: the form filters are written in (DESIGN.md §3).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(TICKS_PER_SEC);
        let frac = self.0.rem_euclid(TICKS_PER_SEC);
        match DateTime::from_timestamp(secs, 0) {
            // Fields, not `format("%Y-...")`: a strftime string is parsed on every call.
            Some(d) => {
                write!(f, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{frac:07}Z", d.year(), d.month(), d.day(), d.hour(), d.minute(), d.second())
            }
            None => write!(f, "invalid-instant({})", self.0),
        }
    }
}

impl fmt::Debug for GraphTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for GraphTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GraphTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        GraphTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_precision_round_trips() {
        for s in ["2021-04-27T12:19:27.7211305Z", "2026-05-05T08:30:00.0000000Z"] {
            assert_eq!(GraphTime::parse(s).map(|t| t.to_string()), Ok(s.to_owned()));
        }
        assert_eq!(GraphTime::parse("2021-04-26T07:45:50.116Z").map(|t| t.to_string()), Ok("2021-04-26T07:45:50.1160000Z".into()));
        assert_eq!(GraphTime::parse("2021-04-26T09:45:50+02:00").map(|t| t.to_string()), Ok("2021-04-26T07:45:50.0000000Z".into()));
    }

    #[test]
    fn rejects_local_times_and_extra_digits() {
        for bad in [
            "2021-04-27T12:19:27",
            "2021-04-27T12:19:27.12345678Z",
            "yesterday",
            "",
            "2021-04-27T12:19:27+0é:00",
            "é2021-04-27T12:19:27+01:00",
            "2021-04-27T12:19:27+ab:cd",
            "2021-04-27T12:19:27+01-00",
            "+262143-12-31T23:59:59Z",
            "2021-04-27T12:19:27.\u{0663}Z",
        ] {
            assert!(GraphTime::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_fixed_width_parse_agrees_with_strftime() {
        for s in ["2021-04-27T12:19:27", "0001-01-01T00:00:00", "9999-12-31T23:59:59", "2024-02-29T00:00:00"] {
            assert_eq!(fixed_width(s), NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok(), "{s}");
        }
        for s in ["2023-02-29T00:00:00", "2021-13-01T00:00:00", "2021-04-27T24:00:00", "2021-04-27T12:19:2x", "2021-04-27 12:19:27"] {
            assert_eq!(fixed_width(s), None, "{s}");
            assert!(GraphTime::parse(&format!("{s}Z")).is_err(), "{s}");
        }
        assert_eq!(GraphTime::parse("0001-01-01T00:00:00Z").map(|t| t.to_string()), Ok("0001-01-01T00:00:00.0000000Z".into()));
    }

    #[test]
    fn arithmetic_keeps_ticks() {
        let t = GraphTime::parse("2026-11-26T10:00:00.0000001Z").unwrap_or_default();
        assert_eq!(t.minus(std::time::Duration::from_secs(900)).to_string(), "2026-11-26T09:45:00.0000001Z");
    }
}
