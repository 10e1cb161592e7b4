//! Before the switch: the teacher on the history, then every arm's offline stage by its recipe
//! (`method::recipe`: 1A-1C for crossadapt, full retained-data training for the baselines),
//! evaluated on the first online day. This file schedules, isolates a failing arm and emits.

use std::time::Instant;

use anyhow::Context;

use super::cpu::CpuSpan;
use super::run::{Engine, StopRequested};
use super::state::ResumePoint;
use crate::method::arm::clone_trainer;
use crate::method::recipe::{check_loss, recipe, Host};
use crate::method::seeds::derive;
use crate::method::Arm;
use crate::protocol::{ArmKind, EngineEvent, Position, Stage};
use crate::train::{metrics, Target, Trainer};

impl Engine {
    /// Trains the teacher on the history and retained days in time order (the deployed model has
    /// seen everything up to the switch), or loads it from `teacher.checkpoint` or a bundle.
    /// Returns it with the seconds its training took (0 when loaded).
    pub(crate) fn prepare_teacher(&mut self) -> anyhow::Result<(Trainer, f64)> {
        if let Some(path) = self.config().teacher.checkpoint.clone() {
            let trainer = Trainer::load(&path, &self.config().train).with_context(|| {
                format!("cannot load the teacher checkpoint {}", path.display())
            })?;
            anyhow::ensure!(
                trainer.model().spec() == self.teacher_spec(),
                "teacher checkpoint {} holds `{}`, but teacher.model is `{}`",
                path.display(),
                trainer.model().spec(),
                self.teacher_spec()
            );
            // Same table sizes are not enough: the id -> row map must be this run's.
            let ours = self.vocabulary().fingerprint();
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
            return Ok((trainer, 0.0));
        }
        if let Some(path) = self.config().teacher.bundle.clone() {
            let bundle = crate::bundle::Bundle::open(&path).context("teacher.bundle")?;
            let trainer = bundle
                .trainer(self.vocabulary(), &self.config().train)
                .with_context(|| format!("cannot load the teacher bundle {}", path.display()))?;
            return Ok((trainer, 0.0));
        }
        let days: Vec<u32> = self
            .plan()
            .history
            .iter()
            .chain(&self.plan().retained)
            .copied()
            .collect();
        let spec = self.teacher_spec().clone();
        let mut teacher = self.new_trainer(&spec, derive(self.config().seed, "teacher", 0, 0))?;
        let epochs = self.config().teacher.epochs;
        let first_rows = self.dataset().rows(days[0] as usize)? as u64;
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
                let day = self.day_on_disk(d, |_| ())?;
                for b in day.chunks(self.config().batch_size) {
                    let b = b?;
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
        let seconds = started.elapsed().as_secs_f64();
        self.emit(EngineEvent::StageFinished {
            stage: Stage::TeacherPretrain,
            arm: None,
            day: None,
            seconds,
            samples: done,
            heap_peak: None,
        })?;
        Ok((teacher, seconds))
    }

    /// The shared teacher must predict finite logits: every arm but scratch starts from it or
    /// learns from it, so a diverged teacher (trained here, or loaded with non-finite weights)
    /// is one clear error for the run, before any checkpoint would carry it into a resume,
    /// rather than one failure per dependent arm.
    pub(crate) fn check_teacher(&mut self) -> anyhow::Result<()> {
        let Some(&d) = self.plan().retained.first().or(self.plan().history.last()) else {
            return Ok(());
        };
        let probe = self.dataset().head(d as usize, self.config().batch_size)?;
        let logits = Host::teacher(self)?.predict_logits(&probe)?;
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
    /// (`method::seeds`), so an arm trained after a resume is the arm the uninterrupted run
    /// trained.
    pub(crate) fn offline_stage(&mut self, arms_done: usize) -> anyhow::Result<()> {
        self.arms_mut().truncate(arms_done);
        let kinds = self.config().arms.clone();
        for (i, &kind) in kinds.iter().enumerate().skip(arms_done) {
            self.set_phase(ResumePoint::Offline { arms_done: i });
            self.safe_point(&Position {
                stage: Stage::OfflineTrain,
                arm: Some(kind.to_string()),
                day: None,
                batch: 0,
            })?;
            let arm = self.offline_arm(kind)?;
            self.arms_mut().push(arm);
        }
        self.set_phase(ResumePoint::Offline {
            arms_done: kinds.len(),
        });
        self.safe_point(&Position {
            stage: Stage::OfflineEval,
            arm: None,
            day: self.plan().online.first().copied(),
            batch: 0,
        })?;
        self.offline_eval()
    }

    /// One arm's offline stage, by its recipe. An arm whose training fails (a NaN loss, a
    /// divergence) is kept, marked failed with its reason and announced with `ArmFailed`: the
    /// other arms go on, the failed one is skipped by the evaluation, the gate and every online
    /// day, and a resume (whose checkpoint carries the mark) does not run it again.
    pub(crate) fn offline_arm(&mut self, kind: ArmKind) -> anyhow::Result<Arm> {
        let method = recipe(kind);
        let mut arm = method.build(self)?;
        // The arm's own learning rates (`per_arm`; the session's without an entry).
        let train = Host::arm_settings(self, kind).train.clone();
        arm.student.set_learning_rates(train.emb_lr, train.dense_lr);
        let key = method.offline_key();
        // Arms whose offline stages are one computation share one run (same seeds, same
        // values, same result, the same failure if it failed).
        let own = self.config().arm_overrides(kind).cloned();
        let shared = key.and_then(|key| {
            self.arms().iter().position(|a| {
                recipe(a.kind()).offline_key() == Some(key)
                    && self.config().arm_overrides(a.kind()) == own.as_ref()
            })
        });
        let result = match shared {
            Some(i) => {
                let src = &self.arms()[i];
                arm.student = clone_trainer(&src.student, &train)?;
                arm.state.offline_seconds = src.state.offline_seconds;
                arm.state.offline_samples = src.state.offline_samples;
                arm.state.offline_cpu_seconds = src.state.offline_cpu_seconds;
                match &src.state.failed {
                    Some(why) => Err(anyhow::anyhow!(
                        "its offline stage is {}'s, which failed: {why}",
                        src.name()
                    )),
                    None => Ok(()),
                }
            }
            None => {
                // The recipe times its own wall seconds; the CPU of the same stage is the
                // process's over the call (the stages run one at a time).
                let cpu = CpuSpan::start();
                let done = method.offline(self, &mut arm);
                arm.state.offline_cpu_seconds = cpu.seconds();
                done
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if e.downcast_ref::<StopRequested>().is_some() => return Err(e),
            Err(e) => {
                let message = format!("{e:#}");
                arm.state.failed = Some(message.clone());
                self.emit(EngineEvent::ArmFailed {
                    arm: arm.name(),
                    message,
                })?;
            }
        }
        Ok(arm)
    }

    /// Every arm on the first online day, before it trains on it.
    fn offline_eval(&mut self) -> anyhow::Result<()> {
        let Some(&first) = self.plan().online.first() else {
            return Ok(());
        };
        let day = self.day_on_disk(first, |_| ())?;
        let running = self
            .arms()
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
        let user = self.features().user_index();
        for i in 0..self.arms().len() {
            if self.arms()[i].state.failed.is_some() {
                continue;
            }
            let logits = self.arms()[i].student.predict_pool(&day)?;
            let m = metrics::evaluate_rows(&logits, day.labels(), user.and(day.users()));
            let arm = &self.arms()[i];
            let (seconds, samples) = (arm.state.offline_seconds, arm.state.offline_samples);
            let event = EngineEvent::OfflineResult {
                arm: arm.name(),
                seconds,
                samples,
                samples_per_sec: crate::protocol::throughput(samples, seconds),
                metrics: m,
                cpu_seconds: arm.state.offline_cpu_seconds,
            };
            self.emit(event)?;
        }
        self.emit(EngineEvent::StageFinished {
            stage: Stage::OfflineEval,
            arm: None,
            day: Some(first),
            seconds: started.elapsed().as_secs_f64(),
            samples: day.rows() as u64 * running,
            heap_peak: None,
        })
    }
}

/// The run's error when the shared teacher diverged: no arm can be compared without it.
fn teacher_diverged(e: anyhow::Error) -> anyhow::Error {
    e.context(
        "the teacher diverged, and every arm is built from it, distilled from it or compared \
         with it, so the session cannot go on: start a new run with other teacher or training \
         settings (e.g. a lower train.dense_lr or train.emb_lr)",
    )
}

#[cfg(test)]
mod tests {
    use crate::engine::run::tiny_engine;
    use crate::method::recipe::{distill_pass, transfer, Host};
    use crate::method::sampler::Strategy;
    use crate::method::seeds::derive;
    use crate::protocol::{CrossAdaptVariant, Stage};

    /// The 1A -> 1B -> 1C path of the engine itself: 1B moves the dense part and leaves every
    /// embedding bit-identical to the projected tables; 1C then moves the embeddings too.
    #[test]
    fn dense_distillation_leaves_the_projected_embeddings_bit_identical() {
        let mut engine = tiny_engine();
        let (teacher, seconds) = engine.prepare_teacher().unwrap();
        engine.install_teacher(teacher, seconds);
        let spec = engine.student_spec().clone();
        let mut student = engine.new_trainer(&spec, derive(1, "init", 0, 0)).unwrap();
        transfer(&mut engine, "crossadapt", &mut student).unwrap();
        let projected = student.model().embeddings().data.clone();
        let probe = engine.retained_pool().unwrap().slice(0, 200).unwrap();
        let before = student.predict_logits(&probe).unwrap();

        student.set_frozen(true, false);
        let n = distill_pass(
            &mut engine,
            "crossadapt",
            Stage::DenseDistill,
            &mut student,
            Strategy::Biased,
            CrossAdaptVariant::FULL,
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
        distill_pass(
            &mut engine,
            "crossadapt",
            Stage::JointDistill,
            &mut student,
            Strategy::Biased,
            CrossAdaptVariant::FULL,
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

    use crate::engine::{
        CheckpointStore, Engine, EngineIo, Outcome, SavedCheckpoint, SessionConfig,
    };
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
        ) -> anyhow::Result<SavedCheckpoint> {
            let dir = self.0.join(label);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            write(&dir)?;
            self.1.lock().unwrap().push((label.to_string(), seq));
            Ok(SavedCheckpoint {
                shown: label.to_string(),
                dir,
            })
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
            "per_arm.kd.temperature=1e-40",
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
        let (teacher, _) = engine.prepare_teacher().unwrap();
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
