//! Where a run is: the [`Stage`] of its plan and the [`Lifecycle`] of the session. These are
//! the only two names for it; each has its text written once, in `Display`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The stages of a session, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    Setup,
    /// The teacher trains on the history days (skipped when a checkpoint is loaded).
    TeacherPretrain,
    /// 1A: embedding projection, no training steps.
    Transfer,
    /// 1B: dense-only distillation with frozen embeddings.
    DenseDistill,
    /// 1C: joint distillation.
    JointDistill,
    /// Offline training of a baseline arm (scratch, kd, ablations without sampling).
    OfflineTrain,
    /// Evaluation of every arm on the first day after the retained window.
    OfflineEval,
    /// Simulated online days.
    Online,
    Done,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Setup => "setup",
            Stage::TeacherPretrain => "teacher pretraining",
            Stage::Transfer => "1A transfer",
            Stage::DenseDistill => "1B dense distill",
            Stage::JointDistill => "1C joint distill",
            Stage::OfflineTrain => "offline training",
            Stage::OfflineEval => "offline evaluation",
            Stage::Online => "online",
            Stage::Done => "done",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The life of a session, as its records tell it (and as `status.json` stores it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Created; the engine has not started yet.
    #[default]
    Created,
    Running,
    /// A pause was applied and takes effect at the next safe point (the end of the arm's day).
    Pausing,
    Paused,
    Done,
    /// Stopped on an error (the reason is in the `Error` record).
    Failed,
    /// Stopped before the end (quit, crash, kill); resumable from its latest checkpoint.
    Interrupted,
}

impl Lifecycle {
    pub fn label(self) -> &'static str {
        match self {
            Lifecycle::Created => "created",
            Lifecycle::Running => "running",
            Lifecycle::Pausing => "pausing",
            Lifecycle::Paused => "paused",
            Lifecycle::Done => "done",
            Lifecycle::Failed => "failed",
            Lifecycle::Interrupted => "interrupted",
        }
    }

    /// A process is (or claims to be) driving the session.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Lifecycle::Running | Lifecycle::Pausing | Lifecycle::Paused
        )
    }

    /// The run reached an end (its own or an error).
    pub fn is_over(self) -> bool {
        matches!(self, Lifecycle::Done | Lifecycle::Failed)
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}
