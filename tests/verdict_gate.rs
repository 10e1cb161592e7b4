//! The migration gate end to end: the engine's `Gate` evidence per student arm and online
//! day, the ledger's SWITCH / NOT YET under the configured rule, and both times in the report.

use std::collections::BTreeMap;

use crossadapt::engine::events::{EngineEvent, EventSink};
use crossadapt::engine::report::Report;
use crossadapt::engine::Record;
use crossadapt::engine::SessionConfig;
use crossadapt::protocol::{GateCluster, GateDecision, Ledger, MetBy};
use crossadapt::session::DayTablePrinter;
use crossadapt::train::stats::Interval;

mod engine_common;
use engine_common::run_tiny as run;

#[test]
fn gate_evidence_is_the_difference_of_the_reported_metrics() {
    let records = run(&[]);
    let mut metrics = BTreeMap::new();
    let mut train = BTreeMap::<String, f64>::new();
    for r in &records {
        if let EngineEvent::DayMetrics {
            arm,
            day,
            metrics: m,
            train_seconds,
            ..
        } = &r.event
        {
            metrics.insert((arm.clone(), *day), m.clone());
            *train.entry(arm.clone()).or_default() += train_seconds;
        }
    }
    let mut gates = 0;
    for r in &records {
        let EngineEvent::Gate {
            arm,
            day,
            incumbent,
            auc,
            logloss,
            rule,
        } = &r.event
        else {
            continue;
        };
        gates += 1;
        assert_eq!(incumbent, "incumbent");
        assert_ne!(arm, "incumbent");
        assert_eq!(rule.level, 0.95);
        let (s, i) = (
            &metrics[&(arm.clone(), *day)],
            &metrics[&(incumbent.clone(), *day)],
        );
        let auc = auc.expect("both classes on a tiny day");
        let want = s.auc.expect("auc") - i.auc.expect("auc");
        assert!(
            (auc.estimate - want).abs() < 1e-12,
            "{arm} day {day}: {auc:?} vs {want}"
        );
        assert!(auc.lo < auc.estimate && auc.estimate < auc.hi);
        let ll = logloss.expect("rows");
        let want = s.logloss - i.logloss;
        assert!(
            (ll.estimate - want).abs() < 1e-9,
            "{arm} day {day}: {ll:?} vs {want}"
        );
    }
    let arms = metrics
        .keys()
        .map(|(a, _)| a.clone())
        .collect::<std::collections::BTreeSet<_>>();
    let days = metrics
        .keys()
        .map(|(_, d)| *d)
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        gates,
        (arms.len() - 1) * days.len(),
        "one per student arm and day"
    );

    // Both times in the report: total = offline + online training.
    let report = Report::from_records(serde_json::Value::Null, &records, None);
    for a in &report.arms {
        let want = a.offline_seconds + train[&a.name];
        assert!(
            (a.total_seconds - want).abs() < 1e-9,
            "{}: {} vs {want}",
            a.name,
            a.total_seconds
        );
        assert_eq!(a.gate.is_some(), a.name != "incumbent", "{}", a.name);
        assert!(a
            .online
            .iter()
            .all(|d| d.gate.is_some() == (a.name != "incumbent")));
    }
    let scratch = report
        .arms
        .iter()
        .find(|a| a.name == "scratch")
        .expect("scratch");
    // Against itself: 1, or too short to time on tiny's hundredths of a CPU second.
    match scratch.total_vs_scratch {
        Some(r) => assert_eq!(r, 1.0),
        None => assert!(scratch
            .too_short_to_time
            .iter()
            .any(|n| n == "total_vs_scratch")),
    }
    // The gate's decision reaches the headless text through the day printer, which a live
    // run and a replay share: one line per student arm.
    let mut printer = DayTablePrinter::new(Vec::new());
    for r in &records {
        printer.emit(r).expect("print a record");
    }
    let text = String::from_utf8(printer.finish().expect("flush")).expect("utf-8");
    for a in report.arms.iter().filter(|a| a.name != "incumbent") {
        assert!(
            text.lines()
                .any(|l| l.starts_with(a.name.as_str()) && l.contains(" gate ")),
            "{}: no gate line in\n{text}",
            a.name
        );
    }
}

#[test]
fn the_configured_rule_decides_switch_or_not_yet() {
    // A tolerance no difference can exceed: every student passes every day, so the rule is
    // met on the second online day and holds.
    let records = run(&["gate.delta=1.0", "gate.logloss_delta=1.0", "gate.days=2"]);
    let ledger = Ledger::of(&records);
    let verdict = ledger.verdict(None);
    let second = ledger.plan.online[1];
    for a in verdict.arms.iter().filter(|a| a.arm != "incumbent") {
        let g = a.gate.as_ref().expect("a student arm has a gate");
        assert_eq!(g.decision, GateDecision::Switch, "{}: {g:?}", a.arm);
        assert_eq!(g.first_met, Some(second));
        assert!(g.reason.contains("5 consecutive days"), "{}", g.reason);
    }
    // More days than the run has, and no pooled rule: never met, and it says how far it got.
    let records = run(&[
        "gate.delta=1.0",
        "gate.logloss_delta=1.0",
        "gate.days=9",
        "gate.window=0",
    ]);
    let verdict = Ledger::of(&records).verdict(None);
    for a in verdict.arms.iter().filter(|a| a.arm != "incumbent") {
        let g = a.gate.as_ref().expect("gate");
        assert_eq!(g.decision, GateDecision::NotYet);
        assert_eq!(g.reason, "5 of 9 days so far");
        assert_eq!((a.days_to_switch, a.switch_day), (None, None));
    }
    // The same with a pooled window of 3 days: met by the window on the third online day,
    // which the report counts as 3 days to switch.
    let records = run(&[
        "gate.delta=1.0",
        "gate.logloss_delta=1.0",
        "gate.days=9",
        "gate.window=3",
    ]);
    let ledger = Ledger::of(&records);
    let third = ledger.plan.online[2];
    for a in ledger
        .verdict(None)
        .arms
        .iter()
        .filter(|a| a.arm != "incumbent")
    {
        let g = a.gate.as_ref().expect("gate");
        assert_eq!(g.decision, GateDecision::Switch, "{}: {g:?}", a.arm);
        assert_eq!((g.first_met, g.met_by), (Some(third), Some(MetBy::Pooled)));
        assert_eq!((a.days_to_switch, a.switch_day), (Some(3), Some(third)));
        assert!(a.seconds_to_switch.is_some_and(|s| s >= a.offline_seconds));
        assert!(a.degradation_area.is_some_and(|d| d >= 0.0));
    }
}

/// (arm, day) -> (AUC, LogLoss) intervals and the units of every `Gate` record.
type Evidence = BTreeMap<(String, u32), (Interval, Interval, GateCluster)>;

fn evidence(records: &[Record]) -> Evidence {
    records
        .iter()
        .filter_map(|r| match &r.event {
            EngineEvent::Gate {
                arm,
                day,
                auc,
                logloss,
                rule,
                ..
            } => Some((
                (arm.clone(), *day),
                (auc.expect("auc"), logloss.expect("logloss"), rule.cluster),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn the_gate_counts_users_as_units_when_the_data_names_them() {
    // The synthetic source has a user field, so `auto` clusters by user; `rows` is the
    // unclustered statistics. Same models, same rows: the estimates agree, the widths do not.
    let by_users = run(&[]);
    let (users, rows) = (
        evidence(&by_users),
        evidence(&run(&["gate.cluster=\"rows\""])),
    );
    assert_eq!(
        users.keys().collect::<Vec<_>>(),
        rows.keys().collect::<Vec<_>>()
    );
    let width = |i: &Interval| i.hi - i.lo;
    let (mut auc_ratio, mut ll_ratio) = (Vec::new(), Vec::new());
    for (key, (ua, ul, uc)) in &users {
        let (ra, rl, rc) = &rows[key];
        assert_eq!(
            (*uc, *rc),
            (GateCluster::Users, GateCluster::Rows),
            "{key:?}"
        );
        assert_eq!(
            (ua.estimate, ul.estimate),
            (ra.estimate, rl.estimate),
            "{key:?}"
        );
        auc_ratio.push(width(ua) / width(ra));
        ll_ratio.push(width(ul) / width(rl));
    }
    // Repeated users on a tiny day: the clustered intervals differ from the row ones.
    assert!(
        auc_ratio
            .iter()
            .chain(&ll_ratio)
            .all(|r| (r - 1.0).abs() > 1e-6),
        "{auc_ratio:?} {ll_ratio:?}"
    );
    // The report says which units the gate used, per day and in its status.
    let report = Report::from_records(serde_json::Value::Null, &by_users, None);
    for a in report.arms.iter().filter(|a| a.name != "incumbent") {
        assert_eq!(a.gate.as_ref().expect("gate").cluster, GateCluster::Users);
        for d in &a.online {
            assert_eq!(
                d.gate.as_ref().expect("day").rule.cluster,
                GateCluster::Users
            );
        }
    }
}

#[test]
fn a_bad_rule_fails_naming_the_key() {
    for (set, key) in [
        ("gate.days=0", "gate.days"),
        ("gate.delta=-1", "gate.delta"),
        ("gate.level=1.5", "gate.level"),
    ] {
        let err = SessionConfig::tiny(&[set]).expect_err("invalid rule");
        assert!(format!("{err:#}").contains(key), "{set}: {err:#}");
    }
    let err = SessionConfig::tiny(&["gate.cluster=sessions"]).expect_err("unknown units");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("gate.cluster") && msg.contains("sessions") && msg.contains("users"),
        "{msg}"
    );
    let err = SessionConfig::tiny(&["gate.dayz=2"]).expect_err("unknown key");
    assert!(format!("{err:#}").contains("dayz"), "{err:#}");
}
