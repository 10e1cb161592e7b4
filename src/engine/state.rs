//! What a checkpoint holds besides the models, and the per-arm record the summary is built from.

use serde::{Deserialize, Serialize};

use super::events::{ArmSummary, EvalMetrics, FieldProjection, Params};

/// Version of `state.json` inside a checkpoint.
pub const STATE_SCHEMA_VERSION: u32 = 1;

/// How far a run has come; checkpoints are only taken at these points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// The teacher is trained (or loaded); no arm has been built.
    TeacherReady,
    /// Every arm finished its offline stage; `next` online days (index into the plan) are done,
    /// and on day `next` the first `arms_done` arms have finished.
    Online {
        next: usize,
        #[serde(default)]
        arms_done: usize,
    },
    Done,
}

/// One online day of one arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DayRecord {
    pub day: u32,
    pub metrics: EvalMetrics,
    pub train_seconds: f64,
    pub samples: u64,
}

/// Everything the summary needs about one arm.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmRecord {
    pub name: String,
    pub model: String,
    pub offline_seconds: f64,
    pub offline_samples: u64,
    pub offline: Option<EvalMetrics>,
    pub projection: Vec<FieldProjection>,
    pub days: Vec<DayRecord>,
    pub failed: Option<String>,
    /// Mean log-losses of the arm's teacher and student on the last evaluated day, for the
    /// stale-teacher drift signal.
    pub last_teacher_loss: Option<f64>,
    pub last_student_loss: Option<f64>,
}

/// `state.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub schema_version: u32,
    pub phase: Phase,
    pub params: Params,
    pub arms: Vec<ArmRecord>,
    /// Engine seconds at the checkpoint.
    pub clock: f64,
    /// Seconds the teacher took (0 when loaded).
    pub teacher_seconds: f64,
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// The verdict per arm: its own figures plus the comparisons with scratch (time) and kd
/// (AUC, |bias|).
pub fn summarise(arms: &[ArmRecord]) -> Vec<ArmSummary> {
    let mut out: Vec<ArmSummary> = arms
        .iter()
        .map(|a| ArmSummary {
            arm: a.name.clone(),
            model: a.model.clone(),
            offline_seconds: a.offline_seconds,
            offline_samples: a.offline_samples,
            offline: a.offline.clone(),
            online_mean_auc: mean(a.days.iter().filter_map(|d| d.metrics.auc)),
            online_mean_logloss: mean(a.days.iter().map(|d| d.metrics.logloss)),
            online_mean_abs_bias: mean(a.days.iter().map(|d| d.metrics.bias.abs())),
            failed: a.failed.clone(),
            ..Default::default()
        })
        .collect();
    let find = |name: &str| out.iter().find(|s| s.arm == name).cloned();
    let scratch = find("scratch");
    let kd = find("kd");
    for s in &mut out {
        if let Some(sc) = &scratch {
            if sc.offline_seconds > 0.0 && s.offline_samples > 0 {
                s.time_vs_scratch = Some(s.offline_seconds / sc.offline_seconds);
            }
        }
        if let Some(kd) = &kd {
            s.auc_vs_kd = s
                .online_mean_auc
                .zip(kd.online_mean_auc)
                .map(|(a, b)| a - b);
            s.abs_bias_vs_kd = s
                .online_mean_abs_bias
                .zip(kd.online_mean_abs_bias)
                .map(|(a, b)| a - b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(name: &str, secs: f64, aucs: &[f64], biases: &[f64]) -> ArmRecord {
        ArmRecord {
            name: name.into(),
            model: "m".into(),
            offline_seconds: secs,
            offline_samples: if secs > 0.0 { 100 } else { 0 },
            days: aucs
                .iter()
                .zip(biases)
                .enumerate()
                .map(|(i, (&auc, &bias))| DayRecord {
                    day: i as u32,
                    metrics: EvalMetrics {
                        auc: Some(auc),
                        bias,
                        ..Default::default()
                    },
                    train_seconds: 1.0,
                    samples: 10,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn summary_compares_time_with_scratch_and_quality_with_kd() {
        let s = summarise(&[
            arm("scratch", 40.0, &[0.70, 0.72], &[0.1, 0.1]),
            arm("kd", 30.0, &[0.71, 0.73], &[0.2, -0.2]),
            arm("crossadapt", 10.0, &[0.73, 0.75], &[0.05, -0.05]),
            arm("incumbent", 0.0, &[0.72, 0.72], &[0.0, 0.0]),
        ]);
        let ca = &s[2];
        assert!((ca.time_vs_scratch.unwrap() - 0.25).abs() < 1e-12);
        assert!((ca.auc_vs_kd.unwrap() - 0.02).abs() < 1e-9);
        assert!((ca.abs_bias_vs_kd.unwrap() + 0.15).abs() < 1e-9);
        assert_eq!(
            s[3].time_vs_scratch, None,
            "no offline training, no time ratio"
        );
    }
}
