//! [`TableSource`]: a CSV or Parquet table (one file, or a folder of files) read once with
//! polars and cut into days: by its time column and a period, by file (a folder without a time
//! column: `day_0`, `day_1`, ...), or into equal row blocks (one file without a time column).
//!
//! The table is read in one pass at open and cut into days of raw keys (8 bytes per
//! categorical cell, 4 per numeric one). Those days go to the ingest-once day cache
//! ([`cache`](super::cache)), one file per day, so a day read costs that day, not a scan of
//! the file, and the next open of the same table (a new session, a resume, a fork) reads no
//! text at all. With the cache off they stay in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::*;

use super::cache::{self, DayCache};
use super::columns::{self, ColumnSite};
use super::schema::{PositiveRule, TableFormat, TableSchema, TimeUnit};
use crate::data::source::{DaySource, RawDay};

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

/// Where the rows of the collected table came from, for errors naming file and row.
struct Origins {
    /// 0-based global row (scan order) of each collected row.
    rows: Vec<u64>,
    /// Index into `files` of each row (empty when the table is one file).
    file_of: Vec<u32>,
    files: Vec<String>,
    /// Global row of each file's first row.
    first_row: Vec<u64>,
}

impl Origins {
    fn locate(&self, name: &str, i: usize) -> (String, u64) {
        let row = self.rows.get(i).copied().unwrap_or(i as u64);
        match self.file_of.get(i) {
            Some(&f) => (
                self.files[f as usize].clone(),
                row - self.first_row[f as usize] + 1,
            ),
            None => (name.to_string(), row + 1),
        }
    }
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
        let name = path.display().to_string();
        std::fs::metadata(path).with_context(|| format!("cannot read {name}"))?;
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
        let source = Self::read(path, schema, label)?;
        let Days::Memory(days) = &source.days else {
            return Ok(source);
        };
        match DayCache::write(root, &fingerprint, &name, days, &source.day_names) {
            Ok(written) => Ok(TableSource::cached(name, label, source.schema, written)),
            Err(e) => {
                // A read-only or full disk must not stop a run that fits in memory.
                tracing::warn!("{name}: days kept in memory, the day cache failed: {e:#}");
                Ok(source)
            }
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
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {name}"))?;
        let rule = PositiveRule::parse(&schema.positive, &schema.label)?;
        let reader = Reader {
            path,
            name: &name,
            schema: &schema,
            format: schema.format_for(path),
            folder: meta.is_dir(),
        };
        let scan = reader.scan()?;
        let file_schema = scan
            .clone()
            .collect_schema()
            .map_err(|e| reader.polars_error(e))?;
        for (column, role) in schema.used_columns() {
            if file_schema.get(column).is_none() {
                let known: Vec<&str> = file_schema
                    .iter_names()
                    .map(|n| n.as_str())
                    .filter(|n| *n != FILE)
                    .collect();
                bail!(
                    "{name}: the {role} column `{column}` named by the schema is not in the file \
                     (its columns: {})",
                    known.join(", ")
                );
            }
        }
        let time_is_text = schema
            .time
            .as_ref()
            .is_some_and(|t| matches!(file_schema.get(t), Some(DataType::String)));
        let mut wanted: Vec<Expr> = vec![col(ROW)];
        if reader.folder {
            wanted.push(col(FILE));
        }
        if let Some(t) = &schema.time {
            wanted.push(reader.time_expr(t, time_is_text).alias(TIME));
        }
        let mut seen = std::collections::HashSet::new();
        for (c, _) in schema.used_columns() {
            if seen.insert(c) {
                wanted.push(col(c));
            }
        }
        let collected = scan
            .clone()
            .with_row_index(ROW, None)
            .select(wanted)
            .collect();
        let df = match collected {
            Ok(df) => df,
            Err(e) => {
                let diagnosed = schema
                    .time
                    .as_ref()
                    .and_then(|t| reader.diagnose_time(scan.clone(), t));
                return Err(diagnosed.unwrap_or_else(|| reader.polars_error(e)));
            }
        };
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

    fn polars_error(&self, e: PolarsError) -> anyhow::Error {
        let text = e.to_string();
        if text.to_lowercase().contains("empty") {
            anyhow!("{} is empty (no rows to read)", self.name)
        } else {
            anyhow!(
                "{}: {}",
                self.name,
                text.lines().next().unwrap_or("read error")
            )
        }
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
        let origins = origins(&df, self.folder).ok()?;
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

    /// Converts the collected table and cuts it into days.
    fn cut(&self, df: &DataFrame, rule: &PositiveRule) -> Result<(Vec<RawDay>, Vec<String>)> {
        let schema = self.schema;
        let origins = origins(df, self.folder)?;
        let locate = |i: usize| origins.locate(self.name, i);
        let at = |c: &str| -> Result<&Column> { Ok(df.column(c)?) };
        let n = df.height();
        let label = columns::labels(
            at(&schema.label)?,
            rule,
            &ColumnSite {
                file: self.name,
                column: &schema.label,
                locate: &locate,
            },
        )?;
        // Time of every row: its ticks (for order within a day) and seconds (for periods).
        let (ticks, seconds) = match &schema.time {
            Some(t) => {
                let ticks: Vec<Option<i64>> = df.column(TIME)?.i64()?.iter().collect();
                let mut sec = Vec::with_capacity(n);
                let mut tk = Vec::with_capacity(n);
                for (i, v) in ticks.into_iter().enumerate() {
                    let (file, row) = locate(i);
                    let v = v.ok_or_else(|| {
                        anyhow!("{file}: column `{t}`, row {row}: the time is missing")
                    })?;
                    let s = seconds_of(v, schema.time_unit).ok_or_else(|| {
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
                locate: &locate,
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
                locate: &locate,
            };
            num_cols.push(columns::numeric(at(c)?, schema.numeric_log1p, &s)?);
        }

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
            let mut by_name: Vec<usize> = (0..origins.files.len()).collect();
            by_name.sort_by_cached_key(|&f| natural_key(&origins.files[f]));
            let mut day_of_file = vec![0usize; origins.files.len()];
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
                    let p = Path::new(&origins.files[f]);
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

/// The origins of the collected rows (`folder`: with their file).
fn origins(df: &DataFrame, folder: bool) -> Result<Origins> {
    let rows = columns::row_numbers(df, ROW)?;
    let mut out = Origins {
        rows,
        file_of: Vec::new(),
        files: Vec::new(),
        first_row: Vec::new(),
    };
    if folder {
        let mut index: HashMap<String, u32> = HashMap::new();
        let col = df.column(FILE)?.cast(&DataType::String)?;
        for (i, f) in col.str()?.iter().enumerate() {
            let f = f.unwrap_or("");
            let id = match index.get(f) {
                Some(&id) => id,
                None => {
                    let id = out.files.len() as u32;
                    index.insert(f.to_string(), id);
                    out.files.push(f.to_string());
                    out.first_row.push(out.rows[i]);
                    id
                }
            };
            out.file_of.push(id);
        }
    }
    Ok(out)
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
