//! Student bundles: `export ID --bundle` from a day checkpoint and from `done`, re-imported,
//! predict bit for bit what the checkpoint's own model predicts; writing the re-imported model
//! again gives the same files; bad requests fail with one sentence.

mod bundle_common;

use bundle_common::{crossadapt, ok};
use crossadapt::bundle::{self, Bundle, BundleContent, DataSchema, Provenance, Role, Weights};
use crossadapt::engine::config::TINY_SETS;
use crossadapt::engine::SessionConfig;
use crossadapt::train::{TrainConfig, Trainer};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn exported_students_reimport_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let extra = [r#"arms=["scratch","crossadapt"]"#, "split.online=2"];
    let mut args = vec!["run", "--headless"];
    for s in TINY_SETS.iter().chain(&extra) {
        args.extend(["--set", s]);
    }
    let report = tmp.path().join("report.json");
    args.extend(["--report", report.to_str().unwrap()]);
    ok(&store, &args);
    let id = std::fs::read_dir(&store)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().join("session.json").exists())
        .unwrap()
        .file_name()
        .to_string_lossy()
        .to_string();
    let sets: Vec<&str> = TINY_SETS.iter().copied().chain(extra).collect();
    let cfg = SessionConfig::tiny(&sets[TINY_SETS.len()..]).unwrap();
    let source = cfg.data.open().unwrap();
    let plan = cfg.split.resolve(source.num_days()).unwrap();
    let (vocab, _) = bundle::session_vocabulary(
        cfg.teacher.bundle.as_deref(),
        cfg.min_count,
        source.as_ref(),
        &plan,
    )
    .unwrap();
    let day = vocab.encode(&source.raw_day(6).unwrap());
    let tc = TrainConfig::default();

    // (checkpoint label, export --day, arm index of crossadapt = 1)
    for (label, day_arg) in [("day-0006", Some("6")), ("done", None)] {
        let out = tmp.path().join(format!("student-{label}"));
        let mut a = vec![
            "export",
            &id,
            "--bundle",
            "--arm",
            "crossadapt",
            "--out",
            out.to_str().unwrap(),
        ];
        if let Some(d) = day_arg {
            a.extend(["--day", d]);
        }
        let said = String::from_utf8(ok(&store, &a).stdout).unwrap();
        if let Some(d) = day_arg {
            assert!(
                said.contains(&format!("the model at the start of day {d}")),
                "{said}"
            );
        }
        let ckpt = store.join(&id).join("checkpoints").join(label);
        let original = Trainer::load(&ckpt.join("arm-1-student.safetensors"), &tc).unwrap();
        let b = Bundle::open(&out).unwrap();
        assert_eq!(b.manifest.role, Role::Student);
        assert_eq!(b.manifest.provenance.arm.as_deref(), Some("crossadapt"));
        assert_eq!(b.manifest.provenance.checkpoint.as_deref(), Some(label));
        assert_eq!(b.spec.to_string(), "dcnv2:emb=8,hidden=16,cross=1");
        let v = b.vocabulary().unwrap();
        assert_eq!(v.fingerprint(), vocab.fingerprint());
        let imported = b.trainer(&v, &tc).unwrap();
        assert_eq!(
            bits(&imported.predict_logits(&day).unwrap()),
            bits(&original.predict_logits(&day).unwrap()),
            "{label}"
        );
        // Written again from the re-imported model: the same files, byte for byte.
        let again = tmp.path().join(format!("again-{label}"));
        bundle::write(
            &again,
            BundleContent {
                role: Role::Student,
                spec: &b.spec,
                vocab: &v,
                schema: &DataSchema::of_source(source.as_ref()),
                provenance: Provenance::default(),
                train_oov_share: None,
                origin: None,
            },
            Weights::Model(imported.model()),
        )
        .unwrap();
        for f in ["model.safetensors", "vocab.safetensors"] {
            assert_eq!(
                std::fs::read(out.join(f)).unwrap(),
                std::fs::read(again.join(f)).unwrap(),
                "{label}: {f}"
            );
        }
        // `predict` prints the same logits as the checkpoint's model.
        let p = ok(
            &store,
            &["predict", "--bundle", out.to_str().unwrap(), "--day", "6"],
        );
        let text = String::from_utf8(p.stdout).unwrap();
        let logits: Vec<f32> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
            .collect();
        assert_eq!(bits(&logits), bits(&original.predict_logits(&day).unwrap()));
        if label == "day-0006" {
            // The model at the start of day 6 is the one the report scored day 6 with.
            let r: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
            let arm = r["arms"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == "crossadapt")
                .unwrap();
            let row = arm["online"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["day"] == 6)
                .unwrap();
            let labels: Vec<f32> = text
                .lines()
                .skip(1)
                .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
                .collect();
            let m = crossadapt::train::metrics::evaluate_rows(&logits, &labels, None);
            assert_eq!(row["metrics"]["auc"].as_f64(), m.auc, "{row}");
            assert_eq!(row["metrics"]["logloss"].as_f64(), Some(m.logloss), "{row}");
        }
    }

    // Bad requests: an unknown arm, a day without checkpoint, an existing folder.
    let out = tmp.path().join("x");
    let o = out.to_str().unwrap();
    for (a, needle) in [
        (
            vec!["export", &id, "--bundle", "--arm", "kd", "--out", o],
            "has no arm `kd`",
        ),
        (
            vec!["export", &id, "--bundle", "--day", "3", "--out", o],
            "no checkpoint at the start of day 3",
        ),
        (vec!["export", &id, "--bundle"], "needs --out DIR"),
        (
            vec![
                "export",
                &id,
                "--bundle",
                "--out",
                tmp.path().to_str().unwrap(),
            ],
            "already exists",
        ),
    ] {
        let r = crossadapt(&store, &a);
        let e = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && e.contains(needle), "{needle}: {e}");
        assert!(!e.contains("panicked"), "{e}");
    }
}

/// The raw-key test vectors of docs/bundles.md, read from the page, against the code: the page
/// a second stack is written from cannot drift from the hash.
#[test]
fn the_raw_key_vectors_of_the_docs_are_the_codes() {
    use crossadapt::data::source::text_key;
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/bundles.md")).unwrap();
    let start = page
        .find("| cell | key | rule |")
        .expect("the vectors table");
    let mut checked = 0;
    for line in page[start..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let cell = match cols[1] {
            "(empty)" => String::new(),
            c => c
                .strip_prefix('`')
                .and_then(|c| c.strip_suffix('`'))
                .unwrap_or_else(|| panic!("cell `{c}` is not in backquotes"))
                .to_string(),
        };
        let key: u64 = cols[2].parse().unwrap_or_else(|_| panic!("{line}"));
        assert_eq!(text_key(&cell), key, "{line}");
        checked += 1;
    }
    assert!(checked >= 10, "{checked} vectors");
}
