//! The hidden ground truth of the synthetic stream, as pure functions of the config and day.

use super::SynthConfig;
use crate::data::source::mix64;

/// Largest latent dimension supported: twice the default teacher's embedding width, so a
/// world can hold interactions of a rank that teacher cannot store.
pub const MAX_DIM: usize = 16;

/// Uniform in [-sqrt(3), sqrt(3)] (unit variance) from 16 bits.
fn unit(bits: u64) -> f32 {
    ((bits & 0xFFFF) as f32 / 65535.0 * 2.0 - 1.0) * 1.732_050_8
}

/// Uniform in [0, 1) from a hash.
pub fn unif(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Hash of several parts.
pub fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5EED_u64, |h, &p| mix64(h ^ p))
}

/// What the generator needs per field, precomputed from the config for a given day.
#[derive(Clone, Debug)]
pub struct FieldTruth {
    pub cardinality: u64,
    /// Interaction weight of the field (sign flips with the shock).
    pub weight: f32,
    /// Rotation angle of the field's latent factors on this day.
    pub angle: f32,
    /// Whether the field's popularity jumped (shocked field on or after the shock day).
    pub popularity_shocked: bool,
    /// Period (days) of a slot's move to its next id; 0 = no churn.
    pub churn_period: u64,
    /// Whether moves may go to brand-new ids.
    pub new_ids: bool,
}

/// The truth of one day: per-field parameters plus shared scales.
#[derive(Clone, Debug)]
pub struct DayTruth {
    pub seed: u64,
    pub day: u64,
    pub dim: usize,
    pub fields: Vec<FieldTruth>,
    /// Scale applied to the summed biases so their total has std `bias_scale`.
    pub bias_norm: f32,
    /// Scale applied to the FM term so its total has std about `interaction_scale`.
    pub fm_norm: f32,
    /// Scale applied to the product of the three per-id scores so the term has std about
    /// `triple_scale` (0: no three-way term, and the scores are never computed).
    pub triple_norm: f32,
    pub new_id_share: f64,
    pub shock_move_share: f64,
    /// How far the shock has gone (1 = complete; `gradual` ramps it).
    pub shock_level: f64,
}

impl DayTruth {
    pub fn new(cfg: &SynthConfig, day: usize) -> DayTruth {
        let seed = cfg.seed;
        let level = cfg.shock_level(day);
        let ids_shocked = level > 0.0 && cfg.drift.moves_ids();
        let weights_shocked = level > 0.0 && cfg.drift.moves_interactions();
        let nf = cfg.fields.len();
        let churn = cfg.effective_churn();
        let churn_period = if churn > 0.0 {
            (1.0 / churn).round().max(1.0) as u64
        } else {
            0
        };
        let fields = cfg
            .fields
            .iter()
            .enumerate()
            .map(|(f, field)| {
                let fh = hash(&[seed, 0xF1E1D, f as u64]);
                // Weight magnitude in [0.5, 1.5], random sign.
                let mut weight = 0.5 + unif(mix64(fh ^ 1)) as f32;
                if unif(mix64(fh ^ 2)) < 0.5 {
                    weight = -weight;
                }
                let is_shock_field = cfg.shock_fields.iter().any(|s| s == &field.name);
                if weights_shocked && (is_shock_field || unif(mix64(fh ^ 3)) < 0.5) {
                    // `level` is exactly 1.0 once the shock is complete, so the product is
                    // the historical `shock_strength`.
                    weight *= 1.0 - 2.0 * (cfg.shock_strength * level) as f32;
                }
                let speed = unif(mix64(fh ^ 4)) * 2.0 - 1.0;
                FieldTruth {
                    cardinality: field.cardinality,
                    weight,
                    angle: (cfg.effective_rotation() * speed * day as f64) as f32,
                    popularity_shocked: ids_shocked && is_shock_field,
                    churn_period,
                    new_ids: field.cardinality >= 100,
                }
            })
            .collect();
        let pairs = (nf * (nf.saturating_sub(1)) / 2).max(1) as f32;
        DayTruth {
            seed,
            day: day as u64,
            dim: cfg.latent_dim.min(MAX_DIM),
            fields,
            bias_norm: cfg.bias_scale as f32 / (nf as f32).sqrt(),
            fm_norm: cfg.interaction_scale as f32 / pairs.sqrt(),
            // Each score is a sum of `nf` weighted unit-variance values: dividing each by
            // sqrt(nf) makes it about unit variance, so the product's std is about the scale.
            triple_norm: cfg.triple_scale as f32 / (nf as f32).powf(1.5),
            new_id_share: cfg.new_id_share,
            shock_move_share: cfg.shock_strength / 2.0,
            shock_level: level,
        }
    }

    /// The id slot `slot` of field `f` holds in epoch `epoch` (`shock` = the shocked lineage).
    fn epoch_id(&self, f: usize, slot: u64, epoch: u64, shock: bool) -> u64 {
        let field = &self.fields[f];
        if epoch == 0 && !shock {
            return slot;
        }
        let h = hash(&[self.seed, f as u64, slot, epoch, shock as u64, 0x1D]);
        let v = field.cardinality;
        if field.new_ids && unif(h) < self.new_id_share {
            // Unique per (slot, epoch, lineage): first seen when this epoch's move starts.
            v * (1 + 2 * epoch + shock as u64) + slot
        } else {
            mix64(h) % v
        }
    }

    /// The id a row drawn into popularity slot `slot` of field `f` gets on this day; `u` is a
    /// uniform draw of the row deciding between a slot's current and next id while it moves.
    pub fn slot_id(&self, f: usize, slot: u64, u: f64) -> u64 {
        let field = &self.fields[f];
        // The jumping slots are fixed by their hash; while `gradual` ramps up, each of them
        // sends a growing share `shock_level` of its rows to its new id (decided by a hash of
        // the row's draw, so no extra random number is drawn and a complete shock is the
        // historical one), so the moved mass grows linearly rather than slot by slot.
        let shock = field.popularity_shocked
            && unif(hash(&[self.seed, f as u64, slot, 0x5C0C])) < self.shock_move_share
            && (self.shock_level >= 1.0 || unif(mix64(u.to_bits())) < self.shock_level);
        let period = field.churn_period;
        if period == 0 {
            return self.epoch_id(f, slot, 0, shock);
        }
        let phase = hash(&[self.seed, f as u64, slot, 0xFA5E]) % period;
        let t = self.day + phase;
        let epoch = t / period;
        let progress = (t % period) as f64 / period as f64;
        if u < progress {
            self.epoch_id(f, slot, epoch + 1, shock)
        } else {
            self.epoch_id(f, slot, epoch, shock)
        }
    }

    /// Field `f`'s id `id`'s parts of the row's logit: returns its bias, writes its (rotated,
    /// weighted) latent vector into `v` (the first `dim` entries; the rest are left alone) and,
    /// when the world has a three-way term, its three weighted scores into `t`.
    pub fn id_effect(&self, f: usize, id: u64, v: &mut [f32; MAX_DIM], t: &mut [f32; 3]) -> f32 {
        let field = &self.fields[f];
        let h1 = hash(&[self.seed, 0x1D_7A07, f as u64, id]);
        let h2 = mix64(h1);
        let h3 = mix64(h2);
        let scale = 1.0 / (self.dim as f32).sqrt().sqrt();
        // Dimensions 0..8 take their bits from the two hashes of the historical rank <= 8
        // world, so its rows are unchanged; only a wider world pays for two more.
        let mut words = [h2, h3, 0, 0];
        if self.dim > 8 {
            words[2] = mix64(h3);
            words[3] = mix64(words[2]);
        }
        for (j, x) in v.iter_mut().enumerate().take(self.dim) {
            *x = unit(words[j / 4] >> (16 * (j % 4))) * scale;
        }
        let (s, c) = field.angle.sin_cos();
        for p in (0..self.dim.saturating_sub(1)).step_by(2) {
            let (a, b) = (v[p], v[p + 1]);
            v[p] = c * a - s * b;
            v[p + 1] = s * a + c * b;
        }
        for x in v.iter_mut().take(self.dim) {
            *x *= field.weight;
        }
        if self.triple_norm != 0.0 {
            let h = hash(&[self.seed, 0x0072_191E, f as u64, id]);
            for (k, x) in t.iter_mut().enumerate() {
                *x = unit(h >> (16 * k)) * field.weight;
            }
        }
        unit(h1) * self.bias_norm
    }

    /// Pairwise term `sum_{f<g} <w_f v_f, w_g v_g>` from the running sums of the weighted
    /// vectors and of their squared norms, normalised.
    pub fn interaction(&self, sum: &[f32; MAX_DIM], sum_sq: f32) -> f32 {
        let total: f32 = sum.iter().take(self.dim).map(|x| x * x).sum();
        0.5 * (total - sum_sq) * self.fm_norm
    }

    /// The logit of a row of ids (one per field, in field order) without the day's intercept
    /// and the numeric fields' effects:
    ///
    /// ```text
    /// sum_f b_f + fm_norm * sum_{f<g} <w_f v_f, w_g v_g> + triple_norm * A * B * C
    /// A = sum_f w_f a_f,  B = sum_f w_f b'_f,  C = sum_f w_f c_f
    /// ```
    ///
    /// where `b_f` is the id's bias, `v_f` its latent vector (rotated by the day's angle) and
    /// `a_f`, `b'_f`, `c_f` its three scores, all hashes of `(seed, field, id)`.
    pub fn row_logit(&self, ids: &[u64]) -> f32 {
        let (mut sum, mut sum_sq, mut bias) = ([0f32; MAX_DIM], 0f32, 0f32);
        let (mut v, mut t, mut abc) = ([0f32; MAX_DIM], [0f32; 3], [0f32; 3]);
        for (f, &id) in ids.iter().enumerate() {
            bias += self.id_effect(f, id, &mut v, &mut t);
            for j in 0..self.dim {
                sum[j] += v[j];
                sum_sq += v[j] * v[j];
            }
            for k in 0..3 {
                abc[k] += t[k];
            }
        }
        let logit = bias + self.interaction(&sum, sum_sq);
        if self.triple_norm == 0.0 {
            return logit;
        }
        logit + self.triple_norm * abc[0] * abc[1] * abc[2]
    }
}

/// The expected positive rate of `day` (weekly cycle and shock applied).
pub fn target_rate(cfg: &SynthConfig, day: usize) -> f64 {
    let week = (std::f64::consts::TAU * (day % 7) as f64 / 7.0).cos();
    let mut rate = cfg.base_rate * (1.0 + cfg.effective_weekday_amplitude() * week);
    let level = cfg.shock_level(day);
    if level > 0.0 && cfg.drift.moves_rate() {
        // Complete: the factor itself (bit-identical to the historical stream); ramping: a
        // linear step towards it.
        rate *= if level >= 1.0 {
            cfg.shock_rate_factor
        } else {
            1.0 + (cfg.shock_rate_factor - 1.0) * level
        };
    }
    rate.clamp(1e-4, 1.0 - 1e-4)
}

/// The intercept `c` with `mean(sigmoid(c + z)) = rate` (bisection; `z` non-empty).
pub fn calibrate_intercept(z: &[f32], rate: f64) -> f32 {
    let mean_at = |c: f64| {
        z.iter()
            .map(|&x| 1.0 / (1.0 + (-(c + x as f64)).exp()))
            .sum::<f64>()
            / z.len().max(1) as f64
    };
    let (mut lo, mut hi) = (-30.0f64, 30.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if mean_at(mid) < rate {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0.5 * (lo + hi)) as f32
}
