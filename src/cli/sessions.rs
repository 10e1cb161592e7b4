//! Session commands: resume, replay, list, fork, export, rm.

use std::path::PathBuf;

use clap::Args;

use super::ConfigArgs;

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
    anyhow::bail!("`crossadapt {what}` is not built yet")
}

pub fn resume(args: &ResumeArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = (args, dir);
    not_yet("resume")
}
pub fn replay(args: &ReplayArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = (args, dir);
    not_yet("replay")
}
pub fn list(args: &ListArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = (args, dir);
    not_yet("list")
}
pub fn fork(args: &ForkArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = (args, dir);
    not_yet("fork")
}
pub fn export(args: &ExportArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = (args, dir);
    not_yet("export")
}
pub fn rm(args: &RmArgs, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = (args, dir);
    not_yet("rm")
}
