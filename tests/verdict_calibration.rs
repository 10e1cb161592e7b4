//! `online.calibrate` end to end on the tiny preset (history 0-1, retained 2-4, online 5-9):
//! after each online day every arm's served logit gets the intercept that calibrates its
//! end-of-day model on that day's rows; the next day is scored with it. Training is untouched.

use crossadapt::engine::events::EngineEvent;
use crossadapt::engine::report::Report;
use crossadapt::engine::Record;

mod engine_common;
use engine_common::{day_metrics, run_tiny as run};

const ARMS: &str = r#"arms=["incumbent", "scratch", "crossadapt", "crossadapt-matched"]"#;

/// (arm, day) -> the gate's AUC estimate (student minus incumbent).
fn gate_auc(records: &[Record]) -> Vec<((String, u32), f64)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            EngineEvent::Gate { arm, day, auc, .. } => {
                auc.as_ref().map(|a| ((arm.clone(), *day), a.estimate))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn calibration_moves_the_served_level_and_nothing_the_arms_train_with() {
    let plain = run(&[ARMS]);
    let calibrated = run(&[ARMS, "online.calibrate=true"]);
    let (before, after) = (day_metrics(&plain), day_metrics(&calibrated));
    assert_eq!(before.len(), 4 * 5, "every arm scored every online day");
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let (mut abs_before, mut abs_after) = (0.0, 0.0);
    for ((arm, day), m) in &before {
        let c = &after[&(arm.clone(), *day)];
        if *day == 5 {
            // No online day has been trained on yet: nothing to calibrate with.
            assert_eq!(m, c, "{arm} day {day}");
            continue;
        }
        // The same models (training is untouched), shifted by a constant: the ranking, so
        // the AUC, is the same (to the rounding of z + c in f32).
        let (a, b) = (m.auc.expect("an AUC"), c.auc.expect("an AUC"));
        assert!((a - b).abs() < 1e-6, "{arm} day {day}: AUC {a} vs {b}");
        assert_ne!(
            m.bias, c.bias,
            "{arm} day {day}: the served level did not move"
        );
        abs_before += m.bias.abs();
        abs_after += c.bias.abs();
    }
    // Over the arms and days 6-9 (the tiny world's shock is on day 6), serving each day with
    // the level fitted on the day before brings the predictions closer to the click rate.
    assert!(
        abs_after < abs_before,
        "mean |bias| {abs_after} with calibration, {abs_before} without"
    );
    // The gate reads what the arms serve: its AUC estimate is still the difference of the
    // reported AUCs.
    for ((arm, day), estimate) in gate_auc(&calibrated) {
        let auc = |a: &str| after[&(a.to_string(), day)].auc.expect("an AUC");
        let want = auc(&arm) - auc("incumbent");
        assert!(
            (estimate - want).abs() < 1e-9,
            "{arm} day {day}: {estimate} vs {want}"
        );
    }
}

#[test]
fn the_report_carries_each_days_intercept_and_the_matched_weight() {
    let sets = [ARMS, "online.distill_min=0.2", "online.distill_max=0.7"];
    let calibrated = run(&[sets[0], sets[1], sets[2], "online.calibrate=true"]);
    let report = Report::from_records(serde_json::Value::Null, &calibrated, None);
    assert_eq!(report.arms.len(), 4);
    for a in &report.arms {
        assert_eq!(a.online.len(), 5, "{}", a.name);
        // The first online day is served as is (nothing trained on yet); every later day with
        // the intercept fitted on the day before, which moves the served level (the first
        // test) and so is not 0.
        let c: Vec<f64> = a
            .online
            .iter()
            .map(|d| d.calibration.expect("an intercept per day"))
            .collect();
        assert_eq!(c[0], 0.0, "{}: {c:?}", a.name);
        assert!(
            c[1..]
                .iter()
                .all(|c| c.is_finite() && *c != 0.0 && c.abs() < 20.0),
            "{}: {c:?}",
            a.name
        );
        // Only the matched ablation has a fixed weight; it trains the whole day with
        // a = a_max - w (a_max - a_min), so its mean distillation weight gives w back.
        let matched = a.name == "crossadapt-matched";
        for d in &a.online {
            assert_eq!(
                d.matched_weight.is_some(),
                matched,
                "{} day {}",
                a.name,
                d.day
            );
            if let Some(w) = d.matched_weight {
                assert!((0.0..=1.0).contains(&w), "day {}: {w}", d.day);
                let a_day = d.distill_weight.expect("the matched arm distils");
                assert!(
                    (a_day - (0.7 - w * 0.5)).abs() < 1e-9,
                    "day {}: a {a_day}, w {w}",
                    d.day
                );
            }
        }
        if matched {
            // No past online day on the first: weight 0 (a = a_max); a mean of rule weights
            // after it.
            let w: Vec<f64> = a.online.iter().filter_map(|d| d.matched_weight).collect();
            assert_eq!(w[0], 0.0, "{w:?}");
            assert!(w[1..].iter().any(|&w| w > 0.0), "{w:?}");
        }
    }
    // Without calibration the report has no intercept; the matched weight is still there.
    let plain = Report::from_records(serde_json::Value::Null, &run(&sets), None);
    for a in &plain.arms {
        assert!(
            a.online.iter().all(|d| d.calibration.is_none()),
            "{}",
            a.name
        );
        let matched = a.name == "crossadapt-matched";
        assert!(a
            .online
            .iter()
            .all(|d| d.matched_weight.is_some() == matched));
    }
}
