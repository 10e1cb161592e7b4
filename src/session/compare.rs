//! Sessions side by side: the per-day AUC, LogLoss and bias of their arms (each session's
//! records folded by the [`Ledger`]), one series pinned as the baseline and the others shown
//! as differences from it, filtered by a regex over `session/arm`. The headless table, the CSV
//! export and the console's compare view all read the same [`Comparison`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{bail, Result};
use regex::Regex;

use crate::protocol::{Ledger, Record};

/// The metrics a comparison shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpMetric {
    Auc,
    LogLoss,
    Bias,
}

impl CmpMetric {
    pub const ALL: [CmpMetric; 3] = [CmpMetric::Auc, CmpMetric::LogLoss, CmpMetric::Bias];

    pub fn label(self) -> &'static str {
        match self {
            CmpMetric::Auc => "AUC",
            CmpMetric::LogLoss => "LogLoss",
            CmpMetric::Bias => "bias",
        }
    }

    /// `auc`, `logloss`, `bias` (any case).
    pub fn parse(text: &str) -> Result<CmpMetric> {
        match text.to_ascii_lowercase().as_str() {
            "auc" => Ok(CmpMetric::Auc),
            "logloss" => Ok(CmpMetric::LogLoss),
            "bias" => Ok(CmpMetric::Bias),
            _ => bail!("unknown metric {text:?}: auc, logloss or bias"),
        }
    }

    pub fn next(self) -> CmpMetric {
        match self {
            CmpMetric::Auc => CmpMetric::LogLoss,
            CmpMetric::LogLoss => CmpMetric::Bias,
            CmpMetric::Bias => CmpMetric::Auc,
        }
    }
}

/// One arm of one session, per online day.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The session's id (or the folder name it was opened by).
    pub session: String,
    pub session_name: String,
    pub arm: String,
    /// Day -> (AUC, LogLoss, bias); AUC is NaN on a one-class day.
    pub days: BTreeMap<u32, [f64; 3]>,
}

impl Series {
    /// `session/arm`, what the filter matches and the baseline is named by.
    pub fn key(&self) -> String {
        format!("{}/{}", self.session, self.arm)
    }

    pub fn value(&self, day: u32, metric: CmpMetric) -> Option<f64> {
        let v = self.days.get(&day)?[metric as usize];
        v.is_finite().then_some(v)
    }
}

/// Every arm of the compared sessions, in the order the sessions were given.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub series: Vec<Series>,
}

impl Comparison {
    /// Folds each session's records (`(label, records)`) into its arms' per-day metrics.
    pub fn from_sessions(sessions: &[(String, Vec<Record>)]) -> Comparison {
        let mut series = Vec::new();
        for (label, records) in sessions {
            let mut ledger = Ledger::default();
            for r in records {
                ledger.apply(r);
            }
            for arm in &ledger.arms {
                let days = arm
                    .days
                    .iter()
                    .map(|(d, e)| {
                        let m = &e.metrics;
                        (*d, [m.auc.unwrap_or(f64::NAN), m.logloss, m.bias])
                    })
                    .collect();
                series.push(Series {
                    session: label.clone(),
                    session_name: super::meta::shown_name(&ledger.name).into_owned(),
                    arm: arm.name.clone(),
                    days,
                });
            }
        }
        Comparison { series }
    }

    /// The series whose `session/arm` (or session name) the regex matches.
    pub fn filtered(&self, filter: Option<&Regex>) -> Vec<&Series> {
        self.series
            .iter()
            .filter(|s| {
                filter.is_none_or(|re| re.is_match(&s.key()) || re.is_match(&s.session_name))
            })
            .collect()
    }

    /// The index of the series named `session/arm` (an unambiguous prefix of the session id
    /// works too, e.g. `20261201/crossadapt`).
    pub fn find(&self, key: &str) -> Result<usize> {
        if let Some(i) = self.series.iter().position(|s| s.key() == key) {
            return Ok(i);
        }
        let (session, arm) = key.rsplit_once('/').unwrap_or(("", key));
        let found: Vec<usize> = (0..self.series.len())
            .filter(|&i| {
                let s = &self.series[i];
                s.arm == arm && s.session.starts_with(session)
            })
            .collect();
        match found.as_slice() {
            [i] => Ok(*i),
            [] => bail!(
                "no series {key:?} to pin as the baseline; the series are {}",
                self.series
                    .iter()
                    .map(Series::key)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => bail!("{key:?} names more than one series; give SESSION/ARM"),
        }
    }
}

/// Every day any of `series` has, in order.
pub fn days_of(series: &[&Series]) -> Vec<u32> {
    let days: BTreeSet<u32> = series.iter().flat_map(|s| s.days.keys().copied()).collect();
    days.into_iter().collect()
}

/// `0.6673`, `-0.0012`, `-` for a missing value.
fn cell(v: Option<f64>, signed: bool) -> String {
    match v {
        Some(v) if signed => format!("{v:+.4}"),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    }
}

/// The difference of `s` from `base` on `day` (both present).
pub fn diff(s: &Series, base: &Series, day: u32, metric: CmpMetric) -> Option<f64> {
    Some(s.value(day, metric)? - base.value(day, metric)?)
}

/// Mean of `s - base` over the days both have.
pub fn mean_diff(s: &Series, base: &Series, days: &[u32], metric: CmpMetric) -> Option<f64> {
    let d: Vec<f64> = days
        .iter()
        .filter_map(|&day| diff(s, base, day, metric))
        .collect();
    (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64)
}

/// The plain-text table of one metric: the baseline's values, then every other series as its
/// difference from the baseline per day, with the mean difference.
pub fn table(series: &[&Series], base: Option<&Series>, metric: CmpMetric) -> String {
    let days = days_of(series);
    let key_w = series
        .iter()
        .map(|s| s.key().len() + 2)
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = String::new();
    let title = match base {
        Some(b) => format!(
            "{} per day (baseline {}; others: difference from it)",
            metric.label(),
            b.key()
        ),
        None => format!("{} per day", metric.label()),
    };
    let _ = writeln!(out, "{title}");
    let _ = write!(out, "{:<key_w$}", "series");
    for d in &days {
        let _ = write!(out, "  {:>8}", format!("day {d}"));
    }
    let _ = writeln!(out, "  {:>8}", if base.is_some() { "mean Δ" } else { "" });
    for s in series {
        let is_base = base.is_some_and(|b| std::ptr::eq(*s, b));
        let mark = if is_base { " *" } else { "" };
        let _ = write!(out, "{:<key_w$}", format!("{}{mark}", s.key()));
        for &d in &days {
            let v = match base {
                Some(b) if !is_base => cell(diff(s, b, d, metric), true),
                _ => cell(s.value(d, metric), false),
            };
            let _ = write!(out, "  {v:>8}");
        }
        let mean = match base {
            Some(b) if !is_base => cell(mean_diff(s, b, &days, metric), true),
            _ => String::new(),
        };
        let _ = writeln!(out, "  {mean:>8}");
    }
    out
}

/// What a comparison shows as CSV, one line per series, metric and day: `metric, session,
/// session_name, arm, day, value, baseline, diff` (empty where not known).
pub fn csv(series: &[&Series], base: Option<&Series>, metrics: &[CmpMetric]) -> String {
    let mut out = String::from("metric,session,session_name,arm,day,value,baseline,diff\n");
    let field = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    for &metric in metrics {
        for s in series {
            for &day in s.days.keys() {
                let b = base.and_then(|b| b.value(day, metric));
                let v = s.value(day, metric);
                let d = v.zip(b).map(|(v, b)| v - b);
                let _ = writeln!(
                    out,
                    "{},{},{},{},{day},{},{},{}",
                    metric.label(),
                    quote(&s.session),
                    quote(&s.session_name),
                    quote(&s.arm),
                    field(v),
                    field(b),
                    field(d)
                );
            }
        }
    }
    out
}
