//! The online stage's data-side measures: a day's drift against its reference window, and the
//! replay rows drawn from the retained pool.
//!
//! Drift is measured on the raw keys, not on vocabulary ids: every key the vocabulary has not
//! seen would otherwise land in one OOV bucket and put a standing floor under PSI on
//! high-cardinality fields. The reference window is the sum of its days' bounded sketches
//! (`data::sketch`), each made once when its day is read.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::data::drift::{jensen_shannon, psi};
use crate::data::pool::Pool;
use crate::data::sketch::{shares, DaySketch, KeyReference};
use crate::data::{Batch, FeatureSpec, RawDay};
use crate::protocol::FieldDrift;

/// Keys per field kept as their own bucket when measuring drift (the rest is "other").
pub const DRIFT_TOP_IDS: usize = 50;
/// Keys per field and day the drift sketches keep (see `data::sketch`): chosen by how close the
/// sketched PSI comes to the exact one on the default stream's days (docs/method.md).
pub const DRIFT_SKETCH_KEYS: usize = 8 * DRIFT_TOP_IDS;
/// Fields listed in a `Drift` record.
pub const DRIFT_FIELDS_SHOWN: usize = 6;

/// What every arm shares about an incoming day's drift.
#[derive(Clone, Debug)]
pub struct DayDrift {
    pub fields: Vec<FieldDrift>,
    pub label_rate: f64,
    pub reference_label_rate: f64,
    /// Re-measurements inside the day (`adaptation.every_batches`): at batch `b`, over the rows
    /// before it (no look-ahead), against the same reference.
    pub within: Vec<(u32, DayDrift)>,
}

/// The reference window of a day's drift: each field's key distribution and the label rate.
pub struct DriftReference {
    fields: Vec<KeyReference>,
    label_rate: f64,
}

impl DriftReference {
    /// The window made of `days`' sketches (`num_cat` fields each).
    pub fn of(days: &[&DaySketch], num_cat: usize) -> DriftReference {
        let rows: u64 = days.iter().map(|s| s.rows).sum();
        let positives: f64 = days.iter().map(|s| s.positives).sum();
        DriftReference {
            fields: (0..num_cat)
                .map(|f| KeyReference::new(days, f, DRIFT_TOP_IDS))
                .collect(),
            label_rate: if rows == 0 {
                f64::NAN
            } else {
                positives / rows as f64
            },
        }
    }
}

/// `n` rows drawn uniformly, with replacement, from the retained pool (none when it is empty).
pub fn draw_replay(pool: &Pool, n: usize, rng: &mut ChaCha8Rng) -> anyhow::Result<Batch> {
    if pool.is_empty() {
        return Ok(Batch::empty(pool.num_cat(), pool.num_num()));
    }
    let rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..pool.rows())).collect();
    pool.gather(&rows)
}

/// Per-field PSI and Jensen-Shannon of a day against `reference` (top keys + "other" buckets)
/// and the two label rates; with `every_batches > 0` also over the rows before every
/// `every_batches`-th batch (`DayDrift::within`). One pass over the day's raw keys, which may
/// arrive a chunk at a time: the counts, hence the result, do not depend on the chunking.
pub struct DriftMeter<'a> {
    reference: &'a DriftReference,
    spec: &'a FeatureSpec,
    batch_size: usize,
    /// Rows between re-measurements inside the day (0: none).
    step: usize,
    counts: Vec<Vec<u64>>,
    positives: f64,
    rows: usize,
    within: Vec<(u32, DayDrift)>,
}

impl<'a> DriftMeter<'a> {
    pub fn new(
        reference: &'a DriftReference,
        spec: &'a FeatureSpec,
        batch_size: usize,
        every_batches: u32,
    ) -> Self {
        DriftMeter {
            reference,
            spec,
            batch_size,
            step: (every_batches as usize).saturating_mul(batch_size),
            counts: reference.fields.iter().map(|r| vec![0; r.len()]).collect(),
            positives: 0.0,
            rows: 0,
            within: Vec::new(),
        }
    }

    /// The day's next rows.
    pub fn add(&mut self, chunk: &RawDay) {
        let nf = chunk.num_cat;
        for r in 0..chunk.rows() {
            let at = self.rows;
            if self.step > 0 && at > 0 && at.is_multiple_of(self.step) {
                let rate = self.positives / at as f64;
                let drift = drift_of(self.reference, &self.counts, self.spec, rate);
                self.within.push(((at / self.batch_size) as u32, drift));
            }
            for (f, field) in self.reference.fields.iter().enumerate() {
                self.counts[f][field.bucket_of(chunk.cat[r * nf + f])] += 1;
            }
            self.positives += chunk.label[r] as f64;
            self.rows += 1;
        }
    }

    /// The day's drift over every row added.
    pub fn finish(self) -> DayDrift {
        let rate = if self.rows == 0 {
            f64::NAN
        } else {
            self.positives / self.rows as f64
        };
        let mut drift = drift_of(self.reference, &self.counts, self.spec, rate);
        drift.within = self.within;
        drift
    }
}

fn drift_of(
    reference: &DriftReference,
    counts: &[Vec<u64>],
    spec: &FeatureSpec,
    label_rate: f64,
) -> DayDrift {
    let fields = spec
        .cat
        .iter()
        .zip(&reference.fields)
        .zip(counts)
        .map(|((field, r), c)| {
            let p_ref = r.probabilities();
            let p_cur = shares(c);
            FieldDrift {
                field: field.name.clone(),
                psi: psi(p_ref, &p_cur),
                js: jensen_shannon(p_ref, &p_cur),
            }
        })
        .collect();
    DayDrift {
        fields,
        label_rate,
        reference_label_rate: reference.label_rate,
        within: Vec::new(),
    }
}
