//! Files and names a hostile or careless input cannot abuse (issue 35, items 3 to 7), through
//! the binary:
//!
//! - an output path that is a character device or a FIFO (`run --report`, `export --out` in
//!   CSV and JSON, `predict --out`) is written to and is still a device or FIFO afterwards;
//!   `-` is standard output;
//! - `run --config /dev/zero` and a schema from `/dev/zero` are refused at once;
//! - a FIFO or a device as data (`data inspect`, `run`'s `data.path`, a file in a data
//!   folder) is refused up front;
//! - a damaged Parquet file inside a folder is named, and no raw bytes are printed;
//! - a session name with escape codes is refused by `run --name`, and one already on disk is
//!   printed escaped by `list`, `replay` and `compare`.
//!
//! Every command runs under a time limit: a hang fails the test instead of stalling it. The
//! device and FIFO tests need root for `mknod` (CI runs as root); without it they fail.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crossadapt::engine::config::TINY_SETS;

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");

/// Long enough for a tiny session on a loaded machine; a refusal takes milliseconds.
const LIMIT: Duration = Duration::from_secs(60);
/// For what must end at once (a refused input): a hang, or reading `/dev/zero` to the end,
/// overruns it.
const AT_ONCE: Duration = Duration::from_secs(5);

const HOSTILE: &str = "\x1b[2J\x1b[31mEVIL\nx";

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` in `dir` (sessions and day cache inside it), its output in
/// files; kills it and fails the test when it takes longer than `limit`.
fn run_in(dir: &Path, args: &[&str], limit: Duration) -> Out {
    let (out_path, err_path) = (dir.join(".stdout"), dir.join(".stderr"));
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .env("CROSSADAPT_SESSIONS_DIR", dir.join("sessions"))
        .env("CROSSADAPT_CACHE_DIR", dir.join("cache"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{args:?} did not end within {limit:?}; stderr so far: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Out {
        ok: status.success(),
        stdout: String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned(),
    };
    assert!(
        !out.stderr.contains("panicked"),
        "{args:?} panicked: {}",
        out.stderr
    );
    out
}

/// [`run_in`] that must succeed.
fn ok_in(dir: &Path, args: &[&str]) -> Out {
    let out = run_in(dir, args, LIMIT);
    assert!(out.ok, "{args:?} failed: {}", out.stderr);
    out
}

/// [`run_in`] that must fail at once, its stderr holding `needle` (and no escape code).
fn refused_at_once(dir: &Path, args: &[&str], needle: &str) -> String {
    let out = run_in(dir, args, AT_ONCE);
    assert!(!out.ok, "{args:?} was accepted: {}", out.stdout);
    assert!(
        out.stderr.contains(needle),
        "{args:?}: the error does not say {needle:?}: {}",
        out.stderr
    );
    out.stderr
}

/// `run --headless` over the tiny session, plus `extra` arguments.
fn tiny_run<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--headless"];
    for s in TINY_SETS {
        args.extend(["--set", s]);
    }
    args.extend(extra);
    args
}

/// The one session under `dir`.
fn only_session(dir: &Path) -> String {
    let ids: Vec<String> = std::fs::read_dir(dir.join("sessions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].clone()
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// A character device with /dev/null's numbers at `path`.
fn char_device(path: &Path) {
    // SAFETY: a valid NUL-terminated path; mknod only creates a file.
    let rc = unsafe {
        libc::mknod(
            c_path(path).as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(1, 3),
        )
    };
    assert_eq!(
        rc,
        0,
        "mknod {} failed ({}): these tests need root (CI runs as root)",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn fifo(path: &Path) {
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c_path(path).as_ptr(), 0o666) };
    assert_eq!(
        rc,
        0,
        "mkfifo {} failed: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn assert_char_device(path: &Path, after: &str) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert!(
        meta.file_type().is_char_device() && meta.rdev() == libc::makedev(1, 3),
        "after {after}, {} is no longer the character device",
        path.display()
    );
}

/// Reads a FIFO on a thread while `write` runs; returns what came through and checks it is
/// still a FIFO. The test holds the FIFO open for reading and writing meanwhile, so neither the
/// reader's open nor the writer's waits, and the reader ends (at the last writer's close) even
/// when the binary replaced the FIFO instead of writing to it.
fn through_fifo(path: &Path, write: impl FnOnce()) -> String {
    let keep = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let reader = {
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let mut file = std::fs::File::open(path).unwrap();
            opened_tx.send(()).unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
            bytes
        })
    };
    opened_rx.recv().unwrap();
    write();
    drop(keep);
    let bytes = reader.join().unwrap();
    assert!(
        std::fs::symlink_metadata(path)
            .unwrap()
            .file_type()
            .is_fifo(),
        "{} is no longer a FIFO",
        path.display()
    );
    String::from_utf8(bytes).unwrap()
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

#[test]
fn outputs_to_a_character_device_leave_it_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let dev = dir.join("null");
    char_device(&dev);
    let dev_s = dev.to_str().unwrap();
    ok_in(dir, &tiny_run(&["--report", dev_s]));
    assert_char_device(&dev, "run --report");
    let id = only_session(dir);
    ok_in(dir, &["export", &id, "--out", dev_s]);
    assert_char_device(&dev, "export --out");
    ok_in(dir, &["export", &id, "--format", "csv", "--out", dev_s]);
    assert_char_device(&dev, "export --format csv --out");
    ok_in(dir, &["export", &id, "--format", "json", "--out", dev_s]);
    assert_char_device(&dev, "export --format json --out");
    let bundle = dir.join("bundle");
    ok_in(
        dir,
        &["export", &id, "--bundle", "--out", bundle.to_str().unwrap()],
    );
    let b = bundle.to_str().unwrap();
    ok_in(
        dir,
        &["predict", "--bundle", b, "--day", "8", "--out", dev_s],
    );
    assert_char_device(&dev, "predict --out");
    // A folder output is refused, not written through the device.
    let out = run_in(dir, &["export", &id, "--bundle", "--out", dev_s], LIMIT);
    assert!(!out.ok, "export --bundle --out DEVICE was accepted");
    assert_char_device(&dev, "export --bundle --out");
}

#[test]
fn outputs_to_a_fifo_go_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pipe = dir.join("pipe");
    fifo(&pipe);
    let p = pipe.to_str().unwrap();
    let report = through_fifo(&pipe, || {
        ok_in(dir, &tiny_run(&["--report", p]));
    });
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(json.get("schema_version").is_some(), "{report}");
    let id = only_session(dir);
    for format in ["csv", "json"] {
        let text = through_fifo(&pipe, || {
            ok_in(dir, &["export", &id, "--format", format, "--out", p]);
        });
        let expected = ok_in(dir, &["export", &id, "--format", format]).stdout;
        assert_eq!(text, expected, "export --format {format} through the FIFO");
    }
    let bundle = dir.join("bundle");
    let b = bundle.to_str().unwrap();
    ok_in(dir, &["export", &id, "--bundle", "--out", b]);
    let predictions = through_fifo(&pipe, || {
        ok_in(dir, &["predict", "--bundle", b, "--day", "8", "--out", p]);
    });
    assert!(
        predictions.starts_with("row,label,logit,prob\n"),
        "{predictions}"
    );
}

#[test]
fn a_dash_is_standard_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The report alone on stdout (the tables go to stderr), and no file named `-`.
    let run = ok_in(dir, &tiny_run(&["--report", "-"]));
    let json: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not the JSON report alone ({e}): {}", run.stdout));
    assert!(json.get("schema_version").is_some());
    assert!(run.stderr.contains("arms: "), "{}", run.stderr);
    let id = only_session(dir);
    let default = ok_in(dir, &["export", &id]).stdout;
    assert_eq!(ok_in(dir, &["export", &id, "--out", "-"]).stdout, default);
    let b = dir.join("bundle");
    let b = b.to_str().unwrap();
    ok_in(dir, &["export", &id, "--bundle", "--out", b]);
    let predicted = ok_in(dir, &["predict", "--bundle", b, "--day", "8", "--out", "-"]);
    assert!(predicted.stdout.starts_with("row,label,logit,prob\n"));
    assert!(!dir.join("-").exists(), "a file named - was written");
}

#[test]
fn endless_config_and_schema_files_are_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let err = refused_at_once(
        dir,
        &["run", "--headless", "--config", "/dev/zero"],
        "/dev/zero",
    );
    assert!(err.contains("MiB"), "the limit is not named: {err}");
    let table = sample("sample-synthetic");
    let err = refused_at_once(
        dir,
        &[
            "data",
            "inspect",
            table.to_str().unwrap(),
            "--schema",
            "/dev/zero",
        ],
        "/dev/zero",
    );
    assert!(err.contains("MiB"), "the limit is not named: {err}");
}

#[test]
fn fifos_and_devices_as_data_are_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let schema = sample("sample-synthetic/schema.toml");
    let schema = schema.to_str().unwrap();
    let pipe = dir.join("days.parquet");
    fifo(&pipe);
    let p = pipe.to_str().unwrap();
    refused_at_once(
        dir,
        &["data", "inspect", p, "--schema", schema],
        "is a FIFO, not a regular file",
    );
    let pipe_csv = dir.join("days.csv");
    fifo(&pipe_csv);
    // Without --schema the header of a `.csv` is read to tell Avazu: not from a FIFO.
    refused_at_once(
        dir,
        &["data", "inspect", pipe_csv.to_str().unwrap()],
        "is a FIFO, not a regular file",
    );
    let data_path = format!("data.path={p}");
    let data_schema = format!("data.schema={schema}");
    let run_on = |path_set: &str| {
        vec![
            "run".to_string(),
            "--headless".into(),
            "--set".into(),
            "data.source=table".into(),
            "--set".into(),
            path_set.to_string(),
            "--set".into(),
            data_schema.clone(),
        ]
    };
    let args = run_on(&data_path);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused_at_once(dir, &args, "is a FIFO, not a regular file");
    let dev = dir.join("zero");
    char_device(&dev);
    let args = run_on(&format!("data.path={}", dev.display()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused_at_once(dir, &args, "is a character device, not a regular file");
    // A FIFO among the files of a data folder, with and without the day cache.
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(
        sample("sample-synthetic/day-000.parquet"),
        folder.join("day-000.parquet"),
    )
    .unwrap();
    fifo(&folder.join("day-001.parquet"));
    let f = folder.to_str().unwrap();
    refused_at_once(
        dir,
        &["data", "inspect", f, "--schema", schema],
        "day-001.parquet is a FIFO, not a regular file",
    );
    let no_cache = Command::new(BIN)
        .env("CROSSADAPT_CACHE_DIR", "off")
        .args(["data", "inspect", f, "--schema", schema])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let out = no_cache.wait_with_output().unwrap();
    assert!(started.elapsed() < AT_ONCE);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("day-001.parquet is a FIFO"),
        "{err}"
    );
}

#[test]
fn a_damaged_parquet_file_in_a_folder_is_named_without_its_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let folder = dir.join("days");
    std::fs::create_dir(&folder).unwrap();
    for f in ["day-000.parquet", "day-001.parquet", "day-002.parquet"] {
        std::fs::copy(sample(&format!("sample-synthetic/{f}")), folder.join(f)).unwrap();
    }
    // The footer's magic replaced by bytes that are not text: an escape, invalid UTF-8.
    let damaged = folder.join("day-001.parquet");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&[0xff, 0xfe, 0x1b, b';']);
    std::fs::write(&damaged, bytes).unwrap();
    let schema = sample("sample-synthetic/schema.toml");
    let args = [
        "data",
        "inspect",
        folder.to_str().unwrap(),
        "--schema",
        schema.to_str().unwrap(),
    ];
    let out = run_in(dir, &args, LIMIT);
    assert!(!out.ok, "the damaged folder was read");
    let err = out.stderr;
    assert!(
        err.contains(&damaged.display().to_string()),
        "the damaged file is not named: {err}"
    );
    assert!(
        !err.contains('\x1b') && !err.contains('\u{fffd}'),
        "raw bytes printed: {err:?}"
    );
}

#[test]
fn hostile_session_names_are_refused_and_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let err = refused_at_once(dir, &tiny_run(&["--name", HOSTILE]), "--name");
    assert!(
        !err.contains('\x1b'),
        "the escape code reached stderr: {err:?}"
    );
    assert!(err.contains("\\e[2J"), "{err}");
    assert!(
        std::fs::read_dir(dir.join("sessions")).map_or(true, |mut d| d.next().is_none()),
        "a session was created"
    );
    // Old sessions, or another user's on a shared root, may hold such a name already.
    ok_in(dir, &tiny_run(&["--name", "plain"]));
    let id = only_session(dir);
    let session = dir.join("sessions").join(&id);
    let escaped = serde_json::to_string(HOSTILE).unwrap();
    for file in ["session.json", "events.jsonl"] {
        let path = session.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"plain\""), "{file} does not hold the name");
        std::fs::write(&path, text.replace("\"plain\"", &escaped)).unwrap();
    }
    let list = ok_in(dir, &["list"]).stdout;
    assert!(
        !list.contains('\x1b'),
        "list printed the escape code: {list:?}"
    );
    assert!(list.contains("\\e[2J\\e[31mEVIL\\nx"), "{list}");
    assert_eq!(list.lines().count(), 2, "the table is broken: {list}");
    for args in [
        vec!["replay", id.as_str(), "--headless", "--speed", "1e6"],
        vec!["compare", id.as_str(), "--headless"],
        // The console's dashboard, header included, as text.
        vec!["replay", id.as_str(), "--capture", "100x30"],
    ] {
        let out = ok_in(dir, &args);
        assert!(
            !out.stdout.contains('\x1b') && !out.stderr.contains('\x1b'),
            "{args:?} printed the escape code: {:?}",
            out.stdout
        );
    }
}
