//! The headless report: a serde view of the [`Ledger`], so a replayed session yields the same
//! report as the live run. Nothing here folds records or computes a comparison; the verdict is
//! the ledger's.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::event::{EvalMetrics, FieldProjection, Record};
use super::gate::{GateDay, GateStatus};
pub use super::ledger::{Headline, RECOVERY_DAYS};
use super::ledger::{HoldoutEntry, Ledger};
use crate::num;

/// Version of the report's JSON layout.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// The resolved session config.
    pub config: serde_json::Value,
    #[serde(default, with = "num::opt")]
    pub teacher_seconds: Option<f64>,
    pub arms: Vec<ArmReport>,
    /// 1A per field (of the first crossadapt arm that projected).
    pub projection: Vec<FieldProjection>,
    pub headline: Headline,
    pub drift: Vec<DriftRow>,
    /// The validation protocol that chose the arms' values (`run --tune`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<super::tune::Tuning>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    pub name: String,
    pub model: String,
    /// Offline wall seconds, evaluation excluded.
    #[serde(with = "num")]
    pub offline_seconds: f64,
    pub samples_trained: u64,
    /// Evaluated on the first online day, before training on it.
    pub offline: Option<EvalMetrics>,
    pub online: Vec<DayRow>,
    /// Offline training throughput, samples per second (arms that trained offline).
    #[serde(default, with = "num::opt")]
    pub offline_samples_per_sec: Option<f64>,
    /// Mean training throughput over the online days.
    #[serde(default, with = "num::opt")]
    pub online_samples_per_sec: Option<f64>,
    /// Online training seconds, the co-distilled teacher's steps included.
    #[serde(default, with = "num")]
    pub online_seconds: f64,
    /// Total compute: offline plus online training seconds (`offline_seconds` is the time to
    /// switch).
    #[serde(default, with = "num")]
    pub total_seconds: f64,
    /// Time to switch and total compute as fractions of scratch's.
    #[serde(default, with = "num::opt")]
    pub time_vs_scratch: Option<f64>,
    #[serde(default, with = "num::opt")]
    pub total_vs_scratch: Option<f64>,
    /// Time to switch and total compute as fractions of retrain's (the full retraining).
    #[serde(default, with = "num::opt")]
    pub time_vs_retrain: Option<f64>,
    #[serde(default, with = "num::opt")]
    pub total_vs_retrain: Option<f64>,
    /// The migration gate against the incumbent (student arms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateStatus>,
    /// Online days until the gate first said SWITCH, the switch day included; `null` when it
    /// never did in the online window (student arms; absent without a gate).
    #[serde(default)]
    pub days_to_switch: Option<u32>,
    /// The online day the gate first said SWITCH.
    #[serde(default)]
    pub switch_day: Option<u32>,
    /// Training seconds until the switch (offline, plus online training before the switch day).
    #[serde(default, with = "num::opt")]
    pub seconds_to_switch: Option<f64>,
    /// Sum over the online days before the switch (all of them when it never switched) of
    /// `max(0, incumbent AUC - arm AUC)`.
    #[serde(default, with = "num::opt")]
    pub degradation_area: Option<f64>,
    /// Process CPU seconds: offline, online, in total and until the switch (`null` in reports
    /// of logs written before CPU time was measured). The ratios above are of CPU seconds
    /// when these exist.
    #[serde(default, with = "num::opt")]
    pub offline_cpu_seconds: Option<f64>,
    #[serde(default, with = "num::opt")]
    pub online_cpu_seconds: Option<f64>,
    #[serde(default, with = "num::opt")]
    pub total_cpu_seconds: Option<f64>,
    #[serde(default, with = "num::opt")]
    pub cpu_seconds_to_switch: Option<f64>,
    /// Ratios not given because a figure was under 0.25 s of CPU: too short to time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub too_short_to_time: Vec<String>,
    /// The final test slice (`split.holdout`), scored once after the last online day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutEntry>,
    pub failed: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayRow {
    pub day: u32,
    pub metrics: EvalMetrics,
    #[serde(with = "num")]
    pub samples_per_sec: f64,
    pub student_updates: u32,
    pub teacher_updates: u32,
    /// The day's mean distillation weight `a` (arms that distil).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub distill_weight: Option<f64>,
    /// The served-logit intercept the day was scored with (`online.calibrate` on).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub calibration: Option<f64>,
    /// `crossadapt-matched`'s fixed drift weight of the day (the mean of its past rule weights).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub matched_weight: Option<f64>,
    /// The day's gate evidence against the incumbent (student arms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateDay>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftRow {
    pub day: u32,
    #[serde(with = "num")]
    pub weight: f64,
    #[serde(with = "num")]
    pub distill_weight: f64,
    #[serde(with = "num")]
    pub replay_ratio: f64,
    #[serde(with = "num")]
    pub label_rate: f64,
}

impl Report {
    /// The report of a ledger; `shock_day` comes from the data source's config when it has one.
    pub fn from_ledger(
        config: serde_json::Value,
        ledger: &Ledger,
        shock_day: Option<u32>,
    ) -> Report {
        let verdict = ledger.verdict(shock_day);
        let arms = ledger
            .arms
            .iter()
            .zip(&verdict.arms)
            .map(|(a, v)| ArmReport {
                name: a.name.clone(),
                model: a.model.clone(),
                offline_seconds: v.offline_seconds,
                samples_trained: v.offline_samples,
                offline: v.offline.clone(),
                online: a
                    .days
                    .iter()
                    .map(|(day, d)| DayRow {
                        day: *day,
                        metrics: d.metrics.clone(),
                        samples_per_sec: d.samples_per_sec,
                        student_updates: d.student_updates,
                        teacher_updates: d.teacher_updates,
                        distill_weight: d.distill_weight,
                        calibration: d.calibration,
                        matched_weight: d.matched_weight,
                        gate: a.gate.get(day).cloned(),
                    })
                    .collect(),
                offline_samples_per_sec: v.offline_samples_per_sec,
                online_samples_per_sec: v.online_samples_per_sec,
                online_seconds: v.online_seconds,
                total_seconds: v.total_seconds,
                time_vs_scratch: v.time_vs_scratch,
                total_vs_scratch: v.total_vs_scratch,
                time_vs_retrain: v.time_vs_retrain,
                total_vs_retrain: v.total_vs_retrain,
                gate: v.gate.clone(),
                days_to_switch: v.days_to_switch,
                switch_day: v.switch_day,
                seconds_to_switch: v.seconds_to_switch,
                degradation_area: v.degradation_area,
                offline_cpu_seconds: v.offline_cpu_seconds,
                online_cpu_seconds: v.online_cpu_seconds,
                total_cpu_seconds: v.total_cpu_seconds,
                cpu_seconds_to_switch: v.cpu_seconds_to_switch,
                too_short_to_time: v.too_short_to_time.clone(),
                holdout: v.holdout.clone(),
                failed: a.failed.clone(),
            })
            .collect();
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            config,
            teacher_seconds: ledger.teacher_seconds,
            arms,
            projection: ledger
                .arms
                .iter()
                .find(|a| !a.projection.is_empty())
                .map(|a| a.projection.clone())
                .unwrap_or_default(),
            headline: verdict.headline,
            drift: ledger
                .drift
                .values()
                .map(|d| DriftRow {
                    day: d.day,
                    weight: d.weight,
                    distill_weight: d.distill_weight,
                    replay_ratio: d.replay_ratio,
                    label_rate: d.label_rate,
                })
                .collect(),
            tuning: ledger.tuning.clone(),
        }
    }

    /// The report of a stream of records (a log).
    pub fn from_records(
        config: serde_json::Value,
        records: &[Record],
        shock_day: Option<u32>,
    ) -> Report {
        Report::from_ledger(config, &Ledger::of(records), shock_day)
    }

    /// The summary table printed after a headless run.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<22} {:>9} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}",
            "arm",
            "offline s",
            "samples",
            "offline/s",
            "AUC",
            "LogLoss",
            "bias",
            "NE",
            "online AUC",
            "online/s"
        );
        for a in &self.arms {
            let m = a.offline.clone().unwrap_or_default();
            let online = a.online.iter().filter_map(|d| d.metrics.auc);
            let n = a.online.iter().filter(|d| d.metrics.auc.is_some()).count();
            let online_auc = (n > 0).then(|| online.sum::<f64>() / n as f64);
            let _ = writeln!(
                s,
                "{:<22} {:>9.1} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}",
                a.name,
                a.offline_seconds,
                a.samples_trained,
                fmt_opt(a.offline_samples_per_sec, 0),
                fmt_opt(m.auc, 4),
                num::fixed(m.logloss, 4),
                num::signed(m.bias, 3),
                num::fixed(m.ne, 4),
                fmt_opt(online_auc, 4),
                fmt_opt(a.online_samples_per_sec, 0),
            );
        }
        for a in &self.arms {
            if let Some(h) = &a.holdout {
                let m = &h.metrics;
                let _ = writeln!(
                    s,
                    "holdout (days {}, scored once at the end) {}: AUC {} · LogLoss {} · bias {}",
                    day_list(&h.days),
                    a.name,
                    fmt_opt(m.auc, 4),
                    num::fixed(m.logloss, 4),
                    num::signed(m.bias, 3)
                );
            }
        }
        // Each arm's two costs and its gate are printed by the day printer's summary, which a
        // live headless run and a headless replay share; this table does not repeat them.
        let h = &self.headline;
        let short = self.arms.iter().any(|a| {
            a.name == "crossadapt" && a.too_short_to_time.iter().any(|n| n == "time_vs_scratch")
        });
        let time = match h.time_fraction_vs_scratch {
            None if short => "too short to time".to_string(),
            t => fmt_opt(t, 3),
        };
        let _ = writeln!(
            s,
            "crossadapt offline time / scratch's: {time}   crossadapt offline AUC - kd's: {}",
            h.offline_auc_minus_kd
                .map_or("n/a".into(), |v| num::signed(v, 4))
        );
        if let Some(day) = h.shock_day {
            let parts: Vec<String> = h
                .post_shock_mean_auc
                .iter()
                .map(|(k, v)| format!("{k} {}", num::fixed(*v, 4)))
                .collect();
            let _ = writeln!(
                s,
                "mean AUC over the {RECOVERY_DAYS} days from the shock (day {day}): {}",
                parts.join(", ")
            );
        }
        let parts: Vec<String> = h
            .online_mean_abs_bias
            .iter()
            .map(|(k, v)| format!("{k} {}", num::fixed(*v, 3)))
            .collect();
        let _ = writeln!(s, "mean |bias| online: {}", parts.join(", "));
        s
    }
}

/// `22-23`, or `23` for one day.
pub fn day_list(days: &[u32]) -> String {
    match (days.first(), days.last()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "none".into(),
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| num::fixed(v, digits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::{ArmInfo, DayPlan, EngineEvent, Params, EVENT_SCHEMA_VERSION};

    fn rec(seq: u64, event: EngineEvent) -> Record {
        Record {
            v: EVENT_SCHEMA_VERSION,
            seq,
            t: seq as f64,
            event,
        }
    }

    fn metrics(auc: f64, bias: f64) -> EvalMetrics {
        EvalMetrics {
            auc: Some(auc),
            logloss: 0.3,
            bias,
            ne: 0.9,
            gauc: None,
            rows: 100,
        }
    }

    fn known_log() -> Vec<Record> {
        let names = ["scratch", "kd", "crossadapt"];
        let mut out = vec![rec(
            0,
            EngineEvent::SessionStarted {
                session: "s".into(),
                name: "n".into(),
                arms: names
                    .iter()
                    .map(|n| ArmInfo {
                        name: n.to_string(),
                        model: "deepfm".into(),
                    })
                    .collect(),
                teacher: "mlp".into(),
                days: DayPlan::default(),
                params: Params {
                    sampling_ratio: 0.1,
                    replay_ratio: 0.1,
                    teacher_interval: 10,
                    distill_min: 0.2,
                    distill_max: 0.7,
                },
                seed: 1,
            },
        )];
        let offline = [(40.0, 0.70), (36.0, 0.71), (10.0, 0.715)];
        for (name, (secs, auc)) in names.iter().zip(offline) {
            out.push(rec(
                out.len() as u64,
                EngineEvent::OfflineResult {
                    arm: name.to_string(),
                    seconds: secs,
                    samples: 1000,
                    samples_per_sec: Some(1000.0 / secs),
                    metrics: metrics(auc, 0.0),
                    cpu_seconds: None,
                },
            ));
        }
        for day in 10..14u32 {
            for (i, name) in names.iter().enumerate() {
                out.push(rec(
                    out.len() as u64,
                    EngineEvent::DayMetrics {
                        arm: name.to_string(),
                        day,
                        metrics: metrics(0.70 + 0.01 * i as f64, 0.1 * (2 - i) as f64),
                        train_seconds: 1.0,
                        samples: 100,
                        samples_per_sec: 100.0 * (i + 1) as f64,
                        student_updates: 10,
                        teacher_updates: 1,
                        distill_weight: None,
                        calibration: None,
                        matched_weight: None,
                        cpu_seconds: None,
                    },
                ));
            }
        }
        out
    }

    #[test]
    fn headline_figures_follow_from_a_known_log() {
        let r = Report::from_records(serde_json::Value::Null, &known_log(), Some(11));
        assert!((r.headline.time_fraction_vs_scratch.unwrap() - 0.25).abs() < 1e-12);
        assert!((r.headline.offline_auc_minus_kd.unwrap() - 0.005).abs() < 1e-9);
        assert_eq!(r.headline.shock_day, Some(11));
        // Days 11, 12, 13 from the shock on.
        assert!((r.headline.post_shock_mean_auc["crossadapt"] - 0.72).abs() < 1e-9);
        assert!((r.headline.online_mean_abs_bias["kd"] - 0.1).abs() < 1e-9);
        assert_eq!(r.arms[2].online.len(), 4);
        assert_eq!(r.arms[2].online_samples_per_sec, Some(300.0));
        assert_eq!(r.arms[0].offline_samples_per_sec, Some(25.0));
        assert_eq!(r.arms[2].offline_samples_per_sec, Some(100.0));
        let table = r.table();
        assert!(table.contains("offline/s"));
        let crossadapt = table.lines().find(|l| l.starts_with("crossadapt")).unwrap();
        assert!(
            crossadapt.split_whitespace().any(|c| c == "100"),
            "{crossadapt}"
        );
        assert!(table.contains("crossadapt offline time / scratch's: 0.250"));
    }

    #[test]
    fn a_shock_outside_the_online_days_is_not_reported() {
        let r = Report::from_records(serde_json::Value::Null, &known_log(), Some(30));
        assert_eq!(r.headline.shock_day, None);
        assert!(r.headline.post_shock_mean_auc.is_empty());
    }
}
