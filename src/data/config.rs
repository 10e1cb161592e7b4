//! The `[data]` section of the session TOML: which source, and its settings.

use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

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
    /// Criteo TSV (no header, no time: cut into `days` equal row blocks).
    #[serde(rename_all = "snake_case")]
    Criteo {
        path: PathBuf,
        #[serde(default = "default_criteo_days")]
        days: usize,
        /// I1-I13 as categorical buckets `floor(ln(x)^2)` (true) or numeric `ln(1 + x)`.
        #[serde(default = "default_true")]
        bucket_numeric: bool,
    },
    /// Avazu CSV (header, `click`, `hour` YYMMDDHH cut into calendar days).
    Avazu { path: PathBuf },
    /// A generic CSV / Parquet file (or folder of Parquet files) with a TOML schema.
    Table { path: PathBuf, schema: PathBuf },
}

fn default_criteo_days() -> usize {
    7
}
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
            } => Box::new(TableSource::open(
                path,
                TableSchema::criteo(*days, *bucket_numeric),
                "criteo",
            )?),
            DataConfig::Avazu { path } => {
                Box::new(TableSource::open(path, TableSchema::avazu(), "avazu")?)
            }
            DataConfig::Table { path, schema } => Box::new(TableSource::open(
                path,
                TableSchema::load(schema)?,
                "table",
            )?),
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
                days: 7,
                bucket_numeric: true,
                ..
            })
        ));
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
