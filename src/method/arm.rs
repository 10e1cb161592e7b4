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
}

impl ArmState {
    pub fn new(kind: ArmKind, model: String) -> ArmState {
        ArmState {
            kind,
            model,
            offline_seconds: 0.0,
            offline_samples: 0,
            failed: None,
            last_teacher_loss: None,
            last_student_loss: None,
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
