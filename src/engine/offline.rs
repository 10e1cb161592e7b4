//! Before the switch: the teacher on the history, then every arm's offline stage (1A-1C for
//! crossadapt, full retained-data training for the baselines), evaluated on the first online day.

use std::time::Instant;

use anyhow::Context;

use super::arm::Arm;
use super::checkpoint::clone_trainer;
use super::run::{Engine, StopRequested};
use super::seeds::{arm_key, derive};
use super::state::{ArmState, ResumePoint};
use crate::data::Batch;
use crate::method::projection::project_table;
use crate::method::sampler::{StrategicSampler, Strategy};
use crate::protocol::{ArmKind, CrossAdaptVariant, EngineEvent, FieldProjection, Position, Stage};
use crate::train::{metrics, Target, Trainer};

impl Engine {
    /// Trains the teacher on the history and retained days in time order (the deployed model has
    /// seen everything up to the switch), or loads it from `teacher.checkpoint`.
    pub(crate) fn prepare_teacher(&mut self) -> anyhow::Result<()> {
        if let Some(path) = self.cfg.teacher.checkpoint.clone() {
            let trainer = Trainer::load(&path, &self.cfg.train).with_context(|| {
                format!("cannot load the teacher checkpoint {}", path.display())
            })?;
            anyhow::ensure!(
                trainer.model().spec() == &self.teacher_spec,
                "teacher checkpoint {} holds `{}`, but teacher.model is `{}`",
                path.display(),
                trainer.model().spec(),
                self.teacher_spec
            );
            // Same table sizes are not enough: the id -> row map must be this run's.
            let ours = self.data.vocabulary().fingerprint();
            match trainer.vocabulary() {
                Some(fp) if fp == ours => {}
                Some(_) => anyhow::bail!(
                    "teacher checkpoint {} was trained under another vocabulary (id -> row map) than this run's; use a teacher bundle (teacher.bundle) to bring the teacher's own vocabulary",
                    path.display()
                ),
                None => anyhow::bail!(
                    "teacher checkpoint {} does not record its vocabulary (written by an older crossadapt), so its rows cannot be matched to this run's ids; retrain it, or write a bundle with `crossadapt train --bundle`",
                    path.display()
                ),
            }
            self.teacher = Some(trainer);
            return Ok(());
        }
        if let Some(path) = self.cfg.teacher.bundle.clone() {
            let bundle = crate::bundle::Bundle::open(&path).context("teacher.bundle")?;
            let trainer = bundle
                .trainer(self.data.vocabulary(), &self.cfg.train)
                .with_context(|| format!("cannot load the teacher bundle {}", path.display()))?;
            self.teacher = Some(trainer);
            return Ok(());
        }
        let days: Vec<u32> = self
            .plan
            .history
            .iter()
            .chain(&self.plan.retained)
            .copied()
            .collect();
        let spec = self.teacher_spec.clone();
        let mut teacher = self.new_trainer(&spec, derive(self.cfg.seed, "teacher", 0, 0))?;
        let epochs = self.cfg.teacher.epochs;
        let first_rows = self.data.day(days[0] as usize)?.rows() as u64;
        let total = first_rows * days.len() as u64 * epochs as u64;
        self.emit(EngineEvent::StageStarted {
            stage: Stage::TeacherPretrain,
            arm: None,
            day: None,
            total,
        })?;
        let started = Instant::now();
        let mut done = 0u64;
        let mut batch_index = 0u64;
        for _ in 0..epochs {
            for &d in &days {
                let day = self.data.day(d as usize)?;
                for b in day.chunks(self.cfg.batch_size) {
                    self.poll_commands(&Position {
                        stage: Stage::TeacherPretrain,
                        arm: None,
                        day: Some(d),
                        batch: batch_index,
                    })?;
                    check_loss(teacher.train_batch(&b, Target::Labels), "teacher")
                        .map_err(teacher_diverged)?;
                    done += b.rows() as u64;
                    batch_index += 1;
                    self.progress(Stage::TeacherPretrain, None, Some(d), done, total, started)?;
                }
            }
        }
        self.teacher_seconds = started.elapsed().as_secs_f64();
        self.emit(EngineEvent::StageFinished {
            stage: Stage::TeacherPretrain,
            arm: None,
            day: None,
            seconds: self.teacher_seconds,
            samples: done,
        })?;
        self.teacher = Some(teacher);
        Ok(())
    }

    /// The shared teacher must predict finite logits: every arm but scratch starts from it or
    /// learns from it, so a diverged teacher (trained here, or loaded with non-finite weights)
    /// is one clear error for the run, before any checkpoint would carry it into a resume,
    /// rather than one failure per dependent arm.
    pub(crate) fn check_teacher(&mut self) -> anyhow::Result<()> {
        let Some(&d) = self.plan.retained.first().or(self.plan.history.last()) else {
            return Ok(());
        };
        let day = self.data.day(d as usize)?;
        let probe = day.slice(0, day.rows().min(self.cfg.batch_size));
        let logits = self.teacher_ref()?.predict_logits(&probe)?;
        if let Some(z) = logits.iter().find(|z| !z.is_finite()) {
            return Err(teacher_diverged(anyhow::anyhow!(
                "it predicts {z} on day {d}"
            )));
        }
        Ok(())
    }

    /// Builds every arm at the switch point, from arm `arms_done` on (a resumed offline stage
    /// keeps the arms its checkpoint holds), and evaluates them on the first online day.
    ///
    /// Before each arm is a safe point: a stop or pause asked for during an arm's offline work
    /// waits for it, checkpoints the arms finished so far, and a resume continues with the next
    /// arm. Each arm's random streams derive from the session seed and the arm's name
    /// (`seeds.rs`), so an arm trained after a resume is the arm the uninterrupted run trained.
    pub(crate) fn offline_stage(&mut self, arms_done: usize) -> anyhow::Result<()> {
        self.arms.truncate(arms_done);
        let kinds = self.cfg.arms.clone();
        for (i, &kind) in kinds.iter().enumerate().skip(arms_done) {
            self.phase = Some(ResumePoint::Offline { arms_done: i });
            self.safe_point(&Position {
                stage: Stage::OfflineTrain,
                arm: Some(kind.to_string()),
                day: None,
                batch: 0,
            })?;
            let arm = self.offline_arm(kind)?;
            self.arms.push(arm);
        }
        self.phase = Some(ResumePoint::Offline {
            arms_done: kinds.len(),
        });
        self.safe_point(&Position {
            stage: Stage::OfflineEval,
            arm: None,
            day: self.plan.online.first().copied(),
            batch: 0,
        })?;
        self.offline_eval()
    }

    /// One arm's offline work. An arm whose training fails (a NaN loss, a divergence) is kept,
    /// marked failed with its reason and announced with `ArmFailed`: the other arms go on, the
    /// failed one is skipped by the evaluation, the gate and every online day, and a resume
    /// (whose checkpoint carries the mark) does not run it again.
    fn offline_arm(&mut self, kind: ArmKind) -> anyhow::Result<Arm> {
        let name = kind.to_string();
        let (mut arm, result) = match kind {
            ArmKind::Incumbent => (self.incumbent_arm()?, Ok(())),
            ArmKind::Scratch | ArmKind::Kd => self.baseline_arm(&name, kind)?,
            ArmKind::CrossAdapt(v) => self.crossadapt_arm(&name, v)?,
        };
        match result {
            Ok(()) => {}
            Err(e) if e.downcast_ref::<StopRequested>().is_some() => return Err(e),
            Err(e) => {
                let message = format!("{e:#}");
                arm.state.failed = Some(message.clone());
                self.emit(EngineEvent::ArmFailed { arm: name, message })?;
            }
        }
        Ok(arm)
    }

    fn teacher_ref(&self) -> anyhow::Result<&Trainer> {
        self.teacher.as_ref().context("the teacher is not ready")
    }

    fn incumbent_arm(&mut self) -> anyhow::Result<Arm> {
        let student = clone_trainer(self.teacher_ref()?, &self.cfg.train)?;
        Ok(Arm {
            student,
            teacher: None,
            state: ArmState::new(ArmKind::Incumbent, self.teacher_spec.to_string()),
        })
    }

    /// scratch (labels) and kd (distillation from the frozen teacher) over every retained row.
    /// The outer error ends the run (a stop, a model that cannot be built); the inner one is the
    /// arm's own training failure.
    fn baseline_arm(
        &mut self,
        name: &str,
        kind: ArmKind,
    ) -> anyhow::Result<(Arm, anyhow::Result<()>)> {
        let spec = self.student_spec.clone();
        let student = self.new_trainer(&spec, derive(self.cfg.seed, "init", arm_key(name), 0))?;
        let mut arm = Arm {
            student,
            teacher: None,
            state: ArmState::new(kind, spec.to_string()),
        };
        let result = self.baseline_train(name, kind, &mut arm);
        Ok((arm, result))
    }

    fn baseline_train(&mut self, name: &str, kind: ArmKind, arm: &mut Arm) -> anyhow::Result<()> {
        let student = &mut arm.student;
        let pool = self.retained_pool()?.clone();
        let epochs = self.cfg.method.baseline_epochs;
        let total = pool.rows() as u64 * epochs as u64;
        self.emit(EngineEvent::StageStarted {
            stage: Stage::OfflineTrain,
            arm: Some(name.to_string()),
            day: None,
            total,
        })?;
        let started = Instant::now();
        let mut done = 0u64;
        for _ in 0..epochs {
            for (i, b) in pool.chunks(self.cfg.batch_size).enumerate() {
                self.poll_commands(&Position {
                    stage: Stage::OfflineTrain,
                    arm: Some(name.to_string()),
                    day: None,
                    batch: i as u64,
                })?;
                let loss = if kind == ArmKind::Kd {
                    let t = self.teacher_ref()?.predict_logits(&b)?;
                    student.train_batch(
                        &b,
                        self.distill_target(&t, self.cfg.method.distill_weight, 0.0),
                    )
                } else {
                    student.train_batch(&b, Target::Labels)
                };
                check_loss(loss, name)?;
                done += b.rows() as u64;
                self.progress(Stage::OfflineTrain, Some(name), None, done, total, started)?;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        self.emit(EngineEvent::StageFinished {
            stage: Stage::OfflineTrain,
            arm: Some(name.to_string()),
            day: None,
            seconds,
            samples: done,
        })?;
        arm.state.offline_seconds = seconds;
        arm.state.offline_samples = done;
        Ok(())
    }

    /// The distillation target of METHOD.md with weight `alpha`; `offset` is the sampler's
    /// log-odds shift, applied to the label term when logit correction is on.
    pub(crate) fn distill_target<'a>(
        &self,
        teacher: &'a [f32],
        alpha: f64,
        offset: f32,
    ) -> Target<'a> {
        Target::Distill {
            teacher_logits: teacher,
            alpha: alpha as f32,
            temperature: self.cfg.method.temperature as f32,
            label_offset: if self.cfg.method.logit_correction {
                offset
            } else {
                0.0
            },
        }
    }

    fn crossadapt_arm(
        &mut self,
        name: &str,
        v: CrossAdaptVariant,
    ) -> anyhow::Result<(Arm, anyhow::Result<()>)> {
        // Variants that differ only online share one offline run (same seeds, same result, the
        // same failure if it failed).
        let kind = ArmKind::CrossAdapt(v);
        let shared = self.arms.iter().position(
            |a| matches!(a.kind(), ArmKind::CrossAdapt(o) if o.offline_key() == v.offline_key()),
        );
        let teacher = if v.asymmetric_teacher {
            Some(clone_trainer(self.teacher_ref()?, &self.cfg.train)?)
        } else {
            None
        };
        if let Some(i) = shared {
            let src = &self.arms[i];
            let student = clone_trainer(&src.student, &self.cfg.train)?;
            let result = match &src.state.failed {
                Some(why) => Err(anyhow::anyhow!(
                    "its offline stage is {}'s, which failed: {why}",
                    src.name()
                )),
                None => Ok(()),
            };
            let state = ArmState {
                kind,
                failed: None,
                ..src.state.clone()
            };
            let arm = Arm {
                student,
                teacher,
                state,
            };
            return Ok((arm, result));
        }
        let spec = self.student_spec.clone();
        let student = self.new_trainer(
            &spec,
            derive(self.cfg.seed, "init", arm_key("crossadapt"), 0),
        )?;
        let mut arm = Arm {
            student,
            teacher,
            state: ArmState::new(kind, spec.to_string()),
        };
        let result = self.crossadapt_offline(name, v, &mut arm);
        Ok((arm, result))
    }

    fn crossadapt_offline(
        &mut self,
        name: &str,
        v: CrossAdaptVariant,
        arm: &mut Arm,
    ) -> anyhow::Result<()> {
        let seed = self.cfg.seed;
        let started = Instant::now();
        let student = &mut arm.student;
        if v.projection {
            self.transfer(name, student)?;
        }
        let strategy = if v.sampling {
            self.cfg.method.sampling
        } else {
            Strategy::All
        };
        let mut samples = 0;
        student.set_frozen(true, false);
        for epoch in 0..self.cfg.method.epochs_dense {
            let s = derive(seed, "sample-1b", arm_key(name), epoch as u64);
            samples += self.distill_pass(name, Stage::DenseDistill, student, strategy, s)?;
        }
        student.set_frozen(false, false);
        for epoch in 0..self.cfg.method.epochs_joint {
            let s = derive(seed, "sample-1c", arm_key(name), epoch as u64);
            samples += self.distill_pass(name, Stage::JointDistill, student, strategy, s)?;
        }
        arm.state.offline_seconds = started.elapsed().as_secs_f64();
        arm.state.offline_samples = samples;
        Ok(())
    }

    /// 1A: every field's teacher table projected into the student's size, with its error.
    fn transfer(
        &mut self,
        name: &str,
        student: &mut Trainer,
    ) -> anyhow::Result<Vec<FieldProjection>> {
        self.emit(EngineEvent::StageStarted {
            stage: Stage::Transfer,
            arm: Some(name.to_string()),
            day: None,
            total: 0,
        })?;
        let started = Instant::now();
        let teacher = self.teacher_ref()?.model().embeddings();
        let from = teacher.dim;
        let to = student.model().embeddings().dim;
        let mut rng =
            rand_chacha::ChaCha8Rng::seed_from_u64(derive(self.cfg.seed, "project", 0, 0));
        let mut fields = Vec::new();
        let mut tables = Vec::new();
        for (f, field) in self.data.spec().cat.iter().enumerate() {
            let p = project_table(teacher.field(f), field.vocab, from, to, &mut rng)
                .with_context(|| format!("projecting field {}", field.name))?;
            fields.push(FieldProjection {
                field: field.name.clone(),
                method: p.method.name().to_string(),
                from_dim: from,
                to_dim: to,
                rel_error: p.rel_error,
            });
            tables.push(p.table);
        }
        let emb = student.model_mut().embeddings_mut();
        for (f, table) in tables.iter().enumerate() {
            emb.set_field(f, table)?;
        }
        student.reset_optimizer_state();
        self.emit(EngineEvent::Projection {
            arm: name.to_string(),
            fields: fields.clone(),
        })?;
        self.emit(EngineEvent::StageFinished {
            stage: Stage::Transfer,
            arm: Some(name.to_string()),
            day: None,
            seconds: started.elapsed().as_secs_f64(),
            samples: 0,
        })?;
        Ok(fields)
    }

    /// One pass of 1B or 1C over a fresh draw of the retained pool. The sampling ratio follows
    /// operator changes from the next window on.
    fn distill_pass(
        &mut self,
        name: &str,
        stage: Stage,
        student: &mut Trainer,
        strategy: Strategy,
        seed: u64,
    ) -> anyhow::Result<u64> {
        let pool = self.retained_pool()?.clone();
        let cfg = self.cfg.sampler(self.params.sampling_ratio, strategy);
        let mut sampler = StrategicSampler::new(cfg, seed)?;
        let total = sampler.expected_rows(pool.rows());
        self.emit(EngineEvent::StageStarted {
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
            self.poll_commands(&Position {
                stage,
                arm: Some(name.to_string()),
                day: None,
                batch: i,
            })?;
            if sampler.config().ratio != self.params.sampling_ratio {
                sampler.set_ratio(self.params.sampling_ratio)?;
            }
            let Some(sample) = sampler.next_batch(&pool) else {
                break;
            };
            fallbacks += sample.fell_back as u32;
            let t = self.teacher_ref()?.predict_logits(&sample.batch)?;
            let alpha = self.cfg.method.distill_weight;
            let target = self.distill_target(&t, alpha, sample.logit_offset);
            check_loss(student.train_batch(&sample.batch, target), name)?;
            done += sample.batch.rows() as u64;
            i += 1;
            let total = total.max(done);
            self.progress(stage, Some(name), None, done, total, started)?;
        }
        if fallbacks > 0 {
            self.emit(EngineEvent::Warning {
                arm: Some(name.to_string()),
                message: format!(
                    "{fallbacks} sampling windows had one class only: drawn uniformly"
                ),
            })?;
        }
        self.emit(EngineEvent::StageFinished {
            stage,
            arm: Some(name.to_string()),
            day: None,
            seconds: started.elapsed().as_secs_f64(),
            samples: done,
        })?;
        Ok(done)
    }

    /// Every arm on the first online day, before it trains on it.
    fn offline_eval(&mut self) -> anyhow::Result<()> {
        let Some(&first) = self.plan.online.first() else {
            return Ok(());
        };
        let day = self.data.day(first as usize)?;
        let running = self
            .arms
            .iter()
            .filter(|a| a.state.failed.is_none())
            .count() as u64;
        self.emit(EngineEvent::StageStarted {
            stage: Stage::OfflineEval,
            arm: None,
            day: Some(first),
            total: day.rows() as u64 * running,
        })?;
        let started = Instant::now();
        let user = self.data.spec().user_index();
        for i in 0..self.arms.len() {
            if self.arms[i].state.failed.is_some() {
                continue;
            }
            let m = evaluate(&self.arms[i].student, &day, user)?;
            let arm = &self.arms[i];
            let event = EngineEvent::OfflineResult {
                arm: arm.name(),
                seconds: arm.state.offline_seconds,
                samples: arm.state.offline_samples,
                metrics: m,
            };
            self.emit(event)?;
        }
        self.emit(EngineEvent::StageFinished {
            stage: Stage::OfflineEval,
            arm: None,
            day: Some(first),
            seconds: started.elapsed().as_secs_f64(),
            samples: day.rows() as u64 * running,
        })
    }
}

/// Test-then-train evaluation of one model on one day.
pub(crate) fn evaluate(
    model: &Trainer,
    day: &Batch,
    user: Option<usize>,
) -> anyhow::Result<crate::protocol::EvalMetrics> {
    let logits = model.predict_logits(day)?;
    Ok(metrics::evaluate(&logits, day, user))
}

/// The run's error when the shared teacher diverged: no arm can be compared without it.
fn teacher_diverged(e: anyhow::Error) -> anyhow::Error {
    e.context(
        "the teacher diverged, and every arm is built from it, distilled from it or compared \
         with it, so the session cannot go on: start a new run with other teacher or training \
         settings (e.g. a lower train.dense_lr or train.emb_lr)",
    )
}

/// A NaN loss (or any training error) names the arm.
pub(crate) fn check_loss(loss: anyhow::Result<f32>, who: &str) -> anyhow::Result<f32> {
    let l = loss.with_context(|| format!("training {who}"))?;
    anyhow::ensure!(l.is_finite(), "training {who}: loss became {l}");
    Ok(l)
}

use rand::SeedableRng as _;

#[cfg(test)]
mod tests {
    use crate::engine::run::tiny_engine;
    use crate::engine::seeds::derive;
    use crate::method::sampler::Strategy;
    use crate::protocol::Stage;

    /// The 1A -> 1B -> 1C path of the engine itself: 1B moves the dense part and leaves every
    /// embedding bit-identical to the projected tables; 1C then moves the embeddings too.
    #[test]
    fn dense_distillation_leaves_the_projected_embeddings_bit_identical() {
        let mut engine = tiny_engine();
        engine.prepare_teacher().unwrap();
        let spec = engine.student_spec.clone();
        let mut student = engine.new_trainer(&spec, derive(1, "init", 0, 0)).unwrap();
        engine.transfer("crossadapt", &mut student).unwrap();
        let projected = student.model().embeddings().data.clone();
        let probe = engine.retained_pool().unwrap().slice(0, 200);
        let before = student.predict_logits(&probe).unwrap();

        student.set_frozen(true, false);
        let n = engine
            .distill_pass(
                "crossadapt",
                Stage::DenseDistill,
                &mut student,
                Strategy::Biased,
                5,
            )
            .unwrap();
        assert!(n > 0);
        let after_1b = student.model().embeddings().data.clone();
        assert!(
            projected
                .iter()
                .zip(&after_1b)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "1B changed an embedding"
        );
        assert_ne!(
            before,
            student.predict_logits(&probe).unwrap(),
            "1B trained nothing"
        );

        student.set_frozen(false, false);
        engine
            .distill_pass(
                "crossadapt",
                Stage::JointDistill,
                &mut student,
                Strategy::Biased,
                6,
            )
            .unwrap();
        assert_ne!(
            after_1b,
            student.model().embeddings().data,
            "1C froze the tables"
        );
    }
}

/// The offline stage's isolation of a failing arm and its safe points, run end to end.
#[cfg(test)]
mod isolation_tests {
    use std::path::{Path, PathBuf};
    use std::sync::mpsc::{channel, Sender};
    use std::sync::{Arc, Mutex};

    use crate::engine::{CheckpointStore, Engine, EngineIo, Outcome, SessionConfig};
    use crate::protocol::{EngineCommand, EngineEvent, EventSink, Ledger, Record, Stage};

    type Trigger = Box<dyn Fn(&EngineEvent) -> bool + Send>;

    /// Records every event; sends `Stop` once, at the first event `trigger` accepts.
    struct Watch {
        records: Arc<Mutex<Vec<Record>>>,
        stop: Option<(Trigger, Sender<EngineCommand>)>,
    }

    impl EventSink for Watch {
        fn emit(&mut self, record: &Record) -> anyhow::Result<()> {
            if self.stop.as_ref().is_some_and(|(t, _)| t(&record.event)) {
                if let Some((_, tx)) = self.stop.take() {
                    let _ = tx.send(EngineCommand::Stop);
                }
            }
            self.records.lock().unwrap().push(record.clone());
            Ok(())
        }
    }

    /// Checkpoints into `root/<label>`, keeping each label's last covered sequence number.
    struct Folder(PathBuf, Arc<Mutex<Vec<(String, u64)>>>);

    impl CheckpointStore for Folder {
        fn save(
            &mut self,
            label: &str,
            seq: u64,
            write: &mut dyn FnMut(&Path) -> anyhow::Result<()>,
        ) -> anyhow::Result<String> {
            let dir = self.0.join(label);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            write(&dir)?;
            self.1.lock().unwrap().push((label.to_string(), seq));
            Ok(label.to_string())
        }
    }

    struct Run {
        outcome: Outcome,
        records: Vec<Record>,
        checkpoints: Vec<(String, u64)>,
    }

    /// Runs `cfg` (resumed from `root/<label>` after `seq` when given) until it finishes or
    /// stops.
    fn run(
        cfg: &SessionConfig,
        root: &Path,
        resume: Option<(&str, u64)>,
        stop: Option<Trigger>,
    ) -> Run {
        let records = Arc::new(Mutex::new(Vec::new()));
        let checkpoints = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        let io = EngineIo {
            sinks: vec![Box::new(Watch {
                records: records.clone(),
                stop: stop.map(|t| (t, tx)),
            })],
            commands: Some(rx),
            checkpoints: Some(Box::new(Folder(root.to_path_buf(), checkpoints.clone()))),
        };
        let mut engine = match resume {
            None => Engine::new(cfg.clone(), "t", "t", io).unwrap(),
            Some((label, seq)) => {
                Engine::resume(cfg.clone(), "t", "t", &root.join(label), seq + 1, io).unwrap()
            }
        };
        let outcome = engine.run().unwrap();
        drop(engine);
        let records = records.lock().unwrap().clone();
        let checkpoints = checkpoints.lock().unwrap().clone();
        Run {
            outcome,
            records,
            checkpoints,
        }
    }

    /// Every result a run produced, as comparable text: offline results and day metrics.
    fn results(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .filter_map(|r| match &r.event {
                EngineEvent::OfflineResult { arm, metrics, .. } => {
                    Some(format!("offline {arm} {metrics:?}"))
                }
                EngineEvent::DayMetrics {
                    arm, day, metrics, ..
                } => Some(format!("day {day} {arm} {metrics:?}")),
                _ => None,
            })
            .collect()
    }

    /// The arms that started offline work in `records`.
    fn offline_starts(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .filter_map(|r| match &r.event {
                EngineEvent::StageStarted {
                    stage: Stage::OfflineTrain | Stage::Transfer,
                    arm: Some(arm),
                    ..
                } => Some(arm.clone()),
                // crossadapt-nosample has no 1A; its first pass announces it.
                _ => None,
            })
            .collect()
    }

    /// The resumed run's records after the checkpoint: the log is cut there.
    fn joined(first: &[Record], seq: u64, resumed: &[Record]) -> Vec<Record> {
        first
            .iter()
            .filter(|r| r.seq <= seq)
            .chain(resumed)
            .cloned()
            .collect()
    }

    /// A temperature this small makes the distillation loss NaN: kd and crossadapt diverge in
    /// the offline stage, scratch (labels only) does not.
    fn diverging() -> SessionConfig {
        SessionConfig::tiny(&[
            "arms=[\"scratch\", \"kd\", \"crossadapt\", \"crossadapt-fixed\"]",
            "method.temperature=1e-40",
        ])
        .unwrap()
    }

    #[test]
    fn an_arm_diverging_offline_fails_alone_and_a_resume_keeps_it_failed() {
        let cfg = diverging();
        let root = tempfile::tempdir().unwrap();
        let whole = run(&cfg, root.path(), None, None);
        assert_eq!(whole.outcome, Outcome::Finished);
        let mut ledger = Ledger::default();
        for r in &whole.records {
            ledger.apply(r);
        }
        for (failed, why) in [
            ("kd", "training kd"),
            ("crossadapt", "training crossadapt"),
            ("crossadapt-fixed", "crossadapt's, which failed"),
        ] {
            let arm = ledger.arm(failed).unwrap();
            assert!(
                arm.failed.as_deref().is_some_and(|m| m.contains(why)),
                "{failed}: {:?}",
                arm.failed
            );
            assert!(arm.offline.is_none() && arm.days.is_empty(), "{failed}");
        }
        let scratch = ledger.arm("scratch").unwrap();
        assert!(scratch.failed.is_none() && scratch.offline.is_some());
        assert_eq!(
            scratch.days.len(),
            5,
            "one result per online day of the tiny split"
        );
        let verdict = ledger.verdict(None);
        assert!(verdict
            .arms
            .iter()
            .any(|a| a.arm == "kd" && a.failed.is_some()));

        // Stopped right after kd failed: the stop waits for kd's end, checkpoints scratch and
        // the failed kd, and the resumed run neither trains kd again nor loses its mark.
        let root = tempfile::tempdir().unwrap();
        let kd_failed: Trigger =
            Box::new(|e| matches!(e, EngineEvent::ArmFailed { arm, .. } if arm == "kd"));
        let first = run(&cfg, root.path(), None, Some(kd_failed));
        assert_eq!(first.outcome, Outcome::Stopped);
        let (label, seq) = first.checkpoints.last().unwrap().clone();
        assert_eq!(label, "offline");
        let resumed = run(&cfg, root.path(), Some((&label, seq)), None);
        assert_eq!(resumed.outcome, Outcome::Finished);
        assert_eq!(
            offline_starts(&resumed.records),
            vec!["crossadapt".to_string()]
        );
        assert!(!resumed
            .records
            .iter()
            .any(|r| matches!(&r.event, EngineEvent::ArmFailed { arm, .. } if arm == "kd")));
        let all = joined(&first.records, seq, &resumed.records);
        let mut ledger = Ledger::default();
        for r in &all {
            ledger.apply(r);
        }
        assert!(ledger.arm("kd").unwrap().failed.is_some());
        assert_eq!(results(&all), results(&whole.records));
    }

    /// A teacher that predicts NaN (here loaded with NaN dense weights) is one error for the run,
    /// before any arm is built and before any checkpoint a resume could loop on.
    #[test]
    fn a_diverged_teacher_is_one_clear_error_before_any_arm_or_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("teacher.safetensors");
        let mut engine = crate::engine::run::tiny_engine();
        engine.prepare_teacher().unwrap();
        let teacher = engine.teacher.as_mut().unwrap();
        for var in teacher.model().dense().vars() {
            let nan = candle_core::Tensor::full(f32::NAN, var.shape(), var.device()).unwrap();
            var.set(&nan).unwrap();
        }
        teacher.save(&path).unwrap();
        let set = format!("teacher.checkpoint=\"{}\"", path.display());
        let cfg = SessionConfig::tiny(&[&set]).unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let checkpoints = Arc::new(Mutex::new(Vec::new()));
        let io = EngineIo {
            sinks: vec![Box::new(Watch {
                records: records.clone(),
                stop: None,
            })],
            commands: None,
            checkpoints: Some(Box::new(Folder(
                dir.path().to_path_buf(),
                checkpoints.clone(),
            ))),
        };
        let err = Engine::new(cfg, "t", "t", io).unwrap().run().unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("the teacher diverged") && message.contains("predicts NaN"),
            "{message}"
        );
        assert!(checkpoints.lock().unwrap().is_empty());
        let records = records.lock().unwrap();
        assert!(!records.iter().any(|r| matches!(
            r.event,
            EngineEvent::ArmFailed { .. }
                | EngineEvent::StageStarted {
                    stage: Stage::OfflineTrain | Stage::Transfer,
                    ..
                }
        )));
        assert!(matches!(
            &records.last().unwrap().event,
            EngineEvent::Error { message } if message.contains("the teacher diverged")
        ));
    }

    #[test]
    fn a_stop_offline_checkpoints_the_finished_arms_and_a_resume_goes_on_from_the_next() {
        let cfg = SessionConfig::tiny(&["arms=[\"scratch\", \"kd\", \"crossadapt\"]"]).unwrap();
        let root = tempfile::tempdir().unwrap();
        let whole = run(&cfg, root.path(), None, None);
        assert_eq!(whole.outcome, Outcome::Finished);

        // The stop arrives as kd starts: kd finishes, then the engine checkpoints and stops.
        let root = tempfile::tempdir().unwrap();
        let kd_starts: Trigger = Box::new(
            |e| matches!(e, EngineEvent::StageStarted { stage: Stage::OfflineTrain, arm: Some(a), .. } if a == "kd"),
        );
        let first = run(&cfg, root.path(), None, Some(kd_starts));
        assert_eq!(first.outcome, Outcome::Stopped);
        let (label, seq) = first.checkpoints.last().unwrap().clone();
        assert_eq!(label, "offline");
        assert_eq!(offline_starts(&first.records), vec!["scratch", "kd"]);
        let resumed = run(&cfg, root.path(), Some((&label, seq)), None);
        assert_eq!(resumed.outcome, Outcome::Finished);
        assert_eq!(offline_starts(&resumed.records), vec!["crossadapt"]);
        let all = joined(&first.records, seq, &resumed.records);
        assert_eq!(results(&all), results(&whole.records));
    }
}
