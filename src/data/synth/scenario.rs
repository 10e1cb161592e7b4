//! Drift scenarios: which parts of the synthetic world change at the shock, and how fast.
//!
//! The built-in shock moves three things at once (id popularity, the interactions, the click
//! rate), so every drift signal fires together and no claim about one kind of drift can be
//! tested on it. A scenario keeps one of them and switches the others off:
//!
//! | scenario    | background drift | ids jump | interactions flip | rate moves | speed    |
//! |-------------|------------------|----------|-------------------|------------|----------|
//! | `shock`     | yes              | yes      | yes               | yes        | one day  |
//! | `gradual`   | yes              | yes      | yes               | yes        | `drift_days` |
//! | `covariate` | no               | yes      | no                | no         | one day  |
//! | `concept`   | no               | no       | yes               | no         | one day  |
//! | `label`     | no               | no       | no                | yes        | one day  |
//! | `none`      | no               | no       | no                | no         | -        |
//!
//! "Background drift" is the slow drift of every day (slot churn, latent rotation, the weekly
//! cycle of the rate). The isolating scenarios switch it off too: with it, a "covariate only"
//! world would still rotate its interactions and cycle its rate every day, and "none" would
//! not be a world without drift.

use serde::{Deserialize, Serialize};

/// Which parts of the world drift (`data.drift`); `shock` is the historical stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftScenario {
    /// Background drift plus a one-day shock of ids, interactions and rate (the default).
    #[default]
    Shock,
    /// A stationary world: every day is drawn from the same distribution.
    None,
    /// Stationary, then the shocked fields' popularity jumps (same truth per id, same rate).
    Covariate,
    /// Stationary, then the interaction weights flip (same id distribution, same rate).
    Concept,
    /// Stationary, then the base rate is multiplied by `shock_rate_factor` (same ids, same
    /// interactions: only the intercept moves).
    Label,
    /// The `shock`, spread linearly over `drift_days` days from `shock_day` on.
    Gradual,
}

/// Names of the scenarios, for messages and docs.
pub const SCENARIOS: &[&str] = &["shock", "none", "covariate", "concept", "label", "gradual"];

impl DriftScenario {
    /// Whether the slow drift of every day (churn, rotation, weekly cycle) is on.
    pub fn background(self) -> bool {
        matches!(self, DriftScenario::Shock | DriftScenario::Gradual)
    }

    /// Whether the shock moves the shocked fields' id popularity.
    pub fn moves_ids(self) -> bool {
        matches!(
            self,
            DriftScenario::Shock | DriftScenario::Gradual | DriftScenario::Covariate
        )
    }

    /// Whether the shock changes the interaction weights.
    pub fn moves_interactions(self) -> bool {
        matches!(
            self,
            DriftScenario::Shock | DriftScenario::Gradual | DriftScenario::Concept
        )
    }

    /// Whether the shock changes the base rate.
    pub fn moves_rate(self) -> bool {
        matches!(
            self,
            DriftScenario::Shock | DriftScenario::Gradual | DriftScenario::Label
        )
    }

    /// How far the shock has gone on `day`, in [0, 1]: 0 before `shock_day`, then 1 at once,
    /// or for `gradual` `k / drift_days` on the k-th day of the change (k = 1 on `shock_day`).
    /// Exactly 1.0 once complete, so a complete shock computes the same numbers as the
    /// historical one.
    pub fn level(self, day: usize, shock_day: usize, drift_days: usize) -> f64 {
        if self == DriftScenario::None || day < shock_day {
            return 0.0;
        }
        if self != DriftScenario::Gradual {
            return 1.0;
        }
        let k = day - shock_day + 1;
        let n = drift_days.max(1);
        if k >= n {
            1.0
        } else {
            k as f64 / n as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_step_or_ramp() {
        use DriftScenario::*;
        for s in [Shock, Covariate, Concept, Label] {
            assert_eq!(s.level(5, 6, 4), 0.0);
            assert_eq!(s.level(6, 6, 4), 1.0);
            assert_eq!(s.level(9, 6, 4), 1.0);
        }
        assert_eq!(None.level(9, 6, 4), 0.0);
        let ramp: Vec<f64> = (5..11).map(|d| Gradual.level(d, 6, 4)).collect();
        assert_eq!(ramp, vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.0]);
        // One day of ramp is the sudden shock.
        assert_eq!(Gradual.level(6, 6, 1), 1.0);
    }

    #[test]
    fn each_isolating_scenario_moves_one_thing() {
        use DriftScenario::*;
        let moves = |s: DriftScenario| {
            [
                s.background(),
                s.moves_ids(),
                s.moves_interactions(),
                s.moves_rate(),
            ]
        };
        assert_eq!(moves(None), [false; 4]);
        assert_eq!(moves(Covariate), [false, true, false, false]);
        assert_eq!(moves(Concept), [false, false, true, false]);
        assert_eq!(moves(Label), [false, false, false, true]);
        assert_eq!(moves(Shock), [true; 4]);
        assert_eq!(moves(Gradual), [true; 4]);
    }
}
