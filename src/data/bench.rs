//! `data bench`: rows per second of generation and of load + encode, and peak memory.

use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use super::export::{synthetic_schema, write_synthetic};
use super::source::DaySource;
use super::synth::{SynthConfig, SyntheticSource};
use super::table::TableSource;
use super::vocab::Vocabulary;

/// What `data bench` measured.
#[derive(Clone, Debug, Serialize)]
pub struct DataBench {
    pub rows: usize,
    pub cat_fields: usize,
    pub generate_rows_per_s: f64,
    /// Peak resident memory after generating the day (MiB, VmHWM).
    pub peak_mib_after_generate: f64,
    pub write_parquet_s: f64,
    /// Reading the day back from Parquet through the table source.
    pub load_rows_per_s: f64,
    pub fit_vocab_rows_per_s: f64,
    pub encode_rows_per_s: f64,
    /// Peak resident memory of the whole process at the end (MiB, VmHWM).
    pub peak_mib: f64,
}

/// Peak resident set size of this process in MiB (`VmHWM` of /proc/self/status), if known.
pub fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Generates one day of `rows` rows of `preset`, writes it as Parquet in a temporary folder,
/// loads it back, fits a vocabulary and encodes it, timing each step.
pub fn run(preset: &str, rows: usize) -> Result<DataBench> {
    let cfg = SynthConfig {
        days: 1,
        rows_per_day: rows,
        ..SynthConfig::preset(preset)?
    };
    let source = SyntheticSource::new(cfg)?;
    let t = Instant::now();
    let raw = source.raw_day(0)?;
    let generate = t.elapsed().as_secs_f64();
    let peak_gen = peak_mib().unwrap_or(f64::NAN);
    drop(raw);

    let dir = tempfile::tempdir().context("creating a temporary folder")?;
    let out = dir.path().join("days");
    let t = Instant::now();
    write_synthetic(&source, &out)?;
    let write = t.elapsed().as_secs_f64();

    // A table is read whole at open, so the load time is the open's (the parse alone: the day
    // cache would time its own writing, and a second run would time a cache hit).
    let t = Instant::now();
    let table = TableSource::open_with_cache(&out, synthetic_schema(&source), "table", None)?;
    let raw = table.raw_day(0)?;
    let load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let vocab = Vocabulary::fit_raw(&table, std::slice::from_ref(&raw), 1)?;
    let fit = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let batch = vocab.encode(&raw);
    let encode = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        batch.rows() == rows,
        "encoded {} rows, expected {rows}",
        batch.rows()
    );
    let per_s = |s: f64| rows as f64 / s.max(1e-9);
    Ok(DataBench {
        rows,
        cat_fields: source.cat_fields().len(),
        generate_rows_per_s: per_s(generate),
        peak_mib_after_generate: peak_gen,
        write_parquet_s: write,
        load_rows_per_s: per_s(load),
        fit_vocab_rows_per_s: per_s(fit),
        encode_rows_per_s: per_s(encode),
        peak_mib: peak_mib().unwrap_or(f64::NAN),
    })
}
