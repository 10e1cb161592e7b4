//! The one fold of the record stream.
//!
//! A [`Ledger`] takes records one at a time ([`Ledger::apply`]) and keeps everything a reader
//! of a run needs: the parameters, where the run is, each arm's offline and per-day results and
//! update counts, the drift history, the timings. The console, the headless printer,
//! `status.json`, `list`, `export` and the report all read a ledger; none of them folds records
//! itself. The switch verdict (time against scratch, quality against kd) is computed here, once
//! ([`Ledger::verdict`]).
//!
//! The ledger is built from records alone, so a live run and a replay of its log give the same
//! ledger.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::arm::{ArmKind, CrossAdaptVariant};
use super::event::{
    DayPlan, EngineCommand, EngineEvent, EvalMetrics, FieldDrift, FieldProjection, Params, Record,
};
use super::gate::{self, GateDay, GateStatus};
use super::lifecycle::{Lifecycle, Stage};
use crate::num;

/// Days after a shock over which recovery is measured.
pub const RECOVERY_DAYS: usize = 3;

/// CPU seconds below which a stage is too short to time: on a loaded 2-core machine identical
/// stages of a few hundredths to a tenth of a CPU second measured up to 5x apart (contention
/// costs CPU time too), while stages from about a third of a second up gave ratios within a
/// few percent (docs/gate.md), so no ratio is given below it.
pub const MIN_TIMED_CPU: f64 = 0.25;

/// Everything the records of a run tell, folded once.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub session: String,
    pub name: String,
    /// The teacher's model spec.
    pub teacher: String,
    pub seed: Option<u64>,
    pub plan: DayPlan,
    /// The parameters the engine confirmed last.
    pub params: Option<Params>,
    pub lifecycle: Lifecycle,
    /// The error that ended the run, when it failed.
    pub error: Option<String>,
    pub stage: Stage,
    pub stage_arm: Option<String>,
    pub stage_day: Option<u32>,
    /// The latest progress of the current stage.
    pub progress: Option<Progress>,
    /// In the order the session named them, then any arm it did not name.
    pub arms: Vec<ArmLedger>,
    /// Seconds the teacher's pretraining took (`None` when it was loaded).
    #[serde(default, with = "num::opt")]
    pub teacher_seconds: Option<f64>,
    /// Day-level drift of each online day (a redone day keeps its last reading).
    pub drift: BTreeMap<u32, DriftReading>,
    /// The latest drift reading, day-level or inside a day.
    pub drift_now: Option<DriftReading>,
    /// Batches per online day, as far as seen.
    pub day_batches: BTreeMap<u32, u32>,
    /// Engine seconds of the last record.
    #[serde(with = "num")]
    pub clock: f64,
    /// Records folded in.
    pub records: u64,
    /// The validation protocol's choice (`run --tune`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<super::tune::Tuning>,
}

/// The latest `Progress` of a stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    #[serde(with = "num")]
    pub samples_per_sec: f64,
    #[serde(default, with = "num::opt")]
    pub eta_secs: Option<f64>,
}

/// One arm's story.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmLedger {
    pub name: String,
    /// The arm's kind, parsed from its name once (`None` for a name this version does not know).
    pub kind: Option<ArmKind>,
    pub model: String,
    /// The offline result, evaluated on the first online day before training on it.
    pub offline: Option<OfflineEntry>,
    /// 1A per field (crossadapt arms that project).
    pub projection: Vec<FieldProjection>,
    /// Test-then-train results per online day (a day redone after a resume keeps its last).
    pub days: BTreeMap<u32, DayEntry>,
    /// Update ticks of the day the arm is on.
    pub ticks: Option<DayTicks>,
    /// Why the arm stopped, if it did.
    pub failed: Option<String>,
    /// The migration gate's evidence per online day (student arms, when there is an
    /// incumbent arm).
    #[serde(default)]
    pub gate: BTreeMap<u32, GateDay>,
    /// The score on the final test slice (`split.holdout`), when the run held days out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutEntry>,
}

impl ArmLedger {
    /// The migration gate after the days folded so far (`None` before the first judged day):
    /// the one fold the verdict, the report and the live console all read.
    pub fn gate_status(&self, online: &[u32]) -> Option<GateStatus> {
        gate::status(&self.gate, online)
    }
}

/// One arm's score on the held-out days, evaluated once at the end of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HoldoutEntry {
    pub days: Vec<u32>,
    pub metrics: EvalMetrics,
}

/// The offline stage of one arm.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OfflineEntry {
    /// Wall seconds of the offline training, evaluation excluded.
    #[serde(with = "num")]
    pub seconds: f64,
    pub samples: u64,
    /// Offline training throughput (`None` when the arm trained nothing offline).
    #[serde(default, with = "num::opt")]
    pub samples_per_sec: Option<f64>,
    pub metrics: EvalMetrics,
    /// Process CPU seconds of the offline training (`None` in logs before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub cpu_seconds: Option<f64>,
}

/// Training throughput: `samples / seconds`, `None` when nothing was trained or no time
/// measured.
pub fn throughput(samples: u64, seconds: f64) -> Option<f64> {
    (samples > 0 && seconds > 0.0).then(|| samples as f64 / seconds)
}

/// One online day of one arm.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayEntry {
    pub metrics: EvalMetrics,
    #[serde(with = "num")]
    pub train_seconds: f64,
    pub samples: u64,
    #[serde(with = "num")]
    pub samples_per_sec: f64,
    pub student_updates: u32,
    pub teacher_updates: u32,
    /// The day's mean distillation weight (`DayMetrics::distill_weight`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub distill_weight: Option<f64>,
    /// The served intercept of the day (`DayMetrics::calibration`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub calibration: Option<f64>,
    /// The matched ablation's fixed drift weight of the day (`DayMetrics::matched_weight`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub matched_weight: Option<f64>,
    /// The parameters in effect when the day's metrics came in.
    pub params: Option<Params>,
    /// Process CPU seconds of the day's training (`None` in logs before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub cpu_seconds: Option<f64>,
}

/// The update ticks of one arm on the day it is on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayTicks {
    pub day: u32,
    pub student: Vec<u32>,
    pub teacher: Vec<u32>,
    /// Batches covered so far (`to_batch` of the last `Updates`).
    pub batches: u32,
}

/// One drift measurement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftReading {
    pub day: u32,
    /// `None`: measured on the incoming day; `Some(b)`: after `b` batches of it.
    pub batch: Option<u32>,
    #[serde(with = "num")]
    pub weight: f64,
    #[serde(with = "num")]
    pub distill_weight: f64,
    #[serde(with = "num")]
    pub replay_ratio: f64,
    #[serde(with = "num")]
    pub label_rate: f64,
    #[serde(with = "num")]
    pub reference_label_rate: f64,
    pub fields: Vec<FieldDrift>,
}

/// The verdict of one arm: its own figures and the comparisons a switch decision rests on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmVerdict {
    pub arm: String,
    pub model: String,
    #[serde(with = "num")]
    pub offline_seconds: f64,
    pub offline_samples: u64,
    pub offline: Option<EvalMetrics>,
    /// Offline training throughput, samples per second (arms that trained offline).
    #[serde(default, with = "num::opt")]
    pub offline_samples_per_sec: Option<f64>,
    /// Online training throughput: the mean over the online days of each day's samples per
    /// second (the co-distilled teacher's work included).
    #[serde(default, with = "num::opt")]
    pub online_samples_per_sec: Option<f64>,
    /// Means over the online days where the metric is defined.
    #[serde(default, with = "num::opt")]
    pub online_mean_auc: Option<f64>,
    #[serde(default, with = "num::opt")]
    pub online_mean_logloss: Option<f64>,
    #[serde(default, with = "num::opt")]
    pub online_mean_abs_bias: Option<f64>,
    /// Offline seconds as a fraction of scratch's (arms that trained offline).
    #[serde(default, with = "num::opt")]
    pub time_vs_scratch: Option<f64>,
    /// Online mean AUC minus kd's.
    #[serde(default, with = "num::opt")]
    pub auc_vs_kd: Option<f64>,
    /// Online mean |bias| minus kd's.
    #[serde(default, with = "num::opt")]
    pub abs_bias_vs_kd: Option<f64>,
    /// Online training seconds over the evaluated days (the co-distilled teacher's steps
    /// included; evaluation excluded).
    #[serde(default, with = "num")]
    pub online_seconds: f64,
    /// Total compute: offline plus online training seconds. `offline_seconds` is the time to
    /// switch (until the student can serve).
    #[serde(default, with = "num")]
    pub total_seconds: f64,
    /// Total compute as a fraction of scratch's.
    #[serde(default, with = "num::opt")]
    pub total_vs_scratch: Option<f64>,
    /// The migration gate (student arms, when the session has an incumbent arm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateStatus>,
    /// The first online day the gate said SWITCH (`None`: never in the window, or no gate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_day: Option<u32>,
    /// Online days until the gate said SWITCH, the switch day included (1: on the first
    /// online day). `None`: never in the window, or no gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_to_switch: Option<u32>,
    /// Training seconds spent until the switch: offline, plus online training on the days
    /// before the switch day (a day is scored before the arm trains on it).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub seconds_to_switch: Option<f64>,
    /// The AUC degradation against the incumbent before the switch: the sum over the online
    /// days before the switch day (every online day when it never switched) of
    /// `max(0, incumbent AUC - arm AUC)`. What an early switch would have cost in ranking
    /// quality, day by day; the paper's deployment claim is about mitigating it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub degradation_area: Option<f64>,
    /// Offline seconds as a fraction of retrain's (the full retraining the method avoids).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub time_vs_retrain: Option<f64>,
    /// Total compute as a fraction of retrain's.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub total_vs_retrain: Option<f64>,
    /// Process CPU seconds of the offline training, of the online training over the
    /// evaluated days, their sum, and the CPU spent until the switch (as
    /// `seconds_to_switch`). `None` in logs written before CPU time was measured. When the
    /// figures exist, the ratios against scratch and retrain are of CPU seconds; without them
    /// (an older log) of wall seconds.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub offline_cpu_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub online_cpu_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub total_cpu_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub cpu_seconds_to_switch: Option<f64>,
    /// The ratios left out because a figure of the two arms was under [`MIN_TIMED_CPU`]
    /// of CPU (`time_vs_scratch`, `total_vs_retrain`, ...): too short to time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub too_short_to_time: Vec<String>,
    /// The score on the final test slice (`split.holdout`), beside the daily means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutEntry>,
    /// Holdout AUC minus kd's.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub holdout_auc_vs_kd: Option<f64>,
    pub failed: Option<String>,
}

impl ArmVerdict {
    /// A ratio of this arm's (`time_vs_scratch`, ...) as a table shows it: `0.27x`, `short`
    /// when a figure was too short to time, `-` when there is none.
    pub fn ratio_text(&self, name: &str, value: Option<f64>) -> String {
        match value {
            Some(v) => format!("{}x", num::fixed(v, 2)),
            None if self.too_short_to_time.iter().any(|n| n == name) => "short".into(),
            None => "-".into(),
        }
    }

    /// Days to switch, the compute until then and the degradation before it, in one sentence
    /// (student arms judged by the gate; `None` otherwise).
    pub fn switch_sentence(&self) -> Option<String> {
        self.gate.as_ref()?;
        let area = self
            .degradation_area
            .map_or("-".into(), |v| num::fixed(v, 4));
        Some(match (self.days_to_switch, self.switch_day) {
            (Some(n), Some(day)) => {
                let wall = self
                    .seconds_to_switch
                    .map_or("-".into(), |v| num::fixed(v, 1));
                let spent = match self.cpu_seconds_to_switch {
                    Some(cpu) => format!("{} CPU s ({wall} s wall)", num::fixed(cpu, 1)),
                    None => format!("{wall} s"),
                };
                format!(
                    "switches after {n} online day(s) (day {day}), {spent} of training until then; AUC degradation before it {area}"
                )
            }
            _ => format!("never switches in the online window; AUC degradation over it {area}"),
        })
    }
}

/// The figures a switch decision rests on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// crossadapt's offline wall time as a fraction of scratch's (its `time_vs_scratch`).
    #[serde(default, with = "num::opt")]
    pub time_fraction_vs_scratch: Option<f64>,
    /// crossadapt's offline AUC minus kd's.
    #[serde(default, with = "num::opt")]
    pub offline_auc_minus_kd: Option<f64>,
    /// The shock day, when the source has one inside the online window.
    pub shock_day: Option<u32>,
    /// Mean AUC per arm over the `RECOVERY_DAYS` days from the shock on.
    #[serde(default, with = "num::map")]
    pub post_shock_mean_auc: BTreeMap<String, f64>,
    /// Mean |bias| per arm over all online days.
    #[serde(default, with = "num::map")]
    pub online_mean_abs_bias: BTreeMap<String, f64>,
}

/// Every arm's verdict and the headline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub arms: Vec<ArmVerdict>,
    pub headline: Headline,
}

/// The CPU seconds of `days` added up; `None` when a day has none (a log from before CPU time
/// was measured), so a sum never mixes measured and missing days.
fn cpu_sum<'a>(days: impl Iterator<Item = &'a DayEntry>) -> Option<f64> {
    days.map(|d| d.cpu_seconds).sum()
}

/// A compute ratio of two arms, or why there is none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ratio {
    Of(f64),
    /// A figure under [`MIN_TIMED_CPU`] of CPU: too short to time.
    TooShort,
    /// A figure is zero or missing (the arm did not train in that stage).
    None,
}

/// `own / reference` of two `(wall seconds, CPU seconds)` figures: of CPU seconds when both
/// have them, too short to time when either is under [`MIN_TIMED_CPU`]; of wall seconds when
/// either lacks CPU (a log written before CPU time was measured reads as it did then).
pub fn compute_ratio(own: (f64, Option<f64>), reference: (f64, Option<f64>)) -> Ratio {
    if !(own.0 > 0.0 && reference.0 > 0.0) {
        return Ratio::None;
    }
    match (own.1, reference.1) {
        (Some(a), Some(b)) if a < MIN_TIMED_CPU || b < MIN_TIMED_CPU => Ratio::TooShort,
        (Some(a), Some(b)) => Ratio::Of(a / b),
        _ => Ratio::Of(own.0 / reference.0),
    }
}

/// Mean of the finite values (`None` when there are none).
fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = xs
        .filter(|x| x.is_finite())
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

impl Ledger {
    /// The arms the migration gate judges, with their status so far: every arm but the
    /// incumbent, when the session has an incumbent arm (empty otherwise: no gate).
    pub fn gates(&self) -> Vec<(usize, Option<GateStatus>)> {
        if !self.arms.iter().any(|a| a.kind == Some(ArmKind::Incumbent)) {
            return Vec::new();
        }
        self.arms
            .iter()
            .enumerate()
            .filter(|(_, a)| a.kind != Some(ArmKind::Incumbent))
            .map(|(i, a)| (i, a.gate_status(&self.plan.online)))
            .collect()
    }

    /// A ledger of `records` (a log, a test's stream).
    pub fn of(records: &[Record]) -> Ledger {
        let mut l = Ledger::default();
        for r in records {
            l.apply(r);
        }
        l
    }

    /// Folds one record in.
    pub fn apply(&mut self, rec: &Record) {
        self.clock = rec.t;
        self.records += 1;
        match &rec.event {
            EngineEvent::SessionStarted {
                session,
                name,
                arms,
                teacher,
                days,
                params,
                seed,
            } => {
                self.session = session.clone();
                self.name = name.clone();
                self.teacher = teacher.clone();
                self.plan = days.clone();
                self.params = Some(params.clone());
                self.seed = Some(*seed);
                self.lifecycle = Lifecycle::Running;
                for a in arms {
                    self.arm_mut(&a.name).model = a.model.clone();
                }
            }
            EngineEvent::SessionResumed { .. } => {
                self.lifecycle = Lifecycle::Running;
                self.error = None;
            }
            EngineEvent::StageStarted {
                stage,
                arm,
                day,
                total,
            } => {
                self.stage = *stage;
                self.stage_arm = arm.clone();
                self.stage_day = *day;
                self.progress = Some(Progress {
                    total: *total,
                    ..Default::default()
                });
            }
            EngineEvent::Progress {
                stage,
                arm,
                day,
                done,
                total,
                samples_per_sec,
                eta_secs,
            } => {
                self.stage = *stage;
                if arm.is_some() {
                    self.stage_arm = arm.clone();
                }
                if day.is_some() {
                    self.stage_day = *day;
                }
                self.progress = Some(Progress {
                    done: *done,
                    total: *total,
                    samples_per_sec: *samples_per_sec,
                    eta_secs: *eta_secs,
                });
            }
            EngineEvent::StageFinished {
                stage: Stage::TeacherPretrain,
                seconds,
                ..
            } => self.teacher_seconds = Some(*seconds),
            EngineEvent::StageFinished { .. } => {}
            EngineEvent::Projection { arm, fields } => {
                self.arm_mut(arm).projection = fields.clone();
            }
            EngineEvent::OfflineResult {
                arm,
                seconds,
                samples,
                samples_per_sec,
                metrics,
                cpu_seconds,
            } => {
                self.arm_mut(arm).offline = Some(OfflineEntry {
                    cpu_seconds: *cpu_seconds,
                    seconds: *seconds,
                    samples: *samples,
                    // Logs written before the field existed: from the same record's figures.
                    samples_per_sec: samples_per_sec.or_else(|| throughput(*samples, *seconds)),
                    metrics: metrics.clone(),
                });
            }
            EngineEvent::Updates {
                arm,
                day,
                to_batch,
                student,
                teacher,
                ..
            } => {
                let ticks = self.arm_mut(arm).ticks.get_or_insert_with(Default::default);
                if ticks.day != *day || ticks.batches > *to_batch {
                    *ticks = DayTicks {
                        day: *day,
                        ..Default::default()
                    };
                }
                ticks.student.extend(student);
                ticks.teacher.extend(teacher);
                ticks.batches = *to_batch;
                let seen = self.day_batches.entry(*day).or_default();
                *seen = (*seen).max(*to_batch);
            }
            EngineEvent::Drift {
                day,
                batch,
                weight,
                distill_weight,
                replay_ratio,
                label_rate,
                reference_label_rate,
                fields,
            } => {
                let reading = DriftReading {
                    day: *day,
                    batch: *batch,
                    weight: *weight,
                    distill_weight: *distill_weight,
                    replay_ratio: *replay_ratio,
                    label_rate: *label_rate,
                    reference_label_rate: *reference_label_rate,
                    fields: fields.clone(),
                };
                if batch.is_none() {
                    self.drift.insert(*day, reading.clone());
                }
                self.drift_now = Some(reading);
            }
            EngineEvent::DayMetrics {
                arm,
                day,
                metrics,
                train_seconds,
                samples,
                samples_per_sec,
                student_updates,
                teacher_updates,
                distill_weight,
                calibration,
                matched_weight,
                cpu_seconds,
            } => {
                let params = self.params.clone();
                self.arm_mut(arm).days.insert(
                    *day,
                    DayEntry {
                        metrics: metrics.clone(),
                        train_seconds: *train_seconds,
                        samples: *samples,
                        samples_per_sec: *samples_per_sec,
                        student_updates: *student_updates,
                        teacher_updates: *teacher_updates,
                        distill_weight: *distill_weight,
                        calibration: *calibration,
                        matched_weight: *matched_weight,
                        params,
                        cpu_seconds: *cpu_seconds,
                    },
                );
            }
            EngineEvent::Gate {
                arm,
                day,
                auc,
                logloss,
                rule,
                ..
            } => {
                self.arm_mut(arm).gate.insert(
                    *day,
                    GateDay {
                        auc: *auc,
                        logloss: *logloss,
                        rule: *rule,
                    },
                );
            }
            EngineEvent::Tuned { tuning } => self.tuning = Some(tuning.clone()),
            EngineEvent::Holdout {
                arm, days, metrics, ..
            } => {
                self.arm_mut(arm).holdout = Some(HoldoutEntry {
                    days: days.clone(),
                    metrics: metrics.clone(),
                });
            }
            EngineEvent::Operator { command, .. } => match command {
                EngineCommand::Pause if self.lifecycle == Lifecycle::Running => {
                    self.lifecycle = Lifecycle::Pausing;
                }
                // A resume before the pending pause took effect cancels it.
                EngineCommand::Resume if self.lifecycle == Lifecycle::Pausing => {
                    self.lifecycle = Lifecycle::Running;
                }
                _ => {}
            },
            EngineEvent::ParamsChanged { params, .. } => self.params = Some(params.clone()),
            EngineEvent::Paused { .. } => self.lifecycle = Lifecycle::Paused,
            EngineEvent::Resumed { .. } => self.lifecycle = Lifecycle::Running,
            EngineEvent::ArmFailed { arm, message } => {
                self.arm_mut(arm).failed = Some(message.clone());
            }
            EngineEvent::Finished { .. } => {
                self.lifecycle = Lifecycle::Done;
                self.stage = Stage::Done;
            }
            EngineEvent::Error { message } => {
                self.lifecycle = Lifecycle::Failed;
                self.error = Some(message.clone());
            }
            EngineEvent::ParamsRefused { .. }
            | EngineEvent::Checkpointed { .. }
            | EngineEvent::Warning { .. }
            | EngineEvent::Unknown => {}
        }
    }

    fn arm_mut(&mut self, name: &str) -> &mut ArmLedger {
        let i = match self.arms.iter().position(|a| a.name == name) {
            Some(i) => i,
            None => {
                self.arms.push(ArmLedger {
                    name: name.to_string(),
                    kind: ArmKind::parse(name).ok(),
                    ..Default::default()
                });
                self.arms.len() - 1
            }
        };
        &mut self.arms[i]
    }

    pub fn arm(&self, name: &str) -> Option<&ArmLedger> {
        self.arms.iter().find(|a| a.name == name)
    }

    /// The first arm of `kind`.
    pub fn arm_of(&self, kind: ArmKind) -> Option<&ArmLedger> {
        self.arms.iter().find(|a| a.kind == Some(kind))
    }

    /// The latest online day any arm has metrics for.
    pub fn last_day(&self) -> Option<u32> {
        self.arms
            .iter()
            .filter_map(|a| a.days.keys().next_back().copied())
            .max()
    }

    /// Every arm still running has its metrics for `day`.
    pub fn day_complete(&self, day: u32) -> bool {
        self.arms
            .iter()
            .filter(|a| a.failed.is_none())
            .all(|a| a.days.contains_key(&day))
    }

    /// Every online day with metrics of at least one arm, in order.
    pub fn days(&self) -> Vec<u32> {
        let mut days: Vec<u32> = self
            .arms
            .iter()
            .flat_map(|a| a.days.keys().copied())
            .collect();
        days.sort_unstable();
        days.dedup();
        days
    }

    /// The switch verdict; `shock_day` comes from the data source's config when it has one.
    pub fn verdict(&self, shock_day: Option<u32>) -> Verdict {
        let mut arms: Vec<ArmVerdict> = self
            .arms
            .iter()
            .map(|a| {
                let days = || a.days.values().map(|d| &d.metrics);
                let offline_seconds = a.offline.as_ref().map_or(0.0, |o| o.seconds);
                let online_seconds: f64 = a.days.values().map(|d| d.train_seconds).sum();
                let offline_cpu = a.offline.as_ref().and_then(|o| o.cpu_seconds);
                let online_cpu = cpu_sum(a.days.values());
                ArmVerdict {
                    offline_cpu_seconds: offline_cpu,
                    online_cpu_seconds: online_cpu,
                    total_cpu_seconds: offline_cpu.zip(online_cpu).map(|(a, b)| a + b),
                    arm: a.name.clone(),
                    model: a.model.clone(),
                    offline_seconds: a.offline.as_ref().map_or(0.0, |o| o.seconds),
                    offline_samples: a.offline.as_ref().map_or(0, |o| o.samples),
                    offline: a.offline.as_ref().map(|o| o.metrics.clone()),
                    offline_samples_per_sec: a.offline.as_ref().and_then(|o| o.samples_per_sec),
                    online_samples_per_sec: mean(a.days.values().map(|d| d.samples_per_sec)),
                    online_mean_auc: mean(days().filter_map(|m| m.auc)),
                    online_mean_logloss: mean(days().map(|m| m.logloss)),
                    online_mean_abs_bias: mean(days().filter_map(|m| m.abs_bias())),
                    online_seconds,
                    total_seconds: offline_seconds + online_seconds,
                    gate: a.gate_status(&self.plan.online),
                    holdout: a.holdout.clone(),
                    failed: a.failed.clone(),
                    ..Default::default()
                }
            })
            .collect();
        let of = |kind: ArmKind| {
            self.arms
                .iter()
                .position(|a| a.kind == Some(kind))
                .map(|i| arms[i].clone())
        };
        let scratch = of(ArmKind::Scratch);
        let kd = of(ArmKind::Kd);
        let retrain = of(ArmKind::Retrain);
        let incumbent = self
            .arms
            .iter()
            .find(|a| a.kind == Some(ArmKind::Incumbent));
        for (v, a) in arms.iter_mut().zip(&self.arms) {
            if let Some(inc) = incumbent.filter(|_| a.kind != Some(ArmKind::Incumbent)) {
                self.switch_figures(v, a, inc);
            }
            for (reference, time, total) in [
                (&scratch, "time_vs_scratch", "total_vs_scratch"),
                (&retrain, "time_vs_retrain", "total_vs_retrain"),
            ] {
                let Some(re) = reference else {
                    continue;
                };
                let offline = |a: &ArmVerdict| (a.offline_seconds, a.offline_cpu_seconds);
                let all = |a: &ArmVerdict| (a.total_seconds, a.total_cpu_seconds);
                let time_ratio = if v.offline_samples > 0 {
                    compute_ratio(offline(v), offline(re))
                } else {
                    Ratio::None
                };
                for (name, ratio) in [(time, time_ratio), (total, compute_ratio(all(v), all(re)))] {
                    let value = match ratio {
                        Ratio::Of(r) => Some(r),
                        Ratio::TooShort => {
                            v.too_short_to_time.push(name.to_string());
                            None
                        }
                        Ratio::None => None,
                    };
                    match name {
                        "time_vs_scratch" => v.time_vs_scratch = value,
                        "total_vs_scratch" => v.total_vs_scratch = value,
                        "time_vs_retrain" => v.time_vs_retrain = value,
                        _ => v.total_vs_retrain = value,
                    }
                }
            }
            if let Some(kd) = &kd {
                v.auc_vs_kd = v
                    .online_mean_auc
                    .zip(kd.online_mean_auc)
                    .map(|(a, b)| a - b);
                v.abs_bias_vs_kd = v
                    .online_mean_abs_bias
                    .zip(kd.online_mean_abs_bias)
                    .map(|(a, b)| a - b);
                let holdout_auc = |a: &ArmVerdict| a.holdout.as_ref().and_then(|h| h.metrics.auc);
                v.holdout_auc_vs_kd = holdout_auc(v).zip(holdout_auc(kd)).map(|(a, b)| a - b);
            }
        }
        let headline = self.headline(&arms, shock_day);
        Verdict { arms, headline }
    }

    /// Days to switch, the compute until then and the degradation before it, for a student
    /// arm `a` against the incumbent `inc` (the gate's fold says when it switched).
    fn switch_figures(&self, v: &mut ArmVerdict, a: &ArmLedger, inc: &ArmLedger) {
        let Some(gate) = &v.gate else {
            return;
        };
        let online = &self.plan.online;
        v.switch_day = gate.first_met;
        v.days_to_switch = gate.days_to_switch(online);
        let before = |d: &u32| gate.first_met.is_none_or(|s| *d < s);
        if let Some(s) = gate.first_met {
            let online_before: f64 = a.days.range(..s).map(|(_, e)| e.train_seconds).sum();
            v.seconds_to_switch = Some(v.offline_seconds + online_before);
            let cpu_before = cpu_sum(a.days.range(..s).map(|(_, e)| e));
            v.cpu_seconds_to_switch = v.offline_cpu_seconds.zip(cpu_before).map(|(a, b)| a + b);
        }
        let gaps = a
            .days
            .iter()
            .filter(|(d, _)| before(d))
            .filter_map(|(d, e)| {
                let own = e.metrics.auc?;
                let theirs = inc.days.get(d)?.metrics.auc?;
                Some((theirs - own).max(0.0))
            });
        v.degradation_area = Some(gaps.sum());
    }

    fn headline(&self, arms: &[ArmVerdict], shock_day: Option<u32>) -> Headline {
        let full = ArmKind::CrossAdapt(CrossAdaptVariant::FULL);
        let of = |kind: ArmKind| {
            self.arms
                .iter()
                .position(|a| a.kind == Some(kind))
                .map(|i| &arms[i])
        };
        let mut h = Headline::default();
        if let Some(ca) = of(full) {
            h.time_fraction_vs_scratch = ca.time_vs_scratch;
            if let Some(kd) = of(ArmKind::Kd) {
                let auc = |a: &ArmVerdict| a.offline.as_ref().and_then(|m| m.auc);
                h.offline_auc_minus_kd = auc(ca).zip(auc(kd)).map(|(a, b)| a - b);
            }
        }
        h.shock_day =
            shock_day.filter(|d| self.arms.first().is_some_and(|a| a.days.contains_key(d)));
        for (a, v) in self.arms.iter().zip(arms) {
            if let Some(m) = v.online_mean_abs_bias {
                h.online_mean_abs_bias.insert(a.name.clone(), m);
            }
            if let Some(shock) = h.shock_day {
                let window = shock..shock + RECOVERY_DAYS as u32;
                let aucs = a.days.range(window).filter_map(|(_, d)| d.metrics.auc);
                if let Some(m) = mean(aucs) {
                    h.post_shock_mean_auc.insert(a.name.clone(), m);
                }
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::{ArmInfo, Position, EVENT_SCHEMA_VERSION};

    fn rec(seq: u64, event: EngineEvent) -> Record {
        Record {
            v: EVENT_SCHEMA_VERSION,
            seq,
            t: seq as f64,
            event,
        }
    }

    fn params() -> Params {
        Params {
            sampling_ratio: 0.1,
            replay_ratio: 0.1,
            teacher_interval: 10,
            distill_min: 0.2,
            distill_max: 0.7,
        }
    }

    fn metrics(auc: Option<f64>, bias: f64) -> EvalMetrics {
        EvalMetrics {
            auc,
            logloss: 0.4,
            bias,
            ne: 0.9,
            gauc: None,
            rows: 10,
        }
    }

    fn day(arm: &str, day: u32, auc: Option<f64>, bias: f64) -> EngineEvent {
        EngineEvent::DayMetrics {
            arm: arm.into(),
            day,
            metrics: metrics(auc, bias),
            train_seconds: 1.0,
            samples: 10,
            samples_per_sec: 10.0,
            student_updates: 2,
            teacher_updates: 1,
            distill_weight: None,
            calibration: None,
            matched_weight: None,
            cpu_seconds: None,
        }
    }

    /// Four arms: offline seconds 40 (scratch), 30 (kd), 10 (crossadapt), none (incumbent);
    /// two online days each.
    fn known() -> Vec<Record> {
        let arms = [
            ("scratch", 40.0, [0.70, 0.72], [0.1, 0.1]),
            ("kd", 30.0, [0.71, 0.73], [0.2, -0.2]),
            ("crossadapt", 10.0, [0.73, 0.75], [0.05, -0.05]),
            ("incumbent", 0.0, [0.72, 0.72], [0.0, 0.0]),
        ];
        let mut events = vec![EngineEvent::SessionStarted {
            session: "s".into(),
            name: "n".into(),
            arms: arms
                .iter()
                .map(|(n, ..)| ArmInfo {
                    name: n.to_string(),
                    model: "m".into(),
                })
                .collect(),
            teacher: "t".into(),
            days: DayPlan {
                history: vec![0],
                retained: vec![1],
                online: vec![2, 3],
                holdout: vec![],
                unused: vec![],
            },
            params: params(),
            seed: 7,
        }];
        for (name, secs, ..) in &arms {
            events.push(EngineEvent::OfflineResult {
                arm: name.to_string(),
                seconds: *secs,
                samples: if *secs > 0.0 { 100 } else { 0 },
                samples_per_sec: None,
                metrics: metrics(Some(0.7 + secs / 1000.0), 0.0),
                cpu_seconds: None,
            });
        }
        for d in 0..2 {
            for (name, _, aucs, biases) in &arms {
                events.push(day(name, 2 + d, Some(aucs[d as usize]), biases[d as usize]));
            }
        }
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| rec(i as u64, e))
            .collect()
    }

    #[test]
    fn the_verdict_compares_time_with_scratch_and_quality_with_kd_once() {
        let l = Ledger::of(&known());
        let v = l.verdict(Some(3));
        let ca = &v.arms[2];
        assert_eq!(ca.arm, "crossadapt");
        assert!((ca.time_vs_scratch.unwrap() - 0.25).abs() < 1e-12);
        assert!((ca.auc_vs_kd.unwrap() - 0.02).abs() < 1e-9);
        assert!((ca.abs_bias_vs_kd.unwrap() + 0.15).abs() < 1e-9);
        assert_eq!(v.arms[3].time_vs_scratch, None, "no offline training");
        // The headline reads the same comparison, not a second one.
        assert_eq!(v.headline.time_fraction_vs_scratch, ca.time_vs_scratch);
        assert!((v.headline.offline_auc_minus_kd.unwrap() + 0.02).abs() < 1e-9);
        assert_eq!(v.headline.shock_day, Some(3));
        assert!((v.headline.post_shock_mean_auc["crossadapt"] - 0.75).abs() < 1e-12);
        assert!((v.headline.online_mean_abs_bias["kd"] - 0.2).abs() < 1e-12);
        assert_eq!(l.days(), vec![2, 3]);
        assert!(l.day_complete(3));
        assert_eq!(l.last_day(), Some(3));
        assert_eq!(l.arm("kd").unwrap().kind, Some(ArmKind::Kd));
    }

    /// With CPU seconds in the log the ratios are of CPU, whatever the wall clock says; a
    /// figure under a quarter of a CPU second gives no ratio, and says why; without CPU (an
    /// older log) the ratios stay of wall seconds.
    #[test]
    fn compute_ratios_are_of_cpu_seconds_and_short_stages_are_not_timed() {
        assert_eq!(
            compute_ratio((2.0, Some(1.0)), (4.0, Some(4.0))),
            Ratio::Of(0.25)
        );
        assert_eq!(compute_ratio((2.0, None), (4.0, Some(4.0))), Ratio::Of(0.5));
        assert_eq!(
            compute_ratio((2.0, Some(0.04)), (4.0, Some(4.0))),
            Ratio::TooShort
        );
        assert_eq!(
            compute_ratio((2.0, Some(1.0)), (4.0, Some(0.249))),
            Ratio::TooShort
        );
        assert_eq!(
            compute_ratio((2.0, Some(0.25)), (4.0, Some(1.0))),
            Ratio::Of(0.25)
        );
        assert_eq!(
            compute_ratio((0.0, Some(1.0)), (4.0, Some(4.0))),
            Ratio::None
        );

        // Wall seconds 40 (scratch) and 10 (crossadapt), as `known`; CPU 8 and 6 offline, and
        // 1 CPU second a day online; kd's offline stage took 0.01 CPU seconds.
        let cpu = |arm: &str| match arm {
            "scratch" => 8.0,
            "crossadapt" => 6.0,
            "kd" => 0.01,
            _ => 0.0,
        };
        let records: Vec<Record> = known()
            .into_iter()
            .map(|mut r| {
                match &mut r.event {
                    EngineEvent::OfflineResult {
                        arm, cpu_seconds, ..
                    } => *cpu_seconds = Some(cpu(arm)),
                    EngineEvent::DayMetrics { cpu_seconds, .. } => *cpu_seconds = Some(1.0),
                    _ => {}
                }
                r
            })
            .collect();
        let v = Ledger::of(&records).verdict(None);
        let (kd, ca) = (&v.arms[1], &v.arms[2]);
        assert_eq!(ca.offline_cpu_seconds, Some(6.0));
        assert_eq!(
            (ca.online_cpu_seconds, ca.total_cpu_seconds),
            (Some(2.0), Some(8.0))
        );
        assert!(
            (ca.time_vs_scratch.unwrap() - 0.75).abs() < 1e-12,
            "CPU, not wall's 0.25"
        );
        assert!((ca.total_vs_scratch.unwrap() - 0.8).abs() < 1e-12);
        assert!(ca.too_short_to_time.is_empty());
        assert_eq!(kd.time_vs_scratch, None);
        assert_eq!(kd.too_short_to_time, ["time_vs_scratch"]);
        assert_eq!(
            kd.ratio_text("time_vs_scratch", kd.time_vs_scratch),
            "short"
        );
        assert!((kd.total_vs_scratch.unwrap() - 2.01 / 10.0).abs() < 1e-12);
    }

    /// Each arm's training throughput: offline from its `OfflineResult` (its own field, or its
    /// seconds and samples in a log written before the field), online the mean of its days'.
    #[test]
    fn the_verdict_carries_each_arms_offline_and_online_samples_per_second() {
        let mut records = known();
        let n = records.len() as u64;
        // kd's offline result again, now with the field (a redone offline stage).
        records.push(rec(
            n,
            EngineEvent::OfflineResult {
                arm: "kd".into(),
                seconds: 30.0,
                samples: 100,
                samples_per_sec: Some(4.0),
                metrics: metrics(Some(0.73), 0.0),
                cpu_seconds: None,
            },
        ));
        records.push(rec(
            n + 1,
            EngineEvent::DayMetrics {
                arm: "crossadapt".into(),
                day: 4,
                metrics: metrics(Some(0.75), 0.0),
                train_seconds: 2.0,
                samples: 10,
                samples_per_sec: 40.0,
                student_updates: 2,
                teacher_updates: 1,
                distill_weight: None,
                calibration: None,
                matched_weight: None,
                cpu_seconds: None,
            },
        ));
        let l = Ledger::of(&records);
        assert_eq!(
            l.arm("kd")
                .unwrap()
                .offline
                .as_ref()
                .unwrap()
                .samples_per_sec,
            Some(4.0)
        );
        let v = l.verdict(None);
        let rate = |i: usize| {
            (
                v.arms[i].offline_samples_per_sec,
                v.arms[i].online_samples_per_sec,
            )
        };
        assert_eq!(rate(0), (Some(100.0 / 40.0), Some(10.0)), "scratch");
        assert_eq!(rate(1), (Some(4.0), Some(10.0)), "kd, from the field");
        assert_eq!(
            rate(2),
            (Some(10.0), Some(20.0)),
            "crossadapt: days at 10, 10 and 40"
        );
        assert_eq!(
            rate(3),
            (None, Some(10.0)),
            "the incumbent trains nothing offline"
        );
        assert_eq!(throughput(0, 1.0), None);
        assert_eq!(throughput(5, 0.0), None);
    }

    #[test]
    fn undefined_metrics_of_a_one_class_day_stay_out_of_the_means() {
        let mut records = known();
        let n = records.len() as u64;
        // Day 4: no clicks at all, so no AUC, an infinite bias and a NaN NE.
        records.push(rec(
            n,
            EngineEvent::DayMetrics {
                arm: "kd".into(),
                day: 4,
                metrics: EvalMetrics {
                    auc: None,
                    logloss: 0.1,
                    bias: f64::INFINITY,
                    ne: f64::NAN,
                    gauc: None,
                    rows: 10,
                },
                train_seconds: 1.0,
                samples: 10,
                samples_per_sec: 10.0,
                student_updates: 2,
                teacher_updates: 1,
                distill_weight: None,
                calibration: None,
                matched_weight: None,
                cpu_seconds: None,
            },
        ));
        let v = Ledger::of(&records).verdict(None);
        let kd = &v.arms[1];
        assert!((kd.online_mean_auc.unwrap() - 0.72).abs() < 1e-12);
        assert!((kd.online_mean_abs_bias.unwrap() - 0.2).abs() < 1e-12);
        assert!((kd.online_mean_logloss.unwrap() - 0.3).abs() < 1e-12);
    }

    #[test]
    fn lifecycle_params_and_redone_days_follow_the_records() {
        let mut l = Ledger::of(&known());
        assert_eq!(l.lifecycle, Lifecycle::Running);
        let at = Position::default();
        let mut seq = 100;
        let mut push = |l: &mut Ledger, e: EngineEvent| {
            l.apply(&rec(seq, e));
            seq += 1;
        };
        push(
            &mut l,
            EngineEvent::Operator {
                command: EngineCommand::Pause,
                at: at.clone(),
            },
        );
        assert_eq!(l.lifecycle, Lifecycle::Pausing);
        push(&mut l, EngineEvent::Paused { at: at.clone() });
        assert_eq!(l.lifecycle, Lifecycle::Paused);
        push(
            &mut l,
            EngineEvent::ParamsRefused {
                field: "sampling_ratio".into(),
                reason: "too big".into(),
                at: at.clone(),
            },
        );
        assert_eq!(l.params, Some(params()), "a refused change changes nothing");
        let changed = Params {
            sampling_ratio: 0.2,
            ..params()
        };
        push(
            &mut l,
            EngineEvent::ParamsChanged {
                params: changed.clone(),
                at: at.clone(),
            },
        );
        push(&mut l, EngineEvent::Resumed { at });
        assert_eq!(l.lifecycle, Lifecycle::Running);
        // Day 3 of kd redone (after a resume): the last result stands, with the new params.
        push(&mut l, day("kd", 3, Some(0.5), 0.0));
        let kd = l.arm("kd").unwrap();
        assert_eq!(kd.days.len(), 2);
        assert_eq!(kd.days[&3].metrics.auc, Some(0.5));
        assert_eq!(kd.days[&3].params, Some(changed));
        push(
            &mut l,
            EngineEvent::ArmFailed {
                arm: "scratch".into(),
                message: "loss became NaN".into(),
            },
        );
        push(&mut l, day("kd", 4, Some(0.5), 0.0));
        assert!(!l.day_complete(4), "crossadapt and incumbent are still due");
        push(&mut l, EngineEvent::Finished {});
        assert_eq!((l.lifecycle, l.stage), (Lifecycle::Done, Stage::Done));
        push(
            &mut l,
            EngineEvent::Error {
                message: "disk full".into(),
            },
        );
        assert_eq!(l.lifecycle, Lifecycle::Failed);
        assert_eq!(l.error.as_deref(), Some("disk full"));
    }
}
