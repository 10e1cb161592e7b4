//! The built-in synthetic drifting stream: an ad log with a hidden ground truth.
//!
//! - **Fields**: categorical fields with Zipf-like popularity over "slots" (popularity ranks);
//!   which id sits in a slot drifts over time. An `hour` field follows the time of the row.
//! - **Truth**: `logit = intercept(day) + sum of per-id biases + FM-style pairwise latent
//!   interactions of rank `latent_dim` (per-field weights) + a three-way term (the product of
//!   three additive per-id scores, `triple_scale`) + small numeric effects`; labels are
//!   Bernoulli draws ([`truth::DayTruth::row_logit`]). The intercept is calibrated per day so
//!   the expected positive rate is the configured one. The `default` world's interactions
//!   (rank 16, strong, with the three-way term) are what its default student can hold and its
//!   default teacher cannot; `fm4` is the world before them (rank 4, no three-way term).
//! - **Gradual drift**: every slot moves its mass from its current id to its next id over
//!   `1 / churn` days (staggered, so about `churn` of the mass moves per day); a share
//!   `new_id_share` of next ids are brand new (first seen on the day the move starts); latent
//!   factors rotate by `rotation_per_day` radians a day (a different speed per field).
//! - **Periodic**: the positive rate follows a weekly cycle (`weekday_amplitude`).
//! - **Shock** (from `shock_day` on, when `shock_strength > 0`): the positive rate is multiplied
//!   by `shock_rate_factor`; the interaction weight of every shocked field and of about half of
//!   the others changes sign (scaled by `shock_strength`); and in the shocked fields
//!   (`shock_fields`, default `item`, `category`, `advertiser`) a share `shock_strength / 2` of
//!   the slots jumps at once to other ids, which is what `data inspect` sees as PSI > 0.25.
//! - **Scenarios** (`drift`, see [`DriftScenario`]): the shock above is the default `shock`;
//!   `covariate`, `concept` and `label` keep one of its three parts on an otherwise stationary
//!   world, `none` is stationary, and `gradual` spreads the whole shock over `drift_days` days.
//!
//! Every day is a pure function of `(config, day)`: per-id truths are hashes of
//! `(seed, field, id)`, slot drift is a function of the day, and rows come from ChaCha8 streams
//! seeded by `(seed, day, chunk)`.

mod scenario;
mod source;
mod truth;

pub use scenario::{DriftScenario, SCENARIOS};
pub use source::SyntheticSource;

use anyhow::{bail, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a synthetic field draws its values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Zipf-distributed popularity over drifting slots.
    #[default]
    Zipf,
    /// Hour of the row's timestamp (0..24); `cardinality` is ignored.
    HourOfDay,
}

/// One categorical field of the generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthField {
    pub name: String,
    /// Number of ids in the base vocabulary (1 ..= 10_000_000).
    pub cardinality: u64,
    #[serde(default)]
    pub kind: FieldKind,
}

/// Every knob of the generator. In TOML, `preset = "tiny"` picks the starting point and the
/// other keys override it; unknown keys are an error that names the key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct SynthConfig {
    /// Name of the preset this config started from (informational).
    pub preset: String,
    pub seed: u64,
    pub days: usize,
    pub rows_per_day: usize,
    pub fields: Vec<SynthField>,
    /// Names of the numeric fields (at most 13: position, price and activity effects, then
    /// values linked to other fields' ids with weaker effects, for the `wide` preset).
    pub numeric_fields: Vec<String>,
    pub user_field: Option<String>,
    /// Zipf exponent of id popularity.
    pub zipf_exponent: f64,
    /// Latent dimension of the hidden pairwise interactions (1 ..= 16).
    pub latent_dim: usize,
    /// Standard deviation of the summed per-id biases (logit units).
    pub bias_scale: f64,
    /// Standard deviation of the summed pairwise interactions (logit units).
    pub interaction_scale: f64,
    /// About the standard deviation of the three-way term, the product of three additive
    /// per-id scores (logit units; 0 = none).
    pub triple_scale: f64,
    /// Expected positive rate of an ordinary day.
    pub base_rate: f64,
    /// Relative amplitude of the weekly cycle of the positive rate.
    pub weekday_amplitude: f64,
    /// Share of popularity mass that moves to other ids per day (0 = none).
    pub churn: f64,
    /// Share of moves that go to brand-new ids.
    pub new_id_share: f64,
    /// Radians per day the latent factors rotate (times a per-field speed in [-1, 1]).
    pub rotation_per_day: f64,
    /// First day of the shock.
    pub shock_day: usize,
    /// 0 disables the shock; 1 flips interaction weights fully and moves half the slots.
    pub shock_strength: f64,
    /// Positive-rate multiplier from the shock day on.
    pub shock_rate_factor: f64,
    /// Fields whose id popularity jumps on the shock day.
    pub shock_fields: Vec<String>,
    /// Which parts of the world drift: `shock` (the default, everything at once), `none`,
    /// `covariate`, `concept`, `label` or `gradual`.
    pub drift: DriftScenario,
    /// Days over which the `gradual` scenario spreads the shock (1 ..= 365).
    pub drift_days: u32,
}

const DEFAULT_FIELDS: &[(&str, u64)] = &[
    ("user", 100_000),
    ("item", 50_000),
    ("category", 500),
    ("brand", 5_000),
    ("advertiser", 2_000),
    ("campaign", 10_000),
    ("creative", 30_000),
    ("hour", 24),
    ("device", 5),
    ("os", 8),
    ("browser", 12),
    ("region", 50),
    ("city", 2_000),
    ("site", 3_000),
    ("app", 5_000),
    ("slot", 20),
    ("page", 200),
    ("language", 30),
    ("connection", 4),
    ("gender", 3),
    ("age_group", 7),
    ("query", 20_000),
];

/// The `wide` preset's 26 categorical fields: the default's 22 and four more, so that with
/// 13 numeric fields a day has Criteo's layout (`data synth --layout criteo`).
const WIDE_EXTRA_FIELDS: &[(&str, u64)] = &[
    ("keyword", 8_000),
    ("publisher", 1_500),
    ("placement", 1_000),
    ("segment", 300),
];

const TINY_FIELDS: &[(&str, u64)] = &[
    ("user", 2_000),
    ("item", 1_000),
    ("category", 50),
    ("advertiser", 100),
    ("hour", 24),
    ("device", 5),
    ("region", 20),
    ("site", 200),
];

fn fields_of(list: &[(&str, u64)]) -> Vec<SynthField> {
    list.iter()
        .map(|&(name, cardinality)| SynthField {
            name: name.to_string(),
            cardinality,
            kind: if name == "hour" {
                FieldKind::HourOfDay
            } else {
                FieldKind::Zipf
            },
        })
        .collect()
}

/// Names of the presets [`SynthConfig::preset`] knows.
pub const PRESETS: &[&str] = &["default", "fm4", "additive", "no-drift", "tiny", "wide"];

impl Default for SynthConfig {
    /// The `default` world: [`SynthConfig::fm4`]'s fields, drift and rates, with pairwise
    /// interactions of rank 16 (twice the default teacher's embedding width) and a three-way
    /// term (docs/data.md, "The built-in synthetic stream").
    fn default() -> Self {
        SynthConfig {
            preset: "default".into(),
            latent_dim: 16,
            interaction_scale: 6.0,
            triple_scale: 1.0,
            // A shock that flips the interactions outright (`fm4`'s 0.8) leaves any model that
            // learned them worse than one that did not for days after; this one still
            // cuts their weights to 0.4 in the shocked fields (and about half the others),
            // moves some of their ids and the rate.
            shock_strength: 0.3,
            ..SynthConfig::fm4()
        }
    }
}

impl SynthConfig {
    /// The `fm4` world, the default one until the world was given structure the default
    /// teacher cannot hold: a rank-4 factorisation machine plus per-id biases. Its rows are
    /// the historical default's, bit for bit (a test pins them). The default student leads
    /// the default teacher here too, except for days after its interactions flip (the shock,
    /// `concept`, `gradual`): `additive` is the negative control.
    pub fn fm4() -> SynthConfig {
        SynthConfig {
            preset: "fm4".into(),
            seed: 7,
            days: 24,
            rows_per_day: 20_000,
            fields: fields_of(DEFAULT_FIELDS),
            numeric_fields: vec!["position".into(), "price".into(), "activity".into()],
            user_field: Some("user".into()),
            zipf_exponent: 1.05,
            latent_dim: 4,
            bias_scale: 0.7,
            interaction_scale: 1.0,
            triple_scale: 0.0,
            base_rate: 0.10,
            weekday_amplitude: 0.08,
            churn: 0.02,
            new_id_share: 0.3,
            rotation_per_day: 0.03,
            shock_day: 18,
            shock_strength: 0.8,
            shock_rate_factor: 1.6,
            shock_fields: vec!["item".into(), "category".into(), "advertiser".into()],
            drift: DriftScenario::Shock,
            drift_days: 4,
        }
    }

    /// A named starting point: `default`, `fm4` (see [`SynthConfig::fm4`]), `additive`
    /// (`fm4` without interactions: the negative control, where the default student is no
    /// better than the default teacher in any scenario), `no-drift` (the default world without churn, rotation, weekly
    /// cycle or shock) or `tiny` (the `fm4` truth on 8 small fields, 1 000 rows a day, 10 days,
    /// shock on day 6; for tests, which pin its numbers, and smoke runs) or `wide` (the
    /// default world on 26 categorical and 13 numeric fields, Criteo's layout, for memory and
    /// speed at a real log's width).
    pub fn preset(name: &str) -> Result<SynthConfig> {
        let base = SynthConfig::default();
        Ok(match name {
            "default" => base,
            "fm4" => SynthConfig::fm4(),
            // The negative control: an additive truth (per-id biases and numeric effects, no
            // interactions), which an 8-wide teacher holds as fully as any student. In `fm4`
            // the student architecture leads wherever its interactions do not flip
            // (docs/edge.md).
            "additive" => SynthConfig {
                preset: name.into(),
                interaction_scale: 0.0,
                ..SynthConfig::fm4()
            },
            "no-drift" => SynthConfig {
                preset: name.into(),
                weekday_amplitude: 0.0,
                churn: 0.0,
                new_id_share: 0.0,
                rotation_per_day: 0.0,
                shock_strength: 0.0,
                shock_rate_factor: 1.0,
                drift: DriftScenario::None,
                ..base
            },
            "tiny" => SynthConfig {
                preset: name.into(),
                days: 10,
                rows_per_day: 1_000,
                fields: fields_of(TINY_FIELDS),
                shock_day: 6,
                ..SynthConfig::fm4()
            },
            "wide" => SynthConfig {
                preset: name.into(),
                fields: fields_of(DEFAULT_FIELDS)
                    .into_iter()
                    .chain(fields_of(WIDE_EXTRA_FIELDS))
                    .collect(),
                numeric_fields: ["position", "price", "activity"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain((4..=13).map(|j| format!("n{j}")))
                    .collect(),
                ..base
            },
            other => bail!(
                "unknown synthetic preset `{other}` (known: {})",
                PRESETS.join(", ")
            ),
        })
    }

    /// Checks every value; the message names the key.
    pub fn validate(&self) -> Result<()> {
        if self.fields.is_empty() {
            bail!("synthetic config: `fields` must name at least one field");
        }
        if self.days == 0 {
            bail!("synthetic config: `days` must be at least 1");
        }
        if !(1..=10_000_000).contains(&self.rows_per_day) {
            bail!(
                "synthetic config: `rows_per_day` must be in 1..=10000000, got {}",
                self.rows_per_day
            );
        }
        let mut names = std::collections::HashSet::new();
        for f in &self.fields {
            if !names.insert(f.name.as_str()) {
                bail!("synthetic config: field `{}` is listed twice", f.name);
            }
            if !(1..=10_000_000).contains(&f.cardinality) {
                bail!(
                    "synthetic config: field `{}` has cardinality {}, must be in 1..=10000000",
                    f.name,
                    f.cardinality
                );
            }
        }
        if self.numeric_fields.len() > 13 {
            bail!("synthetic config: `numeric_fields` may name at most 13 fields");
        }
        for name in self.shock_fields.iter().chain(self.user_field.iter()) {
            if !names.contains(name.as_str()) {
                bail!("synthetic config: `{name}` is not one of the `fields`");
            }
        }
        if !(1..=365).contains(&self.drift_days) {
            bail!(
                "synthetic config: `drift_days` must be in 1..=365, got {}",
                self.drift_days
            );
        }
        if !(1..=truth::MAX_DIM).contains(&self.latent_dim) {
            bail!(
                "synthetic config: `latent_dim` must be in 1..={}, got {}",
                truth::MAX_DIM,
                self.latent_dim
            );
        }
        let unit = [
            ("churn", self.churn),
            ("new_id_share", self.new_id_share),
            ("shock_strength", self.shock_strength),
            ("weekday_amplitude", self.weekday_amplitude),
        ];
        for (key, v) in unit {
            if !(0.0..=1.0).contains(&v) {
                bail!("synthetic config: `{key}` must be in [0, 1], got {v}");
            }
        }
        if !(self.base_rate > 0.0 && self.base_rate < 1.0) {
            bail!("synthetic config: `base_rate` must be in (0, 1)");
        }
        let shocked = self.base_rate * self.shock_rate_factor * (1.0 + self.weekday_amplitude);
        if !(self.shock_rate_factor > 0.0 && shocked < 1.0) {
            bail!("synthetic config: `shock_rate_factor` must keep the positive rate below 1");
        }
        for (key, v) in [
            ("zipf_exponent", self.zipf_exponent),
            ("bias_scale", self.bias_scale),
            ("interaction_scale", self.interaction_scale),
            ("triple_scale", self.triple_scale),
            ("rotation_per_day", self.rotation_per_day),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                bail!("synthetic config: `{key}` must be a finite number >= 0");
            }
        }
        Ok(())
    }

    /// How far the shock has gone on `day`, in [0, 1] (0: not started, disabled by
    /// `shock_strength = 0`, or the `none` scenario).
    pub fn shock_level(&self, day: usize) -> f64 {
        if self.shock_strength > 0.0 {
            self.drift
                .level(day, self.shock_day, self.drift_days as usize)
        } else {
            0.0
        }
    }

    /// Whether the shock is active on `day`.
    pub fn shocked(&self, day: usize) -> bool {
        self.shock_level(day) > 0.0
    }

    /// The first day the world changes beyond its background drift, if it ever does within
    /// the stream: `None` for the `none` scenario, a disabled shock, or one after the last day.
    pub fn drift_start(&self) -> Option<usize> {
        let changes = match self.drift {
            DriftScenario::None => false,
            DriftScenario::Label => self.shock_rate_factor != 1.0,
            DriftScenario::Covariate => !self.shock_fields.is_empty(),
            _ => true,
        };
        (changes && self.shock_strength > 0.0 && self.shock_day < self.days)
            .then_some(self.shock_day)
    }

    /// Churn of the day's slots as the scenario runs it (0 without background drift).
    pub(crate) fn effective_churn(&self) -> f64 {
        if self.drift.background() {
            self.churn
        } else {
            0.0
        }
    }

    /// Latent rotation per day as the scenario runs it (0 without background drift).
    pub(crate) fn effective_rotation(&self) -> f64 {
        if self.drift.background() {
            self.rotation_per_day
        } else {
            0.0
        }
    }

    /// Weekly amplitude of the rate as the scenario runs it (0 without background drift).
    pub(crate) fn effective_weekday_amplitude(&self) -> f64 {
        if self.drift.background() {
            self.weekday_amplitude
        } else {
            0.0
        }
    }
}

/// Every key a stored config held before `triple_scale` existed.
const SYNTH_KEYS_BEFORE_TRIPLE: &[&str] = &[
    "preset",
    "seed",
    "days",
    "rows_per_day",
    "fields",
    "numeric_fields",
    "user_field",
    "zipf_exponent",
    "latent_dim",
    "bias_scale",
    "interaction_scale",
    "base_rate",
    "weekday_amplitude",
    "churn",
    "new_id_share",
    "rotation_per_day",
    "shock_day",
    "shock_strength",
    "shock_rate_factor",
    "shock_fields",
];

impl Serialize for SynthConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SynthConfig::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for SynthConfig {
    /// Starts from `preset` (default `default`) and applies the given keys on top.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let given = serde_json::Value::deserialize(d)?;
        let serde_json::Value::Object(given) = given else {
            return Err(D::Error::custom(
                "the synthetic config must be a table of keys",
            ));
        };
        let preset = match given.get("preset") {
            None => "default".to_string(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(_) => return Err(D::Error::custom("`preset` must be a string")),
        };
        let base = SynthConfig::preset(&preset).map_err(D::Error::custom)?;
        let written_before_the_triple_term = !given.contains_key("triple_scale")
            && SYNTH_KEYS_BEFORE_TRIPLE
                .iter()
                .all(|k| given.contains_key(*k));
        let base = SynthConfig::serialize(&base, serde_json::value::Serializer)
            .map_err(D::Error::custom)?;
        let serde_json::Value::Object(mut merged) = base else {
            return Err(D::Error::custom(
                "internal: preset did not serialise to a table",
            ));
        };
        for (k, v) in given {
            merged.insert(k, v);
        }
        if written_before_the_triple_term {
            // A session stores every key of its world; one that names them all but this one
            // was written before the three-way term existed, so its world had none (and must
            // regenerate the same rows on resume).
            merged.insert("triple_scale".into(), serde_json::json!(0.0));
        }
        let cfg = SynthConfig::deserialize(serde_json::Value::Object(merged))
            .map_err(D::Error::custom)?;
        cfg.validate().map_err(D::Error::custom)?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests;
