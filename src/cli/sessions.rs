//! Session commands: resume, replay, list, fork, export, rm.
//!
//! `list`, `export`, `rm` and `replay` read the store; `resume` and `fork` restart the engine
//! from a verified checkpoint.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use super::live::{attach, console_options, run_attached, Attached, LaunchMode};
use super::run::launch_mode;
use super::ConfigArgs;
use crate::atomic::{write_output, STDOUT};
use crate::engine::events::{EngineEvent, ParamPatch, Params, Position, Stage};
use crate::engine::{Engine, Outcome, SessionConfig};
use crate::session::export::{self, ExportFormat};
use crate::session::replay::replay_into;
use crate::session::{DayTablePrinter, SessionSummary, Store};
use crate::signals::SignalState;
use crate::tui::{run_console, ConsoleSource};

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Session id (or a path to a session directory).
    pub id: String,
    #[arg(long)]
    pub headless: bool,
    /// Continue as a background process (see `run --detach`).
    #[arg(long)]
    pub detach: bool,
    /// Console theme: default, light, high-contrast, colorblind (or a .toml file).
    #[arg(long)]
    pub theme: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Session id, or a path such as `sessions/demo`.
    pub id: String,
    /// Playback speed multiplier, from 0.001 to 1e9 (at most a 2-second wait between records,
    /// divided by the speed).
    #[arg(long, default_value_t = 1.0, value_parser = super::ranges::between(0.001, 1e9))]
    pub speed: f64,
    #[arg(long)]
    pub headless: bool,
    /// Console theme: default, light, high-contrast, colorblind (or a .toml file).
    #[arg(long)]
    pub theme: Option<String>,
    /// Print the console's dashboard and summary after the whole log as plain text at this
    /// size (e.g. `100x30`) instead of playing it: a screenshot for tickets and docs.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub capture: Option<(u16, u16)>,
}

/// The largest `--capture` screen (a bigger one is no screenshot, only a huge buffer).
const MAX_CAPTURE: (u16, u16) = (1000, 500);

/// `WxH` with both sides at least 1 and at most [`MAX_CAPTURE`], e.g. `100x30`.
fn parse_size(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("expected WIDTHxHEIGHT such as 100x30, got {text:?}");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    match (w.trim().parse::<u16>(), h.trim().parse::<u16>()) {
        (Ok(w), Ok(h)) if (1..=MAX_CAPTURE.0).contains(&w) && (1..=MAX_CAPTURE.1).contains(&h) => {
            Ok((w, h))
        }
        (Ok(_), Ok(_)) => Err(format!(
            "WIDTHxHEIGHT must be at most {}x{} and at least 1x1, got {text:?}",
            MAX_CAPTURE.0, MAX_CAPTURE.1
        )),
        _ => Err(bad()),
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ForkArgs {
    pub id: String,
    /// Start from the checkpoint at the start of this day.
    #[arg(long, value_parser = super::ranges::day(0, super::ranges::MAX_DAY))]
    pub from_day: u32,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[arg(long)]
    pub headless: bool,
    /// Run the fork as a background process (see `run --detach`).
    #[arg(long)]
    pub detach: bool,
    /// Console theme: default, light, high-contrast, colorblind (or a .toml file).
    #[arg(long)]
    pub theme: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    pub id: String,
    #[arg(long, value_parser = ["csv", "json"], default_value = "csv")]
    pub format: String,
    /// The file to write (default and `-`: standard output; a device or FIFO is written to,
    /// never replaced). With --bundle: the bundle folder to create.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write a model bundle (docs/bundles.md) of one arm at a kept checkpoint instead.
    #[arg(long)]
    pub bundle: bool,
    /// With --bundle: the arm (default crossadapt), or `teacher` for the session's teacher.
    #[arg(long, requires = "bundle")]
    pub arm: Option<String>,
    /// With --bundle: the checkpoint at the start of this online day (default: the latest,
    /// `done` once the run finished).
    #[arg(long, requires = "bundle", value_parser = super::ranges::day(0, super::ranges::MAX_DAY))]
    pub day: Option<u32>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    pub id: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Also delete a folder of the sessions dir that is not a session (no `session.json` and no
    /// `events.jsonl`); a symbolic link is never followed either way.
    #[arg(long)]
    pub force: bool,
}

/// `resume ID`: continues from the newest checkpoint that loads, in the console or headless. The
/// log is cut after that checkpoint only once it has loaded (the first new record does it); a
/// checkpoint that is damaged, lies past a damaged line of the log, or fails to load is skipped
/// with a warning for the one before. A session that never reached its first checkpoint starts
/// over.
pub fn resume(args: &ResumeArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    if args.detach {
        return super::detach::spawn_detached();
    }
    let store = Store::open(dir)?;
    let mut fallbacks: Vec<String> = Vec::new();
    // First of all, so a signal during the set-up is not the default (instant) death.
    let signals = SignalState::install()?;
    // Each attempt reopens the session: a failed load released it untouched.
    let mut attempt = 0usize;
    loop {
        let mut session = store.open_session(&args.id)?;
        let config_path = session.dir().join("config.toml");
        let cfg = SessionConfig::from_toml(&session.config_toml()?, &config_path)?;
        let contents = session.records()?;
        if attempt == 0 {
            for w in session.warnings() {
                eprintln!("warning: {w}");
            }
        }
        if contents.damaged.is_none()
            && matches!(
                contents.records.last().map(|r| &r.event),
                Some(EngineEvent::Finished { .. })
            )
        {
            println!(
                "session {} is complete; see `crossadapt replay {}`",
                session.id(),
                session.id()
            );
            return Ok(());
        }
        let (id, name) = (session.id().to_string(), session.meta().name.clone());
        let mode = launch_mode(args.headless, args.theme.clone())?;
        let choice = choose_checkpoint(&session, &contents, attempt, &mut fallbacks)?;
        let Some(ckpt) = choice else {
            eprintln!("session {id} has no checkpoint yet: starting it over");
            session.cut_log_before_next_append(None);
            let Attached { io, shared } =
                attach(session, &cfg, &mode, None, Some(signals.clone()))?;
            let engine = Engine::new(cfg.clone(), &id, &name, io)?;
            return finish(run_attached(engine, shared, &mode, &cfg, None)?, &id);
        };
        if mode == LaunchMode::Headless {
            eprintln!("resuming session {id} from checkpoint {}", ckpt.label);
        }
        // Parameter changes after the checkpoint are re-applied where they first applied.
        let changes: Vec<(Position, Params)> = contents
            .records
            .iter()
            .filter(|r| r.seq > ckpt.seq)
            .filter_map(|r| match &r.event {
                EngineEvent::ParamsChanged { params, at } => Some((at.clone(), params.clone())),
                _ => None,
            })
            .collect();
        let fork_patch = fork_patch(&session, &contents.records, &ckpt, &changes, &cfg);
        session.cut_log_before_next_append(Some(ckpt.seq));
        let Attached { io, shared } = attach(session, &cfg, &mode, None, Some(signals.clone()))?;
        match Engine::resume(cfg.clone(), &id, &name, &ckpt.dir, ckpt.seq + 1, io) {
            Ok(mut engine) => {
                for w in &fallbacks {
                    engine.warn(format!("resume: {w}"))?;
                }
                engine.restore_changes(changes)?;
                if let Some(patch) = fork_patch {
                    engine.apply_patch(&patch)?;
                }
                return finish(run_attached(engine, shared, &mode, &cfg, None)?, &id);
            }
            // Only a checkpoint's own failure falls back; a missing data file fails every one.
            Err(e) if format!("{e:#}").contains(&ckpt.dir.display().to_string()) => {
                let w = format!(
                    "checkpoint {} does not load ({e:#}); trying the one before",
                    ckpt.label
                );
                eprintln!("warning: {w}");
                fallbacks.push(w);
                drop(shared);
            }
            Err(e) => return Err(e),
        }
        attempt += 1;
    }
}

/// A fork resumed from the checkpoint it started from, killed before its changed parameters
/// were logged: the fork's change again (its config against the parent's starting parameters,
/// as `fork` computes it), so a kill at any moment cannot revert a fork to its parent.
fn fork_patch(
    session: &crate::session::Session,
    records: &[crate::engine::Record],
    ckpt: &crate::session::CheckpointRef,
    changes: &[(Position, Params)],
    cfg: &SessionConfig,
) -> Option<ParamPatch> {
    let parent = session.meta().parent.as_ref()?;
    let logged = changes.iter().any(|(at, _)| at.stage == Stage::Setup);
    if ckpt.label != crate::session::day_label(parent.day) || logged {
        return None;
    }
    let start = records.iter().find_map(|r| match &r.event {
        EngineEvent::SessionStarted { params, .. } => Some(params),
        _ => None,
    })?;
    Some(param_changes(start, &cfg.params()))
}

/// The `skip`-th newest checkpoint of the session's own that verifies and lies within the
/// readable part of the log; `None` when the session has no checkpoint at all. Skipped ones are
/// warned about (once); a session whose every checkpoint is another's is refused.
fn choose_checkpoint(
    session: &crate::session::Session,
    contents: &crate::session::LogContents,
    skip: usize,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Option<crate::session::CheckpointRef>> {
    let (candidates, mut skipped) = session.checkpoint_candidates()?;
    if candidates.is_empty() && skipped.is_empty() {
        return Ok(None);
    }
    let readable = contents.records.last().map(|r| r.seq);
    let mut usable = 0;
    let mut foreign = Vec::new();
    let total = candidates.len();
    for c in candidates {
        // First: another session's seq says nothing about this log.
        if let Some(why) = c.owner().foreign_to(session.owner(), &c.label) {
            skipped.push(format!("skipped {why}"));
            foreign.push(why);
            continue;
        }
        if readable.is_none_or(|last| c.seq > last) {
            skipped.push(format!(
                "skipped checkpoint {}: it covers the log up to seq {}, past its readable part ({})",
                c.label,
                c.seq,
                contents.damaged.as_deref().unwrap_or("the log ends before it")
            ));
            continue;
        }
        match c.verify() {
            Ok(r) if usable == skip => {
                if skip == 0 {
                    for w in &skipped {
                        eprintln!("warning: {w}");
                    }
                    warnings.extend(skipped);
                }
                return Ok(Some(r));
            }
            Ok(_) => usable += 1,
            Err(e) => skipped.push(format!("skipped checkpoint: {e:#}")),
        }
    }
    if foreign.len() == total {
        if let Some(newest) = foreign.first() {
            bail!("refusing to resume: {newest}, and the session has no checkpoint of its own");
        }
    }
    skipped.extend(warnings.iter().cloned());
    bail!(
        "no usable checkpoint in {}: {}",
        session.dir().join("checkpoints").display(),
        skipped.join("; ")
    )
}

fn finish(outcome: Outcome, id: &str) -> anyhow::Result<()> {
    if outcome == Outcome::Stopped {
        eprintln!("session {id} stopped; continue with `crossadapt resume {id}`");
    }
    Ok(())
}

/// `replay ID --headless [--speed X]`: prints the log through the same [`DayTablePrinter`] a
/// live headless run uses. Without `--headless` the console replay is wired with the console.
pub fn replay(args: &ReplayArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    let view = store.open_read_only(&args.id)?;
    let contents = view.records()?;
    for w in &contents.warnings {
        eprintln!("warning: {w}");
    }
    if let Some((width, height)) = args.capture {
        let no_color = true;
        let theme = crate::tui::Theme::load(args.theme.as_deref().unwrap_or("default"), no_color)?;
        let mut app = crate::tui::app_from_records(&contents.records);
        for view in [
            crate::tui::app::View::Dashboard,
            crate::tui::app::View::Summary,
        ] {
            app.view = view;
            print!(
                "{}",
                crate::tui::render_to_string(&app, &theme, width, height)
            );
        }
        return Ok(());
    }
    if let LaunchMode::Console { theme } = launch_mode(args.headless, args.theme.clone())? {
        if !(args.speed.is_finite() && args.speed > 0.0) {
            bail!("--speed must be a positive number, got {}", args.speed);
        }
        let source = ConsoleSource::Replay {
            records: contents.records,
            speed: args.speed,
        };
        // SIGTERM / SIGINT close the replay too, restoring the terminal.
        let signals = SignalState::install()?;
        run_console(source, console_options(theme, Some(signals))?)?;
        return Ok(());
    }
    let mut printer = DayTablePrinter::new(std::io::stdout());
    replay_into(
        &contents.records,
        &mut printer,
        args.speed,
        &mut std::thread::sleep,
    )?;
    printer.finish()?;
    Ok(())
}

/// `list [--json]`: every session; damaged ones as warning lines on stderr.
pub fn list(args: &ListArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    let mut healthy = Vec::new();
    let mut damaged = Vec::new();
    for entry in store.list() {
        match entry {
            Ok(s) => healthy.push(s),
            Err((path, e)) => damaged.push((path, format!("{e:#}"))),
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let damaged: Vec<serde_json::Value> = damaged
            .iter()
            .map(|(p, e)| serde_json::json!({ "dir": p, "error": e }))
            .collect();
        let doc = serde_json::json!({ "sessions": healthy, "damaged": damaged });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    for (path, e) in &damaged {
        eprintln!("warning: session {} is damaged: {e}", path.display());
    }
    if healthy.is_empty() {
        writeln!(out, "no sessions in {}", store.root().display())?;
        return Ok(());
    }
    write_list_table(&mut out, &healthy)?;
    Ok(())
}

fn write_list_table(out: &mut dyn Write, sessions: &[SessionSummary]) -> anyhow::Result<()> {
    let names: Vec<_> = sessions
        .iter()
        .map(|s| crate::session::shown_name(&s.name))
        .collect();
    let name_w = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(
        out,
        "{:<20}  {:<name_w$}  {:<16}  {:<11}  {:<20}  {:>4}  {:<24}  AUC on the latest day [gate]",
        "id", "name", "created", "status", "stage", "day", "arms"
    )?;
    let mut live = Vec::new();
    for (s, name) in sessions.iter().zip(&names) {
        let headline: Vec<String> = s
            .headline
            .iter()
            .map(|h| match (&h.failed, h.auc) {
                (Some(_), _) => format!("{}=failed", h.arm),
                (None, Some(auc)) => match &h.gate {
                    Some(g) => format!("{}={auc:.4}[{g}]", h.arm),
                    None => format!("{}={auc:.4}", h.arm),
                },
                (None, None) => format!("{}=-", h.arm),
            })
            .collect();
        writeln!(
            out,
            "{:<20}  {:<name_w$}  {:<16}  {:<11}  {:<20}  {:>4}  {:<24}  {}",
            s.id,
            name,
            s.created.format("%Y-%m-%d %H:%M"),
            s.state.label(),
            s.stage.map_or("-", |st| st.label()),
            s.last_day.map_or("-".into(), |d| d.to_string()),
            s.arms.join(","),
            headline.join(" ")
        )?;
        if let Some(e) = &s.engine {
            live.push((s, e));
        }
    }
    if !live.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<20}  {:<24}  {:>8}  {:>10}  {:<19}  controller",
            "running", "host", "pid", "samples/s", "heartbeat"
        )?;
        for (s, e) in live {
            writeln!(
                out,
                "{:<20}  {:<24}  {:>8}  {:>10}  {:<19}  {}",
                s.id,
                e.host,
                e.pid,
                e.samples_per_sec.map_or("-".into(), |r| format!("{r:.0}")),
                e.heartbeat.format("%Y-%m-%d %H:%M:%S"),
                s.controller.as_deref().unwrap_or("-")
            )?;
        }
    }
    Ok(())
}

/// `fork ID --from-day N [--set k=v ...]`: a new session, linked to its parent, that starts
/// from the parent's checkpoint at the start of day N with changed method, online or adaptation
/// settings. What shapes the models and the days (data, split, arms, models, batch size) must
/// stay the parent's: the checkpoint only fits those.
pub fn fork(args: &ForkArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    if args.detach {
        return super::detach::spawn_detached();
    }
    // First of all, so a signal during the copy of the parent is not the default death.
    let signals = SignalState::install()?;
    let store = Store::open(dir)?;
    let parent = store.open_read_only(&args.id)?;
    let parent_path = parent.dir().join("config.toml");
    let parent_cfg = SessionConfig::from_toml(&parent.config_toml()?, &parent_path)?;
    let cfg = match &args.config.config {
        Some(file) => SessionConfig::load(Some(file), &args.config.set)?,
        None => parent_cfg.with_sets(&args.config.set)?,
    };
    check_fork_compatible(&parent_cfg, &cfg)?;
    // An older session's name may hold control characters: the fork's is made printable.
    let name = format!(
        "{} (fork at day {})",
        crate::session::shown_name(&parent.meta().name),
        args.from_day
    );
    let parent_id = parent.id().to_string();
    drop(parent);
    let (session, ckpt) = store.fork(&parent_id, args.from_day, &name, &cfg.to_toml()?)?;
    let id = session.id().to_string();
    let mode = launch_mode(args.headless, args.theme.clone())?;
    if mode == LaunchMode::Headless {
        eprintln!(
            "session {id} ({name}) forked from {parent_id} at day {}",
            args.from_day
        );
    }
    let Attached { io, shared } = attach(session, &cfg, &mode, None, Some(signals))?;
    let mut engine = Engine::resume(cfg.clone(), &id, &name, &ckpt.dir, ckpt.seq + 1, io)?;
    engine.apply_patch(&param_changes(&parent_cfg.params(), &cfg.params()))?;
    finish(run_attached(engine, shared, &mode, &cfg, None)?, &id)
}

/// Keys a fork may not change, with their values in both configs.
fn check_fork_compatible(parent: &SessionConfig, child: &SessionConfig) -> anyhow::Result<()> {
    let fixed = [
        ("data", parent.data != child.data),
        ("split", parent.split != child.split),
        ("arms", parent.arms != child.arms),
        ("teacher", parent.teacher != child.teacher),
        ("student", parent.student != child.student),
        ("batch_size", parent.batch_size != child.batch_size),
        ("min_count", parent.min_count != child.min_count),
        ("seed", parent.seed != child.seed),
    ];
    let changed: Vec<&str> = fixed.iter().filter(|(_, c)| *c).map(|(k, _)| *k).collect();
    if !changed.is_empty() {
        bail!(
            "a fork starts from the parent's checkpoint, so it cannot change {}; start a new session with `crossadapt run` instead",
            changed.join(", ")
        );
    }
    Ok(())
}

/// The operator parameters the fork's config changes (the others keep their checkpoint values,
/// including changes an operator made in the parent).
fn param_changes(parent: &Params, child: &Params) -> ParamPatch {
    let pick = |a: f64, b: f64| (a != b).then_some(b);
    ParamPatch {
        sampling_ratio: pick(parent.sampling_ratio, child.sampling_ratio),
        replay_ratio: pick(parent.replay_ratio, child.replay_ratio),
        teacher_interval: (parent.teacher_interval != child.teacher_interval)
            .then_some(child.teacher_interval),
        distill_min: pick(parent.distill_min, child.distill_min),
        distill_max: pick(parent.distill_max, child.distill_max),
    }
}

/// `export ID --format csv|json [--out FILE]`: per day and arm metrics, updates and drift.
pub fn export(args: &ExportArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    if args.bundle {
        let req = super::bundle::ExportBundle {
            id: &args.id,
            arm: args.arm.as_deref(),
            day: args.day,
            out: args.out.as_deref(),
        };
        return super::bundle::export_bundle(&req, dir);
    }
    let format: ExportFormat = args.format.parse()?;
    let store = Store::open(dir)?;
    let view = store.open_read_only(&args.id)?;
    let contents = view.records()?;
    for w in &contents.warnings {
        eprintln!("warning: {w}");
    }
    let text = export::render(view.meta(), &contents.records, format)?;
    let path = args.out.as_deref().unwrap_or(Path::new(STDOUT));
    write_output(path, text.as_bytes()).context("cannot write the export")
}

/// `rm ID [--yes] [--force]`: asks y/N on a terminal; without a terminal, `--yes` is required.
/// A damaged session (unreadable `session.json`) can still be removed, with a warning; a folder
/// that is no session at all only with `--force`; a symbolic link never.
pub fn rm(args: &RmArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    let id = args.id.as_str();
    let folder = store.root().join(id);
    if std::fs::symlink_metadata(&folder).is_ok_and(|m| m.file_type().is_symlink()) {
        // Refused by the store, with its message.
        return store.remove_with(id, args.force);
    }
    let what = match store.open_read_only(id) {
        Ok(view) if view.id() == id => {
            format!(
                "\"{}\" ({})",
                crate::session::shown_name(&view.meta().name),
                view.dir().display()
            )
        }
        Ok(view) => bail!(
            "rm takes a session id from {}, not a path (did you mean {}?)",
            store.root().display(),
            view.id()
        ),
        Err(e) if folder.is_dir() => {
            if !crate::session::store::looks_like_session(&folder) && !args.force {
                return store.remove_with(id, false);
            }
            eprintln!("warning: {e:#}");
            format!("(damaged) ({})", folder.display())
        }
        Err(e) => return Err(e),
    };
    if !args.yes {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            bail!("refusing to delete session {id} without confirmation: stdin is not a terminal (pass --yes)");
        }
        eprint!("Delete session {id} {what}? [y/N] ");
        let mut answer = String::new();
        stdin
            .lock()
            .read_line(&mut answer)
            .context("cannot read the confirmation")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("kept session {id}");
            return Ok(());
        }
    }
    store.remove_with(id, args.force)?;
    eprintln!("deleted session {id}");
    Ok(())
}
