//! The online stage's data-side measures: a day's drift against its reference window, and the
//! replay rows drawn from the retained pool.
//!
//! Drift is measured on the raw keys, not on vocabulary ids: every key the vocabulary has not
//! seen would otherwise land in one OOV bucket and put a standing floor under PSI on
//! high-cardinality fields. The reference window is the sum of its days' bounded sketches
//! (`data::sketch`), each made once when its day is read.
//!
//! The `model` measure (`adaptation.measure`, docs/method.md) adds what is fixed from the
//! retained days at the first online day ([`DriftState`]): which fields' PSI counts and the
//! frozen teacher's score bins; and the teacher's calibration data of each online day of the
//! window (`method::teacher_drift`).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::teacher_drift::{slope_shift, ScoreBins, ScoreHistogram};
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
    /// Whether each field's PSI counts in the drift score (all of them under the `psi`
    /// measure; the stable fields under `model`).
    pub counted: Vec<bool>,
    pub label_rate: f64,
    pub reference_label_rate: f64,
    /// The frozen teacher's calibration slope shift against the window, in logit units
    /// (`model` measure; `None` when not measured or not measurable).
    pub teacher_shift: Option<f64>,
    /// Re-measurements inside the day (`adaptation.every_batches`): at batch `b`, over the rows
    /// before it (no look-ahead), against the same reference.
    pub within: Vec<(u32, DayDrift)>,
}

impl DayDrift {
    /// The PSI of every field that counts, in field order.
    pub fn counted_psi(&self) -> Vec<f64> {
        self.fields
            .iter()
            .zip(&self.counted)
            .filter(|(_, &c)| c)
            .map(|(f, _)| f.psi)
            .collect()
    }

    /// Sets the teacher's slope shift of the day and of each re-measurement inside it, from
    /// the teacher's `logits` on the day's rows (in order) and their `labels`: each over the
    /// rows it covers (the day's, or those before batch `b`), against `window`.
    pub fn set_teacher_shift(
        &mut self,
        bins: &ScoreBins,
        window: &ScoreHistogram,
        logits: &[f32],
        labels: &[f32],
        batch_size: usize,
    ) {
        let shift = |rows: usize| {
            let rows = rows.min(logits.len());
            let h = bins.histogram(&logits[..rows], &labels[..rows]);
            slope_shift(&h, window, bins.logit_sd)
        };
        self.teacher_shift = shift(logits.len());
        for (b, within) in &mut self.within {
            within.teacher_shift = shift(*b as usize * batch_size);
        }
    }
}

/// What the `model` measure fixes from the retained days at the first online day, and the
/// teacher's calibration data of the reference window's days. Part of every checkpoint, so a
/// resumed run measures as the uninterrupted one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftState {
    /// The fields whose PSI counts: the top keys of their window on the retained days hold at
    /// least `adaptation.stable_share` of its rows.
    pub stable_fields: Vec<String>,
    /// The frozen teacher's score bins on the retained days (`None`: it scores them all alike,
    /// so no calibration slope exists and the teacher term is 0).
    pub bins: Option<ScoreBins>,
    /// The teacher's calibration data of each online day of the current reference window.
    #[serde(default)]
    pub days: Vec<DayScores>,
}

/// One day's teacher calibration data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DayScores {
    pub day: u32,
    pub scores: ScoreHistogram,
}

impl DriftState {
    /// Keeps the days of `window` only.
    pub fn keep(&mut self, window: &[u32]) {
        self.days.retain(|d| window.contains(&d.day));
    }

    /// Records `day`'s data (replacing an earlier entry of the same day: a day run again after
    /// a resume).
    pub fn record(&mut self, day: u32, scores: ScoreHistogram) {
        self.days.retain(|d| d.day != day);
        self.days.push(DayScores { day, scores });
        self.days.sort_by_key(|d| d.day);
    }

    /// The days of `window` that have no data yet.
    pub fn missing(&self, window: &[u32]) -> Vec<u32> {
        window
            .iter()
            .copied()
            .filter(|w| !self.days.iter().any(|d| d.day == *w))
            .collect()
    }

    /// The window's calibration data: the sum of its days'.
    pub fn window(&self) -> ScoreHistogram {
        let mut h = ScoreHistogram::default();
        for d in &self.days {
            h.merge(&d.scores);
        }
        h
    }

    /// Whether each of `names` counts.
    pub fn counted(&self, names: &[String]) -> Vec<bool> {
        names
            .iter()
            .map(|n| self.stable_fields.contains(n))
            .collect()
    }
}

/// What the engine keeps between online days for drift: the reference window's sketches, and
/// the `model` measure's state.
#[derive(Debug, Default)]
pub struct DriftWindow {
    /// Sketches of the days in the current reference window, each made once when its day is
    /// read; rebuilt from the days after a resume.
    pub sketches: Vec<(u32, DaySketch)>,
    /// The `model` measure's state (checkpointed).
    pub state: Option<DriftState>,
}

impl DriftWindow {
    /// Forgets everything (a new plan, e.g. the next trial of the validation protocol).
    pub fn clear(&mut self) {
        self.sketches.clear();
        self.state = None;
    }

    pub fn is_empty(&self) -> bool {
        self.sketches.is_empty() && self.state.is_none()
    }
}

/// The reference window of a day's drift: each field's key distribution and the label rate.
pub struct DriftReference {
    fields: Vec<KeyReference>,
    label_rate: f64,
    counted: Vec<bool>,
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
            counted: vec![true; num_cat],
        }
    }

    /// Counts only the fields marked in `counted` in the drift score (all by default).
    pub fn counting(mut self, counted: Vec<bool>) -> Self {
        self.counted = counted;
        self
    }

    /// Each field's share of the window's rows held by its top keys (the PSI's own buckets):
    /// 1 for a field with no more distinct keys than buckets.
    pub fn coverage(&self) -> Vec<f64> {
        self.fields
            .iter()
            .map(|f| 1.0 - f.probabilities().last().copied().unwrap_or(0.0))
            .collect()
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
        counted: reference.counted.clone(),
        label_rate,
        reference_label_rate: reference.label_rate,
        teacher_shift: None,
        within: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::CatField;
    use crate::data::{FeatureSpec, RawDay};

    fn spec(names: &[&str]) -> FeatureSpec {
        FeatureSpec {
            cat: names
                .iter()
                .map(|n| CatField {
                    name: n.to_string(),
                    vocab: 10,
                })
                .collect(),
            num: vec![],
            user_field: None,
        }
    }

    fn raw(keys: &[[u64; 2]], labels: &[f32]) -> RawDay {
        RawDay {
            num_cat: 2,
            num_num: 0,
            cat: keys.iter().flatten().copied().collect(),
            num: vec![],
            label: labels.to_vec(),
        }
    }

    /// Field 0 has two keys (fully described by its buckets); field 1 a new key on most rows.
    /// Coverage: field 0 holds all its rows in its top keys; field 1 (top 50 of 100 distinct
    /// keys, one row each) half of them. Only field 0 counts once marked stable.
    #[test]
    fn coverage_and_counted_psi_follow_the_stable_fields() {
        let keys: Vec<[u64; 2]> = (0..100).map(|i| [i % 2, 1000 + i]).collect();
        let day = raw(&keys, &vec![0.0; 100]);
        let sketch = DaySketch::of(&day, 400);
        let spec = spec(&["device", "user"]);
        let reference = DriftReference::of(&[&sketch], 2);
        let coverage = reference.coverage();
        assert_eq!(coverage[0], 1.0);
        assert!((coverage[1] - 0.5).abs() < 1e-12, "{coverage:?}");
        let state = DriftState {
            stable_fields: vec!["device".into()],
            bins: None,
            days: vec![],
        };
        let names: Vec<String> = spec.cat.iter().map(|f| f.name.clone()).collect();
        let reference = reference.counting(state.counted(&names));
        // The next day: the same devices, all users new.
        let next: Vec<[u64; 2]> = (0..100).map(|i| [i % 2, 5000 + i]).collect();
        let mut meter = DriftMeter::new(&reference, &spec, 10, 0);
        meter.add(&raw(&next, &vec![0.0; 100]));
        let drift = meter.finish();
        assert_eq!(drift.counted, vec![true, false]);
        assert!(drift.fields[1].psi > 1.0, "{:?}", drift.fields);
        assert_eq!(drift.counted_psi(), vec![drift.fields[0].psi]);
        assert!(drift.fields[0].psi.abs() < 1e-12);
    }

    #[test]
    fn the_state_keeps_the_window_and_replaces_a_day_run_again() {
        let h = |rows| ScoreHistogram {
            bins: vec![crate::method::teacher_drift::ScoreBin {
                rows,
                positives: 1.0,
                logit_sum: 0.0,
            }],
        };
        let mut s = DriftState {
            stable_fields: vec![],
            bins: None,
            days: vec![],
        };
        s.record(5, h(10));
        s.record(4, h(20));
        s.record(5, h(30));
        assert_eq!(s.days.iter().map(|d| d.day).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(s.window().rows(), 50);
        assert_eq!(s.missing(&[4, 5, 6]), vec![6]);
        s.keep(&[5, 6]);
        assert_eq!(s.window().rows(), 30);
    }
}
