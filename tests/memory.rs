//! Memory you can predict: the expected heap peak printed before a run (`run --dry-run` and a
//! headless run's first line), a run refused above `--max-memory` before any session exists,
//! the estimate against the heap the stages really reached, and the Criteo-layout writer that
//! makes a wide log to measure on.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crossadapt::engine::config::TINY_SETS;
use crossadapt::engine::events::EngineEvent;
use crossadapt::session::read_log;

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");

fn crossadapt(store: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--sessions-dir")
        .arg(store)
        .args(args)
        .env("CROSSADAPT_CACHE_DIR", store.join("cache"))
        .stdin(Stdio::null());
    cmd.output().expect("the binary runs")
}

fn tiny(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args: Vec<&str> = TINY_SETS.iter().flat_map(|s| ["--set", *s]).collect();
    args.extend(extra);
    args
}

fn sessions(store: &Path) -> usize {
    std::fs::read_dir(store).map_or(0, |d| {
        d.filter_map(|e| e.ok())
            .filter(|e| e.path().join("session.json").exists())
            .count()
    })
}

/// `memory: expected heap peak 12.3 MB (...)` -> bytes.
fn expected_bytes(text: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with("memory: expected heap peak "))
        .unwrap_or_else(|| panic!("no estimate in:\n{text}"));
    let mb: f64 = line["memory: expected heap peak ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (mb * 1e6) as u64
}

#[test]
fn a_dry_run_prints_the_plan_and_the_estimate_and_creates_nothing() {
    let store = tempfile::tempdir().unwrap();
    let mut args = vec!["run", "--dry-run"];
    args.extend(tiny(&[]));
    let out = crossadapt(store.path(), &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("days: history "), "{stdout}");
    assert!(expected_bytes(&stdout) > 0);
    for part in [
        "models",
        "training batch (",
        "prediction chunk",
        "day in flight",
    ] {
        assert!(stdout.contains(part), "no `{part}` in {stdout}");
    }
    assert_eq!(sessions(store.path()), 0, "a dry run creates no session");
}

#[test]
fn a_run_above_the_limit_is_refused_with_what_would_fit_and_leaves_nothing() {
    let store = tempfile::tempdir().unwrap();
    let mut args = vec!["run", "--headless", "--max-memory", "1"];
    args.extend(tiny(&[]));
    let out = crossadapt(store.path(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("above max_memory_mb = 1"), "{stderr}");
    assert!(stderr.contains("fewer arms"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        sessions(store.path()),
        0,
        "refused before any session exists"
    );
    // The same limit in the config, as `--set`.
    let mut args = vec!["run", "--dry-run", "--set", "max_memory_mb=1"];
    args.extend(tiny(&[]));
    let out = crossadapt(store.path(), &args);
    assert!(!out.status.success());
}

#[test]
fn the_estimate_covers_what_the_stages_reached() {
    // A wide student on the tiny stream, so activations are a real share of the heap.
    let store = tempfile::tempdir().unwrap();
    let events = store.path().join("events.jsonl");
    let events_arg = events.to_str().unwrap().to_string();
    let extra = [
        "--set",
        "student.model=\"fibinet:emb=16,hidden=64x32,ratio=3\"",
        "--set",
        "arms=[\"incumbent\",\"crossadapt\",\"scratch\"]",
    ];
    let mut args: Vec<&str> = vec!["run", "--headless", "--events", &events_arg];
    args.extend(tiny(&extra));
    let out = crossadapt(store.path(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let expected = expected_bytes(&stderr);
    let peaks: Vec<u64> = read_log(&events)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            EngineEvent::StageFinished { heap_peak, .. } => heap_peak,
            _ => None,
        })
        .collect();
    assert!(
        peaks.len() >= 5,
        "every stage reports its heap peak: {peaks:?}"
    );
    let reached = *peaks.iter().max().unwrap();
    // The estimate adds parts that are never all live at once (a checkpoint's copy with a
    // training batch), so it may be above the peak; it must not be far below (other threads'
    // small allocations are counted in the peak, not estimated), nor far above.
    assert!(
        expected * 10 >= reached * 9,
        "expected {expected} bytes, a stage reached {reached}"
    );
    assert!(
        expected <= 3 * reached,
        "expected {expected} bytes, far above the {reached} the stages reached"
    );
}

#[test]
fn data_synth_writes_the_criteo_layout_that_the_criteo_source_reads() {
    let store = tempfile::tempdir().unwrap();
    let file = store.path().join("wide.txt");
    let file_arg = file.to_str().unwrap();
    let out = crossadapt(
        store.path(),
        &[
            "data",
            "synth",
            "--preset",
            "wide",
            "--layout",
            "criteo",
            "--days",
            "3",
            "--rows-per-day",
            "300",
            "--out",
            file_arg,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 900);
    for line in text.lines().take(50) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 40, "label, 13 numeric, 26 categorical: {line}");
        assert!(cols[0] == "0" || cols[0] == "1");
        assert!(
            cols[1..14].iter().all(|c| c.parse::<u64>().is_ok()),
            "{line}"
        );
        assert!(cols[14..].iter().all(|c| c.len() == 8), "{line}");
    }
    // Read back as a Criteo log of 3 days.
    let path_set = format!("data.path=\"{file_arg}\"");
    let out = crossadapt(
        store.path(),
        &[
            "run",
            "--dry-run",
            "--set",
            "data.source=\"criteo\"",
            "--set",
            &path_set,
            "--set",
            "data.days=3",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("days: history 0 · retained 1 · online 2"),
        "{stdout}"
    );
    // Another preset has another layout: refused, naming the fix, nothing written.
    let other = store.path().join("narrow.txt");
    let out = crossadapt(
        store.path(),
        &[
            "data",
            "synth",
            "--layout",
            "criteo",
            "--days",
            "3",
            "--out",
            other.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--preset wide"));
    assert!(!other.exists());
}
