//! The binary, end to end: a headless run with its report, a fork, and bad input that fails
//! with one clear sentence. Kills at random moments and their resumes: `crash_resume.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crossadapt::engine::config::TINY_SETS;
use crossadapt::engine::events::{EngineEvent, EvalMetrics};
use crossadapt::session::read_log;

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");

/// `--set K=V` for every override of the tiny session.
fn tiny_args() -> Vec<&'static str> {
    TINY_SETS.iter().flat_map(|s| ["--set", *s]).collect()
}

fn crossadapt(store: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--sessions-dir").arg(store).args(args);
    cmd.stdin(Stdio::null());
    cmd
}

fn run_ok(store: &Path, args: &[&str]) -> Output {
    let out = crossadapt(store, args).output().expect("binary runs");
    assert!(
        out.status.success(),
        "crossadapt {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the tiny session headless in `store` with `extra` arguments; its folder.
fn run_tiny_headless(store: &Path, extra: &[&str]) -> std::path::PathBuf {
    let mut args = vec!["run", "--headless"];
    args.extend(tiny_args());
    args.extend(extra);
    run_ok(store, &args);
    session_dirs(store).remove(0)
}

fn session_dirs(store: &Path) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(store)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("session.json").exists())
        .collect();
    dirs.sort();
    dirs
}

fn metrics_of(dir: &Path) -> Vec<((String, u32), EvalMetrics)> {
    read_log(&dir.join("events.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            EngineEvent::DayMetrics {
                arm, day, metrics, ..
            } => Some(((arm, day), metrics)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_headless_run_prints_days_and_writes_its_report() {
    let store = tempfile::tempdir().unwrap();
    let report = store.path().join("report.json");
    let mut args = vec!["run", "--headless", "--report", report.to_str().unwrap()];
    args.extend(tiny_args());
    let out = run_ok(store.path(), &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("crossadapt offline time / scratch's"),
        "{stdout}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(doc["schema_version"], 1);
    // incumbent, scratch, retrain, kd, crossadapt, crossadapt-fixed
    assert_eq!(doc["arms"].as_array().unwrap().len(), 6);
    // The time ratio, or (tiny offline stages take hundredths of a CPU second) a report and a
    // summary that say it was too short to time.
    let ratio = doc["headline"]["time_fraction_vs_scratch"].as_f64();
    let ca = doc["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "crossadapt")
        .unwrap();
    let short = ca["too_short_to_time"]
        .as_array()
        .is_some_and(|v| v.iter().any(|n| n == "time_vs_scratch"));
    assert!(ratio.is_some() != short, "{ca}");
    if short {
        assert!(
            stdout.contains("crossadapt offline time / scratch's: too short to time")
                && stdout.contains("against scratch's: too short to time"),
            "{stdout}"
        );
    }
    assert_eq!(doc["projection"].as_array().unwrap().len(), 8);
    assert_eq!(doc["config"]["split"]["online"], 5);
}

#[test]
fn a_fork_starts_from_the_parents_day_with_changed_parameters() {
    let store = tempfile::tempdir().unwrap();
    let parent = run_tiny_headless(store.path(), &[]);
    let id = parent.file_name().unwrap().to_str().unwrap().to_string();
    run_ok(
        store.path(),
        &[
            "fork",
            &id,
            "--from-day",
            "7",
            "--headless",
            "--set",
            "online.teacher_interval=2",
        ],
    );
    let child = session_dirs(store.path())
        .into_iter()
        .find(|d| *d != parent)
        .unwrap();
    let parent_m: BTreeMap<_, _> = metrics_of(&parent).into_iter().collect();
    let child_m: BTreeMap<_, _> = metrics_of(&child).into_iter().collect();
    assert_eq!(child_m.len(), 30);
    // Days before the fork are the parent's; crossadapt's later days differ (new interval),
    // while the arms the interval does not touch stay equal.
    for day in [5, 6] {
        assert_eq!(
            child_m[&("crossadapt".into(), day)],
            parent_m[&("crossadapt".into(), day)]
        );
    }
    assert_ne!(
        child_m[&("crossadapt".into(), 8)],
        parent_m[&("crossadapt".into(), 8)]
    );
    assert_eq!(
        child_m[&("scratch".into(), 9)],
        parent_m[&("scratch".into(), 9)]
    );
    let meta = std::fs::read_to_string(child.join("session.json")).unwrap();
    assert!(meta.contains(&id), "the fork links its parent");
    let out = crossadapt(
        store.path(),
        &["fork", &id, "--from-day", "7", "--set", "seed=3"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot change seed"));
}

/// `keep_day_checkpoints = 2`: the run keeps the two newest day checkpoints (plus teacher, done
/// and the first online day's), and a fork from a pruned day fails naming the days that are
/// left.
#[test]
fn old_day_checkpoints_are_pruned_when_asked() {
    let store = tempfile::tempdir().unwrap();
    let dir = run_tiny_headless(store.path(), &["--set", "keep_day_checkpoints=2"]);
    let mut labels: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        ["day-0005", "day-0008", "day-0009", "done", "teacher"]
    );
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();
    let out = crossadapt(
        store.path(),
        &["fork", &id, "--from-day", "6", "--headless"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("day 6") && stderr.contains("5, 8, 9"),
        "{stderr}"
    );
    fails_with(
        store.path(),
        &["--set", "keep_day_checkpoints=1"],
        "keep_day_checkpoints",
    );
}

/// By default a session keeps the first online day's checkpoint (the offline stage's result)
/// and the three newest; every checkpoint after `teacher` links the frozen teacher's file
/// instead of writing it again, and the bytes each one reports are the files it wrote.
#[test]
fn checkpoints_keep_a_bounded_set_of_days_and_store_the_teacher_once() {
    let store = tempfile::tempdir().unwrap();
    let dir = run_tiny_headless(store.path(), &[]);
    let ckpts = dir.join("checkpoints");
    let mut labels: Vec<String> = std::fs::read_dir(&ckpts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        ["day-0005", "day-0007", "day-0008", "day-0009", "done", "teacher"]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let inode = |l: &str| {
            std::fs::metadata(ckpts.join(l).join("teacher.safetensors"))
                .unwrap()
                .ino()
        };
        for l in &labels {
            assert_eq!(inode(l), inode("teacher"), "{l} holds its own teacher copy");
        }
    }
    let size = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().len();
    let mut checked = 0;
    for r in read_log(&dir.join("events.jsonl")).unwrap() {
        let EngineEvent::Checkpointed { path, bytes, .. } = r.event else {
            continue;
        };
        let ckpt = dir.join(&path);
        if !ckpt.is_dir() {
            continue; // pruned since
        }
        let mut expect = 0;
        for e in std::fs::read_dir(&ckpt).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let shared = name == "teacher.safetensors" && !path.ends_with("teacher");
            if name != "manifest.json" && !shared {
                expect += size(ckpt.join(&name));
            }
        }
        assert_eq!(bytes, Some(expect), "{path}");
        checked += 1;
    }
    assert_eq!(checked, 6);
}

/// `bench scale` runs a real session and reports every stage, the peak memory and the disk.
#[test]
fn bench_scale_measures_a_whole_session() {
    let store = tempfile::tempdir().unwrap();
    let keep = store.path().join("kept");
    let out = run_ok(
        store.path(),
        &[
            "bench",
            "scale",
            "--rows-per-day",
            "600",
            "--days",
            "6",
            "--arms",
            "crossadapt",
            "--dir",
            keep.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "600 rows/day x 6 days, arms crossadapt",
        "| teacher |",
        "| 1C joint (crossadapt) |",
        "| online (all arms) | ",
        "| peak RSS (VmHWM) |",
        "| checkpoints written | ",
        "| session disk at the end |",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from:\n{stdout}");
    }
    // The session it measured is a real one.
    assert_eq!(session_dirs(&keep).len(), 1);
}

fn fails_with(store: &Path, extra: &[&str], needle: &str) {
    let mut args = vec!["run", "--headless"];
    args.extend(tiny_args());
    args.extend(extra);
    let out = crossadapt(store, &args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{extra:?} should fail");
    assert!(stderr.contains(needle), "{extra:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_fails_with_one_clear_error() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path();
    fails_with(s, &["--set", "student.model=transformerx"], "transformerx");
    fails_with(s, &["--set", "split.online=50"], "day");
    fails_with(s, &["--set", "method.sampling_ratio=1.5"], "sampling_ratio");
    fails_with(s, &["--set", "method.sampling_ratio=0"], "sampling_ratio");
    fails_with(
        s,
        &["--set", "arms=[\"crossadapt\", \"magic\"]"],
        "unknown arm `magic`",
    );
    let garbage = s.join("teacher.safetensors");
    std::fs::write(&garbage, b"not a checkpoint").unwrap();
    let set = format!("teacher.checkpoint={}", garbage.display());
    fails_with(s, &["--set", &set], "teacher.safetensors");
    let missing = s.join("nope.toml");
    let out = crossadapt(
        s,
        &["run", "--headless", "--config", missing.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
}

/// `retrain` needs the history: asked for by name without one it is refused before any
/// session exists; the default arms just leave it out.
#[test]
fn retrain_is_refused_without_history_and_left_out_of_the_defaults() {
    let store = tempfile::tempdir().unwrap();
    let s = store.path();
    let sentence = "arm `retrain` retrains the student on the history, and this run has none";
    let no_history = ["--set", "split.history=0", "--set", "split.retained=3"];
    let retrain = ["--set", "arms=[\"incumbent\", \"retrain\"]"];
    fails_with(s, &[&no_history[..], &retrain[..]].concat(), sentence);
    fails_with(
        s,
        &[&no_history[..], &retrain[..]].concat(),
        "split.history = 0",
    );
    assert!(session_dirs(s).is_empty(), "a refused run left a session");
    // With the history, the default arms include it and it trains on more rows than scratch.
    let dir = run_tiny_headless(s, &[]);
    let rows = |arm: &str| -> u64 {
        read_log(&dir.join("events.jsonl"))
            .unwrap()
            .iter()
            .find_map(|r| match &r.event {
                EngineEvent::OfflineResult {
                    arm: a, samples, ..
                } if a == arm => Some(*samples),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no offline result of {arm}"))
    };
    // Tiny: 2 history + 3 retained days against scratch's 3 retained, same epochs.
    assert_eq!(rows("retrain") * 3, rows("scratch") * 5);
    // Without the history, the defaults run without it.
    let other = tempfile::tempdir().unwrap();
    let dir = run_tiny_headless(other.path(), &no_history);
    let names: Vec<String> = read_log(&dir.join("events.jsonl"))
        .unwrap()
        .iter()
        .filter_map(|r| match &r.event {
            EngineEvent::OfflineResult { arm, .. } => Some(arm.clone()),
            _ => None,
        })
        .collect();
    assert!(
        !names.is_empty() && !names.iter().any(|n| n == "retrain"),
        "{names:?}"
    );
}

/// The demo sessions shipped in `sessions/` replay out of the box, headless and as a capture,
/// and their logs end with the summary of a finished run.
#[test]
fn the_shipped_demo_sessions_replay() {
    let store = tempfile::tempdir().unwrap();
    let demos = Path::new(env!("CARGO_MANIFEST_DIR")).join("sessions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&demos).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        seen += 1;
        let path = dir.to_str().unwrap();
        let out = run_ok(
            store.path(),
            &["replay", path, "--headless", "--speed", "1000000"],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("summary") && text.contains("crossadapt"),
            "{text}"
        );
        let records = read_log(&dir.join("events.jsonl")).unwrap();
        assert!(matches!(
            records.last().map(|r| &r.event),
            Some(EngineEvent::Finished { .. })
        ));
        let out = run_ok(store.path(), &["replay", path, "--capture", "80x24"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("DONE"));
    }
    assert!(seen >= 1, "no demo session in {}", demos.display());
}
