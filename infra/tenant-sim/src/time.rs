//! Instants with the precision Graph uses: 100 ns ticks, printed with 7 fractional digits.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};

const TICKS_PER_SECOND: i64 = 10_000_000;

/// A UTC instant in 100-nanosecond ticks since the Unix epoch.
///
/// Graph serialises `DateTimeOffset` with up to 7 fractional digits
/// (`2021-04-27T12:19:27.7211305Z`, ms-apis.md §2); a tick is exactly one
/// unit of the 7th digit, so parsing and printing are lossless.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Instant(pub i64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a UTC timestamp like 2026-11-26T09:00:00.1234567Z (at most 7 fractional digits)")]
pub struct InstantParseError(pub String);

impl Instant {
    pub fn from_unix_seconds(s: i64) -> Self {
        Instant(s * TICKS_PER_SECOND)
    }

    pub fn from_unix_millis(ms: i64) -> Self {
        Instant(ms * 10_000)
    }

    pub fn now() -> Self {
        Self::from_chrono(Utc::now())
    }

    pub fn from_chrono(t: DateTime<Utc>) -> Self {
        let nanos = i64::from(t.timestamp_subsec_nanos());
        Instant(t.timestamp() * TICKS_PER_SECOND + nanos / 100)
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(TICKS_PER_SECOND)
    }

    pub fn plus_secs(self, s: i64) -> Self {
        Instant(self.0 + s * TICKS_PER_SECOND)
    }

    pub fn plus_ticks(self, t: i64) -> Self {
        Instant(self.0 + t)
    }

    fn parts(self) -> Option<(NaiveDateTime, i64)> {
        let secs = self.0.div_euclid(TICKS_PER_SECOND);
        let frac = self.0.rem_euclid(TICKS_PER_SECOND);
        DateTime::from_timestamp(secs, 0).map(|d| (d.naive_utc(), frac))
    }

    /// `2026-11-26T09:00:00.1234567Z`: the shape of `lastUpdateDateTime`.
    pub fn graph7(self) -> String {
        match self.parts() {
            Some((d, frac)) => format!("{}.{frac:07}Z", d.format("%Y-%m-%dT%H:%M:%S")),
            None => "0001-01-01T00:00:00.0000000Z".to_owned(),
        }
    }

    /// `2026-11-26T09:00:00Z`: the shape of a message's `receivedDateTime` (message.md's
    /// examples: Outlook keeps whole seconds).
    pub fn seconds_z(self) -> String {
        match self.parts() {
            Some((d, _)) => format!("{}Z", d.format("%Y-%m-%dT%H:%M:%S")),
            None => "0001-01-01T00:00:00Z".to_owned(),
        }
    }

    /// `2026-11-26T09:00:00.123Z`: the shape of `firstActivityDateTime`.
    pub fn graph3(self) -> String {
        match self.parts() {
            Some((d, frac)) => format!("{}.{:03}Z", d.format("%Y-%m-%dT%H:%M:%S"), frac / 10_000),
            None => "0001-01-01T00:00:00.000Z".to_owned(),
        }
    }

    /// `2026-11-26 09:00:00Z`: the shape of Entra's error `timestamp`.
    pub fn entra(self) -> String {
        match self.parts() {
            Some((d, _)) => format!("{}Z", d.format("%Y-%m-%d %H:%M:%S")),
            None => String::new(),
        }
    }

    /// `2026-11-26T09:00:00`: the shape of Graph's `innerError.date`.
    pub fn seconds_no_zone(self) -> String {
        match self.parts() {
            Some((d, _)) => d.format("%Y-%m-%dT%H:%M:%S").to_string(),
            None => String::new(),
        }
    }

    /// Parses an ISO 8601 UTC instant with `Z` or `+00:00` and 0–7 fractional digits.
    pub fn parse(s: &str) -> Result<Self, InstantParseError> {
        let err = || InstantParseError(s.to_owned());
        let (body, offset_secs) = split_zone(s).ok_or_else(err)?;
        let (main, frac) = match body.split_once('.') {
            Some((m, f)) => (m, f),
            None => (body, ""),
        };
        if frac.len() > 7 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let naive = NaiveDateTime::parse_from_str(main, "%Y-%m-%dT%H:%M:%S").map_err(|_| err())?;
        let frac_ticks: i64 = if frac.is_empty() {
            0
        } else {
            let padded = format!("{frac:0<7}");
            padded.parse().map_err(|_| err())?
        };
        let secs = naive.and_utc().timestamp() - offset_secs;
        Ok(Instant(secs * TICKS_PER_SECOND + frac_ticks))
    }
}

fn split_zone(s: &str) -> Option<(&str, i64)> {
    if let Some(b) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((b, 0));
    }
    if s.len() > 6 {
        let (b, z) = s.split_at(s.len() - 6);
        let sign = match z.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return None,
        };
        let (h, m) = z[1..].split_once(':')?;
        let h: i64 = h.parse().ok()?;
        let m: i64 = m.parse().ok()?;
        return Some((b, sign * (h * 3600 + m * 60)));
    }
    None
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.graph7())
    }
}

/// Parses `90s`, `15m`, `2h`, `3d` (and a leading `-` or `+`) into seconds.
pub fn parse_duration_secs(s: &str) -> Option<i64> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    };
    let split = rest.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = rest.split_at(split);
    let n: i64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(sign * n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_digit_timestamps_round_trip_exactly() {
        for s in ["2021-04-27T12:19:27.7211305Z", "2026-05-05T08:30:00.0000000Z", "1999-12-31T23:59:59.9999999Z"] {
            assert_eq!(Instant::parse(s).map(Instant::graph7), Ok(s.to_owned()));
        }
    }

    #[test]
    fn shorter_fractions_and_offsets_parse() {
        let a = Instant::parse("2021-04-26T07:45:50.116Z").map(Instant::graph7);
        assert_eq!(a, Ok("2021-04-26T07:45:50.1160000Z".to_owned()));
        let b = Instant::parse("2021-04-26T09:45:50+02:00").map(Instant::graph7);
        assert_eq!(b, Ok("2021-04-26T07:45:50.0000000Z".to_owned()));
        assert_eq!(Instant::parse("2021-04-26T07:45:50.116Z").map(Instant::graph3), Ok("2021-04-26T07:45:50.116Z".to_owned()));
    }

    #[test]
    fn rejects_eight_fractional_digits_and_missing_zone() {
        assert!(Instant::parse("2021-04-27T12:19:27.72113051Z").is_err());
        assert!(Instant::parse("2021-04-27T12:19:27").is_err());
        assert!(Instant::parse("yesterday").is_err());
    }

    #[test]
    fn durations_parse_with_units_and_signs() {
        assert_eq!(parse_duration_secs("-24h"), Some(-86_400));
        assert_eq!(parse_duration_secs("+15m"), Some(900));
        assert_eq!(parse_duration_secs("90s"), Some(90));
        assert_eq!(parse_duration_secs("3w"), None);
    }
}
