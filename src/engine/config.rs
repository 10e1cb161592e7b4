//! The session config: a TOML file where every field has a default, plus `--set key=value`
//! overrides. Unknown keys are errors that name the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::data::config::DataConfig;
use crate::data::split::{DayCount, Holdout, SplitConfig};
use crate::method::adaptation::AdaptationConfig;
use crate::method::sampler::{SamplerConfig, Strategy};
pub use crate::method::MethodConfig;
use crate::model::ModelSpec;
use crate::protocol::{ArmKind, CrossAdaptVariant, GateRule, Params, WeightRule};
use crate::train::TrainConfig;

/// Version of the config schema; written into every session's `config.toml`.
pub const CONFIG_SCHEMA_VERSION: u32 = 1;

/// Upper bounds of the config's counts: far above any real run, low enough that sums and
/// products of them cannot overflow and a typo (`batch_size = 1e12`) fails at once.
const MAX_THREADS: usize = 1024;
const MAX_BATCH: usize = 1 << 24;
const MAX_EPOCHS: usize = 10_000;
const MAX_DAYS: usize = 100_000;
const MAX_FIELDS: usize = 10_000;

/// A TOML error as one sentence, the key (or line and column) first: "`seed`: invalid value:
/// integer `-1`, expected u64" rather than the message with the key on a line of its own.
fn toml_sentence(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let keys: Option<String> = e
        .to_string()
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in ").map(str::to_string));
    match (keys, e.span()) {
        (Some(key), _) => format!("{key}: {message}"),
        (None, Some(span)) if !text.is_empty() => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        _ => message,
    }
}

/// `key` must be in `lo..=hi`.
fn count(key: &str, v: usize, lo: usize, hi: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        (lo..=hi).contains(&v),
        "{key} must be in {lo}..={hi}, got {v}"
    );
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    pub schema_version: u32,
    /// Human name of the session (default: derived from the arms and the source).
    pub name: Option<String>,
    /// Fixes the run's randomness: initialisation, sampling, replay draws. The synthetic
    /// stream has its own `data.seed`, so runs with different seeds see the same days.
    pub seed: u64,
    /// Compute threads of the engine (candle's matmul pool).
    pub threads: usize,
    pub data: DataConfig,
    /// Ids seen fewer times than this in the fitting days map to OOV.
    pub min_count: u32,
    /// Refuse to start a run whose expected heap peak (`crate::engine::memory`) is above this
    /// many megabytes, naming settings that would fit. 0: no limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_memory_mb: u64,
    pub split: SplitConfig,
    pub teacher: TeacherConfig,
    pub student: StudentConfig,
    /// Arms, by name: incumbent, scratch, kd, crossadapt and its ablations (parsed here, once).
    pub arms: Vec<ArmKind>,
    pub train: TrainConfig,
    /// Rows per training batch everywhere.
    pub batch_size: usize,
    pub method: MethodConfig,
    pub online: OnlineConfig,
    pub adaptation: AdaptationConfig,
    /// The migration gate's rule: SWITCH once each student is not worse than the incumbent by
    /// more than `delta` AUC and `logloss_delta` LogLoss at `level` for `days` consecutive days.
    pub gate: GateRule,
    /// Day checkpoints to keep on disk, newest first, besides `teacher`, `done` and the first
    /// online day's (the offline stage's result). Each day's checkpoint holds every arm's models
    /// with their optimiser state (docs/sessions.md gives the size), so keeping every day made a
    /// session's disk grow with its days; 0 keeps every day, so `fork --from-day` can start
    /// anywhere. At least 2 when set, so a damaged newest checkpoint can still fall back to the
    /// one before.
    pub keep_day_checkpoints: usize,
    /// A day checkpoint is written once the online days since the last checkpoint hold at
    /// least this many rows (and always after the last day): every day of the default stream
    /// (20,000 rows a day), every 20th day of a log of 500-row days, so short days do not pay
    /// a checkpoint each. 0 = every day.
    pub checkpoint_min_rows: u64,
    /// Per-arm values of the hyperparameters `crossadapt tune` chooses, by arm name
    /// (`[per_arm.kd] emb_lr = 0.05`). An arm without its own entry uses the session's values;
    /// a crossadapt ablation without its own entry uses the `crossadapt` entry, so it differs
    /// from the full method only in what it switches off. By default scratch and kd have
    /// entries of their own ([`default_per_arm`]); `--set per_arm.kd.KEY=V` or a config file
    /// changes one key and keeps the others. A session stored before those entries existed has
    /// no `[per_arm]` and reads back with none (serde's default here, not the built-in one), so
    /// it resumes and forks on the values it ran with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_arm: BTreeMap<String, ArmOverrides>,
}

/// One arm's own hyperparameters; an absent key keeps the session's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArmOverrides {
    /// `train.emb_lr` of the arm's student.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emb_lr: Option<f64>,
    /// `train.dense_lr` of the arm's student.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense_lr: Option<f64>,
    /// `method.distill_weight`: kd's `a` offline and online; crossadapt's `a` in 1B/1C (its
    /// online weight stays between `online.distill_min` and `distill_max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distill_weight: Option<f64>,
    /// `method.temperature` (offline and online).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// `method.sampling_ratio` of 1B/1C. An arm with its own ratio does not follow the
    /// operator's live `sampling_ratio` changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling_ratio: Option<f64>,
    /// `method.epochs_joint` (1C passes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs_joint: Option<usize>,
}

impl ArmOverrides {
    /// `key = value` of the values set, in field order (for tables and records).
    pub fn pairs(&self) -> Vec<(&'static str, f64)> {
        [
            ("emb_lr", self.emb_lr),
            ("dense_lr", self.dense_lr),
            ("distill_weight", self.distill_weight),
            ("temperature", self.temperature),
            ("sampling_ratio", self.sampling_ratio),
            ("epochs_joint", self.epochs_joint.map(|e| e as f64)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    /// `train` and `method` with these values laid over them.
    pub fn apply(&self, train: &mut TrainConfig, method: &mut MethodConfig) {
        train.emb_lr = self.emb_lr.unwrap_or(train.emb_lr);
        train.dense_lr = self.dense_lr.unwrap_or(train.dense_lr);
        method.distill_weight = self.distill_weight.unwrap_or(method.distill_weight);
        method.temperature = self.temperature.unwrap_or(method.temperature);
        method.sampling_ratio = self.sampling_ratio.unwrap_or(method.sampling_ratio);
        method.epochs_joint = self.epochs_joint.unwrap_or(method.epochs_joint);
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeacherConfig {
    /// The deployed architecture (parsed here, once).
    #[serde(with = "teacher_spec")]
    pub model: ModelSpec,
    /// Load this trainer checkpoint instead of training on the history days.
    pub checkpoint: Option<PathBuf>,
    /// Load the teacher from this bundle (docs/bundles.md) instead of training it: its model
    /// replaces `model`, its vocabulary encodes every day, and history may be 0 days.
    pub bundle: Option<PathBuf>,
    /// Passes over the history days.
    pub epochs: usize,
    /// Run even when a field of the first retained day is mostly out of the bundle's
    /// vocabulary where the bundle's own training rows were not (a key hashed or formatted
    /// otherwise; docs/bundles.md). Off: such a run stops before the session exists.
    pub allow_oov_jump: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudentConfig {
    /// The new architecture (parsed here, once).
    #[serde(with = "student_spec")]
    pub model: ModelSpec,
}

/// A model spec written as its text; a bad one fails naming `key`.
fn spec_from_text<'de, D: serde::Deserializer<'de>>(
    d: D,
    key: &str,
) -> Result<ModelSpec, D::Error> {
    let text = String::deserialize(d)?;
    text.parse::<ModelSpec>()
        .map_err(|e| serde::de::Error::custom(format!("{key}: {e:#}")))
}

mod teacher_spec {
    use super::ModelSpec;

    pub fn serialize<S: serde::Serializer>(spec: &ModelSpec, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(spec)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ModelSpec, D::Error> {
        super::spec_from_text(d, "teacher.model")
    }
}

mod student_spec {
    use super::ModelSpec;

    pub fn serialize<S: serde::Serializer>(spec: &ModelSpec, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(spec)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ModelSpec, D::Error> {
        super::spec_from_text(d, "student.model")
    }
}

/// Parameters of the simulated online days.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnlineConfig {
    /// The co-distilled teacher steps every this many batches (and at the end of each day).
    pub teacher_interval: u32,
    /// Replay rows per batch, as a share of the batch, at zero drift.
    pub replay_ratio: f64,
    /// Distillation weight at maximal drift (`a_min`).
    pub distill_min: f64,
    /// Distillation weight with no drift (`a_max`).
    pub distill_max: f64,
    /// Emit an `Updates` event every this many batches.
    pub updates_every: u32,
    /// After each online day, refit every arm's served intercept on the day's rows with the
    /// model that ends the day (`method::calibration`); the next day is scored with it. Off by
    /// default: a default chosen by its effect on the online days would break the rule that
    /// no default is chosen on evaluation days.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub calibrate: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            schema_version: CONFIG_SCHEMA_VERSION,
            name: None,
            seed: 7,
            threads: 2,
            data: DataConfig::default(),
            min_count: 2,
            max_memory_mb: 0,
            // Shares of the source's days (a quarter, a quarter, a half): 6 / 6 / 12 on the
            // default synthetic stream, and any source of 3 days or more fits.
            split: SplitConfig::default(),
            teacher: TeacherConfig::default(),
            student: StudentConfig::default(),
            // `retrain` leaves the default list of a run without history (see `load`).
            arms: vec![
                ArmKind::Incumbent,
                ArmKind::Scratch,
                ArmKind::Retrain,
                ArmKind::Kd,
                ArmKind::CrossAdapt(CrossAdaptVariant::FULL),
                ArmKind::CrossAdapt(CrossAdaptVariant {
                    weight: WeightRule::Fixed,
                    ..CrossAdaptVariant::FULL
                }),
            ],
            // docs/method.md's reference embedding rate (Adam, 0.1) is tuned for days of millions of
            // rows; on this benchmark's short days it made the DCN/DeepFM students' bias swing
            // from day to day and DeepFM's FM term diverge (the measurement is in docs/).
            train: TrainConfig {
                emb_lr: 0.02,
                ..TrainConfig::default()
            },
            batch_size: 1024,
            method: MethodConfig::default(),
            online: OnlineConfig::default(),
            adaptation: AdaptationConfig::default(),
            gate: GateRule::default(),
            keep_day_checkpoints: 3,
            checkpoint_min_rows: 10_000,
            per_arm: default_per_arm(),
        }
    }
}

/// The baselines' own values: the value sets `crossadapt bench suite --tune` chose for scratch
/// and kd over the retained days of every run of worlds 1-5 (pooled, docs/verdict.md), so no
/// arm runs on values chosen for another, and none was chosen on an online day. crossadapt's
/// are the session's `[train]` and `[method]`: the same pooling chose them.
fn default_per_arm() -> BTreeMap<String, ArmOverrides> {
    BTreeMap::from([
        (
            "scratch".to_string(),
            ArmOverrides {
                emb_lr: Some(0.005),
                dense_lr: Some(3e-4),
                ..ArmOverrides::default()
            },
        ),
        (
            "kd".to_string(),
            ArmOverrides {
                emb_lr: Some(0.05),
                dense_lr: Some(1e-3),
                distill_weight: Some(0.7),
                temperature: Some(2.0),
                ..ArmOverrides::default()
            },
        ),
    ])
}

/// A built-in spec (a test checks every default parses).
fn default_spec(text: &str) -> ModelSpec {
    text.parse()
        .unwrap_or_else(|e| panic!("built-in model spec `{text}` does not parse: {e:#}"))
}

impl Default for TeacherConfig {
    fn default() -> Self {
        TeacherConfig {
            model: default_spec("mlp:emb=8,hidden=64x32"),
            checkpoint: None,
            bundle: None,
            epochs: 1,
            allow_oov_jump: false,
        }
    }
}

impl Default for StudentConfig {
    fn default() -> Self {
        StudentConfig {
            model: default_spec("dcn:emb=16,hidden=128x64"),
        }
    }
}

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig {
            teacher_interval: 10,
            replay_ratio: 0.1,
            distill_min: 0.2,
            distill_max: 0.7,
            updates_every: 5,
            calibrate: false,
        }
    }
}

/// `--set` overrides of a session small enough for tests and smoke runs: 10 tiny synthetic days
/// (2 history, 3 retained, 5 online, the shock on day 6) and small models; a run takes seconds.
pub const TINY_SETS: &[&str] = &[
    "data.preset=tiny",
    "split.history=2",
    "split.retained=3",
    "split.online=5",
    "batch_size=100",
    "teacher.model=mlp:emb=4,hidden=16",
    "student.model=dcnv2:emb=8,hidden=16,cross=1",
    "online.teacher_interval=3",
    "online.updates_every=2",
    // A checkpoint after every (1,000-row) day, so resume and fork tests reach every day.
    "checkpoint_min_rows=0",
];

impl SessionConfig {
    /// The session of [`TINY_SETS`] followed by `extra` overrides.
    pub fn tiny(extra: &[&str]) -> anyhow::Result<SessionConfig> {
        let sets: Vec<String> = TINY_SETS
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        SessionConfig::load(None, &sets)
    }

    /// Reads `file` (if any), applies `--set` overrides in order, and validates the result.
    pub fn load(file: Option<&Path>, sets: &[String]) -> anyhow::Result<SessionConfig> {
        let mut doc: toml::Table = match file {
            Some(path) => {
                let text = crate::atomic::read_text_limited(path, crate::atomic::TEXT_LIMIT)
                    .with_context(|| format!("cannot read config {}", path.display()))?;
                text.parse().map_err(|e| {
                    anyhow::anyhow!(
                        "config {} is not valid TOML: {}",
                        path.display(),
                        toml_sentence(&text, &e)
                    )
                })?
            }
            None => toml::Table::new(),
        };
        for set in sets {
            apply_set(&mut doc, set)?;
        }
        let arms_given = doc.contains_key("arms");
        default_source(&mut doc);
        let doc = over_defaults(doc)?;
        let what = file.map_or("the built-in defaults".to_string(), |p| {
            p.display().to_string()
        });
        let mut cfg: SessionConfig = toml::Value::Table(doc).try_into().map_err(|e| {
            anyhow::anyhow!(
                "invalid session config ({what} with --set overrides): {}",
                toml_sentence("", &e)
            )
        })?;
        // The default arms compare against the full retraining where there is a history to
        // retrain on; a run without one (a teacher bundle, `split.history = 0`) just has no
        // such arm. Asked for by name, it is refused below.
        if !arms_given && cfg.history_gone().is_some() {
            cfg.arms.retain(|&k| k != ArmKind::Retrain);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a resolved config as stored in a session.
    pub fn from_toml(text: &str, origin: &Path) -> anyhow::Result<SessionConfig> {
        let doc: toml::Table = text.parse().map_err(|e| {
            anyhow::anyhow!(
                "config {} is not valid TOML: {}",
                origin.display(),
                toml_sentence(text, &e)
            )
        })?;
        if let Some(v) = doc.get("schema_version").and_then(|v| v.as_integer()) {
            anyhow::ensure!(
                v <= CONFIG_SCHEMA_VERSION as i64,
                "config {} has schema version {v}, newer than this crossadapt understands ({CONFIG_SCHEMA_VERSION}); upgrade crossadapt",
                origin.display()
            );
        }
        let cfg: SessionConfig = toml::Value::Table(doc).try_into().map_err(|e| {
            anyhow::anyhow!(
                "invalid session config {}: {}",
                origin.display(),
                toml_sentence(text, &e)
            )
        })?;
        cfg.validate()
            .with_context(|| format!("invalid session config {}", origin.display()))?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string_pretty(self).context("cannot serialise the session config")
    }

    /// Returns a copy with `--set` overrides applied (used by fork).
    pub fn with_sets(&self, sets: &[String]) -> anyhow::Result<SessionConfig> {
        let mut doc: toml::Table = toml::Value::try_from(self)?
            .as_table()
            .cloned()
            .context("config did not serialise to a table")?;
        for set in sets {
            apply_set(&mut doc, set)?;
        }
        let cfg: SessionConfig = toml::Value::Table(doc)
            .try_into()
            .map_err(|e| anyhow::anyhow!("invalid --set override: {}", toml_sentence("", &e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every check that does not need the data: model specs, arm names, and the range of every
    /// number of every section (`[train]`, `[method]`, `[online]`, `[adaptation]` and the top
    /// level), each error one sentence naming the key. TOML's `nan` and `inf` are refused
    /// wherever a number is expected.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.schema_version <= CONFIG_SCHEMA_VERSION,
            "schema_version {} is newer than this crossadapt understands ({CONFIG_SCHEMA_VERSION}): upgrade crossadapt",
            self.schema_version
        );
        anyhow::ensure!(
            self.keep_day_checkpoints != 1,
            "keep_day_checkpoints must be 0 (keep all) or at least 2 (a damaged newest checkpoint falls back to the one before), got 1"
        );
        anyhow::ensure!(!self.arms.is_empty(), "arms: name at least one arm");
        for (i, kind) in self.arms.iter().enumerate() {
            anyhow::ensure!(
                !self.arms[..i].contains(kind),
                "arms: `{kind}` is listed twice"
            );
        }
        count("threads", self.threads, 1, MAX_THREADS)?;
        count("batch_size", self.batch_size, 1, MAX_BATCH)?;
        anyhow::ensure!(
            self.teacher.checkpoint.is_none() || self.teacher.bundle.is_none(),
            "teacher.checkpoint and teacher.bundle are both set; give one"
        );
        count("teacher.epochs", self.teacher.epochs, 1, MAX_EPOCHS)?;
        self.split_in_range()?;
        self.validate_train()?;
        self.validate_method()?;
        self.validate_online()?;
        self.validate_adaptation()?;
        self.gate.validate()?;
        self.validate_per_arm()?;
        if let Some(why) = self.history_gone() {
            anyhow::ensure!(
                !self.arms.contains(&ArmKind::Retrain),
                "arm `retrain` retrains the student on the history, and this run has none ({why}): remove it from `arms`"
            );
        }
        Ok(())
    }

    /// Why this run has no history to retrain on, if it has none: the teacher comes as a
    /// bundle (its history stayed with whoever trained it) or `split.history` is 0 days.
    pub fn history_gone(&self) -> Option<&'static str> {
        if self.teacher.bundle.is_some() {
            Some("the teacher comes from teacher.bundle")
        } else if self.split.history == DayCount::Days(0) {
            Some("split.history = 0")
        } else {
            None
        }
    }

    /// Day counts small enough to add up without overflow (the data decides the rest).
    fn split_in_range(&self) -> anyhow::Result<()> {
        for (key, n) in [
            ("split.history", self.split.history),
            ("split.retained", self.split.retained),
            ("split.online", self.split.online),
        ] {
            match n {
                DayCount::Days(d) => count(key, d, 0, MAX_DAYS)?,
                DayCount::Fraction(f) => anyhow::ensure!(
                    f.is_finite() && f > 0.0 && f <= 1.0,
                    "{key} = {f}: a fraction of the days must be in (0, 1]"
                ),
            }
        }
        match self.split.holdout {
            Some(Holdout(DayCount::Days(d))) => count("split.holdout", d, 0, MAX_DAYS)?,
            Some(Holdout(DayCount::Fraction(f))) => anyhow::ensure!(
                f.is_finite() && f > 0.0 && f < 1.0,
                "split.holdout = {f}: a share of the days must be in (0, 1)"
            ),
            None => {}
        }
        Ok(())
    }

    fn validate_train(&self) -> anyhow::Result<()> {
        let t = &self.train;
        for (key, lr) in [("train.emb_lr", t.emb_lr), ("train.dense_lr", t.dense_lr)] {
            anyhow::ensure!(
                lr.is_finite() && lr > 0.0 && lr <= 10.0,
                "{key} must be a learning rate in (0, 10], got {lr}"
            );
        }
        count("train.threads", t.threads, 1, MAX_THREADS)?;
        count("train.predict_chunk", t.predict_chunk, 1, MAX_BATCH)?;
        for (key, b) in [
            ("train.adam.beta1", t.adam.beta1),
            ("train.adam.beta2", t.adam.beta2),
        ] {
            anyhow::ensure!((0.0..1.0).contains(&b), "{key} must be in [0, 1), got {b}");
        }
        anyhow::ensure!(
            t.adam.eps.is_finite() && t.adam.eps > 0.0 && t.adam.eps <= 1.0,
            "train.adam.eps must be in (0, 1], got {}",
            t.adam.eps
        );
        Ok(())
    }

    fn validate_method(&self) -> anyhow::Result<()> {
        let m = &self.method;
        anyhow::ensure!(
            m.temperature.is_finite() && m.temperature > 0.0 && m.temperature <= 1000.0,
            "method.temperature must be in (0, 1000], got {}",
            m.temperature
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&m.distill_weight),
            "method.distill_weight must be in [0, 1], got {}",
            m.distill_weight
        );
        crate::method::sampler::check_ratio(m.sampling_ratio).context("method.sampling_ratio")?;
        anyhow::ensure!(
            m.target_pos_rate > 0.0 && m.target_pos_rate < 1.0,
            "method.target_pos_rate must be in (0, 1), got {}",
            m.target_pos_rate
        );
        anyhow::ensure!(
            m.recency_half_life.is_finite() && m.recency_half_life > 0.0,
            "method.recency_half_life must be a positive share of the retained days, got {}",
            m.recency_half_life
        );
        count("method.epochs_dense", m.epochs_dense, 0, MAX_EPOCHS)?;
        count("method.epochs_joint", m.epochs_joint, 0, MAX_EPOCHS)?;
        count("method.baseline_epochs", m.baseline_epochs, 1, MAX_EPOCHS)?;
        Ok(())
    }

    /// Every `[per_arm.NAME]` names a student arm, and its values are in range.
    fn validate_per_arm(&self) -> anyhow::Result<()> {
        for name in self.per_arm.keys() {
            let kind = ArmKind::parse(name).with_context(|| format!("per_arm.{name}"))?;
            anyhow::ensure!(
                kind.is_student(),
                "per_arm.{name}: the incumbent is the deployed teacher; it keeps the session's settings"
            );
            let mut arm = self.clone();
            arm.per_arm.clear();
            (arm.train, arm.method) = self.for_arm(kind);
            arm.validate_train()
                .and_then(|()| arm.validate_method())
                .with_context(|| format!("per_arm.{name}"))?;
        }
        Ok(())
    }

    /// The overrides of `kind`: its own entry, or the `crossadapt` entry for an ablation.
    pub fn arm_overrides(&self, kind: ArmKind) -> Option<&ArmOverrides> {
        self.per_arm.get(&kind.to_string()).or_else(|| match kind {
            ArmKind::CrossAdapt(_) => self
                .per_arm
                .get(&ArmKind::CrossAdapt(CrossAdaptVariant::FULL).to_string()),
            _ => None,
        })
    }

    /// `[train]` and `[method]` as arm `kind` sees them: its `[per_arm]` values laid over them.
    pub fn for_arm(&self, kind: ArmKind) -> (TrainConfig, MethodConfig) {
        let (mut train, mut method) = (self.train.clone(), self.method.clone());
        if let Some(o) = self.arm_overrides(kind) {
            o.apply(&mut train, &mut method);
        }
        (train, method)
    }

    fn validate_online(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.online.updates_every >= 1,
            "online.updates_every must be at least 1"
        );
        let p = self.params();
        // The operator parameters, each under the key it has in this file.
        let keyed = [
            ("method.sampling_ratio", "sampling_ratio"),
            ("online.replay_ratio", "replay_ratio"),
            ("online.teacher_interval", "teacher_interval"),
            ("online.distill_min", "distill_min"),
            ("online.distill_max", "distill_max"),
        ];
        p.validate().map_err(|e| {
            let reason = e.reason.strip_prefix(e.field).unwrap_or(&e.reason);
            match keyed.iter().find(|(_, name)| *name == e.field) {
                Some((key, _)) => anyhow::anyhow!("{key}{reason}"),
                None => anyhow::anyhow!("online: {e}"),
            }
        })
    }

    fn validate_adaptation(&self) -> anyhow::Result<()> {
        let a = &self.adaptation;
        // A zero scale divides a signal by zero: every drift weight becomes NaN or infinite.
        for (key, v) in [
            ("adaptation.psi_scale", a.psi_scale),
            ("adaptation.label_scale", a.label_scale),
            ("adaptation.loss_scale", a.loss_scale),
        ] {
            anyhow::ensure!(
                v.is_finite() && v > 0.0,
                "{key} must be a positive number (one unit of drift), got {v}"
            );
        }
        count("adaptation.top_fields", a.top_fields, 1, MAX_FIELDS)?;
        anyhow::ensure!(
            (0.0..=1.0).contains(&a.replay_floor),
            "adaptation.replay_floor must be in [0, 1], got {}",
            a.replay_floor
        );
        count("adaptation.reference_days", a.reference_days, 1, MAX_DAYS)?;
        Ok(())
    }

    /// The operator-tunable parameters at the start of a run.
    pub fn params(&self) -> Params {
        Params {
            sampling_ratio: self.method.sampling_ratio,
            replay_ratio: self.online.replay_ratio,
            teacher_interval: self.online.teacher_interval,
            distill_min: self.online.distill_min,
            distill_max: self.online.distill_max,
        }
    }

    pub fn sampler(&self, ratio: f64, strategy: Strategy) -> SamplerConfig {
        SamplerConfig {
            strategy,
            ratio,
            batch: self.batch_size,
            target_pos_rate: self.method.target_pos_rate,
            recency_half_life: self.method.recency_half_life,
        }
    }
}

/// A short name of the data source, for session names.
pub fn source_kind(data: &DataConfig) -> &'static str {
    match data {
        DataConfig::Synthetic(_) => "synthetic",
        DataConfig::Criteo { .. } => "criteo",
        DataConfig::Avazu { .. } => "avazu",
        DataConfig::Table { .. } => "table",
    }
}

/// The first shock day of a synthetic source (None for real data, a shock-free preset or the
/// `none` drift scenario).
pub fn shock_day(data: &DataConfig) -> Option<u32> {
    match data {
        DataConfig::Synthetic(c) => c.drift_start().map(|d| d as u32),
        _ => None,
    }
}

/// Lays the given keys over the full default config, so a partial section (say only
/// `split.online`) keeps the defaults of its other keys. `[data]` is taken whole when given:
/// its `preset` chooses the starting point of every other data key.
fn over_defaults(doc: toml::Table) -> anyhow::Result<toml::Table> {
    let mut base = match toml::Value::try_from(SessionConfig::default())? {
        toml::Value::Table(t) => t,
        _ => anyhow::bail!("default config did not serialise to a table"),
    };
    for (key, value) in doc {
        if key == "data" {
            base.insert(key, value);
        } else {
            merge(&mut base, key, value);
        }
    }
    Ok(base)
}

fn merge(into: &mut toml::Table, key: String, value: toml::Value) {
    match (into.get_mut(&key), value) {
        (Some(toml::Value::Table(existing)), toml::Value::Table(new)) => {
            for (k, v) in new {
                merge(existing, k, v);
            }
        }
        (_, value) => {
            into.insert(key, value);
        }
    }
}

/// A `[data]` section without `source` describes the synthetic stream (the built-in default).
fn default_source(doc: &mut toml::Table) {
    if let Some(toml::Value::Table(data)) = doc.get_mut("data") {
        data.entry("source")
            .or_insert_with(|| toml::Value::String("synthetic".into()));
    }
}

/// Sets `a.b.c = value` in a TOML table; the value is parsed as TOML (numbers, booleans,
/// arrays, quoted strings) and taken as a bare string otherwise.
fn apply_set(doc: &mut toml::Table, set: &str) -> anyhow::Result<()> {
    let (key, raw) = set
        .split_once('=')
        .with_context(|| format!("--set `{set}`: expected KEY=VALUE"))?;
    let key = key.trim();
    anyhow::ensure!(!key.is_empty(), "--set `{set}`: empty key");
    let value = parse_value(raw.trim());
    let parts: Vec<&str> = key.split('.').collect();
    let mut table = doc;
    for part in &parts[..parts.len() - 1] {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .with_context(|| format!("--set `{set}`: `{part}` is not a section"))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_arm_values_are_laid_over_the_session_and_checked_by_arm() {
        let load = |sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            SessionConfig::load(None, &sets)
        };
        let cfg = load(&[
            "per_arm.kd.emb_lr=0.01",
            "per_arm.crossadapt.temperature=2.0",
        ])
        .unwrap();
        assert_eq!(cfg.for_arm(ArmKind::Kd).0.emb_lr, 0.01);
        // A key the set does not name keeps kd's built-in value.
        let kd = &default_per_arm()["kd"];
        assert_eq!(
            cfg.for_arm(ArmKind::Kd).1.temperature,
            kd.temperature.unwrap()
        );
        assert_ne!(kd.temperature, Some(cfg.method.temperature));
        // An arm without an entry uses the session's values.
        let mut bare = cfg.clone();
        bare.per_arm.remove("scratch");
        assert_eq!(bare.for_arm(ArmKind::Scratch).0.emb_lr, cfg.train.emb_lr);
        // An ablation without an entry of its own uses crossadapt's.
        let fixed = ArmKind::parse("crossadapt-fixed").unwrap();
        assert_eq!(cfg.for_arm(fixed).1.temperature, 2.0);
        assert_eq!(load(&[]).unwrap().per_arm, default_per_arm());
        // A session stored before the built-in entries has no `[per_arm]`: it reads back with
        // none, so it resumes on the values it ran with.
        let mut stored = cfg.clone();
        stored.per_arm.clear();
        let text = stored.to_toml().unwrap();
        assert!(!text.contains("per_arm"), "{text}");
        let back = SessionConfig::from_toml(&text, Path::new("config.toml")).unwrap();
        assert!(back.per_arm.is_empty());
        // The saved config reads back with its per-arm values.
        let text = cfg.to_toml().unwrap();
        let path = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(path.path(), text).unwrap();
        assert_eq!(SessionConfig::load(Some(path.path()), &[]).unwrap(), cfg);
        for (set, named) in [
            ("per_arm.magic.emb_lr=0.1", "per_arm.magic"),
            ("per_arm.incumbent.emb_lr=0.1", "per_arm.incumbent"),
            ("per_arm.kd.emb_lr=-1.0", "per_arm.kd"),
            ("per_arm.kd.distill_weight=1.5", "per_arm.kd"),
            ("per_arm.kd.lr=0.1", "lr"),
        ] {
            let e = format!("{:#}", load(&[set]).unwrap_err());
            assert!(e.contains(named), "{set}: {e}");
        }
    }

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let cfg = SessionConfig::default();
        cfg.validate().unwrap();
        let text = cfg.to_toml().unwrap();
        let back = SessionConfig::from_toml(&text, Path::new("config.toml")).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn sets_override_nested_fields_with_typed_values() {
        let cfg = SessionConfig::load(
            None,
            &[
                "method.sampling_ratio=0.2".into(),
                "online.teacher_interval=5".into(),
                "student.model=dcnv2:emb=16".into(),
                "arms=[\"kd\", \"crossadapt\"]".into(),
            ],
        )
        .unwrap();
        assert_eq!(cfg.method.sampling_ratio, 0.2);
        assert_eq!(cfg.online.teacher_interval, 5);
        assert_eq!(
            cfg.student.model,
            "dcnv2:emb=16".parse::<ModelSpec>().unwrap()
        );
        assert_eq!(
            cfg.arms,
            vec![ArmKind::Kd, ArmKind::CrossAdapt(CrossAdaptVariant::FULL)]
        );
    }

    #[test]
    fn bad_values_fail_with_the_key_named() {
        let err = |sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            format!("{:#}", SessionConfig::load(None, &sets).unwrap_err())
        };
        assert!(err(&["method.sampling_ratio=1.5"]).contains("sampling_ratio"));
        assert!(err(&["method.sampling_ratio=0"]).contains("sampling_ratio"));
        assert!(err(&["student.model=transformerx"]).contains("student.model"));
        assert!(err(&["arms=[\"crossadapt\", \"nonsense\"]"]).contains("nonsense"));
        assert!(err(&["methd.sampling_ratio=0.2"]).contains("methd"));
        assert!(err(&["no_equals_sign"]).contains("KEY=VALUE"));
    }

    #[test]
    fn every_section_refuses_out_of_range_and_non_finite_numbers_by_key() {
        let cases: &[(&str, &str)] = &[
            ("threads=0", "threads"),
            ("threads=100000", "threads"),
            ("batch_size=0", "batch_size"),
            ("batch_size=1000000000000", "batch_size"),
            ("teacher.epochs=0", "teacher.epochs"),
            ("split.online=9223372036854775807", "split.online"),
            ("split.history=1e308", "split.history"),
            ("split.retained=nan", "split.retained"),
            ("split.holdout=1.5", "split.holdout"),
            ("split.holdout=\"first-day\"", "split.holdout"),
            ("train.emb_lr=0", "train.emb_lr"),
            ("train.emb_lr=nan", "train.emb_lr"),
            ("train.dense_lr=inf", "train.dense_lr"),
            ("train.dense_lr=-0.1", "train.dense_lr"),
            ("train.threads=0", "train.threads"),
            ("train.predict_chunk=0", "train.predict_chunk"),
            ("train.adam.beta1=1", "train.adam.beta1"),
            ("train.adam.beta2=-0.5", "train.adam.beta2"),
            ("train.adam.eps=0", "train.adam.eps"),
            ("method.temperature=0", "method.temperature"),
            ("method.temperature=nan", "method.temperature"),
            ("method.distill_weight=nan", "method.distill_weight"),
            ("method.sampling_ratio=nan", "method.sampling_ratio"),
            ("method.target_pos_rate=1", "method.target_pos_rate"),
            ("method.recency_half_life=0", "method.recency_half_life"),
            ("method.recency_half_life=inf", "method.recency_half_life"),
            ("method.epochs_dense=100000", "method.epochs_dense"),
            ("method.baseline_epochs=0", "method.baseline_epochs"),
            ("online.replay_ratio=1.5", "online.replay_ratio"),
            ("online.replay_ratio=nan", "online.replay_ratio"),
            ("online.teacher_interval=0", "online.teacher_interval"),
            ("online.distill_min=0.9", "online.distill_min"),
            ("online.distill_max=-1", "online.distill_max"),
            ("online.updates_every=0", "online.updates_every"),
            ("adaptation.loss_scale=0", "adaptation.loss_scale"),
            ("adaptation.psi_scale=-1", "adaptation.psi_scale"),
            ("adaptation.label_scale=nan", "adaptation.label_scale"),
            ("adaptation.top_fields=0", "adaptation.top_fields"),
            ("adaptation.replay_floor=2", "adaptation.replay_floor"),
            ("adaptation.reference_days=0", "adaptation.reference_days"),
            ("adaptation.psi_scal=1", "psi_scal"),
            ("keep_day_checkpoints=1", "keep_day_checkpoints"),
        ];
        for (set, key) in cases {
            let e = SessionConfig::load(None, &[set.to_string()]).unwrap_err();
            let msg = format!("{e:#}");
            assert!(msg.contains(key), "--set {set}: {msg}");
        }
    }
}
