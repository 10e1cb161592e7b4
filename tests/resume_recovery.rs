//! `resume` on damaged sessions, through the binary: it loads its checkpoint before it cuts the
//! log, falls back to the previous checkpoint (with a warning in the log) when the newest does
//! not load, and cuts damage that lies after its checkpoint instead of refusing the session.
//! Each time the resumed run reaches the uninterrupted run's numbers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crossadapt::engine::config::TINY_SETS;
use crossadapt::engine::events::EngineEvent;
use crossadapt::session::{read_log, Store};

mod session_common;
use session_common::{metrics_of, Metrics};

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

/// A finished tiny session, then made unfinished: the log cut after the checkpoint at the start
/// of day 9 and the checkpoints after it deleted. Returns (store dir guard, id, dir, reference).
fn unfinished() -> (tempfile::TempDir, String, PathBuf, Metrics) {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["run", "--headless"];
    for s in TINY_SETS {
        args.extend(["--set", s]);
    }
    let out = crossadapt(tmp.path(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(Some(tmp.path().to_path_buf())).unwrap();
    let summary = store.list().remove(0).unwrap();
    let (id, dir) = (summary.id, summary.dir);
    let reference = metrics_of(&dir);
    {
        let mut s = store.open_session(&id).unwrap();
        let seq = s.checkpoint_for_day(9).unwrap().seq;
        s.truncate_log_after(seq).unwrap();
    }
    std::fs::remove_dir_all(dir.join("checkpoints/done")).unwrap();
    (tmp, id, dir, reference)
}

/// Rewrites a checkpoint's manifest to match its files as they are now (damage only loading
/// can tell).
fn reseal(ckpt: &Path) {
    use sha2::{Digest, Sha256};
    let path = ckpt.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for f in v["files"].as_array_mut().unwrap() {
        let bytes = std::fs::read(ckpt.join(f["path"].as_str().unwrap())).unwrap();
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        f["bytes"] = serde_json::json!(bytes.len());
        f["sha256"] = serde_json::json!(sha);
    }
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// Replaces the checkpoint's own teacher file (checkpoints share one by hard link: writing
/// into it would damage every checkpoint's at once).
fn break_tensor(ckpt: &Path) {
    let path = ckpt.join("teacher.safetensors");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"not a tensor file").unwrap();
    reseal(ckpt);
}

fn warnings(dir: &Path) -> Vec<String> {
    read_log(&dir.join("events.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            EngineEvent::Warning { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

#[test]
fn a_newest_checkpoint_that_does_not_load_falls_back_to_the_one_before_with_a_logged_warning() {
    let (tmp, id, dir, reference) = unfinished();
    break_tensor(&dir.join("checkpoints/day-0009"));
    let out = crossadapt(tmp.path(), &["resume", &id, "--headless"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("checkpoint day-0009 does not load")
            && stderr.contains("teacher.safetensors"),
        "{stderr}"
    );
    assert!(
        warnings(&dir)
            .iter()
            .any(|w| w.contains("day-0009 does not load")),
        "the fallback is not in the log"
    );
    assert_eq!(metrics_of(&dir), reference);
}

#[test]
fn damage_in_the_log_after_the_checkpoint_is_cut_not_fatal() {
    let (tmp, id, dir, reference) = unfinished();
    // Resume from day 8: its checkpoint stays, the log after it gets a damaged line.
    std::fs::remove_dir_all(dir.join("checkpoints/day-0009")).unwrap();
    let path = dir.join("events.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let at = lines.len() - 3;
    lines[at] = "{\"v\":1,\"seq\":\u{0}garbage".into();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    // Reading it names the damage...
    let out = crossadapt(tmp.path(), &["export", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("events.jsonl line"));
    // ...a resume cuts it and completes.
    let out = crossadapt(tmp.path(), &["resume", &id, "--headless"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert_eq!(metrics_of(&dir), reference);
}

#[test]
fn a_resume_that_cannot_load_leaves_the_log_as_it_was() {
    let (tmp, id, dir, _) = unfinished();
    for e in std::fs::read_dir(dir.join("checkpoints")).unwrap() {
        break_tensor(&e.unwrap().path());
    }
    let log = std::fs::read(dir.join("events.jsonl")).unwrap();
    let out = crossadapt(tmp.path(), &["resume", &id, "--headless"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("teacher.safetensors"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(std::fs::read(dir.join("events.jsonl")).unwrap(), log);
}
