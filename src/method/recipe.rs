//! What each arm does, stage by stage and batch by batch: the recipes of incumbent, scratch,
//! kd and crossadapt with its ablations, behind one [`Recipe`] trait.
//!
//! A recipe is the method; the engine is the schedule. The engine decides when an arm runs,
//! polls operator commands, checkpoints and numbers the records; it reaches a recipe through
//! [`Recipe::build`], [`Recipe::offline`], [`Recipe::begin_day`] and [`Recipe::online_batch`],
//! and a recipe reaches back through the narrow [`Host`] interface (the data, the shared
//! teacher, the operator parameters, the record stream). Nothing here knows the engine's type,
//! so the method can be read, and tested, on its own.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::adaptation::{
    distill_weight, drift_weight, replay_ratio, AdaptationConfig, DriftSignals,
};
use super::arm::{clone_trainer, matched_weight, record_rule_weight, Arm};
use super::config::MethodConfig;
use super::drift::{draw_replay, DayDrift, DRIFT_FIELDS_SHOWN};
use super::projection::project_table;
use super::sampler::{SamplerConfig, StrategicSampler, Strategy};
use super::seeds::{arm_key, derive};
use crate::data::pool::Pool;
use crate::data::{Batch, FeatureSpec};
use crate::model::ModelSpec;
use crate::protocol::{
    ArmKind, CrossAdaptVariant, EngineEvent, FieldProjection, Params, Position, Stage, WeightRule,
};
use crate::train::{metrics, Target, TrainConfig, Trainer};

/// The run's fixed settings a recipe reads.
#[derive(Clone, Copy)]
pub struct Settings<'a> {
    pub seed: u64,
    pub batch_size: usize,
    pub method: &'a MethodConfig,
    pub adaptation: &'a AdaptationConfig,
    pub train: &'a TrainConfig,
    /// The arm's own 1B/1C sampling ratio (`per_arm`), which operator changes do not move;
    /// `None`: the operator's `sampling_ratio`.
    pub sampling_ratio: Option<f64>,
}

/// What a recipe asks of the engine that runs it.
pub trait Host {
    fn settings(&self) -> Settings<'_>;
    /// The settings as arm `kind` sees them: its `per_arm` learning rates and method values
    /// laid over the session's.
    fn arm_settings(&self, kind: ArmKind) -> Settings<'_>;
    /// The operator parameters in effect (they may change between batches).
    fn params(&self) -> &Params;
    fn features(&self) -> &FeatureSpec;
    /// The student architecture of this run.
    fn student_spec(&self) -> &ModelSpec;
    /// The shared, pretrained teacher (frozen from the switch on).
    fn teacher(&self) -> anyhow::Result<&Trainer>;
    /// A fresh model of `spec` for this run's features, from `seed`.
    fn new_trainer(&self, spec: &ModelSpec, seed: u64) -> anyhow::Result<Trainer>;
    /// The encoded retained days in time order (offline training and replay draw from it).
    fn retained_pool(&mut self) -> anyhow::Result<Arc<Pool>>;
    /// The encoded history and retained days in time order, for the full retraining (`retrain`),
    /// written when first asked for and not kept after (one arm reads it, once).
    fn history_and_retained_pool(&mut self) -> anyhow::Result<Arc<Pool>>;
    /// Between batches: applies operator commands (a stop comes back as an error to pass on).
    fn poll(&mut self, at: &Position) -> anyhow::Result<()>;
    fn emit(&mut self, event: EngineEvent) -> anyhow::Result<()>;
    /// Reports progress (the host throttles it).
    fn progress(
        &mut self,
        stage: Stage,
        arm: &str,
        day: Option<u32>,
        done: u64,
        total: u64,
        started: Instant,
    ) -> anyhow::Result<()>;
}

/// An online day as every arm sees it.
pub struct DayInput<'a> {
    pub day: u32,
    /// The day's rows, on disk (read back by batch).
    pub rows: &'a Pool,
    /// The day's drift against its reference window, measured once for all arms.
    pub drift: &'a DayDrift,
    /// The student's log-loss on the day before training on it (test-then-train).
    pub student_loss: f64,
    /// This arm announces the day's drift weight (`Drift` records): the first adaptive arm.
    pub announces_drift: bool,
}

/// What one arm carries through an online day.
pub struct DayState {
    signals: DriftSignals,
    /// The drift weight in effect.
    weight: f64,
    /// The drift weight the adaptive rule gives now (equal to `weight` for the adaptive arm;
    /// the matched arm records its day mean, `rule_sum` over the day's batches).
    rule_weight: f64,
    rule_sum: f64,
    replay: ChaCha8Rng,
    /// Batches the arm's own teacher has accumulated since its last step.
    pending: u32,
    announces_drift: bool,
    /// The distillation weights of the day's batches so far, summed, and their count.
    distill_sum: f64,
    distilled: u32,
    /// The matched ablation's drift weight, fixed for the day (`None` for other arms).
    matched: Option<f64>,
}

impl DayState {
    /// Records the distillation weight one batch trained with.
    fn note_distill_weight(&mut self, a: f64) {
        self.distill_sum += a;
        self.distilled += 1;
    }

    /// The day's mean distillation weight so far; none when no batch distilled.
    pub fn mean_distill_weight(&self) -> Option<f64> {
        (self.distilled > 0).then(|| self.distill_sum / self.distilled as f64)
    }

    /// The drift weight the matched ablation trains with all day (the mean of its past rule
    /// weights); `None` for every other arm.
    pub fn matched_weight(&self) -> Option<f64> {
        self.matched
    }
}

/// What one online batch did besides the student's step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchWork {
    /// The arm's own teacher took an optimiser step.
    pub teacher_stepped: bool,
}

/// Arms whose offline stage is one computation (same seeds, same steps) share one run.
pub type OfflineKey = (bool, bool, bool);

/// One arm's method.
pub trait Recipe {
    fn kind(&self) -> ArmKind;

    /// Equal keys: the arms' offline stages are identical, so the later arm copies the
    /// earlier's result instead of computing it again.
    fn offline_key(&self) -> Option<OfflineKey> {
        None
    }

    /// The arm's distillation weight follows the measured drift; the first such arm of a run
    /// announces the day's drift (`Drift` records).
    fn adapts_to_drift(&self) -> bool {
        false
    }

    /// The arm's models at the switch, before any offline work: a fresh student, a copy of
    /// the teacher, and the arm's own teacher if it co-distils one.
    fn build(&self, host: &dyn Host) -> anyhow::Result<Arm>;

    /// The offline stage; sets the arm's offline seconds and samples. An error is the arm's
    /// failure (the engine isolates it), or a stop to pass on.
    fn offline(&self, host: &mut dyn Host, arm: &mut Arm) -> anyhow::Result<()>;

    /// The start of an online day, after the student was evaluated on it: the drift signals
    /// and weight, and the day's replay stream.
    fn begin_day(
        &self,
        host: &mut dyn Host,
        arm: &mut Arm,
        day: &DayInput,
    ) -> anyhow::Result<DayState> {
        let s = host.settings();
        let signals = DriftSignals {
            field_psi: day.drift.fields.iter().map(|f| f.psi).collect(),
            label_rate: day.drift.label_rate,
            reference_label_rate: day.drift.reference_label_rate,
            teacher_loss: None,
            student_loss: Some(day.student_loss),
        };
        arm.state.last_teacher_loss = None;
        arm.state.last_student_loss = signals.student_loss;
        let weight = drift_weight(&signals, s.adaptation);
        let replay = ChaCha8Rng::seed_from_u64(derive(
            s.seed,
            "replay",
            arm_key(&arm.name()),
            day.day as u64,
        ));
        Ok(DayState {
            signals,
            weight,
            rule_weight: weight,
            rule_sum: 0.0,
            replay,
            pending: 0,
            announces_drift: false,
            distill_sum: 0.0,
            distilled: 0,
            matched: None,
        })
    }

    /// One online batch `index` of the day (`last`: the day's last batch): the arm's training
    /// steps on it.
    fn online_batch(
        &self,
        host: &mut dyn Host,
        arm: &mut Arm,
        state: &mut DayState,
        batch: &Batch,
        index: u32,
        day: &DayInput,
    ) -> anyhow::Result<BatchWork>;
}

/// The recipe of an arm kind.
pub fn recipe(kind: ArmKind) -> Box<dyn Recipe> {
    match kind {
        ArmKind::Incumbent => Box::new(Incumbent),
        ArmKind::Scratch => Box::new(Baseline {
            distil: false,
            history: false,
        }),
        ArmKind::Retrain => Box::new(Baseline {
            distil: false,
            history: true,
        }),
        ArmKind::Kd => Box::new(Baseline {
            distil: true,
            history: false,
        }),
        ArmKind::CrossAdapt(v) => Box::new(CrossAdapt(v)),
    }
}

/// The teacher itself, kept training online on labels (today's practice).
struct Incumbent;

impl Recipe for Incumbent {
    fn kind(&self) -> ArmKind {
        ArmKind::Incumbent
    }

    fn build(&self, host: &dyn Host) -> anyhow::Result<Arm> {
        let teacher = host.teacher()?;
        let student = clone_trainer(teacher, host.settings().train)?;
        let model = teacher.model().spec().to_string();
        Ok(Arm::new(ArmKind::Incumbent, model, student, None))
    }

    fn offline(&self, _: &mut dyn Host, _: &mut Arm) -> anyhow::Result<()> {
        Ok(())
    }

    fn online_batch(
        &self,
        _: &mut dyn Host,
        arm: &mut Arm,
        _: &mut DayState,
        batch: &Batch,
        _: u32,
        _: &DayInput,
    ) -> anyhow::Result<BatchWork> {
        let name = arm.name();
        check_loss(arm.student.train_batch(batch, Target::Labels), &name)?;
        Ok(BatchWork::default())
    }
}

/// scratch (`distil: false`): a fresh student on labels, offline over every retained row and
/// online on each batch. kd (`distil: true`): the same with standard distillation from the
/// frozen shared teacher. retrain (`history: true`): scratch over the history and the retained
/// rows, the full retraining a switch costs without the method.
struct Baseline {
    distil: bool,
    history: bool,
}

impl Recipe for Baseline {
    fn kind(&self) -> ArmKind {
        match (self.distil, self.history) {
            (true, _) => ArmKind::Kd,
            (false, true) => ArmKind::Retrain,
            (false, false) => ArmKind::Scratch,
        }
    }

    fn build(&self, host: &dyn Host) -> anyhow::Result<Arm> {
        let kind = self.kind();
        let s = host.settings();
        let spec = host.student_spec();
        let student =
            host.new_trainer(spec, derive(s.seed, "init", arm_key(&kind.to_string()), 0))?;
        Ok(Arm::new(kind, spec.to_string(), student, None))
    }

    fn offline(&self, host: &mut dyn Host, arm: &mut Arm) -> anyhow::Result<()> {
        let name = arm.name();
        let s = host.settings();
        let (epochs, batch_size) = (s.method.baseline_epochs, s.batch_size);
        let pool = if self.history {
            host.history_and_retained_pool()?
        } else {
            host.retained_pool()?
        };
        let total = pool.rows() as u64 * epochs as u64;
        host.emit(EngineEvent::StageStarted {
            stage: Stage::OfflineTrain,
            arm: Some(name.clone()),
            day: None,
            total,
        })?;
        let started = Instant::now();
        let mut done = 0u64;
        for _ in 0..epochs {
            for (i, b) in pool.chunks(batch_size).enumerate() {
                let b = b?;
                host.poll(&Position {
                    stage: Stage::OfflineTrain,
                    arm: Some(name.clone()),
                    day: None,
                    batch: i as u64,
                })?;
                let loss = if self.distil {
                    let t = host.teacher()?.predict_logits(&b)?;
                    let m = host.arm_settings(ArmKind::Kd).method;
                    arm.student
                        .train_batch(&b, distill_target(m, &t, m.distill_weight, 0.0))
                } else {
                    arm.student.train_batch(&b, Target::Labels)
                };
                check_loss(loss, &name)?;
                done += b.rows() as u64;
                host.progress(Stage::OfflineTrain, &name, None, done, total, started)?;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        host.emit(EngineEvent::StageFinished {
            stage: Stage::OfflineTrain,
            arm: Some(name),
            day: None,
            seconds,
            samples: done,
            heap_peak: None,
        })?;
        arm.state.offline_seconds = seconds;
        arm.state.offline_samples = done;
        Ok(())
    }

    fn online_batch(
        &self,
        host: &mut dyn Host,
        arm: &mut Arm,
        state: &mut DayState,
        batch: &Batch,
        _: u32,
        _: &DayInput,
    ) -> anyhow::Result<BatchWork> {
        let name = arm.name();
        let loss = if self.distil {
            let t = host.teacher()?.predict_logits(batch)?;
            let m = host.arm_settings(ArmKind::Kd).method;
            state.note_distill_weight(m.distill_weight);
            arm.student
                .train_batch(batch, distill_target(m, &t, m.distill_weight, 0.0))
        } else {
            arm.student.train_batch(batch, Target::Labels)
        };
        check_loss(loss, &name)?;
        Ok(BatchWork::default())
    }
}

/// CrossAdapt and its ablations (docs/method.md): offline 1A projection of the teacher's tables,
/// 1B dense and 1C joint distillation on a strategic sample of the retained rows; online the
/// student distils from its co-distilled teacher, which accumulates label gradients and steps
/// every N batches, with replay rows from the retained pool and a drift-aware weight.
struct CrossAdapt(CrossAdaptVariant);

impl CrossAdapt {
    /// The teacher the student distils from: its own co-distilled one, or the shared frozen one.
    fn teacher<'a>(host: &'a dyn Host, arm: &'a Arm) -> anyhow::Result<&'a Trainer> {
        match &arm.teacher {
            Some(t) => Ok(t),
            None => host.teacher(),
        }
    }
}

impl Recipe for CrossAdapt {
    fn kind(&self) -> ArmKind {
        ArmKind::CrossAdapt(self.0)
    }

    fn offline_key(&self) -> Option<OfflineKey> {
        Some(self.0.offline_key())
    }

    fn adapts_to_drift(&self) -> bool {
        self.0.adaptive()
    }

    fn build(&self, host: &dyn Host) -> anyhow::Result<Arm> {
        let s = host.settings();
        let spec = host.student_spec();
        // Every variant starts from the same initial student: the ablations differ from the
        // full method only in what they switch off.
        let student = host.new_trainer(spec, derive(s.seed, "init", arm_key("crossadapt"), 0))?;
        let teacher = if self.0.asymmetric_teacher {
            Some(clone_trainer(host.teacher()?, s.train)?)
        } else {
            None
        };
        Ok(Arm::new(self.kind(), spec.to_string(), student, teacher))
    }

    fn offline(&self, host: &mut dyn Host, arm: &mut Arm) -> anyhow::Result<()> {
        let v = self.0;
        let name = arm.name();
        let s = host.arm_settings(self.kind());
        let seed = s.seed;
        let (epochs_dense, epochs_joint) = (s.method.epochs_dense, s.method.epochs_joint);
        let strategy = if v.sampling {
            s.method.sampling
        } else {
            Strategy::All
        };
        let started = Instant::now();
        let student = &mut arm.student;
        if v.projection {
            transfer(host, &name, student)?;
        }
        let mut samples = 0;
        // Every variant draws the full method's samples (like its initial student), so an
        // ablation differs from it only in what it switches off.
        let key = arm_key("crossadapt");
        student.set_frozen(true, false);
        for epoch in 0..epochs_dense {
            let s = derive(seed, "sample-1b", key, epoch as u64);
            let stage = Stage::DenseDistill;
            samples += distill_pass(host, &name, stage, student, strategy, v, s)?;
        }
        student.set_frozen(false, false);
        for epoch in 0..epochs_joint {
            let s = derive(seed, "sample-1c", key, epoch as u64);
            let stage = Stage::JointDistill;
            samples += distill_pass(host, &name, stage, student, strategy, v, s)?;
        }
        arm.state.offline_seconds = started.elapsed().as_secs_f64();
        arm.state.offline_samples = samples;
        Ok(())
    }

    fn begin_day(
        &self,
        host: &mut dyn Host,
        arm: &mut Arm,
        day: &DayInput,
    ) -> anyhow::Result<DayState> {
        let (seed, adaptation) = (host.settings().seed, host.settings().adaptation.clone());
        let teacher = Self::teacher(host, arm)?;
        let teacher_loss =
            metrics::evaluate_rows(&teacher.predict_pool(day.rows)?, day.rows.labels(), None)
                .logloss;
        let signals = DriftSignals {
            field_psi: day.drift.fields.iter().map(|f| f.psi).collect(),
            label_rate: day.drift.label_rate,
            reference_label_rate: day.drift.reference_label_rate,
            teacher_loss: Some(teacher_loss),
            student_loss: Some(day.student_loss),
        };
        arm.state.last_teacher_loss = signals.teacher_loss;
        arm.state.last_student_loss = signals.student_loss;
        let rule_weight = drift_weight(&signals, &adaptation);
        let announces_drift = day.announces_drift;
        if announces_drift {
            emit_drift(host, day.day, None, rule_weight, day.drift)?;
        }
        let weight = match self.0.weight {
            WeightRule::Matched => matched_weight(&arm.state.rule_weights, day.day).unwrap_or(0.0),
            _ => rule_weight,
        };
        let replay =
            ChaCha8Rng::seed_from_u64(derive(seed, "replay", arm_key(&arm.name()), day.day as u64));
        Ok(DayState {
            signals,
            weight,
            rule_weight,
            rule_sum: 0.0,
            replay,
            pending: 0,
            announces_drift,
            distill_sum: 0.0,
            distilled: 0,
            matched: (self.0.weight == WeightRule::Matched).then_some(weight),
        })
    }

    fn online_batch(
        &self,
        host: &mut dyn Host,
        arm: &mut Arm,
        state: &mut DayState,
        b: &Batch,
        bi: u32,
        day: &DayInput,
    ) -> anyhow::Result<BatchWork> {
        let v = self.0;
        let name = arm.name();
        let s = host.settings();
        let (batch_size, remeasure, floor) = (
            s.batch_size,
            s.adaptation.every_batches,
            s.adaptation.replay_floor,
        );
        let n_batches = day.rows.rows().div_ceil(batch_size) as u32;
        let measures = v.weight != WeightRule::Fixed;
        if measures && remeasure > 0 && bi > 0 && bi.is_multiple_of(remeasure) {
            // The drift of the rows seen so far today against the day's reference window,
            // measured with the day's (`DayDrift::within`).
            if let Some((_, dd)) = day.drift.within.iter().find(|(at, _)| *at == bi) {
                state.signals.field_psi = dd.fields.iter().map(|f| f.psi).collect();
                state.signals.label_rate = dd.label_rate;
                state.rule_weight = drift_weight(&state.signals, host.settings().adaptation);
                if v.adaptive() {
                    state.weight = state.rule_weight;
                }
                if state.announces_drift {
                    emit_drift(host, day.day, Some(bi), state.weight, dd)?;
                }
            }
        }
        state.rule_sum += state.rule_weight;
        if v.weight == WeightRule::Matched && bi + 1 == n_batches {
            let mean = state.rule_sum / n_batches as f64;
            record_rule_weight(&mut arm.state.rule_weights, day.day, mean);
        }
        let p = host.params().clone();
        let w = state.weight;
        let replay = if v.replay {
            let ratio = if measures {
                replay_ratio(w, p.replay_ratio, floor)
            } else {
                p.replay_ratio
            };
            let n = (ratio * b.rows() as f64).round() as usize;
            let pool = host.retained_pool()?;
            draw_replay(&pool, n, &mut state.replay)?
        } else {
            Batch::empty(b.num_cat, b.num_num)
        };
        // The student trains on the online rows and the replay rows together, in one step.
        let mut x = b.clone();
        x.extend(&replay);
        let t = match arm.teacher.as_mut() {
            Some(teacher) => teacher_pass(teacher, b, &replay, &format!("{name} teacher"))?,
            None => host.teacher()?.predict_logits(&x)?,
        };
        let a = if measures {
            distill_weight(w, p.distill_min, p.distill_max)
        } else {
            p.distill_max
        };
        state.note_distill_weight(a);
        let target = distill_target(host.arm_settings(self.kind()).method, &t, a, 0.0);
        check_loss(arm.student.train_batch(&x, target), &name)?;
        let mut work = BatchWork::default();
        if let Some(teacher) = arm.teacher.as_mut() {
            state.pending += 1;
            if state.pending >= p.teacher_interval || bi + 1 == n_batches {
                teacher.step()?;
                work.teacher_stepped = true;
                state.pending = 0;
            }
        }
        Ok(work)
    }
}

/// The co-distilled teacher's share of an online step: its label gradients on the `online`
/// rows are accumulated, and its logits on the `online` rows then the `replay` rows come back
/// as the student's distillation target. The teacher's weights change only when it steps,
/// after the target was taken, so the forward pass that its gradients come from already holds
/// the online rows' logits: one forward with gradients on the online rows and one without on
/// the replay rows, instead of a forward over both for the target and a second one over the
/// online rows for the gradients.
pub fn teacher_pass(
    teacher: &mut Trainer,
    online: &Batch,
    replay: &Batch,
    who: &str,
) -> anyhow::Result<Vec<f32>> {
    let mut logits = Vec::new();
    check_loss(
        teacher
            .accumulate_logits(online, Target::Labels)
            .map(|(loss, z)| {
                logits = z;
                loss
            }),
        who,
    )?;
    if !replay.is_empty() {
        logits.extend(teacher.predict_logits(replay)?);
    }
    Ok(logits)
}

/// The distillation target of docs/method.md with weight `alpha`; `offset` is the sampler's
/// log-odds shift, applied to the label term when logit correction is on.
pub fn distill_target<'a>(
    method: &MethodConfig,
    teacher: &'a [f32],
    alpha: f64,
    offset: f32,
) -> Target<'a> {
    Target::Distill {
        teacher_logits: teacher,
        alpha: alpha as f32,
        temperature: method.temperature as f32,
        label_offset: if method.logit_correction { offset } else { 0.0 },
    }
}

/// 1A: every field's teacher table projected into the student's size, with its error.
pub fn transfer(
    host: &mut dyn Host,
    name: &str,
    student: &mut Trainer,
) -> anyhow::Result<Vec<FieldProjection>> {
    host.emit(EngineEvent::StageStarted {
        stage: Stage::Transfer,
        arm: Some(name.to_string()),
        day: None,
        total: 0,
    })?;
    let started = Instant::now();
    let seed = host.settings().seed;
    let teacher = host.teacher()?.model().embeddings();
    let from = teacher.dim;
    let to = student.model().embeddings().dim;
    let mut rng = ChaCha8Rng::seed_from_u64(derive(seed, "project", 0, 0));
    let mut fields = Vec::new();
    // One field at a time: a field's projection is written into the student before the next
    // is computed, so 1A never holds every field's projected table.
    for (f, field) in host.features().cat.iter().enumerate() {
        let p = project_table(teacher.field(f), field.vocab, from, to, &mut rng)
            .with_context(|| format!("projecting field {}", field.name))?;
        fields.push(FieldProjection {
            field: field.name.clone(),
            method: p.method.name().to_string(),
            from_dim: from,
            to_dim: to,
            rel_error: p.rel_error,
        });
        student
            .model_mut()
            .embeddings_mut()
            .set_field(f, &p.table)?;
    }
    student.reset_optimizer_state();
    host.emit(EngineEvent::Projection {
        arm: name.to_string(),
        fields: fields.clone(),
    })?;
    host.emit(EngineEvent::StageFinished {
        stage: Stage::Transfer,
        arm: Some(name.to_string()),
        day: None,
        seconds: started.elapsed().as_secs_f64(),
        samples: 0,
        heap_peak: None,
    })?;
    Ok(fields)
}

/// One pass of 1B or 1C over a fresh draw of the retained pool. The sampling ratio follows
/// operator changes from the next window on, unless the arm has its own (`per_arm`). The label
/// term gets the sampler's log-odds offset when `method.logit_correction` is on and the
/// variant keeps it (`crossadapt-nocorr` does not).
pub fn distill_pass(
    host: &mut dyn Host,
    name: &str,
    stage: Stage,
    student: &mut Trainer,
    strategy: Strategy,
    variant: CrossAdaptVariant,
    seed: u64,
) -> anyhow::Result<u64> {
    let pool = host.retained_pool()?;
    let kind = ArmKind::CrossAdapt(variant);
    let s = host.arm_settings(kind);
    let method = s.method.clone();
    let own_ratio = s.sampling_ratio;
    let cfg = SamplerConfig {
        strategy,
        ratio: own_ratio.unwrap_or(host.params().sampling_ratio),
        batch: s.batch_size,
        target_pos_rate: s.method.target_pos_rate,
        recency_half_life: s.method.recency_half_life,
    };
    let mut sampler = StrategicSampler::new(cfg, seed)?;
    let total = sampler.expected_rows(pool.rows());
    host.emit(EngineEvent::StageStarted {
        stage,
        arm: Some(name.to_string()),
        day: None,
        total,
    })?;
    let started = Instant::now();
    let mut done = 0u64;
    let mut i = 0u64;
    let mut fallbacks = 0u32;
    loop {
        host.poll(&Position {
            stage,
            arm: Some(name.to_string()),
            day: None,
            batch: i,
        })?;
        let ratio = own_ratio.unwrap_or(host.params().sampling_ratio);
        if sampler.config().ratio != ratio {
            sampler.set_ratio(ratio)?;
        }
        let Some(sample) = sampler.next_batch(&pool)? else {
            break;
        };
        fallbacks += sample.fell_back as u32;
        let t = host.teacher()?.predict_logits(&sample.batch)?;
        let offset = if variant.logit_correction {
            sample.logit_offset
        } else {
            0.0
        };
        let target = distill_target(&method, &t, method.distill_weight, offset);
        check_loss(student.train_batch(&sample.batch, target), name)?;
        done += sample.batch.rows() as u64;
        i += 1;
        let total = total.max(done);
        host.progress(stage, name, None, done, total, started)?;
    }
    if fallbacks > 0 {
        host.emit(EngineEvent::Warning {
            arm: Some(name.to_string()),
            message: format!("{fallbacks} sampling windows had one class only: drawn uniformly"),
        })?;
    }
    host.emit(EngineEvent::StageFinished {
        stage,
        arm: Some(name.to_string()),
        day: None,
        seconds: started.elapsed().as_secs_f64(),
        samples: done,
        heap_peak: None,
    })?;
    Ok(done)
}

/// The drift record of day `d` (at `batch` when re-measured inside the day).
fn emit_drift(
    host: &mut dyn Host,
    d: u32,
    batch: Option<u32>,
    w: f64,
    drift: &DayDrift,
) -> anyhow::Result<()> {
    let p = host.params().clone();
    let floor = host.settings().adaptation.replay_floor;
    let mut fields = drift.fields.clone();
    fields.sort_by(|a, b| b.psi.total_cmp(&a.psi));
    fields.truncate(DRIFT_FIELDS_SHOWN);
    host.emit(EngineEvent::Drift {
        day: d,
        batch,
        weight: w,
        distill_weight: distill_weight(w, p.distill_min, p.distill_max),
        replay_ratio: replay_ratio(w, p.replay_ratio, floor),
        label_rate: drift.label_rate,
        reference_label_rate: drift.reference_label_rate,
        fields,
    })
}

/// A NaN loss (or any training error) names the arm.
pub fn check_loss(loss: anyhow::Result<f32>, who: &str) -> anyhow::Result<f32> {
    let l = loss.with_context(|| format!("training {who}"))?;
    anyhow::ensure!(l.is_finite(), "training {who}: loss became {l}");
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::teacher_pass;
    use crate::method::arm::clone_trainer;
    use crate::model::build_model;
    use crate::train::toy::ToyWorld;
    use crate::train::{Target, TrainConfig, Trainer};

    /// Every weight of a trainer's model: the embedding table, then each dense parameter.
    fn weights(t: &Trainer) -> Vec<f32> {
        let mut w = t.model().embeddings().data.clone();
        for v in t.model().dense().vars() {
            w.extend(
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            );
        }
        w
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-6, "{what}[{i}]: {x} vs {y}");
        }
    }

    /// The co-distilled teacher's one forward pass on the online rows gives the target and the
    /// update of the former three-pass step: a forward without gradients over online and replay
    /// rows for the target, then a forward with gradients over the online rows for the
    /// teacher's accumulation, stepping every other batch.
    #[test]
    fn one_teacher_forward_gives_the_three_pass_target_and_update() {
        let world = ToyWorld::new(4, 30, 5);
        let cfg = TrainConfig {
            emb_lr: 0.05,
            dense_lr: 0.01,
            ..TrainConfig::default()
        };
        let spec = "mlp:emb=4,hidden=8x4".parse().unwrap();
        let mut reused =
            Trainer::new(build_model(&spec, &world.features, 3).unwrap(), &cfg).unwrap();
        // Some optimiser state, as a teacher has at the switch.
        reused
            .train_batch(&world.batch(50, 9), Target::Labels)
            .unwrap();
        let mut three_pass = clone_trainer(&reused, &cfg).unwrap();
        assert_close(
            &weights(&reused),
            &weights(&three_pass),
            "weights at the start",
        );
        for i in 0..6u64 {
            let online = world.batch(64, 100 + i);
            let replay = world.batch(i as usize * 3, 200 + i);
            let mut x = online.clone();
            x.extend(&replay);
            let old_target = three_pass.predict_logits(&x).unwrap();
            three_pass.accumulate(&online, Target::Labels).unwrap();
            let new_target = teacher_pass(&mut reused, &online, &replay, "teacher").unwrap();
            assert_close(&new_target, &old_target, &format!("target of batch {i}"));
            if i % 2 == 1 {
                three_pass.step().unwrap();
                reused.step().unwrap();
                assert_close(
                    &weights(&reused),
                    &weights(&three_pass),
                    &format!("teacher after batch {i}"),
                );
            }
        }
        assert_eq!(reused.steps(), three_pass.steps());
    }
}
