//! What a checkpoint holds besides the models: where the run is and each arm's own state.
//! (What the run has produced so far is in the log; readers fold it into a ledger.)

use serde::{Deserialize, Serialize};

use crate::num;
use crate::protocol::Params;

/// Version of `state.json` inside a checkpoint.
///
/// 2: non-finite floats are written as strings (see `crate::num`); the per-day results and the
/// summary inputs of version 1 are no longer stored (version-1 states still load: the extra
/// fields are ignored).
pub const STATE_SCHEMA_VERSION: u32 = 2;

/// How far a run has come; checkpoints are only taken at these points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum ResumePoint {
    /// The teacher is trained (or loaded); no arm has been built.
    TeacherReady,
    /// In the offline stage: the first `arms_done` arms (in the config's order) have finished
    /// their offline work (or failed it); the next arm starts from scratch.
    Offline {
        arms_done: usize,
    },
    /// Every arm finished its offline stage; `next` online days (index into the plan) are done,
    /// and on day `next` the first `arms_done` arms have finished.
    Online {
        next: usize,
        #[serde(default)]
        arms_done: usize,
    },
    Done,
}

pub use crate::method::ArmState;

/// `state.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub schema_version: u32,
    pub phase: ResumePoint,
    pub params: Params,
    pub arms: Vec<ArmState>,
    /// Engine seconds at the checkpoint.
    #[serde(with = "num")]
    pub clock: f64,
    /// Seconds the teacher took (0 when loaded).
    #[serde(with = "num")]
    pub teacher_seconds: f64,
    /// The run's data as its source states it ([`data_fingerprint`](super::checkpoint::data_fingerprint));
    /// absent from checkpoints written before it was recorded, which are not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ArmKind;

    /// A version-1 state (with its per-day results, and a `null` where a loss was NaN) loads.
    #[test]
    fn version_1_states_load_and_non_finite_losses_round_trip() {
        let v1 = r#"{"schema_version":1,"phase":{"phase":"online","next":2,"arms_done":1},
            "params":{"sampling_ratio":0.1,"replay_ratio":0.1,"teacher_interval":10,
                      "distill_min":0.2,"distill_max":0.7},
            "arms":[{"name":"kd","model":"dcn","offline_seconds":3.5,"offline_samples":10,
                     "offline":null,"projection":[],"days":[{"day":4,"metrics":{"auc":null,
                     "logloss":null,"bias":null,"ne":null,"rows":3},"train_seconds":1.0,
                     "samples":3}],"failed":null,"last_teacher_loss":null,
                     "last_student_loss":0.5}],
            "clock":12.0,"teacher_seconds":2.0}"#;
        let s: CheckpointState = serde_json::from_str(v1).unwrap();
        assert_eq!(
            s.phase,
            ResumePoint::Online {
                next: 2,
                arms_done: 1
            }
        );
        assert_eq!(s.arms[0].kind, ArmKind::Kd);
        assert_eq!(s.arms[0].last_student_loss, Some(0.5));
        let mut s2 = s.clone();
        s2.arms[0].last_student_loss = Some(f64::NAN);
        s2.arms[0].offline_seconds = f64::INFINITY;
        let text = serde_json::to_string(&s2).unwrap();
        assert!(
            text.contains(r#""last_student_loss":"NaN""#)
                && text.contains(r#""offline_seconds":"inf""#),
            "{text}"
        );
        let back: CheckpointState = serde_json::from_str(&text).unwrap();
        assert!(back.arms[0].last_student_loss.unwrap().is_nan());
        assert_eq!(back.arms[0].offline_seconds, f64::INFINITY);
    }
}
