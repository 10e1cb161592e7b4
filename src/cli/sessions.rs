//! Session commands: resume, replay, list, fork, export, rm.
//!
//! `list`, `export`, `rm` and `replay --headless` read the store directly; `resume`, `fork` and
//! the console replay need the engine and the console and are wired by the lead.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::ConfigArgs;
use crate::session::atomic::write_atomic;
use crate::session::export::{self, ExportFormat};
use crate::session::replay::replay_into;
use crate::session::{DayTablePrinter, SessionSummary, Store};

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Session id (or a path to a session directory).
    pub id: String,
    #[arg(long)]
    pub headless: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Session id, or a path such as `sessions/demo`.
    pub id: String,
    /// Playback speed multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    #[arg(long)]
    pub headless: bool,
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
    #[arg(long)]
    pub from_day: u32,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[arg(long)]
    pub headless: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    pub id: String,
    #[arg(long, value_parser = ["csv", "json"], default_value = "csv")]
    pub format: String,
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    pub id: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

fn not_yet(what: &str) -> anyhow::Result<()> {
    anyhow::bail!("`crossadapt {what}` is not available yet (it needs the engine)")
}

/// `resume ID`: wired with the engine (the store side is `Store::open_session`,
/// `Session::latest_checkpoint` and `Session::truncate_log_after`).
pub fn resume(args: &ResumeArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = (args, dir);
    not_yet("resume")
}

/// `replay ID --headless [--speed X]`: prints the log through the same [`DayTablePrinter`] a
/// live headless run uses. Without `--headless` the console replay is wired with the console.
pub fn replay(args: &ReplayArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    if !args.headless {
        return not_yet("replay (console)");
    }
    let store = Store::open(dir)?;
    let view = store.open_read_only(&args.id)?;
    let contents = view.records()?;
    for w in &contents.warnings {
        eprintln!("warning: {w}");
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
    let name_w = sessions
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(
        out,
        "{:<20}  {:<name_w$}  {:<16}  {:<11}  {:>4}  {:<24}  headline (AUC)",
        "id", "name", "created", "status", "day", "arms"
    )?;
    for s in sessions {
        let headline: Vec<String> = s
            .headline
            .iter()
            .map(|h| match (&h.failed, h.auc) {
                (Some(_), _) => format!("{}=failed", h.arm),
                (None, Some(auc)) => format!("{}={auc:.4}", h.arm),
                (None, None) => format!("{}=-", h.arm),
            })
            .collect();
        writeln!(
            out,
            "{:<20}  {:<name_w$}  {:<16}  {:<11}  {:>4}  {:<24}  {}",
            s.id,
            s.name,
            s.created.format("%Y-%m-%d %H:%M"),
            s.state.label(),
            s.last_day.map_or("-".into(), |d| d.to_string()),
            s.arms.join(","),
            headline.join(" ")
        )?;
    }
    Ok(())
}

/// `fork ID --from-day N`: wired with the engine (the store side is
/// `SessionView::checkpoint_for_day` and `Store::create` with a `Parent`).
pub fn fork(args: &ForkArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = (args, dir);
    not_yet("fork")
}

/// `export ID --format csv|json [--out FILE]`: per day and arm metrics, updates and drift.
pub fn export(args: &ExportArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let format: ExportFormat = args.format.parse()?;
    let store = Store::open(dir)?;
    let view = store.open_read_only(&args.id)?;
    let contents = view.records()?;
    for w in &contents.warnings {
        eprintln!("warning: {w}");
    }
    let text = export::render(view.meta(), &contents.records, format)?;
    match &args.out {
        Some(path) => write_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write the export to {}", path.display())),
        None => {
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .context("cannot write the export to stdout")?;
            Ok(())
        }
    }
}

/// `rm ID [--yes]`: asks y/N on a terminal; without a terminal, `--yes` is required. A
/// damaged session (unreadable `session.json`) can still be removed, with a warning.
pub fn rm(args: &RmArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    let id = args.id.as_str();
    let what = match store.open_read_only(id) {
        Ok(view) if view.id() == id => {
            format!("\"{}\" ({})", view.meta().name, view.dir().display())
        }
        Ok(view) => bail!(
            "rm takes a session id from {}, not a path (did you mean {}?)",
            store.root().display(),
            view.id()
        ),
        Err(e) if store.root().join(id).is_dir() => {
            eprintln!("warning: {e:#}");
            format!("(damaged) ({})", store.root().join(id).display())
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
    store.remove(id)?;
    eprintln!("deleted session {id}");
    Ok(())
}
