//! The one fold: a live run and its replayed log give the same ledger; a session whose
//! evaluation days hold one class (undefined AUC, infinite bias, NaN NE) is written, read back,
//! replayed, exported and resumed like any other.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use crossadapt::engine::{Engine, EngineIo, Outcome, SessionConfig};
use crossadapt::protocol::{EngineEvent, EventSink, Ledger, Record};
use crossadapt::session::{read_log, Session, Store};

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");

/// The session log as an engine sink.
struct LogSink(Arc<Mutex<Session>>);

impl EventSink for LogSink {
    fn emit(&mut self, record: &Record) -> anyhow::Result<()> {
        self.0.lock().unwrap().log().emit(record)
    }
}

#[test]
fn a_live_run_and_its_replayed_log_fold_into_the_same_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(Some(tmp.path().to_path_buf())).unwrap();
    let cfg = SessionConfig::tiny(&[]).unwrap();
    let session = store
        .create("ledger", &cfg.to_toml().unwrap(), None)
        .unwrap();
    let dir = session.dir().to_path_buf();
    let live: Arc<Mutex<Vec<Record>>> = Arc::default();
    let io = EngineIo {
        sinks: vec![
            Box::new(live.clone()),
            Box::new(LogSink(Arc::new(Mutex::new(session)))),
        ],
        commands: None,
        checkpoints: None,
    };
    let mut engine = Engine::new(cfg, "ledger", "ledger", io).unwrap();
    assert_eq!(engine.run().unwrap(), Outcome::Finished);
    let live = Ledger::of(&live.lock().unwrap());
    let replayed = Ledger::of(&read_log(&dir.join("events.jsonl")).unwrap());
    // serde_json (without its costly `float_roundtrip` feature) reads a float back to within
    // one unit in the last place, so the live ledger is compared as written: the fold copies
    // floats and computes nothing, so any other difference is a difference of the fold.
    let live_as_written: Ledger =
        serde_json::from_str(&serde_json::to_string(&live).unwrap()).unwrap();
    assert_eq!(live_as_written, replayed);
    assert_eq!(live.records, replayed.records);
    // And the fold saw the whole run.
    assert_eq!(live.arms.len(), 6);
    assert!(live
        .arms
        .iter()
        .all(|a| a.days.len() == 5 && a.offline.is_some()));
    assert_eq!(live.drift.len(), 5);
    // The time ratio is there, or (tiny offline stages take hundredths of a CPU second) the
    // verdict says it was too short to time.
    let v = live.verdict(None);
    let ca = v.arms.iter().find(|a| a.arm == "crossadapt").unwrap();
    assert!(
        v.headline.time_fraction_vs_scratch.is_some()
            || ca.too_short_to_time.iter().any(|n| n == "time_vs_scratch"),
        "{ca:?}"
    );
}

const SCHEMA: &str = r#"
label = "rating"
positive = "rating >= 4"
time = "ts"
time_unit = "date"
categorical = ["user", "movie"]
numeric = ["age"]
user = "user"
"#;

/// Eight days of ratings; the three online days (5-7) hold no positive at all.
fn one_class_table(dir: &Path) -> (String, String) {
    let mut csv = String::from("user,movie,rating,ts,age\n");
    let mut state: u64 = 12345;
    let mut next = |m: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    for day in 0..8u32 {
        for _ in 0..300 {
            let user = next(40);
            let movie = next(15);
            let liked = (user + movie) % 3 == 0 || next(5) == 0;
            let rating = if day < 5 && liked {
                4 + next(2)
            } else {
                1 + next(3)
            };
            csv.push_str(&format!(
                "u{user},m{movie},{rating},2024-03-{:02},{}\n",
                day + 1,
                20 + user
            ));
        }
    }
    let data = dir.join("ratings.csv");
    let schema = dir.join("schema.toml");
    std::fs::write(&data, csv).unwrap();
    std::fs::write(&schema, SCHEMA).unwrap();
    (
        data.to_str().unwrap().to_string(),
        schema.to_str().unwrap().to_string(),
    )
}

fn crossadapt(store: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .arg("--sessions-dir")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "crossadapt {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Per-day metrics as their JSON text (NaN is not equal to itself; its text is).
fn day_lines(dir: &Path) -> Vec<(String, u32, String)> {
    let mut out: Vec<_> = read_log(&dir.join("events.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.event {
            EngineEvent::DayMetrics {
                arm, day, metrics, ..
            } => Some((arm, day, serde_json::to_string(&metrics).unwrap())),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn a_session_with_one_class_evaluation_days_replays_exports_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, schema) = one_class_table(tmp.path());
    let store = tmp.path().join("sessions");
    let config = tmp.path().join("one-class.toml");
    std::fs::write(
        &config,
        format!(
            "arms = [\"incumbent\", \"kd\", \"crossadapt\"]\nbatch_size = 100\n\
             [data]\nsource = \"table\"\npath = {data:?}\nschema = {schema:?}\n\
             [split]\nhistory = 2\nretained = 3\nonline = 3\n\
             [teacher]\nmodel = \"mlp:emb=4,hidden=16\"\n\
             [student]\nmodel = \"dcnv2:emb=8,hidden=16,cross=1\"\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    crossadapt(&store, &["run", "--headless", "--config", config]);
    let dir = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("session.json").exists())
        .unwrap();
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();

    // The log reads back; every evaluation day is explicit about what it cannot define.
    let days = day_lines(&dir);
    assert_eq!(days.len(), 9, "3 arms x 3 online days");
    let ledger = Ledger::of(&read_log(&dir.join("events.jsonl")).unwrap());
    for a in &ledger.arms {
        let offline = &a.offline.as_ref().unwrap().metrics;
        assert_eq!(offline.auc, None, "{}", a.name);
        for d in a.days.values() {
            assert_eq!(d.metrics.auc, None);
            assert!(d.metrics.ne.is_nan());
            assert_eq!(d.metrics.bias, f64::INFINITY);
            assert!(d.metrics.logloss.is_finite());
        }
    }
    let log = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert!(log.contains("\"bias\":\"inf\"") && log.contains("\"ne\":\"NaN\""));

    // Replay and list show a dash, not a crash.
    let out = crossadapt(&store, &["replay", &id, "--headless", "--speed", "1000000"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("summary") && text.contains('–'), "{text}");
    crossadapt(&store, &["list"]);

    // Export: JSON keeps the non-finite values as tags; CSV writes them as Rust prints them.
    let out = crossadapt(&store, &["export", &id, "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["days"].as_array().unwrap();
    assert_eq!(rows.len(), 9);
    assert!(rows
        .iter()
        .all(|r| r["auc"].is_null() && r["bias"] == "inf" && r["ne"] == "NaN"));
    let out = crossadapt(&store, &["export", &id, "--format", "csv"]);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(csv.lines().count(), 10);
    assert!(csv.lines().nth(1).unwrap().contains(",inf,NaN,"), "{csv}");

    // Resume: cut the run back to before its last day (as a crash would leave it) and resume
    // from the day checkpoint; the days come out the same.
    let records = read_log(&dir.join("events.jsonl")).unwrap();
    let last_day_start = records
        .iter()
        .rposition(|r| {
            matches!(
                &r.event,
                EngineEvent::StageStarted {
                    day: Some(7),
                    arm: None,
                    ..
                }
            )
        })
        .unwrap();
    let kept: Vec<&str> = log.lines().take(last_day_start + 3).collect();
    std::fs::write(dir.join("events.jsonl"), kept.join("\n") + "\n").unwrap();
    std::fs::remove_dir_all(dir.join("checkpoints").join("done")).unwrap();
    let status = std::fs::read_to_string(dir.join("status.json"))
        .unwrap()
        .replace("\"done\"", "\"interrupted\"");
    std::fs::write(dir.join("status.json"), status).unwrap();
    let out = crossadapt(&store, &["resume", &id, "--headless"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("from checkpoint day-"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(day_lines(&dir), days);
    let resumed = read_log(&dir.join("events.jsonl")).unwrap();
    assert!(matches!(
        resumed.last().map(|r| &r.event),
        Some(EngineEvent::Finished { .. })
    ));
}
