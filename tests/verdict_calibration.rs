//! `online.calibrate` end to end on the tiny preset (history 0-1, retained 2-4, online 5-9):
//! after each online day every arm's served logit gets the intercept that calibrates its
//! end-of-day model on that day's rows; the next day is scored with it. Training is untouched.

use crossadapt::engine::events::EngineEvent;
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
