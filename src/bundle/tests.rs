use super::*;
use crate::data::Batch;
use crate::model::Arch;

fn vocab() -> Vocabulary {
    Vocabulary {
        fields: vec![
            FieldVocab::new("user".into(), vec![11, 7, 300]),
            FieldVocab::new("item".into(), vec![5, 9]),
        ],
        num_fields: vec!["price".into()],
        num_scale: vec![NumScale {
            mean: 2.0,
            std: 4.0,
        }],
        user_field: Some("user".into()),
        min_count: 2,
    }
}

fn schema() -> DataSchema {
    DataSchema {
        categorical: vec!["user".into(), "item".into()],
        numeric: vec!["price".into()],
        user: Some("user".into()),
    }
}

fn batch() -> Batch {
    Batch {
        num_cat: 2,
        num_num: 1,
        // Padding, OOV and every entry appear.
        cat: vec![2, 3, 4, 2, 0, 1, 1, 3, 3, 3],
        num: vec![0.5, -1.0, 2.0, 0.0, 1.5],
        label: vec![1.0, 0.0, 0.0, 1.0, 0.0],
        users: Vec::new(),
    }
}

fn content<'a>(spec: &'a ModelSpec, v: &'a Vocabulary, s: &'a DataSchema) -> BundleContent<'a> {
    BundleContent {
        role: Role::Student,
        spec,
        vocab: v,
        schema: s,
        provenance: Provenance::default(),
        train_oov_share: None,
        origin: None,
    }
}

fn trained(spec: &ModelSpec, v: &Vocabulary) -> Trainer {
    let model = build_model(spec, &v.feature_spec(), 3).unwrap();
    let mut t = Trainer::new(model, &TrainConfig::default()).unwrap();
    t.set_vocabulary(Some(v.fingerprint()));
    // A few steps so no weight is at its initial value (biases leave zero).
    for _ in 0..3 {
        t.train_batch(&batch(), crate::train::Target::Labels)
            .unwrap();
    }
    t
}

#[test]
fn every_architecture_round_trips_bit_for_bit_from_a_model_and_from_a_checkpoint() {
    let (v, s) = (vocab(), schema());
    for arch in Arch::ALL {
        let mut spec = ModelSpec::default_for(arch);
        spec.emb_dim = if arch == Arch::Lr { 1 } else { 4 };
        spec.hidden = if spec.hidden.is_empty() {
            vec![]
        } else {
            vec![6, 3]
        };
        spec.hidden2 = vec![4];
        spec.cin = vec![3, 2];
        spec.att_dim = 4;
        let t = trained(&spec, &v);
        let want = t.predict_logits(&batch()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("from-model");
        write(&a, content(&spec, &v, &s), Weights::Model(t.model())).unwrap();
        let ckpt = dir.path().join("t.safetensors");
        t.save(&ckpt).unwrap();
        let b = dir.path().join("from-checkpoint");
        write(&b, content(&spec, &v, &s), Weights::Checkpoint(&ckpt)).unwrap();
        for f in [WEIGHTS_FILE, VOCAB_FILE] {
            assert_eq!(
                std::fs::read(a.join(f)).unwrap(),
                std::fs::read(b.join(f)).unwrap(),
                "{arch}: {f}"
            );
        }
        let bundle = Bundle::open(&b).unwrap();
        let back = bundle.vocabulary().unwrap();
        assert_eq!(back.fingerprint(), v.fingerprint(), "{arch}");
        let loaded = bundle.trainer(&back, &TrainConfig::default()).unwrap();
        let got = loaded.predict_logits(&batch()).unwrap();
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "{arch}");
    }
}

#[test]
fn linear_weights_are_stored_as_pytorch_out_by_in() {
    let (v, s) = (vocab(), schema());
    let spec: ModelSpec = "deepfm:emb=4,hidden=3".parse().unwrap();
    let t = trained(&spec, &v);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("b");
    write(&d, content(&spec, &v, &s), Weights::Model(t.model())).unwrap();
    let names = t.model().dense().names().to_vec();
    let i = names.iter().position(|n| n == "deep.0.w").unwrap();
    // crossadapt: (in = 3 fields x 4, out = 3).
    let w = t.model().dense().vars()[i]
        .as_tensor()
        .to_vec2::<f32>()
        .unwrap();
    let mut r = StreamReader::open(&d.join(WEIGHTS_FILE)).unwrap();
    let bw = r.f32_vec("mlp.net.0.weight", &[3, 12]).unwrap();
    for (inp, row) in w.iter().enumerate() {
        for (out, &x) in row.iter().enumerate() {
            assert_eq!(bw[out * 12 + inp], x);
        }
    }
    // The table is the model's, rows in field order, and offsets say where each field starts.
    let table = r.f32_vec(names::TABLE, &[9, 4]).unwrap();
    assert_eq!(table, t.model().embeddings().data);
    let m: Manifest =
        serde_json::from_slice(&std::fs::read(d.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(m.vocabulary.categorical[1].offset, 5);
    assert_eq!(m.vocabulary.numeric[0].std, 4.0);
}

#[test]
fn an_existing_folder_is_not_overwritten() {
    let (v, s) = (vocab(), schema());
    let spec: ModelSpec = "lr".parse().unwrap();
    let t = trained(&spec, &v);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "x").unwrap();
    let e = write(
        dir.path(),
        content(&spec, &v, &s),
        Weights::Model(t.model()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("already exists"), "{e}");
    assert!(dir.path().join("keep.txt").exists());
}

#[test]
fn a_checkpoint_of_another_mapping_is_refused_on_export() {
    let (v, s) = (vocab(), schema());
    let spec: ModelSpec = "lr".parse().unwrap();
    let t = trained(&spec, &v);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("t.safetensors");
    t.save(&ckpt).unwrap();
    // Same sizes, two keys swapped: another id -> row map.
    let mut other = vocab();
    other.fields[0] = FieldVocab::new("user".into(), vec![7, 11, 300]);
    let e = write(
        &dir.path().join("b"),
        content(&spec, &other, &s),
        Weights::Checkpoint(&ckpt),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("another vocabulary"), "{e}");
}

#[test]
fn schema_fingerprint_is_the_compact_json_digest() {
    // The same bytes another stack hashes: json.dumps(obj, separators=(",", ":")).
    let s = DataSchema {
        categorical: vec!["a".into()],
        numeric: vec![],
        user: None,
    };
    let json = r#"{"categorical":["a"],"numeric":[],"user":null}"#;
    assert_eq!(
        s.fingerprint(),
        format!("sha256:{}", stio::hex(&Sha256::digest(json.as_bytes())))
    );
}

#[test]
fn weights_or_keys_of_another_vocabulary_are_refused_even_with_valid_digests() {
    let (v, s) = (vocab(), schema());
    let spec: ModelSpec = "deepfm:emb=4,hidden=3".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    write(
        &a,
        content(&spec, &v, &s),
        Weights::Model(trained(&spec, &v).model()),
    )
    .unwrap();
    // The same model over a vocabulary with one more user key: one more table row.
    let mut big = vocab();
    big.fields[0] = FieldVocab::new("user".into(), vec![11, 7, 300, 5]);
    let b = dir.path().join("b");
    write(
        &b,
        content(&spec, &big, &s),
        Weights::Model(trained(&spec, &big).model()),
    )
    .unwrap();
    // Another stack's bundle: no digests, A's manifest and keys with B's weights.
    let edit = |from: &Path, files: &[&str]| {
        let d = dir.path().join(format!("mix-{}", files.join("-")));
        std::fs::create_dir_all(&d).unwrap();
        for f in [MANIFEST_FILE, WEIGHTS_FILE, VOCAB_FILE] {
            let src = if files.contains(&f) { from } else { &a };
            std::fs::copy(src.join(f), d.join(f)).unwrap();
        }
        let mut m: Manifest =
            serde_json::from_slice(&std::fs::read(d.join(MANIFEST_FILE)).unwrap()).unwrap();
        m.files.clear();
        std::fs::write(d.join(MANIFEST_FILE), serde_json::to_vec(&m).unwrap()).unwrap();
        d
    };
    let d = edit(&b, &[WEIGHTS_FILE]);
    let bundle = Bundle::open(&d).unwrap();
    let voc = bundle.vocabulary().unwrap();
    let Err(e) = bundle.trainer(&voc, &TrainConfig::default()) else {
        panic!("weights of another vocabulary were loaded")
    };
    let e = format!("{e:#}");
    assert!(
        e.contains("table.weight") && e.contains("[10, 4]") && e.contains("[9, 4]"),
        "{e}"
    );
    // B's keys under A's manifest: the key tensor has another length.
    let d = edit(&b, &[VOCAB_FILE]);
    let e = format!("{:#}", Bundle::open(&d).unwrap().vocabulary().unwrap_err());
    assert!(e.contains("keys.0"), "{e}");
}

/// A spec that leaves a key out is refused naming the keys, not later as a tensor shape; a
/// digest written `sha256:HEX` is the same digest as `HEX`; numeric scaling written in f64
/// survives a re-export through the bundle's vocabulary.
#[test]
fn bundle_manifests_are_read_as_documented() {
    let (v, s) = (vocab(), schema());
    let spec: ModelSpec = "mlp:emb=4,hidden=8".parse().unwrap();
    let t = trained(&spec, &v);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("b");
    write(&d, content(&spec, &v, &s), Weights::Model(t.model())).unwrap();
    let edit = |f: &dyn Fn(&mut Manifest)| {
        let mut m: Manifest =
            serde_json::from_slice(&std::fs::read(d.join(MANIFEST_FILE)).unwrap()).unwrap();
        f(&mut m);
        std::fs::write(d.join(MANIFEST_FILE), serde_json::to_vec(&m).unwrap()).unwrap();
    };
    edit(&|m| {
        for digest in m.files.values_mut() {
            digest.sha256 = format!("sha256:{}", digest.sha256.to_uppercase());
        }
    });
    Bundle::open(&d).unwrap();
    edit(&|m| m.model = "mlp".into());
    let e = format!("{:#}", Bundle::open(&d).err().unwrap());
    assert!(e.contains("missing emb, hidden"), "{e}");
    edit(&|m| m.model = "mlp:emb=4".into());
    let e = format!("{:#}", Bundle::open(&d).err().unwrap());
    assert!(e.contains("missing hidden") && !e.contains("emb,"), "{e}");

    // f64 scaling a PyTorch stack wrote: used as f32, written back as it was.
    edit(&|m| {
        m.model = "mlp:emb=4,hidden=8".into();
        m.vocabulary.numeric[0].mean = 2.000000000123;
        m.vocabulary.numeric[0].std = 0.1;
    });
    let b = Bundle::open(&d).unwrap();
    let bv = b.vocabulary().unwrap();
    assert_eq!(bv.num_scale[0].mean, 2.000000000123f64 as f32);
    let bt = b.trainer(&bv, &TrainConfig::default()).unwrap();
    let again = dir.path().join("again");
    let mut c = content(&spec, &bv, &s);
    c.origin = Some(&b.manifest);
    write(&again, c, Weights::Model(bt.model())).unwrap();
    let m: Manifest =
        serde_json::from_slice(&std::fs::read(again.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(m.vocabulary.numeric[0].mean, 2.000000000123);
    assert_eq!(m.vocabulary.numeric[0].std, 0.1);
    // Without the origin, an f32 is written as its shortest decimal.
    write(
        &dir.path().join("plain"),
        content(&spec, &bv, &s),
        Weights::Model(bt.model()),
    )
    .unwrap();
    let text = std::fs::read_to_string(dir.path().join("plain").join(MANIFEST_FILE)).unwrap();
    assert!(
        text.contains("\"std\": 0.1\n") || text.contains("\"std\": 0.1,"),
        "{text}"
    );
}
