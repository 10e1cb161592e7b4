//! The engine runs with the default split (a quarter of the days history, a quarter retained,
//! half online) on every kind of source: a CSV with a time column, an untimed CSV, the Criteo
//! and Avazu samples in `data/`, a Hive-partitioned Parquet folder and a `.csv.gz`; a source too
//! short for the split, or with one-class training labels, fails before any session exists.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use crossadapt::engine::events::{DayPlan, EngineEvent};
use crossadapt::engine::{
    Engine, EngineIo, Outcome, Prepared, Record, SavedCheckpoint, SessionConfig,
};
use crossadapt::protocol::GateCluster;

fn repo(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(p)
        .display()
        .to_string()
}

/// Small models and two arms, so each run takes well under a second; the split is the default.
fn config(data: &[String]) -> SessionConfig {
    let mut sets: Vec<String> = [
        "batch_size=32",
        "teacher.model=mlp:emb=4,hidden=8",
        "student.model=dcnv2:emb=4,hidden=8,cross=1",
        "arms=[\"incumbent\", \"crossadapt\"]",
        "online.teacher_interval=2",
        "min_count=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sets.extend(data.iter().cloned());
    SessionConfig::load(None, &sets).expect("config is valid")
}

/// Runs the engine to the end; returns the plan and every record.
fn run(cfg: SessionConfig) -> (DayPlan, Vec<Record>) {
    let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Record>::new()));
    let io = EngineIo {
        sinks: vec![Box::new(sink.clone())],
        commands: None,
        checkpoints: None,
    };
    let mut engine = Engine::new(cfg, "test", "source", io).expect("engine starts");
    let plan = engine.plan().clone();
    assert_eq!(engine.run().expect("run completes"), Outcome::Finished);
    let records = sink.lock().expect("sink").clone();
    (plan, records)
}

/// Checks a finished run: the default split of `days`, and for both arms one offline
/// evaluation and one set of metrics per online day, covering every online row.
fn check(what: &str, days: usize, (plan, records): (DayPlan, Vec<Record>)) {
    let lens = (plan.history.len(), plan.retained.len(), plan.online.len());
    let h = (days as f64 * 0.25).round() as usize;
    let r = (days as f64 * 0.5).round() as usize - h;
    assert_eq!(lens, (h, r, days - h - r), "{what}: split of {days} days");
    for arm in ["incumbent", "crossadapt"] {
        let offline = records
            .iter()
            .any(|rec| matches!(&rec.event, EngineEvent::OfflineResult { arm: a, .. } if a == arm));
        assert!(offline, "{what}: no offline metrics for {arm}");
        let online: Vec<u32> = records
            .iter()
            .filter_map(|rec| match &rec.event {
                EngineEvent::DayMetrics {
                    arm: a,
                    day,
                    metrics,
                    ..
                } if a == arm => {
                    assert!(metrics.rows > 0 && metrics.logloss.is_finite(), "{what}");
                    Some(*day)
                }
                _ => None,
            })
            .collect();
        assert_eq!(online, plan.online, "{what}: online days of {arm}");
    }
}

/// A click log of `days` days x `rows` rows whose label follows the item (so the models have
/// something to learn) and whose every day holds both classes. Columns:
/// `user,item,genre,clicked,ts` with `ts` in seconds (2024-03-01 00:00 UTC onwards, spread
/// over each day).
fn click_log(
    days: usize,
    rows: usize,
    step_seconds: i64,
) -> Vec<(String, String, String, u8, i64)> {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::new();
    for d in 0..days {
        for r in 0..rows {
            let item = next() % 30;
            let user = next() % 20;
            let clicked = if r % 9 == 0 {
                1
            } else if r % 9 == 1 {
                0
            } else {
                u8::from(next() % 30 < item)
            };
            let ts = 1_709_251_200 + (d * rows + r) as i64 * step_seconds;
            out.push((
                format!("u{user}"),
                format!("i{item}"),
                format!("g{}", item % 4),
                clicked,
                ts,
            ));
        }
    }
    out
}

fn csv_text(log: &[(String, String, String, u8, i64)], with_time: bool) -> String {
    let mut text = String::from(if with_time {
        "user,item,genre,clicked,ts\n"
    } else {
        "user,item,genre,clicked\n"
    });
    for (u, i, g, c, t) in log {
        text += &if with_time {
            format!("{u},{i},{g},{c},{t}\n")
        } else {
            format!("{u},{i},{g},{c}\n")
        };
    }
    text
}

/// `bytes` as a gzip file with uncompressed ("stored") deflate blocks: a valid gzip that any
/// reader inflates, written without a compression crate.
fn gzip_stored(bytes: &[u8]) -> Vec<u8> {
    let mut crc_table = [0u32; 256];
    for (i, entry) in crc_table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *entry = c;
    }
    let crc = !bytes.iter().fold(!0u32, |c, &b| {
        crc_table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8)
    });
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let chunks: Vec<&[u8]> = bytes.chunks(65_535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = chunk.len() as u16;
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend(crc.to_le_bytes());
    out.extend((bytes.len() as u32).to_le_bytes());
    out
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

const TIMED_SCHEMA: &str = "label = \"clicked\"\ntime = \"ts\"\ntime_unit = \"seconds\"\n\
    categorical = [\"user\", \"item\", \"genre\"]\nuser = \"user\"\n";

fn table(path: &Path, schema: &Path) -> Vec<String> {
    vec![
        "data.source=table".into(),
        format!("data.path=\"{}\"", path.display()),
        format!("data.schema=\"{}\"", schema.display()),
    ]
}

#[test]
fn timed_csv_runs_with_the_default_split_and_a_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 8 days of 96 rows, 15 minutes apart: 8 calendar days, or 32 periods of 6 hours.
    let log = click_log(8, 96, 900);
    let path = write(dir.path(), "clicks.csv", &csv_text(&log, true));
    let schema = write(dir.path(), "schema.toml", TIMED_SCHEMA);
    check("timed csv", 8, run(config(&table(&path, &schema))));
    let mut sets = table(&path, &schema);
    sets.push("data.period=\"12h\"".into());
    check("timed csv, 12h", 16, run(config(&sets)));
}

#[test]
fn untimed_csv_and_csv_gz_run_with_the_default_split() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = csv_text(&click_log(6, 80, 60), false);
    let path = write(dir.path(), "clicks.csv", &text);
    let schema = write(
        dir.path(),
        "schema.toml",
        "label = \"clicked\"\ndays = 6\ncategorical = [\"user\", \"item\", \"genre\"]\n",
    );
    let (plan, records) = run(config(&table(&path, &schema)));
    // The same rows gzip-compressed give the very same run.
    let gz = dir.path().join("clicks.csv.gz");
    std::fs::write(&gz, gzip_stored(text.as_bytes())).expect("write gz");
    let (plan_gz, records_gz) = run(config(&table(&gz, &schema)));
    assert_eq!(plan_gz, plan);
    let metrics = |recs: &[Record]| -> Vec<String> {
        recs.iter()
            .filter_map(|r| match &r.event {
                EngineEvent::DayMetrics {
                    arm, day, metrics, ..
                } => Some(format!("{arm} {day} {metrics:?}")),
                _ => None,
            })
            .collect()
    };
    assert_eq!(metrics(&records_gz), metrics(&records), ".csv.gz vs .csv");
    // No user field: the gate's intervals count rows (`gate.cluster` auto), and asking for
    // users fails before any session exists.
    let units: Vec<GateCluster> = records
        .iter()
        .filter_map(|r| match &r.event {
            EngineEvent::Gate { rule, .. } => Some(rule.cluster),
            _ => None,
        })
        .collect();
    assert!(!units.is_empty() && units.iter().all(|&u| u == GateCluster::Rows));
    let mut sets = table(&path, &schema);
    sets.push("gate.cluster=users".into());
    let e = Prepared::new(&config(&sets))
        .err()
        .map(|e| format!("{e:#}"))
        .expect("no user field to cluster by");
    assert!(
        e.contains("gate.cluster") && e.contains("user field") && e.contains("clicks.csv"),
        "{e}"
    );
    check("untimed csv", 6, (plan, records));
    // More row blocks through `data.days`.
    let mut sets = table(&path, &schema);
    sets.push("data.days=12".into());
    check("untimed csv, 12 days", 12, run(config(&sets)));
}

#[test]
fn shipped_criteo_and_avazu_samples_run_with_the_default_split() {
    let criteo = vec![
        "data.source=criteo".to_string(),
        format!("data.path=\"{}\"", repo("data/sample-criteo.txt")),
    ];
    check("criteo sample", 7, run(config(&criteo)));
    let avazu = vec![
        "data.source=avazu".to_string(),
        format!("data.path=\"{}\"", repo("data/sample-avazu.csv")),
    ];
    check("avazu sample", 10, run(config(&avazu)));
}

#[test]
fn hive_partitioned_parquet_folder_runs_with_the_default_split() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("clicks");
    let log = click_log(5, 60, 1_440);
    // One folder per day, `dt=2024-03-0N`, each with two part files.
    for (d, day) in log.chunks(60).enumerate() {
        let folder = root.join(format!("dt=2024-03-{:02}", d + 1));
        std::fs::create_dir_all(&folder).expect("mkdir");
        for (p, part) in day.chunks(30).enumerate() {
            let mut df = df!(
                "user" => part.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
                "item" => part.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
                "genre" => part.iter().map(|r| r.2.clone()).collect::<Vec<_>>(),
                "clicked" => part.iter().map(|r| r.3 as i64).collect::<Vec<_>>(),
            )
            .expect("frame");
            let file =
                std::fs::File::create(folder.join(format!("part-{p}.parquet"))).expect("create");
            ParquetWriter::new(file).finish(&mut df).expect("parquet");
        }
    }
    std::fs::write(root.join("_SUCCESS"), "").expect("marker");
    let schema = write(
        dir.path(),
        "schema.toml",
        "label = \"clicked\"\ntime = \"dt\"\ntime_unit = \"date\"\n\
         categorical = [\"user\", \"item\", \"genre\"]\n",
    );
    check("hive parquet", 5, run(config(&table(&root, &schema))));
}

#[test]
fn a_source_too_short_or_one_class_fails_before_any_session_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = write(dir.path(), "schema.toml", TIMED_SCHEMA);
    let short = write(
        dir.path(),
        "short.csv",
        &csv_text(&click_log(2, 40, 2_160), true),
    );
    let e = Prepared::new(&config(&table(&short, &schema)))
        .err()
        .map(|e| format!("{e:#}"))
        .expect("2 days cannot be split");
    assert!(
        e.contains("short.csv") && e.contains("2 day(s), too few"),
        "{e}"
    );

    let mut none_positive = click_log(8, 40, 2_160);
    for row in &mut none_positive {
        row.3 = 0;
    }
    let flat = write(dir.path(), "flat.csv", &csv_text(&none_positive, true));
    let e = Prepared::new(&config(&table(&flat, &schema)))
        .err()
        .map(|e| format!("{e:#}"))
        .expect("no positive label");
    assert!(
        e.contains("flat.csv")
            && e.contains("`> 0`")
            && e.contains("none")
            && e.contains("training days 0-3"),
        "{e}"
    );

    // Through the CLI: a non-zero exit, one sentence, and no session folder.
    let store = dir.path().join("sessions");
    let out = Command::cargo_bin("crossadapt")
        .expect("binary")
        .arg("--sessions-dir")
        .arg(&store)
        .args(["run", "--headless"])
        .args(
            table(&short, &schema)
                .iter()
                .flat_map(|s| ["--set", s.as_str()]),
        )
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("too few") && !err.contains("panicked"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&store)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a failed start left {left:?}");
}

/// Checkpoints into plain folders, remembering the labels.
#[derive(Clone, Default)]
struct Labels(std::sync::Arc<std::sync::Mutex<Vec<String>>>, PathBuf);

impl crossadapt::engine::CheckpointStore for Labels {
    fn save(
        &mut self,
        label: &str,
        _seq: u64,
        write: &mut dyn FnMut(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<SavedCheckpoint> {
        let dir = self.1.join(label);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        write(&dir)?;
        self.0.lock().expect("labels").push(label.to_string());
        Ok(SavedCheckpoint {
            shown: dir.display().to_string(),
            dir,
        })
    }
}

#[test]
fn short_days_share_a_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = click_log(8, 96, 900);
    let path = write(dir.path(), "clicks.csv", &csv_text(&log, true));
    let schema = write(dir.path(), "schema.toml", TIMED_SCHEMA);
    let labels = |min_rows: &str| {
        let mut sets = table(&path, &schema);
        sets.push(format!("checkpoint_min_rows={min_rows}"));
        let store = Labels(
            Default::default(),
            dir.path().join(format!("ck-{min_rows}")),
        );
        let io = EngineIo {
            sinks: vec![],
            commands: None,
            checkpoints: Some(Box::new(store.clone())),
        };
        let mut engine = Engine::new(config(&sets), "test", "ck", io).expect("engine starts");
        assert_eq!(engine.run().expect("run"), Outcome::Finished);
        let out = store.0.lock().expect("labels").clone();
        out
    };
    // Online days 4-7 of 96 rows: with 200 rows a checkpoint, the one after day 6 (288 rows
    // since the offline stage's) and the last; with 0, every day.
    assert_eq!(labels("200"), ["teacher", "day-0004", "day-0007", "done"]);
    assert_eq!(
        labels("0"),
        ["teacher", "day-0004", "day-0005", "day-0006", "day-0007", "done"]
    );
}
