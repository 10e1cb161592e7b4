//! The typed stream the engine emits and the commands it takes.
//!
//! Every reader of a run (the console, the headless printer, the session log, replay and the
//! tests) consumes [`Record`]s, folded once by the [`Ledger`](super::Ledger); operator
//! [`EngineCommand`]s travel the other way and are logged back as [`EngineEvent::Operator`] at
//! the exact position where the engine applied them.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::gate::GateRule;
pub use super::lifecycle::Stage;
pub use crate::data::split::DayPlan;
use crate::num;
pub use crate::train::metrics::EvalMetrics;
use crate::train::stats::Interval;

/// Version of the event schema written in every log line.
///
/// 2: non-finite floats are written as `"NaN"`/`"inf"`/`"-inf"` (1 wrote `null`); a refused
/// parameter change is its own event (`params_refused`, 1 logged a warning); `finished` no
/// longer carries a summary (readers compute the verdict from the ledger). Version-1 logs read
/// as they are: their `null` floats read as NaN, their `finished` summary is ignored.
pub const EVENT_SCHEMA_VERSION: u32 = 2;

/// One line of `events.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Schema version of this line.
    pub v: u32,
    /// Position in the session's log, from 0, without gaps.
    pub seq: u64,
    /// Seconds of engine wall time since the session started (resumes continue the clock),
    /// used to pace replays.
    #[serde(with = "num")]
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

impl fmt::Display for Position {
    /// `1B dense distill [crossadapt] batch 12`, `online [kd] day 5 batch 3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} batch {}",
            StageAt::new(self.stage, self.arm.as_deref(), self.day),
            self.batch
        )
    }
}

/// A stage with the arm and day it concerns, as text: `1A transfer [crossadapt]`,
/// `online day 5`. The one place stage and position text is written.
#[derive(Clone, Copy, Debug)]
pub struct StageAt<'a> {
    pub stage: Stage,
    pub arm: Option<&'a str>,
    pub day: Option<u32>,
}

impl<'a> StageAt<'a> {
    pub fn new(stage: Stage, arm: Option<&'a str>, day: Option<u32>) -> Self {
        StageAt { stage, arm, day }
    }
}

impl fmt::Display for StageAt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.stage)?;
        if let Some(arm) = self.arm {
            write!(f, " [{arm}]")?;
        }
        if let Some(day) = self.day {
            write!(f, " day {day}")?;
        }
        Ok(())
    }
}

/// The parameters an operator may change mid-run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Share of each retained window the strategic sampler draws, in (0, 1].
    #[serde(with = "num")]
    pub sampling_ratio: f64,
    /// Replay rows per online batch as a share of the batch, in [0, 1].
    #[serde(with = "num")]
    pub replay_ratio: f64,
    /// The teacher steps every this many online batches (>= 1).
    pub teacher_interval: u32,
    /// Distillation weight at maximal drift.
    #[serde(with = "num")]
    pub distill_min: f64,
    /// Distillation weight with no drift.
    #[serde(with = "num")]
    pub distill_max: f64,
}

/// A partial change of [`Params`]; `None` leaves a value as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamPatch {
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub sampling_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub replay_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_interval: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub distill_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub distill_max: Option<f64>,
}

/// Why a parameter value was refused: the parameter and one sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    pub field: &'static str,
    pub reason: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ParamError {}

fn refuse(field: &'static str, reason: String) -> Result<(), ParamError> {
    Err(ParamError { field, reason })
}

impl Params {
    /// Checks every value's range; the error names the parameter.
    pub fn validate(&self) -> Result<(), ParamError> {
        if !(self.sampling_ratio > 0.0 && self.sampling_ratio <= 1.0) {
            return refuse(
                "sampling_ratio",
                format!(
                    "sampling_ratio must be in (0, 1], got {}",
                    self.sampling_ratio
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.replay_ratio) {
            return refuse(
                "replay_ratio",
                format!("replay_ratio must be in [0, 1], got {}", self.replay_ratio),
            );
        }
        if self.teacher_interval == 0 {
            return refuse(
                "teacher_interval",
                "teacher_interval must be at least 1".into(),
            );
        }
        for (name, v) in [
            ("distill_min", self.distill_min),
            ("distill_max", self.distill_max),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return refuse(name, format!("{name} must be in [0, 1], got {v}"));
            }
        }
        if self.distill_min > self.distill_max {
            return refuse(
                "distill_min",
                format!(
                    "distill_min ({}) must not exceed distill_max ({})",
                    self.distill_min, self.distill_max
                ),
            );
        }
        Ok(())
    }

    /// The parameters after `patch`, validated.
    pub fn patched(&self, patch: &ParamPatch) -> Result<Params, ParamError> {
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

/// 1A result of one field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldProjection {
    pub field: String,
    /// `copy`, `orthogonal_up`, `pca_down` or `random` (ablation).
    pub method: String,
    pub from_dim: usize,
    pub to_dim: usize,
    /// `|E_t - rec(E_s)|_F / |E_t|_F`.
    #[serde(with = "num")]
    pub rel_error: f64,
}

/// Drift of a field against the reference window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldDrift {
    pub field: String,
    #[serde(with = "num")]
    pub psi: f64,
    #[serde(with = "num")]
    pub js: f64,
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
        #[serde(with = "num")]
        samples_per_sec: f64,
        #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
        eta_secs: Option<f64>,
    },
    StageFinished {
        stage: Stage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arm: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        day: Option<u32>,
        #[serde(with = "num")]
        seconds: f64,
        samples: u64,
        /// The most heap bytes live at once during the stage (a measurement, like `seconds`;
        /// filled in by the emitter where the binary counts its heap, `crossadapt::heap`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heap_peak: Option<u64>,
    },
    Projection {
        arm: String,
        fields: Vec<FieldProjection>,
    },
    /// Result of the offline stage of one arm, evaluated on the first online day.
    OfflineResult {
        arm: String,
        #[serde(with = "num")]
        seconds: f64,
        samples: u64,
        /// Offline training throughput, `samples / seconds` (`None` for an arm that trained
        /// nothing offline, and in logs written before the field existed).
        #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
        samples_per_sec: Option<f64>,
        metrics: EvalMetrics,
        /// Process CPU seconds of the offline training (every compute thread counted; `None`
        /// in logs written before the field existed, and where no CPU clock is available).
        #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
        cpu_seconds: Option<f64>,
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
        #[serde(with = "num")]
        weight: f64,
        /// Distillation weight a_t it produced.
        #[serde(with = "num")]
        distill_weight: f64,
        #[serde(with = "num")]
        replay_ratio: f64,
        #[serde(with = "num")]
        label_rate: f64,
        #[serde(with = "num")]
        reference_label_rate: f64,
        /// Most drifting fields first.
        fields: Vec<FieldDrift>,
    },
    /// Test-then-train result of one arm on one online day.
    DayMetrics {
        arm: String,
        day: u32,
        metrics: EvalMetrics,
        #[serde(with = "num")]
        train_seconds: f64,
        samples: u64,
        #[serde(with = "num")]
        samples_per_sec: f64,
        student_updates: u32,
        teacher_updates: u32,
        /// The distillation weight `a` the arm trained with that day, averaged over its
        /// batches (it moves within a day when drift is re-measured); none for an arm that
        /// trains on labels alone. The matched ablation's weight is read here.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
        distill_weight: Option<f64>,
        /// The served-logit intercept the day was scored with (`online.calibrate`: fitted on
        /// the day before; 0 on the first online day); absent when calibration is off.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
        calibration: Option<f64>,
        /// `crossadapt-matched`'s fixed drift weight of the day: the mean of the adaptive
        /// rule's weights over its past online days (0 before it has one); absent for other
        /// arms.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
        matched_weight: Option<f64>,
        /// Process CPU seconds of the day's training (as `train_seconds`, in CPU time; `None`
        /// in logs written before the field existed).
        #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
        cpu_seconds: Option<f64>,
    },
    /// The migration gate's evidence for one student arm on one online day: its AUC and
    /// LogLoss differences to the incumbent (student minus incumbent) on the day's rows, scored
    /// before either trained on them, with two-sided intervals at `rule.level`.
    Gate {
        arm: String,
        day: u32,
        incumbent: String,
        /// DeLong (clustered by user when `rule.cluster` is `users`); absent when the day has
        /// fewer than two rows, or users, of a class.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auc: Option<Interval>,
        /// Mean of per-row differences; absent below two rows (users).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logloss: Option<Interval>,
        rule: GateRule,
    },
    /// The validation protocol that chose the run's `per_arm` values (`run --tune`), right
    /// after `SessionStarted`: every arm's trials on the last retained day and its choice.
    Tuned {
        tuning: super::tune::Tuning,
    },
    /// One arm's score on the final test slice (`split.holdout`), once, after the last online
    /// day: the days were never trained on.
    Holdout {
        arm: String,
        days: Vec<u32>,
        metrics: EvalMetrics,
        /// Seconds the scoring took.
        #[serde(with = "num")]
        seconds: f64,
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
    /// An operator's parameter change the engine refused; the parameters stay as they were.
    ParamsRefused {
        /// The parameter whose value was out of range.
        field: String,
        reason: String,
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
        /// Bytes the checkpoint wrote (files it shares with an earlier one, such as the frozen
        /// teacher, are not counted); absent in logs written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
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
    /// The run reached its end. (Version-1 writers added the engine's summary here; readers
    /// ignore it and take the verdict from the ledger.)
    Finished {},
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
        let err = p.patched(&bad).unwrap_err();
        assert_eq!(err.field, "sampling_ratio");
        assert!(err.reason.contains("(0, 1]"), "{err}");
        let ok = ParamPatch {
            teacher_interval: Some(5),
            ..Default::default()
        };
        assert_eq!(p.patched(&ok).unwrap().teacher_interval, 5);
    }

    /// Every event kind with every float set to a non-finite value survives a JSON round trip
    /// (no `null` left for a reader to choke on).
    #[test]
    fn every_float_of_every_event_round_trips_when_not_finite() {
        let nan = f64::NAN;
        let m = EvalMetrics {
            auc: Some(nan),
            logloss: f64::INFINITY,
            bias: f64::NEG_INFINITY,
            ne: nan,
            gauc: Some(nan),
            rows: 3,
        };
        let params = Params {
            sampling_ratio: nan,
            replay_ratio: nan,
            teacher_interval: 1,
            distill_min: nan,
            distill_max: nan,
        };
        let events = vec![
            EngineEvent::SessionStarted {
                session: "s".into(),
                name: "n".into(),
                arms: vec![],
                teacher: "t".into(),
                days: DayPlan::default(),
                params: params.clone(),
                seed: 1,
            },
            EngineEvent::Progress {
                stage: Stage::Online,
                arm: None,
                day: None,
                done: 1,
                total: 2,
                samples_per_sec: nan,
                eta_secs: Some(nan),
            },
            EngineEvent::StageFinished {
                stage: Stage::Online,
                arm: None,
                day: None,
                seconds: nan,
                samples: 0,
                heap_peak: None,
            },
            EngineEvent::Projection {
                arm: "a".into(),
                fields: vec![FieldProjection {
                    field: "f".into(),
                    method: "copy".into(),
                    from_dim: 1,
                    to_dim: 1,
                    rel_error: nan,
                }],
            },
            EngineEvent::OfflineResult {
                arm: "a".into(),
                seconds: nan,
                samples: 0,
                samples_per_sec: Some(nan),
                metrics: m.clone(),
                cpu_seconds: Some(nan),
            },
            EngineEvent::Drift {
                day: 1,
                batch: None,
                weight: nan,
                distill_weight: nan,
                replay_ratio: nan,
                label_rate: nan,
                reference_label_rate: nan,
                fields: vec![FieldDrift {
                    field: "f".into(),
                    psi: nan,
                    js: f64::INFINITY,
                }],
            },
            EngineEvent::DayMetrics {
                arm: "a".into(),
                day: 1,
                metrics: m,
                train_seconds: nan,
                samples: 0,
                samples_per_sec: nan,
                student_updates: 0,
                teacher_updates: 0,
                distill_weight: None,
                calibration: Some(nan),
                matched_weight: Some(nan),
                cpu_seconds: Some(nan),
            },
            EngineEvent::Operator {
                command: EngineCommand::SetParams {
                    patch: ParamPatch {
                        sampling_ratio: Some(nan),
                        replay_ratio: Some(nan),
                        teacher_interval: None,
                        distill_min: Some(nan),
                        distill_max: Some(nan),
                    },
                },
                at: Position::default(),
            },
            EngineEvent::ParamsChanged {
                params,
                at: Position::default(),
            },
        ];
        for event in events {
            let rec = Record {
                v: EVENT_SCHEMA_VERSION,
                seq: 0,
                t: 0.0,
                event,
            };
            let line = serde_json::to_string(&rec).unwrap();
            assert!(!line.contains("null"), "{line}");
            let back: Record = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{line} does not read back: {e}"));
            assert_eq!(serde_json::to_string(&back).unwrap(), line);
        }
    }

    /// Version-1 lines read: a `finished` with its summary, `null` where a float was not
    /// finite, a refused change logged as a warning.
    #[test]
    fn version_1_lines_read() {
        let fin = r#"{"v":1,"seq":9,"t":3.0,"event":{"type":"finished","arms":[{"arm":"kd","model":"m","offline_seconds":1.0,"offline_samples":2,"offline":null,"online_mean_auc":null,"online_mean_logloss":null,"online_mean_abs_bias":null,"time_vs_scratch":null,"auc_vs_kd":null,"abs_bias_vs_kd":null,"failed":null}]}}"#;
        let rec: Record = serde_json::from_str(fin).unwrap();
        assert_eq!(rec.event, EngineEvent::Finished {});
        let day = r#"{"v":1,"seq":8,"t":2.0,"event":{"type":"day_metrics","arm":"kd","day":4,"metrics":{"auc":null,"logloss":0.5,"bias":null,"ne":null,"rows":10},"train_seconds":1.0,"samples":10,"samples_per_sec":10.0,"student_updates":1,"teacher_updates":0}}"#;
        let rec: Record = serde_json::from_str(day).unwrap();
        let EngineEvent::DayMetrics { metrics, .. } = rec.event else {
            panic!("not a day");
        };
        assert_eq!((metrics.auc, metrics.logloss), (None, 0.5));
        assert!(metrics.bias.is_nan() && metrics.ne.is_nan());
        let warn = r#"{"v":1,"seq":7,"t":1.0,"event":{"type":"warning","message":"parameter change refused: x"}}"#;
        assert!(matches!(
            serde_json::from_str::<Record>(warn).unwrap().event,
            EngineEvent::Warning { .. }
        ));
    }

    #[test]
    fn positions_and_stages_print_one_way() {
        let at = Position {
            stage: Stage::Online,
            arm: Some("kd".into()),
            day: Some(5),
            batch: 3,
        };
        assert_eq!(at.to_string(), "online [kd] day 5 batch 3");
        assert_eq!(
            StageAt::new(Stage::Transfer, Some("crossadapt"), None).to_string(),
            "1A transfer [crossadapt]"
        );
        assert_eq!(Stage::DenseDistill.to_string(), "1B dense distill");
    }
}
