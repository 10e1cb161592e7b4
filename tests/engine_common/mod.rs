//! Running the tiny session in this process and keeping every record it emits, for the tests
//! that check what a whole run reports (the gate, the holdout).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crossadapt::engine::events::EngineEvent;
use crossadapt::engine::{Engine, EngineIo, Outcome, Record, SessionConfig};
use crossadapt::protocol::EvalMetrics;

/// The tiny session with `extra` settings, run to its end; its records in order.
#[allow(dead_code)] // each test file compiles this module on its own; not all of them use it
pub fn run_tiny(extra: &[&str]) -> Vec<Record> {
    run_config(SessionConfig::tiny(extra).expect("tiny config is valid"))
}

/// The session of `cfg`, run to its end; its records in order.
#[allow(dead_code)]
pub fn run_config(cfg: SessionConfig) -> Vec<Record> {
    let sink: Arc<Mutex<Vec<Record>>> = Arc::default();
    let io = EngineIo {
        sinks: vec![Box::new(sink.clone())],
        commands: None,
        checkpoints: None,
    };
    let mut engine = Engine::new(cfg, "test", "tiny", io).expect("engine starts");
    assert_eq!(engine.run().expect("run completes"), Outcome::Finished);
    let records = sink.lock().expect("sink").clone();
    records
}

/// (arm, day) -> metrics of every `DayMetrics` record.
#[allow(dead_code)] // each test file compiles this module on its own; not all of them use it
pub fn day_metrics(records: &[Record]) -> BTreeMap<(String, u32), EvalMetrics> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            EngineEvent::DayMetrics {
                arm, day, metrics, ..
            } => Some(((arm.clone(), *day), metrics.clone())),
            _ => None,
        })
        .collect()
}
