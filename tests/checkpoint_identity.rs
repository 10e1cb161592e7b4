//! Checkpoints know whose they are: `resume` of a session holding another session's checkpoints
//! (copied in by hand) refuses them, naming both sessions, and falls back to an older
//! checkpoint of its own where there is one, reaching the uninterrupted run's numbers. A
//! manifest written before the owner was recorded still resumes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crossadapt::engine::config::TINY_SETS;
use crossadapt::session::Store;

mod session_common;
use session_common::metrics_of;

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");

fn crossadapt(store: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--sessions-dir")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A finished tiny session with `seed`; returns its id and folder.
fn finished(store: &Path, seed: u64) -> (String, PathBuf) {
    let seed = format!("seed={seed}");
    let mut args = vec!["run", "--headless"];
    for s in TINY_SETS {
        args.extend(["--set", s]);
    }
    args.extend(["--set", &seed]);
    let out = crossadapt(store, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let s = Store::open(Some(store.to_path_buf())).unwrap();
    let summary = s
        .list()
        .into_iter()
        .filter_map(Result::ok)
        .max_by_key(|s| s.created)
        .unwrap_or_else(|| panic!("no session after {stderr}"));
    (summary.id, summary.dir)
}

/// Cuts a finished session back to its checkpoint at the start of day 9 (the log after it and
/// the `done` checkpoint go), as a run killed there leaves it.
fn unfinish(store: &Path, id: &str) {
    let s = Store::open(Some(store.to_path_buf())).unwrap();
    let mut session = s.open_session(id).unwrap();
    let seq = session.checkpoint_for_day(9).unwrap().seq;
    session.truncate_log_after(seq).unwrap();
    std::fs::remove_dir_all(session.dir().join("checkpoints/done")).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), dst).unwrap();
        }
    }
}

fn labels(dir: &Path) -> Vec<String> {
    let mut l: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    l.sort();
    l
}

#[test]
fn another_sessions_checkpoints_are_refused_naming_both_and_an_own_older_one_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path();
    let (own, own_dir) = finished(store, 7);
    let (other, other_dir) = finished(store, 99);
    let reference = metrics_of(&own_dir);
    assert_ne!(
        reference,
        metrics_of(&other_dir),
        "the seeds give other numbers"
    );
    unfinish(store, &own);

    // Every checkpoint replaced by the other session's: refused, naming both, nothing touched.
    let kept = own_dir.join("kept-checkpoints");
    std::fs::rename(own_dir.join("checkpoints"), &kept).unwrap();
    copy_dir(&other_dir.join("checkpoints"), &own_dir.join("checkpoints"));
    let log_before = std::fs::read(own_dir.join("events.jsonl")).unwrap();
    let out = crossadapt(store, &["resume", &own, "--headless"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a foreign checkpoint resumed: {stderr}"
    );
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        error.contains(&format!("session {own}"))
            && error.contains(&format!("written by session {other}")),
        "{error}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        std::fs::read(own_dir.join("events.jsonl")).unwrap(),
        log_before
    );

    // Its own checkpoint at the start of day 8 back, the other's newer ones left in place: each
    // skipped with a warning naming it, the run resumed from its own and the numbers its own.
    std::fs::remove_dir_all(own_dir.join("checkpoints")).unwrap();
    std::fs::create_dir(own_dir.join("checkpoints")).unwrap();
    std::fs::rename(kept.join("day-0008"), own_dir.join("checkpoints/day-0008")).unwrap();
    std::fs::remove_dir_all(&kept).unwrap();
    for label in ["day-0009", "done"] {
        copy_dir(
            &other_dir.join("checkpoints").join(label),
            &own_dir.join("checkpoints").join(label),
        );
    }
    let out = crossadapt(store, &["resume", &own, "--headless"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for label in ["day-0009", "done"] {
        assert!(
            stderr.contains(&format!(
                "skipped checkpoint {label} was written by session {other}, not by this session {own}"
            )),
            "{stderr}"
        );
    }
    assert!(stderr.contains("from checkpoint day-0008"), "{stderr}");
    assert_eq!(metrics_of(&own_dir), reference);
    // The run wrote its own checkpoints over the other's.
    assert!(labels(&own_dir).contains(&"done".to_string()));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(own_dir.join("checkpoints/done/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["session"], own.as_str());
}

/// A manifest written before checkpoints recorded their owner (no `session`, no
/// `config_sha256`) is the session's own.
#[test]
fn a_checkpoint_without_an_owner_resumes_as_the_sessions_own() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path();
    let (id, dir) = finished(store, 7);
    let reference = metrics_of(&dir);
    unfinish(store, &id);
    for label in labels(&dir) {
        let path = dir.join("checkpoints").join(label).join("manifest.json");
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let o = m.as_object_mut().unwrap();
        assert!(o.remove("session").is_some() && o.remove("config_sha256").is_some());
        std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }
    let out = crossadapt(store, &["resume", &id, "--headless"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("from checkpoint day-0009"), "{stderr}");
    assert_eq!(metrics_of(&dir), reference);
}

/// A session's `config.toml` edited after its checkpoints were written: they were taken under
/// another config, and a resume from them is refused.
#[test]
fn a_config_edited_after_the_checkpoints_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path();
    let (id, dir) = finished(store, 7);
    unfinish(store, &id);
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("seed = 7", "seed = 8", 1);
    assert_ne!(text, edited);
    std::fs::write(&path, edited).unwrap();
    let out = crossadapt(store, &["resume", &id, "--headless"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("written under another config.toml than session"),
        "{stderr}"
    );
}
