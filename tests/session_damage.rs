//! Damaged sessions: one clear error naming the file, nothing touched, the healthy ones listed.

mod session_common;

use std::path::{Path, PathBuf};

use crossadapt::engine::events::EventSink;
use crossadapt::session::{RunState, Status, Store};
use session_common::{known_log, snapshot_tree};

/// A store with three finished copies of the fixture session; returns their directories.
fn store_with_three() -> (tempfile::TempDir, Store, Vec<PathBuf>) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(Some(tmp.path().join("sessions"))).unwrap();
    let mut dirs = Vec::new();
    for name in ["a", "b", "c"] {
        let mut s = store.create(name, "seed = 7\n", None).unwrap();
        let mut status = Status::new(RunState::Running);
        for r in known_log() {
            s.log().emit(&r).unwrap();
            status.observe(&r);
        }
        s.set_status(&status).unwrap();
        dirs.push(s.dir().to_path_buf());
    }
    (tmp, store, dirs)
}

/// Damages one of three sessions with `damage`; checks that `list` still lists the other two
/// (and this one too when only the log is damaged: `list` does not read logs), that opening it
/// fails with one sentence naming `file` and containing `expected`, and that nothing changed.
fn check(damage: impl FnOnce(&Path), file: &str, expected: &str) -> String {
    let (_tmp, store, dirs) = store_with_three();
    damage(&dirs[1]);
    let before = snapshot_tree(store.root());
    let listed = store.list();
    assert_eq!(listed.len(), 3);
    let mut healthy: Vec<String> = listed
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|s| s.name.clone())
        .collect();
    healthy.sort();
    let damaged: Vec<&(PathBuf, anyhow::Error)> =
        listed.iter().filter_map(|r| r.as_ref().err()).collect();
    let id = dirs[1].file_name().unwrap().to_str().unwrap().to_string();
    let open_err = match store.open_session(&id) {
        Err(e) => e.to_string(),
        // A damaged log line opens for a resume (which cuts the log at its checkpoint, before
        // the damage or failing), names the damage and refuses records until then.
        Ok(mut s) if file == "events.jsonl" => {
            let record = session_common::known_log().remove(0);
            let refused = s.log().emit(&record).unwrap_err().to_string();
            let warning = s.warnings().last().cloned().unwrap_or_default();
            assert!(refused.contains(&warning), "{refused}");
            warning
        }
        Ok(_) => panic!("a damaged session opened"),
    };
    if file == "events.jsonl" {
        assert_eq!(healthy, vec!["a", "b", "c"]);
        let read_err = store
            .open_read_only(&id)
            .unwrap()
            .records()
            .unwrap_err()
            .to_string();
        assert_eq!(read_err, open_err);
    } else {
        assert_eq!(healthy, vec!["a", "c"]);
        assert_eq!(damaged.len(), 1);
        assert_eq!(damaged[0].0, dirs[1]);
        assert_eq!(damaged[0].1.to_string(), open_err);
    }
    assert!(
        open_err.contains(&dirs[1].join(file).display().to_string()),
        "{open_err}"
    );
    assert!(open_err.contains(expected), "{open_err}");
    assert!(!open_err.contains('\n'), "{open_err}");
    // Nothing in the store was modified by listing or by the failed open (the lock file
    // records the pid of the last opener and is not data).
    let without_lock = |t: Vec<(PathBuf, Vec<u8>)>| -> Vec<_> {
        t.into_iter()
            .filter(|(p, _)| !p.ends_with("lock"))
            .collect()
    };
    assert_eq!(
        without_lock(snapshot_tree(store.root())),
        without_lock(before)
    );
    open_err
}

#[test]
fn a_corrupted_middle_log_line_names_the_file_and_line() {
    check(
        |dir| {
            let path = dir.join("events.jsonl");
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            lines[2] = "{\"v\":1,\"seq\":2,\"t\":1.0,\"event\":{\"type\":\"offline_res";
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        },
        "events.jsonl",
        "events.jsonl line 3 is damaged",
    );
}

#[test]
fn a_log_from_a_newer_event_schema_is_refused() {
    check(
        |dir| {
            let path = dir.join("events.jsonl");
            let text =
                std::fs::read_to_string(&path)
                    .unwrap()
                    .replacen("{\"v\":1,", "{\"v\":2,", 1);
            std::fs::write(&path, text).unwrap();
        },
        "events.jsonl",
        "line 1 was written by a newer crossadapt (event schema 2",
    );
}

#[test]
fn a_truncated_status_file_is_reported_and_the_others_still_listed() {
    let (_tmp, store, dirs) = store_with_three();
    let path = dirs[1].join("status.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    let before = snapshot_tree(store.root());
    let listed = store.list();
    let errors: Vec<String> = listed
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|(_, e)| e.to_string())
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(&format!("{} is damaged (not valid JSON", path.display())),
        "{}",
        errors[0]
    );
    assert_eq!(listed.iter().filter(|r| r.is_ok()).count(), 2);
    assert_eq!(snapshot_tree(store.root()), before);
}

#[test]
fn a_corrupted_config_names_the_config_file() {
    check(
        |dir| std::fs::write(dir.join("config.toml"), "seed = = 7\n[method\n").unwrap(),
        "config.toml",
        "config.toml is damaged (not valid TOML",
    );
}

#[test]
fn a_session_from_a_newer_version_is_refused_by_name() {
    check(
        |dir| {
            let path = dir.join("session.json");
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("\"schema_version\": 1", "\"schema_version\": 4");
            std::fs::write(&path, text).unwrap();
        },
        "session.json",
        "was written by a newer crossadapt (schema version 4; this build reads up to 1)",
    );
}

#[test]
fn a_missing_session_file_or_directory_is_named() {
    check(
        |dir| std::fs::remove_file(dir.join("session.json")).unwrap(),
        "session.json",
        "is missing",
    );
    let (_tmp, store, _) = store_with_three();
    let err = store
        .open_read_only("20990101-000000-0000")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("no session 20990101-000000-0000 in "),
        "{err}"
    );
    let err = store
        .open_read_only("/no/such/dir")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such/dir"), "{err}");
    let err = Store::open(Some("/proc/version/sessions".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/proc/version/sessions"), "{err}");
}

#[test]
fn a_killed_run_lists_as_interrupted() {
    let (_tmp, store, dirs) = store_with_three();
    let path = dirs[0].join("status.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"state\": \"done\"", "\"state\": \"running\"");
    std::fs::write(&path, text).unwrap();
    let listed: Vec<_> = store.list().into_iter().map(Result::unwrap).collect();
    let a = listed.iter().find(|s| s.dir == dirs[0]).unwrap();
    assert_eq!(a.state, RunState::Interrupted);
    assert!(listed
        .iter()
        .filter(|s| s.dir != dirs[0])
        .all(|s| s.state == RunState::Done));
}
