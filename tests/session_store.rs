//! The session store: creation, locking, the log, checkpoints, truncation, removal.

mod session_common;

use std::io::{self, Write};
use std::path::Path;

use crossadapt::engine::events::{EventSink, Record};
use crossadapt::session::log::{EventLog, LogWriter};
use crossadapt::session::{read_log_with_warnings, Parent, RunState, Status, Store};
use session_common::{filler, known_log};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(Some(dir.path().join("sessions"))).unwrap();
    (dir, store)
}

#[test]
fn a_created_session_logs_records_and_reopens_where_it_stopped() {
    let (_tmp, store) = store();
    let mut s = store
        .create("demo", "[method]\nsampling_ratio = 0.1\n", None)
        .unwrap();
    let id = s.id().to_string();
    assert!(id.len() == 20 && id.as_bytes()[8] == b'-', "{id}");
    let mut status = Status::new(RunState::Running);
    for r in known_log() {
        s.log().emit(&r).unwrap();
        status.observe(&r);
    }
    s.set_status(&status).unwrap();
    drop(s);

    let s = store.open_session(&id).unwrap();
    assert_eq!(s.config_toml().unwrap(), "[method]\nsampling_ratio = 0.1\n");
    assert_eq!(s.records().unwrap().records, known_log());
    let mut s = s;
    assert_eq!(s.log().next_seq(), known_log().len() as u64);
    let listed: Vec<_> = store.list().into_iter().map(Result::unwrap).collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, RunState::Done);
    assert_eq!(listed[0].last_day, Some(5));
    assert_eq!(listed[0].arms, vec!["kd", "crossadapt"]);
    assert_eq!(listed[0].headline[1].auc, Some(0.7233));
}

#[test]
fn a_second_open_of_the_same_session_is_refused_with_the_owner_pid() {
    let (_tmp, store) = store();
    let s = store.create("demo", "", None).unwrap();
    let err = store.open_session(s.id()).err().unwrap().to_string();
    assert_eq!(
        err,
        format!(
            "session {} is in use by another crossadapt process (pid {})",
            s.id(),
            std::process::id()
        )
    );
    // Readers need no lock, and see a live session.
    let view = store.open_read_only(s.id()).unwrap();
    assert!(view.is_live());
    let id = s.id().to_string();
    drop(s);
    assert!(!view.is_live());
    store.open_session(&id).unwrap();
}

/// Helper run in a child process by the test below: holds a session until stdin closes.
#[test]
#[ignore = "helper for the cross-process lock test"]
fn child_holds_session_lock() {
    let (Ok(root), Ok(id)) = (std::env::var("CA_TEST_ROOT"), std::env::var("CA_TEST_ID")) else {
        return;
    };
    let store = Store::open(Some(root.into())).unwrap();
    let _s = store.open_session(&id).unwrap();
    println!("locked");
    io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = io::stdin().read_line(&mut line);
}

#[test]
fn a_session_held_by_another_process_is_in_use_until_it_dies() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let (_tmp, store) = store();
    let id = store.create("demo", "", None).unwrap().id().to_string();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_holds_session_lock",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CA_TEST_ROOT", store.root())
        .env("CA_TEST_ID", &id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("locked") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "child exited before locking"
        );
    }
    let err = store.open_session(&id).err().unwrap().to_string();
    assert!(
        err.contains(&format!(
            "in use by another crossadapt process (pid {})",
            child.id()
        )),
        "{err}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    store.open_session(&id).unwrap();
}

#[test]
fn a_torn_last_line_is_ignored_on_read_and_cut_before_appending() {
    let (_tmp, store) = store();
    let mut s = store.create("demo", "", None).unwrap();
    let id = s.id().to_string();
    for seq in 0..3 {
        s.log().emit(&filler(seq)).unwrap();
    }
    let path = s.log().path().to_path_buf();
    drop(s);
    let line = serde_json::to_string(&filler(3)).unwrap();
    append(&path, &line.as_bytes()[..line.len() / 2]);

    let read = read_log_with_warnings(&path).unwrap();
    assert_eq!(read.records.len(), 3);
    assert!(
        read.warnings[0].contains("events.jsonl ends with a torn line (line 4"),
        "{:?}",
        read.warnings
    );

    let mut s = store.open_session(&id).unwrap();
    assert_eq!(s.warnings().len(), 1);
    s.log().emit(&filler(3)).unwrap();
    let read = read_log_with_warnings(&path).unwrap();
    assert_eq!(read.records, (0..4).map(filler).collect::<Vec<_>>());
    assert!(read.warnings.is_empty());
}

#[test]
fn a_whole_last_record_without_its_line_end_is_kept() {
    let (_tmp, store) = store();
    let mut s = store.create("demo", "", None).unwrap();
    let id = s.id().to_string();
    s.log().emit(&filler(0)).unwrap();
    let path = s.log().path().to_path_buf();
    drop(s);
    append(&path, serde_json::to_string(&filler(1)).unwrap().as_bytes());
    assert_eq!(read_log_with_warnings(&path).unwrap().records.len(), 2);
    let mut s = store.open_session(&id).unwrap();
    s.log().emit(&filler(2)).unwrap();
    assert_eq!(
        s.records().unwrap().records,
        (0..3).map(filler).collect::<Vec<_>>()
    );
}

#[test]
fn records_must_follow_the_log_without_gaps() {
    let (_tmp, store) = store();
    let mut s = store.create("demo", "", None).unwrap();
    s.log().emit(&filler(0)).unwrap();
    let err = s.log().emit(&filler(2)).unwrap_err().to_string();
    assert!(
        err.contains("seq 2") && err.contains("expected seq 1"),
        "{err}"
    );
}

/// A log file that runs out of space after `room` bytes.
struct FullDisk {
    file: std::fs::File,
    room: usize,
}
impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device",
            ));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        self.file.write(&buf[..n])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
impl LogWriter for FullDisk {
    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[test]
fn a_full_disk_fails_the_append_by_name_and_keeps_every_earlier_record() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("events.jsonl");
    let first = serde_json::to_string(&filler(0)).unwrap().len() + 1;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let mut log = EventLog::from_writer(
        path.clone(),
        Box::new(FullDisk {
            file,
            room: first + 10,
        }),
        0,
    );
    log.emit(&filler(0)).unwrap();
    let err = format!("{:#}", log.emit(&filler(1)).unwrap_err());
    assert!(
        err.contains("events.jsonl") && err.contains("No space left"),
        "{err}"
    );
    // Nothing more is written after a failure: the torn line stays the last one.
    let err = log.emit(&filler(1)).unwrap_err().to_string();
    assert!(
        err.contains("takes no more records (an earlier write failed"),
        "{err}"
    );
    let read = read_log_with_warnings(&path).unwrap();
    assert_eq!(read.records, vec![filler(0)]);
    assert_eq!(read.warnings.len(), 1);
}

#[test]
fn checkpoints_are_verified_and_a_damaged_one_falls_back_to_the_previous() {
    let (_tmp, store) = store();
    let mut s = store.create("demo", "", None).unwrap();
    assert_eq!(s.latest_checkpoint().unwrap(), None);
    for (day, seq) in [(4u32, 5u64), (5, 9)] {
        let dir = s
            .write_checkpoint(&crossadapt::session::day_label(day), seq, |staging| {
                std::fs::write(staging.join("weights.safetensors"), vec![day as u8; 4096])?;
                std::fs::create_dir(staging.join("arms"))?;
                std::fs::write(staging.join("arms/kd.json"), format!("{{\"day\":{day}}}"))?;
                Ok(())
            })
            .unwrap();
        assert!(dir.ends_with(format!("checkpoints/day-{day:04}")));
    }
    let latest = s.latest_checkpoint().unwrap().unwrap();
    assert_eq!((latest.label.as_str(), latest.seq), ("day-0005", 9));
    assert_eq!(s.checkpoint_for_day(4).unwrap().seq, 5);

    // Flip one byte of the newest checkpoint: it is skipped, with the file named.
    let weights = latest.dir.join("weights.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let fallback = s.latest_checkpoint().unwrap().unwrap();
    assert_eq!(fallback.label, "day-0004");
    assert!(
        fallback.warnings[0].contains("day-0005/weights.safetensors is damaged (checksum"),
        "{:?}",
        fallback.warnings
    );
    let err = s.checkpoint_for_day(5).unwrap_err().to_string();
    assert!(err.contains("weights.safetensors is damaged"), "{err}");
    let err = s.checkpoint_for_day(9).unwrap_err().to_string();
    assert!(
        err.contains("no checkpoint at the start of day 9 (days with one: 4, 5)"),
        "{err}"
    );

    // A truncated manifest is skipped the same way.
    std::fs::write(
        fallback.dir.join("manifest.json"),
        "{\"schema_version\": 1, \"lab",
    )
    .unwrap();
    let err = s.latest_checkpoint().unwrap_err().to_string();
    assert!(
        err.contains("no usable checkpoint") && err.contains("day-0004/manifest.json is damaged"),
        "{err}"
    );
}

#[test]
fn a_failed_checkpoint_write_leaves_the_previous_checkpoints_alone() {
    let (_tmp, store) = store();
    let mut s = store.create("demo", "", None).unwrap();
    s.write_checkpoint("day-0004", 3, |d| Ok(std::fs::write(d.join("w"), b"ok")?))
        .unwrap();
    let before = session_common::snapshot_tree(&s.dir().join("checkpoints"));
    let err = s
        .write_checkpoint("day-0005", 7, |d| {
            std::fs::write(d.join("w"), b"partial")?;
            Err(io::Error::new(io::ErrorKind::StorageFull, "No space left on device").into())
        })
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot write checkpoint day-0005: No space left"),
        "{err:#}"
    );
    assert_eq!(
        session_common::snapshot_tree(&s.dir().join("checkpoints")),
        before
    );
    assert_eq!(s.latest_checkpoint().unwrap().unwrap().label, "day-0004");
    // Same label again (a day redone after a resume) replaces the checkpoint whole.
    s.write_checkpoint("day-0004", 4, |d| Ok(std::fs::write(d.join("w"), b"redo")?))
        .unwrap();
    let again = s.latest_checkpoint().unwrap().unwrap();
    assert_eq!(
        (again.seq, std::fs::read(again.dir.join("w")).unwrap()),
        (4, b"redo".to_vec())
    );
}

#[test]
fn a_checkpoint_manifest_from_a_newer_version_is_an_error_not_a_fallback() {
    let (_tmp, store) = store();
    let mut s = store.create("demo", "", None).unwrap();
    let dir = s.write_checkpoint("day-0001", 1, |_| Ok(())).unwrap();
    std::fs::write(dir.join("manifest.json"), r#"{"schema_version": 2}"#).unwrap();
    let err = s.latest_checkpoint().unwrap_err().to_string();
    assert!(
        err.contains("day-0001/manifest.json was written by a newer crossadapt"),
        "{err}"
    );
}

#[test]
fn resume_truncates_the_log_after_the_checkpoint_and_appends_from_there() {
    let (_tmp, store) = store();
    let mut s = store.create("demo", "", None).unwrap();
    for seq in 0..6 {
        s.log().emit(&filler(seq)).unwrap();
    }
    s.truncate_log_after(3).unwrap();
    assert_eq!(s.log().next_seq(), 4);
    s.log().emit(&filler(4)).unwrap();
    assert_eq!(
        s.records().unwrap().records,
        (0..5).map(filler).collect::<Vec<Record>>()
    );
}

#[test]
fn a_fork_records_its_parent_and_removal_needs_the_lock() {
    let (_tmp, store) = store();
    let parent = store.create("demo", "", None).unwrap();
    let child = store
        .create(
            "what if",
            "x = 1\n",
            Some(Parent {
                id: parent.id().into(),
                day: 5,
            }),
        )
        .unwrap();
    assert_ne!(child.id(), parent.id());
    assert_eq!(
        store
            .open_read_only(child.id())
            .unwrap()
            .meta()
            .parent
            .as_ref()
            .unwrap()
            .day,
        5
    );
    let err = store.remove(parent.id()).unwrap_err().to_string();
    assert!(err.contains("in use"), "{err}");
    let id = parent.id().to_string();
    drop(parent);
    store.remove(&id).unwrap();
    assert!(!store.root().join(&id).exists());
    assert_eq!(store.list().len(), 1);
    let err = store.remove("../etc").unwrap_err().to_string();
    assert!(err.contains("not a session id"), "{err}");
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn a_fork_starts_from_a_copy_of_the_parent_checkpoint_with_the_log_up_to_it() {
    let (_tmp, store) = store();
    let mut parent = store.create("demo", "seed = 7\n", None).unwrap();
    for seq in 0..4 {
        parent.log().emit(&filler(seq)).unwrap();
    }
    parent
        .write_checkpoint("day-0005", 3, |d| {
            std::fs::create_dir(d.join("arms"))?;
            Ok(std::fs::write(d.join("arms/kd.safetensors"), b"weights")?)
        })
        .unwrap();
    for seq in 4..8 {
        parent.log().emit(&filler(seq)).unwrap();
    }
    // The parent is still running: forking needs no lock on it.
    let (mut child, ckpt) = store
        .fork(parent.id(), 5, "ratio 0.2", "seed = 7\nratio = 0.2\n")
        .unwrap();
    assert_eq!((ckpt.label.as_str(), ckpt.seq), ("day-0005", 3));
    assert!(ckpt.dir.starts_with(child.dir()));
    assert_eq!(
        std::fs::read(ckpt.dir.join("arms/kd.safetensors")).unwrap(),
        b"weights"
    );
    assert_eq!(
        child.records().unwrap().records,
        (0..4).map(filler).collect::<Vec<_>>()
    );
    assert_eq!(child.log().next_seq(), 4);
    assert_eq!(
        child.meta().parent,
        Some(Parent {
            id: parent.id().into(),
            day: 5
        })
    );
    assert_eq!(child.config_toml().unwrap(), "seed = 7\nratio = 0.2\n");

    let err = store
        .fork(parent.id(), 6, "x", "")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("no checkpoint at the start of day 6 (days with one: 5)"),
        "{err}"
    );
    assert_eq!(store.list().len(), 2, "a refused fork creates no session");
}

#[test]
fn clearing_the_log_starts_it_over() {
    let (_tmp, store) = store();
    let mut s = store.create("demo", "", None).unwrap();
    s.log().emit(&filler(0)).unwrap();
    s.clear_log().unwrap();
    assert_eq!(s.log().next_seq(), 0);
    s.log().emit(&filler(0)).unwrap();
    assert_eq!(s.records().unwrap().records, vec![filler(0)]);
}

#[test]
fn rm_removes_only_sessions_never_follows_links_and_force_takes_other_folders() {
    let (tmp, store) = store();
    // A folder that is no session (`--sessions-dir .` then `rm src`) is refused, untouched.
    let src = store.root().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("main.rs"), "fn main() {}").unwrap();
    let err = store.remove("src").unwrap_err().to_string();
    assert!(
        err.contains("is not a crossadapt session") && err.contains("--force"),
        "{err}"
    );
    assert!(src.join("main.rs").exists() && !src.join("lock").exists());
    // A link to a session folder elsewhere is never followed, even with force.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("session.json"), "{}").unwrap();
    std::os::unix::fs::symlink(&elsewhere, store.root().join("linked")).unwrap();
    for force in [false, true] {
        let err = store.remove_with("linked", force).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }
    assert!(elsewhere.join("session.json").exists());
    // A link inside a forced folder is deleted as a link; its target stays.
    std::os::unix::fs::symlink(&elsewhere, src.join("inner-link")).unwrap();
    store.remove_with("src", true).unwrap();
    assert!(!src.exists() && elsewhere.join("session.json").exists());
    // A session with only its log (session.json lost) is still a session.
    let s = store.create("demo", "", None).unwrap();
    let id = s.id().to_string();
    drop(s);
    std::fs::remove_file(store.root().join(&id).join("session.json")).unwrap();
    store.remove(&id).unwrap();
    assert!(!store.root().join(&id).exists());
}

#[test]
fn leftovers_of_interrupted_creates_and_removes_are_cleaned_when_the_store_opens() {
    let (_tmp, store) = store();
    let root = store.root().to_path_buf();
    // A crash mid-rm: the renamed folder with its (no longer held) lock.
    let removing = root.join(".removing-20260101-000000-abcd");
    std::fs::create_dir_all(removing.join("checkpoints/day-0001")).unwrap();
    std::fs::write(removing.join("lock"), "123\n").unwrap();
    std::fs::write(
        removing.join("checkpoints/day-0001/big.bin"),
        vec![0u8; 4096],
    )
    .unwrap();
    // A crash mid-create, after the lock was taken.
    let creating = root.join(".creating-20260101-000000-beef");
    std::fs::create_dir(&creating).unwrap();
    std::fs::write(creating.join("lock"), "123\n").unwrap();
    // A create in progress right now (its lock held) and a fresh unlocked one stay.
    let live = root.join(".creating-20260101-000000-cafe");
    std::fs::create_dir(&live).unwrap();
    let _held = crossadapt::session::lock::SessionLock::acquire(&live, "x").unwrap();
    let fresh = root.join(".creating-20260101-000000-f00d");
    std::fs::create_dir(&fresh).unwrap();
    // A leftover name that is a link: the link goes, its target stays.
    let target = root.parent().unwrap().join("target");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&target, root.join(".removing-20260101-000000-1111")).unwrap();

    let reopened = Store::open(Some(root.clone())).unwrap();
    let mut cleaned: Vec<String> = reopened
        .cleaned_leftovers()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    cleaned.sort();
    assert_eq!(
        cleaned,
        [
            ".creating-20260101-000000-beef",
            ".removing-20260101-000000-1111",
            ".removing-20260101-000000-abcd"
        ]
    );
    assert!(!removing.exists() && !creating.exists());
    assert!(live.exists() && fresh.exists() && target.exists());
}

#[test]
fn a_checkpoint_of_the_same_label_is_replaced_whole() {
    let (_tmp, store) = store();
    let mut s = store.create("demo", "", None).unwrap();
    for r in known_log() {
        s.log().emit(&r).unwrap();
    }
    let write =
        |text: &'static str| move |dir: &Path| Ok(std::fs::write(dir.join("state.json"), text)?);
    s.write_checkpoint("day-0005", 3, write("old")).unwrap();
    let dir = s.write_checkpoint("day-0005", 4, write("new")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("state.json")).unwrap(),
        "new"
    );
    let ckpt = s.latest_checkpoint().unwrap().unwrap();
    assert_eq!((ckpt.label.as_str(), ckpt.seq), ("day-0005", 4));
    // Nothing of the old one is left beside it.
    let names: Vec<String> = std::fs::read_dir(s.dir().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["day-0005"]);
}
