//! Durations as people write them in configuration: `90s`, `15m`, `24h`, `7d`, `1h30m`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationText(pub Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a duration: write a number and a unit, like 90s, 15m, 24h, 7d or 1h30m")]
pub struct DurationParseError(pub String);

impl DurationText {
    pub fn parse(s: &str) -> Result<Self, DurationParseError> {
        let bad = || DurationParseError(s.to_owned());
        let mut total: u64 = 0;
        let mut num = String::new();
        let mut parts = 0;
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(bad()),
            };
            let n: u64 = num.parse().map_err(|_| bad())?;
            total = n.checked_mul(unit).and_then(|x| total.checked_add(x)).ok_or_else(bad)?;
            num.clear();
            parts += 1;
        }
        if parts == 0 || !num.is_empty() {
            return Err(bad());
        }
        Ok(DurationText(Duration::from_secs(total)))
    }

    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl fmt::Display for DurationText {
    /// The shortest exact form: `1d`, `90m` stays `1h30m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.0.as_secs();
        if s == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if s >= size {
                write!(f, "{}{unit}", s / size)?;
                s %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for DurationText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DurationText::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_combine_and_print_back() {
        for (text, secs, back) in
            [("90s", 90, "1m30s"), ("15m", 900, "15m"), ("1h30m", 5400, "1h30m"), ("7d", 604_800, "7d"), ("0s", 0, "0s")]
        {
            let d = DurationText::parse(text).map_err(|e| e.to_string());
            assert_eq!(d.map(|d| (d.secs(), d.to_string())), Ok((secs, back.to_owned())), "{text}");
        }
    }

    #[test]
    fn numbers_without_units_and_other_words_are_refused() {
        for bad in ["", "15", "m", "5 minutes", "-5m", "1.5h", "99999999999999999999d"] {
            assert!(DurationText::parse(bad).is_err(), "{bad}");
        }
    }
}
