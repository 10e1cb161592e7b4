//! Teacher bundles end to end, through the binary: `train --bundle` -> a run with no history
//! whose teacher predicts bit for bit what the bundle predicts; bundles of another schema,
//! damaged bundles and teacher checkpoints of another vocabulary refused with one sentence.

mod bundle_common;

use std::path::{Path, PathBuf};

use bundle_common::{crossadapt, ok};
use crossadapt::engine::config::TINY_SETS;

const TEACHER: &str = "mlp:emb=4,hidden=16";

/// The one-sentence error of a failing command (checked: non-zero exit, no panic).
fn fails(store: &Path, args: &[&str]) -> String {
    let out = crossadapt(store, args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// A teacher bundle trained by `crossadapt train` on days 0..5 of the tiny stream.
fn train_bundle(dir: &Path, extra: &[&str]) -> PathBuf {
    let b = dir.join("teacher-b");
    let mut args = vec![
        "train",
        "--model",
        TEACHER,
        "--days",
        "0..5",
        "--eval-day",
        "5",
        "--batch",
        "100",
        "--set",
        "data.preset=tiny",
        "--bundle",
        b.to_str().unwrap(),
    ];
    args.extend(extra);
    ok(dir, &args);
    b
}

fn predict(store: &Path, bundle: &Path, day: u32) -> String {
    let out = ok(
        store,
        &[
            "predict",
            "--bundle",
            bundle.to_str().unwrap(),
            "--day",
            &day.to_string(),
        ],
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sets(extra: &[String]) -> Vec<String> {
    TINY_SETS
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().cloned())
        .flat_map(|s| ["--set".to_string(), s])
        .collect()
}

fn session_id(store: &Path) -> String {
    let mut ids: Vec<String> = std::fs::read_dir(store)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("session.json").exists())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.pop().unwrap()
}

#[test]
fn a_run_with_a_teacher_bundle_and_no_history_keeps_the_teacher_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let b = train_bundle(tmp.path(), &[]);
    let before = predict(tmp.path(), &b, 6);
    assert!(before.starts_with("row,label,logit,prob\n"), "{before}");
    assert_eq!(before.lines().count(), 1 + 1000);

    let store = tmp.path().join("store");
    let teacher = format!("teacher.bundle={}", b.display());
    let extra = [
        teacher,
        "split.history=0".into(),
        "split.retained=3".into(),
        "split.online=2".into(),
        // The bundle's model is the teacher whatever teacher.model says.
        "teacher.model=lr".into(),
        r#"arms=["incumbent","crossadapt"]"#.into(),
    ];
    let mut args = vec!["run".to_string(), "--headless".to_string()];
    args.extend(sets(&extra));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&store, &args);
    let id = session_id(&store);
    let log = std::fs::read_to_string(store.join(&id).join("events.jsonl")).unwrap();
    assert!(log.contains(&format!("\"teacher\":\"{TEACHER}\"")), "{log}");

    // The session's teacher, exported back, predicts exactly what the bundle did.
    let back = tmp.path().join("back");
    ok(
        &store,
        &[
            "export",
            &id,
            "--bundle",
            "--arm",
            "teacher",
            "--out",
            back.to_str().unwrap(),
        ],
    );
    assert_eq!(predict(tmp.path(), &back, 6), before);
    // Its record is the bundle's: what it was trained on, on which data, its OOV shares.
    let (m0, m1) = (
        crossadapt::bundle::Bundle::open(&b).unwrap().manifest,
        crossadapt::bundle::Bundle::open(&back).unwrap().manifest,
    );
    assert!(m0.provenance.trained_on.is_some());
    assert_eq!(m1.provenance.trained_on, m0.provenance.trained_on);
    assert_eq!(m1.provenance.data, m0.provenance.data);
    assert_eq!(m1.vocabulary.categorical, m0.vocabulary.categorical);
    assert_eq!(m1.vocabulary.numeric, m0.vocabulary.numeric);
    // Same weights and vocabulary files, byte for byte.
    for f in ["model.safetensors", "vocab.safetensors"] {
        assert_eq!(
            std::fs::read(b.join(f)).unwrap(),
            std::fs::read(back.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn bundles_of_another_schema_or_damaged_are_refused_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // A bundle of the tiny stream without its `activity` numeric field.
    let b = train_bundle(t, &["--set", r#"data.numeric_fields=["position","price"]"#]);
    let store = t.join("store");
    let run = |extra: &[String]| {
        let mut args = vec!["run".to_string(), "--headless".to_string()];
        args.extend(sets(extra));
        args
    };
    let base = |b: &Path| {
        vec![
            format!("teacher.bundle={}", b.display()),
            "split.history=0".into(),
        ]
    };
    let args = run(&base(&b));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = fails(&store, &args);
    assert!(
        e.contains("was made for another data schema") && e.contains("activity"),
        "{e}"
    );

    // Damage: one flipped byte in the weights, a truncated vocabulary, a garbled manifest.
    let good = train_bundle(&t.join("g"), &[]);
    let copy = |name: &str| {
        let d = t.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["bundle.json", "model.safetensors", "vocab.safetensors"] {
            std::fs::copy(good.join(f), d.join(f)).unwrap();
        }
        d
    };
    let flipped = copy("flipped");
    let mut w = std::fs::read(flipped.join("model.safetensors")).unwrap();
    let n = w.len();
    w[n - 3] ^= 0x40;
    std::fs::write(flipped.join("model.safetensors"), w).unwrap();
    let truncated = copy("truncated");
    let v = std::fs::read(truncated.join("vocab.safetensors")).unwrap();
    std::fs::write(truncated.join("vocab.safetensors"), &v[..v.len() / 2]).unwrap();
    let garbled = copy("garbled");
    std::fs::write(
        garbled.join("bundle.json"),
        b"{\"format\": \"crossadapt-bun",
    )
    .unwrap();
    let missing = t.join("no-such-bundle");
    for (dir, needle) in [
        (&flipped, "model.safetensors is damaged"),
        (&truncated, "vocab.safetensors is damaged"),
        (&garbled, "bundle.json is damaged or not a bundle"),
        (&missing, "no-such-bundle is not a folder"),
    ] {
        let args = run(&base(dir));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = fails(&store, &args);
        assert!(e.contains(needle), "{needle}: {e}");
        let e = fails(
            &store,
            &["predict", "--bundle", dir.to_str().unwrap(), "--day", "1"],
        );
        assert!(e.contains(needle), "{needle}: {e}");
    }
}

#[test]
fn a_teacher_checkpoint_of_another_vocabulary_is_refused_even_with_equal_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let ckpt = t.join("teacher.safetensors");
    // Trained on the session's own teacher days (0..5 = history 2 + retained 3).
    ok(
        t,
        &[
            "train",
            "--model",
            TEACHER,
            "--days",
            "0..5",
            "--eval-day",
            "5",
            "--batch",
            "100",
            "--set",
            "data.preset=tiny",
            "--save",
            ckpt.to_str().unwrap(),
        ],
    );
    let store = t.join("store");
    let run = |extra: &str| {
        let mut args = vec!["run".to_string(), "--headless".to_string()];
        args.extend(sets(&[
            format!("teacher.checkpoint={}", ckpt.display()),
            format!("teacher.model={TEACHER}"),
            r#"arms=["incumbent"]"#.to_string(),
            "split.online=1".to_string(),
            extra.to_string(),
        ]));
        args
    };
    // Its own vocabulary: accepted.
    let args = run("seed=7");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&store, &args);
    // Another min_count: other sizes.
    let args = run("min_count=1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = fails(&store, &args);
    assert!(e.contains("another vocabulary"), "{e}");
    // Same sizes, another id -> row map (the recorded fingerprint differs).
    let cfg = crossadapt::train::TrainConfig::default();
    let mut tr = crossadapt::train::Trainer::load(&ckpt, &cfg).unwrap();
    assert!(tr.vocabulary().is_some());
    tr.set_vocabulary(Some("another-map".into()));
    tr.save(&ckpt).unwrap();
    let args = run("seed=7");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = fails(&store, &args);
    assert!(e.contains("another vocabulary (id -> row map)"), "{e}");
    // Written before the vocabulary was recorded: refused, pointing at bundles.
    tr.set_vocabulary(None);
    tr.save(&ckpt).unwrap();
    let e = fails(&store, &args);
    assert!(e.contains("does not record its vocabulary"), "{e}");
}

/// `predict` reads, scores and writes a day a chunk at a time: a day longer than one chunk
/// comes out whole, rows numbered in order across the chunk edge, to a file written only at
/// the end.
#[test]
fn predict_writes_a_day_longer_than_a_chunk_row_by_row() {
    use crossadapt::data::source::STREAM_ROWS;
    let tmp = tempfile::tempdir().unwrap();
    let b = train_bundle(tmp.path(), &[]);
    let rows = STREAM_ROWS + 10;
    let out = tmp.path().join("day6.csv");
    let done = ok(
        tmp.path(),
        &[
            "predict",
            "--bundle",
            b.to_str().unwrap(),
            "--day",
            "6",
            "--set",
            "data.preset=tiny",
            "--set",
            &format!("data.rows_per_day={rows}"),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(stderr.contains(&format!("rows={rows} ")), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("row,label,logit,prob"));
    let mut n = 0;
    for (i, line) in lines.enumerate() {
        let row = line.split(',').next().unwrap();
        assert_eq!(row, i.to_string(), "line {}: {line}", i + 2);
        n += 1;
    }
    assert_eq!(n, rows);
}

/// A 24-day click log with string ids (`u17`, `i3`): 150 rows a day, one row every 576 s.
fn string_log(dir: &Path) -> Vec<String> {
    let mut text = String::from("user,item,click,ts\n");
    let mut x: u64 = 7;
    for r in 0..24 * 150u64 {
        // A small LCG: the same log on every machine.
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (user, item) = ((x >> 33) % 40, (x >> 20) % 25);
        let click = u64::from((x >> 8) % 100 < 10 + 2 * item);
        let ts = 1_700_006_400 + r * 576;
        text.push_str(&format!("u{user},i{item},{click},{ts}\n"));
    }
    let csv = dir.join("log.csv");
    std::fs::write(&csv, text).unwrap();
    let schema = dir.join("log.toml");
    std::fs::write(
        &schema,
        "label = \"click\"\ntime = \"ts\"\ncategorical = [\"user\", \"item\"]\nuser = \"user\"\n",
    )
    .unwrap();
    vec![
        "data.source=table".into(),
        format!("data.path={}", csv.display()),
        format!("data.schema={}", schema.display()),
    ]
}

/// The string hash of docs/bundles.md before it said what the code does: FNV-1a-64 and the
/// SplitMix64 finaliser without its golden-gamma step.
fn wrong_key(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// A bundle written by a stack that hashed one string field otherwise has every key of that
/// field miss: the run stops before the session exists, naming the field and both shares,
/// unless told to go on. The bundle with the right keys runs, reading all 24 days with no
/// history (the shares of retained and online fill the days history does not take).
#[test]
fn a_bundle_hashing_one_field_otherwise_is_refused_naming_the_field() {
    use crossadapt::bundle::{self, Bundle, BundleContent, Weights};
    use crossadapt::data::source::string_key;
    use crossadapt::data::vocab::FieldVocab;
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = string_log(t);
    let good = t.join("good-b");
    let mut args: Vec<String> = [
        "train",
        "--model",
        TEACHER,
        "--days",
        "0..6",
        "--eval-day",
        "6",
        "--batch",
        "100",
        "--bundle",
        good.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in &data {
        args.extend(["--set".to_string(), s.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(t, &args);
    let b = Bundle::open(&good).unwrap();
    let recorded: Vec<f64> = b
        .manifest
        .vocabulary
        .categorical
        .iter()
        .map(|f| {
            f.train_oov_share
                .expect("train --bundle records the OOV shares")
        })
        .collect();
    assert!(recorded.iter().all(|&s| s < 0.1), "{recorded:?}");

    // The same model and vocabulary with `item`'s keys hashed the other way.
    let mut vocab = b.vocabulary().unwrap();
    let trainer = b.trainer(&vocab, &Default::default()).unwrap();
    let by_key: std::collections::HashMap<u64, String> = (0..25)
        .map(|i| (string_key(&format!("i{i}")), format!("i{i}")))
        .collect();
    let item = &mut vocab.fields[1];
    assert_eq!(item.name, "item");
    let keys = item.keys().iter().map(|k| wrong_key(&by_key[k])).collect();
    *item = FieldVocab::new("item".into(), keys);
    let wrong = t.join("wrong-b");
    bundle::write(
        &wrong,
        BundleContent {
            role: bundle::Role::Teacher,
            spec: &b.spec,
            vocab: &vocab,
            schema: &b.manifest.schema,
            provenance: b.manifest.provenance.clone(),
            train_oov_share: Some(recorded.clone()),
            origin: Some(&b.manifest),
        },
        Weights::Model(trainer.model()),
    )
    .unwrap();

    let store = t.join("store");
    let run = |bundle: &Path, extra: &[&str]| -> Vec<String> {
        let mut sets: Vec<String> = data.clone();
        sets.extend(
            [
                format!("teacher.bundle={}", bundle.display()),
                "split.history=0".into(),
                "batch_size=100".into(),
                "student.model=mlp:emb=4,hidden=8".into(),
                r#"arms=["incumbent","crossadapt"]"#.into(),
            ]
            .into_iter()
            .chain(extra.iter().map(|s| s.to_string())),
        );
        let mut args = vec!["run".to_string(), "--headless".to_string()];
        args.extend(sets.into_iter().flat_map(|s| ["--set".to_string(), s]));
        args
    };
    let args = run(&wrong, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = fails(&store, &args);
    assert!(
        e.contains("field `item`")
            && e.contains("100.0% of day 0's rows")
            && e.contains("hashed or formatted")
            && e.contains("teacher.allow_oov_jump=true")
            && !e.contains("field `user`"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(
        !store.exists() || std::fs::read_dir(&store).unwrap().next().is_none(),
        "a refused run leaves no session"
    );

    // Allowed: the run goes on and says what it let through.
    let args = run(&wrong, &["teacher.allow_oov_jump=true"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ok(&store, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("allowed by teacher.allow_oov_jump"),
        "{stderr}"
    );

    // The right keys: accepted, and every one of the 24 days is read.
    let args = run(&good, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ok(&store, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("days: history none · retained 0-7 · online 8-23\n"),
        "{stdout}"
    );
}

/// A split that leaves days unread names them on the `days:` line.
#[test]
fn the_days_line_names_the_days_a_split_leaves_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let b = train_bundle(tmp.path(), &[]);
    let store = tmp.path().join("store");
    let extra = [
        format!("teacher.bundle={}", b.display()),
        "split.history=0".into(),
        "split.retained=3".into(),
        "split.online=2".into(),
        r#"arms=["incumbent"]"#.into(),
    ];
    let mut args = vec!["run".to_string(), "--headless".to_string()];
    args.extend(sets(&extra));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ok(&store, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let days = stdout
        .lines()
        .find(|l| l.starts_with("days:"))
        .unwrap_or("");
    let n = crossadapt::engine::SessionConfig::tiny(&[])
        .unwrap()
        .data
        .open()
        .unwrap()
        .num_days();
    assert_eq!(
        days,
        format!(
            "days: history none · retained 0-2 · online 3-4 · unused 5-{} (never read)",
            n - 1
        )
    );
}

/// `predict --set data.*` changes the data the bundle records instead of replacing it with
/// the built-in stream's; a bundle that records no data says so.
#[test]
fn predict_patches_the_data_the_bundle_records() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = string_log(t);
    let b = t.join("b");
    let mut args: Vec<String> = [
        "train",
        "--model",
        TEACHER,
        "--days",
        "0..6",
        "--eval-day",
        "6",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in &data {
        args.extend(["--set".to_string(), s.clone()]);
    }
    args.extend(["--bundle".to_string(), b.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(t, &args);
    let other = t.join("other.csv");
    std::fs::copy(t.join("log.csv"), &other).unwrap();
    let out = ok(
        t,
        &[
            "predict",
            "--bundle",
            b.to_str().unwrap(),
            "--day",
            "7",
            "--set",
            &format!("data.path={}", other.display()),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1 + 150
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("other.csv"), "{stderr}");

    // The record removed: the message says what is missing, not another schema.
    let manifest = b.join("bundle.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["provenance"].as_object_mut().unwrap().remove("data");
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let e = fails(
        t,
        &["predict", "--bundle", b.to_str().unwrap(), "--day", "7"],
    );
    assert!(
        e.contains("does not record the data it was trained on")
            && !e.contains("another data schema"),
        "{e}"
    );
}
