//! Checkpoint content: `state.json` plus every model with its optimiser state. The store
//! (`session`) makes the folder appear atomically and verifies it; this file decides what is in it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::state::{CheckpointState, STATE_SCHEMA_VERSION};
use crate::bundle::DataSchema;
use crate::data::{DaySource, FeatureSpec};
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

/// A checkpoint's content taken at one moment of the run: every file as bytes, except the
/// frozen teacher when an earlier checkpoint already holds it. Taking it costs one copy of the
/// models in memory; putting it on disk ([`Snapshot::write`]) can then happen on another
/// thread while the run goes on.
pub(crate) struct Snapshot {
    files: Vec<(String, Content)>,
}

enum Content {
    Bytes(Vec<u8>),
    /// The run's teacher is frozen once trained, so after the first checkpoint that holds it,
    /// later ones hard-link that file instead of writing it again: a session stores the teacher
    /// once however many day checkpoints it keeps, and each checkpoint folder still reads on
    /// its own. A failed link (another filesystem, the file replaced meanwhile) falls back to
    /// writing the bytes, which the snapshot therefore keeps.
    Link(PathBuf, Vec<u8>),
}

/// Takes the run's state and models (`teacher_from`: the teacher's file in the newest
/// checkpoint, to link rather than encode again).
pub(crate) fn snapshot(
    state: &CheckpointState,
    teacher: Option<&Trainer>,
    teacher_from: Option<&Path>,
    arms: &[Arm],
) -> anyhow::Result<Snapshot> {
    let json = serde_json::to_vec_pretty(state).context("cannot serialise the run state")?;
    let mut files = vec![(STATE_FILE.to_string(), Content::Bytes(json))];
    if let Some(t) = teacher {
        let bytes = t.encode()?;
        let content = match teacher_from {
            Some(from) => Content::Link(from.to_path_buf(), bytes),
            None => Content::Bytes(bytes),
        };
        files.push((TEACHER_FILE.to_string(), content));
    }
    for (i, arm) in arms.iter().enumerate() {
        files.push((student_file(i), Content::Bytes(arm.student.encode()?)));
        if let Some(t) = &arm.teacher {
            files.push((arm_teacher_file(i), Content::Bytes(t.encode()?)));
        }
    }
    Ok(Snapshot { files })
}

impl Snapshot {
    /// Writes the snapshot into `dir` (a staging folder, which the store syncs, checksums and
    /// renames into place) and returns the bytes written there (a linked teacher counts none).
    pub(crate) fn write(&self, dir: &Path) -> anyhow::Result<u64> {
        let mut written = 0u64;
        for (name, content) in &self.files {
            let path = dir.join(name);
            let bytes = match content {
                Content::Link(from, _) if std::fs::hard_link(from, &path).is_ok() => continue,
                Content::Link(_, bytes) | Content::Bytes(bytes) => bytes,
            };
            std::fs::write(&path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            written += bytes.len() as u64;
        }
        Ok(written)
    }
}

/// The teacher's file inside a checkpoint folder (what later checkpoints link to).
pub(crate) fn teacher_file(dir: &Path) -> std::path::PathBuf {
    dir.join(TEACHER_FILE)
}

/// A run as a checkpoint left it.
pub(crate) struct Restored {
    pub state: CheckpointState,
    pub teacher: Trainer,
    pub arms: Vec<Arm>,
}

/// The identity of a run's data as its source states it: what the source says it is, how many
/// days it has and its columns (the resolved data config is in the session's `config.toml`,
/// which the store fingerprints in each checkpoint's manifest). `sha256:` + hex SHA-256.
pub(crate) fn data_fingerprint(source: &dyn DaySource) -> String {
    let mut h = Sha256::new();
    h.update(b"crossadapt-data-v1\0");
    h.update(source.describe().as_bytes());
    h.update([0u8]);
    h.update((source.num_days() as u64).to_le_bytes());
    h.update(DataSchema::of_source(source).fingerprint().as_bytes());
    format!("sha256:{}", crate::bundle::stio::hex(&h.finalize()))
}

/// Reads a checkpoint folder back; every failure names the file. `data`: this run's
/// [`data_fingerprint`]; a checkpoint that records another is refused.
pub(crate) fn read(
    dir: &Path,
    cfg: &TrainConfig,
    features: &FeatureSpec,
    vocabulary: Option<&str>,
    data: &str,
) -> anyhow::Result<Restored> {
    let path = dir.join(STATE_FILE);
    let text = crate::atomic::read_text_limited(&path, crate::atomic::STATE_LIMIT)
        .with_context(|| format!("cannot read checkpoint state {}", path.display()))?;
    let state: CheckpointState = serde_json::from_str(&text)
        .with_context(|| format!("checkpoint state {} is damaged", path.display()))?;
    anyhow::ensure!(
        state.schema_version <= STATE_SCHEMA_VERSION,
        "checkpoint state {} has schema version {}, newer than this crossadapt understands ({STATE_SCHEMA_VERSION})",
        path.display(),
        state.schema_version
    );
    anyhow::ensure!(
        state.data.as_deref().is_none_or(|d| d == data),
        "checkpoint {} was written for other data than this session's (the data source changed since)",
        dir.display()
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
