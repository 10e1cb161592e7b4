//! The validation protocol (`crossadapt tune`, `run --tune`, issue 17.1) on the tiny preset
//! (history 0-1, retained 2-4, online 5-9): the same budget for every arm, determinism, the
//! validation day is the last retained day (the one before it the online step's) and no online
//! day changes anything, and `run
//! --tune` runs with the choice it records (the same run as `run --config` of what `tune`
//! wrote).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crossadapt::engine::config::TINY_SETS;
use crossadapt::engine::events::{EngineEvent, EvalMetrics};
use crossadapt::engine::report::Report;
use crossadapt::engine::tune::{apply_online, tune, TuneBudget};
use crossadapt::engine::SessionConfig;
use crossadapt::protocol::tune::Tuning;

mod engine_common;
use engine_common::run_tiny;

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");

/// The protocol on the tiny session with `extra` settings, its wall times zeroed (the only
/// figures a seed does not fix).
fn tuned(extra: &[&str]) -> Tuning {
    let cfg = SessionConfig::tiny(extra).expect("tiny config");
    let mut t = tune(&cfg, TuneBudget::trials(4), &mut |_, _, _, _| {})
        .expect("tune runs")
        .tuning;
    for a in &mut t.arms {
        for trial in &mut a.trials {
            trial.seconds = 0.0;
        }
    }
    t
}

#[test]
fn tune_scores_every_arm_on_the_last_retained_day_with_the_same_budget() {
    let t = tuned(&[]);
    assert_eq!(t.validation_day, 4);
    assert_eq!(t.online_day, Some(3));
    assert_eq!(t.train_days, vec![2]);
    let names: Vec<&str> = t.arms.iter().map(|a| a.arm.as_str()).collect();
    // The default arms; crossadapt-fixed uses crossadapt's values, the incumbent is not tuned,
    // retrain is tuned as itself (on the history and the retained days before validation).
    assert_eq!(names, ["scratch", "retrain", "kd", "crossadapt"]);
    for a in &t.arms {
        assert_eq!(a.trials.len(), 4, "{}", a.arm);
        assert!(a
            .trials
            .iter()
            .all(|x| x.auc.is_some() && x.failed.is_none()));
        let best = a
            .trials
            .iter()
            .filter_map(|x| x.auc)
            .fold(f64::MIN, f64::max);
        let chosen = a.choice().expect("a choice").auc.expect("auc");
        assert!(
            chosen >= best - 1e-4,
            "{}: chose {chosen}, best {best}",
            a.arm
        );
    }
    assert_eq!(t, tuned(&[]), "the same seed gives the same protocol");
}

#[test]
fn no_online_day_reaches_the_protocol() {
    // Online days 5-9 replaced by a world with another click rate from day 5 on; the history
    // and retained days are the same stream (the isolating scenarios share their pre-shift days).
    let calm = ["data.drift=\"none\""];
    let poisoned = [
        "data.drift=\"label\"",
        "data.shock_day=5",
        "data.shock_rate_factor=3.0",
    ];
    assert_eq!(tuned(&calm), tuned(&poisoned));
    // The poison is real: a session's offline evaluation (on day 5) sees it.
    let offline = |extra: &[&str]| -> Vec<EvalMetrics> {
        run_tiny(extra)
            .iter()
            .filter_map(|r| match &r.event {
                EngineEvent::OfflineResult { metrics, .. } => Some(metrics.clone()),
                _ => None,
            })
            .collect()
    };
    assert_ne!(offline(&calm), offline(&poisoned));
}

fn tiny_args() -> Vec<&'static str> {
    TINY_SETS.iter().flat_map(|s| ["--set", *s]).collect()
}

/// `crossadapt --sessions-dir STORE ARGS`, whatever it exits with.
fn run(store: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--sessions-dir")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

fn run_ok(store: &Path, args: &[&str]) -> Output {
    let out = run(store, args);
    assert!(
        out.status.success(),
        "crossadapt {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn report(path: &Path) -> Report {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("a report")
}

#[test]
fn run_tune_records_its_choice_and_runs_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, toml) = (dir.path().join("s"), dir.path().join("tuned.toml"));
    let (tuned_report, config_report, plain_report) = (
        dir.path().join("a.json"),
        dir.path().join("b.json"),
        dir.path().join("c.json"),
    );
    let with = |extra: &[&str]| -> Vec<String> {
        extra
            .iter()
            .chain(&tiny_args())
            .map(|s| s.to_string())
            .collect()
    };
    let strs = |v: &[String]| -> Vec<String> { v.to_vec() };
    let call = |v: Vec<String>| run_ok(&store, &v.iter().map(String::as_str).collect::<Vec<_>>());
    let out = call(with(&[
        "tune",
        "--trials",
        "4",
        "--out",
        toml.to_str().unwrap(),
    ]));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("chosen kd:"), "{table}");
    // One progress line per trial.
    let progress = String::from_utf8_lossy(&out.stderr);
    assert_eq!(progress.matches("tune [kd] trial").count(), 4, "{progress}");
    let a_path = tuned_report.to_str().unwrap();
    let out = call(with(&[
        "run",
        "--headless",
        "--tune",
        "--tune-trials",
        "4",
        "--report",
        a_path,
    ]));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("tuned on retained day 4"), "{printed}");
    let b_path = config_report.to_str().unwrap();
    call(strs(&[
        "run".into(),
        "--headless".into(),
        "--config".into(),
        toml.to_str().unwrap().into(),
        "--report".into(),
        b_path.into(),
    ]));
    let c_path = plain_report.to_str().unwrap();
    call(with(&["run", "--headless", "--report", c_path]));

    let (a, b, c) = (
        report(&tuned_report),
        report(&config_report),
        report(&plain_report),
    );
    let tuning = a.tuning.clone().expect("run --tune records its choice");
    assert_eq!(a.config["per_arm"], b.config["per_arm"]);
    let online = |r: &Report| -> Vec<_> {
        r.arms
            .iter()
            .map(|x| {
                let days: Vec<EvalMetrics> = x.online.iter().map(|d| d.metrics.clone()).collect();
                (x.name.clone(), x.offline.clone(), days)
            })
            .collect()
    };
    assert_eq!(
        online(&a),
        online(&b),
        "run --tune is run --config of what tune wrote"
    );
    // The recorded choice is what the session ran: per arm, the chosen values in its config.
    for arm in &tuning.arms {
        let chosen = &arm.choice().expect("choice").values;
        for (k, v) in chosen {
            let got = a.config["per_arm"][&arm.arm][k].as_f64().expect("a number");
            assert_eq!(got, *v, "{} {k}", arm.arm);
        }
    }
    // Where a choice is not the session's own values, the arm's run differs from the default's.
    let moved: Vec<&str> = tuning
        .arms
        .iter()
        .filter(|x| x.chosen != 0)
        .map(|x| x.arm.as_str())
        .collect();
    assert!(
        !moved.is_empty(),
        "every arm kept its defaults: nothing to check"
    );
    for name in moved {
        let of = |r: &Report| {
            r.arms
                .iter()
                .find(|x| x.name == name)
                .and_then(|x| x.offline.clone())
        };
        assert_ne!(of(&a), of(&c), "{name} ran with its defaults");
    }
}

/// The online stage replays a session on the retained days: each trial scores what a session
/// split 2 / 1 / 2 (history days 0-1, retained day 2, online days 3-4) with the first stage's
/// choice and the trial's online values scores on days 3-4, its mean test AUC and LogLoss.
/// So the streamed days are as unseen as a session's online days (the vocabulary is fitted
/// without them), and no later day is read.
#[test]
fn the_online_stage_scores_what_a_session_on_the_retained_days_scores() {
    let cfg = SessionConfig::tiny(&[]).expect("tiny config");
    let budget = TuneBudget {
        trials: 3,
        online_days: 2,
    };
    let outcome = tune(&cfg, budget, &mut |_, _, _, _| {}).expect("tune runs");
    let online = outcome.tuning.online.clone().expect("the online stage ran");
    assert_eq!(
        (online.train_days.clone(), online.days.clone()),
        (vec![2], vec![3, 4])
    );
    let trials = &online.tuning.trials;
    assert_eq!(trials.len(), 3, "the same budget as every arm");
    assert_eq!(
        trials[0].values["teacher_interval"], 3.0,
        "the session's own first"
    );
    assert_eq!(trials[0].values["reference_days"], 6.0);
    for (i, trial) in trials.iter().enumerate() {
        let mut session = SessionConfig::tiny(&[
            "split.retained=1",
            "split.online=2",
            "arms=[\"crossadapt\"]",
        ])
        .expect("config");
        session.per_arm = outcome.per_arm.clone();
        apply_online(&mut session, &trial.values);
        let days = engine_common::day_metrics(&engine_common::run_config(session));
        let day = |d: u32| days[&("crossadapt".to_string(), d)].clone();
        let (three, four) = (day(3), day(4));
        let auc = (three.auc.expect("auc") + four.auc.expect("auc")) / 2.0;
        let logloss = (three.logloss + four.logloss) / 2.0;
        assert!(
            (trial.auc.expect("scored") - auc).abs() < 1e-12,
            "trial {i}: {:?} against the session's {auc}",
            trial.auc
        );
        assert!((trial.logloss - logloss).abs() < 1e-12, "trial {i}");
    }
    // The choice is what a run with the outcome gets.
    let chosen = online.tuning.choice().expect("a choice").values.clone();
    let applied = outcome.apply(cfg.clone());
    assert_eq!(
        f64::from(applied.online.teacher_interval),
        chosen["teacher_interval"]
    );
    assert_eq!(applied.online.replay_ratio, chosen["replay_ratio"]);
    assert_eq!(applied.online.distill_min, chosen["distill_min"]);
    assert_eq!(applied.online.distill_max, chosen["distill_max"]);
    assert_eq!(
        applied.adaptation.reference_days as f64,
        chosen["reference_days"]
    );
    assert_eq!(applied.per_arm, outcome.per_arm);
}

/// `tune --online-days` writes the online choice into the config it writes; a length the
/// split cannot hold fails before any trial, and writes nothing.
#[test]
fn tune_online_days_writes_the_choice_and_refuses_a_stage_too_long() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, toml) = (dir.path().join("s"), dir.path().join("tuned.toml"));
    let mut args = vec!["tune", "--trials", "2", "--online-days", "2", "--out"];
    args.push(toml.to_str().unwrap());
    args.extend(tiny_args());
    let out = run_ok(&store, &args);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("then days 3-4 streamed test-then-train"),
        "{table}"
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        progress.matches("tune [online] trial").count(),
        2,
        "{progress}"
    );
    let written = SessionConfig::load(Some(&toml), &[]).expect("the written config loads");
    let line = table
        .lines()
        .find(|l| l.starts_with("chosen online:"))
        .expect("the online choice");
    assert!(
        line.contains(&format!(
            "teacher_interval={} ",
            written.online.teacher_interval
        )) && line.contains(&format!(
            "reference_days={} ",
            written.adaptation.reference_days
        )),
        "{line}"
    );

    let bad = dir.path().join("bad.toml");
    let mut args = vec!["tune", "--online-days", "3", "--out"];
    args.push(bad.to_str().unwrap());
    args.extend(tiny_args());
    let out = run(&store, &args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs 1 to 2 with this split"), "{err}");
    assert!(
        !err.contains("trial 1/"),
        "it failed before any trial: {err}"
    );
    assert!(!bad.exists());
}
