//! [`Dataset`]: what the engine holds, a source plus its vocabulary, encoding days on demand.

use anyhow::{Context, Result};

use super::batch::{Batch, FeatureSpec};
use super::source::{DaySource, RawDay};
use super::vocab::Vocabulary;

/// A day source with the vocabulary that encodes it. Only one day is in memory at a time.
pub struct Dataset {
    source: Box<dyn DaySource>,
    vocab: Vocabulary,
    spec: FeatureSpec,
}

impl Dataset {
    /// Pairs a source with a vocabulary (fitted on it, or loaded from a teacher's checkpoint).
    pub fn new(source: Box<dyn DaySource>, vocab: Vocabulary) -> Dataset {
        let spec = vocab.feature_spec();
        Dataset {
            source,
            vocab,
            spec,
        }
    }

    /// Field names and table sizes.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Number of days of the source.
    pub fn num_days(&self) -> usize {
        self.source.num_days()
    }

    /// The vocabulary in use.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocab
    }

    /// The underlying source.
    pub fn source(&self) -> &dyn DaySource {
        self.source.as_ref()
    }

    /// Day `d`, encoded, rows in time order.
    pub fn day(&self, d: usize) -> Result<Batch> {
        Ok(self.day_with(d, |_| ())?.0)
    }

    /// Day `d` encoded, and what `look` computes from its raw keys before they are dropped
    /// (the drift sketches: one read of the day serves both).
    pub fn day_with<T>(&self, d: usize, look: impl FnOnce(&RawDay) -> T) -> Result<(Batch, T)> {
        let raw = self.raw_day(d)?;
        let seen = look(&raw);
        Ok((self.vocab.encode(&raw), seen))
    }

    /// Day `d` as the source holds it (raw keys), checked against the vocabulary's fields.
    pub fn raw_day(&self, d: usize) -> Result<RawDay> {
        let raw = self
            .source
            .raw_day(d)
            .with_context(|| format!("loading day {d} of {}", self.source.describe()))?;
        anyhow::ensure!(
            raw.num_cat == self.spec.num_cat() && raw.num_num == self.spec.num_num(),
            "day {d} has {} categorical and {} numeric fields, the vocabulary expects {} and {}",
            raw.num_cat,
            raw.num_num,
            self.spec.num_cat(),
            self.spec.num_num()
        );
        Ok(raw)
    }

    /// Several days concatenated, in the given order.
    pub fn days(&self, days: &[usize]) -> Result<Batch> {
        let mut out = Batch::empty(self.spec.num_cat(), self.spec.num_num());
        for &d in days {
            out.extend(&self.day(d)?);
        }
        Ok(out)
    }
}
