//! SSH-proof operations (docs/operations.md): a detached engine commanded through its session
//! folder with `ctl`, a console attached to it in a pseudo-terminal that loses its terminal
//! (SIGHUP) while the engine goes on, one controller at a time, and `list` telling live from
//! dead sessions.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use crossadapt::engine::config::TINY_SETS;

mod pty_common;

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");

fn crossadapt(store: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("CROSSADAPT_SESSIONS_DIR", store)
        .env("XDG_DATA_HOME", store.join("data-home"));
    cmd
}

fn run(store: &Path, args: &[&str]) -> Output {
    crossadapt(store).args(args).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `run --detach` on the tiny session; returns its id once the command returned.
fn detach(store: &Path) -> String {
    let mut cmd = crossadapt(store);
    cmd.args(["run", "--detach"]);
    for s in TINY_SETS {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let id = stdout.trim().to_string();
    assert!(
        store.join(&id).join("session.json").exists(),
        "{stdout} {stderr}"
    );
    id
}

fn ctl(store: &Path, id: &str, args: &[&str]) -> Output {
    let mut all = vec!["ctl", id];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--timeout", "60"]);
    run(store, &all)
}

fn log(store: &Path, id: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(store.join(id).join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn state(store: &Path, id: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(store.join(id).join("status.json")).unwrap())
            .unwrap();
    v["state"].as_str().unwrap_or_default().to_string()
}

fn engine_pid(store: &Path, id: &str) -> i32 {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(store.join(id).join("engine.json")).unwrap())
            .unwrap();
    v["pid"].as_i64().unwrap() as i32
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The type of a log record's event (`params_changed`, ...).
fn kind(r: &serde_json::Value) -> &str {
    r["event"]["type"].as_str().unwrap_or_default()
}

#[test]
fn a_detached_engine_takes_commands_from_ctl_and_logs_every_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path();
    let id = detach(store);
    // Paused from the start, so the run cannot end before the change arrives.
    let out = ctl(store, &id, &["pause"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.starts_with("applied pause at "),
        "{:?}",
        text(&out)
    );
    let pid = engine_pid(store, &id);
    assert!(alive(pid));
    // `list` shows it live, with its host and pid.
    let (listed, _) = text(&run(store, &["list"]));
    let host = crossadapt::session::live::hostname();
    assert!(
        listed.contains(&host) && listed.contains(&pid.to_string()),
        "{listed}"
    );
    // A value out of range: refused by the engine, with the reason, and a failing exit.
    let out = ctl(store, &id, &["set", "replay_ratio=1.5"]);
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("replay_ratio must be in [0, 1], got 1.5"),
        "{:?}",
        text(&out)
    );
    // An unknown key never reaches the engine.
    let out = ctl(store, &id, &["set", "batch_size=3"]);
    assert!(!out.status.success() && text(&out).1.contains("cannot be changed"));
    let out = ctl(store, &id, &["set", "replay_ratio=0.35"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("\"replay_ratio\":0.35"),
        "{:?}",
        text(&out)
    );
    let out = ctl(store, &id, &["resume"]);
    assert!(out.status.success(), "{:?}", text(&out));
    wait_for("the run to finish", 120, || state(store, &id) == "done");
    let records = log(store, &id);
    let refused = records.iter().position(|r| kind(r) == "params_refused");
    let changed = records
        .iter()
        .position(|r| kind(r) == "params_changed" && r["event"]["params"]["replay_ratio"] == 0.35)
        .expect("the change is logged");
    assert!(refused.is_some_and(|r| r < changed));
    // Each answer right after the operator record of its command.
    assert_eq!(kind(&records[changed - 1]), "operator");
    // And the engine used it: every online day after the change replays from a 35% ratio
    // (scaled down by the day's drift weight towards the floor).
    let floor = crossadapt::engine::SessionConfig::tiny(&[])
        .unwrap()
        .adaptation
        .replay_floor;
    let drifts: Vec<&serde_json::Value> = records[changed..]
        .iter()
        .filter(|r| kind(r) == "drift")
        .map(|r| &r["event"])
        .collect();
    assert!(!drifts.is_empty());
    for d in drifts {
        let w = d["weight"].as_f64().unwrap();
        let expected = crossadapt::method::adaptation::replay_ratio(w, 0.35, floor);
        assert!(
            (d["replay_ratio"].as_f64().unwrap() - expected).abs() < 1e-9,
            "{d}"
        );
    }
    // A finished session has no engine to command.
    let out = ctl(store, &id, &["pause"]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains(&format!("session {id} has finished")),
        "{:?}",
        text(&out)
    );
    wait_for("the engine process to exit", 30, || !alive(pid));
}

#[test]
fn ctl_against_a_missing_or_interrupted_session_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path();
    let out = ctl(store, "20990101-000000-0000", &["stop"]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("no session 20990101-000000-0000 in"),
        "{:?}",
        text(&out)
    );
    // A session whose status says running but whose process is gone.
    let id = stale_session(store, "other-host", 3600);
    let out = ctl(store, &id, &["pause"]);
    assert!(!out.status.success());
    let err = text(&out).1;
    assert!(
        err.contains(&format!("session {id} is not running (interrupted")),
        "{err}"
    );
    assert!(
        !store.join(&id).join("commands.jsonl").exists(),
        "a command was written"
    );
}

/// A session whose `status.json` says running, with an `engine.json` from `host` whose last
/// heartbeat is `age` seconds old and no process holding it.
fn stale_session(store: &Path, host: &str, age: i64) -> String {
    let s = crossadapt::session::Store::open(Some(store.to_path_buf())).unwrap();
    let mut session = s.create("elsewhere", "seed = 7\n", None).unwrap();
    let status = crossadapt::session::Status::new(crossadapt::session::RunState::Running);
    session.set_status(&status).unwrap();
    let beat = chrono::Utc::now() - chrono::Duration::seconds(age);
    let engine = crossadapt::session::live::Holder {
        pid: 1,
        host: host.into(),
        user: "someone".into(),
        since: beat,
        heartbeat: beat,
        samples_per_sec: Some(1234.0),
    };
    crossadapt::session::live::write_engine(session.dir(), &engine).unwrap();
    session.id().to_string()
}

#[test]
fn list_tells_a_live_remote_engine_from_a_stale_one() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path();
    let stale = stale_session(store, "node-17", 3600);
    let fresh = stale_session(store, "node-42", 0);
    let out = run(store, &["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let of = |id: &str| {
        v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(of(&stale)["state"], "interrupted");
    assert_eq!(of(&fresh)["state"], "running");
    assert_eq!(of(&fresh)["engine"]["host"], "node-42");
    let (table, _) = text(&run(store, &["list"]));
    let row = table
        .lines()
        .find(|l| l.starts_with(&fresh) && l.contains("node-42"));
    assert!(row.is_some_and(|r| r.contains("1234")), "{table}");
}

struct Pty {
    child: Child,
    master: Option<OwnedFd>,
}

/// `crossadapt attach ID` with a pseudo-terminal as its standard streams.
fn attach_in_pty(store: &Path, id: &str) -> Pty {
    let mut cmd = crossadapt(store);
    cmd.args(["attach", id]);
    let pty = pty_common::spawn_in_pty(&mut cmd);
    Pty {
        child: pty.child,
        master: Some(pty.master),
    }
}

fn controller_pid(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("controller.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["pid"].as_u64().map(|p| p as u32)
}

#[test]
fn an_attached_console_controls_alone_and_its_sighup_leaves_the_engine_running() {
    let tmp = tempfile::tempdir().unwrap();
    let store: PathBuf = tmp.path().to_path_buf();
    let id = detach(&store);
    assert!(ctl(&store, &id, &["pause"]).status.success());
    wait_for("the pause", 60, || state(&store, &id) == "paused");
    let pid = engine_pid(&store, &id);
    let dir = store.join(&id);
    let mut console = attach_in_pty(&store, &id);
    let console_pid = console.child.id();
    wait_for("the console to take control", 30, || {
        controller_pid(&dir) == Some(console_pid)
    });
    // A second controller is refused, with the holder named.
    let out = ctl(&store, &id, &["set", "replay_ratio=0.2"]);
    assert!(!out.status.success());
    let err = text(&out).1;
    assert!(
        err.contains("is controlled by") && err.contains(&format!("(pid {console_pid})")),
        "{err}"
    );
    let (listed, _) = text(&run(&store, &["list"]));
    assert!(listed.contains(&format!("(pid {console_pid})")), "{listed}");
    // The SSH drop: the console's terminal goes away.
    // SAFETY: kill(2) on our own child, not yet waited for.
    unsafe {
        libc::kill(console_pid as i32, libc::SIGHUP);
    }
    drop(console.master.take());
    wait_for("the console to exit", 30, || {
        console.child.try_wait().unwrap().is_some()
    });
    // The engine is untouched (still paused, not stopped) and the lease is free again.
    assert!(alive(pid), "the engine died with the console");
    assert_eq!(state(&store, &id), "paused");
    assert!(!log(&store, &id)
        .iter()
        .any(|r| r["event"]["command"]["cmd"] == "stop"));
    assert!(controller_pid(&dir).is_none(), "the lease was not released");
    let out = ctl(&store, &id, &["set", "replay_ratio=0.2"]);
    assert!(out.status.success(), "{:?}", text(&out));
    // Stopping is an explicit command; the session stays resumable.
    let out = ctl(&store, &id, &["stop"]);
    assert!(out.status.success(), "{:?}", text(&out));
    wait_for("the engine to stop", 60, || !alive(pid));
    assert_eq!(state(&store, &id), "interrupted");
}

/// `fork --detach` (docs/operations.md): the fork runs as a background process that outlives
/// the command, which prints the new id, and runs to its end.
#[test]
fn a_detached_fork_runs_to_its_end() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path();
    let mut cmd = crossadapt(store);
    cmd.args(["run", "--headless"]);
    for s in TINY_SETS {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let parent = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| store.join(n).join("session.json").exists())
        .expect("the parent session");
    let out = run(
        store,
        &[
            "fork",
            &parent,
            "--from-day",
            "7",
            "--set",
            "online.replay_ratio=0.3",
            "--detach",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let id = stdout.trim().to_string();
    assert_ne!(id, parent);
    assert!(stderr.contains("runs detached"), "{stderr}");
    wait_for("the detached fork to finish", 120, || {
        state(store, &id) == "done"
    });
    let records = log(store, &id);
    assert_eq!(records.last().map(kind), Some("finished"));
    assert!(records
        .iter()
        .any(|r| kind(r) == "params_changed" && r["event"]["params"]["replay_ratio"] == 0.3));
    assert!(store.join(&id).join("output.log").exists());
}
