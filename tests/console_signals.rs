//! The console in a pseudo-terminal, sent SIGHUP (an SSH drop) and SIGTERM: on SIGHUP the run
//! goes on headless to its end; on SIGTERM it stops resumable and the terminal is restored
//! (the console leaves the alternate screen).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossadapt::engine::config::TINY_SETS;

mod pty_common;

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");
/// What crossterm writes to leave the alternate screen.
const LEAVE_ALTERNATE_SCREEN: &[u8] = b"\x1b[?1049l";

struct Console {
    child: Child,
    master: Option<OwnedFd>,
    output: Arc<Mutex<Vec<u8>>>,
    store: tempfile::TempDir,
}

/// `crossadapt run` on the tiny session with a pseudo-terminal as its standard streams.
fn start_console() -> Console {
    let store = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--sessions-dir").arg(store.path()).arg("run");
    for s in TINY_SETS {
        cmd.args(["--set", s]);
    }
    cmd.env("XDG_DATA_HOME", store.path().join("data-home"))
        .env_remove("NO_COLOR");
    let pty = pty_common::spawn_in_pty(&mut cmd);
    Console {
        child: pty.child,
        master: Some(pty.master),
        output: pty.output,
        store,
    }
}

fn session_dir(store: &Path) -> Option<PathBuf> {
    std::fs::read_dir(store)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("session.json").exists())
}

fn log_text(store: &Path) -> String {
    session_dir(store)
        .and_then(|d| std::fs::read_to_string(d.join("events.jsonl")).ok())
        .unwrap_or_default()
}

/// Waits until the run is in its online days (the console is drawing a live run).
fn wait_online(c: &Console) {
    let started = Instant::now();
    while !log_text(c.store.path()).contains("\"stage\":\"online\"") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never reached its online days"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the process did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_state(store: &Path) -> String {
    let dir = session_dir(store).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap();
    v["state"].as_str().unwrap_or_default().to_string()
}

#[test]
fn sighup_to_the_console_leaves_the_run_going_headless_to_its_end() {
    let mut c = start_console();
    wait_online(&c);
    assert!(c.child.try_wait().unwrap().is_none(), "still running");
    assert!(!log_text(c.store.path()).contains("\"finished\""));
    // The SSH drop: the terminal goes away and the process gets SIGHUP.
    // SAFETY: kill(2) on our own child, not yet waited for.
    unsafe {
        libc::kill(c.child.id() as i32, libc::SIGHUP);
    }
    drop(c.master.take());
    let status = wait_exit(&mut c.child);
    assert!(status.success(), "{status:?}");
    let log = log_text(c.store.path());
    assert!(log.contains("\"finished\""), "the run did not finish");
    assert!(!log.contains("\"cmd\":\"stop\""), "the run was stopped");
    assert_eq!(status_state(c.store.path()), "done");
    assert!(session_dir(c.store.path())
        .unwrap()
        .join(crossadapt::signals::OUTPUT_FILE)
        .exists());
}

#[test]
fn sigterm_to_the_console_stops_resumably_and_restores_the_terminal() {
    let mut c = start_console();
    wait_online(&c);
    assert!(c.child.try_wait().unwrap().is_none(), "still running");
    let before = c.output.lock().unwrap().len();
    // SAFETY: kill(2) on our own child, not yet waited for.
    unsafe {
        libc::kill(c.child.id() as i32, libc::SIGTERM);
    }
    let status = wait_exit(&mut c.child);
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(100));
    let out = c.output.lock().unwrap().clone();
    let after = &out[before..];
    assert!(
        after
            .windows(LEAVE_ALTERNATE_SCREEN.len())
            .any(|w| w == LEAVE_ALTERNATE_SCREEN),
        "the terminal was not restored"
    );
    let log = log_text(c.store.path());
    if !log.contains("\"finished\"") {
        assert!(log.contains("\"cmd\":\"stop\""), "no stop recorded");
        assert_eq!(status_state(c.store.path()), "interrupted");
    }
}
