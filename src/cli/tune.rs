//! `crossadapt tune`: the validation protocol of issue 17.1 (`engine::tune`). Prints each
//! trial as it ends and the table of every arm's trials, and writes the session config with the
//! chosen values as `[per_arm.ARM]` tables, which `crossadapt run --config FILE` reads.
//! `crossadapt run --tune` runs the same protocol, then the session with its choice.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::ConfigArgs;
use crate::engine::tune::{tune, TuneBudget, TuneOutcome, DEFAULT_TRIALS};
use crate::engine::SessionConfig;
use crate::protocol::tune::trial_line;

#[derive(Debug, Clone, Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Trials per arm (the same budget for every arm); the session's own values are the first.
    #[arg(long, default_value_t = DEFAULT_TRIALS, value_parser = super::ranges::count(1, 10_000))]
    pub trials: usize,
    /// Also choose the online values crossadapt's arms share after the switch (`[online]`,
    /// `[adaptation]`): replay the switch this many retained days earlier and score each
    /// trial by its mean test AUC over those days streamed test-then-train. 0: not tuned.
    #[arg(long, default_value_t = 0, value_name = "DAYS", value_parser = super::ranges::count(0, 10_000))]
    pub online_days: usize,
    /// Where to write the config with the chosen values (`run --config FILE` reads it).
    #[arg(long, default_value = "tuned.toml", value_name = "FILE")]
    pub out: PathBuf,
}

/// `crossadapt tune`.
pub fn run(args: &TuneArgs) -> anyhow::Result<()> {
    let cfg = SessionConfig::load(args.config.config.as_deref(), &args.config.set)?;
    let outcome = protocol(
        &cfg,
        TuneBudget {
            trials: args.trials,
            online_days: args.online_days,
        },
    )?;
    print!("{}", outcome.tuning.table());
    let tuned = outcome.apply(cfg);
    let text = format!(
        "# Chosen by `crossadapt tune` on retained day {} (docs/verdict.md).\n{}",
        outcome.tuning.validation_day,
        tuned.to_toml()?
    );
    crate::atomic::write_atomic(&args.out, text.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {}: `crossadapt run --config {}` runs with these values",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

/// The protocol with one progress line per trial on stderr.
pub fn protocol(cfg: &SessionConfig, budget: TuneBudget) -> anyhow::Result<TuneOutcome> {
    tune(cfg, budget, &mut |arm, i, n, t| {
        eprintln!("{}", trial_line(arm, i, n, t))
    })
}
