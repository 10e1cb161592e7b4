//! The bad-input corpus: written and generated damaged inputs, each of which must end in one
//! clear error naming the file or key, with no panic and no session left unreadable.
//!
//! Cases run through the library (fast), each under `catch_unwind` so a panic is counted and
//! named instead of ending the run; `binary_*` tests send a smaller set through the binary
//! (non-zero exit, the message on stderr, no "panicked"). The totals are printed and checked
//! (docs/reliability.md quotes them).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crossadapt::data::DataConfig;
use crossadapt::engine::config::TINY_SETS;
use crossadapt::engine::{Engine, EngineIo, SessionConfig};
use crossadapt::session::export::{render, ExportFormat};
use crossadapt::session::Store;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");

/// One damaged input: what it is, how it is used, and a piece of the error that names the file
/// or key.
struct Case {
    name: String,
    run: Box<dyn Fn() -> anyhow::Result<()>>,
    needle: String,
}

fn case(
    name: impl Into<String>,
    needle: impl Into<String>,
    run: impl Fn() -> anyhow::Result<()> + 'static,
) -> Case {
    Case {
        name: name.into(),
        run: Box::new(run),
        needle: needle.into(),
    }
}

/// Runs every case; returns (cases, panics) and fails naming every case that did not end in
/// one clear error.
fn run_all(cases: Vec<Case>) -> (usize, usize) {
    let mut problems = Vec::new();
    let mut panics = 0;
    let n = cases.len();
    for c in cases {
        match catch_unwind(AssertUnwindSafe(|| (c.run)())) {
            Err(p) => {
                panics += 1;
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                problems.push(format!("{}: PANIC {msg}", c.name));
            }
            Ok(Ok(())) => problems.push(format!("{}: accepted (expected an error)", c.name)),
            Ok(Err(e)) => {
                // The first line is the sentence; a TOML parse error may add its source snippet.
                let msg = format!("{e:#}");
                let first = msg.lines().next().unwrap_or_default();
                if !first.contains(&c.needle) {
                    problems.push(format!(
                        "{}: the error's first line does not name {:?}: {msg}",
                        c.name, c.needle
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {n} cases failed:\n{}",
        problems.len(),
        problems.join("\n")
    );
    (n, panics)
}

thread_local! {
    /// Temporary folders of the running test (libtest runs each test on its own thread, so
    /// they go when the test ends).
    static KEEP: std::cell::RefCell<Vec<tempfile::TempDir>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn tmp() -> PathBuf {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    KEEP.with(|k| k.borrow_mut().push(dir));
    path
}

// ---------------------------------------------------------------------------------------------
// Config files and --set overrides.

/// Every numeric key of the config with values it must refuse.
const BAD_NUMBERS: &[(&str, &[&str])] = &[
    ("seed", &["-1", "\"seven\"", "1.5"]),
    ("threads", &["0", "100000", "-2", "\"two\""]),
    ("min_count", &["-1", "\"x\""]),
    ("batch_size", &["0", "1e12", "-5", "\"big\""]),
    ("keep_day_checkpoints", &["1", "-1"]),
    ("teacher.epochs", &["0", "1000000", "\"one\""]),
    ("split.history", &["nan", "1e308", "-1", "\"half\""]),
    ("split.retained", &["inf", "9223372036854775807", "0.0"]),
    ("split.online", &["-0.5", "2.5", "[]"]),
    ("train.emb_lr", &["0", "nan", "-1", "1e9", "\"fast\""]),
    ("train.dense_lr", &["inf", "0", "-1e-3"]),
    ("train.threads", &["0", "99999"]),
    ("train.predict_chunk", &["0", "1e10"]),
    ("train.adam.beta1", &["1", "-0.1", "nan"]),
    ("train.adam.beta2", &["1.5", "inf"]),
    ("train.adam.eps", &["0", "-1", "nan"]),
    ("method.sampling_ratio", &["0", "1.5", "nan", "-0.1"]),
    ("method.target_pos_rate", &["0", "1", "nan"]),
    ("method.recency_half_life", &["0", "-1", "inf"]),
    ("method.distill_weight", &["1.5", "-0.5", "nan"]),
    ("method.temperature", &["0", "-1", "nan", "1e9"]),
    ("method.epochs_dense", &["-1", "1000000"]),
    ("method.epochs_joint", &["1000000", "\"x\""]),
    ("method.baseline_epochs", &["0", "1000000"]),
    ("method.logit_correction", &["\"yes\"", "3"]),
    ("method.sampling", &["\"clever\"", "3"]),
    ("online.teacher_interval", &["0", "-3"]),
    ("online.replay_ratio", &["1.5", "-0.1", "nan"]),
    ("online.distill_min", &["-1", "2", "nan"]),
    ("online.distill_max", &["1.5", "-0.5"]),
    ("online.updates_every", &["0", "-1"]),
    ("adaptation.psi_scale", &["0", "-1", "nan", "inf"]),
    ("adaptation.top_fields", &["0", "-1"]),
    ("adaptation.label_scale", &["0", "nan"]),
    ("adaptation.loss_scale", &["0", "-0.1", "inf"]),
    ("adaptation.replay_floor", &["1.5", "-1", "nan"]),
    ("adaptation.reference_days", &["0", "1000000000"]),
    ("adaptation.every_batches", &["-1", "\"often\""]),
];

/// Misspelled keys, one or more per section, with the misspelled part the error must name.
const TYPOS: &[(&str, &str)] = &[
    ("sed", "sed"),
    ("thread", "thread"),
    ("batchsize", "batchsize"),
    ("split.histroy", "histroy"),
    ("teacher.epoch", "epoch"),
    ("teacher.modle", "modle"),
    ("student.modle", "modle"),
    ("train.emb_rate", "emb_rate"),
    ("train.adam.beta3", "beta3"),
    ("method.sampling_rato", "sampling_rato"),
    ("method.temprature", "temprature"),
    ("online.replay_rato", "replay_rato"),
    ("online.teacher_intervall", "teacher_intervall"),
    ("adaptation.psi_scal", "psi_scal"),
    ("adaptation.loss_scael", "loss_scael"),
    ("adaptation.topfields", "topfields"),
    ("methd.sampling_ratio", "methd"),
    ("onlin.replay_ratio", "onlin"),
    ("adaption.loss_scale", "adaption"),
    ("data.zipf_exponet", "zipf_exponet"),
];

/// Values that are wrong for what they name, not for their number.
const BAD_VALUES: &[(&str, &str)] = &[
    ("student.model", "\"transformerx\""),
    ("student.model", "\"dcn:emb=0\""),
    ("student.model", "\"deepfm:hidden=64xx\""),
    ("teacher.model", "\"mlp:emb=-3\""),
    ("teacher.model", "42"),
    ("arms", "[]"),
    ("arms", "[\"crossadapt\", \"crossadapt\"]"),
    ("arms", "[\"magic\"]"),
    ("arms", "\"crossadapt\""),
    ("data.preset", "\"huge\""),
    ("data.source", "\"mongodb\""),
    ("schema_version", "99"),
];

fn set_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (key, values) in BAD_NUMBERS {
        for v in *values {
            let set = format!("{key}={v}");
            let last = key.rsplit('.').next().unwrap_or(key).to_string();
            cases.push(case(format!("--set {set}"), last, move || {
                SessionConfig::load(None, std::slice::from_ref(&set)).map(|_| ())
            }));
        }
    }
    for (key, typo) in TYPOS {
        let set = format!("{key}=1");
        cases.push(case(format!("--set {set}"), *typo, move || {
            SessionConfig::load(None, std::slice::from_ref(&set)).map(|_| ())
        }));
    }
    for (key, v) in BAD_VALUES {
        let set = format!("{key}={v}");
        let needle = key.rsplit('.').next().unwrap_or(key).to_string();
        cases.push(case(format!("--set {set}"), needle, move || {
            SessionConfig::load(None, std::slice::from_ref(&set)).map(|_| ())
        }));
    }
    for set in ["no_equals", "=3", ".=1", "method.=2", "split.online.x=1"] {
        let set = set.to_string();
        cases.push(case(format!("--set {set}"), "--set", move || {
            SessionConfig::load(None, std::slice::from_ref(&set)).map(|_| ())
        }));
    }
    cases
}

/// A config file as TOML text for `key = value` (nested keys become sections).
fn toml_for(key: &str, value: &str) -> String {
    match key.rsplit_once('.') {
        Some((section, last)) => format!("[{section}]\n{last} = {value}\n"),
        None => format!("{key} = {value}\n"),
    }
}

fn config_file_cases() -> Vec<Case> {
    let dir = tmp();
    let mut cases = Vec::new();
    let mut n = 0;
    let mut file_case = |name: String, text: Vec<u8>, needle: Option<String>| {
        n += 1;
        let path = dir.join(format!("config-{n}.toml"));
        std::fs::write(&path, text).unwrap();
        let needle = needle.unwrap_or_else(|| path.file_name().unwrap().to_string_lossy().into());
        cases.push(case(name, needle, move || {
            SessionConfig::load(Some(&path), &[]).map(|_| ())
        }));
    };
    let garbled: &[(&str, &[u8])] = &[
        ("unclosed section", b"[method\nsampling_ratio = 0.1\n"),
        ("no value", b"[method]\nsampling_ratio =\n"),
        ("no key", b"= 3\n"),
        ("duplicate key", b"seed = 1\nseed = 2\n"),
        ("unterminated string", b"[student]\nmodel = \"dcn\n"),
        ("binary", &[0, 159, 146, 150, 255, 0, 1, 2]),
        ("not utf-8", b"name = \"\xff\xfe\"\n"),
        ("json instead", b"{\"seed\": 3}\n"),
        ("yaml instead", b"seed: 3\nmethod:\n  sampling_ratio: 0.1\n"),
        (
            "section twice",
            b"[online]\nreplay_ratio = 0.1\n[online]\nreplay_ratio = 0.2\n",
        ),
        ("bad escape", b"name = \"a\\qb\"\n"),
        ("table as value", b"method = 3\n"),
    ];
    for (what, text) in garbled {
        file_case(format!("config file: {what}"), text.to_vec(), None);
    }
    // Truncations of a real config: any cut mid-token is a parse error naming the file.
    let full = SessionConfig::tiny(&[]).unwrap().to_toml().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut cuts = 0;
    while cuts < 12 {
        let at = rng.random_range(1..full.len() - 1);
        let cut = &full[..at];
        // Only cuts that leave broken TOML (a cut at a line end is a valid shorter file).
        if cut.parse::<toml::Table>().is_ok() || !full.is_char_boundary(at) {
            continue;
        }
        cuts += 1;
        file_case(
            format!("config file cut at byte {at}"),
            cut.as_bytes().to_vec(),
            None,
        );
    }
    for (key, values) in BAD_NUMBERS.iter().step_by(2) {
        let v = values[0];
        let last = key.rsplit('.').next().unwrap_or(key).to_string();
        file_case(
            format!("config file: {key} = {v}"),
            toml_for(key, v).into_bytes(),
            Some(last),
        );
    }
    for (key, typo) in TYPOS.iter().step_by(2) {
        file_case(
            format!("config file: typo {key}"),
            toml_for(key, "1").into_bytes(),
            Some(typo.to_string()),
        );
    }
    let missing = dir.join("does-not-exist.toml");
    cases.push(case(
        "config file missing",
        "does-not-exist.toml",
        move || SessionConfig::load(Some(&missing), &[]).map(|_| ()),
    ));
    cases
}

#[test]
fn config_corpus() {
    let mut cases = set_cases();
    cases.extend(config_file_cases());
    let (n, panics) = run_all(cases);
    record("config", n, panics);
}

// ---------------------------------------------------------------------------------------------
// Data files: CSV, Parquet, schemas.

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// Opens a table source and reads every day, as a run would.
fn read_table(path: &Path, schema: &Path) -> anyhow::Result<()> {
    let src = DataConfig::Table {
        path: path.to_path_buf(),
        schema: schema.to_path_buf(),
        period: None,
        days: None,
    }
    .open()?;
    for d in 0..src.num_days() {
        src.raw_day(d)?;
    }
    Ok(())
}

fn csv_cases() -> Vec<Case> {
    let dir = tmp();
    let schema = sample("events.toml");
    let good = std::fs::read_to_string(sample("sample-events.csv")).unwrap();
    let header = good.lines().next().unwrap().to_string();
    let mut cases = Vec::new();
    let mut n = 0;
    let mut csv_case = |what: &str, text: Vec<u8>| {
        n += 1;
        let path = dir.join(format!("events-{n}.csv"));
        std::fs::write(&path, text).unwrap();
        let schema = schema.clone();
        let needle = path.file_name().unwrap().to_string_lossy().into_owned();
        cases.push(case(format!("csv: {what}"), needle, move || {
            read_table(&path, &schema)
        }));
    };
    csv_case("empty file", Vec::new());
    csv_case("header only", format!("{header}\n").into_bytes());
    csv_case(
        "binary garbage",
        (0..2000u32).map(|i| (i * 37 % 251) as u8).collect(),
    );
    csv_case(
        "a Parquet file named .csv",
        std::fs::read(sample("sample-synthetic/day-000.parquet")).unwrap(),
    );
    csv_case(
        "no label column",
        good.replace("rating", "score").into_bytes(),
    );
    csv_case(
        "no time column",
        good.replace("watched_at", "seen").into_bytes(),
    );
    csv_case(
        "no user column",
        good.replace("user,", "person,").into_bytes(),
    );
    csv_case(
        "ratings that are words",
        good.replacen(",1,2024", ",one,2024", 3).into_bytes(),
    );
    csv_case(
        "dates that are not dates",
        good.replace("2024-03-0", "yesterday-").into_bytes(),
    );
    csv_case("semicolons", good.replace(',', ";").into_bytes());
    csv_case("only a newline", b"\n".to_vec());
    csv_case(
        "header of another file",
        "a,b,c\n1,2,3\n".as_bytes().to_vec(),
    );
    cases
}

fn parquet_cases() -> Vec<Case> {
    let dir = tmp();
    let good = std::fs::read(sample("sample-synthetic/day-000.parquet")).unwrap();
    let schema = sample("sample-synthetic/schema.toml");
    let mut cases = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut variants: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("a CSV named .parquet".into(), b"a,b\n1,2\n".to_vec()),
        ("magic only".into(), b"PAR1".to_vec()),
        ("footer zeroed".into(), {
            let mut b = good.clone();
            let n = b.len();
            b[n - 8..n - 4].fill(0);
            b
        }),
    ];
    for i in 0..6 {
        let at = rng.random_range(8..good.len() - 8);
        variants.push((format!("cut at byte {at} (#{i})"), good[..at].to_vec()));
    }
    for (what, bytes) in variants {
        let case_dir = dir.join(format!("p{}", cases.len()));
        std::fs::create_dir_all(&case_dir).unwrap();
        let path = case_dir.join("day-000.parquet");
        std::fs::write(&path, bytes).unwrap();
        let schema = schema.clone();
        cases.push(case(
            format!("parquet: {what}"),
            "day-000.parquet",
            move || read_table(&path, &schema),
        ));
    }
    cases
}

/// Schema variants whose error is a TOML parse error of the schema file.
fn text_is_toml_error(what: &str) -> bool {
    matches!(
        what,
        "typo" | "bad time unit" | "numeric list of a string" | "empty" | "not TOML"
    )
}

fn schema_cases() -> Vec<Case> {
    let dir = tmp();
    let data = sample("sample-events.csv");
    let good = std::fs::read_to_string(sample("events.toml")).unwrap();
    let mut cases = Vec::new();
    let variants: Vec<(&str, String, &str)> = vec![
        (
            "typo",
            good.replace("categorical", "categorcal"),
            "categorcal",
        ),
        (
            "unknown column",
            good.replace("\"genre\"", "\"genus\""),
            "genus",
        ),
        (
            "label column missing",
            good.replace("label = \"rating\"", "label = \"stars\""),
            "stars",
        ),
        (
            "garbled rule",
            good.replace("rating >= 4", "rating >>= 4"),
            "rating >>= 4",
        ),
        (
            "rule on another column",
            good.replace("rating >= 4", "grade >= 4"),
            "grade",
        ),
        (
            "bad time unit",
            good.replace("\"datetime\"", "\"fortnights\""),
            "fortnights",
        ),
        (
            "numeric list of a string",
            good.replace("numeric = [\"age\"]", "numeric = \"age\""),
            "numeric",
        ),
        ("not TOML", "label = \n".to_string(), "schema"),
        ("empty", String::new(), "label"),
    ];
    for (i, (what, text, needle)) in variants.into_iter().enumerate() {
        let path = dir.join(format!("schema-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let data = data.clone();
        // Parse errors name the file on the first line, the key in the snippet below it.
        let needle = if text_is_toml_error(what) {
            format!("schema-{i}.toml")
        } else {
            needle.to_string()
        };
        cases.push(case(format!("schema: {what}"), needle, move || {
            read_table(&data, &path)
        }));
    }
    let missing = dir.join("no-schema.toml");
    cases.push(case("schema: missing file", "no-schema.toml", move || {
        read_table(&data, &missing)
    }));
    cases
}

#[test]
fn data_corpus() {
    let mut cases = csv_cases();
    cases.extend(parquet_cases());
    cases.extend(schema_cases());
    let (n, panics) = run_all(cases);
    record("data", n, panics);
}

// ---------------------------------------------------------------------------------------------
// Damaged sessions: the store's files, the log, checkpoints.

/// A finished tiny session made once by the binary, copied for each case.
fn template() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Shared by the tests of this file (threads of one process), so not a thread's
        // temporary folder; earlier runs' copies are removed.
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let ours = format!("bad-input-template-{}", std::process::id());
        if let Ok(entries) = std::fs::read_dir(base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("bad-input-template-") && name != ours {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let root = base.join(ours);
        let _ = std::fs::remove_dir_all(&root);
        let mut args = vec!["run".to_string(), "--headless".to_string()];
        for s in TINY_SETS {
            args.push("--set".into());
            args.push(s.to_string());
        }
        let out = Command::new(BIN)
            .arg("--sessions-dir")
            .arg(&root)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.join("session.json").exists())
            .unwrap()
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else if e.file_name() != "lock" {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A fresh store holding a copy of the template session; returns (its folder's guard, store,
/// id, session dir).
fn fresh() -> (tempfile::TempDir, Store, String, PathBuf) {
    let guard = tempfile::tempdir().unwrap();
    let root = guard.path().to_path_buf();
    let id = template()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let dir = root.join(&id);
    copy_dir(template(), &dir);
    (guard, Store::open(Some(root)).unwrap(), id, dir)
}

/// Every file under `dir` with its bytes (to show a failed operation changed nothing).
fn snapshot_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "lock") {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// What a reader does with a session: open, read the log, export, status, config.
fn read_session(store: &Store, id: &str) -> anyhow::Result<()> {
    let view = store.open_read_only(id)?;
    let records = view.records()?.records;
    render(view.meta(), &records, ExportFormat::Json)?;
    view.status()?;
    let path = view.dir().join("config.toml");
    SessionConfig::from_toml(&view.config_toml()?, &path)?;
    if let Some(c) = view.latest_checkpoint()? {
        anyhow::ensure!(c.warnings.is_empty(), "{}", c.warnings.join("; "));
    }
    Ok(())
}

/// A damaging edit of one file of a session, then the reader: the error must name the file,
/// and the session must be byte for byte as the damage left it (reading repairs nothing and
/// breaks nothing more), still listed (as damaged) without a panic.
fn session_case(
    what: String,
    file: &'static str,
    damage: impl Fn(&Path) + 'static,
    needle: Option<&'static str>,
) -> Case {
    let needle = needle.unwrap_or_else(|| file.rsplit('/').next().unwrap_or(file));
    case(format!("session: {what}"), needle, move || {
        let (_guard, store, id, dir) = fresh();
        damage(&dir.join(file));
        let before = snapshot_tree(&dir);
        let result = read_session(&store, &id);
        assert_eq!(snapshot_tree(&dir), before, "reading changed the session");
        let _ = store.list();
        result
    })
}

/// Byte-level damage of a file.
/// A byte-level damage of a file's content.
type Damage = fn(&[u8]) -> Vec<u8>;

fn damages() -> Vec<(&'static str, Damage)> {
    vec![
        ("emptied", |_| Vec::new()),
        ("cut in half", |b| b[..b.len() / 2].to_vec()),
        ("cut by one byte", |b| {
            b[..b.len().saturating_sub(1)].to_vec()
        }),
        ("garbled", |b| b.iter().map(|x| x ^ 0x5a).collect()),
        ("zeroed", |b| vec![0; b.len()]),
        ("a bracket", |_| b"[".to_vec()),
        ("an array", |_| b"[1, 2, 3]".to_vec()),
        ("not UTF-8", |b| {
            let mut v = b.to_vec();
            v.splice(0..0, [0xff, 0xfe]);
            v
        }),
    ]
}

fn rewrite(path: &Path, f: Damage) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, f(&bytes)).unwrap();
}

fn edit_json(path: &Path, f: impl Fn(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn session_file_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for file in ["session.json", "status.json"] {
        for (what, f) in damages() {
            if what == "cut by one byte" {
                continue; // a JSON file missing its final newline is still whole
            }
            cases.push(session_case(
                format!("{file} {what}"),
                file,
                move |p| rewrite(p, f),
                None,
            ));
        }
        let fields: [(&'static str, serde_json::Value); 3] = [
            ("schema_version", serde_json::json!(99)),
            ("schema_version", serde_json::json!("one")),
            ("schema_version", serde_json::Value::Null),
        ];
        for (key, value) in fields {
            cases.push(session_case(
                format!("{file} {key} = {value}"),
                file,
                move |p| edit_json(p, |v| v[key] = value.clone()),
                None,
            ));
        }
        cases.push(session_case(
            format!("{file} missing"),
            file,
            |p| std::fs::remove_file(p).unwrap(),
            None,
        ));
    }
    for (key, value) in [
        ("id", serde_json::json!(7)),
        ("created", serde_json::json!("yesterday")),
        ("name", serde_json::json!(["a"])),
    ] {
        cases.push(session_case(
            format!("session.json {key} = {value}"),
            "session.json",
            move |p| edit_json(p, |v| v[key] = value.clone()),
            None,
        ));
    }
    for (key, value) in [
        ("state", serde_json::json!("sleeping")),
        ("pid", serde_json::json!(-1)),
        ("updated_at", serde_json::json!(12)),
    ] {
        cases.push(session_case(
            format!("status.json {key} = {value}"),
            "status.json",
            move |p| edit_json(p, |v| v[key] = value.clone()),
            None,
        ));
    }
    // config.toml: garbled, or valid TOML the config refuses.
    for (what, f) in damages() {
        if matches!(what, "emptied" | "cut by one byte" | "cut in half") {
            // An empty config is the defaults; a cut at a line end is a valid shorter file (the
            // config-file corpus cuts mid-token).
            continue;
        }
        cases.push(session_case(
            format!("config.toml {what}"),
            "config.toml",
            move |p| rewrite(p, f),
            None,
        ));
    }
    for (what, extra) in [
        ("unknown key", "bogus_key = 1\n"),
        ("newer schema", "schema_version = 99\n"),
        ("bad ratio", "[method]\nsampling_ratio = 7.0\n"),
    ] {
        cases.push(session_case(
            format!("config.toml {what}"),
            "config.toml",
            move |p| {
                let text = std::fs::read_to_string(p).unwrap();
                let edited = match extra.split_once('\n') {
                    Some(("[method]", _)) => {
                        text.replace("sampling_ratio = 0.1", "sampling_ratio = 7.0")
                    }
                    _ => format!("{extra}{text}"),
                };
                std::fs::write(p, edited).unwrap();
            },
            None,
        ));
    }
    cases.push(session_case(
        "config.toml missing".into(),
        "config.toml",
        |p| std::fs::remove_file(p).unwrap(),
        None,
    ));
    cases
}

/// Damage to one line of the log (not the last: a torn last line is a crash, tolerated).
fn log_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    type LineEdit = fn(&str) -> String;
    let line_edits: Vec<(&str, LineEdit)> = vec![
        ("garbled", |l| l.chars().rev().collect()),
        ("emptied", |_| String::new()),
        ("cut in half", |l| l[..l.len() / 2].to_string()),
        ("binary", |_| "\u{0}\u{1}\u{2}".to_string()),
        ("a number", |_| "42".to_string()),
        ("an unknown event", |l| {
            l.replacen("\"event\"", "\"evnt\"", 1)
        }),
        ("wrong seq", |l| l.replacen("\"seq\":", "\"seq\":1000", 1)),
        ("newer schema", |l| l.replacen("\"v\":1", "\"v\":99", 1)),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (what, edit) in line_edits {
        for _ in 0..3 {
            let pick: f64 = rng.random_range(0.0..0.95);
            cases.push(session_case(
                format!("events.jsonl line {:.0}% {what}", pick * 100.0),
                "events.jsonl",
                move |p| {
                    let text = std::fs::read_to_string(p).unwrap();
                    let mut lines: Vec<String> = text.lines().map(String::from).collect();
                    let i = ((lines.len() - 1) as f64 * pick) as usize;
                    lines[i] = edit(&lines[i]);
                    std::fs::write(p, lines.join("\n") + "\n").unwrap();
                },
                None,
            ));
        }
    }
    cases.push(session_case(
        "events.jsonl missing".into(),
        "events.jsonl",
        |p| std::fs::remove_file(p).unwrap(),
        None,
    ));
    cases.push(session_case(
        "events.jsonl a line twice".into(),
        "events.jsonl",
        |p| {
            let text = std::fs::read_to_string(p).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            lines.insert(5, lines[5]);
            std::fs::write(p, lines.join("\n") + "\n").unwrap();
        },
        None,
    ));
    cases
}

/// The newest checkpoint (`done`) damaged: its manifest, or its files. Reading falls back to
/// the previous checkpoint with a warning naming the damaged file; the reader above turns that
/// warning into the case's error.
fn checkpoint_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (what, f) in damages() {
        if what == "cut by one byte" {
            continue;
        }
        cases.push(session_case(
            format!("done manifest {what}"),
            "checkpoints/done/manifest.json",
            move |p| rewrite(p, f),
            Some("manifest.json"),
        ));
    }
    cases.push(session_case(
        "done manifest lists a missing file".into(),
        "checkpoints/done/manifest.json",
        |p| {
            edit_json(p, |v| {
                v["files"].as_array_mut().unwrap().push(serde_json::json!({
                    "path": "ghost.safetensors", "bytes": 3, "sha256": "00"
                }))
            })
        },
        Some("ghost.safetensors"),
    ));
    cases.push(session_case(
        "done manifest newer".into(),
        "checkpoints/done/manifest.json",
        |p| edit_json(p, |v| v["schema_version"] = serde_json::json!(99)),
        Some("manifest.json"),
    ));
    for file in [
        "state.json",
        "teacher.safetensors",
        "arm-0-student.safetensors",
    ] {
        let rel: &'static str = Box::leak(format!("checkpoints/done/{file}").into_boxed_str());
        let name: &'static str = Box::leak(file.to_string().into_boxed_str());
        for (what, f) in damages() {
            cases.push(session_case(
                format!("done {file} {what}"),
                rel,
                move |p| {
                    if p.exists() {
                        rewrite(p, f)
                    }
                },
                Some(name),
            ));
        }
    }
    cases
}

#[test]
fn session_corpus() {
    let mut cases = session_file_cases();
    cases.extend(log_cases());
    cases.extend(checkpoint_cases());
    let (n, panics) = run_all(cases);
    record("session", n, panics);
}

/// Tensors damaged behind a manifest rewritten to match (so only loading can tell): the engine
/// refuses the checkpoint naming the file.
#[test]
fn checkpoint_tensors_that_verify_but_do_not_load_fail_by_name() {
    let mut cases = Vec::new();
    for (what, f) in damages() {
        cases.push(case(
            format!("loading teacher.safetensors {what}"),
            "teacher.safetensors",
            move || {
                let (_guard, store, id, dir) = fresh();
                let ckpt = dir.join("checkpoints/done");
                rewrite(&ckpt.join("teacher.safetensors"), f);
                reseal(&ckpt);
                let view = store.open_read_only(&id)?;
                let cfg = SessionConfig::from_toml(&view.config_toml()?, &dir.join("config.toml"))?;
                Engine::resume(cfg, &id, "x", &ckpt, 0, EngineIo::default()).map(|_| ())
            },
        ));
    }
    let (n, panics) = run_all(cases);
    record("tensors", n, panics);
}

/// Rewrites a checkpoint's manifest to match its files as they are now.
fn reseal(ckpt: &Path) {
    use sha2::{Digest, Sha256};
    edit_json(&ckpt.join("manifest.json"), |v| {
        for f in v["files"].as_array_mut().unwrap() {
            let bytes = std::fs::read(ckpt.join(f["path"].as_str().unwrap())).unwrap();
            let sha: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            f["bytes"] = serde_json::json!(bytes.len());
            f["sha256"] = serde_json::json!(sha);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The binary: absurd command-line values and damaged sessions, end to end.

fn binary(store: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("--sessions-dir")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binary_corpus() {
    let (_guard, store, id, dir) = fresh();
    let root = store.root().to_path_buf();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["replay", &id, "--headless", "--speed", "1e-30"],
            "--speed",
        ),
        (vec!["replay", &id, "--headless", "--speed", "0"], "--speed"),
        (vec!["replay", &id, "--headless", "--speed=-1"], "--speed"),
        (
            vec!["replay", &id, "--headless", "--speed", "nan"],
            "--speed",
        ),
        (
            vec!["replay", &id, "--headless", "--speed", "inf"],
            "--speed",
        ),
        (
            vec!["replay", &id, "--headless", "--speed", "1e300"],
            "--speed",
        ),
        (vec!["replay", &id, "--capture", "65535x65535"], "--capture"),
        (vec!["replay", &id, "--capture", "0x10"], "--capture"),
        (vec!["replay", &id, "--capture=-3x10"], "--capture"),
        (
            vec!["fork", &id, "--from-day", "4294967295", "--headless"],
            "--from-day",
        ),
        (
            vec!["fork", &id, "--from-day=-1", "--headless"],
            "--from-day",
        ),
        (
            vec!["fork", &id, "--from-day", "99", "--headless"],
            "day 99",
        ),
        (
            vec![
                "run",
                "--headless",
                "--set",
                "split.online=18446744073709551615",
            ],
            "split.online",
        ),
        (
            vec!["run", "--headless", "--set", "split.history=1e300"],
            "split.history",
        ),
        (
            vec!["run", "--headless", "--set", "batch_size=0"],
            "batch_size",
        ),
        (
            vec!["run", "--headless", "--set", "adaptation.loss_scale=0"],
            "adaptation.loss_scale",
        ),
        (
            vec!["run", "--headless", "--set", "threads=99999999999999999999"],
            "threads",
        ),
        (vec!["train", "--batch", "0"], "--batch"),
        (vec!["train", "--epochs", "99999999999"], "--epochs"),
        (vec!["train", "--eval-day", "4294967295"], "--eval-day"),
        (vec!["train", "--emb-lr", "nan"], "--emb-lr"),
        (vec!["train", "--dense-lr=-1"], "--dense-lr"),
        (vec!["train", "--threads", "0"], "--threads"),
        (vec!["train", "--rows-per-day", "0"], "--rows-per-day"),
        (vec!["train", "--days", "0..4294967295"], "--days"),
        (vec!["bench", "train", "--batch", "0"], "--batch"),
        (vec!["bench", "train", "--ids", "0"], "--ids"),
        (vec!["bench", "train", "--emb", "100000"], "--emb"),
        (vec!["bench", "train", "--steps", "0"], "--steps"),
        (vec!["data", "synth", "--days", "0", "--out", "x"], "--days"),
        (
            vec!["data", "synth", "--rows-per-day", "1e20", "--out", "x"],
            "--rows-per-day",
        ),
        (
            vec!["data", "inspect", "synthetic", "--top-k", "0"],
            "--top-k",
        ),
        (vec!["data", "bench", "--rows", "0"], "--rows"),
        (vec!["rm", "..", "--yes"], "not a session id"),
        (vec!["rm", "nope-nope", "--yes"], "no session nope-nope"),
        (vec!["resume", "nope-nope"], "nope-nope"),
        (vec!["export", &id, "--format", "xml"], "--format"),
    ];
    let mut failures = Vec::new();
    for (args, needle) in &cases {
        let (ok, stderr) = binary(&root, args);
        if ok || !stderr.contains(needle) || stderr.contains("panicked") {
            failures.push(format!("{args:?}: ok={ok} stderr={stderr}"));
        }
    }
    // Damaged files through the binary: the readers and a resume.
    std::fs::write(dir.join("status.json"), "{").unwrap();
    for args in [
        vec!["export", id.as_str()],
        vec!["resume", id.as_str(), "--headless"],
    ] {
        let (ok, stderr) = binary(&root, &args);
        if args[0] == "export" {
            // Export needs the log only: a damaged status does not stop it.
            if !ok {
                failures.push(format!("{args:?}: {stderr}"));
            }
        } else if stderr.contains("panicked") {
            failures.push(format!("{args:?}: {stderr}"));
        }
    }
    let (ok, stderr) = binary(&root, &["list"]);
    if !ok || !stderr.contains("status.json") {
        failures.push(format!("list: ok={ok} {stderr}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    record("binary", cases.len() + 3, 0);
}

/// Totals for docs/reliability.md, printed by each corpus test (`cargo test -- --nocapture`).
fn record(what: &str, cases: usize, panics: usize) {
    eprintln!("bad-input corpus, {what}: {cases} cases, {panics} panics");
    assert_eq!(panics, 0);
}
