//! A tiny session end to end through the engine: events, report, determinism, exact resume from
//! every checkpoint, the asymmetric teacher schedule and operator commands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crossadapt::engine::events::{EngineEvent, ParamPatch};
use crossadapt::engine::report::Report;
use crossadapt::engine::{
    CheckpointStore, Engine, EngineCommand, EngineIo, Outcome, Record, SavedCheckpoint,
    SessionConfig,
};

mod engine_common;
use engine_common::day_metrics;

fn tiny(extra: &[&str]) -> SessionConfig {
    SessionConfig::tiny(extra).expect("tiny config is valid")
}

/// What the engine emitted, readable from the test thread.
type Shared = Arc<Mutex<Vec<Record>>>;

/// Checkpoints into plain folders, remembering each label's seq.
#[derive(Clone)]
struct Folders {
    root: PathBuf,
    saved: Arc<Mutex<Vec<(String, u64)>>>,
}

impl CheckpointStore for Folders {
    fn save(
        &mut self,
        label: &str,
        seq: u64,
        write: &mut dyn FnMut(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<SavedCheckpoint> {
        let dir = self.root.join(label);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        write(&dir)?;
        self.saved.lock().unwrap().push((label.to_string(), seq));
        Ok(SavedCheckpoint {
            shown: dir.display().to_string(),
            dir,
        })
    }
}

fn run(cfg: SessionConfig, checkpoints: Option<Folders>) -> (Outcome, Vec<Record>) {
    let sink = Shared::default();
    let io = EngineIo {
        sinks: vec![Box::new(sink.clone())],
        commands: None,
        checkpoints: checkpoints.map(|c| Box::new(c) as Box<dyn CheckpointStore>),
    };
    let mut engine = Engine::new(cfg, "test", "tiny", io).expect("engine starts");
    let outcome = engine.run().expect("run completes");
    let records = sink.lock().unwrap().clone();
    (outcome, records)
}

#[test]
fn a_tiny_session_runs_end_to_end_and_reports_every_arm_and_day() {
    let (outcome, records) = run(tiny(&[]), None);
    assert_eq!(outcome, Outcome::Finished);
    assert!(records.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let metrics = day_metrics(&records);
    assert_eq!(metrics.len(), 6 * 5, "6 arms x 5 online days");
    for m in metrics.values() {
        assert!(m.auc.is_some_and(|a| (0.0..=1.0).contains(&a)));
        assert!(m.logloss.is_finite() && m.logloss > 0.0);
        assert_eq!(m.rows, 1000);
    }
    let offline: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.event {
            EngineEvent::OfflineResult { arm, .. } => Some(arm.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        offline,
        [
            "incumbent",
            "scratch",
            "retrain",
            "kd",
            "crossadapt",
            "crossadapt-fixed"
        ]
    );
    let projection = records.iter().find_map(|r| match &r.event {
        EngineEvent::Projection { fields, .. } => Some(fields.clone()),
        _ => None,
    });
    let projection = projection.expect("1A ran");
    assert_eq!(projection.len(), 8);
    for f in &projection {
        assert_eq!(f.method, "orthogonal_up");
        assert!(f.rel_error < 1e-5, "{}: {}", f.field, f.rel_error);
    }
    assert!(matches!(
        records.last().map(|r| &r.event),
        Some(EngineEvent::Finished { .. })
    ));
    let report = Report::from_records(serde_json::Value::Null, &records, Some(6));
    // The time ratio, or the report says why there is none (tiny stages are too short to time).
    let ca = report
        .arms
        .iter()
        .find(|a| a.name == "crossadapt")
        .expect("crossadapt");
    match report.headline.time_fraction_vs_scratch {
        Some(frac) => assert!(frac > 0.0),
        None => assert!(ca.too_short_to_time.iter().any(|n| n == "time_vs_scratch")),
    }
    assert!(report.headline.offline_auc_minus_kd.is_some());
    assert_eq!(report.headline.shock_day, Some(6));
    assert_eq!(report.headline.post_shock_mean_auc.len(), 6);
    // Each arm's training throughput: offline in its `OfflineResult` (none for the incumbent,
    // which trains nothing offline), online the mean of its days', both in the report.
    for r in &records {
        if let EngineEvent::OfflineResult {
            arm,
            seconds,
            samples,
            samples_per_sec,
            ..
        } = &r.event
        {
            match samples_per_sec {
                Some(rate) => assert_eq!(*rate, *samples as f64 / seconds, "{arm}"),
                None => assert_eq!((arm.as_str(), *samples), ("incumbent", 0)),
            }
        }
    }
    for a in &report.arms {
        let online = a.online_samples_per_sec.expect("online rate");
        assert!(online > 0.0 && online.is_finite(), "{}: {online}", a.name);
        assert_eq!(
            a.offline_samples_per_sec.is_some(),
            a.name != "incumbent",
            "{}",
            a.name
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_numbers_and_another_seed_does_not() {
    let a = day_metrics(&run(tiny(&[]), None).1);
    let b = day_metrics(&run(tiny(&[]), None).1);
    assert_eq!(a, b);
    let c = day_metrics(&run(tiny(&["seed=8"]), None).1);
    assert_ne!(a, c);
}

#[test]
fn resuming_from_any_checkpoint_reaches_the_uninterrupted_numbers() {
    resumes_reach_the_uninterrupted_numbers(&[]);
}

/// The served intercept of `online.calibrate` is part of each arm's checkpointed state: a run
/// resumed from a day checkpoint serves the next day with the intercept fitted before it.
#[test]
fn resuming_with_calibration_reaches_the_uninterrupted_numbers() {
    resumes_reach_the_uninterrupted_numbers(&["online.calibrate=true"]);
}

fn resumes_reach_the_uninterrupted_numbers(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let store = Folders {
        root: dir.path().to_path_buf(),
        saved: Arc::default(),
    };
    let (_, full) = run(tiny(extra), Some(store.clone()));
    let expected = day_metrics(&full);
    let saved = store.saved.lock().unwrap().clone();
    let labels: Vec<&str> = saved.iter().map(|(l, _)| l.as_str()).collect();
    assert!(labels.contains(&"teacher") && labels.contains(&"day-0005"));
    for (label, seq) in saved.iter().filter(|(l, _)| l != "done") {
        let sink = Shared::default();
        let io = EngineIo {
            sinks: vec![Box::new(sink.clone())],
            commands: None,
            checkpoints: None,
        };
        let mut engine = Engine::resume(
            tiny(extra),
            "test",
            "tiny",
            &dir.path().join(label),
            seq + 1,
            io,
        )
        .unwrap_or_else(|e| panic!("resume from {label}: {e:#}"));
        assert_eq!(engine.run().unwrap(), Outcome::Finished);
        let resumed = sink.lock().unwrap().clone();
        assert_eq!(resumed[0].seq, seq + 1, "numbering continues after {label}");
        for (key, m) in day_metrics(&resumed) {
            assert_eq!(
                Some(&m),
                expected.get(&key),
                "{key:?} after resuming from {label}"
            );
        }
    }
}

/// Checkpoints into plain folders; the first day checkpoint is written only once the engine has
/// logged a day's metrics after it (or fails after a minute), and `fail` makes it fail instead.
struct Overlapped {
    folders: Folders,
    after: Mutex<std::sync::mpsc::Receiver<Record>>,
    fail: bool,
    waited: Arc<Mutex<bool>>,
}

impl CheckpointStore for Overlapped {
    fn save(
        &mut self,
        label: &str,
        seq: u64,
        write: &mut dyn FnMut(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<SavedCheckpoint> {
        let gated = label.starts_with("day-") && !*self.waited.lock().unwrap();
        if gated {
            if self.fail {
                let full = std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "No space left on device (injected)",
                );
                return Err(anyhow::Error::new(full).context(format!("cannot write {label}")));
            }
            let after = self.after.lock().unwrap();
            loop {
                let r = after
                    .recv_timeout(std::time::Duration::from_secs(60))
                    .map_err(|_| anyhow::anyhow!("the engine waited for checkpoint {label}"))?;
                if r.seq > seq && matches!(r.event, EngineEvent::DayMetrics { .. }) {
                    break;
                }
            }
            *self.waited.lock().unwrap() = true;
        }
        self.folders.save(label, seq, write)
    }
}

fn run_overlapped(fail: bool) -> (anyhow::Result<Outcome>, Vec<Record>, bool) {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = Shared::default();
    let waited = Arc::new(Mutex::new(false));
    let store = Overlapped {
        folders: Folders {
            root: dir.path().to_path_buf(),
            saved: Arc::default(),
        },
        after: Mutex::new(rx),
        fail,
        waited: waited.clone(),
    };
    let io = EngineIo {
        sinks: vec![Box::new(sink.clone()), Box::new(tx)],
        commands: None,
        checkpoints: Some(Box::new(store)),
    };
    let mut engine = Engine::new(tiny(&[]), "test", "tiny", io).expect("engine starts");
    let outcome = engine.run();
    let records = sink.lock().unwrap().clone();
    let waited = *waited.lock().unwrap();
    (outcome, records, waited)
}

/// A day checkpoint is written while the run goes on: its store sees a later day's metrics
/// before it writes (a synchronous write would wait for itself a minute and fail). Every
/// checkpoint is still logged, after the records it covers, and the numbers are the run's.
#[test]
fn checkpoints_are_written_while_the_run_goes_on_and_logged_when_on_disk() {
    let (outcome, records, waited) = run_overlapped(false);
    assert_eq!(outcome.expect("run completes"), Outcome::Finished);
    assert!(waited, "the gated checkpoint was written");
    let logged: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.event {
            EngineEvent::Checkpointed { path, .. } => Path::new(path).file_name()?.to_str(),
            _ => None,
        })
        .collect();
    assert_eq!(logged.first(), Some(&"teacher"));
    assert_eq!(logged.last(), Some(&"done"));
    assert_eq!(logged.iter().filter(|p| p.starts_with("day-")).count(), 5);
    assert!(matches!(
        records.last().map(|r| &r.event),
        Some(EngineEvent::Finished { .. })
    ));
    assert_eq!(day_metrics(&records), day_metrics(&run(tiny(&[]), None).1));
}

/// A checkpoint that fails on its writer thread (a full disk) fails the run with its label, as
/// a synchronous one did, and says how to go on; nothing after it claims the run finished.
#[test]
fn a_checkpoint_failing_in_the_background_fails_the_run_with_its_label() {
    let (outcome, records, _) = run_overlapped(true);
    let err = format!("{:#}", outcome.expect_err("the run fails"));
    assert!(
        err.contains("cannot write checkpoint `day-") && err.contains("No space left on device"),
        "{err}"
    );
    assert!(
        err.contains(
            "the disk is full: free some space, then `crossadapt resume test` continues the session from its latest checkpoint"
        ),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    assert!(matches!(
        records.last().map(|r| &r.event),
        Some(EngineEvent::Error { .. })
    ));
    assert!(!records
        .iter()
        .any(|r| matches!(r.event, EngineEvent::Finished { .. })));
}

#[test]
fn the_co_distilled_teacher_steps_every_n_batches_and_at_the_end_of_the_day() {
    let (_, records) = run(tiny(&[]), None);
    // 1000 rows / 100 = 10 batches a day; N = 3: after batches 2, 5, 8 and the last (9).
    let mut per_day: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut counts = Vec::new();
    for r in &records {
        match &r.event {
            EngineEvent::Updates {
                arm, day, teacher, ..
            } if arm == "crossadapt" => per_day.entry(*day).or_default().extend(teacher),
            EngineEvent::DayMetrics {
                arm,
                student_updates,
                teacher_updates,
                ..
            } => counts.push((arm.clone(), *student_updates, *teacher_updates)),
            _ => {}
        }
    }
    assert_eq!(per_day.len(), 5);
    for ticks in per_day.values() {
        assert_eq!(ticks, &vec![2, 5, 8, 9]);
    }
    for (arm, student, teacher) in counts {
        assert_eq!(student, 10, "{arm}: the student steps every batch");
        let expected = if arm.starts_with("crossadapt") { 4 } else { 0 };
        assert_eq!(teacher, expected, "{arm}");
    }
}

#[test]
fn operator_commands_are_logged_and_change_the_schedule_from_the_next_batch() {
    let sink = Shared::default();
    let (tx, rx) = std::sync::mpsc::channel();
    // Queued before the start: applied at the first batch of teacher pretraining.
    tx.send(EngineCommand::SetParams {
        patch: ParamPatch {
            teacher_interval: Some(5),
            ..Default::default()
        },
    })
    .unwrap();
    tx.send(EngineCommand::SetParams {
        patch: ParamPatch {
            sampling_ratio: Some(1.5),
            ..Default::default()
        },
    })
    .unwrap();
    tx.send(EngineCommand::Pause).unwrap();
    tx.send(EngineCommand::Resume).unwrap();
    let io = EngineIo {
        sinks: vec![Box::new(sink.clone())],
        commands: Some(rx),
        checkpoints: None,
    };
    let mut engine = Engine::new(tiny(&[]), "test", "tiny", io).unwrap();
    assert_eq!(engine.run().unwrap(), Outcome::Finished);
    drop(tx);
    let records = sink.lock().unwrap().clone();
    let kinds: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.event {
            EngineEvent::Operator { .. } => Some("operator"),
            EngineEvent::ParamsChanged { .. } => Some("changed"),
            EngineEvent::ParamsRefused { field, .. } if field == "sampling_ratio" => {
                Some("refused")
            }
            EngineEvent::Paused { .. } => Some("paused"),
            EngineEvent::Resumed { .. } => Some("resumed"),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "operator", "changed", "operator", "refused", "operator", "paused", "operator",
            "resumed"
        ]
    );
    let ticks: Vec<u32> = records
        .iter()
        .filter_map(|r| match &r.event {
            EngineEvent::Updates {
                arm,
                day: 5,
                teacher,
                ..
            } if arm == "crossadapt" => Some(teacher.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(ticks, vec![4, 9]);
}
