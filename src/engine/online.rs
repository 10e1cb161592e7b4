//! After the switch: every arm lives through the online days, test-then-train, in time order.
//! crossadapt's student steps every batch against its teacher's current logits while the
//! teacher accumulates label gradients and steps every N batches (asymmetric co-distillation),
//! with replay rows from the retained pool and a drift-aware distillation weight.

use std::time::Instant;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::arm::Arm;
use super::offline::{check_loss, evaluate};
use super::run::{Engine, StopRequested};
use super::seeds::{arm_key, derive};
use super::state::ResumePoint;
use crate::data::drift::{jensen_shannon, psi};
use crate::data::sketch::{shares, DaySketch, KeyReference};
use crate::data::{Batch, RawDay};
use crate::method::adaptation::{distill_weight, drift_weight, replay_ratio, DriftSignals};
use crate::protocol::{ArmKind, EngineEvent, FieldDrift, Position, Stage};
use crate::train::Target;

/// Keys per field kept as their own bucket when measuring drift (the rest is "other").
const DRIFT_TOP_IDS: usize = 50;
/// Keys per field and day the drift sketches keep (see `data::sketch`): chosen by how close the
/// sketched PSI comes to the exact one on the default stream's days (docs/method.md).
pub(crate) const DRIFT_SKETCH_KEYS: usize = 8 * DRIFT_TOP_IDS;
/// Fields listed in a `Drift` event.
const DRIFT_FIELDS_SHOWN: usize = 6;

/// What every arm shares about an incoming day's drift.
#[derive(Clone, Debug)]
pub(crate) struct DayDrift {
    pub fields: Vec<FieldDrift>,
    pub label_rate: f64,
    pub reference_label_rate: f64,
    /// Re-measurements inside the day (`adaptation.every_batches`): at batch `b`, over the rows
    /// before it, against the same reference.
    pub within: Vec<(u32, DayDrift)>,
}

/// The reference window of a day's drift: each field's key distribution and the label rate.
pub(crate) struct DriftReference {
    fields: Vec<KeyReference>,
    label_rate: f64,
}

impl Engine {
    /// Online day `index` of the plan, from arm `start_arm` on (a resumed day skips the arms
    /// its checkpoint already covers).
    pub(crate) fn online_day(&mut self, index: usize, start_arm: usize) -> anyhow::Result<()> {
        let d = self.plan.online[index];
        let reference = self.drift_reference(index)?;
        let (batch_size, every) = (self.cfg.batch_size, self.cfg.adaptation.every_batches);
        // One read of the day: its drift and its sketch come from the raw keys, then it is
        // encoded.
        let (day, (sketch, drift)) = self.data.day_with(d as usize, |raw| {
            (
                DaySketch::of(raw, DRIFT_SKETCH_KEYS),
                measure_drift(&reference, raw, self.data.spec(), batch_size, every),
            )
        })?;
        self.drift_window.push((d, sketch));
        self.rows_since_checkpoint += day.rows() as u64;
        let total = day.rows() as u64 * self.arms.len() as u64;
        self.emit(EngineEvent::StageStarted {
            stage: Stage::Online,
            arm: None,
            day: Some(d),
            total,
        })?;
        let started = Instant::now();
        if start_arm == 0 {
            // Before any arm trains on the day. A day resumed past its first arm logged its
            // gate evidence before the checkpoint it resumes from.
            self.gate_day(d, &day)?;
        }
        let primary = self
            .arms
            .iter()
            .position(|a| matches!(a.kind(), ArmKind::CrossAdapt(v) if v.adaptive));
        for i in start_arm..self.arms.len() {
            self.phase = Some(ResumePoint::Online {
                next: index,
                arms_done: i,
            });
            self.safe_point(&Position {
                stage: Stage::Online,
                arm: Some(self.arms[i].name()),
                day: Some(d),
                batch: 0,
            })?;
            if self.arms[i].state.failed.is_some() {
                continue;
            }
            let mut arm = self.arms.remove(i);
            let result = self.arm_day(&mut arm, d, &day, &drift, primary == Some(i));
            let name = arm.name();
            if let Err(e) = &result {
                if e.downcast_ref::<StopRequested>().is_none() {
                    arm.state.failed = Some(format!("{e:#}"));
                }
            }
            self.arms.insert(i, arm);
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
        })
    }

    /// The drift reference of online day `index`: the `reference_days` days just before it (the
    /// tail of the retained window for the first days), from their sketches. A day is sketched
    /// once, when it is read for training; only days the engine has not sketched yet (the
    /// retained tail at the first online day, the window after a resume) are read here.
    fn drift_reference(&mut self, index: usize) -> anyhow::Result<DriftReference> {
        let before: Vec<u32> = self
            .plan
            .retained
            .iter()
            .chain(&self.plan.online[..index])
            .copied()
            .collect();
        let take = self.cfg.adaptation.reference_days.max(1).min(before.len());
        let window = &before[before.len() - take..];
        self.drift_window.retain(|(d, _)| window.contains(d));
        for &d in window {
            if !self.drift_window.iter().any(|(w, _)| *w == d) {
                let raw = self.data.raw_day(d as usize)?;
                self.drift_window
                    .push((d, DaySketch::of(&raw, DRIFT_SKETCH_KEYS)));
            }
        }
        let sketches: Vec<&DaySketch> = self.drift_window.iter().map(|(_, s)| s).collect();
        let rows: u64 = sketches.iter().map(|s| s.rows).sum();
        let positives: f64 = sketches.iter().map(|s| s.positives).sum();
        Ok(DriftReference {
            fields: (0..self.data.spec().num_cat())
                .map(|f| KeyReference::new(&sketches, f, DRIFT_TOP_IDS))
                .collect(),
            label_rate: if rows == 0 {
                f64::NAN
            } else {
                positives / rows as f64
            },
        })
    }

    fn arm_day(
        &mut self,
        arm: &mut Arm,
        d: u32,
        day: &Batch,
        drift: &DayDrift,
        primary: bool,
    ) -> anyhow::Result<()> {
        let name = arm.name();
        let user = self.data.spec().user_index();
        let metrics = evaluate(&arm.student, day, user)?;
        let mut signals = DriftSignals {
            field_psi: drift.fields.iter().map(|f| f.psi).collect(),
            label_rate: drift.label_rate,
            reference_label_rate: drift.reference_label_rate,
            teacher_loss: None,
            student_loss: Some(metrics.logloss),
        };
        if let ArmKind::CrossAdapt(_) = arm.kind() {
            let teacher = match &arm.teacher {
                Some(t) => t,
                None => self.teacher.as_ref().context("the teacher is not ready")?,
            };
            signals.teacher_loss = Some(evaluate(teacher, day, user)?.logloss);
        }
        arm.state.last_teacher_loss = signals.teacher_loss;
        arm.state.last_student_loss = signals.student_loss;
        let mut w = drift_weight(&signals, &self.cfg.adaptation);
        if primary {
            self.emit_drift(d, None, w, drift)?;
        }

        let variant = match arm.kind() {
            ArmKind::CrossAdapt(v) => Some(v),
            _ => None,
        };
        let adaptive = variant.is_some_and(|v| v.adaptive);
        let mut replay_rng =
            ChaCha8Rng::seed_from_u64(derive(self.cfg.seed, "replay", arm_key(&name), d as u64));
        let started = Instant::now();
        let batch_size = self.cfg.batch_size;
        let n_batches = day.rows().div_ceil(batch_size) as u32;
        let every = self.cfg.online.updates_every;
        let remeasure = self.cfg.adaptation.every_batches;
        let (mut student_ticks, mut teacher_ticks) = (Vec::new(), Vec::new());
        let mut from_batch = 0u32;
        let mut pending = 0u32;
        let (mut student_updates, mut teacher_updates) = (0u32, 0u32);
        let mut samples = 0u64;
        for (bi, b) in day.chunks(batch_size).enumerate() {
            let bi = bi as u32;
            self.poll_commands(&Position {
                stage: Stage::Online,
                arm: Some(name.clone()),
                day: Some(d),
                batch: bi as u64,
            })?;
            if adaptive && remeasure > 0 && bi > 0 && bi.is_multiple_of(remeasure) {
                if let Some((_, dd)) = drift.within.iter().find(|(at, _)| *at == bi) {
                    signals.field_psi = dd.fields.iter().map(|f| f.psi).collect();
                    signals.label_rate = dd.label_rate;
                    w = drift_weight(&signals, &self.cfg.adaptation);
                    if primary {
                        self.emit_drift(d, Some(bi), w, dd)?;
                    }
                }
            }
            let p = self.params.clone();
            match arm.kind() {
                ArmKind::Incumbent | ArmKind::Scratch => {
                    check_loss(arm.student.train_batch(&b, Target::Labels), &name)?;
                }
                ArmKind::Kd => {
                    let teacher = self.teacher.as_ref().context("the teacher is not ready")?;
                    let t = teacher.predict_logits(&b)?;
                    let target = self.distill_target(&t, self.cfg.method.distill_weight, 0.0);
                    check_loss(arm.student.train_batch(&b, target), &name)?;
                }
                ArmKind::CrossAdapt(v) => {
                    let mut x = b.clone();
                    if v.replay {
                        let ratio = if adaptive {
                            replay_ratio(w, p.replay_ratio, self.cfg.adaptation.replay_floor)
                        } else {
                            p.replay_ratio
                        };
                        let n = (ratio * b.rows() as f64).round() as usize;
                        x.extend(&draw_replay(self.retained_pool()?, n, &mut replay_rng));
                    }
                    let teacher = match &arm.teacher {
                        Some(t) => t,
                        None => self.teacher.as_ref().context("the teacher is not ready")?,
                    };
                    let t = teacher.predict_logits(&x)?;
                    let a = if adaptive {
                        distill_weight(w, p.distill_min, p.distill_max)
                    } else {
                        p.distill_max
                    };
                    let target = self.distill_target(&t, a, 0.0);
                    check_loss(arm.student.train_batch(&x, target), &name)?;
                    if let Some(teacher) = arm.teacher.as_mut() {
                        check_loss(
                            teacher.accumulate(&b, Target::Labels),
                            &format!("{name} teacher"),
                        )?;
                        pending += 1;
                        if pending >= p.teacher_interval || bi + 1 == n_batches {
                            teacher.step()?;
                            teacher_ticks.push(bi);
                            teacher_updates += 1;
                            pending = 0;
                        }
                    }
                }
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
        self.emit(EngineEvent::DayMetrics {
            arm: name,
            day: d,
            metrics,
            train_seconds,
            samples,
            samples_per_sec: samples as f64 / train_seconds.max(1e-9),
            student_updates,
            teacher_updates,
        })
    }

    fn emit_drift(
        &mut self,
        d: u32,
        batch: Option<u32>,
        w: f64,
        drift: &DayDrift,
    ) -> anyhow::Result<()> {
        let p = &self.params;
        let mut fields = drift.fields.clone();
        fields.sort_by(|a, b| b.psi.total_cmp(&a.psi));
        fields.truncate(DRIFT_FIELDS_SHOWN);
        let event = EngineEvent::Drift {
            day: d,
            batch,
            weight: w,
            distill_weight: distill_weight(w, p.distill_min, p.distill_max),
            replay_ratio: replay_ratio(w, p.replay_ratio, self.cfg.adaptation.replay_floor),
            label_rate: drift.label_rate,
            reference_label_rate: drift.reference_label_rate,
            fields,
        };
        self.emit(event)
    }
}

/// `n` rows drawn uniformly, with replacement, from the retained pool (none when it is empty).
pub(crate) fn draw_replay(pool: &Batch, n: usize, rng: &mut ChaCha8Rng) -> Batch {
    if pool.is_empty() {
        return Batch::empty(pool.num_cat, pool.num_num);
    }
    let rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..pool.rows())).collect();
    pool.gather(&rows)
}

/// Per-field PSI and Jensen-Shannon of the raw day against `reference` (top keys + "other"
/// buckets) and the two label rates; with `every_batches > 0` also over the rows before every
/// `every_batches`-th batch (`DayDrift::within`). One pass over the day.
pub(crate) fn measure_drift(
    reference: &DriftReference,
    raw: &RawDay,
    spec: &crate::data::FeatureSpec,
    batch_size: usize,
    every_batches: u32,
) -> DayDrift {
    let nf = raw.num_cat;
    let mut counts: Vec<Vec<u64>> = reference.fields.iter().map(|r| vec![0; r.len()]).collect();
    let mut positives = 0.0f64;
    let step = (every_batches as usize).saturating_mul(batch_size);
    let mut within = Vec::new();
    for r in 0..raw.rows() {
        if step > 0 && r > 0 && r % step == 0 {
            let rate = positives / r as f64;
            let at = (r / batch_size) as u32;
            within.push((at, drift_of(reference, &counts, spec, rate)));
        }
        for (f, field) in reference.fields.iter().enumerate() {
            counts[f][field.bucket_of(raw.cat[r * nf + f])] += 1;
        }
        positives += raw.label[r] as f64;
    }
    let mut drift = drift_of(reference, &counts, spec, raw.positive_rate());
    drift.within = within;
    drift
}

fn drift_of(
    reference: &DriftReference,
    counts: &[Vec<u64>],
    spec: &crate::data::FeatureSpec,
    label_rate: f64,
) -> DayDrift {
    let fields = spec
        .cat
        .iter()
        .zip(&reference.fields)
        .zip(counts)
        .map(|((field, r), c)| {
            let p_ref = r.probabilities();
            let p_cur = shares(c);
            FieldDrift {
                field: field.name.clone(),
                psi: psi(p_ref, &p_cur),
                js: jensen_shannon(p_ref, &p_cur),
            }
        })
        .collect();
    DayDrift {
        fields,
        label_rate,
        reference_label_rate: reference.label_rate,
        within: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::draw_replay;
    use crate::engine::run::tiny_engine;

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
        let plan = engine.plan.clone();
        let mut retained = HashSet::new();
        for &d in &plan.retained {
            let day = engine.data.day(d as usize).unwrap();
            retained.extend((0..day.rows()).map(|r| key(&day, r)));
        }
        // Rows that exist only outside the retained window (history and online days).
        let mut elsewhere = HashSet::new();
        for &d in plan.history.iter().chain(&plan.online) {
            let day = engine.data.day(d as usize).unwrap();
            elsewhere.extend(
                (0..day.rows())
                    .map(|r| key(&day, r))
                    .filter(|k| !retained.contains(k)),
            );
        }
        assert!(!elsewhere.is_empty());
        let pool = engine.retained_pool().unwrap().clone();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let drawn = draw_replay(&pool, 5_000, &mut rng);
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
