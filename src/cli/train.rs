//! `crossadapt train` and `crossadapt bench`.

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Model spec, e.g. `dcnv2` or `deepfm:emb=16,hidden=400x400x400`.
    #[arg(long, default_value = "deepfm")]
    pub model: String,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Training samples/second of one model after warm-up.
    Train {
        #[arg(long, default_value = "deepfm")]
        model: String,
    },
}

pub fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("`crossadapt train` is not built yet")
}

pub fn run_bench(cmd: &BenchCommand) -> anyhow::Result<()> {
    let _ = cmd;
    anyhow::bail!("`crossadapt bench` is not built yet")
}
