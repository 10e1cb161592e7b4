//! A real terminal loss: the pseudo-terminal's master side is closed, as sshd closes it when an
//! SSH link drops, and no test sends a signal. With the terminal as the controlling terminal
//! the kernel sends SIGHUP (and the terminal answers `isatty()` with EIO from then on); without
//! it no signal comes at all and the process learns of the loss from the terminal alone.
//!
//! In every case the run must go on headless to its end with the uninterrupted run's metrics,
//! write its table to the session's `output.log`, leave `status.json` at `done`, exit 0, and
//! never panic; a console already showing a finished run's summary must exit at once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossadapt::engine::config::TINY_SETS;

mod pty_common;
mod session_common;

use session_common::{metrics_of, Metrics};

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");

/// Extra days over the tiny session, so the hangup lands well inside the online stage.
const LONGER: &[&str] = &["data.days=17", "split.online=12"];

fn args(headless: bool) -> Vec<String> {
    let mut a = vec!["run".to_string()];
    if headless {
        a.push("--headless".into());
    }
    for s in TINY_SETS.iter().chain(LONGER) {
        a.push("--set".into());
        a.push(s.to_string());
    }
    a
}

fn session_dir(store: &Path) -> Option<PathBuf> {
    std::fs::read_dir(store)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("session.json").exists())
}

/// The same session run headless with no terminal at all.
fn reference() -> &'static Metrics {
    static REF: OnceLock<Metrics> = OnceLock::new();
    REF.get_or_init(|| {
        let store = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .arg("--sessions-dir")
            .arg(store.path())
            .args(args(true))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let m = metrics_of(&session_dir(store.path()).unwrap());
        assert!(m.len() >= 12, "too few day metrics: {}", m.len());
        m
    })
}

struct Run {
    pty: pty_common::PtyChild,
    store: tempfile::TempDir,
}

fn start(headless: bool, controlling: bool) -> Run {
    let store = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--sessions-dir")
        .arg(store.path())
        .args(args(headless))
        .env("XDG_DATA_HOME", store.path().join("data-home"))
        .env_remove("NO_COLOR");
    let pty = pty_common::spawn_in_pty_as(&mut cmd, controlling);
    Run { pty, store }
}

fn log_text(store: &Path) -> String {
    session_dir(store)
        .and_then(|d| std::fs::read_to_string(d.join("events.jsonl")).ok())
        .unwrap_or_default()
}

fn wait_for(store: &Path, what: &str) {
    let started = Instant::now();
    while !log_text(store).contains(what) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run never logged {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?} of the hangup");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Everything the process may have written: its terminal (before the hangup), `output.log`
/// and the console's log files.
fn everything_written(run: &Run) -> String {
    let mut text = String::from_utf8_lossy(&run.pty.output.lock().unwrap()).to_string();
    if let Some(dir) = session_dir(run.store.path()) {
        text += &std::fs::read_to_string(dir.join(crossadapt::signals::OUTPUT_FILE))
            .unwrap_or_default();
    }
    let logs = run.store.path().join("data-home");
    for entry in walk(&logs) {
        text += &std::fs::read_to_string(entry).unwrap_or_default();
    }
    text
}

/// The end of what was written, for a failure message (the terminal part is escape codes).
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Waits (at most `limit`) for the process to exit 0, having panicked nowhere.
fn exits_cleanly(run: &mut Run, limit: Duration) {
    let status = wait_exit(&mut run.pty.child, limit);
    let written = everything_written(run);
    assert!(
        !written.contains("panicked at"),
        "a panic:\n{}",
        tail(&written)
    );
    assert!(status.success(), "{status:?}\n{}", tail(&written));
}

/// Closes the terminal in the middle of the online days and checks the run's end.
fn hang_up_mid_run(headless: bool, controlling: bool) {
    let expected = reference();
    let mut run = start(headless, controlling);
    wait_for(run.store.path(), "\"stage\":\"online\"");
    assert!(run.pty.child.try_wait().unwrap().is_none(), "still running");
    assert!(!log_text(run.store.path()).contains("\"finished\""));
    // The link drops: the terminal's master side is closed. No signal is sent by the test.
    run.pty.close();
    exits_cleanly(&mut run, Duration::from_secs(120));
    let dir = session_dir(run.store.path()).unwrap();
    let log = log_text(run.store.path());
    assert!(log.contains("\"finished\""), "the run did not finish");
    assert!(!log.contains("\"cmd\":\"stop\""), "the run was stopped");
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["state"], "done");
    assert_eq!(
        &metrics_of(&dir),
        expected,
        "metrics differ from the uninterrupted run's"
    );
    let output = std::fs::read_to_string(dir.join(crossadapt::signals::OUTPUT_FILE))
        .expect("output.log was created");
    assert!(
        output.contains("online AUC") && output.contains("crossadapt"),
        "output.log has no final table:\n{output}"
    );
}

#[test]
fn a_console_whose_terminal_closes_without_a_signal_finishes_headless() {
    hang_up_mid_run(false, false);
}

#[test]
fn a_console_whose_controlling_terminal_closes_finishes_headless() {
    hang_up_mid_run(false, true);
}

#[test]
fn a_headless_run_whose_terminal_closes_finishes_with_its_table_in_output_log() {
    hang_up_mid_run(true, true);
}

#[test]
fn a_console_showing_a_finished_run_exits_when_its_terminal_closes() {
    let mut run = start(false, false);
    wait_for(run.store.path(), "\"finished\"");
    // The console now shows the summary and waits for the operator.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        run.pty.child.try_wait().unwrap().is_none(),
        "the console waits"
    );
    run.pty.close();
    exits_cleanly(&mut run, Duration::from_secs(5));
}
