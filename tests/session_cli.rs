//! The session subcommands through the built binary.

mod session_common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use crossadapt::engine::events::EventSink;
use crossadapt::session::export::{collect, to_csv};
use crossadapt::session::{DayTablePrinter, RunState, Status, Store};
use predicates::prelude::*;
use session_common::known_log;

fn crossadapt(root: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crossadapt"));
    cmd.env("CROSSADAPT_SESSIONS_DIR", root);
    cmd
}

/// A store holding one finished session of the fixture; returns (tmp, root, id).
fn one_session() -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sessions");
    let store = Store::open(Some(root.clone())).unwrap();
    let mut s = store.create("demo", "seed = 7\n", None).unwrap();
    let mut status = Status::new(RunState::Running);
    for r in known_log() {
        s.log().emit(&r).unwrap();
        status.observe(&r);
    }
    s.set_status(&status).unwrap();
    let id = s.id().to_string();
    (tmp, root, id)
}

#[test]
fn list_shows_healthy_sessions_and_warns_about_damaged_ones() {
    let (_tmp, root, id) = one_session();
    let broken = root.join("20200101-000000-0000");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("session.json"), "{\"schema_").unwrap();
    crossadapt(&root)
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains(&id).and(predicate::str::contains("done")))
        .stdout(predicate::str::contains("crossadapt=0.7233"))
        .stderr(predicate::str::contains(format!(
            "warning: session {} is damaged: {} is damaged (not valid JSON",
            broken.display(),
            broken.join("session.json").display()
        )));
    let out = crossadapt(&root)
        .args(["list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["sessions"][0]["id"], id.as_str());
    assert_eq!(v["sessions"][0]["last_day"], 5);
    assert_eq!(v["damaged"].as_array().unwrap().len(), 1);
}

#[test]
fn list_of_an_empty_store_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    crossadapt(tmp.path())
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("no sessions in "));
}

#[test]
fn headless_replay_prints_what_the_live_printer_printed() {
    let (_tmp, root, id) = one_session();
    let mut live = DayTablePrinter::new(Vec::new());
    for r in known_log() {
        live.emit(&r).unwrap();
    }
    let live = String::from_utf8(live.finish().unwrap()).unwrap();
    crossadapt(&root)
        .args(["replay", &id, "--headless", "--speed", "1000"])
        .assert()
        .success()
        .stdout(live.clone());
    // By path too, as for the demo sessions shipped in the repo.
    crossadapt(&root)
        .args([
            "replay",
            root.join(&id).to_str().unwrap(),
            "--headless",
            "--speed",
            "1000",
        ])
        .assert()
        .success()
        .stdout(live);
    crossadapt(&root)
        .args(["replay", &id, "--headless", "--speed=0"])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("--speed").and(predicate::str::contains(
                "must be a number in [0.001, 1000000000]",
            )),
        );
}

#[test]
fn export_writes_csv_to_a_file_and_json_to_stdout() {
    let (tmp, root, id) = one_session();
    let out = tmp.path().join("days.csv");
    crossadapt(&root)
        .args([
            "export",
            &id,
            "--format",
            "csv",
            "--out",
            out.to_str().unwrap(),
        ])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        to_csv(&collect(&known_log()).0)
    );
    let json = crossadapt(&root)
        .args(["export", &id, "--format", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["days"].as_array().unwrap().len(), 4);
    crossadapt(&root)
        .args(["export", "nope", "--format", "json"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("error: no session nope in"));
}

#[test]
fn rm_refuses_without_a_terminal_or_yes_and_deletes_with_yes() {
    let (_tmp, root, id) = one_session();
    crossadapt(&root)
        .args(["rm", &id])
        .write_stdin("y\n")
        .assert()
        .failure()
        .stderr(predicate::str::contains(format!(
            "refusing to delete session {id} without confirmation: stdin is not a terminal (pass --yes)"
        )));
    assert!(root.join(&id).exists());
    crossadapt(&root)
        .args(["rm", &id, "--yes"])
        .assert()
        .success();
    assert!(!root.join(&id).exists());
    crossadapt(&root)
        .args(["rm", &id, "--yes"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(format!(
            "error: no session {id} in"
        )));
}

#[test]
fn rm_removes_a_damaged_session_with_a_warning() {
    let (_tmp, root, id) = one_session();
    std::fs::write(root.join(&id).join("session.json"), "{").unwrap();
    crossadapt(&root)
        .args(["rm", &id, "--yes"])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("warning: ")
                .and(predicate::str::contains("session.json is damaged")),
        );
    assert!(!root.join(&id).exists());
}

#[test]
fn resuming_a_finished_session_points_to_replay_and_unknown_ids_fail() {
    let (_tmp, root, id) = one_session();
    crossadapt(&root)
        .args(["resume", &id])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("is complete")
                .and(predicate::str::contains(format!("crossadapt replay {id}"))),
        );
    crossadapt(&root)
        .args(["resume", "20990101-000000-dead"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("20990101-000000-dead"));
}

#[test]
fn replay_capture_prints_the_dashboard_and_summary_as_text_and_refuses_bad_sizes() {
    let (_tmp, root, id) = one_session();
    let out = crossadapt(&root)
        .args(["replay", &id, "--capture", "80x24"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 48, "{text}");
    assert!(text.contains("DONE"), "{text}");
    assert!(text.contains("switch verdict"), "{text}");
    crossadapt(&root)
        .args(["replay", &id, "--capture", "80by24"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("WIDTHxHEIGHT"));
}

/// The store never writes through a symbolic link that leads outside its root: every command
/// that writes into a session (`resume`, `ctl`, `attach`'s lease) refuses one sentence naming the
/// link, and nothing outside changes; reading through it still works.
#[test]
fn a_session_linked_from_outside_the_store_is_never_written_through() {
    let (tmp, root, id) = one_session();
    let outside = tmp.path().join("elsewhere");
    std::fs::create_dir(&outside).unwrap();
    std::fs::rename(root.join(&id), outside.join(&id)).unwrap();
    std::os::unix::fs::symlink(outside.join(&id), root.join(&id)).unwrap();
    let before = session_common::snapshot_tree(&outside);
    let refused = |args: &[&str], link: &Path| {
        let out = crossadapt(&root)
            .args(args)
            .assert()
            .failure()
            .get_output()
            .stderr
            .clone();
        let err = String::from_utf8_lossy(&out).into_owned();
        assert!(
            err.contains(&format!("{} ", link.display()))
                && err.contains("symbolic link")
                && err.contains("outside the sessions directory")
                && err.trim_end().lines().count() == 1,
            "{args:?}: {err}"
        );
    };
    let link = root.join(&id);
    refused(&["resume", &id, "--headless"], &link);
    refused(&["ctl", &id, "pause"], &link);
    refused(&["attach", &id], &link);
    assert_eq!(session_common::snapshot_tree(&outside), before);
    crossadapt(&root).args(["export", &id]).assert().success();

    // A link inside a session in the store: its log, kept elsewhere.
    std::fs::remove_file(&link).unwrap();
    std::fs::rename(outside.join(&id), &link).unwrap();
    let log = link.join("events.jsonl");
    std::fs::rename(&log, outside.join("events.jsonl")).unwrap();
    std::os::unix::fs::symlink(outside.join("events.jsonl"), &log).unwrap();
    let before = session_common::snapshot_tree(&outside);
    refused(&["resume", &id, "--headless"], &log);
    assert_eq!(session_common::snapshot_tree(&outside), before);
}
