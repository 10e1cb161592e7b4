//! What the console knows about a run, built only from the engine's records: every number shown
//! is carried by an event (the console formats, it never recomputes).

use std::collections::BTreeMap;

use crate::engine::events::{
    ArmSummary, DayPlan, EngineCommand, EngineEvent, EvalMetrics, FieldDrift, Params, Position,
    Record, Stage,
};
use crate::engine::report::Report;

/// Lines kept in the event log panel.
pub const LOG_CAPACITY: usize = 500;

/// The engine's state as the events tell it.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum EngineState {
    /// No event yet.
    #[default]
    Starting,
    Running,
    /// A pause was applied and takes effect at the next safe point (end of the arm's day).
    Pausing,
    Paused,
    Done,
    Failed(String),
}

/// One arm's results.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArmSeries {
    pub name: String,
    pub model: String,
    /// Offline result (evaluated on the first online day before training on it).
    pub offline: Option<EvalMetrics>,
    /// Test-then-train results per online day.
    pub days: BTreeMap<u32, EvalMetrics>,
    /// (student, teacher) updates per finished day.
    pub counts: BTreeMap<u32, (u32, u32)>,
    pub failed: Option<String>,
}

/// The update ticks of one arm on the day it is on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DayTicks {
    pub day: u32,
    pub student: Vec<u32>,
    pub teacher: Vec<u32>,
    /// Batches covered so far (`to_batch` of the last `Updates`).
    pub batches: u32,
}

/// The latest `Progress`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProgressInfo {
    pub done: u64,
    pub total: u64,
    pub samples_per_sec: f64,
    pub eta_secs: Option<f64>,
}

/// The latest drift measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct DriftNow {
    pub day: u32,
    pub batch: Option<u32>,
    pub weight: f64,
    pub distill_weight: f64,
    pub replay_ratio: f64,
    pub label_rate: f64,
    pub reference_label_rate: f64,
    pub fields: Vec<FieldDrift>,
}

/// Kinds of log lines (styled differently).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    Stage,
    Info,
    Operator,
    Checkpoint,
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    pub t: f64,
    pub kind: LogKind,
    pub text: String,
}

/// Everything the panels draw, folded from the record stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    pub session: String,
    pub name: String,
    pub teacher: String,
    pub plan: DayPlan,
    pub arms: Vec<ArmSeries>,
    /// The parameters the engine confirmed last.
    pub params: Option<Params>,
    pub stage: Stage,
    pub stage_arm: Option<String>,
    pub stage_day: Option<u32>,
    pub progress: Option<ProgressInfo>,
    pub engine: EngineState,
    pub ticks: BTreeMap<String, DayTicks>,
    /// Batches per online day, as far as seen.
    pub day_batches: BTreeMap<u32, u32>,
    pub drift: Option<DriftNow>,
    /// Day-level drift: (day, weight, distill weight).
    pub drift_history: Vec<(u32, f64, f64)>,
    pub log: Vec<LogLine>,
    pub summary: Option<Vec<ArmSummary>>,
    pub report: Option<Report>,
    /// Seconds of engine time of the last record.
    pub clock: f64,
    pub records_seen: u64,
    /// The records the report is built from (progress ticks are left out).
    kept: Vec<Record>,
}

impl Model {
    /// Folds one record in.
    pub fn apply(&mut self, rec: &Record) {
        self.clock = rec.t;
        self.records_seen += 1;
        if !matches!(rec.event, EngineEvent::Progress { .. }) {
            self.kept.push(rec.clone());
        }
        let t = rec.t;
        match &rec.event {
            EngineEvent::SessionStarted {
                session,
                name,
                arms,
                teacher,
                days,
                params,
                ..
            } => {
                self.session = session.clone();
                self.name = name.clone();
                self.teacher = teacher.clone();
                self.plan = days.clone();
                self.params = Some(params.clone());
                self.engine = EngineState::Running;
                for a in arms {
                    self.arm_mut(&a.name).model = a.model.clone();
                }
                self.log(
                    t,
                    LogKind::Stage,
                    format!("session started: {} arms, teacher {teacher}", arms.len()),
                );
            }
            EngineEvent::SessionResumed { from } => {
                self.engine = EngineState::Running;
                self.log(
                    t,
                    LogKind::Stage,
                    format!("resumed from the checkpoint at {}", position(from)),
                );
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
                self.progress = Some(ProgressInfo {
                    total: *total,
                    ..Default::default()
                });
                if *stage != Stage::Done {
                    let what = stage_text(*stage, arm.as_deref(), *day);
                    self.log(t, LogKind::Stage, format!("▸ {what}"));
                }
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
                self.progress = Some(ProgressInfo {
                    done: *done,
                    total: *total,
                    samples_per_sec: *samples_per_sec,
                    eta_secs: *eta_secs,
                });
            }
            EngineEvent::StageFinished {
                stage,
                arm,
                day,
                seconds,
                ..
            } => {
                if *stage != Stage::Online || (day.is_some() && arm.is_none()) {
                    let what = stage_text(*stage, arm.as_deref(), *day);
                    self.log(t, LogKind::Info, format!("✓ {what} in {seconds:.1}s"));
                }
            }
            EngineEvent::Projection { arm, fields } => {
                let worst = fields.iter().map(|f| f.rel_error).fold(0.0, f64::max);
                self.log(
                    t,
                    LogKind::Info,
                    format!(
                        "1A {arm}: {} fields projected, worst rel. error {worst:.1e}",
                        fields.len()
                    ),
                );
            }
            EngineEvent::OfflineResult {
                arm,
                seconds,
                metrics,
                ..
            } => {
                self.arm_mut(arm).offline = Some(metrics.clone());
                self.log(
                    t,
                    LogKind::Info,
                    format!(
                        "{arm} offline: AUC {} in {seconds:.1}s",
                        auc_text(metrics.auc)
                    ),
                );
            }
            EngineEvent::Updates {
                arm,
                day,
                to_batch,
                student,
                teacher,
                ..
            } => {
                let ticks = self.ticks.entry(arm.clone()).or_default();
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
                if batch.is_none() {
                    self.drift_history.retain(|(d, _, _)| d != day);
                    self.drift_history.push((*day, *weight, *distill_weight));
                }
                self.drift = Some(DriftNow {
                    day: *day,
                    batch: *batch,
                    weight: *weight,
                    distill_weight: *distill_weight,
                    replay_ratio: *replay_ratio,
                    label_rate: *label_rate,
                    reference_label_rate: *reference_label_rate,
                    fields: fields.clone(),
                });
            }
            EngineEvent::DayMetrics {
                arm,
                day,
                metrics,
                student_updates,
                teacher_updates,
                ..
            } => {
                let a = self.arm_mut(arm);
                a.days.insert(*day, metrics.clone());
                a.counts.insert(*day, (*student_updates, *teacher_updates));
            }
            EngineEvent::Operator { command, at } => {
                match command {
                    EngineCommand::Pause if self.engine == EngineState::Running => {
                        self.engine = EngineState::Pausing;
                    }
                    // A resume before the pending pause took effect cancels it.
                    EngineCommand::Resume if self.engine == EngineState::Pausing => {
                        self.engine = EngineState::Running;
                    }
                    _ => {}
                }
                self.log(
                    t,
                    LogKind::Operator,
                    format!("operator: {} at {}", command_text(command), position(at)),
                );
            }
            EngineEvent::ParamsChanged { params, at } => {
                let text = match &self.params {
                    Some(old) => params_diff(old, params),
                    None => "parameters set".into(),
                };
                self.params = Some(params.clone());
                self.log(
                    t,
                    LogKind::Operator,
                    format!("applied {text} at {}", position(at)),
                );
            }
            EngineEvent::Paused { at } => {
                self.engine = EngineState::Paused;
                self.log(t, LogKind::Operator, format!("paused at {}", position(at)));
            }
            EngineEvent::Resumed { at } => {
                self.engine = EngineState::Running;
                self.log(t, LogKind::Operator, format!("resumed at {}", position(at)));
            }
            EngineEvent::Checkpointed { path, reason, .. } => {
                self.log(
                    t,
                    LogKind::Checkpoint,
                    format!("checkpoint {path} ({reason})"),
                );
            }
            EngineEvent::Warning { arm, message } => {
                let text = match arm {
                    Some(a) => format!("warning {a}: {message}"),
                    None => format!("warning: {message}"),
                };
                self.log(t, LogKind::Warning, text);
            }
            EngineEvent::ArmFailed { arm, message } => {
                self.arm_mut(arm).failed = Some(message.clone());
                self.log(t, LogKind::Error, format!("{arm} failed: {message}"));
            }
            EngineEvent::Finished { arms } => {
                self.engine = EngineState::Done;
                self.stage = Stage::Done;
                self.summary = Some(arms.clone());
                self.report = Some(Report::from_records(
                    serde_json::Value::Null,
                    &self.kept,
                    None,
                ));
                self.log(t, LogKind::Stage, "finished: summary ready (v)".into());
            }
            EngineEvent::Error { message } => {
                self.engine = EngineState::Failed(message.clone());
                self.log(t, LogKind::Error, format!("error: {message}"));
            }
            EngineEvent::Unknown => {}
        }
    }

    fn arm_mut(&mut self, name: &str) -> &mut ArmSeries {
        let i = match self.arms.iter().position(|a| a.name == name) {
            Some(i) => i,
            None => {
                self.arms.push(ArmSeries {
                    name: name.to_string(),
                    ..Default::default()
                });
                self.arms.len() - 1
            }
        };
        &mut self.arms[i]
    }

    fn log(&mut self, t: f64, kind: LogKind, text: String) {
        self.log.push(LogLine { t, kind, text });
        if self.log.len() > LOG_CAPACITY {
            let extra = self.log.len() - LOG_CAPACITY;
            self.log.drain(..extra);
        }
    }

    /// A console-side note in the log (e.g. a refused edit).
    pub fn note(&mut self, kind: LogKind, text: String) {
        let t = self.clock;
        self.log(t, kind, text);
    }

    /// `online day 3 of 5`, `1B dense distill · crossadapt`, ...
    pub fn stage_label(&self) -> String {
        if self.stage == Stage::Online {
            if let Some(d) = self.stage_day {
                let of = self.plan.online.len();
                let base = match self.plan.online.iter().position(|&x| x == d) {
                    Some(i) => format!("online day {} of {of} (day {d})", i + 1),
                    None => format!("online day {d}"),
                };
                return match &self.stage_arm {
                    Some(a) => format!("{base} · {a}"),
                    None => base,
                };
            }
        }
        stage_text(self.stage, self.stage_arm.as_deref(), self.stage_day)
    }

    /// The x position of the offline results in the charts: the day before the first online
    /// day (the switch point).
    pub fn offline_x(&self) -> Option<u32> {
        self.plan.online.first().map(|d| d.saturating_sub(1))
    }

    /// The online day shown in the timeline: the latest day any arm has ticks for.
    pub fn timeline_day(&self) -> Option<u32> {
        self.ticks.values().map(|t| t.day).max()
    }
}

/// `1A transfer · crossadapt`, `teacher pretraining`.
pub fn stage_text(stage: Stage, arm: Option<&str>, day: Option<u32>) -> String {
    let label = match stage {
        Stage::Transfer => "1A transfer",
        Stage::DenseDistill => "1B dense distill",
        Stage::JointDistill => "1C joint distill",
        s => s.label(),
    };
    let mut s = label.to_string();
    if let Some(d) = day {
        s.push_str(&format!(" day {d}"));
    }
    if let Some(a) = arm {
        s.push_str(&format!(" · {a}"));
    }
    s
}

fn position(at: &Position) -> String {
    let mut s = stage_text(at.stage, at.arm.as_deref(), at.day);
    if at.batch > 0 {
        s.push_str(&format!(" batch {}", at.batch));
    }
    s
}

fn auc_text(auc: Option<f64>) -> String {
    auc.map_or("n/a".into(), |a| format!("{a:.4}"))
}

fn command_text(c: &EngineCommand) -> String {
    match c {
        EngineCommand::Pause => "pause".into(),
        EngineCommand::Resume => "resume".into(),
        EngineCommand::Checkpoint => "checkpoint".into(),
        EngineCommand::Stop => "stop".into(),
        EngineCommand::SetParams { patch } => {
            let mut parts = Vec::new();
            for c in super::control::Control::ALL {
                if let Some(v) = c.in_patch(patch) {
                    parts.push(format!("{} {}", c.label(), c.format(v)));
                }
            }
            format!("set {}", parts.join(", "))
        }
    }
}

fn params_diff(old: &Params, new: &Params) -> String {
    let parts: Vec<String> = super::control::Control::ALL
        .iter()
        .filter(|c| c.get(old) != c.get(new))
        .map(|c| {
            format!(
                "{} {} → {}",
                c.label(),
                c.format(c.get(old)),
                c.format(c.get(new))
            )
        })
        .collect();
    if parts.is_empty() {
        "parameters (unchanged)".into()
    } else {
        parts.join(", ")
    }
}
