//! The console in a pseudo-terminal, sent SIGHUP (an SSH drop) and SIGTERM: on SIGHUP the run
//! goes on headless to its end; on SIGTERM it stops resumable and the terminal is restored
//! (the console leaves the alternate screen).

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossadapt::engine::config::TINY_SETS;

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
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new descriptors into the two integers; the size is read only.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both descriptors were just opened by openpty and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut cmd = Command::new(BIN);
    cmd.arg("--sessions-dir").arg(store.path()).arg("run");
    for s in TINY_SETS {
        cmd.args(["--set", s]);
    }
    cmd.env("TERM", "xterm-256color")
        .env("XDG_DATA_HOME", store.path().join("data-home"))
        .env_remove("NO_COLOR")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: setsid only makes the child a session leader, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    // Drain the terminal, as a terminal would, so the console never blocks on a full pty.
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let sink = output.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    Console {
        child,
        master: Some(master),
        output,
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
