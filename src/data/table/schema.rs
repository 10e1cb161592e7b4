//! The TOML schema describing a generic CSV or Parquet table (and the Criteo / Avazu layouts).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::period::Period;

/// File format of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    /// One CSV file (plain, or gzip / zstd compressed), or a folder of them read as one table.
    Csv,
    /// One Parquet file, or a folder of `*.parquet` files (searched recursively, Hive
    /// `key=value` folder names becoming columns) read as one table.
    Parquet,
}

/// A categorical field derived from the time column (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFeature {
    /// Hour of the day, 0-23.
    HourOfDay,
    /// Day of the week, 0 = Monday ... 6 = Sunday.
    Weekday,
}

impl TimeFeature {
    /// The field's name as the models and reports see it.
    pub fn name(self) -> &'static str {
        match self {
            TimeFeature::HourOfDay => "hour_of_day",
            TimeFeature::Weekday => "weekday",
        }
    }

    /// The value at `t` seconds since the epoch.
    pub fn of(self, t: i64) -> u64 {
        match self {
            TimeFeature::HourOfDay => t.div_euclid(3_600).rem_euclid(24) as u64,
            // 1970-01-01 was a Thursday (3 with Monday = 0).
            TimeFeature::Weekday => (t.div_euclid(86_400) + 3).rem_euclid(7) as u64,
        }
    }
}

/// How the time column is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Integer (or float) seconds since the Unix epoch.
    Seconds,
    /// Integer milliseconds since the Unix epoch.
    Milliseconds,
    /// A date (`2024-03-01`, or `time_format`), or a Date column.
    Date,
    /// A date and time (`2024-03-01 12:00:00`, or `time_format`), or a Datetime column.
    Datetime,
    /// Avazu's `hour`: the integer YYMMDDHH.
    Yymmddhh,
}

/// A generic table: which column is the label and how a row is positive, the optional time
/// column, the categorical / numeric / bucketed columns and the optional user column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSchema {
    /// `csv` or `parquet`; default from the path (`.csv`/`.tsv`/`.txt` = csv, else parquet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TableFormat>,
    /// CSV field separator (one character; `"\t"` for tab).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Whether the CSV's first line names the columns.
    #[serde(default = "default_true")]
    pub has_header: bool,
    /// Names of all CSV columns in order, for files without a header.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// The label column.
    pub label: String,
    /// When a row is positive, e.g. `rating >= 4` or `> 0` (operators `>= > <= < == !=`).
    #[serde(default = "default_positive")]
    pub positive: String,
    /// The time column; without one the table is cut into `days` equal row blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default = "default_unit")]
    pub time_unit: TimeUnit,
    /// chrono format of date/datetime strings (default: ISO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_format: Option<String>,
    /// How much time one "day" of the run spans (`6h`, `1d`, `7d`, ...; default `1d`, the
    /// calendar day in UTC). Periods without rows are skipped. `data.period` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Categorical fields derived from the time column: `hour_of_day`, `weekday`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_features: Vec<TimeFeature>,
    /// Number of equal row blocks when there is no time column (one file; a folder of files
    /// without a time column has one day per file).
    #[serde(default = "default_days")]
    pub days: usize,
    #[serde(default)]
    pub categorical: Vec<String>,
    #[serde(default)]
    pub numeric: Vec<String>,
    /// Numeric columns encoded as categorical buckets: `floor(ln(x)^2)` for x > 2, else the
    /// integer value (the Criteo convention); they become extra categorical fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bucketed: Vec<String>,
    /// Numeric values become `ln(1 + max(x, 0))` (for heavy-tailed counts).
    #[serde(default)]
    pub numeric_log1p: bool,
    /// The categorical column naming the user (for gAUC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

fn default_separator() -> String {
    ",".into()
}
fn default_true() -> bool {
    true
}
fn default_positive() -> String {
    "> 0".into()
}
fn default_unit() -> TimeUnit {
    TimeUnit::Seconds
}
fn default_days() -> usize {
    7
}

/// A parsed positive rule: `value OP threshold`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositiveRule {
    op: Op,
    threshold: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl PositiveRule {
    /// Parses `[label] OP number`; a column name, if given, must be the label column.
    pub fn parse(rule: &str, label: &str) -> Result<PositiveRule> {
        let ops = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ];
        for (text, op) in ops {
            if let Some(at) = rule.find(text) {
                let column = rule[..at].trim();
                if !column.is_empty() && column != label {
                    bail!(
                        "positive rule `{rule}` names column `{column}`, but the label column is `{label}`"
                    );
                }
                let value = rule[at + text.len()..].trim();
                let threshold: f64 = value
                    .parse()
                    .ok()
                    .filter(|t: &f64| t.is_finite())
                    .ok_or_else(|| {
                        anyhow::anyhow!("positive rule `{rule}`: `{value}` is not a finite number")
                    })?;
                return Ok(PositiveRule { op, threshold });
            }
        }
        bail!("positive rule `{rule}` has no comparison (use one of >= > <= < == !=)")
    }

    /// Whether a label value is positive.
    pub fn is_positive(&self, v: f64) -> bool {
        let t = self.threshold;
        match self.op {
            Op::Ge => v >= t,
            Op::Gt => v > t,
            Op::Le => v <= t,
            Op::Lt => v < t,
            Op::Eq => v == t,
            Op::Ne => v != t,
        }
    }
}

impl TableSchema {
    /// Reads a schema file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<TableSchema> {
        let text = crate::atomic::read_text_limited(path, crate::atomic::TEXT_LIMIT)
            .with_context(|| format!("cannot read schema file {}", path.display()))?;
        let schema: TableSchema = toml::from_str(&text)
            .with_context(|| format!("schema file {} is not valid", path.display()))?;
        schema
            .check()
            .with_context(|| format!("schema file {}", path.display()))?;
        Ok(schema)
    }

    /// Consistency checks that need no data.
    pub fn check(&self) -> Result<()> {
        PositiveRule::parse(&self.positive, &self.label)?;
        if self.separator.len() != 1 {
            bail!(
                "`separator` must be one character, got `{}`",
                self.separator
            );
        }
        if self.categorical.is_empty() && self.bucketed.is_empty() {
            bail!("the schema names no `categorical` (or `bucketed`) columns");
        }
        if self.time.is_none() && self.days == 0 {
            bail!("`days` must be at least 1 when there is no `time` column");
        }
        if self.time.is_none() && self.period.is_some() {
            bail!("`period` needs a `time` column: without one, days are row blocks (`days`)");
        }
        if self.time.is_none() && !self.time_features.is_empty() {
            bail!("`time_features` need a `time` column");
        }
        // The label as an input hands every model the answer (its metrics look excellent and
        // mean nothing); the time column as an input is an id that never repeats after the
        // switch. Both are refused rather than trained on.
        let features = self
            .categorical
            .iter()
            .map(|c| (c, "categorical"))
            .chain(self.bucketed.iter().map(|c| (c, "bucketed")))
            .chain(self.numeric.iter().map(|c| (c, "numeric")));
        for (column, list) in features {
            if *column == self.label {
                bail!(
                    "column `{column}` is the label and cannot also be a feature: remove it from `{list}`"
                );
            }
            if self.time.as_ref() == Some(column) {
                bail!(
                    "column `{column}` is the time column and cannot also be a feature: remove it from `{list}` (use `time_features` for the hour or weekday)"
                );
            }
        }
        let names = self.cat_fields();
        for f in &self.time_features {
            if names.iter().filter(|n| *n == f.name()).count() > 1 {
                bail!(
                    "time feature `{}` clashes with a column of the same name",
                    f.name()
                );
            }
        }
        if let Some(u) = &self.user {
            if !self.categorical.contains(u) {
                bail!("`user` column `{u}` must also be listed in `categorical`");
            }
        }
        Ok(())
    }

    /// The format, from `format` or the path's extension (`.csv`, `.tsv`, `.txt`, also
    /// compressed as `.gz` / `.zst`, are CSV; anything else, folders included, Parquet).
    pub fn format_for(&self, path: &Path) -> TableFormat {
        if let Some(f) = self.format {
            return f;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let name = name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".zst"))
            .unwrap_or(&name);
        if [".csv", ".tsv", ".txt"].iter().any(|e| name.ends_with(e)) {
            TableFormat::Csv
        } else {
            TableFormat::Parquet
        }
    }

    /// The length of one day: `period`, or the calendar day.
    pub fn period(&self) -> Period {
        self.period.unwrap_or(Period::DAY)
    }

    /// Categorical field names as the models see them: `categorical`, then `bucketed`, then
    /// the time features.
    pub fn cat_fields(&self) -> Vec<String> {
        self.categorical
            .iter()
            .chain(&self.bucketed)
            .cloned()
            .chain(self.time_features.iter().map(|f| f.name().to_string()))
            .collect()
    }

    /// Every column the source reads, with the role it plays (for error messages).
    pub fn used_columns(&self) -> Vec<(&str, &'static str)> {
        let mut out = vec![(self.label.as_str(), "label")];
        if let Some(t) = &self.time {
            out.push((t.as_str(), "time"));
        }
        out.extend(self.categorical.iter().map(|c| (c.as_str(), "categorical")));
        out.extend(self.bucketed.iter().map(|c| (c.as_str(), "bucketed")));
        out.extend(self.numeric.iter().map(|c| (c.as_str(), "numeric")));
        out
    }

    /// Criteo: tab-separated, no header, `label I1..I13 C1..C26`, no time (`days` equal
    /// blocks). With `bucket_numeric` the I columns become categorical buckets (default),
    /// otherwise numeric `ln(1 + x)` features.
    pub fn criteo(days: usize, bucket_numeric: bool) -> TableSchema {
        let ints: Vec<String> = (1..=13).map(|i| format!("I{i}")).collect();
        let cats: Vec<String> = (1..=26).map(|i| format!("C{i}")).collect();
        let mut columns = vec!["label".to_string()];
        columns.extend(ints.iter().cloned());
        columns.extend(cats.iter().cloned());
        TableSchema {
            format: Some(TableFormat::Csv),
            separator: "\t".into(),
            has_header: false,
            columns,
            label: "label".into(),
            positive: "> 0".into(),
            time: None,
            time_unit: TimeUnit::Seconds,
            time_format: None,
            period: None,
            time_features: vec![],
            days,
            categorical: cats,
            numeric: if bucket_numeric { vec![] } else { ints.clone() },
            bucketed: if bucket_numeric { ints } else { vec![] },
            numeric_log1p: !bucket_numeric,
            user: None,
        }
    }

    /// Avazu: CSV with header, `click` label, `hour` as YYMMDDHH cut into calendar days, the
    /// 21 other columns (all but `id`) categorical, plus the hour of the day and the weekday
    /// of `hour` (the click rate follows both; `hour` itself is nearly unique per day, so as a
    /// categorical field it would only carry ids the next day never sees).
    pub fn avazu() -> TableSchema {
        let mut cats: Vec<String> = [
            "C1",
            "banner_pos",
            "site_id",
            "site_domain",
            "site_category",
            "app_id",
            "app_domain",
            "app_category",
            "device_id",
            "device_ip",
            "device_model",
            "device_type",
            "device_conn_type",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cats.extend((14..=21).map(|i| format!("C{i}")));
        TableSchema {
            format: Some(TableFormat::Csv),
            separator: ",".into(),
            has_header: true,
            columns: vec![],
            label: "click".into(),
            positive: "> 0".into(),
            time: Some("hour".into()),
            time_unit: TimeUnit::Yymmddhh,
            time_format: None,
            period: None,
            time_features: vec![TimeFeature::HourOfDay, TimeFeature::Weekday],
            days: default_days(),
            categorical: cats,
            numeric: vec![],
            bucketed: vec![],
            numeric_log1p: false,
            user: None,
        }
    }
}
