//! The typed stream the engine emits and the commands it takes.
//!
//! Every reader of a run (the console, the headless printer, the session log, replay and the
//! tests) consumes [`Record`]s; operator [`EngineCommand`]s travel the other way and are logged
//! back as [`EngineEvent::Operator`] at the exact position where the engine applied them.

use serde::{Deserialize, Serialize};

/// Version of the event schema written in every log line.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// One line of `events.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Schema version of this line.
    pub v: u32,
    /// Position in the session's log, from 0, without gaps.
    pub seq: u64,
    /// Seconds of engine wall time since the session started (resumes continue the clock),
    /// used to pace replays.
    pub t: f64,
    pub event: EngineEvent,
}

/// Where a run is: stage, arm, day and batch. Used to place operator commands and checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<u32>,
    /// Batch index inside the stage (or day), from 0.
    #[serde(default)]
    pub batch: u64,
}

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

/// The parameters an operator may change mid-run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Share of each retained window the strategic sampler draws, in (0, 1].
    pub sampling_ratio: f64,
    /// Replay rows per online batch as a share of the batch, in [0, 1].
    pub replay_ratio: f64,
    /// The teacher steps every this many online batches (>= 1).
    pub teacher_interval: u32,
    /// Distillation weight at maximal drift.
    pub distill_min: f64,
    /// Distillation weight with no drift.
    pub distill_max: f64,
}

/// A partial change of [`Params`]; `None` leaves a value as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_interval: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill_max: Option<f64>,
}

impl Params {
    /// Checks every value's range; the message names the parameter.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.sampling_ratio > 0.0 && self.sampling_ratio <= 1.0) {
            return Err(format!(
                "sampling_ratio must be in (0, 1], got {}",
                self.sampling_ratio
            ));
        }
        if !(0.0..=1.0).contains(&self.replay_ratio) {
            return Err(format!(
                "replay_ratio must be in [0, 1], got {}",
                self.replay_ratio
            ));
        }
        if self.teacher_interval == 0 {
            return Err("teacher_interval must be at least 1".into());
        }
        for (name, v) in [
            ("distill_min", self.distill_min),
            ("distill_max", self.distill_max),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        if self.distill_min > self.distill_max {
            return Err(format!(
                "distill_min ({}) must not exceed distill_max ({})",
                self.distill_min, self.distill_max
            ));
        }
        Ok(())
    }

    /// The parameters after `patch`, validated.
    pub fn patched(&self, patch: &ParamPatch) -> Result<Params, String> {
        let p = Params {
            sampling_ratio: patch.sampling_ratio.unwrap_or(self.sampling_ratio),
            replay_ratio: patch.replay_ratio.unwrap_or(self.replay_ratio),
            teacher_interval: patch.teacher_interval.unwrap_or(self.teacher_interval),
            distill_min: patch.distill_min.unwrap_or(self.distill_min),
            distill_max: patch.distill_max.unwrap_or(self.distill_max),
        };
        p.validate()?;
        Ok(p)
    }
}

/// What an operator (or a script) asks of a running engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum EngineCommand {
    Pause,
    Resume,
    SetParams {
        patch: ParamPatch,
    },
    /// Write a checkpoint at the next safe point.
    Checkpoint,
    /// Checkpoint and stop; the session stays resumable.
    Stop,
}

/// The role an arm plays in the comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmInfo {
    pub name: String,
    pub model: String,
}

/// How the days of the source are used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayPlan {
    pub history: Vec<u32>,
    pub retained: Vec<u32>,
    /// The first online day; the offline evaluation day.
    pub online: Vec<u32>,
}

/// 1A result of one field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldProjection {
    pub field: String,
    /// `copy`, `orthogonal_up`, `pca_down` or `random` (ablation).
    pub method: String,
    pub from_dim: usize,
    pub to_dim: usize,
    /// `|E_t - rec(E_s)|_F / |E_t|_F`.
    pub rel_error: f64,
}

/// Evaluation of one model on one day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// `None` when the day has a single class.
    pub auc: Option<f64>,
    pub logloss: f64,
    /// `mean(p) / mean(y) - 1`.
    pub bias: f64,
    pub ne: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gauc: Option<f64>,
    pub rows: u64,
}

/// Drift of a field against the reference window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldDrift {
    pub field: String,
    pub psi: f64,
    pub js: f64,
}

/// The verdict of one arm in the end summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    pub arm: String,
    pub model: String,
    pub offline_seconds: f64,
    pub offline_samples: u64,
    pub offline: Option<EvalMetrics>,
    /// Mean over the online days that have been evaluated.
    pub online_mean_auc: Option<f64>,
    pub online_mean_logloss: Option<f64>,
    pub online_mean_abs_bias: Option<f64>,
    /// Offline seconds as a fraction of scratch's.
    pub time_vs_scratch: Option<f64>,
    /// Online mean AUC minus kd's.
    pub auc_vs_kd: Option<f64>,
    /// Online mean |bias| minus kd's.
    pub abs_bias_vs_kd: Option<f64>,
    pub failed: Option<String>,
}

/// Everything the engine tells the world.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EngineEvent {
    SessionStarted {
        session: String,
        name: String,
        arms: Vec<ArmInfo>,
        teacher: String,
        days: DayPlan,
        params: Params,
        seed: u64,
    },
    /// A resumed session continues here (the events after the checkpoint were truncated).
    SessionResumed {
        from: Position,
    },
    StageStarted {
        stage: Stage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arm: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        day: Option<u32>,
        /// Samples this stage will process (0 if unknown).
        total: u64,
    },
    Progress {
        stage: Stage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arm: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        day: Option<u32>,
        done: u64,
        total: u64,
        samples_per_sec: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eta_secs: Option<f64>,
    },
    StageFinished {
        stage: Stage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arm: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        day: Option<u32>,
        seconds: f64,
        samples: u64,
    },
    Projection {
        arm: String,
        fields: Vec<FieldProjection>,
    },
    /// Result of the offline stage of one arm, evaluated on the first online day.
    OfflineResult {
        arm: String,
        seconds: f64,
        samples: u64,
        metrics: EvalMetrics,
    },
    /// Student and teacher updates over a run of batches of one online day.
    Updates {
        arm: String,
        day: u32,
        /// Batches `from..to` of the day.
        from_batch: u32,
        to_batch: u32,
        /// Batches (of the day) after which the student stepped.
        student: Vec<u32>,
        /// Batches (of the day) after which the teacher stepped.
        teacher: Vec<u32>,
    },
    /// Drift measured on an incoming day (batch = None) or every K batches.
    Drift {
        day: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch: Option<u32>,
        /// Drift weight w in [0, 1].
        weight: f64,
        /// Distillation weight a_t it produced.
        distill_weight: f64,
        replay_ratio: f64,
        label_rate: f64,
        reference_label_rate: f64,
        /// Most drifting fields first.
        fields: Vec<FieldDrift>,
    },
    /// Test-then-train result of one arm on one online day.
    DayMetrics {
        arm: String,
        day: u32,
        metrics: EvalMetrics,
        train_seconds: f64,
        samples: u64,
        samples_per_sec: f64,
        student_updates: u32,
        teacher_updates: u32,
    },
    /// An operator command, logged where the engine applied it.
    Operator {
        command: EngineCommand,
        at: Position,
    },
    ParamsChanged {
        params: Params,
        at: Position,
    },
    Paused {
        at: Position,
    },
    Resumed {
        at: Position,
    },
    Checkpointed {
        at: Position,
        /// Path relative to the session directory.
        path: String,
        reason: String,
    },
    Warning {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arm: Option<String>,
        message: String,
    },
    /// One arm stopped (e.g. NaN loss); the others go on.
    ArmFailed {
        arm: String,
        message: String,
    },
    Finished {
        arms: Vec<ArmSummary>,
    },
    /// The run stopped on an error.
    Error {
        message: String,
    },
    /// An event of a newer schema this reader does not know.
    #[serde(other)]
    Unknown,
}

/// Anything that consumes the stream: session log, console channel, headless printer, tests.
pub trait EventSink: Send {
    fn emit(&mut self, record: &Record) -> anyhow::Result<()>;
}

impl EventSink for Vec<Record> {
    fn emit(&mut self, record: &Record) -> anyhow::Result<()> {
        self.push(record.clone());
        Ok(())
    }
}

/// A sink shared with another thread (a test reading what the engine emitted so far).
impl<S: EventSink> EventSink for std::sync::Arc<std::sync::Mutex<S>> {
    fn emit(&mut self, record: &Record) -> anyhow::Result<()> {
        self.lock()
            .map_err(|_| anyhow::anyhow!("event sink poisoned by an earlier panic"))?
            .emit(record)
    }
}

impl EventSink for std::sync::mpsc::Sender<Record> {
    fn emit(&mut self, record: &Record) -> anyhow::Result<()> {
        // A closed console must not stop the engine: the session log still records everything.
        let _ = self.send(record.clone());
        Ok(())
    }
}

impl EventSink for tokio::sync::mpsc::UnboundedSender<Record> {
    fn emit(&mut self, record: &Record) -> anyhow::Result<()> {
        let _ = self.send(record.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_json_lines() {
        let rec = Record {
            v: EVENT_SCHEMA_VERSION,
            seq: 3,
            t: 1.5,
            event: EngineEvent::Operator {
                command: EngineCommand::SetParams {
                    patch: ParamPatch {
                        sampling_ratio: Some(0.2),
                        ..Default::default()
                    },
                },
                at: Position {
                    stage: Stage::Online,
                    arm: None,
                    day: Some(5),
                    batch: 12,
                },
            },
        };
        let line = serde_json::to_string(&rec).unwrap();
        assert!(line.contains("\"type\":\"operator\""));
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn unknown_event_types_from_newer_writers_are_skipped_not_fatal() {
        let line = r#"{"v":2,"seq":0,"t":0.0,"event":{"type":"hologram","x":1}}"#;
        let rec: Record = serde_json::from_str(line).unwrap();
        assert_eq!(rec.event, EngineEvent::Unknown);
    }

    #[test]
    fn params_patch_validates_ranges() {
        let p = Params {
            sampling_ratio: 0.1,
            replay_ratio: 0.1,
            teacher_interval: 10,
            distill_min: 0.3,
            distill_max: 0.7,
        };
        let bad = ParamPatch {
            sampling_ratio: Some(0.0),
            ..Default::default()
        };
        assert!(p.patched(&bad).unwrap_err().contains("sampling_ratio"));
        let ok = ParamPatch {
            teacher_interval: Some(5),
            ..Default::default()
        };
        assert_eq!(p.patched(&ok).unwrap().teacher_interval, 5);
    }
}
