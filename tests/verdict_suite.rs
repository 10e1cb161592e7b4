//! `crossadapt bench suite` on the tiny preset (1 world x 1 scenario x 1 scale): the table's
//! rows, counts and files; a second call reads the run back instead of running it again; a
//! tuned suite runs with each run's choice; the claim rules, the switch table and the pooled
//! choice on hand-made runs with known answers; a run on file from before the switch figures
//! reads back.

use std::collections::BTreeMap;

use crossadapt::cli::suite::{
    cell_config, cells, pooled_trials, read_runs, run_cell, run_suite, switch_table, table, ArmRun,
    Cell, Claim, DayRun, Outcome3, SuiteArgs, SuiteRun, CLAIMS,
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
        presets: vec![],
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
            // Tiny offline stages take a few ms of CPU: too short to time, so no ratio.
            "time" => 0,
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
    // The incumbent is added to the arms asked for: the gate judges every student against it.
    let names: Vec<&str> = run.arms.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "incumbent",
            "scratch",
            "kd",
            "crossadapt",
            "crossadapt-matched"
        ]
    );
    assert!(run.arms.iter().all(|a| a.days.len() == 5));
    assert_eq!((run.preset.as_str(), run.online_days), ("tiny", 5));
    for a in &run.arms {
        let student = a.name != "incumbent";
        assert_eq!(a.judged, student, "{}", a.name);
        assert_eq!(a.degradation_area.is_some(), student, "{}", a.name);
        assert!(a.total_seconds > 0.0 && a.total_cpu_seconds.is_some_and(|c| c > 0.0));
    }
    let switch = std::fs::read_to_string(dir.path().join("switch.csv")).expect("switch.csv");
    // A header, then one line per student arm and other arm: scratch, kd and the matched arm
    // against retrain (absent here: no line), crossadapt against scratch and kd.
    assert_eq!(switch.lines().count(), 1 + 3 + 2, "{switch}");
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
        offline_cpu_seconds: None,
        total_seconds: 0.0,
        total_cpu_seconds: None,
        judged: false,
        switch_day: None,
        days_to_switch: None,
        degradation_area: None,
    }
}

fn known_run(world: u64, shift_day: Option<u32>) -> SuiteRun {
    SuiteRun {
        preset: "default".into(),
        online_days: 4,
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
        preset: "tiny".into(),
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

/// An arm the gate judged: it switched after `days` online days (`None`: never in the 4),
/// with `area` of AUC lost before, and `cpu` seconds of training in all.
fn judged(name: &str, days: Option<u32>, area: f64, cpu: f64) -> ArmRun {
    ArmRun {
        judged: true,
        days_to_switch: days,
        switch_day: days.map(|d| 9 + d),
        degradation_area: Some(area),
        total_seconds: cpu,
        total_cpu_seconds: Some(cpu),
        ..arm(name, 1.0, 0.7, &[0.7; 4], 0.1)
    }
}

/// The switch table on hand-made runs: per arm the runs it switched in, the median and the
/// censored mean of its days to switch, its degradation; against retrain and (crossadapt)
/// scratch and kd, wins / ties / losses of each figure; a compute figure too short to time is
/// counted apart, not as a ratio.
#[test]
fn the_switch_table_gives_known_answers() {
    let run = |world: u64, ca: Option<u32>, ca_cpu: f64| SuiteRun {
        arms: vec![
            arm("incumbent", 0.0, 0.7, &[0.7; 4], 0.1),
            judged("scratch", None, 0.04, 10.0),
            judged("retrain", Some(2), 0.0, 40.0),
            judged("kd", None, 0.08, 12.0),
            judged("crossadapt", ca, 0.01, ca_cpu),
        ],
        ..known_run(world, None)
    };
    // World 1: crossadapt switches on its 2nd online day like retrain, at a quarter of its
    // compute; world 2: on its 3rd; world 3: never, and its compute is too short to time.
    let runs = [
        run(1, Some(2), 10.0),
        run(2, Some(3), 10.0),
        run(3, None, 0.01),
    ];
    let rows = switch_table(&runs, 200);
    let names: Vec<&str> = rows.iter().map(|r| r.arm.as_str()).collect();
    assert_eq!(names, ["scratch", "retrain", "kd", "crossadapt"]);
    let ca = rows
        .iter()
        .find(|r| r.arm == "crossadapt")
        .expect("crossadapt");
    assert_eq!((ca.runs, ca.switched, ca.median_days), (3, 2, Some(2.5)));
    // Never counts as the day after the 4 online days: (2 + 3 + 5) / 3.
    let days = ca.days.expect("days");
    assert!((days.estimate - 10.0 / 3.0).abs() < 1e-12, "{days:?}");
    assert!((ca.area.expect("area").estimate - 0.01).abs() < 1e-12);
    let vs = |other: &str| {
        ca.versus
            .iter()
            .find(|v| v.other == other)
            .unwrap_or_else(|| panic!("against {other}"))
    };
    let re = vs("retrain");
    assert_eq!(re.runs, 3);
    assert_eq!((re.days.wins, re.days.ties, re.days.losses), (0, 1, 2));
    assert_eq!((re.area.wins, re.area.ties, re.area.losses), (0, 0, 3));
    assert_eq!(
        (re.compute.wins, re.compute.ties, re.compute.losses),
        (2, 0, 0)
    );
    assert_eq!(re.too_short, 1);
    assert!((re.compute.mean.expect("ratio").estimate - 0.25).abs() < 1e-12);
    let sc = vs("scratch");
    assert_eq!((sc.days.wins, sc.days.ties, sc.days.losses), (2, 1, 0));
    assert_eq!((sc.area.wins, sc.area.ties, sc.area.losses), (3, 0, 0));
    assert_eq!(
        (sc.compute.wins, sc.compute.ties, sc.compute.losses),
        (0, 2, 0)
    );
    assert_eq!(vs("kd").days.wins, 2);
    // Only crossadapt is compared with scratch and kd; every other arm with retrain alone.
    let kd = rows.iter().find(|r| r.arm == "kd").expect("kd");
    let others: Vec<&str> = kd.versus.iter().map(|v| v.other.as_str()).collect();
    assert_eq!(others, ["retrain"]);
    let retrain = rows.iter().find(|r| r.arm == "retrain").expect("retrain");
    assert!(retrain.versus.is_empty() && retrain.median_days == Some(2.0));
}

/// A `runs.jsonl` line written before the switch figures, the CPU seconds and the presets
/// existed reads back: the default world, no judged arm, so the switch table is empty and the
/// claims read as before.
#[test]
fn a_run_on_file_from_before_the_switch_figures_reads_back() {
    let old = r#"{"world":1,"scenario":"none","rows_per_day":100,"seconds":2.0,"shift_day":null,"mean_distill_weight":0.5,"arms":[{"name":"scratch","offline_seconds":10.0,"offline_auc":0.7,"days":[{"day":10,"auc":0.7,"abs_bias":0.1}],"failed":null},{"name":"crossadapt","offline_seconds":3.0,"offline_auc":0.71,"days":[{"day":10,"auc":0.71,"abs_bias":0.1}],"failed":null}]}"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("runs.jsonl");
    std::fs::write(&path, format!("{old}\n")).expect("write");
    let runs = read_runs(&path).expect("an old run reads");
    assert_eq!(
        (runs[0].preset.as_str(), runs[0].online_days),
        ("default", 0)
    );
    assert!(runs[0]
        .arms
        .iter()
        .all(|a| !a.judged && a.total_cpu_seconds.is_none()));
    assert!(switch_table(&runs, 50).is_empty());
    // Without CPU figures the time claim reads wall seconds, as it did.
    assert_eq!(Claim::TimeToSwitch.values(&runs[0]), Some(vec![0.3]));
}

/// The matrix over presets: `--presets` multiplies the cells, each cell's config is its
/// preset's world, and the default arms are what the gate needs (incumbent, retrain where the
/// run has a history).
#[test]
fn presets_multiply_the_cells_and_the_default_arms_serve_the_gate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = tiny_args(dir.path(), "none");
    args.presets = vec!["tiny".into(), "fm4".into()];
    args.arms = vec![];
    let all = cells(&args);
    let presets: Vec<&str> = all.iter().map(|c| c.preset.as_str()).collect();
    assert_eq!(presets, ["tiny", "fm4"]);
    let cfg = cell_config(&args, &all[1]).expect("config");
    let crossadapt::data::DataConfig::Synthetic(world) = &cfg.data else {
        panic!("a synthetic world");
    };
    assert_eq!((world.preset.as_str(), world.seed), ("fm4", 3));
    let names: Vec<String> = cfg.arms.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "incumbent",
            "scratch",
            "retrain",
            "kd",
            "crossadapt",
            "crossadapt-matched"
        ]
    );
    // Without a history there is nothing to retrain on: the default arms leave it out.
    args.config.set.push("split.history=0".into());
    let cfg = cell_config(&args, &all[0]).expect("config without history");
    assert!(cfg.arms.iter().all(|a| a.to_string() != "retrain"));
    // The config's own world when no preset is named.
    args.presets.clear();
    assert_eq!(cells(&args)[0].preset, "tiny");
}
