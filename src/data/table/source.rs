//! [`TableSource`]: a CSV or Parquet table (one file, or a folder of files) read once with
//! polars and cut into days: by its time column and a period, by file (a folder without a time
//! column: `day_0`, `day_1`, ...), or into equal row blocks (one file without a time column).
//!
//! The table is read in one pass at open and cut into days of raw keys (8 bytes per
//! categorical cell, 4 per numeric one). With the ingest-once day cache
//! ([`cache`](super::cache)) that pass streams: polars' streaming engine hands the rows over a
//! chunk at a time, each chunk is converted and its rows appended to their day's file, so the
//! first open holds a few chunks, not the table; a day read costs that day, and the next open
//! of the same table (a new session, a resume, a fork) reads no text at all. With the cache
//! off the table is collected whole and its days stay in memory.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::*;

use super::cache::{self, DayCache, DayColumns, DayWriter, IngestOptions};
use super::columns::{self, ColumnSite, Locate};
use super::schema::{PositiveRule, TableFormat, TableSchema, TimeUnit};
use crate::data::source::{DaySource, RawDay, Visit, STREAM_ROWS};

const ROW: &str = "__row";
const FILE: &str = "__file";
const TIME: &str = "__time";

/// A table on disk described by a [`TableSchema`], read at open and held as days.
pub struct TableSource {
    name: String,
    label: &'static str,
    schema: TableSchema,
    days: Days,
    /// What each day is (`2024-03-01`, `day_3`, `rows 0-99`), for error messages.
    day_names: Vec<String>,
}

/// Where the days of an opened table are.
enum Days {
    /// Held in memory (the cache is off or could not be written).
    Memory(Vec<RawDay>),
    /// In the day cache, read one day at a time.
    Cached(DayCache),
}

/// The files of a table and how polars scans them.
struct Reader<'a> {
    path: &'a Path,
    name: &'a str,
    schema: &'a TableSchema,
    format: TableFormat,
    /// A folder: rows carry their file's path in [`FILE`].
    folder: bool,
}

impl<'a> Reader<'a> {
    /// A reader of `path` (a file, or a folder of files) under `schema`.
    fn new(path: &'a Path, name: &'a str, schema: &'a TableSchema) -> Result<Self> {
        let folder = super::check_input(path)?;
        Ok(Reader {
            path,
            name,
            schema,
            format: schema.format_for(path),
            folder,
        })
    }
}

/// The files of a folder as their rows arrive (in scan order), across chunks.
#[derive(Default)]
struct Files {
    index: HashMap<String, u32>,
    names: Vec<String>,
    /// Global row of each file's first row.
    first_row: Vec<u64>,
}

/// Where the rows of a collected frame (the whole table, or one chunk of it) came from, for
/// errors naming file and row.
struct Origins<'a> {
    /// 0-based global row (scan order) of each collected row.
    rows: Vec<u64>,
    /// Index into `files` of each row (empty when the table is one file).
    file_of: Vec<u32>,
    files: &'a Files,
}

impl Origins<'_> {
    fn locate(&self, name: &str, i: usize) -> (String, u64) {
        let row = self.rows.get(i).copied().unwrap_or(i as u64);
        match self.file_of.get(i) {
            Some(&f) => (
                self.files.names[f as usize].clone(),
                row - self.files.first_row[f as usize] + 1,
            ),
            None => (name.to_string(), row + 1),
        }
    }
}

/// Rows between two progress lines of a streamed ingest.
const PROGRESS_ROWS: u64 = 1_000_000;

/// How the days of a streamed ingest are ordered at the end.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum DayOrder {
    /// A period's index, or a row block's.
    Index(i64),
    /// A file, in natural order.
    File(Vec<(u8, u64, String)>),
}

impl TableSource {
    /// Opens `path` (a file, or a folder of files) with `schema` and reads it. Errors name
    /// the file and the column (and the row where one is at fault).
    /// The days go to (or come from) the day cache in effect ([`cache::root`]).
    pub fn open(path: &Path, schema: TableSchema, label: &'static str) -> Result<TableSource> {
        Self::open_with_cache(path, schema, label, cache::root().as_deref())
    }

    /// [`open`](Self::open) with the day cache under `cache_root` (`None`: days in memory).
    pub fn open_with_cache(
        path: &Path,
        schema: TableSchema,
        label: &'static str,
        cache_root: Option<&Path>,
    ) -> Result<TableSource> {
        Self::open_with(path, schema, label, cache_root, IngestOptions::default())
    }

    /// [`open_with_cache`](Self::open_with_cache) with the streamed ingest cut as `ingest`
    /// says (tests force small chunks so that days span several).
    pub fn open_with(
        path: &Path,
        schema: TableSchema,
        label: &'static str,
        cache_root: Option<&Path>,
        ingest: IngestOptions,
    ) -> Result<TableSource> {
        let name = path.display().to_string();
        super::check_input(path)?;
        schema.check()?;
        let Some(root) = cache_root else {
            return Self::read(path, schema, label);
        };
        let schema_json = serde_json::to_string(&schema).context("serialising the schema")?;
        let fingerprint = cache::fingerprint(path, &schema_json, label)?;
        if let Some(hit) = DayCache::open(root, &fingerprint) {
            tracing::info!("{name}: days from the day cache {}", hit.dir().display());
            return Ok(TableSource::cached(name, label, schema, hit));
        }
        match Self::ingest(path, &schema, root, &fingerprint, ingest) {
            Ok(Ingested::Written(written)) => Ok(TableSource::cached(name, label, schema, written)),
            Ok(Ingested::CacheFailed(e)) => {
                // A read-only or full disk must not stop a run that fits in memory.
                tracing::warn!("{name}: days kept in memory, the day cache failed: {e:#}");
                Self::read(path, schema, label)
            }
            Err(e) => Err(e),
        }
    }

    fn cached(name: String, label: &'static str, schema: TableSchema, c: DayCache) -> Self {
        TableSource {
            name,
            label,
            schema,
            day_names: c.days().iter().map(|d| d.name.clone()).collect(),
            days: Days::Cached(c),
        }
    }

    /// Parses the whole table once and cuts it into days held in memory.
    fn read(path: &Path, schema: TableSchema, label: &'static str) -> Result<TableSource> {
        let name = path.display().to_string();
        let rule = PositiveRule::parse(&schema.positive, &schema.label)?;
        let reader = Reader::new(path, &name, &schema)?;
        let scan = reader.scan()?;
        let selected = reader.selected(&scan)?;
        let df = selected.collect().map_err(|e| reader.diagnosed(&scan, e))?;
        if df.height() == 0 {
            bail!("{name} is empty (no rows to read)");
        }
        let (days, day_names) = reader.cut(&df, &rule)?;
        Ok(TableSource {
            name,
            label,
            schema,
            days: Days::Memory(days),
            day_names,
        })
    }

    /// Streams the table into a new day cache entry: the rows come `ingest.chunk_rows` at a
    /// time in scan order (Parquet by row slices, CSV from polars' streaming engine); each
    /// chunk is converted (errors name file, column and row as [`read`](Self::read)'s do) and
    /// its rows appended to their day. The days come out as [`read`](Self::read) cuts them,
    /// rows in the same order.
    fn ingest(
        path: &Path,
        schema: &TableSchema,
        root: &Path,
        fingerprint: &str,
        ingest: IngestOptions,
    ) -> Result<Ingested> {
        let name = path.display().to_string();
        let rule = PositiveRule::parse(&schema.positive, &schema.label)?;
        let reader = Reader::new(path, &name, schema)?;
        let scan = reader.scan()?;
        let selected = reader.selected(&scan)?;
        let timed = schema.time.is_some();
        let parquet = reader.format == TableFormat::Parquet;
        // Row blocks are cut by the row count, and Parquet is read by row slices up to it, so
        // it is counted first (polars counts the rows of a CSV without parsing its cells, and
        // reads a Parquet file's from its footer).
        let counted: Option<u64> = if parquet || (!timed && !reader.folder) {
            let counted = scan
                .clone()
                .select([len().alias("n")])
                .collect()
                .map_err(|e| reader.polars_error(e))?;
            let n = counted
                .column("n")
                .and_then(|c| c.cast(&DataType::UInt64))
                .map_err(|e| reader.polars_error(e))?
                .u64()
                .map_err(|e| reader.polars_error(e))?
                .get(0)
                .unwrap_or(0);
            if n == 0 {
                bail!("{name} is empty (no rows to read)");
            }
            Some(n)
        } else {
            None
        };
        let blocks: Option<Vec<u64>> = match counted {
            Some(n) if !timed && !reader.folder => {
                let days = schema.days as u64;
                if n < days {
                    bail!("{name} has {n} rows, fewer than the {days} days asked for");
                }
                Some((0..=days).map(|d| d * n / days).collect())
            }
            _ => None,
        };
        let (num_cat, num_num) = (schema.cat_fields().len(), schema.numeric.len());
        let mut out = match DayWriter::begin(root, fingerprint, num_cat, num_num, timed, ingest) {
            Ok(out) => out,
            Err(e) => return Ok(Ingested::CacheFailed(e)),
        };
        let period = schema.period();
        // The day of each key (period index, file, block) and each day's place and name.
        let mut day_of: HashMap<i64, usize> = HashMap::new();
        let mut days: Vec<(DayOrder, String)> = Vec::new();
        if let Some(bounds) = &blocks {
            for w in bounds.windows(2) {
                day_of.insert(days.len() as i64, out.add_day());
                days.push((
                    DayOrder::Index(days.len() as i64),
                    format!("rows {}-{}", w[0] + 1, w[1]),
                ));
            }
        }
        let mut files = Files::default();
        let mut block = 0usize;
        let (started, mut rows_read, mut next_report) = (Instant::now(), 0u64, PROGRESS_ROWS);
        let each = |df: DataFrame| {
            let known_files = files.names.len();
            let origins = files.add(&df, reader.folder).map_err(Fault::Source)?;
            for f in &origins.files.names[known_files..] {
                tracing::info!("{name}: reading {f}");
            }
            let locate = |i: usize| origins.locate(&name, i);
            let rows = reader.convert(&df, &rule, &locate).map_err(Fault::Source)?;
            let n = rows.cols.rows();
            // The day of every row, as runs of rows going to the same day.
            let mut of_row: Vec<usize> = Vec::with_capacity(n);
            for i in 0..n {
                let key = if let Some(bounds) = &blocks {
                    let r = origins.rows.get(i).copied().unwrap_or(0);
                    while block + 1 < bounds.len() - 1 && r >= bounds[block + 1] {
                        block += 1;
                    }
                    block as i64
                } else if timed {
                    period.index_of(rows.seconds[i])
                } else {
                    i64::from(origins.file_of.get(i).copied().unwrap_or(0))
                };
                let d = match day_of.get(&key) {
                    Some(&d) => d,
                    None => {
                        let d = out.add_day();
                        day_of.insert(key, d);
                        days.push(if timed {
                            (DayOrder::Index(key), period_name(key * period.seconds()))
                        } else {
                            let file = &origins.files.names[key as usize];
                            let base = Path::new(file)
                                .file_name()
                                .map(|n| n.to_string_lossy().to_string())
                                .unwrap_or_default();
                            (DayOrder::File(natural_key(file)), base)
                        });
                        d
                    }
                };
                of_row.push(d);
            }
            let written = if of_row.iter().all(|&d| Some(&d) == of_row.first()) {
                match of_row.first() {
                    Some(&d) => out.push(d, &rows.cols, None),
                    None => Ok(()),
                }
            } else {
                let mut groups: Vec<(usize, Vec<u32>)> = Vec::new();
                let mut at: HashMap<usize, usize> = HashMap::new();
                for (i, &d) in of_row.iter().enumerate() {
                    let g = *at.entry(d).or_insert_with(|| {
                        groups.push((d, Vec::new()));
                        groups.len() - 1
                    });
                    groups[g].1.push(i as u32);
                }
                groups
                    .iter()
                    .try_for_each(|(d, rows_of)| out.push(*d, &rows.cols, Some(rows_of)))
            };
            written.and_then(|()| out.relieve()).map_err(Fault::Cache)?;
            rows_read += n as u64;
            if rows_read >= next_report {
                next_report += PROGRESS_ROWS;
                tracing::info!(
                    "{name}: {rows_read} rows ingested into {} days ({:.0} s)",
                    days.len(),
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        };
        let streamed = match counted {
            Some(n) if parquet => for_each_slice(&selected, n, ingest.chunk_rows, each),
            _ => for_each_chunk(selected, ingest.chunk_rows, each),
        };
        match streamed {
            Ok(()) => {}
            Err(Fault::Polars(e)) => return Err(reader.diagnosed(&scan, e)),
            Err(Fault::Source(e)) => return Err(e),
            Err(Fault::Cache(e)) => return Ok(Ingested::CacheFailed(e)),
        }
        if rows_read == 0 {
            bail!("{name} is empty (no rows to read)");
        }
        let mut order: Vec<usize> = (0..days.len()).collect();
        order.sort_by(|&a, &b| days[a].0.cmp(&days[b].0));
        let names: Vec<String> = order.iter().map(|&d| days[d].1.clone()).collect();
        let written = match out.finish(&order, &names, &name) {
            Ok(w) => w,
            Err(e) => return Ok(Ingested::CacheFailed(e)),
        };
        tracing::info!(
            "{name}: {rows_read} rows in {} days ingested into {} ({:.1} s)",
            names.len(),
            written.dir().display(),
            started.elapsed().as_secs_f64()
        );
        Ok(Ingested::Written(written))
    }

    /// What day `day` is (its period's start, its file or its rows).
    pub fn day_name(&self, day: usize) -> Option<&str> {
        self.day_names.get(day).map(String::as_str)
    }
}

impl Reader<'_> {
    /// The lazy scan of the whole table.
    fn scan(&self) -> Result<LazyFrame> {
        let root = self.path.to_string_lossy().to_string();
        match self.format {
            TableFormat::Parquet => {
                let mut args = ScanArgsParquet::default();
                let target = if self.folder {
                    // Every Parquet file below the folder; `key=value` folder names become
                    // columns (Hive partitioning), dates parsed as dates.
                    args.hive_options = HiveOptions::new_enabled();
                    args.include_file_paths = Some(FILE.into());
                    self.files(|n| n.ends_with(".parquet"))?;
                    format!("{}/**/*.parquet", root.trim_end_matches('/'))
                } else {
                    root
                };
                LazyFrame::scan_parquet(PlRefPath::new(target), args)
                    .map_err(|e| self.polars_error(e))
            }
            TableFormat::Csv => {
                let sep = self
                    .schema
                    .separator
                    .as_bytes()
                    .first()
                    .copied()
                    .unwrap_or(b',');
                let mut reader = if self.folder {
                    let files = self.files(is_csv_name)?;
                    let paths: Vec<PlRefPath> = files
                        .iter()
                        .map(|p| PlRefPath::new(p.to_string_lossy().to_string()))
                        .collect();
                    LazyCsvReader::new_paths(paths.into())
                        .with_include_file_paths(Some(FILE.into()))
                } else {
                    LazyCsvReader::new(PlRefPath::new(root))
                };
                reader = reader
                    .with_has_header(self.schema.has_header)
                    .with_separator(sep)
                    .with_missing_is_null(true);
                // Read every used column as text; numbers are parsed here, so a bad cell is
                // reported with its row instead of failing type inference.
                let mut fields: Vec<Field> = Vec::new();
                if self.schema.has_header {
                    for (c, _) in self.schema.used_columns() {
                        fields.push(Field::new(c.into(), DataType::String));
                    }
                    reader = reader.with_dtype_overwrite(Some(Arc::new(Schema::from_iter(fields))));
                } else {
                    if self.schema.columns.is_empty() {
                        bail!(
                            "{}: the schema says the CSV has no header, so it must list `columns`",
                            self.name
                        );
                    }
                    for c in &self.schema.columns {
                        fields.push(Field::new(c.as_str().into(), DataType::String));
                    }
                    reader = reader.with_schema(Some(Arc::new(Schema::from_iter(fields))));
                }
                reader.finish().map_err(|e| self.polars_error(e))
            }
        }
    }

    /// The scan with each row's global index (and file, for a folder), its time as ticks, and
    /// the columns the schema uses; a column the schema names but the file lacks is an error
    /// naming the file's columns.
    fn selected(&self, scan: &LazyFrame) -> Result<LazyFrame> {
        let schema = self.schema;
        let file_schema = scan
            .clone()
            .collect_schema()
            .map_err(|e| self.polars_error(e))?;
        for (column, role) in schema.used_columns() {
            if file_schema.get(column).is_none() {
                let known: Vec<&str> = file_schema
                    .iter_names()
                    .map(|n| n.as_str())
                    .filter(|n| *n != FILE)
                    .collect();
                bail!(
                    "{}: the {role} column `{column}` named by the schema is not in the file \
                     (its columns: {})",
                    self.name,
                    known.join(", ")
                );
            }
        }
        let time_is_text = schema
            .time
            .as_ref()
            .is_some_and(|t| matches!(file_schema.get(t), Some(DataType::String)));
        let mut wanted: Vec<Expr> = vec![col(ROW)];
        if self.folder {
            wanted.push(col(FILE));
        }
        if let Some(t) = &schema.time {
            wanted.push(self.time_expr(t, time_is_text).alias(TIME));
        }
        let mut seen = std::collections::HashSet::new();
        for (c, _) in schema.used_columns() {
            if seen.insert(c) {
                wanted.push(col(c));
            }
        }
        Ok(scan.clone().with_row_index(ROW, None).select(wanted))
    }

    /// The error of a failed read: the first time cell that does not parse when there is
    /// one, else polars' own first line.
    fn diagnosed(&self, scan: &LazyFrame, e: PolarsError) -> anyhow::Error {
        let diagnosed = self
            .schema
            .time
            .as_ref()
            .and_then(|t| self.diagnose_time(scan.clone(), t));
        diagnosed.unwrap_or_else(|| self.polars_error(e))
    }

    /// The data files below the folder whose (lower-case) name passes `keep`, hidden ones
    /// (`.x`, `_SUCCESS`) left out, in natural order (`day_2` before `day_10`).
    fn files(&self, keep: fn(&str) -> bool) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut stack = vec![self.path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir)
                .with_context(|| format!("cannot list {}", dir.display()))?;
            for entry in entries {
                let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
                let name = entry.file_name().to_string_lossy().to_lowercase();
                if name.starts_with('.') || name.starts_with('_') {
                    continue;
                }
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if keep(&name) {
                    super::check_input(&path)?;
                    out.push(path);
                }
            }
        }
        if out.is_empty() {
            let what = match self.format {
                TableFormat::Parquet => "`.parquet` files",
                TableFormat::Csv => "CSV files (`.csv`, `.tsv`, `.txt`, `.gz`, or no extension)",
            };
            bail!("{} holds no {what}", self.name);
        }
        out.sort_by_cached_key(|p| natural_key(&p.to_string_lossy()));
        Ok(out)
    }

    /// polars' error as one line naming the file: in a folder of Parquet files, the file whose
    /// footer does not read (polars names the folder). The message is made printable: polars
    /// quotes the bytes it found where a footer should be.
    fn polars_error(&self, e: PolarsError) -> anyhow::Error {
        if let Some((file, why)) = self.damaged_file() {
            return anyhow!("{file}: {}", first_line(&why));
        }
        let text = e.to_string();
        if text.to_lowercase().contains("empty") {
            anyhow!("{} is empty (no rows to read)", self.name)
        } else {
            anyhow!("{}: {}", self.name, first_line(&text))
        }
    }

    /// In a folder of Parquet files, the first (in natural order) whose footer does not read,
    /// and why.
    fn damaged_file(&self) -> Option<(String, String)> {
        if !self.folder || self.format != TableFormat::Parquet {
            return None;
        }
        let files = self.files(|n| n.ends_with(".parquet")).ok()?;
        files.iter().find_map(|f| {
            let read = std::fs::File::open(f)
                .map_err(|e| e.to_string())
                .and_then(|file| {
                    ParquetReader::new(file)
                        .num_rows()
                        .map_err(|e| e.to_string())
                });
            read.err().map(|why| (f.display().to_string(), why))
        })
    }

    /// The time column as an integer in the unit's own ticks (seconds, milliseconds, days,
    /// microseconds, or YYMMDDHH).
    fn time_expr(&self, t: &str, is_text: bool) -> Expr {
        let c = col(t);
        let opts = || StrptimeOptions {
            format: self.schema.time_format.as_deref().map(Into::into),
            strict: true,
            exact: true,
            cache: true,
        };
        match self.schema.time_unit {
            TimeUnit::Seconds | TimeUnit::Milliseconds | TimeUnit::Yymmddhh => {
                if is_text {
                    c.strict_cast(DataType::Float64)
                        .strict_cast(DataType::Int64)
                } else {
                    c.strict_cast(DataType::Int64)
                }
            }
            TimeUnit::Date if is_text => c.str().to_date(opts()).cast(DataType::Int64),
            TimeUnit::Datetime if is_text => c
                .str()
                .to_datetime(
                    Some(polars::prelude::TimeUnit::Microseconds),
                    None,
                    opts(),
                    lit("raise"),
                )
                .cast(DataType::Int64),
            TimeUnit::Date => c.cast(DataType::Date).cast(DataType::Int64),
            TimeUnit::Datetime => c
                .cast(DataType::Datetime(
                    polars::prelude::TimeUnit::Microseconds,
                    None,
                ))
                .cast(DataType::Int64),
        }
    }

    /// Finds the first time cell that does not parse, as one sentence naming the row.
    fn diagnose_time(&self, scan: LazyFrame, t: &str) -> Option<anyhow::Error> {
        let mut wanted = vec![col(ROW), col(t).cast(DataType::String)];
        if self.folder {
            wanted.push(col(FILE));
        }
        let df = scan
            .with_row_index(ROW, None)
            .select(wanted)
            .collect()
            .ok()?;
        let mut files = Files::default();
        let origins = files.add(&df, self.folder).ok()?;
        let cells = df.column(t).ok()?.str().ok()?.clone();
        let unit = self.schema.time_unit;
        let fmt = self.schema.time_format.as_deref();
        for (i, cell) in cells.iter().enumerate() {
            let ok = match cell {
                None => false,
                Some(s) => time_parses(s.trim(), unit, fmt),
            };
            if !ok {
                let what = match cell {
                    None | Some("") => "the time is missing".to_string(),
                    Some(s) => format!("`{s}` is not a valid {unit:?} time").to_lowercase(),
                };
                let (file, row) = origins.locate(self.name, i);
                return Some(anyhow!("{file}: column `{t}`, row {row}: {what}"));
            }
        }
        None
    }

    /// Converts the rows of a collected frame (the whole table, or one chunk of it):
    /// labels, time, keys and numbers, errors naming file, column and row through `locate`.
    fn convert(&self, df: &DataFrame, rule: &PositiveRule, locate: Locate) -> Result<Converted> {
        let schema = self.schema;
        let at = |c: &str| -> Result<&Column> { Ok(df.column(c)?) };
        let n = df.height();
        let label = columns::labels(
            at(&schema.label)?,
            rule,
            &ColumnSite {
                file: self.name,
                column: &schema.label,
                locate,
            },
        )?;
        // Time of every row: its ticks (for order within a day) and seconds (for periods).
        let (ticks, seconds) = match &schema.time {
            Some(t) => {
                let ticks: Vec<Option<i64>> = df.column(TIME)?.i64()?.iter().collect();
                let mut sec = Vec::with_capacity(n);
                let mut tk = Vec::with_capacity(n);
                for (i, v) in ticks.into_iter().enumerate() {
                    let v = v.ok_or_else(|| {
                        let (file, row) = locate(i);
                        anyhow!("{file}: column `{t}`, row {row}: the time is missing")
                    })?;
                    let s = seconds_of(v, schema.time_unit).ok_or_else(|| {
                        let (file, row) = locate(i);
                        anyhow!(
                            "{file}: column `{t}`, row {row}: `{v}` is not a valid {} time",
                            format!("{:?}", schema.time_unit).to_lowercase()
                        )
                    })?;
                    tk.push(v);
                    sec.push(s);
                }
                (tk, sec)
            }
            None => (vec![], vec![]),
        };
        let mut cat_cols: Vec<Vec<u64>> = Vec::new();
        for c in &schema.categorical {
            cat_cols.push(columns::cat_keys(at(c)?)?);
        }
        for c in &schema.bucketed {
            let s = ColumnSite {
                file: self.name,
                column: c,
                locate,
            };
            cat_cols.push(columns::bucket_keys(at(c)?, &s)?);
        }
        for f in &schema.time_features {
            cat_cols.push(seconds.iter().map(|&s| f.of(s)).collect());
        }
        let mut num_cols: Vec<Vec<f32>> = Vec::new();
        for c in &schema.numeric {
            let s = ColumnSite {
                file: self.name,
                column: c,
                locate,
            };
            num_cols.push(columns::numeric(at(c)?, schema.numeric_log1p, &s)?);
        }
        Ok(Converted {
            cols: DayColumns {
                cat: cat_cols,
                num: num_cols,
                label,
                ticks,
            },
            seconds,
        })
    }

    /// Converts the collected table and cuts it into days.
    fn cut(&self, df: &DataFrame, rule: &PositiveRule) -> Result<(Vec<RawDay>, Vec<String>)> {
        let schema = self.schema;
        let mut files = Files::default();
        let origins = files.add(df, self.folder)?;
        let locate = |i: usize| origins.locate(self.name, i);
        let n = df.height();
        let Converted { cols, seconds } = self.convert(df, rule, &locate)?;
        let DayColumns {
            cat: cat_cols,
            num: num_cols,
            label,
            ticks,
        } = cols;

        // The day of each row, and the rows of each day in order.
        let (groups, names): (Vec<Vec<usize>>, Vec<String>) = if schema.time.is_some() {
            let period = schema.period();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&i| (period.index_of(seconds[i]), ticks[i]));
            let mut groups: Vec<Vec<usize>> = Vec::new();
            let mut names = Vec::new();
            let mut current = None;
            for i in order {
                let key = period.index_of(seconds[i]);
                if current != Some(key) {
                    current = Some(key);
                    groups.push(Vec::new());
                    names.push(period_name(key * period.seconds()));
                }
                if let Some(g) = groups.last_mut() {
                    g.push(i);
                }
            }
            (groups, names)
        } else if self.folder {
            // One day per file, in natural file order.
            let names = &origins.files.names;
            let mut by_name: Vec<usize> = (0..names.len()).collect();
            by_name.sort_by_cached_key(|&f| natural_key(&names[f]));
            let mut day_of_file = vec![0usize; names.len()];
            for (day, &f) in by_name.iter().enumerate() {
                day_of_file[f] = day;
            }
            let mut groups = vec![Vec::new(); by_name.len()];
            for (i, &f) in origins.file_of.iter().enumerate() {
                groups[day_of_file[f as usize]].push(i);
            }
            let names = by_name
                .iter()
                .map(|&f| {
                    let p = Path::new(&names[f]);
                    p.file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default()
                })
                .collect();
            (groups, names)
        } else {
            let days = schema.days;
            if n < days {
                bail!(
                    "{} has {n} rows, fewer than the {days} days asked for",
                    self.name
                );
            }
            let groups: Vec<Vec<usize>> = (0..days)
                .map(|d| (d * n / days..(d + 1) * n / days).collect())
                .collect();
            let names = groups
                .iter()
                .map(|g| match (g.first(), g.last()) {
                    (Some(a), Some(b)) => format!("rows {}-{}", a + 1, b + 1),
                    _ => "no rows".to_string(),
                })
                .collect();
            (groups, names)
        };

        let days = groups
            .iter()
            .map(|rows| {
                let mut day = RawDay::empty(cat_cols.len(), num_cols.len());
                day.cat.reserve(rows.len() * cat_cols.len());
                day.num.reserve(rows.len() * num_cols.len());
                day.label.reserve(rows.len());
                for &r in rows {
                    day.cat.extend(cat_cols.iter().map(|c| c[r]));
                    day.num.extend(num_cols.iter().map(|c| c[r]));
                    day.label.push(label[r]);
                }
                day
            })
            .collect();
        Ok((days, names))
    }
}

/// What a chunk's conversion gives: the rows as day columns, and each row's time in seconds
/// (empty without a time column).
struct Converted {
    cols: DayColumns,
    seconds: Vec<i64>,
}

/// What a streamed ingest ends with: the entry, or why the cache could not be written (the
/// table is then read into memory instead).
enum Ingested {
    Written(DayCache),
    CacheFailed(anyhow::Error),
}

/// Why a streamed ingest stopped.
enum Fault {
    /// polars could not read or parse the table.
    Polars(PolarsError),
    /// A cell of the table is at fault (the error names it).
    Source(anyhow::Error),
    /// The day cache could not be written.
    Cache(anyhow::Error),
}

/// One message of the streaming query's thread.
enum StreamMsg {
    Rows(DataFrame),
    End(PolarsResult<()>),
}

/// Reads the first `rows` rows of `lf` (a Parquet scan) a slice of `chunk_rows` at a time and
/// hands them to `each`, in scan order. Each slice is its own in-memory query, which polars
/// narrows to the row groups the slice overlaps, so at most one slice's row groups are decoded
/// at once. polars' streaming engine is not used for Parquet: its reader decodes row groups
/// ahead of a slow consumer, up to the whole file.
fn for_each_slice(
    lf: &LazyFrame,
    rows: u64,
    chunk_rows: usize,
    mut each: impl FnMut(DataFrame) -> Result<(), Fault>,
) -> Result<(), Fault> {
    let step = chunk_rows.max(1) as u64;
    let mut offset = 0u64;
    while offset < rows {
        let len = step.min(rows - offset);
        let df = lf
            .clone()
            .slice(offset as i64, len as IdxSize)
            .collect()
            .map_err(Fault::Polars)?;
        if df.height() == 0 {
            break;
        }
        offset += df.height() as u64;
        each(df)?;
    }
    Ok(())
}

/// Runs `lf` on polars' streaming engine and hands its rows to `each`, in scan order,
/// `chunk_rows` at a time. The query runs on its own thread and waits while `each` works on a
/// chunk (a channel of one), so no more than a couple of chunks are held at once; when `each`
/// fails, the query is told to stop.
fn for_each_chunk(
    lf: LazyFrame,
    chunk_rows: usize,
    mut each: impl FnMut(DataFrame) -> Result<(), Fault>,
) -> Result<(), Fault> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<StreamMsg>(1);
    let to_main = tx.clone();
    let size = NonZeroUsize::new(chunk_rows).unwrap_or(NonZeroUsize::MIN);
    let sink = lf
        .sink_batches(
            PlanCallback::new(move |df| Ok(to_main.send(StreamMsg::Rows(df)).is_err())),
            true,
            Some(size),
        )
        .map_err(Fault::Polars)?;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let done = sink.collect_with_engine(Engine::Streaming).map(drop);
            // The receiver is gone when `each` failed: nobody waits for the end then.
            let _ = tx.send(StreamMsg::End(done));
        });
        let outcome = loop {
            match rx.recv() {
                Ok(StreamMsg::Rows(df)) => each(df)?,
                Ok(StreamMsg::End(done)) => break done.map_err(Fault::Polars),
                Err(_) => break Ok(()),
            }
        };
        // Dropping the receiver stops a query still sending (when `each` failed).
        drop(rx);
        outcome
    })
}

impl Files {
    /// The origins of a collected frame's rows (`folder`: with their file), files first seen
    /// in it added.
    fn add(&mut self, df: &DataFrame, folder: bool) -> Result<Origins<'_>> {
        let rows = columns::row_numbers(df, ROW)?;
        let mut file_of = Vec::new();
        if folder {
            let col = df.column(FILE)?.cast(&DataType::String)?;
            file_of.reserve(rows.len());
            for (i, f) in col.str()?.iter().enumerate() {
                let f = f.unwrap_or("");
                let id = match self.index.get(f) {
                    Some(&id) => id,
                    None => {
                        let id = self.names.len() as u32;
                        self.index.insert(f.to_string(), id);
                        self.names.push(f.to_string());
                        self.first_row.push(rows[i]);
                        id
                    }
                };
                file_of.push(id);
            }
        }
        Ok(Origins {
            rows,
            file_of,
            files: self,
        })
    }
}

/// Whether a file in a CSV folder is data: `.csv`, `.tsv`, `.txt`, compressed `.gz` / `.zst`,
/// or no extension at all (Criteo's `day_0`, `day_1`, ...).
fn is_csv_name(name: &str) -> bool {
    let base = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".zst"))
        .unwrap_or(name);
    [".csv", ".tsv", ".txt"].iter().any(|e| base.ends_with(e))
        || !base.contains('.')
        || base != name
}

/// The first line of a library's message, made printable ([`crate::text::printable`]).
fn first_line(text: &str) -> String {
    crate::text::printable(text.lines().next().unwrap_or("read error")).into_owned()
}

/// A sort key comparing digit runs as numbers: `day_2` < `day_10`.
fn natural_key(s: &str) -> Vec<(u8, u64, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        let digit = c.is_ascii_digit();
        let mut run = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() != digit {
                break;
            }
            run.push(c);
            chars.next();
        }
        match run.parse::<u64>() {
            Ok(v) if digit => out.push((0, v, run)),
            _ => out.push((1, 0, run)),
        }
    }
    out
}

/// Seconds since the epoch of a time in its unit's ticks; None when it is not a valid time.
fn seconds_of(v: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Seconds => Some(v),
        TimeUnit::Milliseconds => Some(v.div_euclid(1_000)),
        TimeUnit::Date => v.checked_mul(86_400),
        TimeUnit::Datetime => Some(v.div_euclid(1_000_000)),
        TimeUnit::Yymmddhh => {
            if !(0..100_000_000).contains(&v) {
                return None;
            }
            let (yy, mm, dd, hh) = (v / 1_000_000, v / 10_000 % 100, v / 100 % 100, v % 100);
            let date = chrono::NaiveDate::from_ymd_opt(2000 + yy as i32, mm as u32, dd as u32)?;
            let time = date.and_hms_opt(hh as u32, 0, 0)?;
            Some(time.and_utc().timestamp())
        }
    }
}

/// The start of a period (UTC) as a short name: `2024-03-01`, or with the time when the
/// period does not start at midnight.
fn period_name(start: i64) -> String {
    match chrono::DateTime::from_timestamp(start, 0) {
        Some(t) if start.rem_euclid(86_400) == 0 => t.format("%Y-%m-%d").to_string(),
        Some(t) => t.format("%Y-%m-%d %H:%M").to_string(),
        None => start.to_string(),
    }
}

/// Whether a time cell parses in the given unit (used to find the row at fault).
fn time_parses(s: &str, unit: TimeUnit, fmt: Option<&str>) -> bool {
    use chrono::{NaiveDate, NaiveDateTime};
    match unit {
        TimeUnit::Seconds | TimeUnit::Milliseconds => s.parse::<f64>().is_ok_and(f64::is_finite),
        TimeUnit::Yymmddhh => {
            s.len() == 8
                && s.bytes().all(|b| b.is_ascii_digit())
                && s.parse::<i64>()
                    .ok()
                    .and_then(|v| seconds_of(v, unit))
                    .is_some()
        }
        TimeUnit::Date => NaiveDate::parse_from_str(s, fmt.unwrap_or("%Y-%m-%d")).is_ok(),
        TimeUnit::Datetime => match fmt {
            Some(f) => NaiveDateTime::parse_from_str(s, f).is_ok(),
            None => [
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M:%S%.f",
            ]
            .iter()
            .any(|f| NaiveDateTime::parse_from_str(s, f).is_ok()),
        },
    }
}

impl DaySource for TableSource {
    fn describe(&self) -> String {
        format!("{}({})", self.label, self.name)
    }

    fn num_days(&self) -> usize {
        self.day_names.len()
    }

    fn cat_fields(&self) -> Vec<String> {
        self.schema.cat_fields()
    }

    fn num_fields(&self) -> Vec<String> {
        self.schema.numeric.clone()
    }

    fn user_field(&self) -> Option<String> {
        self.schema.user.clone()
    }

    fn raw_day(&self, day: usize) -> Result<RawDay> {
        if day >= self.day_names.len() {
            bail!(
                "day {day} does not exist: {} has {} days",
                self.name,
                self.day_names.len()
            );
        }
        match &self.days {
            Days::Memory(days) => Ok(days[day].clone()),
            Days::Cached(c) => c.day(day),
        }
    }

    fn day_chunks(&self, day: usize, visit: &mut dyn FnMut(RawDay) -> Visit) -> Result<()> {
        match &self.days {
            Days::Cached(c) if day < self.day_names.len() => c.day_chunks(day, STREAM_ROWS, visit),
            _ => {
                let _ = visit(self.raw_day(day)?)?;
                Ok(())
            }
        }
    }

    fn day_rows(&self, day: usize) -> Result<usize> {
        match &self.days {
            Days::Memory(days) if day < days.len() => Ok(days[day].rows()),
            Days::Cached(c) if day < self.day_names.len() => c
                .days()
                .get(day)
                .map(|d| d.rows)
                .with_context(|| format!("day {day} is not in the day cache")),
            _ => Ok(self.raw_day(day)?.rows()),
        }
    }

    fn check_training_labels(&self, days: &[u32]) -> Result<()> {
        let (mut pos, mut rows) = (0usize, 0usize);
        for &d in days {
            match &self.days {
                Days::Memory(days) => {
                    if let Some(day) = days.get(d as usize) {
                        pos += day.label.iter().filter(|&&y| y > 0.5).count();
                        rows += day.label.len();
                    }
                }
                Days::Cached(c) => {
                    if let Some(day) = c.days().get(d as usize) {
                        pos += day.positives;
                        rows += day.rows;
                    }
                }
            }
        }
        if rows > 0 && (pos == 0 || pos == rows) {
            let (first, last) = (days[0] as usize, days[days.len() - 1] as usize);
            let name = |d: usize| self.day_name(d).unwrap_or("?").to_string();
            bail!(
                "{}: the label rule `{}` on column `{}` marks {} of the {rows} rows of the \
                 training days {first}-{last} ({} to {}) positive, so there is nothing to learn; \
                 check `positive` in the schema",
                self.name,
                self.schema.positive,
                self.schema.label,
                if pos == 0 { "none" } else { "all" },
                name(first),
                name(last)
            );
        }
        Ok(())
    }
}
