//! A hand-written session as records (no training): four arms, seven online days with a shock
//! on day 10. Deterministic, for snapshot tests and README captures of the console.

use crate::protocol::{
    ArmInfo, DayPlan, EngineCommand, EngineEvent, EvalMetrics, FieldDrift, FieldProjection,
    GateCluster, GateRule, ParamPatch, Params, Position, Record, Stage, EVENT_SCHEMA_VERSION,
};
use crate::train::stats::Interval;

const ARMS: [(&str, &str); 4] = [
    ("incumbent", "mlp:emb=8,hidden=64"),
    ("scratch", "deepfm:emb=16,hidden=128"),
    ("kd", "deepfm:emb=16,hidden=128"),
    ("crossadapt", "deepfm:emb=16,hidden=128"),
];
/// Online days of the fixture.
pub const ONLINE: [u32; 7] = [7, 8, 9, 10, 11, 12, 13];
const BATCHES: u32 = 40;
const TEACHER_EVERY: u32 = 3;

/// The fixture's starting parameters.
pub fn params() -> Params {
    Params {
        sampling_ratio: 0.1,
        replay_ratio: 0.1,
        teacher_interval: TEACHER_EVERY,
        distill_min: 0.3,
        distill_max: 0.7,
    }
}

struct Log {
    out: Vec<Record>,
    t: f64,
}

impl Log {
    fn push(&mut self, dt: f64, event: EngineEvent) {
        self.t += dt;
        let seq = self.out.len() as u64;
        self.out.push(Record {
            v: EVENT_SCHEMA_VERSION,
            seq,
            t: (self.t * 1000.0).round() / 1000.0,
            event,
        });
    }
}

fn offline_secs(arm: usize) -> f64 {
    [0.0, 48.0, 44.0, 12.0][arm]
}

fn offline_metrics(arm: usize) -> EvalMetrics {
    EvalMetrics {
        auc: Some([0.741, 0.702, 0.731, 0.746][arm]),
        logloss: [0.452, 0.481, 0.460, 0.449][arm],
        bias: [0.01, 0.09, 0.05, 0.02][arm],
        ne: 0.9,
        gauc: None,
        rows: 4000,
    }
}

/// Day metrics: arms improve slowly, dip on the shock day 10, crossadapt recovers fastest.
fn day_metrics(arm: usize, day: u32) -> EvalMetrics {
    let k = f64::from(day - ONLINE[0]);
    let base = [0.740, 0.705, 0.732, 0.747][arm] + 0.002 * k;
    let shock = match day {
        10 => [0.060, 0.050, 0.055, 0.040][arm],
        11 => [0.045, 0.030, 0.035, 0.015][arm],
        12 => [0.030, 0.015, 0.020, 0.005][arm],
        _ => 0.0,
    };
    let bias_base = [0.02, 0.08, 0.05, 0.02][arm];
    let bias = if (10..=11).contains(&day) {
        bias_base + [0.15, 0.12, 0.14, 0.07][arm]
    } else {
        bias_base - 0.004 * k
    };
    EvalMetrics {
        auc: Some(base - shock),
        logloss: 0.46 - 0.002 * k + shock * 1.5 + [0.0, 0.03, 0.01, -0.004][arm],
        bias,
        ne: 0.9,
        gauc: None,
        rows: 4000,
    }
}

/// The migration gate's evidence of day `day`, emitted before any arm trains on it: each
/// student's AUC and LogLoss differences to the incumbent's day metrics with fixed-width
/// intervals. crossadapt passes every day (SWITCH from the third, day 9), kd's AUC interval
/// reaches below -δ, scratch is far below.
fn gate_events(log: &mut Log, day: u32) {
    let inc = day_metrics(0, day);
    for (arm, (name, _)) in ARMS.iter().enumerate().skip(1) {
        let m = day_metrics(arm, day);
        let iv = |estimate: f64, half: f64| Interval {
            estimate,
            lo: estimate - half,
            hi: estimate + half,
            level: 0.95,
        };
        log.push(
            0.0,
            EngineEvent::Gate {
                arm: name.to_string(),
                day,
                incumbent: ARMS[0].0.into(),
                auc: m.auc.zip(inc.auc).map(|(s, i)| iv(s - i, 0.0035)),
                logloss: Some(iv(m.logloss - inc.logloss, 0.003)),
                // As a session resolves it on a source that names its users.
                rule: GateRule {
                    cluster: GateCluster::Users,
                    ..GateRule::default()
                },
            },
        );
    }
}

fn drift_weight(day: u32) -> f64 {
    match day {
        10 => 0.82,
        11 => 0.55,
        12 => 0.31,
        d => 0.08 + 0.01 * f64::from(d % 3),
    }
}

fn drift_event(day: u32, batch: Option<u32>) -> EngineEvent {
    let w = drift_weight(day);
    let p = params();
    let shock = if day >= 10 { 1.0 } else { 0.2 };
    EngineEvent::Drift {
        day,
        batch,
        weight: w,
        distill_weight: p.distill_max - w * (p.distill_max - p.distill_min),
        replay_ratio: p.replay_ratio * (1.0 - 0.5 * w),
        label_rate: if day >= 10 { 0.041 } else { 0.032 },
        reference_label_rate: 0.031,
        fields: ["C3", "C1", "C7", "C2", "C5", "C4"]
            .iter()
            .enumerate()
            .map(|(i, f)| FieldDrift {
                field: f.to_string(),
                psi: shock * 0.3 / (i as f64 + 1.0),
                js: shock * 0.05 / (i as f64 + 1.0),
            })
            .collect(),
    }
}

fn at(stage: Stage, arm: Option<&str>, day: Option<u32>, batch: u64) -> Position {
    Position {
        stage,
        arm: arm.map(str::to_string),
        day,
        batch,
    }
}

/// Offline stages and results, then `days` complete online days; when `partial`, the next day
/// is under way (two arms done, the third at batch 24 of 40).
pub fn session(days: usize, partial: bool) -> Vec<Record> {
    let mut log = Log {
        out: Vec::new(),
        t: 0.0,
    };
    log.push(
        0.0,
        EngineEvent::SessionStarted {
            session: "20260101-120000-demo".into(),
            name: "deepfm vs mlp on synthetic".into(),
            arms: ARMS
                .iter()
                .map(|(n, m)| ArmInfo {
                    name: n.to_string(),
                    model: m.to_string(),
                })
                .collect(),
            teacher: ARMS[0].1.into(),
            days: DayPlan {
                history: (0..4).collect(),
                retained: (4..7).collect(),
                online: ONLINE.to_vec(),
                holdout: vec![],
                unused: vec![],
            },
            params: params(),
            seed: 7,
        },
    );
    stage(&mut log, Stage::TeacherPretrain, None, 30.0, 16_000);
    checkpoint(
        &mut log,
        "checkpoints/teacher",
        "teacher ready",
        Stage::TeacherPretrain,
        None,
    );
    log.push(
        0.1,
        EngineEvent::StageStarted {
            stage: Stage::Transfer,
            arm: Some("crossadapt".into()),
            day: None,
            total: 0,
        },
    );
    log.push(
        0.2,
        EngineEvent::Projection {
            arm: "crossadapt".into(),
            fields: (1..=8)
                .map(|i| FieldProjection {
                    field: format!("C{i}"),
                    method: "orthogonal_up".into(),
                    from_dim: 8,
                    to_dim: 16,
                    rel_error: 1e-7,
                })
                .collect(),
        },
    );
    for (i, (arm, _)) in ARMS.iter().enumerate().skip(1) {
        let (stage_kind, secs) = match i {
            3 => (Stage::JointDistill, offline_secs(i)),
            _ => (Stage::OfflineTrain, offline_secs(i)),
        };
        stage(&mut log, stage_kind, Some(*arm), secs, 12_000);
    }
    for (i, (arm, _)) in ARMS.iter().enumerate() {
        log.push(
            0.3,
            EngineEvent::OfflineResult {
                arm: arm.to_string(),
                seconds: offline_secs(i),
                samples: if i == 0 { 0 } else { 12_000 },
                samples_per_sec: crate::protocol::throughput(
                    if i == 0 { 0 } else { 12_000 },
                    offline_secs(i),
                ),
                metrics: offline_metrics(i),
                cpu_seconds: None,
            },
        );
    }
    checkpoint(
        &mut log,
        "checkpoints/offline",
        "offline stage done",
        Stage::Online,
        Some(ONLINE[0]),
    );
    for &day in ONLINE.iter().take(days) {
        online_day(&mut log, day, ARMS.len(), BATCHES);
        checkpoint(
            &mut log,
            &format!("checkpoints/day-{:04}", day + 1),
            "day boundary",
            Stage::Online,
            Some(day + 1),
        );
    }
    if partial {
        if let Some(&day) = ONLINE.get(days) {
            online_day(&mut log, day, 2, BATCHES);
            day_start_arm(&mut log, 2, day, 24);
        }
    }
    log.out
}

/// The whole session, finished.
pub fn finished_session() -> Vec<Record> {
    let mut records = session(ONLINE.len(), false);
    let mut log = Log {
        t: records.last().map_or(0.0, |r| r.t),
        out: std::mem::take(&mut records),
    };
    log.push(
        0.1,
        EngineEvent::StageStarted {
            stage: Stage::Done,
            arm: None,
            day: None,
            total: 0,
        },
    );
    log.push(0.1, EngineEvent::Finished {});
    log.out
}

/// [`finished_session`] of a run tuned first (`run --tune --tune-online-days 2`): its `Tuned`
/// record right after `SessionStarted`, as the engine writes it.
pub fn tuned_finished_session() -> Vec<Record> {
    use crate::protocol::tune::{ArmTuning, OnlineTuning, TuneTrial, Tuning, ONLINE_TUNING};
    let trials = |aucs: &[f64]| -> Vec<TuneTrial> {
        aucs.iter()
            .map(|&auc| TuneTrial {
                auc: Some(auc),
                logloss: 0.3,
                seconds: 2.0,
                ..Default::default()
            })
            .collect()
    };
    let arm = |name: &str, aucs: &[f64], chosen: usize| ArmTuning {
        arm: name.into(),
        trials: trials(aucs),
        chosen,
    };
    let tuning = Tuning {
        train_days: vec![4],
        validation_day: 6,
        online_day: Some(5),
        arms: vec![
            arm("scratch", &[0.661, 0.652], 0),
            arm("kd", &[0.648, 0.655], 1),
            arm("crossadapt", &[0.664, 0.660], 0),
        ],
        online: Some(OnlineTuning {
            train_days: vec![4],
            days: vec![5, 6],
            tuning: arm(ONLINE_TUNING, &[0.651, 0.653], 1),
        }),
    };
    let mut records = finished_session();
    let t = records[0].t;
    records.insert(
        1,
        Record {
            v: EVENT_SCHEMA_VERSION,
            seq: 1,
            t,
            event: EngineEvent::Tuned { tuning },
        },
    );
    for (i, r) in records.iter_mut().enumerate() {
        r.seq = i as u64;
    }
    records
}

/// A running session paused by the operator mid-day (pause taken at the arm's day end).
pub fn paused_session() -> Vec<Record> {
    let mut records = session(4, false);
    let mut log = Log {
        t: records.last().map_or(0.0, |r| r.t),
        out: std::mem::take(&mut records),
    };
    let day = ONLINE[4];
    log.push(
        0.1,
        EngineEvent::StageStarted {
            stage: Stage::Online,
            arm: None,
            day: Some(day),
            total: u64::from(BATCHES) * 100 * ARMS.len() as u64,
        },
    );
    gate_events(&mut log, day);
    log.push(0.1, drift_event(day, None));
    arm_day(&mut log, 0, day, BATCHES);
    log.push(
        0.4,
        EngineEvent::Operator {
            command: EngineCommand::SetParams {
                patch: ParamPatch {
                    replay_ratio: Some(0.2),
                    ..Default::default()
                },
            },
            at: at(Stage::Online, Some(ARMS[1].0), Some(day), 12),
        },
    );
    let mut changed = params();
    changed.replay_ratio = 0.2;
    log.push(
        0.0,
        EngineEvent::ParamsChanged {
            params: changed,
            at: at(Stage::Online, Some(ARMS[1].0), Some(day), 12),
        },
    );
    log.push(
        0.4,
        EngineEvent::Operator {
            command: EngineCommand::Pause,
            at: at(Stage::Online, Some(ARMS[1].0), Some(day), 20),
        },
    );
    log.push(
        0.0,
        EngineEvent::Warning {
            arm: Some(ARMS[1].0.into()),
            message: "pausing at the end of this arm's day (checkpointed there)".into(),
        },
    );
    arm_day(&mut log, 1, day, BATCHES);
    checkpoint(
        &mut log,
        &format!("checkpoints/day-{day:04}-arm-2"),
        "pause",
        Stage::Online,
        Some(day),
    );
    log.push(
        0.0,
        EngineEvent::Paused {
            at: at(Stage::Online, Some(ARMS[2].0), Some(day), 0),
        },
    );
    log.out
}

fn stage(log: &mut Log, stage: Stage, arm: Option<&str>, secs: f64, total: u64) {
    log.push(
        0.1,
        EngineEvent::StageStarted {
            stage,
            arm: arm.map(str::to_string),
            day: None,
            total,
        },
    );
    log.push(
        secs / 2.0,
        EngineEvent::Progress {
            stage,
            arm: arm.map(str::to_string),
            day: None,
            done: total / 2,
            total,
            samples_per_sec: total as f64 / secs.max(1.0),
            eta_secs: Some(secs / 2.0),
        },
    );
    log.push(
        secs / 2.0,
        EngineEvent::StageFinished {
            stage,
            arm: arm.map(str::to_string),
            day: None,
            seconds: secs,
            samples: total,
            heap_peak: None,
        },
    );
}

fn checkpoint(log: &mut Log, path: &str, reason: &str, stage: Stage, day: Option<u32>) {
    log.push(
        0.2,
        EngineEvent::Checkpointed {
            at: at(stage, None, day, 0),
            path: path.into(),
            reason: reason.into(),
            bytes: None,
        },
    );
}

fn online_day(log: &mut Log, day: u32, arms: usize, batches: u32) {
    log.push(
        0.1,
        EngineEvent::StageStarted {
            stage: Stage::Online,
            arm: None,
            day: Some(day),
            total: u64::from(batches) * 100 * ARMS.len() as u64,
        },
    );
    gate_events(log, day);
    log.push(0.1, drift_event(day, None));
    for arm in 0..arms {
        arm_day(log, arm, day, batches);
    }
    if arms == ARMS.len() {
        log.push(
            0.1,
            EngineEvent::StageFinished {
                stage: Stage::Online,
                arm: None,
                day: Some(day),
                seconds: 8.0,
                samples: u64::from(batches) * 100 * ARMS.len() as u64,
                heap_peak: None,
            },
        );
    }
}

/// Updates of one arm over batches `0..upto` of `day`, in runs of 10, with progress.
fn updates(log: &mut Log, arm: usize, day: u32, upto: u32) {
    let co_teacher = ARMS[arm].0 == "crossadapt";
    let mut from = 0;
    while from < upto {
        let to = (from + 10).min(upto);
        let teacher = if co_teacher {
            (from..to)
                .filter(|b| (b + 1) % TEACHER_EVERY == 0 || b + 1 == BATCHES)
                .collect()
        } else {
            Vec::new()
        };
        log.push(
            0.5,
            EngineEvent::Updates {
                arm: ARMS[arm].0.into(),
                day,
                from_batch: from,
                to_batch: to,
                student: (from..to).collect(),
                teacher,
            },
        );
        log.push(
            0.0,
            EngineEvent::Progress {
                stage: Stage::Online,
                arm: Some(ARMS[arm].0.into()),
                day: Some(day),
                done: u64::from(to) * 100,
                total: u64::from(BATCHES) * 100,
                samples_per_sec: 2000.0,
                eta_secs: Some(f64::from(BATCHES - to) * 0.05),
            },
        );
        from = to;
    }
}

fn arm_day(log: &mut Log, arm: usize, day: u32, batches: u32) {
    updates(log, arm, day, batches);
    let co_teacher = ARMS[arm].0 == "crossadapt";
    log.push(
        0.2,
        EngineEvent::DayMetrics {
            arm: ARMS[arm].0.into(),
            day,
            metrics: day_metrics(arm, day),
            train_seconds: 2.0,
            samples: u64::from(batches) * 100,
            samples_per_sec: 2000.0,
            student_updates: batches,
            teacher_updates: if co_teacher {
                batches / TEACHER_EVERY + 1
            } else {
                0
            },
            distill_weight: None,
            calibration: None,
            matched_weight: None,
            cpu_seconds: None,
        },
    );
}

fn day_start_arm(log: &mut Log, arm: usize, day: u32, upto: u32) {
    updates(log, arm, day, upto);
}
