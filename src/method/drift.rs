//! The online stage's data-side measures: a day's drift against its reference window, and the
//! replay rows drawn from the retained pool.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::data::drift::{jensen_shannon, psi, IdDistribution};
use crate::data::{Batch, FeatureSpec};
use crate::protocol::FieldDrift;

/// Ids per field kept as their own bucket when measuring drift (the rest is "other").
pub const DRIFT_TOP_IDS: usize = 50;
/// Fields listed in a `Drift` record.
pub const DRIFT_FIELDS_SHOWN: usize = 6;

/// What every arm shares about an incoming day's drift.
#[derive(Clone, Debug)]
pub struct DayDrift {
    pub fields: Vec<FieldDrift>,
    pub label_rate: f64,
    pub reference_label_rate: f64,
}

/// `n` rows drawn uniformly, with replacement, from the retained pool (none when it is empty).
pub fn draw_replay(pool: &Batch, n: usize, rng: &mut ChaCha8Rng) -> Batch {
    if pool.is_empty() {
        return Batch::empty(pool.num_cat, pool.num_num);
    }
    let rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..pool.rows())).collect();
    pool.gather(&rows)
}

/// Per-field PSI and Jensen-Shannon of `current` against `reference` (top ids + "other" +
/// "unseen" buckets), and the two label rates.
pub fn measure_drift(reference: &Batch, current: &Batch, spec: &FeatureSpec) -> DayDrift {
    let fields = spec
        .cat
        .iter()
        .enumerate()
        .map(|(f, field)| {
            let dist =
                IdDistribution::reference(reference.field_column(f).map(u64::from), DRIFT_TOP_IDS);
            // The reference's own probabilities include its Good-Turing "unseen" share.
            let p_ref = dist.probabilities();
            let p_cur = dist.bucket(current.field_column(f).map(u64::from));
            FieldDrift {
                field: field.name.clone(),
                psi: psi(p_ref, &p_cur),
                js: jensen_shannon(p_ref, &p_cur),
            }
        })
        .collect();
    DayDrift {
        fields,
        label_rate: current.positive_rate(),
        reference_label_rate: reference.positive_rate(),
    }
}
