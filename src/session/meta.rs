//! The small JSON files of a session: `session.json` (who it is) and `status.json` (where it is).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::events::{EngineEvent, Record, Stage};

/// Schema version of `session.json`.
pub const META_SCHEMA_VERSION: u32 = 1;
/// Schema version of `status.json`.
pub const STATUS_SCHEMA_VERSION: u32 = 1;

/// The session a fork started from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Parent {
    /// Id of the parent session.
    pub id: String,
    /// The day whose start-of-day checkpoint the fork began from.
    pub day: u32,
}

/// `session.json`: identity of a session, written once at creation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub schema_version: u32,
    pub id: String,
    /// Human name given by the operator.
    pub name: String,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
    /// Version of crossadapt that created the session.
    pub app_version: String,
}

/// Lifecycle of a session as recorded in `status.json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Created, the engine has not started yet.
    #[default]
    Created,
    Running,
    Paused,
    Done,
    Failed,
    /// Stopped before the end (quit, crash, kill); resumable from its latest checkpoint.
    Interrupted,
}

impl RunState {
    /// Lower-case name as shown by `list`.
    pub fn label(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }
}

/// The latest evaluated figures of one arm, for `list`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmHeadline {
    pub arm: String,
    /// Last online day evaluated (None: only the offline evaluation so far).
    pub day: Option<u32>,
    pub auc: Option<f64>,
    pub logloss: Option<f64>,
    pub bias: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// `status.json`: a small summary rewritten atomically as the run goes, so `list` stays fast.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub schema_version: u32,
    pub state: RunState,
    #[serde(default)]
    pub stage: Option<Stage>,
    /// Last online day whose metrics are in.
    #[serde(default)]
    pub last_day: Option<u32>,
    #[serde(default)]
    pub arms: Vec<String>,
    #[serde(default)]
    pub headline: Vec<ArmHeadline>,
    pub updated_at: DateTime<Utc>,
    /// Process that wrote this status.
    pub pid: u32,
}

impl Status {
    /// A status in `state` with nothing observed yet.
    pub fn new(state: RunState) -> Status {
        Status {
            schema_version: STATUS_SCHEMA_VERSION,
            state,
            stage: None,
            last_day: None,
            arms: Vec::new(),
            headline: Vec::new(),
            updated_at: Utc::now(),
            pid: std::process::id(),
        }
    }

    /// Folds one record into the summary (the engine calls it on every record it emits; `list`
    /// does the same over a log when needed).
    pub fn observe(&mut self, record: &Record) {
        match &record.event {
            EngineEvent::SessionStarted { arms, .. } => {
                self.state = RunState::Running;
                self.arms = arms.iter().map(|a| a.name.clone()).collect();
            }
            EngineEvent::SessionResumed { .. } | EngineEvent::Resumed { .. } => {
                self.state = RunState::Running
            }
            EngineEvent::StageStarted { stage, .. } => self.stage = Some(*stage),
            EngineEvent::OfflineResult { arm, metrics, .. } => {
                let h = self.headline_mut(arm);
                if h.day.is_none() {
                    h.auc = metrics.auc;
                    h.logloss = Some(metrics.logloss);
                    h.bias = Some(metrics.bias);
                }
            }
            EngineEvent::DayMetrics {
                arm, day, metrics, ..
            } => {
                self.last_day = Some(self.last_day.map_or(*day, |d| d.max(*day)));
                let h = self.headline_mut(arm);
                h.day = Some(*day);
                h.auc = metrics.auc;
                h.logloss = Some(metrics.logloss);
                h.bias = Some(metrics.bias);
            }
            EngineEvent::ArmFailed { arm, message } => {
                self.headline_mut(arm).failed = Some(message.clone())
            }
            EngineEvent::Paused { .. } => self.state = RunState::Paused,
            EngineEvent::Finished { .. } => {
                self.state = RunState::Done;
                self.stage = Some(Stage::Done);
            }
            EngineEvent::Error { .. } => self.state = RunState::Failed,
            _ => {}
        }
    }

    fn headline_mut(&mut self, arm: &str) -> &mut ArmHeadline {
        let i = match self.headline.iter().position(|h| h.arm == arm) {
            Some(i) => i,
            None => {
                self.headline.push(ArmHeadline {
                    arm: arm.to_string(),
                    ..ArmHeadline::default()
                });
                self.headline.len() - 1
            }
        };
        &mut self.headline[i]
    }
}
