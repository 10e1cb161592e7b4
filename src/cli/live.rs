//! Wires an engine to a session on disk and to its readers: the session log and checkpoints
//! always; the console, or the headless per-day table and report.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::atomic::write_output;
use crate::engine::{CheckpointStore, Engine, EngineIo, Outcome, SavedCheckpoint, SessionConfig};
use crate::protocol::{EngineEvent, EventSink, Record, Report};
use crate::session::control::CommandPoller;
use crate::session::{read_log, DayTablePrinter, RunState, Session, Status};
use crate::signals::SignalState;
use crate::tui::{run_console, ConsoleExit, ConsoleOptions, ConsoleSource};

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
    /// Samples/s of the latest progress record (f64 bits; NaN: none yet), for the heartbeat.
    rate: Arc<AtomicU64>,
}

impl SharedSession {
    fn new(session: Session, status: Status, keep_day_checkpoints: usize) -> Self {
        SharedSession {
            inner: Arc::new(Mutex::new((session, status))),
            keep_day_checkpoints,
            rate: Arc::new(AtomicU64::new(f64::NAN.to_bits())),
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
        if let EngineEvent::Progress {
            samples_per_sec, ..
        } = &record.event
        {
            self.rate
                .store(samples_per_sec.to_bits(), Ordering::Relaxed);
        }
        self.with(|s, status| {
            s.append(record)?;
            status.observe(record);
            // status.json is rewritten when what `list` shows changes, not on every progress tick.
            if moves_status(&record.event) {
                s.set_status(status)?;
            }
            Ok(())
        })
    }
}

/// Once per online day (at its end, with every arm's metrics of the day), not once per arm:
/// each rewrite is two fsyncs, which on a log of short days cost more than the day itself.
fn moves_status(event: &EngineEvent) -> bool {
    if let EngineEvent::StageStarted { stage, .. } = event {
        return *stage != crate::engine::Stage::Online;
    }
    matches!(
        event,
        EngineEvent::SessionStarted { .. }
            | EngineEvent::SessionResumed { .. }
            | EngineEvent::StageFinished { .. }
            | EngineEvent::OfflineResult { .. }
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
    ) -> anyhow::Result<SavedCheckpoint> {
        let keep = self.keep_day_checkpoints;
        // Only the log's sync holds the session: the engine goes on appending records while
        // the checkpoint's files are written (it saves on a thread of its own).
        let writer = self.with(|s, _| s.checkpoint_writer())?;
        let dir = writer.write(label, seq, |staging| write(staging))?;
        if keep > 0 && label.starts_with("day-") {
            writer.prune_day_checkpoints(keep)?;
        }
        let shown = dir
            .strip_prefix(writer.dir())
            .unwrap_or(&dir)
            .display()
            .to_string();
        Ok(SavedCheckpoint { shown, dir })
    }
}

/// The headless per-day table on stdout: a view, not the record (the session log is). Failing to
/// print (a hung-up terminal, a full disk behind a redirect) is noted once on stderr and does
/// not stop the run.
struct Shown<S>(S, bool);

impl<S: EventSink> EventSink for Shown<S> {
    fn emit(&mut self, record: &Record) -> anyhow::Result<()> {
        if let Err(e) = self.0.emit(record) {
            // A hung-up terminal: stdout goes to `output.log` from now on, where the rest of
            // the table and the final one are printed (the printer has folded this record).
            let lost = e
                .downcast_ref::<std::io::Error>()
                .is_some_and(crate::signals::terminal_lost);
            if !lost && !self.1 {
                self.1 = true;
                crate::say_err!(
                    "warning: cannot print the day table any more ({e:#}); the session log keeps every record"
                );
            }
        }
        Ok(())
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
    signals: Option<SignalState>,
    /// Feeds `commands.jsonl` to the engine (attach, `ctl`) until the run ends.
    poller: Option<CommandPoller>,
}

/// Connects a session to a new engine's io. With `signals` (the binary; see `crate::signals`),
/// SIGTERM / SIGINT stop the engine at its next safe point and SIGHUP leaves it running.
pub fn attach(
    session: Session,
    cfg: &SessionConfig,
    mode: &LaunchMode,
    events_file: Option<&Path>,
    signals: Option<SignalState>,
) -> anyhow::Result<Attached> {
    attach_showing(session, cfg, mode, events_file, signals, Tables::Stdout)
}

/// Where a headless run prints its per-day tables.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tables {
    Stdout,
    /// Standard output carries something else (`run --report -`).
    Stderr,
}

/// [`attach`] with the headless per-day tables printed where `tables` says.
pub fn attach_showing(
    session: Session,
    cfg: &SessionConfig,
    mode: &LaunchMode,
    events_file: Option<&Path>,
    signals: Option<SignalState>,
    tables: Tables,
) -> anyhow::Result<Attached> {
    if let Some(s) = &signals {
        s.set_session_dir(session.dir());
    }
    // A resumed session's status starts from what its log already says.
    let mut status = Status::new(RunState::Running);
    for record in session.records()?.records {
        status.observe(&record);
    }
    let dir = session.dir().to_path_buf();
    let id = session.id().to_string();
    let shared = SharedSession::new(session, status, cfg.keep_day_checkpoints);
    let mut sinks: Vec<Box<dyn EventSink>> = vec![Box::new(shared.clone())];
    if let Some(path) = events_file {
        let file = File::create(path)
            .with_context(|| format!("cannot create the events file {}", path.display()))?;
        sinks.push(Box::new(JsonLines(BufWriter::new(file))));
    }
    // Every engine takes commands: from the console, the signal thread and the session's
    // command file (attach, `crossadapt ctl`).
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    let console = match mode {
        LaunchMode::Headless => {
            match tables {
                Tables::Stdout => sinks.push(Box::new(Shown(
                    DayTablePrinter::new(std::io::stdout()),
                    false,
                ))),
                Tables::Stderr => sinks.push(Box::new(Shown(
                    DayTablePrinter::new(std::io::stderr()),
                    false,
                ))),
            }
            if let Some(s) = &signals {
                s.connect_engine(cmd_tx.clone());
            }
            None
        }
        LaunchMode::Console { .. } => {
            let (event_tx, event_rx) = tokio::sync::mpsc::unbounded_channel();
            sinks.push(Box::new(event_tx));
            Some(ConsoleSource::Live {
                events: event_rx,
                commands: cmd_tx.clone(),
            })
        }
    };
    let rate = shared.rate.clone();
    let poller = CommandPoller::start(
        &dir,
        cmd_tx,
        Box::new(move || {
            Some(f64::from_bits(rate.load(Ordering::Relaxed))).filter(|r| r.is_finite())
        }),
    )?;
    let commands = Some(cmd_rx);
    // A detached engine leaves its parent's pipe now that its session exists.
    super::detach::become_detached(&dir, &id);
    Ok(Attached {
        io: EngineIo {
            sinks,
            commands,
            checkpoints: Some(Box::new(shared.clone())),
        },
        shared: Wiring {
            session: shared,
            console,
            signals,
            poller: Some(poller),
        },
    })
}

/// Runs the engine to its end (or stop) in the chosen mode; headless runs print the report
/// table and write `--report`.
pub fn run_attached(
    mut engine: Engine,
    mut wiring: Wiring,
    mode: &LaunchMode,
    cfg: &SessionConfig,
    report_path: Option<&Path>,
) -> anyhow::Result<Outcome> {
    let mut headless = *mode == LaunchMode::Headless;
    let (engine_result, console_result) = match (mode, wiring.console) {
        (LaunchMode::Console { theme }, Some(source)) => {
            let engine_thread = std::thread::Builder::new()
                .name("crossadapt-engine".into())
                .spawn(move || {
                    crate::fpenv::flush_denormals();
                    engine.run()
                })
                .context("cannot start the engine thread")?;
            let opts = console_options(theme.clone(), wiring.signals.clone());
            let console = opts.and_then(|opts| run_console(source, opts));
            if let (Ok(ConsoleExit::Hangup), Some(signals)) = (&console, &wiring.signals) {
                // The console has left the dead terminal: from here on the run is headless,
                // and it ends as a headless run does, with its table (in `output.log`).
                signals.detach_stdio();
                headless = true;
            }
            let engine_result = engine_thread
                .join()
                .map_err(|_| anyhow::anyhow!("the engine thread panicked"))
                .and_then(|r| r);
            (engine_result, console.map(|_| ()))
        }
        _ => (engine.run(), Ok(())),
    };
    // No more commands: the engine has returned.
    drop(wiring.poller.take());
    let outcome = match engine_result {
        Ok(outcome) => outcome,
        Err(e) => {
            // `status.json` says failed, not "running" for a dead process.
            let _ = wiring.session.with(|s, status| {
                status.state = RunState::Failed;
                s.set_status(status)
            });
            return Err(e);
        }
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
    // The engine stopped cleanly (its status is written); a console that failed says why.
    console_result?;
    if headless {
        let records = read_log(&log_path)?;
        let config = serde_json::to_value(cfg).context("cannot serialise the config")?;
        let report = Report::from_records(
            config,
            &records,
            crate::engine::config::shock_day(&cfg.data),
        );
        match report_path {
            // Standard output carries the JSON alone (for `jq`), so the table goes to stderr.
            Some(path) if crate::atomic::is_stdout(path) => {
                crate::say_err!("{}", report.table().trim_end());
                let mut json = serde_json::to_vec_pretty(&report)?;
                json.push(b'\n');
                write_output(path, &json)?;
            }
            Some(path) => {
                crate::say_out!("{}", report.table());
                write_output(path, &serde_json::to_vec_pretty(&report)?)?;
                crate::say_err!("report written to {}", path.display());
            }
            None => crate::say_out!("{}", report.table()),
        }
    }
    Ok(outcome)
}

/// Console options from `--theme`, `NO_COLOR`, `CROSSADAPT_KEYS` (a keymap file) and the data
/// dir (where the log file goes); `signals` close the console (see `crate::signals`).
pub fn console_options(
    theme: Option<String>,
    signals: Option<SignalState>,
) -> anyhow::Result<ConsoleOptions> {
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
        signals,
    })
}
