//! The session config: a TOML file where every field has a default, plus `--set key=value`
//! overrides. Unknown keys are errors that name the key.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::data::config::DataConfig;
use crate::data::split::{DayCount, SplitConfig};
use crate::engine::arms::ArmKind;
use crate::engine::events::Params;
use crate::method::adaptation::AdaptationConfig;
use crate::method::sampler::{SamplerConfig, Strategy};
use crate::model::ModelSpec;
use crate::train::TrainConfig;

/// Version of the config schema; written into every session's `config.toml`.
pub const CONFIG_SCHEMA_VERSION: u32 = 1;

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
    pub split: SplitConfig,
    pub teacher: TeacherConfig,
    pub student: StudentConfig,
    /// Arms, by name: incumbent, scratch, kd, crossadapt and its ablations.
    pub arms: Vec<String>,
    pub train: TrainConfig,
    /// Rows per training batch everywhere.
    pub batch_size: usize,
    pub method: MethodConfig,
    pub online: OnlineConfig,
    pub adaptation: AdaptationConfig,
    /// Day checkpoints to keep on disk, newest first (0 = every day, so `fork --from-day` can
    /// start anywhere). A default run writes 84 MB a day; at least 2 when set, so a damaged
    /// newest checkpoint can still fall back to the one before.
    pub keep_day_checkpoints: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeacherConfig {
    /// The deployed architecture.
    pub model: String,
    /// Load this trainer checkpoint instead of training on the history days.
    pub checkpoint: Option<PathBuf>,
    /// Load the teacher from this bundle (docs/bundles.md) instead of training it: its model
    /// replaces `model`, its vocabulary encodes every day, and history may be 0 days.
    pub bundle: Option<PathBuf>,
    /// Passes over the history days.
    pub epochs: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudentConfig {
    /// The new architecture.
    pub model: String,
}

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
    /// One 1C pass by default: over four seeds (README, "Across seeds") a second pass bought
    /// nothing measurable (offline AUC above kd's and online AUC above the fixed-weight ablation
    /// in 4 of 4 either way) for 0.33-0.34x scratch's offline time instead of 0.13-0.24x.
    pub epochs_joint: usize,
    /// Add the sampler's exact log-odds shift to the student's logit in the label loss, so the
    /// shifted base rate of biased samples does not bias predictions.
    pub logit_correction: bool,
    /// Passes of scratch and kd over all retained days.
    pub baseline_epochs: usize,
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
            split: SplitConfig {
                history: DayCount::Days(6),
                retained: DayCount::Days(6),
                online: DayCount::Days(12),
            },
            teacher: TeacherConfig::default(),
            student: StudentConfig::default(),
            arms: [
                "incumbent",
                "scratch",
                "kd",
                "crossadapt",
                "crossadapt-fixed",
            ]
            .map(String::from)
            .to_vec(),
            // METHOD.md's reference embedding rate (Adam, 0.1) is tuned for days of millions of
            // rows; on this benchmark's 20-batch days it made every DCN/DeepFM student's bias
            // swing by +-0.5 from day to day and DeepFM's FM term diverge (measured: README).
            train: TrainConfig {
                emb_lr: 0.02,
                ..TrainConfig::default()
            },
            batch_size: 1024,
            method: MethodConfig::default(),
            online: OnlineConfig::default(),
            adaptation: AdaptationConfig::default(),
            keep_day_checkpoints: 0,
        }
    }
}

impl Default for TeacherConfig {
    fn default() -> Self {
        TeacherConfig {
            model: "mlp:emb=8,hidden=64x32".into(),
            checkpoint: None,
            bundle: None,
            epochs: 1,
        }
    }
}

impl Default for StudentConfig {
    fn default() -> Self {
        StudentConfig {
            model: "dcn:emb=16,hidden=128x64".into(),
        }
    }
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

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig {
            teacher_interval: 10,
            replay_ratio: 0.1,
            distill_min: 0.2,
            distill_max: 0.7,
            updates_every: 5,
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
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config {}", path.display()))?;
                text.parse()
                    .with_context(|| format!("config {} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        for set in sets {
            apply_set(&mut doc, set)?;
        }
        default_source(&mut doc);
        let doc = over_defaults(doc)?;
        let what = file.map_or("the built-in defaults".to_string(), |p| {
            p.display().to_string()
        });
        let cfg: SessionConfig = toml::Value::Table(doc)
            .try_into()
            .with_context(|| format!("invalid session config ({what} with --set overrides)"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a resolved config as stored in a session.
    pub fn from_toml(text: &str, origin: &Path) -> anyhow::Result<SessionConfig> {
        let doc: toml::Table = text
            .parse()
            .with_context(|| format!("config {} is not valid TOML", origin.display()))?;
        if let Some(v) = doc.get("schema_version").and_then(|v| v.as_integer()) {
            anyhow::ensure!(
                v <= CONFIG_SCHEMA_VERSION as i64,
                "config {} has schema version {v}, newer than this crossadapt understands ({CONFIG_SCHEMA_VERSION}); upgrade crossadapt",
                origin.display()
            );
        }
        let cfg: SessionConfig = toml::Value::Table(doc)
            .try_into()
            .with_context(|| format!("invalid session config {}", origin.display()))?;
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
            .context("invalid --set override")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every check that does not need the data: model specs, arm names, ranges.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.schema_version <= CONFIG_SCHEMA_VERSION,
            "config schema version {} is newer than this crossadapt understands ({CONFIG_SCHEMA_VERSION})",
            self.schema_version
        );
        anyhow::ensure!(
            self.keep_day_checkpoints != 1,
            "keep_day_checkpoints must be 0 (keep all) or at least 2 (a damaged newest checkpoint falls back to the one before), got 1"
        );
        self.teacher
            .model
            .parse::<ModelSpec>()
            .context("teacher.model")?;
        self.student
            .model
            .parse::<ModelSpec>()
            .context("student.model")?;
        anyhow::ensure!(!self.arms.is_empty(), "arms: name at least one arm");
        for (i, name) in self.arms.iter().enumerate() {
            ArmKind::parse(name).with_context(|| format!("arms[{i}]"))?;
            anyhow::ensure!(
                !self.arms[..i].contains(name),
                "arms: `{name}` is listed twice"
            );
        }
        anyhow::ensure!(self.threads >= 1, "threads must be at least 1");
        anyhow::ensure!(self.batch_size >= 1, "batch_size must be at least 1");
        anyhow::ensure!(
            self.teacher.checkpoint.is_none() || self.teacher.bundle.is_none(),
            "teacher.checkpoint and teacher.bundle are both set; give one"
        );
        anyhow::ensure!(
            self.teacher.epochs >= 1,
            "teacher.epochs must be at least 1"
        );
        anyhow::ensure!(
            self.method.temperature > 0.0,
            "method.temperature must be positive, got {}",
            self.method.temperature
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.method.distill_weight),
            "method.distill_weight must be in [0, 1], got {}",
            self.method.distill_weight
        );
        crate::method::sampler::check_ratio(self.method.sampling_ratio)
            .context("method.sampling_ratio")?;
        anyhow::ensure!(
            self.method.target_pos_rate > 0.0 && self.method.target_pos_rate < 1.0,
            "method.target_pos_rate must be in (0, 1), got {}",
            self.method.target_pos_rate
        );
        anyhow::ensure!(
            self.online.updates_every >= 1,
            "online.updates_every must be at least 1"
        );
        self.params()
            .validate()
            .map_err(|e| anyhow::anyhow!("online: {e}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(cfg.student.model, "dcnv2:emb=16");
        assert_eq!(cfg.arms, vec!["kd", "crossadapt"]);
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
}
