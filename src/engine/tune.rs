//! One validation protocol for every arm (issue 17.1): each arm's key hyperparameters chosen by
//! the same small grid, with the same number of trials, on a validation day taken from the
//! retained days only.
//!
//! The switch is replayed two days early: the last retained day is the validation day, the one
//! before it the online-step day; the teacher trains on the history and the other retained
//! days, and each trial runs the arm's own offline stage (its recipe, as a session runs it) on
//! those retained days, lives through the online-step day as a session's online day runs it
//! (test-then-train, its own online step), and is scored on the validation day by AUC, LogLoss
//! breaking near ties (`protocol::tune::choose`). A value that wins the switch but hurts the
//! days after it (kd's weight against a frozen teacher) is thus scored by both. With only two
//! retained days the online step is skipped and the switch alone is scored. The engine here is
//! built over that shortened plan, so no online day is ever read: the online days are the test
//! and choose nothing, defaults included.
//!
//! An optional second stage (`TuneBudget::online_days`) chooses the session-wide online values
//! every crossadapt arm shares (the teacher interval, the replay ratio, the bounds of the online
//! distillation weight, the drift reference window), which one validation day cannot score: the
//! switch is replayed `online_days` days earlier still, and each trial streams those retained
//! days test-then-train after it and is scored by its mean over them.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{ArmOverrides, SessionConfig};
use super::run::{online_stage_fits, Engine, EngineIo, Prepared};
use crate::method::seeds::{arm_key, derive};
use crate::method::Arm;
use crate::protocol::tune::{choose, ArmTuning, OnlineTuning, TuneTrial, Tuning, ONLINE_TUNING};
use crate::protocol::{ArmKind, CrossAdaptVariant};
use crate::train::metrics;

impl Engine {
    /// `arm`, just out of its offline stage, through the validation plan's online-step day (the
    /// first of its online days) as a session's online day runs it, alone: test-then-train
    /// with its own online step. The engine is left as before (no arm, no drift window), so
    /// every trial starts from the same state. A failure of the arm on the day is recorded in
    /// its state, as a session records it.
    pub(crate) fn validation_online_step(&mut self, arm: Arm) -> anyhow::Result<Arm> {
        self.arms_mut().push(arm);
        let result = self.online_day(0, 0);
        self.drift_window_mut().clear();
        let arm = self.arms_mut().pop().context("the trial's arm is gone")?;
        result.map(|()| arm)
    }

    /// `arm`, just out of its offline stage, through every online day of the plan as a
    /// session's online days run them, alone, with each day's test metrics (scored before the
    /// arm trains on it, as the session scores it; a failed arm stops the stream). The engine
    /// is left as before (no arm, no drift window).
    pub(crate) fn validation_stream(
        &mut self,
        arm: Arm,
    ) -> anyhow::Result<(Arm, Vec<metrics::EvalMetrics>)> {
        let user = self.features().user_index();
        let mut days = Vec::new();
        self.arms_mut().push(arm);
        let mut result = Ok(());
        for index in 0..self.plan().online.len() {
            let d = self.plan().online[index];
            if self.arms()[0].state.failed.is_some() {
                break;
            }
            // An error leaves the engine as it found it too (the arm popped, no window).
            let scored = self.day(d).and_then(|day| {
                let arm = &self.arms()[0];
                let served = arm.served(arm.student.predict_logits(&day)?);
                Ok(metrics::evaluate(&served, &day, user))
            });
            result = scored.and_then(|m| {
                days.push(m);
                self.online_day(index, 0)
            });
            if result.is_err() {
                break;
            }
        }
        self.drift_window_mut().clear();
        let arm = self.arms_mut().pop().context("the trial's arm is gone")?;
        result.map(|()| (arm, days))
    }
}

/// How much the protocol runs: the trials per arm (and for the online values), and how many
/// retained days its online stage streams (0: no online stage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TuneBudget {
    pub trials: usize,
    pub online_days: usize,
}

impl TuneBudget {
    /// `trials` per arm, without the online stage.
    pub fn trials(trials: usize) -> TuneBudget {
        TuneBudget {
            trials,
            online_days: 0,
        }
    }
}

/// Part of every [`tune_key`]: a tuning recorded by an earlier version of the protocol is not
/// taken for this one's. 2: the vocabulary is fitted without the days after the replayed
/// switch.
const PROTOCOL_VERSION: u32 = 2;

/// Trials per arm unless told otherwise.
pub const DEFAULT_TRIALS: usize = 8;

/// The grid: every arm's learning rates; kd's and crossadapt's distillation weight and
/// temperature; crossadapt's sampling ratio and 1C passes. Centred on the session defaults
/// (0.02, 1e-3, 0.7, 4, 0.1, 1), a step or two either way.
const EMB_LR: &[f64] = &[0.005, 0.01, 0.02, 0.05, 0.1];
const DENSE_LR: &[f64] = &[3e-4, 1e-3, 3e-3];
const DISTILL_WEIGHT: &[f64] = &[0.3, 0.5, 0.7, 0.9];
const TEMPERATURE: &[f64] = &[1.0, 2.0, 4.0, 8.0];
const SAMPLING_RATIO: &[f64] = &[0.05, 0.1, 0.2, 0.4];
const EPOCHS_JOINT: &[f64] = &[1.0, 2.0];

/// The online stage's grid: the values every crossadapt arm shares after the switch, centred
/// on the session defaults (10, 0.1, 0.2, 0.7, 6), a step or two either way. `distill_min`
/// stays below every `distill_max`. The reference window is as long as the days before the
/// streamed day allow, so in the stage (few days before it) the longest values act alike.
const TEACHER_INTERVAL: &[f64] = &[3.0, 10.0, 30.0, 100.0];
const REPLAY_RATIO: &[f64] = &[0.0, 0.05, 0.1, 0.2];
const DISTILL_MIN: &[f64] = &[0.0, 0.2, 0.4];
const DISTILL_MAX: &[f64] = &[0.5, 0.7, 0.9];
const REFERENCE_DAYS: &[f64] = &[1.0, 3.0, 6.0];

fn online_keys() -> Vec<(&'static str, &'static [f64])> {
    vec![
        ("teacher_interval", TEACHER_INTERVAL),
        ("replay_ratio", REPLAY_RATIO),
        ("distill_min", DISTILL_MIN),
        ("distill_max", DISTILL_MAX),
        ("reference_days", REFERENCE_DAYS),
    ]
}

/// The session's own value of an online key.
fn online_value(cfg: &SessionConfig, key: &str) -> f64 {
    match key {
        "teacher_interval" => f64::from(cfg.online.teacher_interval),
        "replay_ratio" => cfg.online.replay_ratio,
        "distill_min" => cfg.online.distill_min,
        "distill_max" => cfg.online.distill_max,
        _ => cfg.adaptation.reference_days as f64,
    }
}

/// `cfg` with the online stage's `values` (`[online]` and `[adaptation]` keys).
pub fn apply_online(cfg: &mut SessionConfig, values: &BTreeMap<String, f64>) {
    for (key, &v) in values {
        match key.as_str() {
            "teacher_interval" => cfg.online.teacher_interval = v as u32,
            "replay_ratio" => cfg.online.replay_ratio = v,
            "distill_min" => cfg.online.distill_min = v,
            "distill_max" => cfg.online.distill_max = v,
            "reference_days" => cfg.adaptation.reference_days = v as usize,
            _ => {}
        }
    }
}

/// The `trials` value sets of the online stage: the session's own first, then grid points
/// drawn as [`trial_values`] draws them, from a stream of their own.
pub fn online_trial_values(cfg: &SessionConfig, trials: usize) -> Vec<BTreeMap<String, f64>> {
    let keys = online_keys();
    let own = keys
        .iter()
        .map(|(k, _)| (k.to_string(), online_value(cfg, k)))
        .collect();
    draw_sets(cfg.seed, ONLINE_TUNING, &keys, own, trials)
}

/// The arm whose values a session arm uses: crossadapt's ablations share the full method's.
pub fn tuned_arm(kind: ArmKind) -> Option<ArmKind> {
    match kind {
        ArmKind::Incumbent => None,
        ArmKind::CrossAdapt(_) => Some(ArmKind::CrossAdapt(CrossAdaptVariant::FULL)),
        // retrain is tuned as itself, on the history and the retained days before the
        // validation day: scratch's values, chosen on six retained days, are not what twelve
        // days want, and one procedure for every arm is the protocol's point. Each of its
        // trials trains on the history: the cost it stands for, paid once per trial.
        other => Some(other),
    }
}

/// The keys tuned for `kind` and their grid values.
fn grid_keys(kind: ArmKind) -> Vec<(&'static str, &'static [f64])> {
    let mut keys = vec![("emb_lr", EMB_LR), ("dense_lr", DENSE_LR)];
    if matches!(kind, ArmKind::Kd | ArmKind::CrossAdapt(_)) {
        keys.push(("distill_weight", DISTILL_WEIGHT));
        keys.push(("temperature", TEMPERATURE));
    }
    if matches!(kind, ArmKind::CrossAdapt(_)) {
        keys.push(("sampling_ratio", SAMPLING_RATIO));
        keys.push(("epochs_joint", EPOCHS_JOINT));
    }
    keys
}

/// The session's own value of `key` for `kind`.
fn session_value(cfg: &SessionConfig, kind: ArmKind, key: &str) -> f64 {
    let (train, method) = cfg.for_arm(kind);
    match key {
        "emb_lr" => train.emb_lr,
        "dense_lr" => train.dense_lr,
        "distill_weight" => method.distill_weight,
        "temperature" => method.temperature,
        "sampling_ratio" => method.sampling_ratio,
        _ => method.epochs_joint as f64,
    }
}

/// The `trials` value sets of `kind`: the session's own values first, then grid points drawn
/// without replacement by a stream of the seed and the arm's name (the same for every run of
/// the seed). Fewer when the grid is smaller.
pub fn trial_values(
    cfg: &SessionConfig,
    kind: ArmKind,
    trials: usize,
) -> Vec<BTreeMap<String, f64>> {
    let keys = grid_keys(kind);
    let own: BTreeMap<String, f64> = keys
        .iter()
        .map(|(k, _)| (k.to_string(), session_value(cfg, kind, k)))
        .collect();
    draw_sets(cfg.seed, &kind.to_string(), &keys, own, trials)
}

/// `own` first, then points of the grid `keys` drawn without replacement by a stream of
/// `seed` and `stream`, `trials` sets in all (fewer when the grid is smaller).
fn draw_sets(
    seed: u64,
    stream: &str,
    keys: &[(&str, &[f64])],
    own: BTreeMap<String, f64>,
    trials: usize,
) -> Vec<BTreeMap<String, f64>> {
    let size: usize = keys.iter().map(|(_, v)| v.len()).product();
    let point = |mut index: usize| -> BTreeMap<String, f64> {
        keys.iter()
            .map(|(k, values)| {
                let v = values[index % values.len()];
                index /= values.len();
                (k.to_string(), v)
            })
            .collect()
    };
    let mut order: Vec<usize> = (0..size).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(derive(seed, "tune", arm_key(stream), 0));
    let mut out = vec![own];
    let mut next = 0;
    while out.len() < trials && next < size {
        let j = rng.random_range(next..size);
        order.swap(next, j);
        let p = point(order[next]);
        next += 1;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// `values` as a `per_arm` entry.
pub fn overrides(values: &BTreeMap<String, f64>) -> ArmOverrides {
    ArmOverrides {
        emb_lr: values.get("emb_lr").copied(),
        dense_lr: values.get("dense_lr").copied(),
        distill_weight: values.get("distill_weight").copied(),
        temperature: values.get("temperature").copied(),
        sampling_ratio: values.get("sampling_ratio").copied(),
        epochs_joint: values.get("epochs_joint").map(|&e| e as usize),
    }
}

/// The protocol's outcome: the record and the `per_arm` values it chose (the online values it
/// chose are the record's).
pub struct TuneOutcome {
    pub tuning: Tuning,
    pub per_arm: BTreeMap<String, ArmOverrides>,
}

impl TuneOutcome {
    /// The outcome a record stands for under `cfg`: each tuned arm's chosen values; the arms
    /// the protocol did not tune keep whatever the config gave them.
    pub fn of_record(cfg: &SessionConfig, tuning: Tuning) -> TuneOutcome {
        let mut per_arm = cfg.per_arm.clone();
        for arm in &tuning.arms {
            if let Some(chosen) = arm.choice() {
                per_arm.insert(arm.arm.clone(), overrides(&chosen.values));
            }
        }
        TuneOutcome { tuning, per_arm }
    }

    /// `cfg` with the chosen values: `per_arm`, and the online stage's `[online]` and
    /// `[adaptation]` values.
    pub fn apply(&self, cfg: SessionConfig) -> SessionConfig {
        let mut cfg = SessionConfig {
            per_arm: self.per_arm.clone(),
            ..cfg
        };
        let online = self.tuning.online.as_ref().and_then(|o| o.tuning.choice());
        if let Some(chosen) = online {
            apply_online(&mut cfg, &chosen.values);
        }
        cfg
    }
}

/// A digest of everything the protocol's outcome depends on: the config with the synthetic
/// stream's drift scenario left out, the trial budget, and the rows of every day the protocol
/// reads (the history and the retained days, the validation day among them). Two configs with
/// the same key tune to the same record, so a caller may run the protocol once for both: the
/// suite's drift scenarios differ only after the shock, which in the default split falls on an
/// online day, so their retained days (and their tunings) are the same. The rows are hashed,
/// not the scenario's promise, so a scenario whose drift reaches the retained days (the
/// background drift of `shock` and `gradual`) gets a key of its own.
pub fn tune_key(cfg: &SessionConfig, budget: TuneBudget) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut canonical = cfg.clone();
    if let crate::data::DataConfig::Synthetic(s) = &mut canonical.data {
        let default = crate::data::synth::SynthConfig::default();
        s.drift = default.drift;
        s.drift_days = default.drift_days;
    }
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&canonical).context("cannot encode the config")?);
    h.update(PROTOCOL_VERSION.to_le_bytes());
    h.update((budget.trials as u64).to_le_bytes());
    if budget.online_days > 0 {
        h.update(b"online");
        h.update((budget.online_days as u64).to_le_bytes());
    }
    let source = cfg.data.open().context("cannot open the data source")?;
    let plan = cfg
        .split
        .resolve(source.num_days())
        .with_context(|| format!("cannot split {}", source.describe()))?;
    for &day in plan.history.iter().chain(&plan.retained) {
        h.update(u64::from(day).to_le_bytes());
        let mut rows = 0u64;
        source.day_chunks(day as usize, &mut |chunk| {
            rows += chunk.rows() as u64;
            for k in &chunk.cat {
                h.update(k.to_le_bytes());
            }
            for x in chunk.num.iter().chain(&chunk.label) {
                h.update(x.to_bits().to_le_bytes());
            }
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
        h.update(rows.to_le_bytes());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs the protocol for every student arm of `cfg` (once per tuned arm: crossadapt's
/// ablations share crossadapt's values), `trials` trials each. `on_trial` sees each trial as
/// it ends. Deterministic given the config's seeds.
pub fn tune(
    cfg: &SessionConfig,
    budget: TuneBudget,
    on_trial: &mut dyn FnMut(&str, usize, usize, &TuneTrial),
) -> anyhow::Result<TuneOutcome> {
    let trials = budget.trials;
    anyhow::ensure!(trials >= 1, "tune needs at least one trial per arm");
    let prepared = Prepared::for_validation(cfg)?;
    if budget.online_days > 0 {
        // Checked before the first stage's trials, which take a while.
        anyhow::ensure!(
            cfg.arms.iter().any(|k| matches!(k, ArmKind::CrossAdapt(_))),
            "the online stage of tune chooses the values crossadapt's arms share after the switch, and the session has no crossadapt arm"
        );
        // The validation plan holds the session's retained days, some of them moved after
        // the switch.
        let p = prepared.plan();
        online_stage_fits(budget.online_days, p.retained.len() + p.online.len())?;
    }
    let plan = prepared.plan().clone();
    let validation_day = *plan.online.last().context("no validation day")?;
    let online_day = (plan.online.len() == 2).then(|| plan.online[0]);
    let mut engine = Engine::start(cfg.clone(), prepared, "tune", "tune", EngineIo::default())?;
    let (teacher, seconds) = engine.prepare_teacher()?;
    engine.install_teacher(teacher, seconds);
    engine.check_teacher()?;
    let validation = engine.day(validation_day)?;
    let user = engine.features().user_index();
    let mut kinds: Vec<ArmKind> = Vec::new();
    for kind in cfg.arms.iter().filter_map(|&k| tuned_arm(k)) {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let mut arms = Vec::new();
    for kind in kinds {
        let name = kind.to_string();
        let sets = trial_values(cfg, kind, trials);
        let mut scored = Vec::new();
        for (i, values) in sets.iter().enumerate() {
            let started = Instant::now();
            let mut own = cfg.per_arm.clone();
            own.insert(name.clone(), overrides(values));
            engine.set_per_arm(own);
            let mut arm = engine
                .offline_arm(kind)
                .with_context(|| format!("tuning {name}, trial {}", i + 1))?;
            if online_day.is_some() && arm.state.failed.is_none() {
                arm = engine
                    .validation_online_step(arm)
                    .with_context(|| format!("tuning {name}, trial {}", i + 1))?;
            }
            let trial = match &arm.state.failed {
                Some(why) => TuneTrial {
                    values: values.clone(),
                    auc: None,
                    logloss: f64::NAN,
                    seconds: started.elapsed().as_secs_f64(),
                    failed: Some(why.clone()),
                },
                None => {
                    let m = metrics::evaluate(
                        &arm.student.predict_logits(&validation)?,
                        &validation,
                        user,
                    );
                    TuneTrial {
                        values: values.clone(),
                        auc: m.auc,
                        logloss: m.logloss,
                        seconds: started.elapsed().as_secs_f64(),
                        failed: None,
                    }
                }
            };
            on_trial(&name, i, sets.len(), &trial);
            scored.push(trial);
        }
        let chosen = choose(&scored).unwrap_or(0);
        arms.push(ArmTuning {
            arm: name,
            trials: scored,
            chosen,
        });
    }
    let mut tuning = Tuning {
        train_days: plan.retained.clone(),
        validation_day,
        online_day,
        arms,
        online: None,
    };
    if budget.online_days > 0 {
        drop(engine);
        let chosen = TuneOutcome::of_record(cfg, tuning.clone()).apply(cfg.clone());
        tuning.online = Some(tune_online(&chosen, budget, on_trial)?);
    }
    Ok(TuneOutcome::of_record(cfg, tuning))
}

/// The online stage: crossadapt, with the values of `cfg` (the first stage's choice laid
/// over the session's), switched on the retained days before the last `online_days` and
/// streamed through those, once per value set of the session-wide online values; each trial
/// is scored by its mean test AUC over the streamed days (LogLoss breaking near ties).
fn tune_online(
    cfg: &SessionConfig,
    budget: TuneBudget,
    on_trial: &mut dyn FnMut(&str, usize, usize, &TuneTrial),
) -> anyhow::Result<OnlineTuning> {
    let kind = ArmKind::CrossAdapt(CrossAdaptVariant::FULL);
    let prepared = Prepared::for_online_validation(cfg, budget.online_days)?;
    let plan = prepared.plan().clone();
    let mut engine = Engine::start(cfg.clone(), prepared, "tune", "tune", EngineIo::default())?;
    let (teacher, seconds) = engine.prepare_teacher()?;
    engine.install_teacher(teacher, seconds);
    engine.check_teacher()?;
    let sets = online_trial_values(cfg, budget.trials);
    let mut scored = Vec::new();
    for (i, values) in sets.iter().enumerate() {
        let started = Instant::now();
        let context = || format!("tuning the online values, trial {}", i + 1);
        let mut trial_cfg = cfg.clone();
        apply_online(&mut trial_cfg, values);
        trial_cfg.validate().with_context(context)?;
        engine.set_online_values(&trial_cfg);
        let arm = engine.offline_arm(kind).with_context(context)?;
        let (arm, days) = engine.validation_stream(arm).with_context(context)?;
        let seconds = started.elapsed().as_secs_f64();
        let trial = match &arm.state.failed {
            Some(why) => TuneTrial {
                values: values.clone(),
                auc: None,
                logloss: f64::NAN,
                seconds,
                failed: Some(why.clone()),
            },
            None => {
                let n = days.len().max(1) as f64;
                let auc: Option<Vec<f64>> = days.iter().map(|m| m.auc).collect();
                TuneTrial {
                    values: values.clone(),
                    auc: auc.map(|a| a.iter().sum::<f64>() / n),
                    logloss: days.iter().map(|m| m.logloss).sum::<f64>() / n,
                    seconds,
                    failed: None,
                }
            }
        };
        on_trial(ONLINE_TUNING, i, sets.len(), &trial);
        scored.push(trial);
    }
    let chosen = choose(&scored).unwrap_or(0);
    Ok(OnlineTuning {
        train_days: plan.retained.clone(),
        days: plan.online.clone(),
        tuning: ArmTuning {
            arm: ONLINE_TUNING.to_string(),
            trials: scored,
            chosen,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The online-step day trains the trial's arm (its validation score moves), leaves the
    /// engine as it found it, and gives the same arm twice from the same start.
    #[test]
    fn the_online_step_trains_the_arm_and_leaves_the_engine_as_it_was() {
        let cfg = SessionConfig::tiny(&[]).unwrap();
        let prepared = Prepared::for_validation(&cfg).unwrap();
        assert_eq!(prepared.plan().online, vec![3, 4]);
        let mut engine = Engine::start(cfg, prepared, "t", "t", EngineIo::default()).unwrap();
        let (teacher, seconds) = engine.prepare_teacher().unwrap();
        engine.install_teacher(teacher, seconds);
        let validation = engine.day(4).unwrap();
        let score = |arm: &Arm| arm.student.predict_logits(&validation).unwrap();
        for kind in [ArmKind::Kd, ArmKind::CrossAdapt(CrossAdaptVariant::FULL)] {
            let switched = engine.offline_arm(kind).unwrap();
            let before = score(&switched);
            let stepped = engine.validation_online_step(switched).unwrap();
            assert!(stepped.state.failed.is_none(), "{kind}");
            assert_ne!(score(&stepped), before, "{kind}: the online day trained it");
            assert!(engine.arms().is_empty() && engine.drift_window_mut().is_empty());
            let again = engine.offline_arm(kind).unwrap();
            let again = engine.validation_online_step(again).unwrap();
            assert_eq!(
                score(&again),
                score(&stepped),
                "{kind}: same start, same arm"
            );
        }
    }

    /// The key sees the retained days' rows, not the scenario's name: the isolating scenarios
    /// shift after the retained days and share a key, and their tunings are the same record;
    /// the background drift of `shock` changes the retained days and the key; so do the
    /// budget and the world.
    #[test]
    fn the_tune_key_is_shared_exactly_when_the_protocol_reads_the_same_days() {
        let cfg = |extra: &[&str]| SessionConfig::tiny(extra).unwrap();
        let key = |c: &SessionConfig, trials| tune_key(c, TuneBudget::trials(trials)).unwrap();
        let none = cfg(&["data.drift=\"none\""]);
        let label = cfg(&["data.drift=\"label\""]);
        assert_eq!(key(&none, 2), key(&label, 2));
        assert_eq!(key(&none, 2), key(&cfg(&["data.drift=\"concept\""]), 2));
        assert_ne!(key(&none, 2), key(&cfg(&["data.drift=\"shock\""]), 2));
        assert_ne!(key(&none, 2), key(&none, 3));
        assert_ne!(
            key(&none, 2),
            key(&cfg(&["data.drift=\"none\"", "data.seed=9"]), 2)
        );
        assert_ne!(
            key(&none, 2),
            key(&cfg(&["data.drift=\"none\"", "seed=9"]), 2)
        );
        // A shock early enough to reach the retained days separates the scenarios again.
        let early = |d: &str| cfg(&[&format!("data.drift=\"{d}\""), "data.shock_day=3"]);
        assert_ne!(key(&early("none"), 2), key(&early("label"), 2));

        // Each arm's choice and its trials' scores (their wall times differ).
        type Scores = Vec<(usize, Vec<(Option<f64>, u64)>)>;
        let scores = |c: &SessionConfig| -> Scores {
            let outcome = tune(c, TuneBudget::trials(2), &mut |_, _, _, _| {}).unwrap();
            outcome
                .tuning
                .arms
                .iter()
                .map(|a| {
                    let t = a.trials.iter().map(|t| (t.auc, t.logloss.to_bits()));
                    (a.chosen, t.collect())
                })
                .collect()
        };
        assert_eq!(scores(&none), scores(&label), "same key, same tuning");
    }

    #[test]
    fn trials_start_with_the_session_values_and_are_distinct_and_seeded() {
        let cfg = SessionConfig::default();
        let kd = ArmKind::Kd;
        let a = trial_values(&cfg, kd, 8);
        assert_eq!(a.len(), 8);
        let (train, method) = cfg.for_arm(kd);
        assert_eq!(a[0]["emb_lr"], train.emb_lr);
        assert_eq!(a[0]["distill_weight"], method.distill_weight);
        assert_eq!(a[0].len(), 4, "kd tunes 4 keys");
        for (i, x) in a.iter().enumerate() {
            assert!(!a[..i].contains(x), "trial {i} repeats");
        }
        assert_eq!(a, trial_values(&cfg, kd, 8), "same seed, same trials");
        let other = SessionConfig {
            seed: cfg.seed + 1,
            ..cfg.clone()
        };
        assert_ne!(a, trial_values(&other, kd, 8));
        // Every arm gets the same budget; the grid of crossadapt has its 6 keys.
        let ca = ArmKind::CrossAdapt(CrossAdaptVariant::FULL);
        assert_eq!(trial_values(&cfg, ca, 8).len(), 8);
        assert_eq!(trial_values(&cfg, ca, 8)[0].len(), 6);
        assert_eq!(trial_values(&cfg, ArmKind::Scratch, 8)[0].len(), 2);
        // A budget above the grid's size stops at the grid.
        assert_eq!(trial_values(&cfg, ArmKind::Scratch, 100).len(), 15);
    }

    /// The online stage's sets: the session's own first, distinct, seeded, valid (the weight
    /// at maximal drift never above the one without drift), and applied to every key.
    #[test]
    fn online_trials_start_with_the_session_values_and_apply_to_the_config() {
        let cfg = SessionConfig::default();
        let sets = online_trial_values(&cfg, 8);
        assert_eq!(sets.len(), 8);
        assert_eq!(sets[0]["teacher_interval"], 10.0);
        assert_eq!(sets[0]["replay_ratio"], cfg.online.replay_ratio);
        assert_eq!(sets[0]["reference_days"], 6.0);
        for (i, x) in sets.iter().enumerate() {
            assert!(!sets[..i].contains(x), "trial {i} repeats");
            assert!(x["distill_min"] <= x["distill_max"], "{x:?}");
            let mut c = cfg.clone();
            apply_online(&mut c, x);
            c.validate().expect("every set is a valid session");
            let back: BTreeMap<String, f64> = online_keys()
                .iter()
                .map(|(k, _)| (k.to_string(), online_value(&c, k)))
                .collect();
            assert_eq!(&back, x, "every key lands in the config");
        }
        assert_eq!(sets, online_trial_values(&cfg, 8), "same seed, same sets");
        let other = SessionConfig {
            seed: cfg.seed + 1,
            ..cfg.clone()
        };
        assert_ne!(sets, online_trial_values(&other, 8));
    }
}
