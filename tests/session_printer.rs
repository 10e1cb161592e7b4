//! The headless day table and the export of a known log.

mod session_common;

use std::time::Duration;

use crossadapt::engine::events::{EngineEvent, EventSink};
use crossadapt::session::export::{collect, render, to_csv, ExportFormat};
use crossadapt::session::replay::{replay_into, MAX_REPLAY_GAP};
use crossadapt::session::{DayTablePrinter, SessionMeta};
use session_common::known_log;

fn print(records: &[crossadapt::engine::events::Record]) -> String {
    let mut p = DayTablePrinter::new(Vec::new());
    for r in records {
        p.emit(r).unwrap();
    }
    String::from_utf8(p.finish().unwrap()).unwrap()
}

#[test]
fn the_day_table_of_the_known_log() {
    insta::assert_snapshot!(print(&known_log()));
}

/// A writer the test can read while the printer owns it.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn a_day_is_printed_once_every_running_arm_reported() {
    let log = known_log();
    let pos = |want: &str| {
        log.iter()
            .position(
                |r| matches!(&r.event, EngineEvent::DayMetrics { arm, day: 4, .. } if arm == want),
            )
            .unwrap()
    };
    let buf = Shared::default();
    let mut p = DayTablePrinter::new(buf.clone());
    for r in &log[..=pos("kd")] {
        p.emit(r).unwrap();
    }
    assert!(!buf.text().contains("   4  kd"), "{}", buf.text());
    for r in &log[pos("kd") + 1..=pos("crossadapt")] {
        p.emit(r).unwrap();
    }
    assert!(
        buf.text().contains("   4  kd ") && buf.text().contains("crossadapt  0.7215"),
        "{}",
        buf.text()
    );
    // A failed arm no longer holds its days back.
    let mut p = DayTablePrinter::new(Vec::new());
    for r in &log[..=pos("kd")] {
        p.emit(r).unwrap();
    }
    let failed = crossadapt::engine::events::Record {
        v: 1,
        seq: 99,
        t: 0.0,
        event: EngineEvent::ArmFailed {
            arm: "crossadapt".into(),
            message: "NaN loss".into(),
        },
    };
    p.emit(&failed).unwrap();
    let out = String::from_utf8(p.finish().unwrap()).unwrap();
    assert!(
        out.contains("arm crossadapt failed: NaN loss\n day  arm") && out.ends_with("0.250\n"),
        "{out}"
    );
}

#[test]
fn replay_paces_by_engine_time_and_caps_long_gaps() {
    let mut log = known_log();
    log[3].t = 3600.0 + log[2].t; // an hour-long pause between two records
    for r in log.iter_mut().skip(4) {
        r.t += 3600.0;
    }
    let mut waits = Vec::new();
    let mut out = Vec::new();
    replay_into(&log, &mut out, 2.0, &mut |d| waits.push(d)).unwrap();
    assert_eq!(out, log);
    assert_eq!(waits.len(), log.len() - 1);
    assert_eq!(waits[0], Duration::from_secs_f64(0.25));
    assert_eq!(waits[2], MAX_REPLAY_GAP / 2);
    assert!(replay_into(&log, &mut Vec::new(), 0.0, &mut |_| {})
        .unwrap_err()
        .to_string()
        .contains("--speed"));
}

#[test]
fn export_has_one_row_per_day_and_arm_with_params_and_drift() {
    let (rows, drift) = collect(&known_log());
    let keys: Vec<(u32, &str)> = rows.iter().map(|r| (r.day, r.arm.as_str())).collect();
    assert_eq!(
        keys,
        vec![(4, "kd"), (4, "crossadapt"), (5, "kd"), (5, "crossadapt")]
    );
    assert_eq!(rows[1].auc, Some(0.7215));
    assert_eq!(rows[1].sampling_ratio, Some(0.1));
    assert_eq!(
        rows[3].sampling_ratio,
        Some(0.2),
        "the operator's change applies to day 5"
    );
    assert_eq!(rows[3].drift_weight, Some(0.5));
    assert_eq!(drift.len(), 2);
    let csv = to_csv(&rows);
    insta::assert_snapshot!(csv);
}

#[test]
fn export_json_carries_its_schema_version_and_the_session() {
    let meta = SessionMeta {
        schema_version: 1,
        id: "20261128-120000-abcd".into(),
        name: "demo".into(),
        created: chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .into(),
        parent: None,
        app_version: "0.1.0".into(),
    };
    let json = render(&meta, &known_log(), ExportFormat::Json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["session"], "20261128-120000-abcd");
    assert_eq!(v["days"].as_array().unwrap().len(), 4);
    assert_eq!(v["days"][2]["teacher_updates"], 1);
    assert_eq!(v["drift"][1]["fields"][0]["field"], "C1");
}

#[test]
fn a_redone_day_after_a_resume_keeps_its_last_result() {
    let mut log = known_log();
    let mut again = log[8].clone(); // crossadapt, day 4
    if let EngineEvent::DayMetrics { metrics, .. } = &mut again.event {
        metrics.auc = Some(0.75);
    }
    again.seq = log.len() as u64;
    log.push(again);
    let (rows, _) = collect(&log);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1].auc, Some(0.75));
}
