//! The `[data]` section of the session config (temporary: synthetic only, until the loaders land).

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::source::DaySource;
use super::synth::{SynthConfig, SyntheticSource};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum DataConfig {
    Synthetic(SynthConfig),
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig::Synthetic(SynthConfig::default())
    }
}

impl DataConfig {
    pub fn open(&self) -> Result<Box<dyn DaySource>> {
        match self {
            DataConfig::Synthetic(c) => Ok(Box::new(SyntheticSource::new(c.clone())?)),
        }
    }
}
