//! Writing the synthetic stream to disk as day-partitioned Parquet plus the schema that reads
//! it back as a generic table (`data synth`).

use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{bail, Context, Result};
use polars::prelude::*;

use super::source::{DaySource, RawDay};
use super::synth::SyntheticSource;
use super::table::{TableFormat, TableSchema, TimeUnit};

/// Unix time of day 0 (Monday 2026-01-05 00:00 UTC).
pub const DAY0_EPOCH_SECONDS: i64 = 1_767_571_200;

/// The schema of a folder written by [`write_synthetic`].
pub fn synthetic_schema(source: &SyntheticSource) -> TableSchema {
    TableSchema {
        format: Some(TableFormat::Parquet),
        separator: ",".into(),
        has_header: true,
        columns: vec![],
        label: "click".into(),
        positive: "click > 0".into(),
        time: Some("ts".into()),
        time_unit: TimeUnit::Seconds,
        time_format: None,
        period: None,
        time_features: vec![],
        days: source.num_days(),
        categorical: source.cat_fields(),
        numeric: source.num_fields(),
        bucketed: vec![],
        numeric_log1p: false,
        user: source.user_field(),
    }
}

/// Rows `first_row..` of day `day` (which has `day_rows` rows) as a polars frame: `ts`
/// (seconds), `click`, the categorical fields (Int64 ids) and the numeric fields (Float32).
pub fn day_frame(
    source: &dyn DaySource,
    day: usize,
    raw: &RawDay,
    first_row: usize,
    day_rows: usize,
) -> Result<DataFrame> {
    let n = raw.rows();
    let mut cols: Vec<Column> = Vec::new();
    let base = DAY0_EPOCH_SECONDS + day as i64 * 86_400;
    let ts: Vec<i64> = (first_row..first_row + n)
        .map(|r| base + (r as u64 * 86_400 / day_rows.max(1) as u64) as i64)
        .collect();
    cols.push(Column::new("ts".into(), ts));
    let click: Vec<i64> = raw.label.iter().map(|&y| y as i64).collect();
    cols.push(Column::new("click".into(), click));
    for (f, name) in source.cat_fields().iter().enumerate() {
        let ids: Vec<i64> = raw.field_keys(f).map(|k| k as i64).collect();
        cols.push(Column::new(name.as_str().into(), ids));
    }
    for (j, name) in source.num_fields().iter().enumerate() {
        let nn = raw.num_num.max(1);
        let v: Vec<f32> = raw.num.iter().skip(j).step_by(nn).copied().collect();
        cols.push(Column::new(name.as_str().into(), v));
    }
    anyhow::Context::context(DataFrame::new(n, cols), "building the day's table")
}

/// The folder `out` goes in (`.` for a bare name), created if missing: where its temporary
/// twin is written before the rename into place.
fn created_parent(out: &Path) -> Result<&Path> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    Ok(parent)
}

/// Writes every day of `source` to `out/day-NNN.parquet`, plus `out/schema.toml` (a generic
/// table schema) and `out/synth.toml` (the generator config). Everything is written into a
/// temporary folder next to `out` and renamed into place at the end, so a failure leaves
/// nothing behind. `out` must not exist or be empty.
pub fn write_synthetic(source: &SyntheticSource, out: &Path) -> Result<()> {
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "{} already exists and is not empty; choose a new --out",
                out.display()
            );
        }
    }
    let parent = created_parent(out)?;
    let tmp = tempfile::Builder::new()
        .prefix(".synth-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a temporary folder in {}", parent.display()))?;
    // A day is written a chunk at a time (one row group each), never held whole.
    for day in 0..source.num_days() {
        let path = tmp.path().join(format!("day-{day:03}.parquet"));
        let file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let day_rows = source.day_rows(day)?;
        let bad = |e: PolarsError| anyhow::anyhow!("writing day {day} as Parquet: {e}");
        let mut writer = None;
        let mut first_row = 0;
        source.day_chunks(day, &mut |raw| {
            let df = day_frame(source, day, &raw, first_row, day_rows)?;
            first_row += raw.rows();
            if writer.is_none() {
                writer = Some(
                    ParquetWriter::new(&file)
                        .batched(df.schema())
                        .map_err(bad)?,
                );
            }
            if let Some(w) = writer.as_mut() {
                w.write_batch(&df).map_err(bad)?;
            }
            Ok(ControlFlow::Continue(()))
        })?;
        match writer {
            Some(w) => {
                w.finish().map_err(bad)?;
            }
            // A day of no rows is still a file, with the columns.
            None => {
                let empty = RawDay::empty(source.cat_fields().len(), source.num_fields().len());
                let mut df = day_frame(source, day, &empty, 0, 0)?;
                ParquetWriter::new(&file).finish(&mut df).map_err(bad)?;
            }
        }
    }
    let schema = toml::to_string(&synthetic_schema(source)).context("serialising the schema")?;
    let header =
        "# Written by `crossadapt data synth`: reads this folder back as a generic table.\n";
    std::fs::write(tmp.path().join("schema.toml"), format!("{header}{schema}"))?;
    let cfg = toml::to_string(source.config()).context("serialising the synthetic config")?;
    std::fs::write(tmp.path().join("synth.toml"), cfg)?;
    for entry in std::fs::read_dir(tmp.path())? {
        std::fs::File::open(entry?.path())?.sync_all()?;
    }
    if out.exists() {
        std::fs::remove_dir(out).with_context(|| format!("cannot replace {}", out.display()))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, out).with_context(|| {
        let _ = std::fs::remove_dir_all(&kept);
        format!("cannot move the written days to {}", out.display())
    })?;
    Ok(())
}

/// Categorical and numeric columns of a Criteo line: `label I1..I13 C1..C26`.
pub const CRITEO_CATEGORICAL: usize = 26;
pub const CRITEO_NUMERIC: usize = 13;

/// Writes every day of `source` to one Criteo-layout TSV file (no header, `label I1..I13
/// C1..C26`, days as consecutive row blocks), as `data.source = "criteo"` reads it with
/// `data.days` set to the number of days. Numeric values are written as non-negative
/// integers (Criteo's are counts) and categorical ids as 8-digit hex strings. The source must
/// have Criteo's 13 numeric and 26 categorical fields (the `wide` preset). Written to a
/// temporary file beside `out` and renamed into place, so a failure leaves nothing behind.
pub fn write_criteo(source: &SyntheticSource, out: &Path) -> Result<()> {
    use std::io::Write;
    let (nc, nn) = (source.cat_fields().len(), source.num_fields().len());
    if nc != CRITEO_CATEGORICAL || nn != CRITEO_NUMERIC {
        bail!(
            "the Criteo layout has {CRITEO_NUMERIC} numeric and {CRITEO_CATEGORICAL} categorical \
             columns; this preset has {nn} and {nc} (use --preset wide)"
        );
    }
    if out.exists() {
        bail!("{} already exists; choose a new --out", out.display());
    }
    let parent = created_parent(out)?;
    // An ordinary file's mode (the umask applies), not a temporary file's owner-only one.
    let tmp = tempfile::Builder::new()
        .prefix(".criteo-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(parent)
        .with_context(|| format!("cannot create a temporary file in {}", parent.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
    let mut line = String::with_capacity(512);
    for day in 0..source.num_days() {
        source.day_chunks(day, &mut |raw| {
            for r in 0..raw.rows() {
                line.clear();
                line.push(if raw.label[r] > 0.0 { '1' } else { '0' });
                for j in 0..nn {
                    let v = raw.num[r * nn + j].max(0.0).floor() as u64;
                    let _ = std::fmt::Write::write_fmt(&mut line, format_args!("\t{v}"));
                }
                for f in 0..nc {
                    let key = raw.cat[r * nc + f];
                    // Criteo's categorical values are hashed 32-bit hex strings; ids of
                    // different fields may share a string, as they do there.
                    let _ = std::fmt::Write::write_fmt(
                        &mut line,
                        format_args!("\t{:08x}", key & 0xffff_ffff),
                    );
                }
                line.push('\n');
                w.write_all(line.as_bytes())
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    w.flush()
        .with_context(|| format!("writing {}", out.display()))?;
    drop(w);
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", out.display()))?;
    tmp.persist(out).map_err(|e| {
        anyhow::anyhow!(
            "cannot move the written file to {}: {}",
            out.display(),
            e.error
        )
    })?;
    Ok(())
}
