//! The strategies a session compares, side by side on the same days and the same teacher.
//!
//! An arm is named by text in the config and in the log; it is parsed into an [`ArmKind`] once,
//! where the text is read (the config's `arms`, the ledger's first sight of an arm), and every
//! later decision matches on the kind.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Switches of the crossadapt arm; the ablations turn one off each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CrossAdaptVariant {
    /// 1A projection of the teacher's tables (off: random embeddings).
    pub projection: bool,
    /// Strategic sampling in 1B/1C (off: all retained rows).
    pub sampling: bool,
    /// Online, the teacher trains on labels and steps every N batches (off: frozen teacher).
    pub asymmetric_teacher: bool,
    /// Replay rows from the retained pool online.
    pub replay: bool,
    /// How the online distillation weight and replay ratio are set.
    pub weight: WeightRule,
    /// 1B/1C add the sampler's exact log-odds offset to the label term (`method.logit_correction`;
    /// off: the biased sample's base rate reaches the student uncorrected).
    pub logit_correction: bool,
}

/// How a crossadapt arm sets its online distillation weight `a` and replay ratio.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightRule {
    /// The drift-aware rule: each day's (and re-measure's) drift weight moves `a` between
    /// `distill_max` and `distill_min` (the full method).
    Adaptive,
    /// `a = distill_max` and the configured replay ratio every day (no drift adaptation).
    Fixed,
    /// One level, not responsive: on online day t the mean of the drift weights the adaptive
    /// rule produced on the online days before t (from the arm's own drift measurements), so
    /// its level tracks the adaptive arm's without reacting to the day itself and without
    /// look-ahead. On the first online day there is no past: the no-drift value (as `Fixed`).
    Matched,
}

impl CrossAdaptVariant {
    pub const FULL: CrossAdaptVariant = CrossAdaptVariant {
        projection: true,
        sampling: true,
        asymmetric_teacher: true,
        replay: true,
        weight: WeightRule::Adaptive,
        logit_correction: true,
    };

    /// Variants whose offline stage is identical can share one offline run.
    pub fn offline_key(&self) -> (bool, bool, bool) {
        (self.projection, self.sampling, self.logit_correction)
    }

    /// The online weight follows each day's measured drift.
    pub fn adaptive(&self) -> bool {
        self.weight == WeightRule::Adaptive
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ArmKind {
    /// The teacher itself, training online on labels every batch (today's practice).
    Incumbent,
    /// The student from random init, trained on all retained days with labels only.
    Scratch,
    /// The student from random init, standard distillation on all retained days, online KD from
    /// a frozen teacher.
    Kd,
    /// The student from random init, trained on labels over the history and the retained days:
    /// the full retraining the method is meant to avoid (its cost is the paper's reference, its
    /// quality the ceiling), then online as scratch. Needs the history.
    Retrain,
    CrossAdapt(CrossAdaptVariant),
}

/// Every arm name the config accepts, with what it means (shown in errors and `--help`).
pub const ARM_NAMES: &[(&str, &str)] = &[
    ("incumbent", "keep the teacher, training online as today"),
    ("scratch", "random init, all retained days, labels only"),
    (
        "retrain",
        "random init, history and retained days, labels only (the full retraining)",
    ),
    (
        "kd",
        "random init, distillation on all retained days, frozen teacher online",
    ),
    ("crossadapt", "the full method"),
    (
        "crossadapt-noproj",
        "ablation: random embeddings instead of 1A projection",
    ),
    (
        "crossadapt-nosample",
        "ablation: 1B/1C on all retained rows",
    ),
    (
        "crossadapt-frozen",
        "ablation: frozen teacher online (no asymmetric update)",
    ),
    ("crossadapt-noreplay", "ablation: no replay rows online"),
    (
        "crossadapt-fixed",
        "ablation: fixed distillation weight (no drift adaptation)",
    ),
    (
        "crossadapt-matched",
        "ablation: fixed weight at the adaptive rule's mean over the past online days",
    ),
    (
        "crossadapt-nocorr",
        "ablation: no logit correction of the biased 1B/1C sample",
    ),
];

impl ArmKind {
    pub fn parse(name: &str) -> anyhow::Result<ArmKind> {
        let full = CrossAdaptVariant::FULL;
        Ok(match name {
            "incumbent" => ArmKind::Incumbent,
            "scratch" => ArmKind::Scratch,
            "retrain" => ArmKind::Retrain,
            "kd" => ArmKind::Kd,
            "crossadapt" => ArmKind::CrossAdapt(full),
            "crossadapt-noproj" => ArmKind::CrossAdapt(CrossAdaptVariant {
                projection: false,
                ..full
            }),
            "crossadapt-nosample" => ArmKind::CrossAdapt(CrossAdaptVariant {
                sampling: false,
                ..full
            }),
            "crossadapt-frozen" => ArmKind::CrossAdapt(CrossAdaptVariant {
                asymmetric_teacher: false,
                ..full
            }),
            "crossadapt-noreplay" => ArmKind::CrossAdapt(CrossAdaptVariant {
                replay: false,
                ..full
            }),
            "crossadapt-fixed" => ArmKind::CrossAdapt(CrossAdaptVariant {
                weight: WeightRule::Fixed,
                ..full
            }),
            "crossadapt-matched" => ArmKind::CrossAdapt(CrossAdaptVariant {
                weight: WeightRule::Matched,
                ..full
            }),
            "crossadapt-nocorr" => ArmKind::CrossAdapt(CrossAdaptVariant {
                logit_correction: false,
                ..full
            }),
            other => {
                let names: Vec<&str> = ARM_NAMES.iter().map(|(n, _)| *n).collect();
                anyhow::bail!("unknown arm `{other}`; known arms: {}", names.join(", "))
            }
        })
    }

    /// Whether the arm's model is the student architecture (all but the incumbent).
    pub fn is_student(&self) -> bool {
        !matches!(self, ArmKind::Incumbent)
    }
}

impl TryFrom<String> for ArmKind {
    type Error = anyhow::Error;
    fn try_from(name: String) -> anyhow::Result<ArmKind> {
        ArmKind::parse(&name)
    }
}

impl From<ArmKind> for String {
    fn from(kind: ArmKind) -> String {
        kind.to_string()
    }
}

impl fmt::Display for ArmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = ARM_NAMES
            .iter()
            .map(|(n, _)| *n)
            .find(|n| ArmKind::parse(n).ok().as_ref() == Some(self))
            .unwrap_or("crossadapt-custom");
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_parses_and_prints_back() {
        for (name, _) in ARM_NAMES {
            assert_eq!(ArmKind::parse(name).unwrap().to_string(), *name);
        }
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = ArmKind::parse("crossadapt-magic").unwrap_err().to_string();
        assert!(err.contains("crossadapt-magic") && err.contains("crossadapt-fixed"));
    }

    #[test]
    fn ablations_differ_from_the_full_method_in_one_switch() {
        let full = CrossAdaptVariant::FULL;
        for (name, _) in ARM_NAMES
            .iter()
            .filter(|(n, _)| n.starts_with("crossadapt-"))
        {
            let ArmKind::CrossAdapt(v) = ArmKind::parse(name).unwrap() else {
                panic!("{name} is not a crossadapt variant");
            };
            let flips = [
                v.projection != full.projection,
                v.sampling != full.sampling,
                v.asymmetric_teacher != full.asymmetric_teacher,
                v.replay != full.replay,
                v.weight != full.weight,
                v.logit_correction != full.logit_correction,
            ];
            assert_eq!(flips.iter().filter(|&&f| f).count(), 1, "{name}");
        }
    }
}
