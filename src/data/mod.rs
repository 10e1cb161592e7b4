//! Days of CTR data: sources, encoding, day splits, samplers.

pub mod batch;
pub mod bench;
pub mod config;
pub mod dataset;
pub mod drift;
pub mod export;
pub mod inspect;
pub mod period;
pub mod pool;
pub mod shuffle;
pub mod sketch;
pub mod source;
pub mod split;
pub mod synth;
pub mod vocab;

pub use batch::{Batch, CatField, FeatureSpec, FIRST_ID, OOV_ID, PAD_ID};
pub use dataset::Dataset;
pub use drift::{jensen_shannon, psi, IdDistribution};
pub use period::Period;
pub use shuffle::shuffled_batches;
pub use source::{DaySource, RawDay};
pub use split::{DayCount, SplitConfig};
pub use synth::{SynthConfig, SyntheticSource};
pub use vocab::{NumScale, Vocabulary};
pub mod table;
pub use config::DataConfig;
pub use table::{TableSchema, TableSource};
