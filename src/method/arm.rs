//! One arm: its live models and the state it carries between stages and across a resume.

use serde::{Deserialize, Serialize};

use crate::num;
use crate::protocol::ArmKind;
use crate::train::{TrainConfig, Trainer};

/// One arm's live models and state.
pub struct Arm {
    pub student: Trainer,
    /// The arm's own co-distilled teacher (crossadapt variants with an asymmetric teacher).
    pub teacher: Option<Trainer>,
    pub state: ArmState,
}

impl Arm {
    pub fn new(kind: ArmKind, model: String, student: Trainer, teacher: Option<Trainer>) -> Arm {
        Arm {
            student,
            teacher,
            state: ArmState::new(kind, model),
        }
    }

    pub fn kind(&self) -> ArmKind {
        self.state.kind
    }

    pub fn name(&self) -> String {
        self.state.name()
    }

    /// The arm's served logits from its student's raw `logits`: shifted by its calibration
    /// intercept (`online.calibrate`), unchanged without one.
    pub fn served(&self, logits: Vec<f32>) -> Vec<f32> {
        super::calibration::served(logits, self.state.calibration)
    }
}

/// The state of one arm carried between stages and across a resume (a checkpoint's
/// `state.json` lists one per arm).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmState {
    /// Written as the arm's name.
    #[serde(rename = "name")]
    pub kind: ArmKind,
    pub model: String,
    #[serde(default, with = "num")]
    pub offline_seconds: f64,
    #[serde(default)]
    pub offline_samples: u64,
    /// Process CPU seconds of the offline stage (`None` in checkpoints written before it was
    /// measured).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub offline_cpu_seconds: Option<f64>,
    /// Why the arm failed (a diverged loss, offline or online); a failed arm is skipped from
    /// then on, also after a resume.
    #[serde(default)]
    pub failed: Option<String>,
    /// Mean log-losses of the arm's teacher and student on the last evaluated day, for the
    /// stale-teacher drift signal.
    #[serde(default, with = "num::opt")]
    pub last_teacher_loss: Option<f64>,
    #[serde(default, with = "num::opt")]
    pub last_student_loss: Option<f64>,
    /// `crossadapt-matched`: the drift weight the adaptive rule produced on each online day
    /// so far (its mean over the day's batches), from which the next days' fixed level is
    /// taken. Empty for every other arm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_weights: Vec<DayWeight>,
    /// `online.calibrate`: the intercept added to the student's logit when it is scored (fitted
    /// on the last online day it trained on, `method::calibration`); 0 without calibration and
    /// before the first online day.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub calibration: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// The adaptive rule's drift weight of one online day.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DayWeight {
    pub day: u32,
    #[serde(with = "num")]
    pub weight: f64,
}

/// The matched arm's drift weight for online day `day`: the mean of the rule's weights on the
/// days before it, or `None` before any (the caller then uses the no-drift value). Only
/// earlier days count, so a day's own measurement never sets its level.
pub fn matched_weight(history: &[DayWeight], day: u32) -> Option<f64> {
    let past: Vec<f64> = history
        .iter()
        .filter(|w| w.day < day)
        .map(|w| w.weight)
        .collect();
    (!past.is_empty()).then(|| past.iter().sum::<f64>() / past.len() as f64)
}

/// Records the rule's weight of `day`, replacing an earlier entry of the same day (a day
/// replayed after a resume).
pub fn record_rule_weight(history: &mut Vec<DayWeight>, day: u32, weight: f64) {
    history.retain(|w| w.day != day);
    history.push(DayWeight { day, weight });
    history.sort_by_key(|w| w.day);
}

impl ArmState {
    pub fn new(kind: ArmKind, model: String) -> ArmState {
        ArmState {
            kind,
            model,
            offline_seconds: 0.0,
            offline_samples: 0,
            offline_cpu_seconds: None,
            failed: None,
            last_teacher_loss: None,
            last_student_loss: None,
            rule_weights: Vec::new(),
            calibration: 0.0,
        }
    }

    pub fn name(&self) -> String {
        self.kind.to_string()
    }
}

/// An independent copy of a trainer (weights and optimiser state), through its checkpoint
/// format so a copy is exactly what a resume would see.
pub fn clone_trainer(t: &Trainer, cfg: &TrainConfig) -> anyhow::Result<Trainer> {
    use anyhow::Context;
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let path = dir.path().join("model.safetensors");
    t.save(&path)?;
    Trainer::load(&path, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matched_weight_is_the_mean_of_earlier_days_only() {
        let mut h = Vec::new();
        assert_eq!(matched_weight(&h, 12), None);
        record_rule_weight(&mut h, 12, 0.2);
        // Day 12's own weight does not set day 12's level.
        assert_eq!(matched_weight(&h, 12), None);
        assert_eq!(matched_weight(&h, 13), Some(0.2));
        record_rule_weight(&mut h, 13, 0.6);
        record_rule_weight(&mut h, 14, 1.0);
        assert!((matched_weight(&h, 14).unwrap() - 0.4).abs() < 1e-12);
        // A later day never counts, whatever is on file.
        assert!((matched_weight(&h, 13).unwrap() - 0.2).abs() < 1e-12);
        // A replayed day replaces its entry.
        record_rule_weight(&mut h, 13, 0.2);
        assert_eq!(h.len(), 3);
        assert!((matched_weight(&h, 14).unwrap() - 0.2).abs() < 1e-12);
    }
}
