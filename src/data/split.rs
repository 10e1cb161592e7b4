//! Splitting the days, in time order, into history / retained / online (see METHOD.md).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// How the days of the source are used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayPlan {
    pub history: Vec<u32>,
    pub retained: Vec<u32>,
    /// The first online day; the offline evaluation day.
    pub online: Vec<u32>,
}

/// A number of days: a count (`8`) or a share of all days (`0.25`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DayCount {
    Days(usize),
    Fraction(f64),
}

impl DayCount {
    /// The count for a source of `num_days` days (fractions rounded to the nearest day).
    pub fn resolve(self, name: &str, num_days: usize) -> Result<usize> {
        match self {
            DayCount::Days(n) => Ok(n),
            DayCount::Fraction(f) if f > 0.0 && f <= 1.0 => {
                Ok((f * num_days as f64).round() as usize)
            }
            DayCount::Fraction(f) => {
                bail!("split.{name} = {f}: a fraction of the days must be in (0, 1]")
            }
        }
    }
}

/// How many days each part of the run gets. The parts are consecutive from day 0; days after
/// the online part are not used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Days only the teacher trains on (then expire).
    pub history: DayCount,
    /// Days still on disk at switch time (offline stage, replay pool).
    pub retained: DayCount,
    /// Days streamed after the switch; the first is also the offline evaluation day.
    pub online: DayCount,
}

impl Default for SplitConfig {
    /// A third each (8 / 8 / 8 of the default synthetic stream, whose shock on day 18 is then
    /// the third online day).
    fn default() -> Self {
        SplitConfig {
            history: DayCount::Fraction(1.0 / 3.0),
            retained: DayCount::Fraction(1.0 / 3.0),
            online: DayCount::Fraction(1.0 / 3.0),
        }
    }
}

impl SplitConfig {
    /// The day numbers of each part. Errors (one sentence) when a part is empty (retained and
    /// online need at least one day; history may be empty when a teacher checkpoint is
    /// loaded) or when more days are asked for than exist.
    pub fn resolve(&self, num_days: usize) -> Result<DayPlan> {
        let h = self.history.resolve("history", num_days)?;
        let r = self.retained.resolve("retained", num_days)?;
        let o = self.online.resolve("online", num_days)?;
        if r == 0 {
            bail!("split.retained resolves to 0 days; the offline stage needs at least 1");
        }
        if o == 0 {
            bail!("split.online resolves to 0 days; the online stage needs at least 1");
        }
        if h + r + o > num_days {
            bail!(
                "the split asks for {h} history + {r} retained + {o} online = {} days, \
                 but the data has only {num_days} days",
                h + r + o
            );
        }
        let range = |a: usize, b: usize| (a as u32..b as u32).collect::<Vec<u32>>();
        Ok(DayPlan {
            history: range(0, h),
            retained: range(h, h + r),
            online: range(h + r, h + r + o),
        })
    }
}
