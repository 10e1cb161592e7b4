//! What makes a stop and a resume lose nothing an operator did:
//!
//! - `Stop` (the console's quit, SIGTERM, SIGINT) in the online stage is held until the end of
//!   the current arm's day, a safe point, where a checkpoint is written before the engine
//!   stops; in the offline stage likewise until the end of the current arm's offline work, so
//!   a resume continues with the next arm. Teacher pretraining, which has no safe point before
//!   its end, stops at the next batch and the session resumes from its previous checkpoint.
//! - Parameter changes logged after the checkpoint a resume starts from are applied again at
//!   the exact position where the engine first applied them ([`Engine::restore_changes`]), so
//!   the resumed run has every change and computes the numbers the uninterrupted run did.

use super::run::{Engine, StopRequested};
use crate::protocol::{EngineEvent, Params, Position, Stage};

impl Engine {
    /// Parameter changes a resume found in the log after its checkpoint (see the module doc).
    /// Changes made before the run started (a fork's, at `Stage::Setup`) apply at once.
    pub fn restore_changes(&mut self, changes: Vec<(Position, Params)>) -> anyhow::Result<()> {
        self.recovery_mut().changes = changes.into();
        while let Some((at, _)) = self.recovery_mut().changes.front() {
            if at.stage != Stage::Setup {
                break;
            }
            let at = at.clone();
            self.apply_due_changes(&at)?;
        }
        Ok(())
    }

    /// Logs a warning of the run (a resume that fell back to an older checkpoint).
    pub fn warn(&mut self, message: String) -> anyhow::Result<()> {
        self.emit(EngineEvent::Warning { arm: None, message })
    }

    /// Applies the restored changes due at `at`, logging each as the engine did the first time.
    pub(crate) fn apply_due_changes(&mut self, at: &Position) -> anyhow::Result<()> {
        while self
            .recovery_mut()
            .changes
            .front()
            .is_some_and(|(p, _)| p == at)
        {
            if let Some((_, params)) = self.recovery_mut().changes.pop_front() {
                self.change_params(params, at)?;
            }
        }
        Ok(())
    }

    /// An operator's `Stop` at `at` (`safe`: at a safe point).
    pub(crate) fn request_stop(&mut self, at: &Position, safe: bool) -> anyhow::Result<()> {
        if safe {
            self.checkpoint("stop")?;
            return Err(StopRequested.into());
        }
        if !super::run::held_to_safe_point(at.stage) {
            return Err(StopRequested.into());
        }
        if !self.recovery_mut().stop_pending {
            self.recovery_mut().stop_pending = true;
            self.emit(EngineEvent::Warning {
                arm: at.arm.clone(),
                message: format!(
                    "stopping at {} (checkpointed there)",
                    super::run::next_safe_point(at.stage)
                ),
            })?;
        }
        Ok(())
    }

    /// At a safe point: carries out a pending stop (checkpoint, then stop).
    pub(crate) fn stop_if_pending(&mut self) -> anyhow::Result<()> {
        if self.recovery_mut().stop_pending {
            self.recovery_mut().stop_pending = false;
            self.checkpoint("stop")?;
            return Err(StopRequested.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::mpsc::{channel, Sender};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::engine::{CheckpointStore, EngineIo, Outcome, SavedCheckpoint, SessionConfig};
    use crate::protocol::{EngineCommand, EventSink, Record};

    /// Records every event; sends `Stop` at the first `Updates` of the online days (inside an
    /// arm's day).
    struct Watch {
        records: Arc<Mutex<Vec<Record>>>,
        stop_at_online: Option<Sender<EngineCommand>>,
    }

    impl EventSink for Watch {
        fn emit(&mut self, record: &Record) -> anyhow::Result<()> {
            let online = matches!(record.event, EngineEvent::Updates { .. });
            if online {
                if let Some(tx) = self.stop_at_online.take() {
                    let _ = tx.send(EngineCommand::Stop);
                }
            }
            self.records.lock().unwrap().push(record.clone());
            Ok(())
        }
    }

    /// Keeps the labels of the checkpoints written (their content goes to a temporary folder).
    struct Labels(Arc<Mutex<Vec<String>>>, tempfile::TempDir);

    impl CheckpointStore for Labels {
        fn save(
            &mut self,
            label: &str,
            _seq: u64,
            write: &mut dyn FnMut(&Path) -> anyhow::Result<()>,
        ) -> anyhow::Result<SavedCheckpoint> {
            let dir = self.1.path().join(label);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            write(&dir)?;
            self.0.lock().unwrap().push(label.to_string());
            Ok(SavedCheckpoint {
                shown: label.to_string(),
                dir,
            })
        }
    }

    type Shared<T> = Arc<Mutex<Vec<T>>>;

    fn engine(stop_at_online: bool) -> (Engine, Shared<Record>, Shared<String>) {
        let records = Arc::new(Mutex::new(Vec::new()));
        let labels = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        let io = EngineIo {
            sinks: vec![Box::new(Watch {
                records: records.clone(),
                stop_at_online: stop_at_online.then_some(tx),
            })],
            commands: Some(rx),
            checkpoints: Some(Box::new(Labels(
                labels.clone(),
                tempfile::tempdir().unwrap(),
            ))),
        };
        let cfg = SessionConfig::tiny(&[]).unwrap();
        (Engine::new(cfg, "t", "t", io).unwrap(), records, labels)
    }

    #[test]
    fn a_stop_mid_day_waits_for_the_arms_day_end_and_checkpoints_there() {
        let (mut e, records, labels) = engine(true);
        assert_eq!(e.run().unwrap(), Outcome::Stopped);
        let records = records.lock().unwrap();
        let last = &records[records.len() - 1].event;
        assert!(
            matches!(last, EngineEvent::Checkpointed { reason, .. } if reason == "stop"),
            "{last:?}"
        );
        // The arm in its day when the stop came finished that day first.
        let stop = records
            .iter()
            .position(|r| {
                matches!(
                    r.event,
                    EngineEvent::Operator {
                        command: EngineCommand::Stop,
                        ..
                    }
                )
            })
            .unwrap();
        let EngineEvent::Operator { at, .. } = &records[stop].event else {
            unreachable!()
        };
        assert!(at.batch > 0, "{at:?}");
        assert!(records[stop..].iter().any(|r| matches!(
            &r.event,
            EngineEvent::DayMetrics { arm, day, .. } if Some(arm) == at.arm.as_ref() && Some(*day) == at.day
        )));
        let labels = labels.lock().unwrap();
        assert_eq!(labels.last().map(String::as_str), Some("day-0005-arm-1"));
    }

    #[test]
    fn restored_changes_apply_where_they_first_did() {
        let (mut e, records, _) = engine(false);
        let mut setup = e.params().clone();
        setup.distill_max = 0.6;
        let mut later = setup.clone();
        later.replay_ratio = 0.3;
        let at = Position {
            stage: Stage::Online,
            arm: Some("crossadapt".into()),
            day: Some(7),
            batch: 3,
        };
        let changes = vec![
            (
                Position {
                    stage: Stage::Setup,
                    ..Default::default()
                },
                setup.clone(),
            ),
            (at.clone(), later.clone()),
        ];
        e.restore_changes(changes).unwrap();
        assert_eq!(e.params(), &setup, "a setup change applies at once");
        assert_eq!(e.run().unwrap(), Outcome::Finished);
        let records = records.lock().unwrap();
        let changed: Vec<&Record> = records
            .iter()
            .filter(|r| matches!(r.event, EngineEvent::ParamsChanged { .. }))
            .collect();
        assert_eq!(changed.len(), 2);
        assert!(matches!(
            &changed[1].event,
            EngineEvent::ParamsChanged { params, at: p } if *params == later && *p == at
        ));
        // Applied before that batch: after the arm's day started, before its metrics.
        let seq = changed[1].seq;
        let metrics_seq = records
            .iter()
            .find(|r| {
                matches!(&r.event, EngineEvent::DayMetrics { arm, day: 7, .. } if arm == "crossadapt")
            })
            .map(|r| r.seq)
            .unwrap();
        assert!(seq < metrics_seq);
    }
}
