//! [`TableSource`]: a CSV or Parquet table read lazily with polars, one day at a time.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::*;

use super::columns::{self, ColumnSite};
use super::schema::{PositiveRule, TableFormat, TableSchema, TimeUnit};
use crate::data::source::{DaySource, RawDay};

const ROW: &str = "__row";

/// How the table is cut into days.
#[derive(Clone, Debug)]
enum Days {
    /// Calendar days present in the time column (sorted day keys; gaps are skipped).
    Calendar(Vec<i64>),
    /// Equal row blocks `(offset, len)`.
    Blocks(Vec<(u64, u64)>),
}

/// A table on disk described by a [`TableSchema`]. Opening reads only the time column (or the
/// row count); each day is then a filtered lazy scan.
pub struct TableSource {
    path: PathBuf,
    name: String,
    schema: TableSchema,
    format: TableFormat,
    rule: PositiveRule,
    /// Type of the time column in the scan.
    time_dtype: Option<DataType>,
    days: Days,
    label: &'static str,
}

impl TableSource {
    /// Opens `path` (a file, or for Parquet a folder of `*.parquet` files) with `schema`.
    /// Errors name the file and the column (and the row where one is at fault).
    pub fn open(path: &Path, schema: TableSchema, label: &'static str) -> Result<TableSource> {
        let name = path.display().to_string();
        std::fs::metadata(path).with_context(|| format!("cannot read {name}"))?;
        schema.check()?;
        let rule = PositiveRule::parse(&schema.positive, &schema.label)?;
        let format = schema.format_for(path);
        let mut src = TableSource {
            path: path.to_path_buf(),
            name,
            schema,
            format,
            rule,
            time_dtype: None,
            days: Days::Blocks(vec![]),
            label,
        };
        let file_schema = src
            .scan()?
            .collect_schema()
            .map_err(|e| src.polars_error(e))?;
        for (column, role) in src.schema.used_columns() {
            if file_schema.get(column).is_none() {
                let known: Vec<&str> = file_schema.iter_names().map(|n| n.as_str()).collect();
                bail!(
                    "{}: the {role} column `{column}` named by the schema is not in the file \
                     (its columns: {})",
                    src.name,
                    known.join(", ")
                );
            }
        }
        src.days = match src.schema.time.clone() {
            Some(t) => {
                src.time_dtype = file_schema.get(&t).cloned();
                Days::Calendar(src.calendar_days(&t)?)
            }
            None => Days::Blocks(src.row_blocks()?),
        };
        Ok(src)
    }

    /// The lazy scan of the whole table.
    fn scan(&self) -> Result<LazyFrame> {
        let path_str = self.path.to_string_lossy().to_string();
        match self.format {
            TableFormat::Parquet => {
                let target = if self.path.is_dir() {
                    format!("{}/*.parquet", path_str.trim_end_matches('/'))
                } else {
                    path_str
                };
                LazyFrame::scan_parquet(PlRefPath::new(target), ScanArgsParquet::default())
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
                let mut reader = LazyCsvReader::new(PlRefPath::new(path_str))
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

    /// The time column's value as a sortable integer (row order inside a day).
    fn time_expr(&self, t: &str) -> Expr {
        let c = col(t);
        let is_text = matches!(self.time_dtype, Some(DataType::String));
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

    /// The calendar day key of a row (days since the epoch, or YYMMDD for Avazu).
    fn day_expr(&self, t: &str) -> Expr {
        let time = self.time_expr(t);
        // Floor division without polars' `round_series` feature: subtract the (floored)
        // remainder, then divide exactly.
        let floor_div = |x: Expr, n: i64| ((x.clone() - x % lit(n)) / lit(n)).cast(DataType::Int64);
        match self.schema.time_unit {
            TimeUnit::Seconds => floor_div(time, 86_400),
            TimeUnit::Milliseconds => floor_div(time, 86_400_000),
            TimeUnit::Yymmddhh => floor_div(time, 100),
            TimeUnit::Date => time,
            TimeUnit::Datetime => floor_div(time, 86_400_000_000),
        }
    }

    fn calendar_days(&self, t: &str) -> Result<Vec<i64>> {
        let out = self
            .scan()?
            .select([self.day_expr(t).alias("__day")])
            .unique(None, UniqueKeepStrategy::Any)
            .sort(["__day"], SortMultipleOptions::default())
            .collect();
        let df = match out {
            Ok(df) => df,
            Err(e) => {
                return Err(self
                    .diagnose_time(t)
                    .unwrap_or_else(|| self.polars_error(e)))
            }
        };
        let keys: Vec<Option<i64>> = df.column("__day")?.i64()?.iter().collect();
        if keys.iter().any(Option::is_none) {
            return Err(self
                .diagnose_time(t)
                .unwrap_or_else(|| anyhow!("{}: column `{t}` has missing times", self.name)));
        }
        if keys.is_empty() {
            bail!("{} is empty (no rows to read)", self.name);
        }
        Ok(keys.into_iter().flatten().collect())
    }

    /// Finds the first time cell that does not parse, as one sentence naming the row.
    fn diagnose_time(&self, t: &str) -> Option<anyhow::Error> {
        let df = self
            .scan()
            .ok()?
            .with_row_index(ROW, None)
            .select([col(ROW), col(t).cast(DataType::String)])
            .collect()
            .ok()?;
        let rows = columns::row_numbers(&df, ROW).ok()?;
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
                return Some(anyhow!(
                    "{}: column `{t}`, row {}: {what}",
                    self.name,
                    rows.get(i).copied().unwrap_or(i as u64) + 1
                ));
            }
        }
        None
    }

    fn row_blocks(&self) -> Result<Vec<(u64, u64)>> {
        let df = self
            .scan()?
            .select([len().alias("n")])
            .collect()
            .map_err(|e| self.polars_error(e))?;
        let n = df
            .column("n")?
            .cast(&DataType::UInt64)?
            .u64()?
            .get(0)
            .unwrap_or(0);
        if n == 0 {
            bail!("{} is empty (no rows to read)", self.name);
        }
        let days = self.schema.days as u64;
        if n < days {
            bail!(
                "{} has {n} rows, fewer than the {days} days asked for",
                self.name
            );
        }
        Ok((0..days)
            .map(|d| {
                let start = d * n / days;
                (start, (d + 1) * n / days - start)
            })
            .collect())
    }

    fn collect_day(&self, day: usize) -> Result<DataFrame> {
        let mut wanted: Vec<Expr> = vec![col(ROW)];
        let mut seen = std::collections::HashSet::new();
        for (c, _) in self.schema.used_columns() {
            if seen.insert(c) {
                wanted.push(col(c));
            }
        }
        let lf = self.scan()?.with_row_index(ROW, None);
        let lf = match (&self.days, &self.schema.time) {
            (Days::Calendar(keys), Some(t)) => {
                let key = keys.get(day).copied().ok_or_else(|| self.no_day(day))?;
                lf.filter(self.day_expr(t).eq(lit(key))).sort_by_exprs(
                    [self.time_expr(t)],
                    SortMultipleOptions::default().with_maintain_order(true),
                )
            }
            (Days::Blocks(blocks), _) => {
                let (start, n) = blocks.get(day).copied().ok_or_else(|| self.no_day(day))?;
                lf.slice(start as i64, n as IdxSize)
            }
            (Days::Calendar(_), None) => bail!("internal: calendar days without a time column"),
        };
        lf.select(wanted)
            .collect()
            .map_err(|e| self.polars_error(e))
    }

    fn no_day(&self, day: usize) -> anyhow::Error {
        anyhow!(
            "day {day} does not exist: {} has {} days",
            self.name,
            self.num_days()
        )
    }
}

/// Whether a time cell parses in the given unit (used to find the row at fault).
fn time_parses(s: &str, unit: TimeUnit, fmt: Option<&str>) -> bool {
    use chrono::{NaiveDate, NaiveDateTime};
    match unit {
        TimeUnit::Seconds | TimeUnit::Milliseconds => s.parse::<f64>().is_ok_and(f64::is_finite),
        TimeUnit::Yymmddhh => s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()),
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
        match &self.days {
            Days::Calendar(k) => k.len(),
            Days::Blocks(b) => b.len(),
        }
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
        let df = self.collect_day(day)?;
        let rows = columns::row_numbers(&df, ROW)?;
        let at = |c: &str| -> Result<&Column> { Ok(df.column(c)?) };
        let label_col = &self.schema.label;
        let label = columns::labels(
            at(label_col)?,
            &self.rule,
            &ColumnSite {
                file: &self.name,
                column: label_col,
                rows: &rows,
            },
        )?;
        let n = label.len();
        let cat_names = self.schema.cat_fields();
        let mut cat_cols: Vec<Vec<u64>> = Vec::with_capacity(cat_names.len());
        for c in &self.schema.categorical {
            cat_cols.push(columns::cat_keys(at(c)?)?);
        }
        for c in &self.schema.bucketed {
            let s = ColumnSite {
                file: &self.name,
                column: c,
                rows: &rows,
            };
            cat_cols.push(columns::bucket_keys(at(c)?, &s)?);
        }
        let mut num_cols: Vec<Vec<f32>> = Vec::with_capacity(self.schema.numeric.len());
        for c in &self.schema.numeric {
            let s = ColumnSite {
                file: &self.name,
                column: c,
                rows: &rows,
            };
            num_cols.push(columns::numeric(at(c)?, self.schema.numeric_log1p, &s)?);
        }
        let mut out = RawDay::empty(cat_cols.len(), num_cols.len());
        out.cat.reserve(n * cat_cols.len());
        out.num.reserve(n * num_cols.len());
        for r in 0..n {
            out.cat.extend(cat_cols.iter().map(|c| c[r]));
            out.num.extend(num_cols.iter().map(|c| c[r]));
        }
        out.label = label;
        Ok(out)
    }
}
