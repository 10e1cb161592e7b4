//! `crossadapt data ...`: generate, load and inspect days.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write days of the synthetic drifting stream as day-partitioned Parquet plus its schema.
    Synth {
        #[arg(long, default_value_t = 30)]
        days: usize,
        #[arg(long, default_value_t = 20_000)]
        rows_per_day: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Per day: rows, positive rate, cardinalities, unseen ids and drift against day 0.
    Inspect {
        path: PathBuf,
        #[arg(long, value_name = "FILE")]
        schema: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    let _ = cmd;
    anyhow::bail!("`crossadapt data` is not built yet")
}
