//! Before the switch: the teacher on the history, then every arm's offline stage (1A-1C for
//! crossadapt, full retained-data training for the baselines), evaluated on the first online day.

use std::time::Instant;

use anyhow::Context;

use super::arms::{ArmKind, CrossAdaptVariant};
use super::checkpoint::clone_trainer;
use super::events::{EngineEvent, FieldProjection, Position, Stage};
use super::run::{Arm, Engine};
use super::seeds::{arm_key, derive};
use super::state::ArmRecord;
use crate::data::Batch;
use crate::method::projection::project_table;
use crate::method::sampler::{StrategicSampler, Strategy};
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
                    check_loss(teacher.train_batch(&b, Target::Labels), "teacher")?;
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

    /// Builds every arm at the switch point and evaluates it on the first online day.
    pub(crate) fn offline_stage(&mut self) -> anyhow::Result<()> {
        self.arms.clear();
        for name in self.cfg.arms.clone() {
            let kind = ArmKind::parse(&name)?;
            let arm = match kind {
                ArmKind::Incumbent => self.incumbent_arm(&name)?,
                ArmKind::Scratch | ArmKind::Kd => self.baseline_arm(&name, kind)?,
                ArmKind::CrossAdapt(v) => self.crossadapt_arm(&name, v)?,
            };
            self.arms.push(arm);
        }
        self.offline_eval()
    }

    fn teacher_ref(&self) -> anyhow::Result<&Trainer> {
        self.teacher.as_ref().context("the teacher is not ready")
    }

    fn incumbent_arm(&mut self, name: &str) -> anyhow::Result<Arm> {
        let student = clone_trainer(self.teacher_ref()?, &self.cfg.train)?;
        Ok(Arm {
            kind: ArmKind::Incumbent,
            student,
            teacher: None,
            rec: ArmRecord {
                name: name.to_string(),
                model: self.teacher_spec.to_string(),
                ..Default::default()
            },
        })
    }

    /// scratch (labels) and kd (distillation from the frozen teacher) over every retained row.
    fn baseline_arm(&mut self, name: &str, kind: ArmKind) -> anyhow::Result<Arm> {
        let spec = self.student_spec.clone();
        let mut student =
            self.new_trainer(&spec, derive(self.cfg.seed, "init", arm_key(name), 0))?;
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
        Ok(Arm {
            kind,
            student,
            teacher: None,
            rec: ArmRecord {
                name: name.to_string(),
                model: spec.to_string(),
                offline_seconds: seconds,
                offline_samples: done,
                ..Default::default()
            },
        })
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

    fn crossadapt_arm(&mut self, name: &str, v: CrossAdaptVariant) -> anyhow::Result<Arm> {
        // Variants that differ only online share one offline run (same seeds, same result).
        let shared = self.arms.iter().position(
            |a| matches!(a.kind, ArmKind::CrossAdapt(o) if o.offline_key() == v.offline_key()),
        );
        let (student, mut rec) = match shared {
            Some(i) => {
                let src = &self.arms[i];
                let student = clone_trainer(&src.student, &self.cfg.train)?;
                let rec = ArmRecord {
                    name: name.to_string(),
                    ..src.rec.clone()
                };
                (student, rec)
            }
            None => self.crossadapt_offline(name, v)?,
        };
        rec.days.clear();
        let teacher = if v.asymmetric_teacher {
            Some(clone_trainer(self.teacher_ref()?, &self.cfg.train)?)
        } else {
            None
        };
        Ok(Arm {
            kind: ArmKind::CrossAdapt(v),
            student,
            teacher,
            rec,
        })
    }

    fn crossadapt_offline(
        &mut self,
        name: &str,
        v: CrossAdaptVariant,
    ) -> anyhow::Result<(Trainer, ArmRecord)> {
        let spec = self.student_spec.clone();
        let seed = self.cfg.seed;
        let started = Instant::now();
        let mut student =
            self.new_trainer(&spec, derive(seed, "init", arm_key("crossadapt"), 0))?;
        let projection = if v.projection {
            self.transfer(name, &mut student)?
        } else {
            Vec::new()
        };
        let strategy = if v.sampling {
            self.cfg.method.sampling
        } else {
            Strategy::All
        };
        let mut samples = 0;
        student.set_frozen(true, false);
        for epoch in 0..self.cfg.method.epochs_dense {
            let s = derive(seed, "sample-1b", arm_key(name), epoch as u64);
            samples += self.distill_pass(name, Stage::DenseDistill, &mut student, strategy, s)?;
        }
        student.set_frozen(false, false);
        for epoch in 0..self.cfg.method.epochs_joint {
            let s = derive(seed, "sample-1c", arm_key(name), epoch as u64);
            samples += self.distill_pass(name, Stage::JointDistill, &mut student, strategy, s)?;
        }
        let rec = ArmRecord {
            name: name.to_string(),
            model: spec.to_string(),
            offline_seconds: started.elapsed().as_secs_f64(),
            offline_samples: samples,
            projection,
            ..Default::default()
        };
        Ok((student, rec))
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
        self.emit(EngineEvent::StageStarted {
            stage: Stage::OfflineEval,
            arm: None,
            day: Some(first),
            total: day.rows() as u64 * self.arms.len() as u64,
        })?;
        let started = Instant::now();
        let user = self.data.spec().user_index();
        for i in 0..self.arms.len() {
            let m = evaluate(&self.arms[i].student, &day, user)?;
            let arm = &mut self.arms[i];
            arm.rec.offline = Some(m.clone());
            let event = EngineEvent::OfflineResult {
                arm: arm.rec.name.clone(),
                seconds: arm.rec.offline_seconds,
                samples: arm.rec.offline_samples,
                metrics: m,
            };
            self.emit(event)?;
        }
        self.emit(EngineEvent::StageFinished {
            stage: Stage::OfflineEval,
            arm: None,
            day: Some(first),
            seconds: started.elapsed().as_secs_f64(),
            samples: day.rows() as u64 * self.arms.len() as u64,
        })
    }
}

/// Test-then-train evaluation of one model on one day.
pub(crate) fn evaluate(
    model: &Trainer,
    day: &Batch,
    user: Option<usize>,
) -> anyhow::Result<crate::engine::events::EvalMetrics> {
    let logits = model.predict_logits(day)?;
    Ok(metrics::evaluate(&logits, day, user))
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
    use crate::engine::events::Stage;
    use crate::engine::run::tiny_engine;
    use crate::engine::seeds::derive;
    use crate::method::sampler::Strategy;

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
