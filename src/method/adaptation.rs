//! Distribution-aware adaptation: the drift weight and what it sets.
//!
//! The reference code has no such part; this is ours. Four signals, each scaled to "1 = clearly
//! significant", are added into a drift score `s >= 0`:
//!
//! * field drift: the mean PSI of the `top_fields` most drifting fields over `psi_scale`
//!   (0.25 = the industry's "significant shift" band). With the `model` measure (the default)
//!   only *stable* fields count: those whose reference window's top keys (the PSI's buckets)
//!   hold at least `stable_share` of its rows, decided once from the retained days. On an id
//!   field (users, items, zip codes) most of a day's keys fall outside any window's top keys
//!   whenever new ids arrive, so its PSI measures arrivals, not a change of what drives clicks;
//! * label-rate shift: `|logit(rate) - logit(reference rate)|` over `label_scale`;
//! * the frozen teacher's calibration (`model` measure): how far the slope of the logistic
//!   calibration of the switch-time teacher's logit on the day has moved from its slope on the
//!   reference window, beyond twice the standard error of the difference, in logit units
//!   (times the teacher's logit spread on the retained days), over `teacher_scale`
//!   (`method::teacher_drift`). New ids leave it near its level: the teacher scores them with
//!   its out-of-vocabulary row, which loses what it knew of them but does not reverse what its
//!   scores mean; a change of the click function bends the slope;
//! * stale teacher: `max(0, (L_teacher - L_student) / L_student)` over `loss_scale`, from the
//!   recent losses of the two models on the same rows.
//!
//! The drift weight is `w = 1 - exp(-s)`: 0 for identical distributions, rising monotonically
//! with every signal and saturating at 1. It moves the distillation weight and the replay ratio
//! from "preserve history" to "adapt fast":
//! `a_t = a_max (1 - w) + a_min w`, `replay_t = r (1 - w) + r * replay_floor * w`.
//!
//! The `psi` measure is the rule before the `model` one: every field's PSI and no teacher
//! term. A session written before the key existed reads as `psi`, so it resumes as it ran.

use serde::{Deserialize, Serialize};

/// Constants of the drift weight (the `[adaptation]` section of the session config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptationConfig {
    /// PSI that counts as one unit of drift.
    pub psi_scale: f64,
    /// How many of the most drifting fields are averaged.
    pub top_fields: usize,
    /// Label log-odds shift that counts as one unit of drift.
    pub label_scale: f64,
    /// Relative excess of the teacher's loss over the student's that counts as one unit.
    pub loss_scale: f64,
    /// Share of the configured replay ratio kept at maximal drift.
    pub replay_floor: f64,
    /// Days the reference window spans (the days just before the incoming one). As long as the
    /// default retained window: a shorter window forgot the benchmark's shock before the
    /// co-distilled teacher (a few steps a day) had caught up, and the crossadapt arms lost AUC
    /// on the last days by distilling from it (the measurement is in docs/).
    pub reference_days: usize,
    /// Also re-measure every this many batches inside a day (0 = once per day).
    pub every_batches: u32,
    /// Which drift measure sets the weight: `model` (stable-field PSI and the frozen teacher's
    /// calibration) or `psi` (every field's PSI, the rule before). Missing, as in configs
    /// written before the key existed, it reads as `psi`: what those sessions computed.
    #[serde(default = "DriftMeasure::before_model")]
    pub measure: DriftMeasure,
    /// The shift of the frozen teacher's calibration slope, in logit units, that counts as one
    /// unit of drift (`model` measure). The label term's unit: an error of half a logit.
    pub teacher_scale: f64,
    /// A field's PSI counts (`model` measure) when the top keys of its reference window on the
    /// retained days hold at least this share of the window's rows.
    pub stable_share: f64,
}

/// Which drift measure sets the drift weight (`adaptation.measure`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftMeasure {
    /// PSI of the stable fields, the label rate, the frozen teacher's calibration slope and the
    /// stale-teacher loss.
    #[default]
    Model,
    /// PSI of every field, the label rate and the stale-teacher loss (the rule before `model`).
    Psi,
}

impl DriftMeasure {
    /// What a config without the key means: the only measure before the key existed.
    fn before_model() -> DriftMeasure {
        DriftMeasure::Psi
    }
}

impl Default for AdaptationConfig {
    fn default() -> Self {
        AdaptationConfig {
            psi_scale: 0.25,
            top_fields: 3,
            label_scale: 0.5,
            loss_scale: 0.1,
            replay_floor: 0.25,
            reference_days: 6,
            every_batches: 0,
            measure: DriftMeasure::Model,
            teacher_scale: 0.5,
            // With the top keys holding 90% of the rows, a day on which the rest doubles (new
            // ids) moves the field's PSI by under 0.1, the "stable" band; below it, arrivals
            // alone push a field's PSI past the "significant" band.
            stable_share: 0.9,
        }
    }
}

/// What was measured on an incoming day (or the last K batches).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DriftSignals {
    /// PSI of each field that counts against the reference window.
    pub field_psi: Vec<f64>,
    pub label_rate: f64,
    pub reference_label_rate: f64,
    /// Recent mean losses of teacher and student on the same rows, when both are known.
    pub teacher_loss: Option<f64>,
    pub student_loss: Option<f64>,
    /// The frozen teacher's calibration slope shift beyond its noise, in logit units (`model`
    /// measure; `None` when not measured).
    pub teacher_shift: Option<f64>,
}

impl DriftSignals {
    /// The signals of a day's drift (the PSI of the fields that count, the label rates, the
    /// frozen teacher's shift) with the arm's own losses.
    pub fn of(
        drift: &super::drift::DayDrift,
        teacher_loss: Option<f64>,
        student_loss: Option<f64>,
    ) -> DriftSignals {
        DriftSignals {
            field_psi: drift.counted_psi(),
            label_rate: drift.label_rate,
            reference_label_rate: drift.reference_label_rate,
            teacher_loss,
            student_loss,
            teacher_shift: drift.teacher_shift,
        }
    }
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// The drift score `s` (see the module docs); NaN inputs count as no drift.
pub fn drift_score(sig: &DriftSignals, cfg: &AdaptationConfig) -> f64 {
    let mut psi: Vec<f64> = sig
        .field_psi
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    psi.sort_by(|a, b| b.total_cmp(a));
    let k = cfg.top_fields.max(1).min(psi.len());
    let field = if k == 0 {
        0.0
    } else {
        psi[..k].iter().sum::<f64>() / k as f64 / cfg.psi_scale
    };
    let label = if sig.label_rate.is_finite() && sig.reference_label_rate.is_finite() {
        (logit(sig.label_rate) - logit(sig.reference_label_rate)).abs() / cfg.label_scale
    } else {
        0.0
    };
    let stale = match (sig.teacher_loss, sig.student_loss) {
        (Some(t), Some(s)) if t.is_finite() && s.is_finite() && s > 0.0 => {
            ((t - s) / s).max(0.0) / cfg.loss_scale
        }
        _ => 0.0,
    };
    let teacher = match sig.teacher_shift {
        Some(v) if v.is_finite() => v.max(0.0) / cfg.teacher_scale,
        _ => 0.0,
    };
    field.max(0.0) + label + stale + teacher
}

/// The drift weight `w = 1 - exp(-s)` in [0, 1].
pub fn drift_weight(sig: &DriftSignals, cfg: &AdaptationConfig) -> f64 {
    (1.0 - (-drift_score(sig, cfg)).exp()).clamp(0.0, 1.0)
}

/// A drift weight within this of 0 or 1 is at a bound: the rule then runs as a fixed arm at
/// that end (what a weight printed as 0.00 or 1.00 says).
pub const AT_BOUND: f64 = 0.005;

/// The mean of drift weights and how many of them are at a bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightSummary {
    pub mean: f64,
    pub at_bound: usize,
}

impl WeightSummary {
    /// Of `weights` (the mean is NaN for none).
    pub fn of(weights: &[f64]) -> WeightSummary {
        WeightSummary {
            mean: weights.iter().sum::<f64>() / weights.len() as f64,
            at_bound: weights.iter().filter(|&&w| Self::at_bound(w)).count(),
        }
    }

    /// Whether `w` is within [`AT_BOUND`] of 0 or 1.
    pub fn at_bound(w: f64) -> bool {
        w <= AT_BOUND || w >= 1.0 - AT_BOUND
    }
}

/// `a_t = a_max (1 - w) + a_min w`.
pub fn distill_weight(w: f64, a_min: f64, a_max: f64) -> f64 {
    a_max * (1.0 - w) + a_min * w
}

/// `r (1 - w) + r * floor * w`.
pub fn replay_ratio(w: f64, ratio: f64, floor: f64) -> f64 {
    ratio * (1.0 - w) + ratio * floor * w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(psi: f64, rate: f64) -> DriftSignals {
        DriftSignals {
            field_psi: vec![psi, psi / 2.0, 0.0, 0.0],
            label_rate: rate,
            reference_label_rate: 0.1,
            teacher_loss: None,
            student_loss: None,
            teacher_shift: None,
        }
    }

    #[test]
    fn identical_distributions_give_zero_weight() {
        let cfg = AdaptationConfig::default();
        assert_eq!(drift_weight(&signals(0.0, 0.1), &cfg), 0.0);
        assert_eq!(distill_weight(0.0, 0.3, 0.7), 0.7);
        assert_eq!(replay_ratio(0.0, 0.1, 0.25), 0.1);
    }

    #[test]
    fn weight_rises_monotonically_with_a_controlled_shift() {
        let cfg = AdaptationConfig::default();
        let mut last = -1.0;
        for step in 0..20 {
            let shift = step as f64 * 0.05;
            let w = drift_weight(&signals(shift, 0.1 + shift / 10.0), &cfg);
            assert!(
                w > last || (w == 1.0 && last == 1.0),
                "not rising at {shift}"
            );
            assert!((0.0..=1.0).contains(&w));
            last = w;
        }
        assert!(last > 0.9);
    }

    #[test]
    fn a_stale_teacher_raises_the_weight_but_a_better_one_does_not() {
        let cfg = AdaptationConfig::default();
        let mut s = signals(0.0, 0.1);
        s.teacher_loss = Some(0.33);
        s.student_loss = Some(0.30);
        let w = drift_weight(&s, &cfg);
        assert!((w - (1.0 - (-1.0f64).exp())).abs() < 1e-9, "{w}");
        s.teacher_loss = Some(0.2);
        assert_eq!(drift_weight(&s, &cfg), 0.0);
    }

    #[test]
    fn a_weight_printed_as_0_or_1_is_at_a_bound() {
        let s = WeightSummary::of(&[0.0, 0.004, 0.5, 0.996, 1.0, 0.99]);
        assert_eq!(s.at_bound, 4);
        assert!((s.mean - 3.49 / 6.0).abs() < 1e-12);
        assert!(WeightSummary::of(&[]).mean.is_nan());
    }

    #[test]
    fn weights_move_between_their_bounds() {
        assert!((distill_weight(1.0, 0.3, 0.7) - 0.3).abs() < 1e-12);
        assert!((distill_weight(0.5, 0.3, 0.7) - 0.5).abs() < 1e-12);
        assert!((replay_ratio(1.0, 0.1, 0.25) - 0.025).abs() < 1e-12);
    }

    #[test]
    fn nan_signals_count_as_no_drift() {
        let cfg = AdaptationConfig::default();
        let s = DriftSignals {
            field_psi: vec![f64::NAN],
            label_rate: f64::NAN,
            reference_label_rate: 0.1,
            teacher_loss: Some(f64::NAN),
            student_loss: Some(0.3),
            teacher_shift: Some(f64::NAN),
        };
        assert_eq!(drift_weight(&s, &cfg), 0.0);
    }

    #[test]
    fn the_teacher_term_adds_its_shift_in_units_of_its_scale() {
        let cfg = AdaptationConfig::default();
        let mut s = signals(0.0, 0.1);
        // Half a logit of slope shift is one unit: s = 1.
        s.teacher_shift = Some(0.5);
        assert!((drift_score(&s, &cfg) - 1.0).abs() < 1e-12);
        // PSI term: the top 3 of (0.25, 0.125, 0, 0) average 0.125, over 0.25 = 0.5; the
        // teacher's 0.25 over 0.5 = 0.5; no label shift.
        let mut t = signals(0.25, 0.1);
        t.teacher_shift = Some(0.25);
        assert!((drift_score(&t, &cfg) - 1.0).abs() < 1e-12);
        // A negative shift cannot lower the score.
        t.teacher_shift = Some(-3.0);
        assert!((drift_score(&t, &cfg) - 0.5).abs() < 1e-12);
    }

    /// A session's config written before `measure` existed reads as `psi` (what it ran);
    /// the built-in default is `model`.
    #[test]
    fn configs_without_the_measure_read_as_psi() {
        let old = "psi_scale = 0.25\ntop_fields = 3\nlabel_scale = 0.5\nloss_scale = 0.1\n\
                   replay_floor = 0.25\nreference_days = 6\nevery_batches = 0\n";
        let cfg: AdaptationConfig = toml::from_str(old).unwrap();
        assert_eq!(cfg.measure, DriftMeasure::Psi);
        assert_eq!(AdaptationConfig::default().measure, DriftMeasure::Model);
        let new: AdaptationConfig = toml::from_str("measure = \"model\"").unwrap();
        assert_eq!(new.measure, DriftMeasure::Model);
        let err = toml::from_str::<AdaptationConfig>("measure = \"loss\"").unwrap_err();
        assert!(err.to_string().contains("loss"), "{err}");
    }
}
