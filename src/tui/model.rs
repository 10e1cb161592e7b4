//! What the console knows about a run: the [`Ledger`] of the engine's records plus the console's
//! own log lines. Every number shown is carried by an event and folded by the ledger (the
//! console formats, it never recomputes).

use std::ops::Deref;

use crate::num;
use crate::protocol::{EngineCommand, EngineEvent, Ledger, Params, Record, Stage, StageAt};

/// Lines kept in the event log panel.
pub const LOG_CAPACITY: usize = 500;

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

/// The ledger of the run and the lines of the console's log panel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    pub ledger: Ledger,
    pub log: Vec<LogLine>,
}

/// The panels read the ledger's fields through the model.
impl Deref for Model {
    type Target = Ledger;

    fn deref(&self) -> &Ledger {
        &self.ledger
    }
}

impl Model {
    /// Folds one record in, and writes its log line.
    pub fn apply(&mut self, rec: &Record) {
        let old_params = self.ledger.params.clone();
        self.ledger.apply(rec);
        let t = rec.t;
        let line = match &rec.event {
            EngineEvent::SessionStarted { arms, teacher, .. } => Some((
                LogKind::Stage,
                format!("session started: {} arms, teacher {teacher}", arms.len()),
            )),
            EngineEvent::SessionResumed { from } => Some((
                LogKind::Stage,
                format!("resumed from the checkpoint at {from}"),
            )),
            EngineEvent::StageStarted {
                stage, arm, day, ..
            } if *stage != Stage::Done => Some((
                LogKind::Stage,
                format!("▸ {}", StageAt::new(*stage, arm.as_deref(), *day)),
            )),
            EngineEvent::StageFinished {
                stage,
                arm,
                day,
                seconds,
                ..
            } if *stage != Stage::Online || (day.is_some() && arm.is_none()) => Some((
                LogKind::Info,
                format!(
                    "✓ {} in {seconds:.1}s",
                    StageAt::new(*stage, arm.as_deref(), *day)
                ),
            )),
            EngineEvent::Projection { arm, fields } => {
                let worst = fields.iter().map(|f| f.rel_error).fold(0.0, f64::max);
                Some((
                    LogKind::Info,
                    format!(
                        "1A {arm}: {} fields projected, worst rel. error {worst:.1e}",
                        fields.len()
                    ),
                ))
            }
            EngineEvent::OfflineResult {
                arm,
                seconds,
                metrics,
                ..
            } => Some((
                LogKind::Info,
                format!(
                    "{arm} offline: AUC {} in {seconds:.1}s",
                    auc_text(metrics.auc)
                ),
            )),
            EngineEvent::Operator { command, at } => Some((
                LogKind::Operator,
                format!("operator: {} at {at}", command_text(command)),
            )),
            EngineEvent::ParamsChanged { params, at } => {
                let text = match &old_params {
                    Some(old) => params_diff(old, params),
                    None => "parameters set".into(),
                };
                Some((LogKind::Operator, format!("applied {text} at {at}")))
            }
            EngineEvent::ParamsRefused { field, reason, at } => Some((
                LogKind::Warning,
                format!("{field} change refused at {at}: {reason}"),
            )),
            EngineEvent::Paused { at } => Some((LogKind::Operator, format!("paused at {at}"))),
            EngineEvent::Resumed { at } => Some((LogKind::Operator, format!("resumed at {at}"))),
            EngineEvent::Checkpointed {
                path,
                reason,
                bytes,
                ..
            } => {
                let size = bytes.map_or(String::new(), |b| {
                    format!(", {} written", crate::num::megabytes(b))
                });
                Some((
                    LogKind::Checkpoint,
                    format!("checkpoint {path} ({reason}{size})"),
                ))
            }
            EngineEvent::Warning { arm, message } => Some((
                LogKind::Warning,
                match arm {
                    Some(a) => format!("warning {a}: {message}"),
                    None => format!("warning: {message}"),
                },
            )),
            EngineEvent::ArmFailed { arm, message } => {
                Some((LogKind::Error, format!("{arm} failed: {message}")))
            }
            EngineEvent::Tuned { tuning } => Some((LogKind::Stage, tuning.brief())),
            EngineEvent::Finished { .. } => {
                Some((LogKind::Stage, "finished: summary ready (v)".into()))
            }
            EngineEvent::Error { message } => Some((LogKind::Error, format!("error: {message}"))),
            _ => None,
        };
        if let Some((kind, text)) = line {
            self.log(t, kind, text);
        }
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
        let t = self.ledger.clock;
        self.log(t, kind, text);
    }

    /// `online day 3 of 5 (day 14) [crossadapt]`, `1B dense distill [crossadapt]`, ...
    pub fn stage_label(&self) -> String {
        let l = &self.ledger;
        if l.stage == Stage::Online {
            if let Some(d) = l.stage_day {
                let of = l.plan.online.len();
                let base = match l.plan.online.iter().position(|&x| x == d) {
                    Some(i) => format!("online day {} of {of} (day {d})", i + 1),
                    None => format!("online day {d}"),
                };
                return match &l.stage_arm {
                    Some(a) => format!("{base} [{a}]"),
                    None => base,
                };
            }
        }
        StageAt::new(l.stage, l.stage_arm.as_deref(), l.stage_day).to_string()
    }

    /// The x position of the offline results in the charts: the day before the first online
    /// day (the switch point).
    pub fn offline_x(&self) -> Option<u32> {
        self.plan.online.first().map(|d| d.saturating_sub(1))
    }

    /// The online day shown in the timeline: the latest day any arm has ticks for.
    pub fn timeline_day(&self) -> Option<u32> {
        self.arms
            .iter()
            .filter_map(|a| a.ticks.as_ref())
            .map(|t| t.day)
            .max()
    }
}

fn auc_text(auc: Option<f64>) -> String {
    auc.map_or("n/a".into(), |a| num::word(a, 4))
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
