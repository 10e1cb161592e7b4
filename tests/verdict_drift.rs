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
