//! The validation protocol's record (issue 17.1): which values of each arm's key
//! hyperparameters a small grid tried on a validation day taken from the retained days, how
//! each trial scored, and which one was chosen. The engine's `tune` makes it; the ledger keeps
//! it; the report, the headless summary and `crossadapt tune` show it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::num;

/// Validation AUCs closer than this are a tie, which LogLoss breaks.
pub const AUC_TIE: f64 = 1e-4;

/// One trial of one arm: its values and its score on the validation day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TuneTrial {
    /// `key = value` of the arm's tuned hyperparameters (`per_arm` keys).
    pub values: BTreeMap<String, f64>,
    /// `None` when the day has one class or the trial failed.
    #[serde(default, with = "num::opt")]
    pub auc: Option<f64>,
    #[serde(with = "num")]
    pub logloss: f64,
    /// Wall seconds of the trial's offline stage and evaluation.
    #[serde(with = "num")]
    pub seconds: f64,
    /// Why the trial failed (a diverged loss), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// The trials of one arm and the one chosen.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmTuning {
    /// The arm the values are for (`per_arm.NAME`); crossadapt's ablations use `crossadapt`'s.
    pub arm: String,
    pub trials: Vec<TuneTrial>,
    /// Index into `trials`; trial 0 is the session's own values.
    pub chosen: usize,
}

impl ArmTuning {
    pub fn choice(&self) -> Option<&TuneTrial> {
        self.trials.get(self.chosen)
    }
}

/// The whole protocol: the days it trained on, the validation day, every arm's trials.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// The retained days each trial's offline stage read (the teacher also read the history).
    pub train_days: Vec<u32>,
    /// The last retained day: every trial is scored on it; no online day is read.
    pub validation_day: u32,
    /// The retained day before it, which each trial lived through with its online step
    /// (test-then-train) before being scored; absent when the split retains only two days (and
    /// in records written before the protocol had it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_day: Option<u32>,
    pub arms: Vec<ArmTuning>,
    /// The session-wide online values (`[online]`, `[adaptation]`), when the protocol's online
    /// stage ran (`--online-days`); absent otherwise and in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<OnlineTuning>,
}

/// The protocol's online stage: the values every crossadapt arm shares after the switch (the
/// co-distilled teacher's interval, the replay ratio, the bounds of the online distillation
/// weight, the drift reference window), which one validation day cannot score. The switch is
/// replayed earlier still: crossadapt (with the values the first stage chose) switches on
/// `train_days`, then streams `days` test-then-train, as a session streams its online days;
/// a trial's score is its mean AUC and LogLoss over them, each day scored before the arm
/// trains on it. Only retained days are read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OnlineTuning {
    /// The retained days the switch trained on (the teacher also read the history).
    pub train_days: Vec<u32>,
    /// The retained days streamed after the switch; every trial is scored on all of them.
    pub days: Vec<u32>,
    /// The trials, under the arm name [`ONLINE_TUNING`].
    pub tuning: ArmTuning,
}

/// The name the online stage's trials go by in tables and pooled choices.
pub const ONLINE_TUNING: &str = "online";

/// The trial to choose: the highest validation AUC; among those within [`AUC_TIE`] of it, the
/// lowest LogLoss; then the earliest (the session's values first). Trials without an AUC come
/// last, by LogLoss. `None` for no trials.
pub fn choose(trials: &[TuneTrial]) -> Option<usize> {
    let usable = |t: &TuneTrial| t.failed.is_none() && t.logloss.is_finite();
    let best_auc = trials
        .iter()
        .filter(|t| usable(t))
        .filter_map(|t| t.auc)
        .filter(|a| a.is_finite())
        .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.max(a))));
    let in_band = |t: &TuneTrial| match (best_auc, t.auc) {
        (Some(best), Some(a)) => usable(t) && a >= best - AUC_TIE,
        (None, _) => usable(t),
        _ => false,
    };
    let pick = trials
        .iter()
        .enumerate()
        .filter(|(_, t)| in_band(t))
        .min_by(|(i, a), (j, b)| a.logloss.total_cmp(&b.logloss).then(i.cmp(j)))
        .map(|(i, _)| i);
    pick.or((!trials.is_empty()).then_some(0))
}

impl Tuning {
    /// One line for the console: `tuned on retained day 11: scratch trial 1/8 · kd 3/8 ·
    /// crossadapt 2/8 · online values (days 8-11) 2/8`; trial 1 is the session's own values.
    pub fn brief(&self) -> String {
        let mut parts: Vec<String> = self
            .arms
            .iter()
            .map(|a| format!("{} {}/{}", a.arm, a.chosen + 1, a.trials.len()))
            .collect();
        if let Some(o) = &self.online {
            parts.push(format!(
                "{ONLINE_TUNING} values ({}) {}/{}",
                days_phrase(&o.days),
                o.tuning.chosen + 1,
                o.tuning.trials.len()
            ));
        }
        format!(
            "tuned on retained day {} (chosen trial/trials; 1 = defaults): {}",
            self.validation_day,
            parts.join(" · ")
        )
    }

    /// One line per trial and the choice per arm, for the console and `crossadapt tune`.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let step = match self.online_day {
            Some(d) => format!(", then the online step on day {d}"),
            None => String::new(),
        };
        let _ = writeln!(
            s,
            "tuned on retained day {} (offline stages on {}{step}); no online day read",
            self.validation_day,
            days_phrase(&self.train_days)
        );
        for a in &self.arms {
            for (i, t) in a.trials.iter().enumerate() {
                let mark = if i == a.chosen { "*" } else { " " };
                let _ = writeln!(s, "{mark} {}", trial_line(&a.arm, i, a.trials.len(), t));
            }
        }
        if let Some(o) = &self.online {
            let _ = writeln!(
                s,
                "online values: switch on retained {}, then {} streamed test-then-train (mean AUC over them)",
                days_phrase(&o.train_days),
                days_phrase(&o.days)
            );
            let a = &o.tuning;
            for (i, t) in a.trials.iter().enumerate() {
                let mark = if i == a.chosen { "*" } else { " " };
                let _ = writeln!(s, "{mark} {}", trial_line(&a.arm, i, a.trials.len(), t));
            }
        }
        for a in self
            .arms
            .iter()
            .chain(self.online.as_ref().map(|o| &o.tuning))
        {
            if let Some(t) = a.choice() {
                let _ = writeln!(
                    s,
                    "chosen {}: {} (trial {}, validation AUC {})",
                    a.arm,
                    values_text(&t.values),
                    a.chosen + 1,
                    opt(t.auc, 4)
                );
            }
        }
        s
    }
}

/// `tune [kd] trial 3/8: emb_lr=0.05 ... -> AUC 0.6712 · LogLoss 0.31234 · 4.1 s`.
pub fn trial_line(arm: &str, index: usize, of: usize, t: &TuneTrial) -> String {
    let score = match &t.failed {
        Some(why) => format!("failed: {why}"),
        None => format!(
            "AUC {} · LogLoss {}",
            opt(t.auc, 4),
            num::fixed(t.logloss, 5)
        ),
    };
    format!(
        "tune [{arm}] trial {}/{of}: {} -> {score} · {:.1} s",
        index + 1,
        values_text(&t.values),
        t.seconds
    )
}

/// `emb_lr=0.02 dense_lr=0.001`.
pub fn values_text(values: &BTreeMap<String, f64>) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_string(), |v| num::fixed(v, digits))
}

/// `days 6-9`, `day 6`, or `no day`.
pub fn days_phrase(days: &[u32]) -> String {
    match (days.first(), days.last()) {
        (Some(a), Some(b)) if days.len() > 1 => format!("days {a}-{b}"),
        (Some(a), _) => format!("day {a}"),
        _ => "no day".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(auc: Option<f64>, logloss: f64) -> TuneTrial {
        TuneTrial {
            auc,
            logloss,
            ..Default::default()
        }
    }

    #[test]
    fn the_highest_auc_wins_and_logloss_breaks_near_ties() {
        assert_eq!(choose(&[]), None);
        assert_eq!(choose(&[t(Some(0.70), 0.3), t(Some(0.72), 0.4)]), Some(1));
        // Within the tie band, the lower LogLoss.
        let near = [t(Some(0.72), 0.35), t(Some(0.72 - AUC_TIE / 2.0), 0.30)];
        assert_eq!(choose(&near), Some(1));
        // Equal in both: the earlier (the session's own values come first).
        assert_eq!(choose(&[t(Some(0.7), 0.3), t(Some(0.7), 0.3)]), Some(0));
        // A failed or undefined trial never beats a scored one.
        let mut failed = t(Some(0.9), 0.1);
        failed.failed = Some("loss became NaN".into());
        assert_eq!(choose(&[failed, t(Some(0.6), 0.5)]), Some(1));
        assert_eq!(choose(&[t(None, 0.2), t(Some(0.6), 0.5)]), Some(1));
        // Without any AUC (a one-class day), LogLoss alone.
        assert_eq!(choose(&[t(None, 0.4), t(None, 0.2)]), Some(1));
    }
}
