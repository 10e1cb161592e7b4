//! Operating running sessions from anywhere the session folder is visible: `ctl` (commands
//! from scripts, waiting for the engine's acknowledgement) and `attach` (the console on a
//! detached engine). See docs/operations.md.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::protocol::{EngineCommand, EngineEvent, EventSink, ParamPatch, Record};
use crate::session::compare::{CmpMetric, Comparison};
use crate::session::control::{send_command, LogTail};
use crate::session::live::{self, ControllerLease, Holder};
use crate::session::{DayTablePrinter, RunState, SessionView, Store};
use crate::tui::compare::{run_compare, CompareView};
use crate::tui::{run_console, ConsoleExit, ConsoleSource};

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Session id (or a path to a session directory).
    pub id: String,
    #[command(subcommand)]
    pub action: CtlAction,
    /// Seconds to wait for the engine's acknowledgement.
    #[arg(long, global = true, default_value_t = 60.0, value_parser = super::ranges::between(0.1, 86_400.0))]
    pub timeout: f64,
    /// Send even while a console holds the controller lease.
    #[arg(long, global = true)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Session id (or a path to a session directory).
    pub id: String,
    /// Watch only: do not take the controller lease.
    #[arg(long)]
    pub view: bool,
    /// No console: print the per-day table as the session goes, until it ends.
    #[arg(long)]
    pub headless: bool,
    /// Console theme: default, light, high-contrast, colorblind (or a .toml file).
    #[arg(long)]
    pub theme: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Sessions to compare (ids or paths to session folders).
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    /// Print the tables instead of opening the console.
    #[arg(long)]
    pub headless: bool,
    /// Only the series (arms of sessions) whose `SESSION/ARM` or session name matches.
    #[arg(long, value_name = "REGEX")]
    pub filter: Option<String>,
    /// The series the others are compared with (default: the first session's crossadapt arm).
    #[arg(long, value_name = "SESSION/ARM")]
    pub baseline: Option<String>,
    /// Headless: the metrics to print, of auc, logloss, bias (default: all three).
    #[arg(long, value_delimiter = ',', value_name = "METRIC")]
    pub metric: Vec<String>,
    /// Headless: also write the comparison as CSV to this file. Console: the folder `e`
    /// writes its CSV files to (default: the current folder).
    #[arg(long, value_name = "PATH")]
    pub csv: Option<PathBuf>,
    /// Console theme: default, light, high-contrast, colorblind (or a .toml file).
    #[arg(long)]
    pub theme: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CtlAction {
    /// Pause (online: at the end of the arm's day, with a checkpoint).
    Pause,
    /// Resume a paused engine.
    Resume,
    /// Change operator parameters, e.g. `set replay_ratio=0.3 teacher_interval=5`.
    Set {
        #[arg(required = true, value_name = "KEY=VALUE")]
        values: Vec<String>,
    },
    /// Write a checkpoint at the next safe point.
    Checkpoint,
    /// Checkpoint and stop; the session stays resumable.
    Stop,
}

/// The parameters `set` takes: the name `Params` uses, and the config key it comes from.
const PARAM_KEYS: [(&str, &str); 5] = [
    ("sampling_ratio", "method.sampling_ratio"),
    ("replay_ratio", "online.replay_ratio"),
    ("teacher_interval", "online.teacher_interval"),
    ("distill_min", "online.distill_min"),
    ("distill_max", "online.distill_max"),
];

/// `KEY=VALUE ...` as a patch; an unknown key or a value that is no number fails here, before
/// anything is sent. Ranges are the engine's to check (its refusal is logged).
pub fn parse_patch(values: &[String]) -> anyhow::Result<ParamPatch> {
    let mut patch = ParamPatch::default();
    for kv in values {
        let (key, value) = kv
            .split_once('=')
            .with_context(|| format!("expected KEY=VALUE, got {kv:?}"))?;
        let (key, value) = (key.trim(), value.trim());
        let Some((name, _)) = PARAM_KEYS.iter().find(|(n, c)| key == *n || key == *c) else {
            let names: Vec<&str> = PARAM_KEYS.iter().map(|(n, _)| *n).collect();
            bail!(
                "{key:?} cannot be changed on a running engine; the operator parameters are {}",
                names.join(", ")
            );
        };
        let number = || -> anyhow::Result<f64> {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .with_context(|| format!("{name} takes a number, got {value:?}"))
        };
        match *name {
            "sampling_ratio" => patch.sampling_ratio = Some(number()?),
            "replay_ratio" => patch.replay_ratio = Some(number()?),
            "distill_min" => patch.distill_min = Some(number()?),
            "distill_max" => patch.distill_max = Some(number()?),
            _ => {
                patch.teacher_interval = Some(value.parse::<u32>().with_context(|| {
                    format!("teacher_interval takes a whole number, got {value:?}")
                })?)
            }
        }
    }
    Ok(patch)
}

/// A session whose engine runs now, with its process; anything else is an error that says why
/// there is nothing to command.
pub fn running_engine(view: &SessionView) -> anyhow::Result<Option<Holder>> {
    let id = view.id();
    let status = view
        .status()
        .with_context(|| format!("cannot read the status of session {id}"))?;
    let liveness = live::probe(view.dir(), view.is_live());
    match (status.state, liveness) {
        (state, live::Liveness::Alive(engine)) if state.is_active() => Ok(engine),
        (RunState::Done, _) => bail!(
            "session {id} has finished: there is no engine to command (see `crossadapt replay {id}`)"
        ),
        (RunState::Created, live::Liveness::Alive(engine)) => Ok(engine),
        (state, _) => {
            let state = if state.is_active() {
                "interrupted: its process is gone".to_string()
            } else {
                state.label().to_string()
            };
            bail!(
                "session {id} is not running ({state}); continue it with `crossadapt resume --detach {id}`"
            )
        }
    }
}

/// `ctl ID pause|resume|set K=V..|checkpoint|stop`: sends one command through the session
/// folder and waits for the engine to log it. Exits non-zero when the engine refuses it, the
/// run ends first, or nothing comes within `--timeout`.
pub fn ctl(args: &CtlArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let command = match &args.action {
        CtlAction::Pause => EngineCommand::Pause,
        CtlAction::Resume => EngineCommand::Resume,
        CtlAction::Set { values } => EngineCommand::SetParams {
            patch: parse_patch(values)?,
        },
        CtlAction::Checkpoint => EngineCommand::Checkpoint,
        CtlAction::Stop => EngineCommand::Stop,
    };
    let store = Store::open(dir)?;
    let view = store.open_read_only(&args.id)?;
    let id = view.id().to_string();
    store.check_writable(view.dir())?;
    running_engine(&view)?;
    if let Some(c) = live::controller(view.dir()) {
        if !args.force && !c.is_me() {
            bail!(
                "session {id} is controlled by {} (a console attached since {}); pass --force to send anyway",
                c.who(),
                c.since.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
    }
    let mut tail = LogTail::from_end(view.dir());
    send_command(view.dir(), &command)?;
    let ack = wait_ack(&mut tail, &command, Duration::from_secs_f64(args.timeout))?;
    match ack {
        Ack::Applied(text) => {
            println!("{text}");
            Ok(())
        }
        Ack::Refused(text) => bail!("session {id} refused the command: {text}"),
        Ack::Ended(text) => bail!("session {id} ended before applying the command ({text})"),
        Ack::TimedOut => bail!(
            "no acknowledgement from session {id} within {}s: is its engine alive? (see {})",
            args.timeout,
            view.dir().join(crate::signals::OUTPUT_FILE).display()
        ),
    }
}

/// How often a follower checks that the engine it follows is still alive.
const LIVENESS_EVERY: Duration = Duration::from_secs(2);

/// `attach ID [--view] [--headless]`: the console on a running session, following its log and
/// sending commands through its folder. The first console takes the controller lease; while
/// one holds it, others open read-only and are told who holds it. Quitting (or losing the
/// terminal) leaves the engine running; the console's `stop` key stops it.
pub fn attach(args: &AttachArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    let view = store.open_read_only(&args.id)?;
    let id = view.id().to_string();
    if !args.view && !args.headless {
        // A controlling console writes its lease and its commands into the session folder.
        store.check_writable(view.dir())?;
    }
    running_engine(&view)?;
    let dir = view.dir().to_path_buf();
    let mode = super::run::launch_mode(args.headless, args.theme.clone())?;
    let super::live::LaunchMode::Console { theme } = mode else {
        return follow_headless(&dir, &id);
    };
    let (lease, read_only) = if args.view {
        (
            None,
            Some("read-only viewer (attached with --view)".to_string()),
        )
    } else {
        match ControllerLease::acquire(&dir) {
            Ok(lease) => (Some(lease), None),
            Err(e) => {
                eprintln!("note: {e:#}; attaching read-only");
                (None, Some(format!("read-only: {e:#}")))
            }
        }
    };
    let signals = crate::signals::SignalState::install()?;
    let opts = super::live::console_options(theme, Some(signals))?;
    let (event_tx, event_rx) = tokio::sync::mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel::<EngineCommand>();
    let follow_dir = dir.clone();
    std::thread::Builder::new()
        .name("crossadapt-follow".into())
        .spawn(move || {
            follow(&follow_dir, |rec| event_tx.send(rec.clone()).is_ok());
        })
        .context("cannot start the log follower")?;
    let send_dir = dir.clone();
    let forwarder = std::thread::Builder::new()
        .name("crossadapt-send".into())
        .spawn(move || forward(&send_dir, &cmd_rx, lease))
        .context("cannot start the command sender")?;
    let source = ConsoleSource::Attached {
        events: event_rx,
        commands: cmd_tx,
        read_only,
    };
    let exit = run_console(source, opts);
    // The console dropped its sender: the forwarder releases the lease and ends.
    let _ = forwarder.join();
    let exit = exit?;
    let still = matches!(
        live::probe(&dir, crate::session::lock::SessionLock::is_held(&dir)),
        live::Liveness::Alive(_)
    );
    if exit != ConsoleExit::Hangup && still {
        let _ = writeln!(
            std::io::stderr(),
            "left session {id}; its engine keeps running (`crossadapt attach {id}` to come back, `crossadapt ctl {id} stop` to stop it)"
        );
    }
    Ok(())
}

/// Sends the console's commands through the session folder and keeps the controller lease's
/// heartbeat, until the console closes (then the lease is released).
fn forward(
    dir: &std::path::Path,
    commands: &std::sync::mpsc::Receiver<EngineCommand>,
    mut lease: Option<ControllerLease>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        match commands.recv_timeout(live::HEARTBEAT_EVERY) {
            Ok(cmd) => {
                if let Err(e) = send_command(dir, &cmd) {
                    tracing::warn!("cannot send {cmd:?}: {e:#}");
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if let Some(l) = &mut lease {
            let _ = l.beat();
        }
    }
}

/// Calls `each` on every record of the session's log, then on new ones as they are appended,
/// until `each` returns false, the run finishes or fails, or its engine is gone.
fn follow(dir: &std::path::Path, mut each: impl FnMut(&Record) -> bool) {
    let mut tail = LogTail::from_start(dir);
    let mut checked = Instant::now();
    loop {
        for rec in tail.poll() {
            if !each(&rec) {
                return;
            }
            if matches!(
                rec.event,
                EngineEvent::Finished { .. } | EngineEvent::Error { .. }
            ) {
                return;
            }
        }
        if checked.elapsed() >= LIVENESS_EVERY {
            checked = Instant::now();
            let locked = crate::session::lock::SessionLock::is_held(dir);
            if let live::Liveness::Dead(_) = live::probe(dir, locked) {
                // What it wrote before it went.
                for rec in tail.poll() {
                    if !each(&rec) {
                        return;
                    }
                }
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `attach --headless`: the per-day table of the session so far, then live, until it ends.
fn follow_headless(dir: &std::path::Path, id: &str) -> anyhow::Result<()> {
    let mut printer = DayTablePrinter::new(std::io::stdout());
    let mut failed = None;
    let mut ended = false;
    follow(dir, |rec| {
        ended |= matches!(
            rec.event,
            EngineEvent::Finished { .. } | EngineEvent::Error { .. }
        );
        match printer.emit(rec) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    });
    if let Some(e) = failed {
        return Err(e.context("cannot print the day table"));
    }
    printer.finish()?;
    if !ended {
        bail!("the engine of session {id} is gone before the end (resume it with `crossadapt resume --detach {id}`)");
    }
    Ok(())
}

/// The comparison of the sessions `ids` (each read through its log and the ledger).
pub fn load_comparison(store: &Store, ids: &[String]) -> anyhow::Result<Comparison> {
    let mut sessions = Vec::new();
    for id in ids {
        let view = store.open_read_only(id)?;
        let contents = view.records()?;
        for w in &contents.warnings {
            eprintln!("warning: {w}");
        }
        sessions.push((view.id().to_string(), contents.records));
    }
    Ok(Comparison::from_sessions(&sessions))
}

/// `compare ID ID ... [--headless]`: per-day metrics of the sessions' arms, overlaid, with a
/// baseline and the differences from it.
pub fn compare(args: &CompareArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let filter = args
        .filter
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("--filter is not a regular expression")?;
    let metrics = args
        .metric
        .iter()
        .map(|m| CmpMetric::parse(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mode = super::run::launch_mode(args.headless, args.theme.clone())?;
    let store = Store::open(dir)?;
    let cmp = load_comparison(&store, &args.ids)?;
    if cmp.series.is_empty() {
        bail!("these sessions have no arms yet");
    }
    let baseline = args.baseline.as_deref().map(|b| cmp.find(b)).transpose()?;
    let mut view = CompareView::new(cmp, baseline, filter);
    match mode {
        super::live::LaunchMode::Console { theme } => {
            let opts = super::live::console_options(theme, None)?;
            let theme = crate::tui::Theme::load(&opts.theme, opts.no_color)?;
            if let Some(dir) = &args.csv {
                view.export_dir = dir.clone();
            }
            let signals = crate::signals::SignalState::install()?;
            run_compare(view, &theme, Some(&signals))
        }
        super::live::LaunchMode::Headless => {
            let visible = view.visible();
            if visible.is_empty() {
                bail!("--filter matches none of the series");
            }
            let base = view.baseline.and_then(|i| view.cmp.series.get(i));
            let metrics = if metrics.is_empty() {
                CmpMetric::ALL.to_vec()
            } else {
                metrics
            };
            let mut out = std::io::stdout().lock();
            for (i, m) in metrics.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                write!(
                    out,
                    "{}",
                    crate::session::compare::table(&visible, base, *m)
                )?;
            }
            if let Some(path) = &args.csv {
                let text = crate::session::compare::csv(&visible, base, &metrics);
                crate::atomic::write_atomic(path, text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("comparison written to {}", path.display());
            }
            Ok(())
        }
    }
}

/// How the engine answered one command.
#[derive(Debug, PartialEq)]
pub enum Ack {
    Applied(String),
    Refused(String),
    Ended(String),
    TimedOut,
}

/// Follows the log for the `operator` record of `command` and, for a parameter change, its
/// result.
pub fn wait_ack(
    tail: &mut LogTail,
    command: &EngineCommand,
    timeout: Duration,
) -> anyhow::Result<Ack> {
    let started = Instant::now();
    let mut taken: Option<String> = None;
    loop {
        for rec in tail.poll() {
            match (&rec.event, &taken) {
                (EngineEvent::Operator { command: c, at }, None) if c == command => {
                    let text = format!("applied {} at {at}", command_text(command));
                    if !matches!(command, EngineCommand::SetParams { .. }) {
                        return Ok(Ack::Applied(text));
                    }
                    taken = Some(text);
                }
                (EngineEvent::ParamsChanged { params, .. }, Some(text)) => {
                    return Ok(Ack::Applied(format!(
                        "{text}; parameters now {}",
                        serde_json::to_string(params)?
                    )));
                }
                (EngineEvent::ParamsRefused { reason, .. }, Some(_)) => {
                    return Ok(Ack::Refused(reason.clone()));
                }
                (EngineEvent::Finished { .. }, _) => {
                    return Ok(Ack::Ended("finished".into()));
                }
                (EngineEvent::Error { message }, _) => {
                    return Ok(Ack::Ended(format!("error: {message}")));
                }
                _ => {}
            }
        }
        if started.elapsed() >= timeout {
            return Ok(Ack::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `set replay_ratio=0.3`, `pause`.
fn command_text(command: &EngineCommand) -> String {
    match command {
        EngineCommand::SetParams { patch } => {
            let json = serde_json::to_value(patch).unwrap_or_default();
            let pairs: Vec<String> = json
                .as_object()
                .map(|o| o.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            format!("set {}", pairs.join(" "))
        }
        EngineCommand::Pause => "pause".into(),
        EngineCommand::Resume => "resume".into(),
        EngineCommand::Checkpoint => "checkpoint".into(),
        EngineCommand::Stop => "stop".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_takes_parameter_names_and_config_keys_and_refuses_others() {
        let p = parse_patch(&[
            "replay_ratio=0.3".into(),
            "online.teacher_interval=4".into(),
        ])
        .unwrap();
        assert_eq!(p.replay_ratio, Some(0.3));
        assert_eq!(p.teacher_interval, Some(4));
        let e = parse_patch(&["batch_size=3".into()]).unwrap_err();
        assert!(e.to_string().contains("cannot be changed"), "{e}");
        assert!(parse_patch(&["replay_ratio=x".into()]).is_err());
        assert!(parse_patch(&["replay_ratio".into()]).is_err());
    }
}
