//! The headless report: one more reader of the event stream. Built from the records alone, so a
//! replayed session yields the same report as the live run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::events::{EngineEvent, EvalMetrics, FieldProjection, Record};

/// Version of the report's JSON layout.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Days after a shock over which recovery is measured.
pub const RECOVERY_DAYS: usize = 3;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// The resolved session config.
    pub config: serde_json::Value,
    pub teacher_seconds: Option<f64>,
    pub arms: Vec<ArmReport>,
    /// 1A per field (of the first crossadapt arm that projected).
    pub projection: Vec<FieldProjection>,
    pub headline: Headline,
    pub drift: Vec<DriftRow>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    pub name: String,
    pub model: String,
    /// Offline wall seconds, evaluation excluded.
    pub offline_seconds: f64,
    pub samples_trained: u64,
    /// Evaluated on the first online day, before training on it.
    pub offline: Option<EvalMetrics>,
    pub online: Vec<DayRow>,
    /// Mean training throughput over the online days.
    pub online_samples_per_sec: Option<f64>,
    pub failed: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayRow {
    pub day: u32,
    pub metrics: EvalMetrics,
    pub samples_per_sec: f64,
    pub student_updates: u32,
    pub teacher_updates: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftRow {
    pub day: u32,
    pub weight: f64,
    pub distill_weight: f64,
    pub replay_ratio: f64,
    pub label_rate: f64,
}

/// The figures a switch decision rests on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// crossadapt's offline wall time as a fraction of scratch's.
    pub time_fraction_vs_scratch: Option<f64>,
    /// crossadapt's offline AUC minus kd's.
    pub offline_auc_minus_kd: Option<f64>,
    /// The shock day, when the source has one inside the online window.
    pub shock_day: Option<u32>,
    /// Mean AUC per arm over the `RECOVERY_DAYS` days from the shock on.
    pub post_shock_mean_auc: BTreeMap<String, f64>,
    /// Mean |bias| per arm over all online days.
    pub online_mean_abs_bias: BTreeMap<String, f64>,
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

impl Report {
    /// Reads the stream; `shock_day` comes from the data source's config when it has one.
    pub fn from_records(
        config: serde_json::Value,
        records: &[Record],
        shock_day: Option<u32>,
    ) -> Report {
        let mut r = Report {
            schema_version: REPORT_SCHEMA_VERSION,
            config,
            ..Default::default()
        };
        let mut arms: Vec<ArmReport> = Vec::new();
        fn arm<'a>(arms: &'a mut Vec<ArmReport>, name: &str) -> &'a mut ArmReport {
            if let Some(i) = arms.iter().position(|a| a.name == name) {
                return &mut arms[i];
            }
            arms.push(ArmReport {
                name: name.to_string(),
                ..Default::default()
            });
            arms.last_mut().expect("just pushed")
        }
        for rec in records {
            match &rec.event {
                EngineEvent::SessionStarted { arms: infos, .. } => {
                    for info in infos {
                        arm(&mut arms, &info.name).model = info.model.clone();
                    }
                }
                EngineEvent::StageFinished {
                    stage: super::Stage::TeacherPretrain,
                    seconds,
                    ..
                } => r.teacher_seconds = Some(*seconds),
                EngineEvent::Projection { fields, .. } if r.projection.is_empty() => {
                    r.projection = fields.clone();
                }
                EngineEvent::OfflineResult {
                    arm: name,
                    seconds,
                    samples,
                    metrics,
                } => {
                    let a = arm(&mut arms, name);
                    a.offline_seconds = *seconds;
                    a.samples_trained = *samples;
                    a.offline = Some(metrics.clone());
                }
                EngineEvent::DayMetrics {
                    arm: name,
                    day,
                    metrics,
                    samples_per_sec,
                    student_updates,
                    teacher_updates,
                    ..
                } => {
                    let a = arm(&mut arms, name);
                    // A resumed day replaces the row of its interrupted first attempt.
                    a.online.retain(|row| row.day != *day);
                    a.online.push(DayRow {
                        day: *day,
                        metrics: metrics.clone(),
                        samples_per_sec: *samples_per_sec,
                        student_updates: *student_updates,
                        teacher_updates: *teacher_updates,
                    });
                }
                EngineEvent::ArmFailed { arm: name, message } => {
                    arm(&mut arms, name).failed = Some(message.clone());
                }
                EngineEvent::Drift {
                    day,
                    batch: None,
                    weight,
                    distill_weight,
                    replay_ratio,
                    label_rate,
                    ..
                } => {
                    r.drift.retain(|row| row.day != *day);
                    r.drift.push(DriftRow {
                        day: *day,
                        weight: *weight,
                        distill_weight: *distill_weight,
                        replay_ratio: *replay_ratio,
                        label_rate: *label_rate,
                    });
                }
                _ => {}
            }
        }
        for a in &mut arms {
            let rates: Vec<f64> = a.online.iter().map(|d| d.samples_per_sec).collect();
            a.online_samples_per_sec = mean(&rates);
        }
        r.headline = headline(&arms, shock_day);
        r.arms = arms;
        r
    }

    /// The summary table printed after a headless run.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<22} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}",
            "arm", "offline s", "samples", "AUC", "LogLoss", "bias", "NE", "online AUC", "online/s"
        );
        for a in &self.arms {
            let m = a.offline.clone().unwrap_or_default();
            let online: Vec<f64> = a.online.iter().filter_map(|d| d.metrics.auc).collect();
            let _ = writeln!(
                s,
                "{:<22} {:>9.1} {:>10} {:>8} {:>8.4} {:>+8.3} {:>8.4} {:>10} {:>9}",
                a.name,
                a.offline_seconds,
                a.samples_trained,
                fmt_opt(m.auc, 4),
                m.logloss,
                m.bias,
                m.ne,
                fmt_opt(mean(&online), 4),
                fmt_opt(a.online_samples_per_sec, 0),
            );
        }
        let h = &self.headline;
        let _ = writeln!(
            s,
            "crossadapt offline time / scratch's: {}   crossadapt offline AUC - kd's: {}",
            fmt_opt(h.time_fraction_vs_scratch, 3),
            h.offline_auc_minus_kd
                .map_or("n/a".into(), |v| format!("{v:+.4}"))
        );
        if let Some(day) = h.shock_day {
            let parts: Vec<String> = h
                .post_shock_mean_auc
                .iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
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
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        let _ = writeln!(s, "mean |bias| online: {}", parts.join(", "));
        s
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

fn headline(arms: &[ArmReport], shock_day: Option<u32>) -> Headline {
    let find = |n: &str| arms.iter().find(|a| a.name == n);
    let mut h = Headline::default();
    if let (Some(ca), Some(sc)) = (find("crossadapt"), find("scratch")) {
        if sc.offline_seconds > 0.0 {
            h.time_fraction_vs_scratch = Some(ca.offline_seconds / sc.offline_seconds);
        }
    }
    if let (Some(ca), Some(kd)) = (find("crossadapt"), find("kd")) {
        let auc = |a: &ArmReport| a.offline.as_ref().and_then(|m| m.auc);
        h.offline_auc_minus_kd = auc(ca).zip(auc(kd)).map(|(a, b)| a - b);
    }
    let online_days: Vec<u32> = arms
        .first()
        .map(|a| a.online.iter().map(|d| d.day).collect())
        .unwrap_or_default();
    h.shock_day = shock_day.filter(|d| online_days.contains(d));
    for a in arms {
        let biases: Vec<f64> = a.online.iter().map(|d| d.metrics.bias.abs()).collect();
        if let Some(m) = mean(&biases) {
            h.online_mean_abs_bias.insert(a.name.clone(), m);
        }
        if let Some(shock) = h.shock_day {
            let aucs: Vec<f64> = a
                .online
                .iter()
                .filter(|d| d.day >= shock && d.day < shock + RECOVERY_DAYS as u32)
                .filter_map(|d| d.metrics.auc)
                .collect();
            if let Some(m) = mean(&aucs) {
                h.post_shock_mean_auc.insert(a.name.clone(), m);
            }
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{ArmInfo, DayPlan, Params, EVENT_SCHEMA_VERSION};

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
                    metrics: metrics(auc, 0.0),
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
        let table = r.table();
        assert!(table.contains("crossadapt offline time / scratch's: 0.250"));
    }

    #[test]
    fn a_shock_outside_the_online_days_is_not_reported() {
        let r = Report::from_records(serde_json::Value::Null, &known_log(), Some(30));
        assert_eq!(r.headline.shock_day, None);
        assert!(r.headline.post_shock_mean_auc.is_empty());
    }
}
