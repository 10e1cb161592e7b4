//! The `[method]` section of the session config: what the recipes of the offline stage read.

use serde::{Deserialize, Serialize};

use super::sampler::Strategy;

/// Parameters of the offline stage (1A-1C) and of the baselines' offline training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MethodConfig {
    pub sampling: Strategy,
    pub sampling_ratio: f64,
    pub target_pos_rate: f64,
    pub recency_half_life: f64,
    /// Weight `a` of the distillation term.
    pub distill_weight: f64,
    pub temperature: f64,
    /// Passes of 1B (frozen embeddings) and 1C (joint) over fresh draws of the sample.
    pub epochs_dense: usize,
    /// One 1C pass by default: across seeds a second pass bought no measurable quality for a
    /// clearly longer offline stage (the measurement is in the benchmarks page of docs/).
    pub epochs_joint: usize,
    /// Add the sampler's exact log-odds shift to the student's logit in the label loss, so the
    /// shifted base rate of biased samples does not bias predictions.
    pub logit_correction: bool,
    /// Passes of scratch and kd over all retained days.
    pub baseline_epochs: usize,
}

impl Default for MethodConfig {
    fn default() -> Self {
        MethodConfig {
            sampling: Strategy::Biased,
            sampling_ratio: 0.1,
            target_pos_rate: 0.5,
            recency_half_life: 0.25,
            distill_weight: 0.7,
            temperature: 4.0,
            epochs_dense: 1,
            epochs_joint: 1,
            logit_correction: true,
            baseline_epochs: 1,
        }
    }
}
