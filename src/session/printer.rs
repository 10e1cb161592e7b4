//! The headless per-day table: what a live `--headless` run prints, and what `replay
//! --headless` prints again from the log. Stage lines as stages start and finish, one block of
//! rows per online day once every running arm's metrics for that day are in, operator actions
//! where they happened, and the summary table from `Finished`.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{Context, Result};

use crate::data::split::day_span;
use crate::num;
use crate::protocol::{
    ArmVerdict, EngineCommand, EngineEvent, EventSink, Ledger, Params, Record, Stage, StageAt,
};

/// Prints a run as text to `out`; an [`EventSink`]. What it prints comes from its ledger.
pub struct DayTablePrinter<W: Write + Send> {
    out: W,
    ledger: Ledger,
    /// Days whose block is printed.
    printed: BTreeSet<u32>,
    header_printed: bool,
}

impl<W: Write + Send> DayTablePrinter<W> {
    /// A printer writing to `out` (stdout in the CLI, a buffer in tests).
    pub fn new(out: W) -> Self {
        DayTablePrinter {
            out,
            ledger: Ledger::default(),
            printed: BTreeSet::new(),
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
        self.ledger
            .arms
            .iter()
            .map(|a| a.name.len())
            .max()
            .unwrap_or(0)
            .max(10)
    }

    fn print(&mut self, record: &Record) -> std::io::Result<()> {
        self.ledger.apply(record);
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
                let arms: Vec<String> = arms
                    .iter()
                    .map(|a| format!("{} ({})", a.name, a.model))
                    .collect();
                writeln!(
                    self.out,
                    "session {session} \"{}\" · seed {seed} · teacher {teacher}",
                    super::meta::shown_name(name)
                )?;
                writeln!(self.out, "arms: {}", arms.join(", "))?;
                // Days the split leaves unread are named, so a short plan is never silent.
                let unused = if days.unused.is_empty() {
                    String::new()
                } else {
                    format!(" · unused {} (never read)", day_span(&days.unused))
                };
                writeln!(
                    self.out,
                    "days: history {} · retained {} · online {}{unused}",
                    day_span(&days.history),
                    day_span(&days.retained),
                    day_span(&days.online)
                )?;
                writeln!(self.out, "params: {}", params_line(params))?;
                if !days.holdout.is_empty() {
                    writeln!(
                        self.out,
                        "holdout: days {} (never trained on; scored once per arm at the end)",
                        day_span(&days.holdout)
                    )?;
                }
            }
            EngineEvent::SessionResumed { from } => {
                writeln!(self.out, "-- session resumed from its checkpoint at {from}")?;
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
                        StageAt::new(*stage, arm.as_deref(), *day),
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
                heap_peak,
            } => {
                if *stage != Stage::Online {
                    let heap = heap_peak.map_or(String::new(), |b| {
                        format!(", heap peak {}", num::megabytes(b))
                    });
                    writeln!(
                        self.out,
                        "  done {} in {seconds:.1} s, {samples} samples{heap}",
                        StageAt::new(*stage, arm.as_deref(), *day)
                    )?;
                }
            }
            EngineEvent::OfflineResult {
                arm,
                seconds,
                samples,
                samples_per_sec,
                metrics,
                ..
            } => {
                let rate = samples_per_sec.map_or(String::new(), |r| {
                    format!(" · {} samples/s", num::fixed(r, 0))
                });
                writeln!(
                    self.out,
                    "offline {arm}: AUC {} · LogLoss {} · bias {} · {seconds:.1} s · {samples} samples{rate}",
                    opt(metrics.auc, 4),
                    num::fixed(metrics.logloss, 5),
                    num::signed(metrics.bias, 4)
                )?;
            }
            EngineEvent::DayMetrics { .. } => self.flush_days(false)?,
            EngineEvent::Operator { command, at } => {
                writeln!(self.out, "-- operator at {at}: {}", command_name(command))?;
            }
            EngineEvent::ParamsChanged { params, at } => {
                writeln!(self.out, "-- params at {at}: {}", params_line(params))?;
            }
            EngineEvent::ParamsRefused { field, reason, at } => {
                writeln!(self.out, "-- {field} change refused at {at}: {reason}")?;
            }
            EngineEvent::Paused { at } => writeln!(self.out, "-- paused at {at}")?,
            EngineEvent::Resumed { at } => writeln!(self.out, "-- resumed at {at}")?,
            EngineEvent::Checkpointed {
                at,
                path,
                reason,
                bytes,
            } => match bytes {
                Some(b) => writeln!(
                    self.out,
                    "-- checkpoint {path} ({reason}) at {at}: {} written",
                    crate::num::megabytes(*b)
                )?,
                None => writeln!(self.out, "-- checkpoint {path} ({reason}) at {at}")?,
            },
            EngineEvent::Warning { arm, message } => match arm {
                Some(arm) => writeln!(self.out, "warning [{arm}]: {message}")?,
                None => writeln!(self.out, "warning: {message}")?,
            },
            EngineEvent::ArmFailed { arm, message } => {
                writeln!(self.out, "arm {arm} failed: {message}")?;
                self.flush_days(false)?;
            }
            EngineEvent::Finished { .. } => {
                self.flush_days(true)?;
                let verdict = self.ledger.verdict(None);
                self.print_summary(&verdict.arms)?;
            }
            EngineEvent::Error { message } => writeln!(self.out, "error: {message}")?,
            EngineEvent::Tuned { tuning } => write!(self.out, "{}", tuning.table())?,
            EngineEvent::Projection { .. }
            | EngineEvent::Progress { .. }
            | EngineEvent::Updates { .. }
            | EngineEvent::Drift { .. }
            | EngineEvent::Gate { .. }
            | EngineEvent::Holdout { .. }
            | EngineEvent::Unknown => {}
        }
        Ok(())
    }

    /// Prints every complete day (every running arm reported), or every day not printed yet
    /// if `all`.
    fn flush_days(&mut self, all: bool) -> std::io::Result<()> {
        let ready: Vec<u32> = self
            .ledger
            .days()
            .into_iter()
            .filter(|d| !self.printed.contains(d) && (all || self.ledger.day_complete(*d)))
            .collect();
        for day in ready {
            self.printed.insert(day);
            self.print_day(day)?;
        }
        Ok(())
    }

    fn print_day(&mut self, day: u32) -> std::io::Result<()> {
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
            .ledger
            .drift
            .get(&day)
            .map_or("-".to_string(), |d| num::fixed(d.weight, 3));
        let rows: Vec<(String, crate::protocol::DayEntry)> = self
            .ledger
            .arms
            .iter()
            .filter_map(|a| a.days.get(&day).map(|d| (a.name.clone(), d.clone())))
            .collect();
        for (i, (arm, r)) in rows.iter().enumerate() {
            let day_cell = if i == 0 {
                day.to_string()
            } else {
                String::new()
            };
            let m = &r.metrics;
            let line = format!(
                "{day_cell:>4}  {arm:<w$}  {:>6}  {:>7}  {:>8}  {:>6}  {:>9.0}  {:>7}  {:>7}  {:>7}",
                opt(m.auc, 4),
                num::fixed(m.logloss, 5),
                num::signed(m.bias, 4),
                num::fixed(m.ne, 4),
                r.samples_per_sec,
                r.student_updates,
                r.teacher_updates,
                if i == 0 { drift.as_str() } else { "" }
            );
            writeln!(self.out, "{}", line.trim_end())?;
        }
        Ok(())
    }

    fn print_summary(&mut self, arms: &[ArmVerdict]) -> std::io::Result<()> {
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
                match a.time_vs_scratch {
                    None if a.too_short_to_time.iter().any(|n| n == "time_vs_scratch") => {
                        "short".to_string()
                    }
                    t => opt(t, 2),
                },
                a.auc_vs_kd.map_or("-".into(), |v| num::signed(v, 4)),
            )?;
        }
        // Ratios are of CPU seconds where the log has them (wall seconds are the machine's load
        // as much as the arm's work).
        let cpu =
            |c: Option<f64>| c.map_or(String::new(), |c| format!(" / {} s CPU", num::fixed(c, 1)));
        for a in arms {
            let against = |scratch: (&str, Option<f64>), retrain: (&str, Option<f64>)| {
                let parts: Vec<String> = [(scratch, "scratch's"), (retrain, "retrain's")]
                    .iter()
                    .filter_map(|((name, v), who)| match v {
                        Some(t) => Some(format!("{}x {who}", num::fixed(*t, 2))),
                        None if a.too_short_to_time.iter().any(|n| n == name) => {
                            Some(format!("against {who}: too short to time"))
                        }
                        None => None,
                    })
                    .collect();
                if parts.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", parts.join(", "))
                }
            };
            writeln!(
                self.out,
                "{:<w$}  time to switch {:.1} s{}{}, total compute {:.1} s{}{}; trains {} samples/s offline, {} online",
                a.arm,
                a.offline_seconds,
                cpu(a.offline_cpu_seconds),
                against(
                    ("time_vs_scratch", a.time_vs_scratch),
                    ("time_vs_retrain", a.time_vs_retrain)
                ),
                a.total_seconds,
                cpu(a.total_cpu_seconds),
                against(
                    ("total_vs_scratch", a.total_vs_scratch),
                    ("total_vs_retrain", a.total_vs_retrain)
                ),
                opt(a.offline_samples_per_sec, 0),
                opt(a.online_samples_per_sec, 0),
            )?;
        }
        for a in arms {
            if let Some(g) = &a.gate {
                writeln!(
                    self.out,
                    "{:<w$}  gate {}: {}",
                    a.arm,
                    g.decision.label(),
                    g.reason
                )?;
                if let Some(line) = a.switch_sentence() {
                    writeln!(self.out, "{:<w$}  {line}", a.arm)?;
                }
            }
        }
        for a in arms {
            if let Some(h) = &a.holdout {
                let m = &h.metrics;
                writeln!(
                    self.out,
                    "{:<w$}  holdout days {}: AUC {} · LogLoss {} · bias {}{}",
                    a.arm,
                    day_span(&h.days),
                    opt(m.auc, 4),
                    num::fixed(m.logloss, 5),
                    num::signed(m.bias, 4),
                    a.holdout_auc_vs_kd.map_or(String::new(), |d| format!(
                        " · AUC vs kd {}",
                        num::signed(d, 4)
                    )),
                )?;
            }
        }
        for a in arms {
            if let Some(why) = &a.failed {
                writeln!(self.out, "{} failed: {why}", a.arm)?;
            }
        }
        if let Some(t) = &self.ledger.tuning {
            for a in &t.arms {
                if let Some(c) = a.choice() {
                    writeln!(
                        self.out,
                        "tuned {} on retained day {}: {} (trial {} of {})",
                        a.arm,
                        t.validation_day,
                        crate::protocol::tune::values_text(&c.values),
                        a.chosen + 1,
                        a.trials.len()
                    )?;
                }
            }
            let online = t.online.as_ref();
            if let Some((o, c)) = online.and_then(|o| o.tuning.choice().map(|c| (o, c))) {
                writeln!(
                    self.out,
                    "tuned the online values on retained {} after a switch on {}: {} (trial {} of {})",
                    crate::protocol::tune::days_phrase(&o.days),
                    crate::protocol::tune::days_phrase(&o.train_days),
                    crate::protocol::tune::values_text(&c.values),
                    o.tuning.chosen + 1,
                    o.tuning.trials.len()
                )?;
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
    v.map_or("-".into(), |v| num::fixed(v, digits))
}

fn samples(total: u64) -> String {
    if total == 0 {
        String::new()
    } else {
        format!(" ({total} samples)")
    }
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
