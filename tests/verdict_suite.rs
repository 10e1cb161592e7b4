//! `crossadapt bench suite` on the tiny preset (1 world x 1 scenario x 1 scale): the table's
//! rows, counts and files; a second call reads the run back instead of running it again; and
//! the claim rules on hand-made runs with known answers.

use crossadapt::cli::suite::{
    run_suite, table, ArmRun, Claim, DayRun, Outcome3, SuiteArgs, SuiteRun, CLAIMS,
};
use crossadapt::cli::ConfigArgs;
use crossadapt::engine::config::TINY_SETS;

fn tiny_args(out: &std::path::Path, scenario: &str) -> SuiteArgs {
    SuiteArgs {
        config: ConfigArgs {
            config: None,
            set: TINY_SETS.iter().map(|s| s.to_string()).collect(),
        },
        worlds: vec![3],
        scenarios: vec![scenario.to_string()],
        scales: vec![1000],
        arms: ["scratch", "kd", "crossadapt", "crossadapt-matched"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        out: out.to_path_buf(),
        resamples: 200,
    }
}

#[test]
fn a_tiny_suite_writes_one_row_per_claim_and_scenario_with_consistent_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = tiny_args(dir.path(), "concept");
    let rows = run_suite(&args).expect("suite runs");
    // 7 claims x (all + concept) x 1 scale.
    assert_eq!(rows.len(), CLAIMS.len() * 2);
    for r in &rows {
        assert_eq!(r.rows_per_day, 1000);
        assert_eq!(r.wins + r.ties + r.losses, r.runs, "{r:?}");
        let want = match r.key.as_str() {
            // The only scenario has a shift: no run without drift.
            "no_harm" => 0,
            _ => 1,
        };
        assert_eq!(r.runs, want, "{}", r.key);
        assert_eq!(r.verdict == "not run", want == 0, "{r:?}");
        if let Some(i) = r.mean {
            assert!(i.lo <= i.estimate && i.estimate <= i.hi, "{r:?}");
        }
    }
    let log = std::fs::read_to_string(dir.path().join("runs.jsonl")).expect("runs.jsonl");
    assert_eq!(log.lines().count(), 1);
    let run: SuiteRun = serde_json::from_str(log.trim()).expect("a run");
    assert_eq!((run.world, run.scenario.as_str()), (3, "concept"));
    assert_eq!(run.shift_day, Some(6), "tiny shocks on day 6");
    assert_eq!(run.arms.len(), 4);
    assert!(run.arms.iter().all(|a| a.days.len() == 5));
    let csv = std::fs::read_to_string(dir.path().join("suite.csv")).expect("csv");
    assert_eq!(csv.lines().count(), rows.len() + 1);
    let md = std::fs::read_to_string(dir.path().join("suite.md")).expect("md");
    for c in CLAIMS {
        assert!(md.contains(c.text()), "{}", c.text());
    }
    // Every row of a table has its header's cells: a `|` inside a claim is escaped.
    let cells = |line: &str| line.replace("\\|", "").matches('|').count();
    for table in md.split("\n\n").filter(|t| t.starts_with('|')) {
        let header = cells(table.lines().next().unwrap_or_default());
        for line in table.lines() {
            assert_eq!(cells(line), header, "{line}");
        }
    }
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("suite.json")).expect("json"),
    )
    .expect("json parses");
    assert_eq!(json["rows"].as_array().map(Vec::len), Some(rows.len()));

    // Again: the run is read back, not run again, and the table is the same.
    let again = run_suite(&args).expect("suite reads back");
    assert_eq!(again, rows);
    let log = std::fs::read_to_string(dir.path().join("runs.jsonl")).expect("runs.jsonl");
    assert_eq!(log.lines().count(), 1);
}

fn arm(name: &str, offline_seconds: f64, offline_auc: f64, aucs: &[f64], bias: f64) -> ArmRun {
    ArmRun {
        name: name.into(),
        offline_seconds,
        offline_auc: Some(offline_auc),
        days: aucs
            .iter()
            .enumerate()
            .map(|(i, &auc)| DayRun {
                day: 10 + i as u32,
                auc: Some(auc),
                abs_bias: Some(bias),
            })
            .collect(),
        failed: None,
    }
}

fn known_run(world: u64, shift_day: Option<u32>) -> SuiteRun {
    SuiteRun {
        world,
        scenario: if shift_day.is_some() {
            "covariate"
        } else {
            "none"
        }
        .into(),
        rows_per_day: 100,
        seconds: 1.0,
        shift_day,
        mean_distill_weight: Some(0.5),
        arms: vec![
            arm("scratch", 10.0, 0.70, &[0.70, 0.70, 0.70, 0.70], 0.10),
            arm("kd", 8.0, 0.705, &[0.69, 0.69, 0.69, 0.69], 0.30),
            // 0.3x scratch's time, offline +0.0005 (a tie), online +0.02 over kd every day.
            arm("crossadapt", 3.0, 0.7055, &[0.71, 0.71, 0.71, 0.71], 0.20),
            // The matched arm equals crossadapt before day 12 and is 0.05 worse from it on.
            arm(
                "crossadapt-matched",
                3.0,
                0.7055,
                &[0.71, 0.71, 0.66, 0.66],
                0.20,
            ),
        ],
    }
}

#[test]
fn the_claim_rules_give_known_answers() {
    let shifted = known_run(1, Some(12));
    let v = |c: Claim| c.values(&shifted).expect("applies");
    assert_eq!(v(Claim::TimeToSwitch), vec![0.3]);
    assert_eq!(Claim::TimeToSwitch.outcome(&[0.3], 100, 1), Outcome3::Win);
    assert_eq!(Claim::TimeToSwitch.outcome(&[0.6], 100, 1), Outcome3::Loss);
    assert_eq!(
        Claim::OfflineAucVsKd.outcome(&v(Claim::OfflineAucVsKd), 100, 1),
        Outcome3::Tie
    );
    assert_eq!(
        Claim::OnlineAucVsKd.outcome(&v(Claim::OnlineAucVsKd), 100, 1),
        Outcome3::Win
    );
    assert_eq!(
        Claim::BiasVsKd.outcome(&v(Claim::BiasVsKd), 100, 1),
        Outcome3::Win
    );
    // After the shift (days 12 and 13) only.
    let after = v(Claim::AdaptiveAfterShift);
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|d| (d - 0.05).abs() < 1e-12));
    assert!(Claim::NoHarmWithoutDrift.values(&shifted).is_none());
    let flat = known_run(2, None);
    assert!(Claim::AdaptiveAfterShift.values(&flat).is_none());
    // The adaptivity claims compare with the matched arm only: a run whose only ablation is
    // `crossadapt-fixed` (at a_max, a lower mean weight) does not count for them.
    let mut old = known_run(4, Some(12));
    let last = old.arms.len() - 1;
    old.arms[last].name = "crossadapt-fixed".into();
    assert!(Claim::AdaptiveAfterShift.values(&old).is_none());
    assert!(Claim::OnlineAucVsKd.values(&old).is_some());
    // Without drift the fixed arm's last days are worse: a "harm" reading of +0.05.
    assert_eq!(
        Claim::NoHarmWithoutDrift.outcome(
            &Claim::NoHarmWithoutDrift.values(&flat).expect("none"),
            100,
            1
        ),
        Outcome3::Tie,
        "two equal and two better days: the day interval reaches 0"
    );

    let rows = table(&[shifted, known_run(3, Some(12)), flat], 200);
    let row = |key: &str, scenario: &str| {
        rows.iter()
            .find(|r| r.key == key && r.scenario == scenario)
            .expect("row")
    };
    let online = row("online_auc_kd", "all");
    assert_eq!(
        (online.runs, online.wins, online.verdict.as_str()),
        (3, 3, "holds")
    );
    let i = online.mean.expect("interval");
    assert!((i.estimate - 0.02).abs() < 1e-12 && (i.lo - 0.02).abs() < 1e-12);
    let time = row("time", "all");
    assert_eq!((time.wins, time.verdict.as_str()), (3, "holds"));
    assert_eq!(row("adaptive_shift", "all").runs, 2);
    assert_eq!(row("adaptive_shift", "none").verdict, "not run");
    assert_eq!(row("no_harm", "none").runs, 1);
}
