//! `crossadapt run` (and no subcommand): start a new session, in the console or headless.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::live::{attach_showing, run_attached, Attached, LaunchMode, Tables};
use super::ConfigArgs;
use crate::engine::{Engine, Outcome, Prepared, SessionConfig};
use crate::session::store::Store;

#[derive(Debug, Clone, Args, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Run without the console: print per-day tables to stdout.
    #[arg(long)]
    pub headless: bool,
    /// Run the engine as a background process (headless, output in the session folder's
    /// output.log): prints the session id and returns. See `attach` and `ctl`.
    #[arg(long)]
    pub detach: bool,
    /// Write the JSON report here (headless). `-`: standard output, which then carries the
    /// JSON alone (the tables go to stderr). A device or FIFO (`/dev/null`, a named pipe) is
    /// written to, never replaced.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also write every event as JSON lines here.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Human name of the session (printable characters: an escape code or a newline is
    /// refused).
    #[arg(long)]
    pub name: Option<String>,
    /// Console theme: default, light, high-contrast, colorblind.
    #[arg(long)]
    pub theme: Option<String>,
    /// First choose each arm's values by the validation protocol (`crossadapt tune`: a grid
    /// scored on the retained days, no online day read), then run with them; the choice is
    /// recorded.
    #[arg(long)]
    pub tune: bool,
    /// Trials per arm of `--tune`.
    #[arg(long, default_value_t = crate::engine::tune::DEFAULT_TRIALS, value_parser = super::ranges::count(1, 10_000))]
    pub tune_trials: usize,
    /// With `--tune`: also choose crossadapt's shared online values on this many retained
    /// days streamed after an earlier switch (`crossadapt tune --online-days`). 0: not tuned.
    #[arg(long, default_value_t = 0, value_name = "DAYS", requires = "tune", value_parser = super::ranges::count(0, 10_000))]
    pub tune_online_days: usize,
    /// Open the data, fit the vocabulary and print the plan and the expected heap peak, then
    /// stop: no session is created.
    #[arg(long, conflicts_with_all = ["detach", "tune"])]
    pub dry_run: bool,
    /// Refuse to start when the expected heap peak is above this many megabytes, naming the
    /// settings that would fit (the same as `--set max_memory_mb=MB`).
    #[arg(long, value_name = "MB", value_parser = super::ranges::count(1, 1 << 40))]
    pub max_memory: Option<usize>,
}

/// The console unless `--headless` or there is no terminal (then headless, with a note). The
/// console's theme and keymap are checked here, before any session is created or opened, so a
/// bad `--theme` or keys file leaves nothing behind.
pub fn launch_mode(headless: bool, theme: Option<String>) -> anyhow::Result<LaunchMode> {
    if headless {
        return Ok(LaunchMode::Headless);
    }
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        crate::say_err!(
            "note: no terminal attached: running headless (use --headless to silence this)"
        );
        return Ok(LaunchMode::Headless);
    }
    crate::tui::validate_options(&super::live::console_options(theme.clone(), None)?)?;
    Ok(LaunchMode::Console { theme })
}

pub fn run(args: &RunArgs, sessions_dir: Option<PathBuf>) -> anyhow::Result<()> {
    // Before anything else (a detached run's parent included): a bad name leaves nothing.
    if let Some(name) = &args.name {
        crate::session::check_name(name).context("--name")?;
    }
    if args.detach {
        return super::detach::spawn_detached();
    }
    // First of all, so a signal during the set-up is not the default (instant) death.
    let signals = crate::signals::SignalState::install()?;
    let mut cfg = SessionConfig::load(args.config.config.as_deref(), &args.config.set)?;
    if let Some(mb) = args.max_memory {
        cfg.max_memory_mb = mb as u64;
    }
    if let (None, Some(name)) = (&args.name, &cfg.name) {
        crate::session::check_name(name).context("the config's `name`")?;
    }
    let mode = launch_mode(args.headless || args.dry_run, args.theme.clone())?;
    // Tuning reads only the history and retained days; the session then runs with its choice.
    let (cfg, tuned) = if args.tune {
        let budget = crate::engine::tune::TuneBudget {
            trials: args.tune_trials,
            online_days: args.tune_online_days,
        };
        let outcome = super::tune::protocol(&cfg, budget)?;
        (outcome.apply(cfg), Some(outcome.tuning))
    } else {
        (cfg, None)
    };
    // The data is opened, split and checked before the session folder exists, so a source
    // that cannot run (missing, too short, one-class labels) leaves no session behind.
    let prepared = Prepared::new(&cfg)?;
    for note in prepared.notes() {
        eprintln!("note: {note}");
    }
    let memory = crate::engine::memory::estimate(&cfg, &prepared)?;
    if args.dry_run {
        println!("{}", prepared.plan_line());
        println!("{memory}");
        return memory.check(cfg.max_memory_mb);
    }
    if mode == LaunchMode::Headless {
        crate::say_err!("{memory}");
    }
    memory.check(cfg.max_memory_mb)?;
    let store = Store::open(sessions_dir)?;
    let name = args
        .name
        .clone()
        .or_else(|| cfg.name.clone())
        .unwrap_or_else(|| default_name(&cfg));
    let session = store
        .create(&name, &cfg.to_toml()?, None)
        .context("cannot create the session")?;
    let id = session.id().to_string();
    if mode == LaunchMode::Headless {
        crate::say_err!("session {id} ({name}) in {}", session.dir().display());
    }
    let tables = match args.report.as_deref() {
        Some(path) if crate::atomic::is_stdout(path) => Tables::Stderr,
        _ => Tables::Stdout,
    };
    let Attached { io, shared } = attach_showing(
        session,
        &cfg,
        &mode,
        args.events.as_deref(),
        Some(signals),
        tables,
    )?;
    let mut engine = Engine::start(cfg.clone(), prepared, &id, &name, io)?;
    if let Some(tuning) = tuned {
        engine.announce_tuning(crate::protocol::EngineEvent::Tuned { tuning });
    }
    let outcome = run_attached(engine, shared, &mode, &cfg, args.report.as_deref())?;
    if outcome == Outcome::Stopped {
        crate::say_err!("session {id} stopped; continue with `crossadapt resume {id}`");
    }
    Ok(())
}

/// `student vs teacher on source`, e.g. `deepfm vs mlp on synthetic`.
fn default_name(cfg: &SessionConfig) -> String {
    // A teacher bundle's model replaces teacher.model (its spec is read when the run starts).
    let teacher = match &cfg.teacher.bundle {
        Some(_) => "a bundled teacher".to_string(),
        None => cfg.teacher.model.arch.to_string(),
    };
    format!(
        "{} vs {} on {}",
        cfg.student.model.arch,
        teacher,
        crate::engine::config::source_kind(&cfg.data)
    )
}
