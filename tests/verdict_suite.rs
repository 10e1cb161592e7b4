//! `crossadapt bench suite` on the tiny preset (1 world x 1 scenario x 1 scale): the table's
//! rows, counts and files; a second call reads the run back instead of running it again; a
//! tuned suite runs with each run's choice; and the claim rules and the pooled choice on
//! hand-made runs with known answers.

use std::collections::BTreeMap;

use crossadapt::cli::suite::{
    cell_config, pooled_trials, read_runs, run_cell, run_suite, table, ArmRun, Cell, Claim, DayRun,
    Outcome3, SuiteArgs, SuiteRun, CLAIMS,
};
use crossadapt::cli::ConfigArgs;
use crossadapt::engine::config::TINY_SETS;
use crossadapt::engine::tune::{overrides, TuneBudget};
use crossadapt::protocol::tune::{ArmTuning, TuneTrial, Tuning};

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
        tune: false,
        tune_trials: 8,
        tune_online_days: 0,
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
        drift_weights: vec![],
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
        tuning: None,
        tune_seconds: 0.0,
        tune_key: None,
        tune_reused: false,
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

/// `--tune`: every arm is tuned on the run's own retained days with the same budget, and the run
/// uses the choice (its figures are an untuned run's with the chosen values as config); an
/// untuned suite of the same cell does not take the tuned run as its own.
#[test]
fn a_tuned_suite_tunes_every_arm_first_and_runs_with_the_choice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = tiny_args(dir.path(), "none");
    // `label` shifts after the retained days: the same retained days as `none`, so the same
    // tuning, taken from the first run instead of being run again.
    args.scenarios.push("label".into());
    args.tune = true;
    args.tune_trials = 3;
    run_suite(&args).expect("tuned suite runs");
    let log = dir.path().join("runs.jsonl");
    let runs = read_runs(&log).expect("runs");
    assert_eq!(runs.len(), 2);
    let tuned = runs
        .iter()
        .find(|r| r.scenario == "none")
        .expect("none")
        .clone();
    let label = runs.iter().find(|r| r.scenario == "label").expect("label");
    assert!(!tuned.tune_reused && label.tune_reused);
    assert!(tuned.tune_key.is_some() && label.tune_key == tuned.tune_key);
    assert_eq!(label.tuning, tuned.tuning);
    assert!(label.tune_seconds < tuned.tune_seconds);
    let md = std::fs::read_to_string(dir.path().join("suite.md")).expect("md");
    assert!(md.contains("(the protocol ran once)"), "{md}");
    let tuning = tuned.tuning.as_ref().expect("the run was tuned");
    let names: Vec<&str> = tuning.arms.iter().map(|a| a.arm.as_str()).collect();
    assert_eq!(
        names,
        ["scratch", "kd", "crossadapt"],
        "ablations share crossadapt's"
    );
    assert!(
        tuning.arms.iter().all(|a| a.trials.len() == 3),
        "same budget"
    );
    assert!(
        tuning.validation_day < 6,
        "a retained day: tiny's online days are 6-10"
    );
    assert!(tuned.tune_seconds > 0.0 && tuned.tune_seconds < tuned.seconds);
    assert!(
        tuning.arms.iter().any(|a| a.chosen != 0),
        "some arm's choice differs from its defaults, so the check below can fail"
    );

    // The same cell untuned, with the choice as config, gives the tuned run's figures.
    let cell = Cell {
        world: 3,
        scenario: "none".into(),
        rows_per_day: 1000,
        tuned: false,
        online_days: 0,
    };
    let mut cfg = cell_config(&args, &cell).expect("config");
    cfg.per_arm = tuning
        .arms
        .iter()
        .map(|a| {
            (
                a.arm.clone(),
                overrides(&a.choice().expect("a choice").values),
            )
        })
        .collect();
    let replay =
        run_cell(cfg, &cell, TuneBudget::trials(0), &mut Default::default()).expect("replay");
    let figures = |r: &SuiteRun| -> Vec<(String, Option<f64>, Vec<Option<f64>>)> {
        r.arms
            .iter()
            .map(|a| {
                let days = a.days.iter().map(|d| d.auc).collect();
                (a.name.clone(), a.offline_auc, days)
            })
            .collect()
    };
    assert_eq!(figures(&replay), figures(&tuned));

    // Untuned, the suite runs the cell again; the arms whose choice moved now differ.
    args.tune = false;
    args.scenarios.pop();
    run_suite(&args).expect("untuned suite runs");
    let runs = read_runs(&log).expect("runs");
    assert_eq!(runs.len(), 3, "the tuned run is not the untuned cell's");
    let plain = runs
        .iter()
        .find(|r| r.tuning.is_none())
        .expect("untuned run");
    assert_eq!(plain.tune_seconds, 0.0);
    for arm in &tuning.arms {
        let of = |r: &SuiteRun| {
            r.arms
                .iter()
                .find(|a| a.name == arm.arm)
                .map(|a| a.offline_auc)
        };
        assert_eq!(
            of(plain) == of(&tuned),
            arm.chosen == 0,
            "{}: chose trial {}",
            arm.arm,
            arm.chosen
        );
    }
    let md = std::fs::read_to_string(dir.path().join("suite.md")).expect("md");
    assert!(
        !md.contains("mean validation AUC"),
        "the untuned table has no pooled choice"
    );
}

fn trial(values: &[(&str, f64)], auc: f64) -> TuneTrial {
    TuneTrial {
        values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        auc: Some(auc),
        logloss: 0.5,
        seconds: 1.0,
        failed: None,
    }
}

/// The pooled choice on hand-made tunings: the highest mean over the runs, among the sets every
/// run scored; a set only one run tried cannot win however well it scored.
#[test]
fn the_pooled_choice_is_the_best_mean_over_every_run() {
    let a = [("emb_lr", 0.02)];
    let b = [("emb_lr", 0.01)];
    let c = [("emb_lr", 0.1)];
    let tuning = |trials: Vec<TuneTrial>, chosen: usize| Tuning {
        train_days: vec![1, 2],
        validation_day: 4,
        online_day: Some(3),
        arms: vec![ArmTuning {
            arm: "kd".into(),
            trials,
            chosen,
        }],
        online: None,
    };
    let mut one = known_run(1, None);
    one.tuning = Some(tuning(
        vec![trial(&a, 0.70), trial(&b, 0.66), trial(&c, 0.90)],
        2,
    ));
    let mut two = known_run(2, None);
    two.tuning = Some(tuning(vec![trial(&a, 0.60), trial(&b, 0.66)], 1));
    let pooled = pooled_trials(&[one.clone(), two]);
    let row = |v: &[(&str, f64)]| {
        let values: BTreeMap<String, f64> = v.iter().map(|(k, x)| (k.to_string(), *x)).collect();
        pooled
            .iter()
            .find(|p| p.values == values)
            .cloned()
            .expect("row")
    };
    assert_eq!(pooled.len(), 3);
    let (ra, rb, rc) = (row(&a), row(&b), row(&c));
    assert!((ra.mean_auc.unwrap() - 0.65).abs() < 1e-12 && !ra.best);
    assert!((rb.mean_auc.unwrap() - 0.66).abs() < 1e-12 && rb.best);
    assert_eq!((rb.runs, rb.chosen), (2, 1));
    assert_eq!((rc.runs, rc.chosen, rc.best), (1, 1, false));
    // One run alone: its best scored set wins.
    let alone = pooled_trials(&[one]);
    assert_eq!(alone.iter().filter(|p| p.best).count(), 1);
    assert!(alone.iter().any(|p| p.best && p.mean_auc == Some(0.90)));
}

/// `--tune-online-days` adds the online stage to every tuning: a run tuned with it is a cell of
/// its own (a run tuned without it is not taken for it, nor its tuning), its record holds the
/// stage, and the pooled choice lists the online values beside the arms'.
#[test]
fn the_online_stage_of_a_tuned_suite_is_a_cell_of_its_own_and_pooled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = tiny_args(dir.path(), "none");
    args.arms = vec!["crossadapt".into()];
    args.tune = true;
    args.tune_trials = 2;
    run_suite(&args).expect("tuned suite runs");
    args.tune_online_days = 2;
    run_suite(&args).expect("tuned suite with the online stage runs");
    let runs = read_runs(&dir.path().join("runs.jsonl")).expect("runs");
    assert_eq!(runs.len(), 2, "the online stage makes another cell");
    let (plain, online) = (&runs[0], &runs[1]);
    assert!(plain.tuning.as_ref().expect("tuned").online.is_none());
    let stage = online
        .tuning
        .as_ref()
        .and_then(|t| t.online.as_ref())
        .expect("the online stage ran");
    assert_eq!(stage.days, vec![3, 4], "the last two retained days of tiny");
    assert_eq!(stage.tuning.trials.len(), 2, "the same budget");
    assert!(!online.tune_reused && online.tune_key != plain.tune_key);
    let pooled = pooled_trials(&runs);
    assert_eq!(
        pooled.iter().filter(|p| p.arm == "online").count(),
        2,
        "{pooled:?}"
    );
    let md = std::fs::read_to_string(dir.path().join("suite.md")).expect("md");
    assert!(md.contains("| online |"), "{md}");
}
