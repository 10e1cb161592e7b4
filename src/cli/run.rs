//! `crossadapt run` (and no subcommand): start a new session.

use std::path::PathBuf;

use clap::Args;

use super::ConfigArgs;

#[derive(Debug, Clone, Args, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Run without the console: print per-day tables to stdout.
    #[arg(long)]
    pub headless: bool,
    /// Write the JSON report here (headless).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also write every event as JSON lines here.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Human name of the session.
    #[arg(long)]
    pub name: Option<String>,
    /// Console theme (see themes/).
    #[arg(long)]
    pub theme: Option<String>,
}

pub fn run(args: &RunArgs, sessions_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = (args, sessions_dir);
    anyhow::bail!("`crossadapt run` is not built yet")
}
