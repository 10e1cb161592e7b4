//! The `[data]` section of the session TOML: which source, and its settings.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::period::Period;
use super::source::DaySource;
use super::synth::{SynthConfig, SyntheticSource};
use super::table::{TableSchema, TableSource};

/// Where the days come from. `source = "synthetic" | "criteo" | "avazu" | "table"`; every
/// other key is that source's setting, and unknown keys fail naming the key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// The built-in drifting stream (keys of [`SynthConfig`], `preset` first).
    Synthetic(SynthConfig),
    /// Criteo TSV (no header, no time): one file cut into `days` equal row blocks (default
    /// 7), or a folder of files, one day each in natural order (`day_0`, `day_1`, ...,
    /// plain or `.gz`).
    #[serde(rename_all = "snake_case")]
    Criteo {
        path: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        days: Option<usize>,
        /// I1-I13 as categorical buckets `floor(ln(x)^2)` (true) or numeric `ln(1 + x)`.
        #[serde(default = "default_true")]
        bucket_numeric: bool,
    },
    /// Avazu CSV (header, `click`, `hour` YYMMDDHH cut into `period`s, default calendar days;
    /// the hour of the day and the weekday become two more categorical fields).
    Avazu {
        path: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        period: Option<Period>,
    },
    /// A generic CSV / Parquet file (or folder of files) with a TOML schema; `period` and
    /// `days` override the schema's.
    Table {
        path: PathBuf,
        schema: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        period: Option<Period>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        days: Option<usize>,
    },
}

/// Criteo's row blocks when one file is given without `days`.
const CRITEO_DAYS: usize = 7;
fn default_true() -> bool {
    true
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig::Synthetic(SynthConfig::default())
    }
}

impl DataConfig {
    /// Opens the source (reads only what is needed to know its days).
    pub fn open(&self) -> Result<Box<dyn DaySource>> {
        Ok(match self {
            DataConfig::Synthetic(cfg) => Box::new(SyntheticSource::new(cfg.clone())?),
            DataConfig::Criteo {
                path,
                days,
                bucket_numeric,
            } => {
                if days.is_some() && path.is_dir() {
                    bail!(
                        "data.days applies to one Criteo file; the folder {} has one day per file",
                        path.display()
                    );
                }
                let schema = TableSchema::criteo(days.unwrap_or(CRITEO_DAYS), *bucket_numeric);
                Box::new(TableSource::open(path, schema, "criteo")?)
            }
            DataConfig::Avazu { path, period } => {
                let schema = TableSchema {
                    period: *period,
                    ..TableSchema::avazu()
                };
                Box::new(TableSource::open(path, schema, "avazu")?)
            }
            DataConfig::Table {
                path,
                schema,
                period,
                days,
            } => {
                let mut table = TableSchema::load(schema)?;
                if period.is_some() {
                    table.period = *period;
                }
                if let Some(days) = days {
                    table.days = *days;
                }
                table.check().with_context(|| {
                    format!(
                        "schema file {} with data.period / data.days",
                        schema.display()
                    )
                })?;
                Box::new(TableSource::open(path, table, "table")?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DataConfig, String> {
        toml::from_str::<DataConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn presets_and_overrides_parse() {
        let cfg = parse("source = \"synthetic\"\npreset = \"tiny\"\ndays = 5\n");
        let Ok(DataConfig::Synthetic(s)) = cfg else {
            panic!("expected a synthetic config, got {cfg:?}");
        };
        assert_eq!((s.days, s.rows_per_day, s.fields.len()), (5, 1_000, 8));
        let cfg = parse("source = \"synthetic\"\n");
        assert_eq!(cfg, Ok(DataConfig::default()));
        let cfg = parse("source = \"criteo\"\npath = \"x.tsv\"\n");
        assert!(matches!(
            cfg,
            Ok(DataConfig::Criteo {
                days: None,
                bucket_numeric: true,
                ..
            })
        ));
        let cfg = parse("source = \"avazu\"\npath = \"a.csv\"\nperiod = \"6h\"\n");
        assert!(
            matches!(&cfg, Ok(DataConfig::Avazu { period: Some(p), .. }) if p.seconds() == 21_600),
            "{cfg:?}"
        );
        let err = parse("source = \"avazu\"\npath = \"a.csv\"\nperiod = \"6 hours\"\n").err();
        assert!(err.is_some_and(|e| e.contains("6 hours")), "bad period");
    }

    #[test]
    fn typos_fail_naming_the_key() {
        let err = parse("source = \"synthetic\"\nzipf_exponet = 1.2\n").err();
        assert!(err.is_some_and(|e| e.contains("zipf_exponet")));
        let err = parse("source = \"synthetic\"\npreset = \"huge\"\n").err();
        assert!(err.is_some_and(|e| e.contains("huge")));
        let err = parse("source = \"avazu\"\npath = \"a.csv\"\ndayz = 3\n").err();
        assert!(err.is_some_and(|e| e.contains("dayz")), "avazu typo");
    }
}
