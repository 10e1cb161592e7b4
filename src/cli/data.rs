//! `crossadapt data ...`: generate, load and inspect days.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use crate::data::bench;
use crate::data::config::DataConfig;
use crate::data::export::{write_criteo, write_synthetic};
use crate::data::inspect::{inspect, INSPECT_TOP_K};
use crate::data::source::DaySource;
use crate::data::synth::{SynthConfig, SyntheticSource};

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write days of the synthetic drifting stream as day-partitioned Parquet plus its schema.
    Synth {
        #[arg(long, default_value_t = 30, value_parser = super::ranges::count(1, super::ranges::MAX_DAY as usize))]
        days: usize,
        #[arg(long, default_value_t = 20_000, value_parser = super::ranges::count(1, super::ranges::MAX_ROWS))]
        rows_per_day: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Generator preset the other flags override: default, fm4, no-drift, tiny or wide.
        #[arg(long, default_value = "default")]
        preset: String,
        /// `parquet`: a folder of day files and schema.toml; `criteo`: one Criteo TSV file
        /// (`label I1..I13 C1..C26`, days as row blocks; needs `--preset wide`), read back with
        /// `--set data.source=criteo --set data.path=OUT --set data.days=DAYS`.
        #[arg(long, default_value = "parquet", value_parser = ["parquet", "criteo"])]
        layout: String,
    },
    /// Per day: rows, positive rate, cardinalities, unseen ids and drift against day 0.
    ///
    /// PATH is a folder written by `data synth` (its schema.toml is used), a file with
    /// `--schema`, a Criteo `.tsv`/`.txt`, an Avazu `.csv` (header with `click` and `hour`),
    /// or `synthetic[:PRESET]` for the built-in stream itself.
    Inspect {
        path: PathBuf,
        #[arg(long, value_name = "FILE")]
        schema: Option<PathBuf>,
        /// Length of one day of a timed source: 6h, 1d, 7d, ... (default: the schema's, or 1d).
        #[arg(long)]
        period: Option<crate::data::Period>,
        #[arg(long)]
        json: bool,
        /// Top ids per field kept as their own drift buckets.
        #[arg(long, default_value_t = INSPECT_TOP_K, value_parser = super::ranges::count(1, 1_000_000))]
        top_k: usize,
    },
    /// Rows/second of generation and of load + encode, and peak memory, for one large day.
    Bench {
        #[arg(long, default_value_t = 2_000_000, value_parser = super::ranges::count(1, super::ranges::MAX_ROWS))]
        rows: usize,
        #[arg(long, default_value = "default")]
        preset: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Synth {
            days,
            rows_per_day,
            seed,
            out,
            preset,
            layout,
        } => {
            let cfg = SynthConfig {
                days,
                rows_per_day,
                seed,
                ..SynthConfig::preset(&preset)?
            };
            let source = SyntheticSource::new(cfg)?;
            if layout == "criteo" {
                write_criteo(&source, &out)?;
                println!(
                    "wrote {days} days x {rows_per_day} rows of {} to {} (Criteo layout; read it \
                     with --set data.source=criteo --set data.path={} --set data.days={days})",
                    source.describe(),
                    out.display(),
                    out.display()
                );
                return Ok(());
            }
            write_synthetic(&source, &out)?;
            println!(
                "wrote {days} days x {rows_per_day} rows of {} to {} (schema.toml, synth.toml)",
                source.describe(),
                out.display()
            );
            Ok(())
        }
        DataCommand::Inspect {
            path,
            schema,
            period,
            json,
            top_k,
        } => {
            log_to_stderr();
            let source = open_for_inspect(&path, schema.as_deref(), period)?;
            let report = inspect(source.as_ref(), top_k)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_table());
            }
            Ok(())
        }
        DataCommand::Bench { rows, preset, json } => {
            let b = bench::run(&preset, rows)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                println!(
                    "one day of {} rows x {} categorical fields ({preset})",
                    b.rows, b.cat_fields
                );
                println!("  generate       {:>12.0} rows/s", b.generate_rows_per_s);
                println!("  write parquet  {:>12.2} s", b.write_parquet_s);
                println!("  load parquet   {:>12.0} rows/s", b.load_rows_per_s);
                println!("  fit vocabulary {:>12.0} rows/s", b.fit_vocab_rows_per_s);
                println!("  encode         {:>12.0} rows/s", b.encode_rows_per_s);
                println!(
                    "  peak memory    {:>12.0} MiB after generating, {:.0} MiB at the end (VmHWM)",
                    b.peak_mib_after_generate, b.peak_mib
                );
            }
            Ok(())
        }
    }
}

/// Sends the log to stderr, without times or targets (level from `CROSSADAPT_LOG`, default
/// `info` for this crate): the first open of a large table ingests it into the day cache, and
/// its progress lines say how far it is. A logger already set stays.
fn log_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CROSSADAPT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("crossadapt=info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_env_filter(filter)
        .try_init();
}

/// Picks the source `data inspect` reads from its arguments.
pub fn open_for_inspect(
    path: &Path,
    schema: Option<&Path>,
    period: Option<crate::data::Period>,
) -> Result<Box<dyn DaySource>> {
    let text = path.to_string_lossy();
    if let Some(rest) = text.strip_prefix("synthetic") {
        if rest.is_empty() || rest.starts_with(':') {
            let preset = rest.strip_prefix(':').unwrap_or("default");
            return Ok(Box::new(SyntheticSource::new(SynthConfig::preset(
                preset,
            )?)?));
        }
    }
    let config = if let Some(schema) = schema {
        DataConfig::Table {
            path: path.to_path_buf(),
            schema: schema.to_path_buf(),
            period,
            days: None,
        }
    } else if path.is_dir() {
        let schema = path.join("schema.toml");
        if !schema.exists() {
            bail!(
                "{} has no schema.toml; pass --schema FILE to say how to read it",
                path.display()
            );
        }
        DataConfig::Table {
            path: path.to_path_buf(),
            schema,
            period,
            days: None,
        }
    } else {
        match path.extension().and_then(|e| e.to_str()) {
            Some("tsv" | "txt") if period.is_none() => DataConfig::Criteo {
                path: path.to_path_buf(),
                days: None,
                bucket_numeric: true,
            },
            Some("csv") if csv_header_has(path, &["click", "hour"])? => DataConfig::Avazu {
                path: path.to_path_buf(),
                period,
            },
            _ => bail!(
                "cannot tell how to read {}; pass --schema FILE (see data/*.toml for examples)",
                path.display()
            ),
        }
    };
    config.open()
}

fn csv_header_has(path: &Path, names: &[&str]) -> Result<bool> {
    use std::io::BufRead;
    // Before the file is opened: opening a FIFO waits for a writer.
    crate::data::table::check_input(path)?;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut line = String::new();
    std::io::BufReader::new(file)
        .read_line(&mut line)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let cols: Vec<&str> = line.trim_end().split(',').collect();
    Ok(names.iter().all(|n| cols.contains(n)))
}
