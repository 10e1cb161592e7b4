//! Splitting the days, in time order, into history / retained / online (docs/method.md,
//! docs/data.md).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Days as a span, `3-7` (or `3`, or `none`): how the `days:` lines name the split's parts.
pub fn day_span(days: &[u32]) -> String {
    match (days.first(), days.last()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "none".into(),
    }
}

/// How the days of the source are used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayPlan {
    pub history: Vec<u32>,
    pub retained: Vec<u32>,
    /// The first online day; the offline evaluation day.
    pub online: Vec<u32>,
    /// The final test slice (`split.holdout`): days after the online part, never trained on,
    /// evaluated once per arm at the end of the run. Empty by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holdout: Vec<u32>,
    /// Days of the source after the online part (and the holdout) that the run never reads:
    /// only explicit counts or shares that add up to less than the source leave any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unused: Vec<u32>,
}

/// A number of days: a count (`8`) or a share of all days (`0.25`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DayCount {
    Days(usize),
    Fraction(f64),
}

impl DayCount {
    /// The length of this part, in days (fractional for a share), for a source of `num_days`.
    fn length(self, name: &str, num_days: usize) -> Result<f64> {
        match self {
            DayCount::Days(n) => Ok(n as f64),
            DayCount::Fraction(f) if f > 0.0 && f <= 1.0 => Ok(f * num_days as f64),
            DayCount::Fraction(f) => {
                bail!("split.{name} = {f}: a fraction of the days must be in (0, 1]")
            }
        }
    }
}

impl std::fmt::Display for DayCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DayCount::Days(n) => write!(f, "{n} days"),
            DayCount::Fraction(x) => write!(f, "{x} of the days"),
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
    /// A final test slice cut from the end of the online part (off by default): `"last-day"`,
    /// a count of days, or a share of the source's days (`0.1` is the reference code's last
    /// 10% of rows when days are of equal size). Those days are never trained on, never
    /// test-then-trained, and evaluated once per arm after the last online day, so a run's
    /// figure can be compared with published numbers measured on a held-out test set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<Holdout>,
}

/// The size of the final test slice: `"last-day"` (one day), a count or a share of the days.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "HoldoutText", into = "HoldoutText")]
pub struct Holdout(pub DayCount);

/// How a holdout is written in the config: a day count, a share, or `"last-day"`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum HoldoutText {
    Count(DayCount),
    Text(String),
}

impl TryFrom<HoldoutText> for Holdout {
    type Error = String;
    fn try_from(t: HoldoutText) -> Result<Holdout, String> {
        match t {
            HoldoutText::Count(c) => Ok(Holdout(c)),
            HoldoutText::Text(s) if s == "last-day" => Ok(Holdout(DayCount::Days(1))),
            HoldoutText::Text(s) => Err(format!(
                "split.holdout = \"{s}\": expected \"last-day\", a number of days or a share of the days"
            )),
        }
    }
}

impl From<Holdout> for HoldoutText {
    fn from(h: Holdout) -> HoldoutText {
        HoldoutText::Count(h.0)
    }
}

impl Default for SplitConfig {
    /// A quarter of the days for history, a quarter retained, the second half online: any
    /// source of 3 days or more fits, and the default synthetic stream (24 days) gets its
    /// 6 / 6 / 12 with the shock on day 18 in the middle of the online stage. Half the days
    /// go online because the online stage is what the method is judged on (test-then-train,
    /// every online day is a test day); the paper's reference code instead cuts the row order
    /// 40 / 40 / 10 / 10 (teacher, student, online, test), which gives a one-day online stage on
    /// a week of data.
    fn default() -> Self {
        SplitConfig {
            history: DayCount::Fraction(0.25),
            retained: DayCount::Fraction(0.25),
            online: DayCount::Fraction(0.5),
            holdout: None,
        }
    }
}

impl SplitConfig {
    /// The day numbers of each part. Counts are days; shares divide what the counts leave
    /// (above). A share is cut at cumulative boundaries
    /// (`round(share up to here * days)`), so the parts never add up to more days than the
    /// shares do. Errors (one sentence) when a part is empty (retained and online need at
    /// least one day; history may be empty when a teacher checkpoint is loaded) or when more
    /// days are asked for than exist.
    pub fn resolve(&self, num_days: usize) -> Result<DayPlan> {
        let parts = [
            ("history", self.history),
            ("retained", self.retained),
            ("online", self.online),
        ];
        // Shares that do not name every part divide the days the counts leave, in proportion:
        // `history = 0` with the default shares gives retained 1/3 and online 2/3 of the
        // days, not 0.25 and 0.5 with the last quarter silently unread. When every part is a
        // share they are taken as written (shares of all the days).
        let mut lengths = [0.0f64; 3];
        for (i, (name, count)) in parts.iter().enumerate() {
            lengths[i] = count.length(name, num_days)?;
        }
        let is_share = |c: &DayCount| matches!(c, DayCount::Fraction(_));
        if parts.iter().any(|(_, c)| !is_share(c)) {
            let counted: f64 = parts
                .iter()
                .zip(&lengths)
                .filter(|((_, c), _)| !is_share(c))
                .map(|(_, l)| l)
                .sum();
            let shared: f64 = parts
                .iter()
                .zip(&lengths)
                .filter(|((_, c), _)| is_share(c))
                .map(|(_, l)| l)
                .sum();
            let left = (num_days as f64 - counted).max(0.0);
            if shared > 0.0 {
                for ((_, c), l) in parts.iter().zip(lengths.iter_mut()) {
                    if is_share(c) {
                        *l *= left / shared;
                    }
                }
            }
        }
        let mut ends = [0usize; 3];
        let mut position = 0.0f64;
        for (i, length) in lengths.iter().enumerate() {
            position += length;
            // Saturates far above any real day count: a huge `split.*` cannot overflow.
            ends[i] = (position + 1e-9).round().min(u32::MAX as f64) as usize;
        }
        let [h, r_end, o_end] = ends;
        let (r, o) = (r_end - h, o_end - r_end);
        if o_end > num_days {
            bail!(
                "the split asks for {h} history + {r} retained + {o} online = {o_end} days, \
                 but the data has only {num_days} days"
            );
        }
        if r == 0 || o == 0 {
            bail!(
                "the data has {num_days} day(s), too few for the split (history {}, retained {}, \
                 online {} gives {h} / {r} / {o} days; retained and online need at least 1 day \
                 each): use a longer source, a shorter `data.period`, more `data.days` for a \
                 source without time, or set `split.*` as day counts",
                self.history,
                self.retained,
                self.online
            );
        }
        let held = self.holdout_days(num_days)?;
        if held >= o {
            bail!(
                "split.holdout takes {held} day(s) from the end of the {o} online day(s): at \
                 least one online day must remain; use a smaller holdout or more online days"
            );
        }
        let range = |a: usize, b: usize| (a as u32..b as u32).collect::<Vec<u32>>();
        Ok(DayPlan {
            history: range(0, h),
            retained: range(h, r_end),
            online: range(r_end, o_end - held),
            holdout: range(o_end - held, o_end),
            unused: range(o_end, num_days),
        })
    }

    /// Days of the final test slice: a share is rounded and never below one day.
    fn holdout_days(&self, num_days: usize) -> Result<usize> {
        let Some(Holdout(count)) = self.holdout else {
            return Ok(0);
        };
        let len = count.length("holdout", num_days)?;
        Ok(match count {
            DayCount::Days(n) => n,
            DayCount::Fraction(_) => ((len + 1e-9).round() as usize).max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(plan: &DayPlan) -> (usize, usize, usize) {
        (plan.history.len(), plan.retained.len(), plan.online.len())
    }

    #[test]
    fn default_shares_fit_every_source_of_three_days_or_more() {
        let split = SplitConfig::default();
        // The default synthetic stream keeps its 6 / 6 / 12.
        assert_eq!(lengths(&split.resolve(24).unwrap()), (6, 6, 12));
        // Hand-computed cumulative rounding: 7 days -> ends round(1.75)=2, round(3.5)=4, 7.
        assert_eq!(lengths(&split.resolve(7).unwrap()), (2, 2, 3));
        assert_eq!(lengths(&split.resolve(3).unwrap()), (1, 1, 1));
        assert_eq!(lengths(&split.resolve(200).unwrap()), (50, 50, 100));
        for n in 3..400 {
            let (h, r, o) = lengths(&split.resolve(n).unwrap());
            assert!(h >= 1 && r >= 1 && o >= 1 && h + r + o == n, "{n} days");
        }
        let e = format!("{:#}", split.resolve(2).unwrap_err());
        assert!(e.contains("2 day(s), too few"), "{e}");
    }

    #[test]
    fn the_holdout_is_cut_from_the_end_of_the_online_days() {
        let with = |h: &str| {
            let text = format!("history = 0.25\nretained = 0.25\nonline = 0.5\nholdout = {h}");
            toml::from_str::<SplitConfig>(&text).unwrap()
        };
        let plan = with("\"last-day\"").resolve(24).unwrap();
        assert_eq!(plan.online, (12..23).collect::<Vec<u32>>());
        assert_eq!(plan.holdout, vec![23]);
        // 0.1 of 24 days = 2.4, rounded to 2; a tiny share is still one day.
        assert_eq!(with("0.1").resolve(24).unwrap().holdout, vec![22, 23]);
        assert_eq!(with("0.001").resolve(24).unwrap().holdout, vec![23]);
        assert_eq!(with("3").resolve(24).unwrap().holdout, vec![21, 22, 23]);
        // Off: the plan of the default split, bit for bit.
        assert_eq!(
            with("0").resolve(24).unwrap(),
            SplitConfig::default().resolve(24).unwrap()
        );
        assert!(SplitConfig::default()
            .resolve(24)
            .unwrap()
            .holdout
            .is_empty());
        // Every day in exactly one part.
        let plan = with("0.1").resolve(24).unwrap();
        let mut all: Vec<u32> = [plan.history, plan.retained, plan.online, plan.holdout].concat();
        all.sort_unstable();
        assert_eq!(all, (0..24).collect::<Vec<u32>>());
        let e = format!("{:#}", with("12").resolve(24).unwrap_err());
        assert!(e.contains("at least one online day"), "{e}");
        let bad = toml::from_str::<SplitConfig>(
            "history = 1\nretained = 1\nonline = 1\nholdout = \"first-day\"",
        );
        assert!(format!("{:#}", bad.unwrap_err()).contains("last-day"));
    }

    #[test]
    fn shares_divide_the_days_the_counts_leave() {
        let split = |h: DayCount| SplitConfig {
            history: h,
            ..SplitConfig::default()
        };
        // No history: the default shares 0.25 / 0.5 become 1/3 / 2/3 of all 24 days.
        let plan = split(DayCount::Days(0)).resolve(24).unwrap();
        assert_eq!(lengths(&plan), (0, 8, 16));
        assert!(plan.unused.is_empty());
        let plan = split(DayCount::Days(2)).resolve(24).unwrap();
        assert_eq!(lengths(&plan), (2, 7, 15));
        // Every part a count: taken as written, the rest listed as unused.
        let counts = SplitConfig {
            history: DayCount::Days(0),
            retained: DayCount::Days(3),
            online: DayCount::Days(4),
            holdout: None,
        };
        let plan = counts.resolve(24).unwrap();
        assert_eq!(lengths(&plan), (0, 3, 4));
        assert_eq!(plan.unused, (7..24).collect::<Vec<u32>>());
        // Every part a share: shares of all the days, as written.
        let shares = SplitConfig {
            history: DayCount::Fraction(0.25),
            retained: DayCount::Fraction(0.25),
            online: DayCount::Fraction(0.25),
            holdout: None,
        };
        assert_eq!(
            shares.resolve(24).unwrap().unused,
            (18..24).collect::<Vec<u32>>()
        );
        // The default split uses every day.
        assert!(SplitConfig::default()
            .resolve(24)
            .unwrap()
            .unused
            .is_empty());
    }

    #[test]
    fn huge_counts_fail_instead_of_overflowing() {
        let split = SplitConfig {
            history: DayCount::Days(usize::MAX),
            ..SplitConfig::default()
        };
        let e = format!("{:#}", split.resolve(24).unwrap_err());
        assert!(e.contains("only 24 days"), "{e}");
    }
}
