//! The headless per-day table: what a live `--headless` run prints, and what `replay
//! --headless` prints again from the log. Stage lines as stages start and finish, one block of
//! rows per online day once every running arm's metrics for that day are in, operator actions
//! where they happened, and the summary table from `Finished`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use anyhow::{Context, Result};

use crate::engine::events::{
    ArmSummary, EngineCommand, EngineEvent, EventSink, Params, Position, Record, Stage,
};

/// Prints a run as text to `out`; an [`EventSink`].
pub struct DayTablePrinter<W: Write + Send> {
    out: W,
    arms: Vec<String>,
    failed: Vec<String>,
    /// Metrics per day, then per arm, until the day is complete.
    pending: BTreeMap<u32, HashMap<String, Row>>,
    /// Day-level drift weight per day.
    drift: HashMap<u32, f64>,
    header_printed: bool,
}

#[derive(Clone, Debug)]
struct Row {
    auc: Option<f64>,
    logloss: f64,
    bias: f64,
    ne: f64,
    samples_per_sec: f64,
    student: u32,
    teacher: u32,
}

impl<W: Write + Send> DayTablePrinter<W> {
    /// A printer writing to `out` (stdout in the CLI, a buffer in tests).
    pub fn new(out: W) -> Self {
        DayTablePrinter {
            out,
            arms: Vec::new(),
            failed: Vec::new(),
            pending: BTreeMap::new(),
            drift: HashMap::new(),
            header_printed: false,
        }
    }

    /// Prints the days still incomplete (a run that stopped mid-day) and returns the writer.
    pub fn finish(mut self) -> Result<W> {
        self.flush_days(true)?;
        self.out.flush().context("cannot write the day table")?;
        Ok(self.out)
    }

    fn arm_width(&self) -> usize {
        self.arms.iter().map(String::len).max().unwrap_or(0).max(10)
    }

    fn print(&mut self, record: &Record) -> std::io::Result<()> {
        match &record.event {
            EngineEvent::SessionStarted {
                session,
                name,
                arms,
                teacher,
                days,
                params,
                seed,
            } => {
                self.arms = arms.iter().map(|a| a.name.clone()).collect();
                let arms: Vec<String> = arms
                    .iter()
                    .map(|a| format!("{} ({})", a.name, a.model))
                    .collect();
                writeln!(
                    self.out,
                    "session {session} \"{name}\" · seed {seed} · teacher {teacher}"
                )?;
                writeln!(self.out, "arms: {}", arms.join(", "))?;
                writeln!(
                    self.out,
                    "days: history {} · retained {} · online {}",
                    day_span(&days.history),
                    day_span(&days.retained),
                    day_span(&days.online)
                )?;
                writeln!(self.out, "params: {}", params_line(params))?;
            }
            EngineEvent::SessionResumed { from } => {
                writeln!(
                    self.out,
                    "-- session resumed from its checkpoint at {}",
                    position(from)
                )?;
            }
            EngineEvent::StageStarted {
                stage,
                arm,
                day,
                total,
            } => {
                if *stage != Stage::Online {
                    writeln!(
                        self.out,
                        "> {}{}",
                        stage_name(*stage, arm, *day),
                        samples(*total)
                    )?;
                }
            }
            EngineEvent::StageFinished {
                stage,
                arm,
                day,
                seconds,
                samples,
            } => {
                if *stage != Stage::Online {
                    writeln!(
                        self.out,
                        "  done {} in {seconds:.1} s, {samples} samples",
                        stage_name(*stage, arm, *day)
                    )?;
                }
            }
            EngineEvent::OfflineResult {
                arm,
                seconds,
                samples,
                metrics,
            } => {
                writeln!(
                    self.out,
                    "offline {arm}: AUC {} · LogLoss {:.5} · bias {:+.4} · {seconds:.1} s · {samples} samples",
                    opt(metrics.auc, 4),
                    metrics.logloss,
                    metrics.bias
                )?;
            }
            EngineEvent::Drift {
                day,
                batch: None,
                weight,
                ..
            } => {
                self.drift.insert(*day, *weight);
            }
            EngineEvent::DayMetrics {
                arm,
                day,
                metrics,
                samples_per_sec,
                student_updates,
                teacher_updates,
                ..
            } => {
                let row = Row {
                    auc: metrics.auc,
                    logloss: metrics.logloss,
                    bias: metrics.bias,
                    ne: metrics.ne,
                    samples_per_sec: *samples_per_sec,
                    student: *student_updates,
                    teacher: *teacher_updates,
                };
                self.pending
                    .entry(*day)
                    .or_default()
                    .insert(arm.clone(), row);
                self.flush_days(false)?;
            }
            EngineEvent::Operator { command, at } => {
                writeln!(
                    self.out,
                    "-- operator at {}: {}",
                    position(at),
                    command_name(command)
                )?;
            }
            EngineEvent::ParamsChanged { params, at } => {
                writeln!(
                    self.out,
                    "-- params at {}: {}",
                    position(at),
                    params_line(params)
                )?;
            }
            EngineEvent::Paused { at } => writeln!(self.out, "-- paused at {}", position(at))?,
            EngineEvent::Resumed { at } => writeln!(self.out, "-- resumed at {}", position(at))?,
            EngineEvent::Checkpointed { at, path, reason } => {
                writeln!(
                    self.out,
                    "-- checkpoint {path} ({reason}) at {}",
                    position(at)
                )?;
            }
            EngineEvent::Warning { arm, message } => match arm {
                Some(arm) => writeln!(self.out, "warning [{arm}]: {message}")?,
                None => writeln!(self.out, "warning: {message}")?,
            },
            EngineEvent::ArmFailed { arm, message } => {
                writeln!(self.out, "arm {arm} failed: {message}")?;
                self.failed.push(arm.clone());
                self.flush_days(false)?;
            }
            EngineEvent::Finished { arms } => {
                self.flush_days(true)?;
                self.print_summary(arms)?;
            }
            EngineEvent::Error { message } => writeln!(self.out, "error: {message}")?,
            EngineEvent::Projection { .. }
            | EngineEvent::Progress { .. }
            | EngineEvent::Updates { .. }
            | EngineEvent::Drift { .. }
            | EngineEvent::Unknown => {}
        }
        Ok(())
    }

    /// Prints every complete day (every running arm reported), or all pending days if `all`.
    fn flush_days(&mut self, all: bool) -> std::io::Result<()> {
        let running: Vec<String> = self
            .arms
            .iter()
            .filter(|a| !self.failed.contains(a))
            .cloned()
            .collect();
        let ready: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, rows)| all || running.iter().all(|a| rows.contains_key(a)))
            .map(|(d, _)| *d)
            .collect();
        for day in ready {
            if let Some(rows) = self.pending.remove(&day) {
                self.print_day(day, &rows)?;
            }
        }
        Ok(())
    }

    fn print_day(&mut self, day: u32, rows: &HashMap<String, Row>) -> std::io::Result<()> {
        let w = self.arm_width();
        if !self.header_printed {
            self.header_printed = true;
            writeln!(
                self.out,
                "{:>4}  {:<w$}  {:>6}  {:>7}  {:>8}  {:>6}  {:>9}  {:>7}  {:>7}  {:>7}",
                "day",
                "arm",
                "AUC",
                "LogLoss",
                "bias",
                "NE",
                "samples/s",
                "student",
                "teacher",
                "drift w"
            )?;
        }
        let drift = self
            .drift
            .get(&day)
            .map_or("-".to_string(), |d| format!("{d:.3}"));
        // Arms in session order, then any arm the session header did not name.
        let mut order: Vec<&String> = self.arms.iter().filter(|a| rows.contains_key(*a)).collect();
        let mut extra: Vec<&String> = rows.keys().filter(|a| !self.arms.contains(a)).collect();
        extra.sort();
        order.extend(extra);
        for (i, arm) in order.into_iter().enumerate() {
            let r = &rows[arm];
            let day_cell = if i == 0 {
                day.to_string()
            } else {
                String::new()
            };
            let line = format!(
                "{day_cell:>4}  {arm:<w$}  {:>6}  {:>7.5}  {:>+8.4}  {:>6.4}  {:>9.0}  {:>7}  {:>7}  {:>7}",
                opt(r.auc, 4),
                r.logloss,
                r.bias,
                r.ne,
                r.samples_per_sec,
                r.student,
                r.teacher,
                if i == 0 { drift.as_str() } else { "" }
            );
            writeln!(self.out, "{}", line.trim_end())?;
        }
        Ok(())
    }

    fn print_summary(&mut self, arms: &[ArmSummary]) -> std::io::Result<()> {
        let w = arms.iter().map(|a| a.arm.len()).max().unwrap_or(0).max(10);
        let m = arms.iter().map(|a| a.model.len()).max().unwrap_or(0).max(5);
        writeln!(self.out, "summary")?;
        writeln!(
            self.out,
            "{:<w$}  {:<m$}  {:>9}  {:>10}  {:>11}  {:>10}  {:>7}  {:>7}  {:>10}  {:>9}",
            "arm",
            "model",
            "offline s",
            "samples",
            "offline AUC",
            "online AUC",
            "LogLoss",
            "|bias|",
            "time/scr.",
            "AUC vs kd"
        )?;
        for a in arms {
            writeln!(
                self.out,
                "{:<w$}  {:<m$}  {:>9.1}  {:>10}  {:>11}  {:>10}  {:>7}  {:>7}  {:>10}  {:>9}",
                a.arm,
                a.model,
                a.offline_seconds,
                a.offline_samples,
                opt(a.offline.as_ref().and_then(|o| o.auc), 4),
                opt(a.online_mean_auc, 4),
                opt(a.online_mean_logloss, 4),
                opt(a.online_mean_abs_bias, 4),
                opt(a.time_vs_scratch, 2),
                a.auc_vs_kd.map_or("-".into(), |v| format!("{v:+.4}")),
            )?;
        }
        for a in arms {
            if let Some(why) = &a.failed {
                writeln!(self.out, "{} failed: {why}", a.arm)?;
            }
        }
        Ok(())
    }
}

impl<W: Write + Send> EventSink for DayTablePrinter<W> {
    fn emit(&mut self, record: &Record) -> Result<()> {
        self.print(record)
            .and_then(|()| self.out.flush())
            .context("cannot write the day table")
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn samples(total: u64) -> String {
    if total == 0 {
        String::new()
    } else {
        format!(" ({total} samples)")
    }
}

fn stage_name(stage: Stage, arm: &Option<String>, day: Option<u32>) -> String {
    let mut s = stage.label().to_string();
    if let Some(arm) = arm {
        s.push_str(&format!(" [{arm}]"));
    }
    if let Some(day) = day {
        s.push_str(&format!(" day {day}"));
    }
    s
}

fn position(at: &Position) -> String {
    let mut s = at.stage.label().to_string();
    if let Some(arm) = &at.arm {
        s.push_str(&format!(" [{arm}]"));
    }
    if let Some(day) = at.day {
        s.push_str(&format!(" day {day}"));
    }
    s.push_str(&format!(" batch {}", at.batch));
    s
}

fn params_line(p: &Params) -> String {
    format!(
        "sampling {} · replay {} · teacher every {} · distill {}-{}",
        p.sampling_ratio, p.replay_ratio, p.teacher_interval, p.distill_min, p.distill_max
    )
}

fn command_name(c: &EngineCommand) -> String {
    match c {
        EngineCommand::Pause => "pause".into(),
        EngineCommand::Resume => "resume".into(),
        EngineCommand::Checkpoint => "checkpoint".into(),
        EngineCommand::Stop => "stop".into(),
        EngineCommand::SetParams { patch } => {
            let mut parts = Vec::new();
            if let Some(v) = patch.sampling_ratio {
                parts.push(format!("sampling_ratio={v}"));
            }
            if let Some(v) = patch.replay_ratio {
                parts.push(format!("replay_ratio={v}"));
            }
            if let Some(v) = patch.teacher_interval {
                parts.push(format!("teacher_interval={v}"));
            }
            if let Some(v) = patch.distill_min {
                parts.push(format!("distill_min={v}"));
            }
            if let Some(v) = patch.distill_max {
                parts.push(format!("distill_max={v}"));
            }
            format!("set {}", parts.join(" "))
        }
    }
}

fn day_span(days: &[u32]) -> String {
    match (days.first(), days.last()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "none".into(),
    }
}
