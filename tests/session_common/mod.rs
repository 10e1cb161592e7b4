//! A small hand-built session log shared by the session tests: two arms, two online days, an
//! operator pause with a sampling-ratio change, a checkpoint and the final summary.
#![allow(dead_code)]

use crossadapt::protocol::*;

/// Default parameters of the fixture.
pub fn params() -> Params {
    Params {
        sampling_ratio: 0.1,
        replay_ratio: 0.1,
        teacher_interval: 10,
        distill_min: 0.3,
        distill_max: 0.7,
    }
}

fn metrics(auc: f64, logloss: f64, bias: f64) -> EvalMetrics {
    EvalMetrics {
        auc: Some(auc),
        logloss,
        bias,
        ne: logloss / 0.5,
        gauc: None,
        rows: 1000,
    }
}

fn at(day: u32, batch: u64) -> Position {
    Position {
        stage: Stage::Online,
        arm: None,
        day: Some(day),
        batch,
    }
}

/// The events of the fixture, without `seq`/`t` (see [`known_log`]).
pub fn known_events() -> Vec<EngineEvent> {
    let day = |arm: &str, day: u32, auc: f64, ll: f64, bias: f64, t: u32| EngineEvent::DayMetrics {
        arm: arm.into(),
        day,
        metrics: metrics(auc, ll, bias),
        train_seconds: 1.25,
        samples: 1000,
        samples_per_sec: 800.0,
        student_updates: 10,
        teacher_updates: t,
        distill_weight: None,
        calibration: None,
        matched_weight: None,
        cpu_seconds: None,
    };
    let drift = |day: u32, w: f64| EngineEvent::Drift {
        day,
        batch: None,
        weight: w,
        distill_weight: 0.7 * (1.0 - w) + 0.3 * w,
        replay_ratio: 0.1,
        label_rate: 0.2,
        reference_label_rate: 0.18,
        fields: vec![FieldDrift {
            field: "C1".into(),
            psi: 0.12,
            js: 0.03,
        }],
    };
    vec![
        EngineEvent::SessionStarted {
            session: "20261128-120000-abcd".into(),
            name: "demo".into(),
            arms: vec![
                ArmInfo {
                    name: "kd".into(),
                    model: "fibinet".into(),
                },
                ArmInfo {
                    name: "crossadapt".into(),
                    model: "fibinet".into(),
                },
            ],
            teacher: "mlp".into(),
            days: DayPlan {
                history: vec![0, 1],
                retained: vec![2, 3],
                online: vec![4, 5],
                holdout: vec![],
                unused: vec![],
            },
            params: params(),
            seed: 7,
        },
        EngineEvent::StageStarted {
            stage: Stage::Transfer,
            arm: Some("crossadapt".into()),
            day: None,
            total: 0,
        },
        EngineEvent::StageFinished {
            stage: Stage::Transfer,
            arm: Some("crossadapt".into()),
            day: None,
            seconds: 0.25,
            samples: 0,
            heap_peak: None,
        },
        EngineEvent::OfflineResult {
            arm: "kd".into(),
            seconds: 4.0,
            samples: 8000,
            samples_per_sec: Some(2000.0),
            metrics: metrics(0.70, 0.47, 0.05),
            cpu_seconds: None,
        },
        EngineEvent::OfflineResult {
            arm: "crossadapt".into(),
            seconds: 1.5,
            samples: 800,
            samples_per_sec: None,
            metrics: metrics(0.72, 0.46, 0.02),
            cpu_seconds: None,
        },
        drift(4, 0.25),
        day("kd", 4, 0.701, 0.4701, 0.031, 1),
        EngineEvent::Progress {
            stage: Stage::Online,
            arm: Some("crossadapt".into()),
            day: Some(4),
            done: 500,
            total: 1000,
            samples_per_sec: 800.0,
            eta_secs: Some(0.6),
        },
        day("crossadapt", 4, 0.7215, 0.4602, 0.012, 1),
        EngineEvent::Checkpointed {
            at: at(5, 0),
            path: "checkpoints/day-0005".into(),
            reason: "day boundary".into(),
            bytes: None,
        },
        EngineEvent::Operator {
            command: EngineCommand::Pause,
            at: at(5, 3),
        },
        EngineEvent::Paused { at: at(5, 3) },
        EngineEvent::Operator {
            command: EngineCommand::SetParams {
                patch: ParamPatch {
                    sampling_ratio: Some(0.2),
                    ..Default::default()
                },
            },
            at: at(5, 3),
        },
        EngineEvent::ParamsChanged {
            params: Params {
                sampling_ratio: 0.2,
                ..params()
            },
            at: at(5, 3),
        },
        EngineEvent::Operator {
            command: EngineCommand::Resume,
            at: at(5, 3),
        },
        EngineEvent::Resumed { at: at(5, 3) },
        drift(5, 0.5),
        day("kd", 5, 0.699, 0.4712, 0.04, 1),
        day("crossadapt", 5, 0.7233, 0.4598, 0.009, 1),
        EngineEvent::Finished {},
    ]
}

/// The fixture as records: `seq` from 0, half a second of engine time apart.
pub fn known_log() -> Vec<Record> {
    known_events()
        .into_iter()
        .enumerate()
        .map(|(i, event)| Record {
            v: EVENT_SCHEMA_VERSION,
            seq: i as u64,
            t: i as f64 * 0.5,
            event,
        })
        .collect()
}

/// One record with the given seq (a warning, cheap filler for log tests).
pub fn filler(seq: u64) -> Record {
    Record {
        v: EVENT_SCHEMA_VERSION,
        seq,
        t: seq as f64,
        event: EngineEvent::Warning {
            arm: None,
            message: format!("filler {seq}"),
        },
    }
}

/// Every file under `dir` with its bytes, to show that nothing was touched.
pub fn snapshot_tree(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Every (arm, online day) metric of a session folder's log.
pub type Metrics = std::collections::BTreeMap<(String, u32), EvalMetrics>;

/// The `DayMetrics` of the session in `dir`, keyed by arm and day (a day redone after a
/// resume keeps its last record).
pub fn metrics_of(dir: &std::path::Path) -> Metrics {
    crossadapt::session::read_log(&dir.join("events.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            EngineEvent::DayMetrics {
                arm, day, metrics, ..
            } => Some(((arm, day), metrics)),
            _ => None,
        })
        .collect()
}
