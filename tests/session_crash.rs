//! A writer killed with SIGKILL at several moments leaves a session that opens, reads back
//! whole up to at most a torn last line, and has a verified checkpoint covering logged records.

mod session_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crossadapt::engine::events::EventSink;
use crossadapt::session::{day_label, RunState, Status, Store};
use session_common::filler;

/// Helper run in a child process: writes records, status and checkpoints until killed.
#[test]
#[ignore = "helper for the SIGKILL test"]
fn child_writes_until_killed() {
    let (Ok(root), Ok(id)) = (std::env::var("CA_TEST_ROOT"), std::env::var("CA_TEST_ID")) else {
        return;
    };
    let store = Store::open(Some(root.into())).unwrap();
    let mut s = store.open_session(&id).unwrap();
    let mut status = Status::new(RunState::Running);
    println!("started");
    for seq in 0.. {
        let r = filler(seq);
        s.log().emit(&r).unwrap();
        status.observe(&r);
        if seq % 40 == 39 {
            s.set_status(&status).unwrap();
            let day = (seq / 40) as u32;
            s.write_checkpoint(&day_label(day), seq, |d| {
                std::fs::write(d.join("weights"), vec![day as u8; 256 << 10])?;
                Ok(std::fs::write(
                    d.join("state.json"),
                    format!("{{\"seq\":{seq}}}"),
                )?)
            })
            .unwrap();
        }
    }
}

#[test]
fn a_killed_writer_leaves_a_resumable_session() {
    for delay_ms in [0u64, 15, 60, 150] {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(Some(tmp.path().to_path_buf())).unwrap();
        let mut created = store.create("crash", "", None).unwrap();
        created.set_status(&Status::new(RunState::Running)).unwrap();
        let id = created.id().to_string();
        drop(created);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child_writes_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CA_TEST_ROOT", store.root())
            .env("CA_TEST_ID", &id)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("started") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "child exited before starting"
            );
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let listed = store.list().into_iter().next().unwrap().unwrap();
        assert_eq!(listed.state, RunState::Interrupted, "delay {delay_ms} ms");
        let mut s = store.open_session(&id).unwrap();
        let records = s.records().unwrap().records;
        assert_eq!(
            records,
            (0..records.len() as u64).map(filler).collect::<Vec<_>>()
        );
        if let Some(ckpt) = s.latest_checkpoint().unwrap() {
            assert!(
                ckpt.seq < records.len() as u64,
                "delay {delay_ms} ms: checkpoint beyond the log"
            );
            assert!(ckpt.warnings.is_empty(), "{:?}", ckpt.warnings);
            s.truncate_log_after(ckpt.seq).unwrap();
        } else {
            s.clear_log().unwrap();
        }
        let hidden = |dir: std::path::PathBuf| {
            std::fs::read_dir(dir).map_or(0, |d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
        };
        assert_eq!(
            hidden(s.dir().to_path_buf()),
            0,
            "temporary files left after open"
        );
        assert_eq!(
            hidden(s.dir().join("checkpoints")),
            0,
            "staging left after open"
        );
        let next = s.log().next_seq();
        s.log().emit(&filler(next)).unwrap();
        eprintln!(
            "killed after {delay_ms} ms: {} records, resumed at seq {next}",
            records.len()
        );
    }
}
