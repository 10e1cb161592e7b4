//! The final test slice (`split.holdout`, issue 14.5) end to end on the tiny preset: the
//! held-out day is cut from the end of the online days, no record of training or of
//! test-then-train ever names it, and each arm scores it once at the end with the model it
//! ended the online stage with.

use crossadapt::engine::events::{EngineEvent, EventSink};
use crossadapt::engine::report::Report;
use crossadapt::engine::{Engine, EngineIo, Record, SessionConfig};
use crossadapt::protocol::Ledger;
use crossadapt::session::DayTablePrinter;

mod engine_common;
use engine_common::{day_metrics, run_tiny as run};

/// The day a record is about, if it names one.
fn day_of(e: &EngineEvent) -> Option<u32> {
    match e {
        EngineEvent::StageStarted { day, .. }
        | EngineEvent::StageFinished { day, .. }
        | EngineEvent::Progress { day, .. } => *day,
        EngineEvent::Updates { day, .. }
        | EngineEvent::Drift { day, .. }
        | EngineEvent::DayMetrics { day, .. }
        | EngineEvent::Gate { day, .. } => Some(*day),
        _ => None,
    }
}

#[test]
fn the_holdout_day_never_reaches_training_and_is_scored_once_at_the_end() {
    // Tiny: history 0-1, retained 2-4, online 5-9. With the holdout, online 5-8 and day 9 held out.
    let held = run(&["split.holdout=\"last-day\""]);
    let plain = run(&[]);
    let Some(EngineEvent::SessionStarted { days, .. }) = held.first().map(|r| &r.event) else {
        panic!("no SessionStarted first");
    };
    assert_eq!(days.online, vec![5, 6, 7, 8]);
    assert_eq!(days.holdout, vec![9]);

    // No stage, progress, update, drift, gate or day result names the held-out day.
    for r in &held {
        assert_ne!(day_of(&r.event), Some(9), "record {} names day 9", r.seq);
    }
    // Every arm scores it exactly once, after its last online day.
    let holdouts: Vec<(usize, &Record)> = held
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.event, EngineEvent::Holdout { .. }))
        .collect();
    let arms = SessionConfig::tiny(&[]).expect("tiny").arms.len();
    assert_eq!(holdouts.len(), arms);
    let last_day_metrics = held
        .iter()
        .rposition(|r| matches!(r.event, EngineEvent::DayMetrics { .. }))
        .expect("day metrics");
    assert!(holdouts.iter().all(|(i, _)| *i > last_day_metrics));

    // The online days are those of the run without a holdout, bit for bit: the held-out rows
    // changed nothing before them.
    let (held_days, plain_days) = (day_metrics(&held), day_metrics(&plain));
    for ((arm, day), m) in &held_days {
        assert_eq!(m, &plain_days[&(arm.clone(), *day)], "{arm} day {day}");
    }
    // The score is that of the model after day 8 on day 9's rows: exactly what the run
    // without a holdout reports for day 9 before it trains on it.
    for (_, r) in &holdouts {
        let EngineEvent::Holdout {
            arm, days, metrics, ..
        } = &r.event
        else {
            unreachable!()
        };
        assert_eq!(days, &vec![9]);
        assert_eq!(metrics, &plain_days[&(arm.clone(), 9)], "{arm}");
    }

    // The ledger, the report and the printer show it; without a holdout nothing changes.
    let ledger = Ledger::of(&held);
    let verdict = ledger.verdict(None);
    let ca = verdict
        .arms
        .iter()
        .find(|a| a.arm == "crossadapt")
        .expect("crossadapt");
    let kd = verdict.arms.iter().find(|a| a.arm == "kd").expect("kd");
    let auc = |a: &crossadapt::protocol::ArmVerdict| a.holdout.as_ref().and_then(|h| h.metrics.auc);
    let want = auc(ca).expect("auc") - auc(kd).expect("auc");
    assert!((ca.holdout_auc_vs_kd.expect("vs kd") - want).abs() < 1e-12);
    let report = Report::from_records(serde_json::Value::Null, &held, None);
    assert!(report.arms.iter().all(|a| a.holdout.is_some()));
    assert!(report
        .table()
        .contains("holdout (days 9, scored once at the end) crossadapt"));
    let plain_report = Report::from_records(serde_json::Value::Null, &plain, None);
    let json = serde_json::to_string(&plain_report).expect("json");
    assert!(
        !json.contains("holdout"),
        "a run without holdout reports none"
    );

    let mut printer = DayTablePrinter::new(Vec::new());
    for r in &held {
        printer.emit(r).expect("print");
    }
    let text = String::from_utf8(printer.finish().expect("finish")).expect("utf8");
    assert!(text.contains("holdout: days 9 (never trained on"), "{text}");
    assert!(
        text.contains("crossadapt        holdout days 9: AUC "),
        "{text}"
    );
}

#[test]
fn a_holdout_that_leaves_no_online_day_is_refused_before_the_run() {
    let cfg = SessionConfig::tiny(&["split.holdout=5"]).expect("valid config");
    let e = Engine::new(cfg, "t", "t", EngineIo::default())
        .err()
        .expect("refused");
    assert!(
        format!("{e:#}").contains("at least one online day"),
        "{e:#}"
    );
    let e = SessionConfig::tiny(&["split.holdout=1.5"]).expect_err("share above 1");
    assert!(format!("{e:#}").contains("split.holdout"), "{e:#}");
}
