//! [`Dataset`]: what the engine holds, a source plus its vocabulary, encoding days on demand.

use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{Context, Result};

use super::batch::{Batch, FeatureSpec};
use super::pool::{Pool, PoolWriter};
use super::sketch::{DaySketch, DaySketcher};
use super::source::{DaySource, RawDay, Visit};
use super::vocab::Vocabulary;

/// A day source with the vocabulary that encodes it. A day is read a chunk at a time:
/// [`Dataset::day`] holds its encoded rows whole (tools, small validation days),
/// [`Dataset::day_on_disk`] keeps them in a file (what a run trains and evaluates on).
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

    /// Day `d`, encoded, rows in time order (its raw keys read and dropped a chunk at a time).
    pub fn day(&self, d: usize) -> Result<Batch> {
        let rows = self.rows(d)?;
        let mut out = Batch::empty(self.spec.num_cat(), self.spec.num_num());
        out.cat.reserve(rows * out.num_cat);
        out.num.reserve(rows * out.num_num);
        out.label.reserve(rows);
        self.stream(d, |raw| {
            self.vocab.encode_into(raw, &mut out);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// Day `d` encoded into an unlinked file in `dir` (else the temporary folder), a chunk at
    /// a time, after `look` has seen each chunk's raw keys: the day is never whole in memory,
    /// raw or encoded; its labels and users are (the day's metrics need them).
    pub fn day_on_disk(
        &self,
        d: usize,
        dir: Option<&Path>,
        mut look: impl FnMut(&RawDay),
    ) -> Result<Pool> {
        let (nc, nn) = (self.spec.num_cat(), self.spec.num_num());
        let mut writer = PoolWriter::create(nc, nn, dir, true, &format!("day {d}"))?;
        self.write_day(d, &mut writer, &mut look)?;
        writer.finish()
    }

    /// Appends day `d`, encoded a chunk at a time, to `writer` (after `look` has seen each
    /// chunk's raw keys).
    pub fn write_day(
        &self,
        d: usize,
        writer: &mut PoolWriter,
        mut look: impl FnMut(&RawDay),
    ) -> Result<()> {
        let (nc, nn) = (self.spec.num_cat(), self.spec.num_num());
        self.stream(d, |raw| {
            look(raw);
            let mut encoded = Batch::empty(nc, nn);
            self.vocab.encode_into(raw, &mut encoded);
            writer.push(&encoded)?;
            Ok(ControlFlow::Continue(()))
        })
    }

    /// The first `rows` rows of day `d`, encoded (reads no further than it needs).
    pub fn head(&self, d: usize, rows: usize) -> Result<Batch> {
        let mut out = Batch::empty(self.spec.num_cat(), self.spec.num_num());
        self.stream(d, |raw| {
            let take = rows.saturating_sub(out.rows()).min(raw.rows());
            self.vocab.encode_into(&raw.head(take), &mut out);
            Ok(if out.rows() >= rows {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        Ok(out)
    }

    /// Number of rows of day `d`.
    pub fn rows(&self, d: usize) -> Result<usize> {
        self.source
            .day_rows(d)
            .with_context(|| format!("counting the rows of day {d} of {}", self.source.describe()))
    }

    /// Day `d`'s raw rows a chunk at a time, in time order, each checked against the
    /// vocabulary's fields, until `visit` answers `Break`.
    pub fn stream(&self, d: usize, mut visit: impl FnMut(&RawDay) -> Visit) -> Result<()> {
        self.source
            .day_chunks(d, &mut |raw| {
                self.check_fields(d, &raw)?;
                visit(&raw)
            })
            .with_context(|| format!("loading day {d} of {}", self.source.describe()))
    }

    /// Day `d`'s drift sketch: two streamed reads (the candidates, then their exact counts).
    pub fn sketch(&self, d: usize, capacity: usize) -> Result<DaySketch> {
        let mut sketcher = DaySketcher::new(self.spec.num_cat(), capacity);
        self.stream(d, |raw| {
            sketcher.first_pass(raw);
            Ok(ControlFlow::Continue(()))
        })?;
        self.finish_sketch(d, sketcher)
    }

    /// Completes a sketch whose first pass saw all of day `d` (during [`Dataset::day_on_disk`]):
    /// its counting pass reads the day again, a chunk at a time.
    pub fn finish_sketch(&self, d: usize, mut sketcher: DaySketcher) -> Result<DaySketch> {
        sketcher.start_second_pass();
        self.stream(d, |raw| {
            sketcher.second_pass(raw);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(sketcher.finish())
    }

    fn check_fields(&self, d: usize, raw: &RawDay) -> Result<()> {
        anyhow::ensure!(
            raw.num_cat == self.spec.num_cat() && raw.num_num == self.spec.num_num(),
            "day {d} has {} categorical and {} numeric fields, the vocabulary expects {} and {}",
            raw.num_cat,
            raw.num_num,
            self.spec.num_cat(),
            self.spec.num_num()
        );
        Ok(())
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
