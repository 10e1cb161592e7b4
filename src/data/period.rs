//! `data.period`: the length of one "day" of a timed source (`6h`, `1d`, `7d`, ...).

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A period of whole seconds, written as a number and a unit: `s`, `m` (minutes), `h`, `d`
/// or `w` (weeks), e.g. `6h`, `1d`, `7d`. Periods are aligned on the Unix epoch (UTC), so `1d`
/// cuts at UTC midnight, like a calendar day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    seconds: i64,
}

/// The longest period accepted: 100 years (anything longer is a typo).
const MAX_SECONDS: i64 = 100 * 366 * 86_400;

impl Period {
    pub const DAY: Period = Period { seconds: 86_400 };

    pub fn seconds(self) -> i64 {
        self.seconds
    }

    /// The number of the period holding second `t` since the epoch (floor, so times before
    /// 1970 fall in negative periods, still in order).
    pub fn index_of(self, t: i64) -> i64 {
        t.div_euclid(self.seconds)
    }
}

impl FromStr for Period {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Period> {
        let text = s.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let scale = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => bail!(
                "period `{s}`: expected a whole number and a unit s, m, h, d or w (e.g. 6h, 1d, 7d)"
            ),
        };
        let n: i64 = match number.parse() {
            Ok(n) if n > 0 => n,
            _ => bail!("period `{s}`: the number of {unit} must be a whole number of at least 1"),
        };
        match n.checked_mul(scale) {
            Some(seconds) if seconds <= MAX_SECONDS => Ok(Period { seconds }),
            _ => bail!("period `{s}` is longer than 100 years"),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3_600), ("m", 60)] {
            if s % size == 0 {
                return write!(f, "{}{unit}", s / size);
            }
        }
        write!(f, "{s}s")
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Period, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_print_and_index() {
        let p = |s: &str| {
            s.parse::<Period>()
                .map(Period::seconds)
                .map_err(|e| e.to_string())
        };
        assert_eq!(p("6h"), Ok(21_600));
        assert_eq!(p("1d"), Ok(86_400));
        assert_eq!(p("7d"), Ok(604_800));
        assert_eq!(p("2w"), Ok(1_209_600));
        assert_eq!(p("90m"), Ok(5_400));
        assert_eq!(p(" 30s "), Ok(30));
        for bad in [
            "",
            "d",
            "0d",
            "-1d",
            "1.5d",
            "1y",
            "6 hours",
            "99999999999999w",
        ] {
            assert!(p(bad).is_err(), "`{bad}` should fail");
        }
        assert_eq!("7d".parse::<Period>().unwrap().to_string(), "1w");
        assert_eq!("36h".parse::<Period>().unwrap().to_string(), "36h");
        assert_eq!("90s".parse::<Period>().unwrap().to_string(), "90s");
        let six = "6h".parse::<Period>().unwrap();
        // 2024-03-01 05:59:59 UTC and 06:00:00 fall in consecutive 6 h periods.
        let t = 1_709_272_800; // 2024-03-01 06:00:00 UTC
        assert_eq!(six.index_of(t - 1) + 1, six.index_of(t));
        assert_eq!(Period::DAY.index_of(-1), -1);
    }
}
