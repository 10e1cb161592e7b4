//! The drift weight on the tiny preset (history 0-1, retained 2-4, online 5-9, the change on
//! day 6) in three worlds: `none`, `burst` (from day 6 most users and items are new every day,
//! nothing that drives clicks changes) and `shock` (ids, interactions and rate move at once).
//! The `model` measure (the default) must keep the burst's weight off its bounds and near the
//! stationary world's, and still raise it on the shock day; the `psi` measure, the rule before,
//! pins the burst's weight at 1 (the trap of issue 34), which this test also checks so that it
//! fails on the old behaviour.

use crossadapt::engine::events::EngineEvent;
use crossadapt::engine::Record;

mod engine_common;
use engine_common::run_tiny as run;

/// The day-level drift weight the adaptive arm announced, by online day.
fn weights(records: &[Record]) -> Vec<(u32, f64)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            EngineEvent::Drift {
                day,
                batch: None,
                weight,
                ..
            } => Some((*day, *weight)),
            _ => None,
        })
        .collect()
}

fn session(drift: &str, measure: &str) -> Vec<(u32, f64)> {
    let w = weights(&run(&[
        "arms=[\"crossadapt\"]",
        &format!("data.drift=\"{drift}\""),
        &format!("adaptation.measure=\"{measure}\""),
    ]));
    eprintln!("{drift} / {measure}: {w:?}");
    assert_eq!(
        w.iter().map(|&(d, _)| d).collect::<Vec<_>>(),
        vec![5, 6, 7, 8, 9]
    );
    w
}

fn mean(w: &[(u32, f64)]) -> f64 {
    w.iter().map(|&(_, v)| v).sum::<f64>() / w.len() as f64
}

fn at_bound(v: f64) -> bool {
    !(0.005..=0.995).contains(&v)
}

#[test]
fn bursts_of_new_ids_leave_the_weight_free_and_a_shock_still_raises_it() {
    let none = session("none", "model");
    let burst = session("burst", "model");
    let shock = session("shock", "model");
    // Day 5 is before the burst: the stationary world's day, and its weight.
    assert_eq!(none[0], burst[0]);
    // The burst days: never at a bound, and on average within 0.1 of the stationary world.
    for &(d, v) in &burst[1..] {
        assert!(!at_bound(v), "burst day {d}: weight {v} at a bound");
    }
    assert!(
        (mean(&burst[1..]) - mean(&none[1..])).abs() < 0.1,
        "burst {burst:?} vs none {none:?}"
    );
    // The shock day: the weight rises over the day before and over the stationary world's.
    let (before, on) = (shock[0].1, shock[1].1);
    assert!(on > before + 0.2, "shock {shock:?}");
    assert!(on > none[1].1 + 0.2, "shock {shock:?} vs none {none:?}");
    // The rule before: every field's PSI, and the burst's new users and items push the
    // weight to its bound (within 0.01 of 1 on every burst day, at it on most).
    let old = session("burst", "psi");
    for &(d, v) in &old[1..] {
        assert!(v > 0.99, "psi measure, burst day {d}: {v}");
    }
    assert!(old[1..].iter().filter(|&&(_, v)| at_bound(v)).count() >= 3);
}

/// The measure's state travels in every checkpoint from the first online day on: the stable
/// fields and the teacher's score bins, identical in every checkpoint (fixed from the retained
/// days, never moved by an online day), and the calibration data of the online days before
/// the checkpoint's day.
#[test]
fn checkpoints_carry_the_measure_state_fixed_from_the_retained_days() {
    use crossadapt::engine::config::TINY_SETS;
    let store = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_crossadapt"));
    cmd.arg("--sessions-dir")
        .arg(store.path())
        .args(["run", "--headless"]);
    for s in TINY_SETS {
        cmd.args(["--set", s]);
    }
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let session = std::fs::read_dir(store.path())
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.path().join("checkpoints").is_dir())
        .expect("a session folder")
        .path();
    let state = |day: &str| -> serde_json::Value {
        let path = session.join("checkpoints").join(day).join("state.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    // At the switch nothing is measured yet.
    assert!(state("day-0005").get("drift").is_none());
    let days = |s: &serde_json::Value| -> Vec<u64> {
        s["drift"]["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["day"].as_u64().unwrap())
            .collect()
    };
    let (d7, d9) = (state("day-0007"), state("day-0009"));
    assert_eq!(days(&d7), vec![5, 6]);
    assert_eq!(days(&d9), vec![5, 6, 7, 8]);
    assert_eq!(
        d7["drift"]["stable_fields"],
        serde_json::json!(["category", "hour", "device", "region"])
    );
    assert_eq!(d7["drift"]["bins"], d9["drift"]["bins"]);
    assert_eq!(d7["drift"]["bins"]["cuts"].as_array().unwrap().len(), 19);
}
