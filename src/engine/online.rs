//! After the switch: every arm lives through the online days, test-then-train, in time order.
//! What an arm does on each batch is its recipe's (`method::recipe`); this file schedules the
//! days and arms, polls commands between batches, isolates a failing arm and emits the day's
//! records.

use std::time::Instant;

use super::cpu::CpuSpan;
use super::run::{Engine, StopRequested};
use super::state::ResumePoint;
use crate::data::pool::Pool;
use crate::data::sketch::{DaySketch, DaySketcher};
use crate::method::calibration;
use crate::method::drift::{DayDrift, DriftMeter, DriftReference, DRIFT_SKETCH_KEYS};
use crate::method::recipe::{recipe, DayInput};
use crate::method::Arm;
use crate::protocol::{EngineEvent, Position, Stage};
use crate::train::loss::sigmoid;
use crate::train::metrics;

impl Engine {
    /// Online day `index` of the plan, from arm `start_arm` on (a resumed day skips the arms
    /// its checkpoint already covers).
    pub(crate) fn online_day(&mut self, index: usize, start_arm: usize) -> anyhow::Result<()> {
        let d = self.plan().online[index];
        let reference = self.drift_reference(index)?;
        let (batch_size, every) = (
            self.config().batch_size,
            self.config().adaptation.every_batches,
        );
        // The day is read a chunk at a time: each chunk's raw keys feed the drift and the
        // sketch's candidates, then are encoded to the day's file and dropped. The sketch's
        // exact counts need a second streamed read, which costs far less than holding the day.
        let mut sketcher = DaySketcher::new(self.features().num_cat(), DRIFT_SKETCH_KEYS);
        let mut meter = DriftMeter::new(&reference, self.features(), batch_size, every);
        let day = self.day_on_disk(d, |raw| {
            sketcher.first_pass(raw);
            meter.add(raw);
        })?;
        let drift = meter.finish();
        let sketch = self.dataset().finish_sketch(d as usize, sketcher)?;
        self.drift_window_mut().push((d, sketch));
        self.count_online_rows(day.rows() as u64);
        let total = day.rows() as u64 * self.arms().len() as u64;
        self.emit(EngineEvent::StageStarted {
            stage: Stage::Online,
            arm: None,
            day: Some(d),
            total,
        })?;
        let started = Instant::now();
        // Every running arm's logits on the day before any arm trains on it: each arm's
        // test-then-train evaluation, and the gate's evidence, read the same predictions, so
        // they are computed once. A day resumed past its first arm logged its gate evidence
        // before the checkpoint it resumes from; its arms predict for themselves.
        let mut scores = if start_arm == 0 {
            let scores = self.day_scores(&day);
            self.gate_day(d, &day, &scores)?;
            scores
        } else {
            Vec::new()
        };
        // The first drift-adaptive arm announces the day's drift weight.
        let announcer = self
            .arms()
            .iter()
            .position(|a| recipe(a.kind()).adapts_to_drift());
        for i in start_arm..self.arms().len() {
            self.set_phase(ResumePoint::Online {
                next: index,
                arms_done: i,
            });
            self.safe_point(&Position {
                stage: Stage::Online,
                arm: Some(self.arms()[i].name()),
                day: Some(d),
                batch: 0,
            })?;
            if self.arms()[i].state.failed.is_some() {
                continue;
            }
            let mut arm = self.arms_mut().remove(i);
            let logits = scores.get_mut(i).and_then(Option::take);
            let result = self.arm_day(&mut arm, d, &day, &drift, announcer == Some(i), logits);
            let name = arm.name();
            if let Err(e) = &result {
                if e.downcast_ref::<StopRequested>().is_none() {
                    arm.state.failed = Some(format!("{e:#}"));
                }
            }
            self.arms_mut().insert(i, arm);
            match result {
                Ok(()) => {}
                Err(e) if e.downcast_ref::<StopRequested>().is_some() => return Err(e),
                // One arm failing (e.g. a NaN loss) stops that arm only.
                Err(e) => self.emit(EngineEvent::ArmFailed {
                    arm: name,
                    message: format!("{e:#}"),
                })?,
            }
        }
        self.emit(EngineEvent::StageFinished {
            stage: Stage::Online,
            arm: None,
            day: Some(d),
            seconds: started.elapsed().as_secs_f64(),
            samples: total,
            heap_peak: None,
        })
    }

    /// Each arm's raw logits on `day` in the arms' order (`None` for a failed arm, or one that
    /// cannot predict: it fails in its own evaluation, which predicts again); what an arm
    /// serves is [`Arm::served`] of them.
    fn day_scores(&self, day: &Pool) -> Vec<Option<Vec<f32>>> {
        self.arms()
            .iter()
            .map(|a| {
                a.state
                    .failed
                    .is_none()
                    .then(|| a.student.predict_pool(day).ok())
                    .flatten()
            })
            .collect()
    }

    /// One arm's online day: evaluated on the day first (from `logits`, its predictions on the
    /// day made before any arm trained on it, when given), then trained batch by batch by its
    /// recipe, with commands polled between batches and the updates announced every
    /// `updates_every` batches.
    fn arm_day(
        &mut self,
        arm: &mut Arm,
        d: u32,
        day: &Pool,
        drift: &DayDrift,
        announces_drift: bool,
        logits: Option<Vec<f32>>,
    ) -> anyhow::Result<()> {
        let recipe = recipe(arm.kind());
        let name = arm.name();
        let user = self.features().user_index();
        let logits = match logits {
            Some(z) => z,
            None => arm.student.predict_pool(day)?,
        };
        // The drift signal reads the student's own loss (the raw logits), so calibration
        // (`online.calibrate`) changes what is scored and nothing the arm trains with.
        let raw_loss = (arm.state.calibration != 0.0).then(|| {
            let p: Vec<f32> = logits.iter().map(|&z| sigmoid(z)).collect();
            metrics::logloss(&p, day.labels())
        });
        // The intercept the day is served with, fitted on the day before (the report's record).
        let served_with = arm.state.calibration;
        let metrics =
            metrics::evaluate_rows(&arm.served(logits), day.labels(), user.and(day.users()));
        let input = DayInput {
            day: d,
            rows: day,
            drift,
            student_loss: raw_loss.unwrap_or(metrics.logloss),
            announces_drift,
        };
        let mut state = recipe.begin_day(self, arm, &input)?;
        let started = Instant::now();
        let cpu = CpuSpan::start();
        let batch_size = self.config().batch_size;
        let n_batches = day.rows().div_ceil(batch_size) as u32;
        let every = self.config().online.updates_every;
        let (mut student_ticks, mut teacher_ticks) = (Vec::new(), Vec::new());
        let mut from_batch = 0u32;
        let (mut student_updates, mut teacher_updates) = (0u32, 0u32);
        let mut samples = 0u64;
        for (bi, b) in day.chunks(batch_size).enumerate() {
            let b = b?;
            let bi = bi as u32;
            self.poll_commands(&Position {
                stage: Stage::Online,
                arm: Some(name.clone()),
                day: Some(d),
                batch: bi as u64,
            })?;
            let work = recipe.online_batch(self, arm, &mut state, &b, bi, &input)?;
            if work.teacher_stepped {
                teacher_ticks.push(bi);
                teacher_updates += 1;
            }
            student_ticks.push(bi);
            student_updates += 1;
            samples += b.rows() as u64;
            if (bi + 1).is_multiple_of(every) || bi + 1 == n_batches {
                self.emit(EngineEvent::Updates {
                    arm: name.clone(),
                    day: d,
                    from_batch,
                    to_batch: bi + 1,
                    student: std::mem::take(&mut student_ticks),
                    teacher: std::mem::take(&mut teacher_ticks),
                })?;
                from_batch = bi + 1;
            }
            self.progress(
                Stage::Online,
                Some(&name),
                Some(d),
                samples,
                day.rows() as u64,
                started,
            )?;
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let cpu_seconds = cpu.seconds();
        if self.config().online.calibrate {
            // The model that ends the day scores the day it has just trained on; the next day
            // is served with the intercept that makes it calibrated there. A day of one class
            // keeps the previous intercept.
            let z = arm.student.predict_pool(day)?;
            if let Some(c) = calibration::fit_intercept(&z, day.labels()) {
                arm.state.calibration = c;
            }
        }
        self.emit(EngineEvent::DayMetrics {
            arm: name,
            day: d,
            metrics,
            train_seconds,
            samples,
            samples_per_sec: samples as f64 / train_seconds.max(1e-9),
            student_updates,
            teacher_updates,
            distill_weight: state.mean_distill_weight(),
            calibration: self.config().online.calibrate.then_some(served_with),
            matched_weight: state.matched_weight(),
            cpu_seconds,
        })
    }

    /// The drift reference of online day `index`: the `reference_days` days just before it
    /// (the tail of the retained window for the first days), from their sketches. A day is
    /// sketched once, when it is read for training; only days the engine has not sketched yet
    /// (the retained tail at the first online day, the window after a resume) are read here.
    fn drift_reference(&mut self, index: usize) -> anyhow::Result<DriftReference> {
        let plan = self.plan();
        let before: Vec<u32> = plan
            .retained
            .iter()
            .chain(&plan.online[..index])
            .copied()
            .collect();
        let take = self
            .config()
            .adaptation
            .reference_days
            .max(1)
            .min(before.len());
        let window = &before[before.len() - take..];
        self.drift_window_mut().retain(|(d, _)| window.contains(d));
        for &d in window {
            if !self.drift_window_mut().iter().any(|(w, _)| *w == d) {
                let sketch = self.dataset().sketch(d as usize, DRIFT_SKETCH_KEYS)?;
                self.drift_window_mut().push((d, sketch));
            }
        }
        let num_cat = self.features().num_cat();
        let window = self.drift_window_mut();
        window.sort_by_key(|(d, _)| *d);
        let sketches: Vec<&DaySketch> = window.iter().map(|(_, s)| s).collect();
        Ok(DriftReference::of(&sketches, num_cat))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use crate::engine::run::tiny_engine;
    use crate::method::drift::draw_replay;

    /// A row as a comparable key: its ids, numeric bits and label.
    fn key(b: &crate::data::Batch, r: usize) -> (Vec<u32>, Vec<u32>, u32) {
        (
            b.cat_row(r).to_vec(),
            b.num_row(r).iter().map(|v| v.to_bits()).collect(),
            b.label[r].to_bits(),
        )
    }

    #[test]
    fn replay_rows_come_from_the_retained_days_only() {
        let mut engine = tiny_engine();
        let plan = engine.plan().clone();
        let mut retained = HashSet::new();
        for &d in &plan.retained {
            let day = engine.day(d).unwrap();
            retained.extend((0..day.rows()).map(|r| key(&day, r)));
        }
        // Rows that exist only outside the retained window (history and online days).
        let mut elsewhere = HashSet::new();
        for &d in plan.history.iter().chain(&plan.online) {
            let day = engine.day(d).unwrap();
            elsewhere.extend(
                (0..day.rows())
                    .map(|r| key(&day, r))
                    .filter(|k| !retained.contains(k)),
            );
        }
        assert!(!elsewhere.is_empty());
        let pool = engine.retained_pool().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let drawn = draw_replay(&pool, 5_000, &mut rng).unwrap();
        assert_eq!(drawn.rows(), 5_000);
        let mut distinct = HashSet::new();
        for r in 0..drawn.rows() {
            let k = key(&drawn, r);
            assert!(retained.contains(&k), "row {r} is not from a retained day");
            assert!(!elsewhere.contains(&k));
            distinct.insert(k);
        }
        // Uniform over the pool: 5,000 draws from 3,000 rows reach most of them.
        assert!(
            distinct.len() > pool.rows() / 2,
            "{} distinct",
            distinct.len()
        );
    }
}
