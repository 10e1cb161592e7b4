//! Wires an engine to a session on disk and to its readers: the session log and checkpoints
//! always; the console, or the headless per-day table and report.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::atomic::write_atomic;
use crate::engine::events::{EngineEvent, EventSink, Record};
use crate::engine::report::Report;
use crate::engine::{CheckpointStore, Engine, EngineIo, Outcome, SessionConfig};
use crate::session::{read_log, DayTablePrinter, RunState, Session, Status};
use crate::tui::{run_console, ConsoleOptions, ConsoleSource};

/// Where a run is shown.
#[derive(Clone, Debug, PartialEq)]
pub enum LaunchMode {
    Headless,
    Console { theme: Option<String> },
}

/// The session and its status, shared by the log writer and the checkpoint writer on the
/// engine thread.
#[derive(Clone)]
pub struct SharedSession {
    inner: Arc<Mutex<(Session, Status)>>,
    /// `keep_day_checkpoints` of the session's config (0 = keep every day).
    keep_day_checkpoints: usize,
}

impl SharedSession {
    fn new(session: Session, status: Status, keep_day_checkpoints: usize) -> Self {
        SharedSession {
            inner: Arc::new(Mutex::new((session, status))),
            keep_day_checkpoints,
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Session, &mut Status) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| anyhow::anyhow!("session writer poisoned by an earlier failure"))?;
        let (session, status) = &mut *guard;
        f(session, status)
    }
}

impl EventSink for SharedSession {
    fn emit(&mut self, record: &Record) -> anyhow::Result<()> {
        self.with(|s, status| {
            s.log().emit(record)?;
            status.observe(record);
            // status.json is rewritten when what `list` shows changes, not on every progress tick.
            if moves_status(&record.event) {
                s.set_status(status)?;
            }
            Ok(())
        })
    }
}

fn moves_status(event: &EngineEvent) -> bool {
    matches!(
        event,
        EngineEvent::SessionStarted { .. }
            | EngineEvent::SessionResumed { .. }
            | EngineEvent::StageStarted { .. }
            | EngineEvent::OfflineResult { .. }
            | EngineEvent::DayMetrics { .. }
            | EngineEvent::ArmFailed { .. }
            | EngineEvent::Paused { .. }
            | EngineEvent::Resumed { .. }
            | EngineEvent::Finished { .. }
            | EngineEvent::Error { .. }
    )
}

impl CheckpointStore for SharedSession {
    fn save(
        &mut self,
        label: &str,
        seq: u64,
        write: &mut dyn FnMut(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<String> {
        let keep = self.keep_day_checkpoints;
        self.with(|s, _| {
            let dir = s.write_checkpoint(label, seq, |staging| write(staging))?;
            if keep > 0 && label.starts_with("day-") {
                s.prune_day_checkpoints(keep)?;
            }
            Ok(dir
                .strip_prefix(s.dir())
                .unwrap_or(&dir)
                .display()
                .to_string())
        })
    }
}

/// Every event as one JSON line (`--events FILE`).
struct JsonLines(BufWriter<File>);

impl EventSink for JsonLines {
    fn emit(&mut self, record: &Record) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.0, record)?;
        self.0.write_all(b"\n")?;
        self.0.flush()?;
        Ok(())
    }
}

/// An engine's connections plus what the caller keeps.
pub struct Attached {
    pub io: EngineIo,
    pub shared: Wiring,
}

pub struct Wiring {
    session: SharedSession,
    console: Option<ConsoleSource>,
}

pub fn attach(
    session: Session,
    cfg: &SessionConfig,
    mode: &LaunchMode,
    events_file: Option<&Path>,
) -> anyhow::Result<Attached> {
    // A resumed session's status starts from what its log already says.
    let mut status = Status::new(RunState::Running);
    for record in session.records()?.records {
        status.observe(&record);
    }
    let shared = SharedSession::new(session, status, cfg.keep_day_checkpoints);
    let mut sinks: Vec<Box<dyn EventSink>> = vec![Box::new(shared.clone())];
    if let Some(path) = events_file {
        let file = File::create(path)
            .with_context(|| format!("cannot create the events file {}", path.display()))?;
        sinks.push(Box::new(JsonLines(BufWriter::new(file))));
    }
    let mut commands = None;
    let console = match mode {
        LaunchMode::Headless => {
            sinks.push(Box::new(DayTablePrinter::new(std::io::stdout())));
            None
        }
        LaunchMode::Console { .. } => {
            let (event_tx, event_rx) = tokio::sync::mpsc::unbounded_channel();
            let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
            sinks.push(Box::new(event_tx));
            commands = Some(cmd_rx);
            Some(ConsoleSource::Live {
                events: event_rx,
                commands: cmd_tx,
            })
        }
    };
    Ok(Attached {
        io: EngineIo {
            sinks,
            commands,
            checkpoints: Some(Box::new(shared.clone())),
        },
        shared: Wiring {
            session: shared,
            console,
        },
    })
}

/// Runs the engine to its end (or stop) in the chosen mode; headless runs print the report
/// table and write `--report`.
pub fn run_attached(
    mut engine: Engine,
    wiring: Wiring,
    mode: &LaunchMode,
    cfg: &SessionConfig,
    report_path: Option<&Path>,
) -> anyhow::Result<Outcome> {
    let outcome = match (mode, wiring.console) {
        (LaunchMode::Console { theme }, Some(source)) => {
            let engine_thread = std::thread::Builder::new()
                .name("crossadapt-engine".into())
                .spawn(move || {
                    crate::fpenv::flush_denormals();
                    engine.run()
                })
                .context("cannot start the engine thread")?;
            let opts = console_options(theme.clone())?;
            let console = run_console(source, opts);
            let engine_result = engine_thread
                .join()
                .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
            console?;
            engine_result?
        }
        _ => engine.run()?,
    };
    let log_path = wiring.session.with(|s, status| {
        status.state = match outcome {
            Outcome::Finished => RunState::Done,
            Outcome::Stopped => RunState::Interrupted,
        };
        s.set_status(status)?;
        s.log().sync()?;
        Ok(s.dir().join("events.jsonl"))
    })?;
    if *mode == LaunchMode::Headless {
        let records = read_log(&log_path)?;
        let config = serde_json::to_value(cfg).context("cannot serialise the config")?;
        let report = Report::from_records(
            config,
            &records,
            crate::engine::config::shock_day(&cfg.data),
        );
        print!("{}", report.table());
        if let Some(path) = report_path {
            write_atomic(path, &serde_json::to_vec_pretty(&report)?)?;
            eprintln!("report written to {}", path.display());
        }
    }
    Ok(outcome)
}

/// Console options from `--theme`, `NO_COLOR`, `CROSSADAPT_KEYS` (a keymap file) and the data
/// dir (where the log file goes).
pub fn console_options(theme: Option<String>) -> anyhow::Result<ConsoleOptions> {
    let log_dir = directories::ProjectDirs::from("", "", "crossadapt")
        .map(|d| d.data_dir().join("logs"))
        .unwrap_or_else(|| std::env::temp_dir().join("crossadapt-logs"));
    Ok(ConsoleOptions {
        theme: theme.unwrap_or_else(|| "default".to_string()),
        // `keys.toml` in the config dir is found by the console itself.
        keymap_file: std::env::var_os("CROSSADAPT_KEYS").map(std::path::PathBuf::from),
        fps: 15,
        mouse: true,
        no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        log_dir,
    })
}
