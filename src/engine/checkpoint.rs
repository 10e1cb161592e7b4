//! Checkpoint content: `state.json` plus every model with its optimiser state. The store
//! (`session`) makes the folder appear atomically and verifies it; this file decides what is in it.

use std::path::Path;

use anyhow::Context;

use super::state::{CheckpointState, STATE_SCHEMA_VERSION};
use crate::data::FeatureSpec;
use crate::method::Arm;
use crate::train::{TrainConfig, Trainer};

const STATE_FILE: &str = "state.json";
const TEACHER_FILE: &str = "teacher.safetensors";

fn student_file(i: usize) -> String {
    format!("arm-{i}-student.safetensors")
}

fn arm_teacher_file(i: usize) -> String {
    format!("arm-{i}-teacher.safetensors")
}

/// Writes the run's state and models into `dir` (a staging folder).
pub(crate) fn write(
    dir: &Path,
    state: &CheckpointState,
    teacher: Option<&Trainer>,
    arms: &[Arm],
) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(state).context("cannot serialise the run state")?;
    std::fs::write(dir.join(STATE_FILE), json)
        .with_context(|| format!("cannot write {}", dir.join(STATE_FILE).display()))?;
    if let Some(t) = teacher {
        t.save(&dir.join(TEACHER_FILE))?;
    }
    for (i, arm) in arms.iter().enumerate() {
        arm.student.save(&dir.join(student_file(i)))?;
        if let Some(t) = &arm.teacher {
            t.save(&dir.join(arm_teacher_file(i)))?;
        }
    }
    Ok(())
}

/// A run as a checkpoint left it.
pub(crate) struct Restored {
    pub state: CheckpointState,
    pub teacher: Trainer,
    pub arms: Vec<Arm>,
}

/// Reads a checkpoint folder back; every failure names the file.
pub(crate) fn read(
    dir: &Path,
    cfg: &TrainConfig,
    features: &FeatureSpec,
    vocabulary: Option<&str>,
) -> anyhow::Result<Restored> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read checkpoint state {}", path.display()))?;
    let state: CheckpointState = serde_json::from_str(&text)
        .with_context(|| format!("checkpoint state {} is damaged", path.display()))?;
    anyhow::ensure!(
        state.schema_version <= STATE_SCHEMA_VERSION,
        "checkpoint state {} has schema version {}, newer than this crossadapt understands ({STATE_SCHEMA_VERSION})",
        path.display(),
        state.schema_version
    );
    let teacher = Trainer::load(&dir.join(TEACHER_FILE), cfg)?;
    let vocab: Vec<usize> = features.cat.iter().map(|f| f.vocab).collect();
    // Checkpoints written before the vocabulary was recorded are checked by sizes alone.
    anyhow::ensure!(
        teacher.model().embeddings().vocab == vocab
            && teacher.vocabulary().is_none_or(|fp| Some(fp) == vocabulary),
        "checkpoint {} was written for another vocabulary than this data's",
        dir.display()
    );
    let mut arms = Vec::with_capacity(state.arms.len());
    for (i, arm_state) in state.arms.iter().enumerate() {
        let student = Trainer::load(&dir.join(student_file(i)), cfg)?;
        let teacher_path = dir.join(arm_teacher_file(i));
        let teacher = if teacher_path.exists() {
            Some(Trainer::load(&teacher_path, cfg)?)
        } else {
            None
        };
        arms.push(Arm {
            student,
            teacher,
            state: arm_state.clone(),
        });
    }
    Ok(Restored {
        state,
        teacher,
        arms,
    })
}
