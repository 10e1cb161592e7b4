//! Command line: one subcommand per job, each handled in its own file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod bundle;
pub mod data;
pub mod detach;
pub mod edge;
pub mod live;
pub mod ops;
pub mod ranges;
pub mod run;
pub mod scale;
pub mod sessions;
pub mod suite;
pub mod train;
pub mod tune;

#[derive(Debug, Parser)]
#[command(
    name = "crossadapt",
    version,
    about = "Switch a CTR model to a new architecture by transferring the old model's knowledge",
    long_about = "crossadapt runs CrossAdapt (embedding transfer, progressive distillation, \
asymmetric online co-distillation) against its baselines on days of CTR data, in a live \
terminal console or headless. With no subcommand it opens the console on a new session over \
the built-in synthetic drifting stream."
)]
pub struct Cli {
    /// Where sessions are stored (default: the platform data dir of crossadapt).
    #[arg(
        long,
        global = true,
        env = "CROSSADAPT_SESSIONS_DIR",
        value_name = "DIR"
    )]
    pub sessions_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate, load and inspect days of data.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Train one model on some days and evaluate it on another.
    Train(train::TrainArgs),
    /// Measure training speed.
    #[command(subcommand)]
    Bench(train::BenchCommand),
    /// Start a new session (console, or --headless).
    Run(run::RunArgs),
    /// Choose each arm's learning rates and distillation settings by one validation protocol
    /// on the retained days (switch, one online day, scored on the last; no online day read);
    /// print the trials, write a config.
    Tune(tune::TuneArgs),
    /// Continue a session from its latest checkpoint.
    Resume(sessions::ResumeArgs),
    /// Play a session's events back.
    Replay(sessions::ReplayArgs),
    /// List the stored sessions.
    List(sessions::ListArgs),
    /// Start a new session from a day checkpoint of another, with changed parameters.
    Fork(sessions::ForkArgs),
    /// Write a session's per-day metrics, updates and drift as CSV or JSON.
    Export(sessions::ExportArgs),
    /// Delete a session.
    Rm(sessions::RmArgs),
    /// Send a command to a running session and wait for the engine's acknowledgement.
    Ctl(ops::CtlArgs),
    /// Open the console on a running (e.g. detached) session.
    Attach(ops::AttachArgs),
    /// Per-day AUC, LogLoss and bias of several sessions' arms side by side.
    Compare(ops::CompareArgs),
    /// Predict one day of data with a model bundle (docs/bundles.md).
    Predict(bundle::PredictArgs),
}

/// Options shared by every command that starts the engine.
#[derive(Debug, Clone, Args, Default)]
pub struct ConfigArgs {
    /// Session config (TOML); every field has a default.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one config field, e.g. `--set method.sampling_ratio=0.2` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let sessions_dir = cli.sessions_dir;
    match cli.command {
        None => run::run(&run::RunArgs::default(), sessions_dir),
        Some(Command::Data(cmd)) => data::run(cmd),
        Some(Command::Train(args)) => train::run_train(&args),
        Some(Command::Bench(cmd)) => train::run_bench(&cmd),
        Some(Command::Run(args)) => run::run(&args, sessions_dir),
        Some(Command::Tune(args)) => tune::run(&args),
        Some(Command::Resume(args)) => sessions::resume(&args, sessions_dir),
        Some(Command::Replay(args)) => sessions::replay(&args, sessions_dir),
        Some(Command::List(args)) => sessions::list(&args, sessions_dir),
        Some(Command::Fork(args)) => sessions::fork(&args, sessions_dir),
        Some(Command::Export(args)) => sessions::export(&args, sessions_dir),
        Some(Command::Rm(args)) => sessions::rm(&args, sessions_dir),
        Some(Command::Ctl(args)) => ops::ctl(&args, sessions_dir),
        Some(Command::Attach(args)) => ops::attach(&args, sessions_dir),
        Some(Command::Compare(args)) => ops::compare(&args, sessions_dir),
        Some(Command::Predict(args)) => bundle::predict(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every subcommand parses with its defaults and with each ranged flag set: clap checks a
    /// value parser's type against its field only when the flag is read, as a panic.
    #[test]
    fn every_ranged_flag_parses_into_its_field() {
        let lines = [
            "train --eval-day 3 --valid-day 4 --batch 8 --epochs 2 --emb-lr 0.1 --dense-lr 0.01 --threads 1 --rows-per-day 100",
            "bench train --emb 4 --batch 8 --fields 3 --ids 10 --threads 1 --steps 2 --warmup 0",
            "data synth --days 2 --rows-per-day 10 --out x",
            "data inspect synthetic --top-k 5",
            "data bench --rows 10",
            "bench edge --worlds 2 --first-world 3 --rows-per-day 100 --threads 1 --days 2..4",
            "replay x --speed 2 --capture 80x24",
            "fork x --from-day 3 --detach",
            "rm x --yes --force",
            "predict --bundle b --day 3 --threads 1",
            "export x --bundle --day 3",
            "train --min-count 0",
            "ctl x set replay_ratio=0.3 --timeout 5",
            "ctl x stop --force",
            "attach x --view",
            "run --detach",
            "resume x --detach",
            "compare a b --headless --metric auc,bias --filter kd --baseline a/kd --csv f",
        ];
        for line in lines {
            let args = std::iter::once("crossadapt").chain(line.split(' '));
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        let err = Cli::try_parse_from(["crossadapt", "train", "--batch", "0"]).unwrap_err();
        assert!(err.to_string().contains("1..="), "{err}");
    }
}
