//! The migration gate: should the student replace the incumbent yet?
//!
//! Per online day the engine scores the day's rows with every arm before any of them trains on
//! it and emits, per student arm, its AUC and LogLoss differences to the incumbent with
//! two-sided intervals ([`crate::train::stats`]: DeLong for the AUC, per-row differences for
//! the LogLoss, each user's rows one unit when the data names users: [`GateCluster`]),
//! together with the [`GateRule`] in force. The ledger folds those days into a
//! [`GateStatus`]: **SWITCH** once the student has been "not worse than the incumbent by more
//! than δ" with the rule's confidence for `days` consecutive online days (the per-day rule), or
//! over the pooled evidence of the last `window` online days (the pooled rule), **NOT YET**
//! otherwise, each with its reason.
//!
//! The pooled rule exists because one small day cannot show a difference of δ: with a thousand
//! rows a day the AUC interval is about ±0.1 wide, so the per-day rule can never pass whatever
//! the models do. Pooling `window` days adds their evidence up: each day is a stratum (its own
//! rows, its own base rate) and the days' differences are pooled by inverse variance
//! ([`crate::train::stats::pooled`]), so a day with more rows weighs more. The pooled interval
//! treats the days as independent: within a day each user's rows are one unit (the per-day
//! intervals are clustered), across days a returning user is not, which makes the pooled
//! interval somewhat narrower than a user-clustered pool of the same rows would be. The
//! simulation in docs/verdict.md measures how often that lets the gate switch wrongly.
//!
//! "Not worse by more than δ with 95% confidence" reads the end of the two-sided 95% interval
//! (the lower end for the AUC difference, the upper end for the LogLoss difference): a
//! one-sided test at 2.5%, the usual convention of non-inferiority trials and the stricter
//! reading, because a wrong switch costs more than a late one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::train::stats::{self, Interval};

/// The `[gate]` section: the switch rule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateRule {
    /// Largest AUC loss against the incumbent the switch tolerates (AUC units).
    pub delta: f64,
    /// Largest LogLoss rise against the incumbent the switch tolerates (nats per row).
    pub logloss_delta: f64,
    /// Consecutive online days the rule must hold.
    pub days: u32,
    /// Confidence level of the two-sided intervals.
    pub level: f64,
    /// What the intervals count as independent evidence (`gate.cluster`). In the config,
    /// `auto` by default; in a `Gate` event, the units the engine used. Missing, as in
    /// configs and logs written before the key existed, it reads as `rows`: what those
    /// sessions computed, so a resumed one stays consistent with its log.
    #[serde(default = "GateCluster::before_clustering")]
    pub cluster: GateCluster,
    /// Online days the pooled rule pools (0: no pooled rule). Missing, as in logs written
    /// before the key existed, it reads as 0: what those sessions judged by.
    #[serde(default)]
    pub window: u32,
}

/// Online days the pooled rule pools by default: a working week of evidence, long enough for
/// small days to add up, short enough that a student that was behind a week ago does not
/// drag on the verdict for long.
pub const DEFAULT_WINDOW: u32 = 5;

impl Default for GateRule {
    fn default() -> Self {
        GateRule {
            delta: 0.002,
            logloss_delta: 0.002,
            days: 3,
            level: 0.95,
            cluster: GateCluster::Auto,
            window: DEFAULT_WINDOW,
        }
    }
}

/// The independent units of the gate's intervals (`gate.cluster`).
///
/// One user's rows on a day are correlated (the same person, the same tastes), so counting
/// each row as independent evidence makes the intervals too narrow when users come back: the
/// gate would switch on evidence it does not have. Clustering by user is the statistically
/// correct choice whenever the data says whose each row is; it is not a tuned one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateCluster {
    /// `users` when the data source has a user field, `rows` otherwise (the engine resolves
    /// it; an event always carries one of the other two).
    #[default]
    Auto,
    /// Each user's rows of the day form one unit: the clustered DeLong variance and the
    /// cluster-robust standard error of the LogLoss difference (`train::stats`).
    Users,
    /// Every row is its own unit: DeLong's variance and `sd / sqrt(n)`.
    Rows,
}

impl GateCluster {
    /// What a rule without the key means: rows, the only units before the key existed.
    fn before_clustering() -> GateCluster {
        GateCluster::Rows
    }

    /// The units to use on data that has (`true`) or lacks a user key per row.
    pub fn resolve(self, has_users: bool) -> GateCluster {
        match self {
            GateCluster::Auto if has_users => GateCluster::Users,
            GateCluster::Auto => GateCluster::Rows,
            units => units,
        }
    }

    /// The config's word for it.
    pub fn label(self) -> &'static str {
        match self {
            GateCluster::Auto => "auto",
            GateCluster::Users => "users",
            GateCluster::Rows => "rows",
        }
    }
}

impl GateRule {
    /// Checks every value; the message names the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (key, v) in [
            ("gate.delta", self.delta),
            ("gate.logloss_delta", self.logloss_delta),
        ] {
            anyhow::ensure!(
                v.is_finite() && (0.0..=1.0).contains(&v),
                "{key} must be in [0, 1], got {v}"
            );
        }
        anyhow::ensure!(
            (1..=100_000).contains(&self.days),
            "gate.days must be in 1..=100000, got {}",
            self.days
        );
        anyhow::ensure!(
            self.level > 0.5 && self.level < 1.0,
            "gate.level must be in (0.5, 1), got {}",
            self.level
        );
        anyhow::ensure!(
            self.window <= 100_000,
            "gate.window must be in 0..=100000 (0: no pooled rule), got {}",
            self.window
        );
        Ok(())
    }
}

/// One student arm's evidence on one online day (student minus incumbent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateDay {
    /// AUC difference; `None` when the day has fewer than two rows of a class.
    pub auc: Option<Interval>,
    /// LogLoss difference; `None` below two rows.
    pub logloss: Option<Interval>,
    /// The rule in force when the day was judged.
    pub rule: GateRule,
}

impl GateDay {
    /// `Ok` when the day passes the rule, else why not (one clause).
    pub fn check(&self) -> Result<(), String> {
        match self.miss() {
            None => Ok(()),
            Some(m) => Err(m.sentence(&self.rule)),
        }
    }

    /// The first clause of the rule the day fails, if any.
    fn miss(&self) -> Option<Miss> {
        let r = &self.rule;
        let Some(auc) = &self.auc else {
            return Some(Miss::AucUndefined);
        };
        if !auc.not_below(r.delta) {
            return Some(Miss::Auc(*auc));
        }
        let Some(ll) = &self.logloss else {
            return Some(Miss::LogLossUndefined);
        };
        if !ll.not_above(r.logloss_delta) {
            return Some(Miss::LogLoss(*ll));
        }
        None
    }
}

/// The pooled rule's evidence on one day: the last `window` online days' differences, pooled.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PooledEvidence {
    /// First and last online day of the window.
    pub from: u32,
    pub to: u32,
    pub auc: Interval,
    pub logloss: Interval,
}

impl PooledEvidence {
    /// The window ending at `online[end]`, when it is full and every day in it has both
    /// intervals (a day without evidence leaves the window unpooled).
    fn of(
        days: &BTreeMap<u32, GateDay>,
        online: &[u32],
        end: usize,
        rule: &GateRule,
    ) -> Option<Self> {
        let w = rule.window as usize;
        if w == 0 || end + 1 < w {
            return None;
        }
        let window = &online[end + 1 - w..=end];
        let mut aucs = Vec::with_capacity(w);
        let mut lls = Vec::with_capacity(w);
        for d in window {
            let g = days.get(d)?;
            aucs.push(g.auc?);
            lls.push(g.logloss?);
        }
        Some(PooledEvidence {
            from: window[0],
            to: window[w - 1],
            auc: stats::pooled(&aucs, rule.level)?,
            logloss: stats::pooled(&lls, rule.level)?,
        })
    }

    /// The rule's two clauses on the pooled intervals.
    fn passes(&self, rule: &GateRule) -> bool {
        self.auc.not_below(rule.delta) && self.logloss.not_above(rule.logloss_delta)
    }
}

/// Why a day does not pass: one clause of the rule, said long (the report, the summary) or
/// short (the console's gate rows, which must fit 80 columns).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Miss {
    AucUndefined,
    Auc(Interval),
    LogLossUndefined,
    LogLoss(Interval),
    /// The arm has no evidence for the day (it failed, or was not judged).
    NotJudged,
}

impl Miss {
    fn sentence(&self, r: &GateRule) -> String {
        let pct = r.level * 100.0;
        // The interval's units, so a reader knows whether repeated users were accounted for.
        let pct = match r.cluster {
            GateCluster::Users => format!("{pct:.0}%, by user"),
            GateCluster::Rows => format!("{pct:.0}%, by row"),
            GateCluster::Auto => format!("{pct:.0}%"),
        };
        match self {
            Miss::AucUndefined => "the AUC difference is undefined (a single class)".into(),
            Miss::Auc(auc) => format!(
                "AUC {:+.4} [{:+.4}, {:+.4}] may be more than {} below the incumbent's ({pct})",
                auc.estimate, auc.lo, auc.hi, r.delta
            ),
            Miss::LogLossUndefined => "the LogLoss difference is undefined".into(),
            Miss::LogLoss(ll) => format!(
                "LogLoss {:+.4} [{:+.4}, {:+.4}] may be more than {} above the incumbent's ({pct})",
                ll.estimate, ll.lo, ll.hi, r.logloss_delta
            ),
            Miss::NotJudged => "no evidence (the arm was not judged)".into(),
        }
    }

    /// The clause in a few words: the interval end that breaks the rule against its bound.
    fn brief(&self, r: &GateRule) -> String {
        match self {
            Miss::AucUndefined => "AUC undefined".into(),
            Miss::Auc(auc) => format!("AUC lo {:+.4} < -{}", auc.lo, r.delta),
            Miss::LogLossUndefined => "LogLoss undefined".into(),
            Miss::LogLoss(ll) => format!("LogLoss hi {:+.4} > {}", ll.hi, r.logloss_delta),
            Miss::NotJudged => "not judged".into(),
        }
    }
}

/// SWITCH or NOT YET.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateDecision {
    Switch,
    #[default]
    NotYet,
}

impl GateDecision {
    /// The word the console and the report show.
    pub fn label(self) -> &'static str {
        match self {
            GateDecision::Switch => "SWITCH",
            GateDecision::NotYet => "NOT YET",
        }
    }
}

/// The gate's state for one student arm after the days folded so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GateStatus {
    pub decision: GateDecision,
    /// Consecutive passing online days up to the latest judged one.
    pub streak: u32,
    /// Days the rule needs.
    pub needed: u32,
    /// The first day on which the rule was met, if ever (it may have been lost since).
    pub first_met: Option<u32>,
    /// The latest judged day.
    pub day: Option<u32>,
    /// One sentence: why SWITCH, or what is missing.
    pub reason: String,
    /// The same in a few words, for narrow displays (the console's gate rows).
    #[serde(default)]
    pub brief: String,
    /// The independent units of the latest judged day's intervals (users or rows).
    #[serde(default = "GateCluster::before_clustering")]
    pub cluster: GateCluster,
    /// The pooled rule's evidence on the latest judged day, when its window is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooled: Option<PooledEvidence>,
    /// Which rule met the gate first (`first_met`): `day` or `pooled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met_by: Option<MetBy>,
}

impl GateStatus {
    /// The gate in a few words, for `list`: the decision, then the per-day streak (`3/3`) or
    /// `pooled` when the pooled window holds the switch, then the first switch day and the
    /// online days it took: `SWITCH pooled, first on day 21 (10d)`, `NOT YET 1/3`.
    pub fn list_label(&self, online: &[u32]) -> String {
        let how = self.progress();
        let first = match (self.first_met, self.days_to_switch(online)) {
            (Some(day), Some(n)) => format!(", first on day {day} ({n}d)"),
            _ => String::new(),
        };
        format!("{} {how}{first}", self.decision.label())
    }

    /// How far the rule got, in a word: passing days so far of the days the per-day rule needs
    /// (`2/3`; a longer streak shows as met), or `pooled` when the pooled window alone holds
    /// the switch.
    pub fn progress(&self) -> String {
        if self.decision == GateDecision::Switch && self.streak < self.needed {
            "pooled".to_string()
        } else {
            format!("{}/{}", self.streak.min(self.needed), self.needed)
        }
    }

    /// Online days until the gate first said SWITCH, the switch day included (1: on the first
    /// online day of `online`, the plan's); `None` when it has not.
    pub fn days_to_switch(&self, online: &[u32]) -> Option<u32> {
        let day = self.first_met?;
        online.iter().position(|&o| o == day).map(|i| i as u32 + 1)
    }
}

/// Which of the gate's rules was met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetBy {
    /// `days` consecutive passing days.
    Days,
    /// The pooled window.
    Pooled,
}

/// Folds an arm's judged days, walking the plan's online days in order: a day without
/// evidence (the arm failed or was not judged) breaks the streak and leaves its pooled windows
/// unpooled. The rule of the latest day decides how many days are needed and how many the
/// window pools. A day meets the gate when either rule holds on it. `None` when no day was
/// judged.
pub fn status(days: &BTreeMap<u32, GateDay>, online: &[u32]) -> Option<GateStatus> {
    let (&last, last_day) = days.iter().next_back()?;
    let rule = last_day.rule;
    let needed = rule.days;
    let (mut streak, mut first_met, mut met_by, mut since) = (0u32, None, None, None);
    let mut last_failure = None;
    let mut pooled_now = None;
    for (i, &d) in online.iter().enumerate().take_while(|(_, &d)| d <= last) {
        match days.get(&d).map(|g| (g.miss(), g.rule)) {
            Some((None, _)) => {
                if streak == 0 {
                    since = Some(d);
                }
                streak += 1;
            }
            Some((Some(miss), rule)) => {
                streak = 0;
                last_failure = Some((d, miss, rule));
            }
            None => {
                streak = 0;
                last_failure = Some((d, Miss::NotJudged, rule));
            }
        }
        let pooled = PooledEvidence::of(days, online, i, &rule);
        let by = if streak >= needed {
            Some(MetBy::Days)
        } else if pooled.is_some_and(|p| p.passes(&rule)) {
            Some(MetBy::Pooled)
        } else {
            None
        };
        if first_met.is_none() && by.is_some() {
            first_met = Some(d);
            met_by = by;
        }
        if d == last {
            pooled_now = pooled.map(|p| (p, by));
        }
    }
    let pooled = pooled_now.map(|(p, _)| p);
    let now_by = pooled_now
        .and_then(|(_, by)| by)
        .or((streak >= needed).then_some(MetBy::Days));
    let decision = if now_by.is_some() {
        GateDecision::Switch
    } else {
        GateDecision::NotYet
    };
    let pct = rule.level * 100.0;
    let since = since.unwrap_or(last);
    let (reason, brief) = match (now_by, &last_failure) {
        (Some(MetBy::Days), _) => (
            format!(
                "not worse than the incumbent by more than {} AUC / {} LogLoss at {pct:.0}% for {streak} consecutive days (from day {since})",
                rule.delta, rule.logloss_delta,
            ),
            format!("passing since day {since}"),
        ),
        (Some(MetBy::Pooled), _) => {
            let p = pooled.expect("met by the pooled rule");
            (
                format!(
                    "not worse than the incumbent by more than {} AUC / {} LogLoss at {pct:.0}% over days {}-{} pooled (AUC {:+.4} [{:+.4}, {:+.4}])",
                    rule.delta, rule.logloss_delta, p.from, p.to, p.auc.estimate, p.auc.lo, p.auc.hi,
                ),
                format!("pooled days {}-{} pass", p.from, p.to),
            )
        }
        (None, Some((d, miss, rule))) if *d == last => (
            format!("day {d}: {}", miss.sentence(rule)),
            format!("day {d}: {}", miss.brief(rule)),
        ),
        (None, _) => (
            format!("{streak} of {needed} days so far"),
            format!("{} more passing day(s) needed", needed - streak),
        ),
    };
    Some(GateStatus {
        decision,
        streak,
        needed,
        first_met,
        day: Some(last),
        reason,
        brief,
        cluster: rule.cluster,
        pooled,
        met_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(estimate: f64, lo: f64, hi: f64) -> Option<Interval> {
        Some(Interval {
            estimate,
            lo,
            hi,
            level: 0.95,
        })
    }

    fn day(auc_lo: f64, ll_hi: f64) -> GateDay {
        GateDay {
            auc: iv(auc_lo + 0.001, auc_lo, auc_lo + 0.002),
            logloss: iv(ll_hi - 0.001, ll_hi - 0.002, ll_hi),
            rule: GateRule::default(),
        }
    }

    #[test]
    fn a_day_passes_only_when_both_interval_ends_are_inside_delta() {
        assert_eq!(day(-0.001, 0.001).check(), Ok(()));
        let auc = day(-0.003, 0.001)
            .check()
            .expect_err("AUC end below -0.002");
        assert!(auc.starts_with("AUC -0.0020 [-0.0030, -0.0010]"), "{auc}");
        let ll = day(-0.001, 0.0025)
            .check()
            .expect_err("LogLoss end above 0.002");
        assert!(ll.contains("LogLoss") && ll.contains("above"), "{ll}");
        // The sentence names the interval's units.
        for (cluster, units) in [
            (GateCluster::Users, "(95%, by user)"),
            (GateCluster::Rows, "(95%, by row)"),
        ] {
            let said = GateDay {
                rule: GateRule {
                    cluster,
                    ..GateRule::default()
                },
                ..day(-0.003, 0.001)
            }
            .check()
            .expect_err("AUC end below -0.002");
            assert!(said.ends_with(units), "{said}");
        }
        let none = GateDay {
            auc: None,
            ..day(0.0, 0.0)
        };
        assert!(none.check().is_err());
    }

    #[test]
    fn switch_needs_k_consecutive_passing_days() {
        let online = [10, 11, 12, 13, 14, 15];
        let mut days = BTreeMap::new();
        days.insert(10, day(-0.001, 0.0));
        days.insert(11, day(-0.001, 0.0));
        let s = status(&days, &online).expect("judged days");
        assert_eq!(
            (s.decision, s.streak, s.needed),
            (GateDecision::NotYet, 2, 3)
        );
        assert_eq!(s.reason, "2 of 3 days so far");
        assert_eq!(s.brief, "1 more passing day(s) needed");
        assert_eq!(s.list_label(&online), "NOT YET 2/3");
        days.insert(12, day(-0.001, 0.0));
        let s = status(&days, &online).expect("judged days");
        assert_eq!((s.decision, s.first_met), (GateDecision::Switch, Some(12)));
        assert!(
            s.reason.contains("3 consecutive days (from day 10)"),
            "{}",
            s.reason
        );
        assert_eq!(s.brief, "passing since day 10");
        assert_eq!(s.list_label(&online), "SWITCH 3/3, first on day 12 (3d)");
        // A failing day resets the streak and says why; the first time it was met stays.
        days.insert(13, day(-0.01, 0.0));
        let s = status(&days, &online).expect("judged days");
        assert_eq!((s.decision, s.streak), (GateDecision::NotYet, 0));
        assert_eq!(s.first_met, Some(12));
        assert!(s.reason.starts_with("day 13: AUC"), "{}", s.reason);
        assert_eq!(s.brief, "day 13: AUC lo -0.0100 < -0.002");
        // A day without evidence breaks the streak too.
        days.insert(15, day(-0.001, 0.0));
        let s = status(&days, &online).expect("judged days");
        assert_eq!((s.decision, s.streak), (GateDecision::NotYet, 1));
        assert_eq!(s.reason, "1 of 3 days so far");
        assert!(status(&BTreeMap::new(), &online).is_none());
    }

    #[test]
    fn one_day_rule_switches_at_once() {
        let rule = GateRule {
            days: 1,
            ..GateRule::default()
        };
        let days = BTreeMap::from([(
            7,
            GateDay {
                rule,
                ..day(-0.001, 0.0)
            },
        )]);
        let s = status(&days, &[7, 8]).expect("judged");
        assert_eq!((s.decision, s.first_met), (GateDecision::Switch, Some(7)));
    }

    #[test]
    fn small_days_that_each_fail_can_pass_pooled() {
        // Each day: AUC +0.001 and LogLoss -0.001, both with se 0.002. One day's 95% ends are
        // 0.001 - 1.96 * 0.002 = -0.0029 < -0.002 (fails) and -0.001 + 0.0039 = 0.0029 > 0.002.
        // Three days pooled: se 0.002 / sqrt(3) = 0.0011547, ends -0.00126 and +0.00126: pass.
        let small = |rule: GateRule| GateDay {
            auc: Some(Interval::normal(0.001, 0.002, 0.95)),
            logloss: Some(Interval::normal(-0.001, 0.002, 0.95)),
            rule,
        };
        let rule = GateRule {
            window: 3,
            ..GateRule::default()
        };
        assert!(small(rule).check().is_err(), "one day alone fails");
        let online = [1, 2, 3, 4, 5, 6];
        let mut days = BTreeMap::from([(1, small(rule)), (2, small(rule))]);
        let s = status(&days, &online).expect("judged");
        assert_eq!((s.decision, s.pooled), (GateDecision::NotYet, None));
        days.insert(3, small(rule));
        let s = status(&days, &online).expect("judged");
        assert_eq!(s.decision, GateDecision::Switch);
        assert_eq!((s.first_met, s.met_by), (Some(3), Some(MetBy::Pooled)));
        let p = s.pooled.expect("a full window");
        assert_eq!((p.from, p.to), (1, 3));
        let se = 0.002 / 3f64.sqrt();
        let z = stats::normal_quantile(0.975);
        assert!((p.auc.lo - (0.001 - z * se)).abs() < 1e-12, "{p:?}");
        assert!((p.logloss.hi - (-0.001 + z * se)).abs() < 1e-12, "{p:?}");
        assert!(s.reason.contains("over days 1-3 pooled"), "{}", s.reason);
        assert_eq!(s.brief, "pooled days 1-3 pass");
        assert_eq!(s.list_label(&online), "SWITCH pooled, first on day 3 (3d)");
        // A missing day leaves its windows unpooled: day 5 without day 4 cannot pool 3-5.
        days.insert(5, small(rule));
        let s = status(&days, &online).expect("judged");
        assert_eq!(
            (s.decision, s.pooled, s.first_met),
            (GateDecision::NotYet, None, Some(3))
        );
        // Without the pooled rule (window 0, as in logs from before it), small days never pass.
        let off = GateRule { window: 0, ..rule };
        let days: BTreeMap<u32, GateDay> = (1..=6).map(|d| (d, small(off))).collect();
        let s = status(&days, &online).expect("judged");
        assert_eq!((s.decision, s.first_met), (GateDecision::NotYet, None));
        // A log written before the key existed reads as window 0.
        let old: GateRule = serde_json::from_str(
            r#"{"delta":0.002,"logloss_delta":0.002,"days":3,"level":0.95,"cluster":"users"}"#,
        )
        .expect("an old rule");
        assert_eq!(old.window, 0);
    }

    #[test]
    fn bad_rules_name_the_key() {
        let bad = |r: GateRule| r.validate().expect_err("invalid").to_string();
        let d = GateRule::default();
        assert!(bad(GateRule { delta: -0.1, ..d }).contains("gate.delta"));
        assert!(bad(GateRule {
            logloss_delta: f64::NAN,
            ..d
        })
        .contains("gate.logloss_delta"));
        assert!(bad(GateRule { days: 0, ..d }).contains("gate.days"));
        assert!(bad(GateRule { level: 1.0, ..d }).contains("gate.level"));
        assert!(bad(GateRule {
            window: 100_001,
            ..d
        })
        .contains("gate.window"));
        assert!(d.validate().is_ok());
    }
}
