//! The two isolating ablations of issue 17.3 end to end on the tiny preset (history 0-1,
//! retained 2-4, online 5-9): `crossadapt-matched` (a fixed weight at the adaptive rule's
//! mean over the past online days) and `crossadapt-nocorr` (no logit correction of the biased
//! 1B/1C sample).

use std::collections::BTreeMap;

use crossadapt::engine::events::EngineEvent;
use crossadapt::engine::Record;
use crossadapt::protocol::EvalMetrics;

mod engine_common;
use engine_common::{day_metrics, run_tiny as run};

fn arms(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("arms=[{}]", quoted.join(", "))
}

fn offline(records: &[Record]) -> BTreeMap<String, EvalMetrics> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            EngineEvent::OfflineResult { arm, metrics, .. } => Some((arm.clone(), metrics.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_matched_arm_starts_at_the_no_drift_level_then_holds_the_past_mean() {
    // Without replay rows, so the arms' own replay streams (seeded by arm name) do not differ
    // and the weight is the only thing that sets the arms apart.
    let names = arms(&["crossadapt", "crossadapt-fixed", "crossadapt-matched"]);
    let records = run(&[&names, "online.replay_ratio=0"]);
    let m = day_metrics(&records);
    let get = |arm: &str, day: u32| m.get(&(arm.to_string(), day)).expect("a day result");
    for day in 5..=9 {
        get("crossadapt-matched", day);
    }
    // One offline stage for the three (same key): the same student on the first online day.
    assert_eq!(get("crossadapt-matched", 5), get("crossadapt", 5));
    // Day 5 has no past online day: the matched arm trains at the no-drift level, as the fixed
    // arm does, so both score day 6 identically. An arm using day 5's own drift would not.
    assert_eq!(get("crossadapt-matched", 6), get("crossadapt-fixed", 6));
    assert_ne!(get("crossadapt", 6), get("crossadapt-fixed", 6));
    // From day 6 on it trains at the mean of the rule's past weights: neither the fixed arm
    // nor the adaptive one.
    for day in 7..=9 {
        assert_ne!(
            get("crossadapt-matched", day),
            get("crossadapt-fixed", day),
            "{day}"
        );
        assert_ne!(
            get("crossadapt-matched", day),
            get("crossadapt", day),
            "{day}"
        );
    }
}

#[test]
fn the_nocorr_arm_is_the_method_without_the_logit_correction() {
    let names = arms(&["crossadapt", "crossadapt-nocorr"]);
    let records = run(&[&names]);
    let off = offline(&records);
    let (with, without) = (&off["crossadapt"], &off["crossadapt-nocorr"]);
    // Its own offline stage, on the same sample: only the label term's offset differs.
    assert_ne!(with, without);
    assert_eq!(day_metrics(&records).len(), 10, "both arms ran every day");
    // With the correction switched off for the session, the ablation is the full method.
    let off = offline(&run(&[&names, "method.logit_correction=false"]));
    assert_eq!(off["crossadapt"], off["crossadapt-nocorr"]);
    assert_eq!(off["crossadapt-nocorr"], *without);
}

#[test]
fn each_arm_logs_the_distillation_weight_it_trained_with() {
    let names = arms(&[
        "incumbent",
        "scratch",
        "kd",
        "crossadapt",
        "crossadapt-fixed",
        "crossadapt-matched",
    ]);
    let records = run(&[
        &names,
        "method.distill_weight=0.6",
        "per_arm.kd.distill_weight=0.6",
        "online.distill_min=0.2",
        "online.distill_max=0.7",
    ]);
    let mut weights: BTreeMap<(String, u32), Option<f64>> = BTreeMap::new();
    let mut announced: BTreeMap<u32, f64> = BTreeMap::new();
    for r in &records {
        match &r.event {
            EngineEvent::DayMetrics {
                arm,
                day,
                distill_weight,
                ..
            } => {
                weights.insert((arm.clone(), *day), *distill_weight);
            }
            EngineEvent::Drift {
                day,
                batch: None,
                distill_weight,
                ..
            } => {
                announced.insert(*day, *distill_weight);
            }
            _ => {}
        }
    }
    let a = |arm: &str, day: u32| weights[&(arm.to_string(), day)];
    // A day's weight is the mean over its batches: equal to a constant up to rounding.
    let near = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-12);
    let within = |x: f64| (0.2 - 1e-12..=0.7 + 1e-12).contains(&x);
    let mut matched_moved = false;
    for day in 5..=9 {
        assert_eq!(a("incumbent", day), None, "labels only");
        assert_eq!(a("scratch", day), None, "labels only");
        assert!(
            near(a("kd", day), 0.6),
            "kd distils at its own distill_weight"
        );
        assert!(
            near(a("crossadapt-fixed", day), 0.7),
            "fixed at distill_max"
        );
        // The adaptive arm announces the day's drift: its weight is the one announced.
        let adaptive = a("crossadapt", day).expect("crossadapt distils");
        assert!((adaptive - announced[&day]).abs() < 1e-12, "day {day}");
        assert!(within(adaptive), "day {day}: {adaptive}");
        let matched = a("crossadapt-matched", day).expect("the matched arm distils");
        assert!(within(matched), "day {day}: {matched}");
        if day == 5 {
            assert!(
                near(Some(matched), 0.7),
                "no past online day: the no-drift level"
            );
        } else {
            matched_moved |= matched < 0.7 - 1e-9;
        }
    }
    assert!(
        matched_moved,
        "the matched arm never left the no-drift level"
    );
}
