//! Trainer behaviour: determinism, row-sparse updates, freezing, accumulation, distillation,
//! errors instead of panics, and exact checkpoint round trips.

use crossadapt::data::Batch;
use crossadapt::model::build_model;
use crossadapt::train::toy::ToyWorld;
use crossadapt::train::{EmbOptimizer, Target, TrainConfig, Trainer};

const SPEC: &str = "deepfm:emb=4,hidden=16x8";

fn cfg() -> TrainConfig {
    TrainConfig {
        threads: 1,
        ..TrainConfig::default()
    }
}

fn trainer(spec: &str, seed: u64, cfg: &TrainConfig) -> (ToyWorld, Trainer) {
    let world = ToyWorld::new(4, 20, 5);
    let model = build_model(&spec.parse().unwrap(), &world.features, seed).unwrap();
    (world, Trainer::new(model, cfg).unwrap())
}

fn train(tr: &mut Trainer, data: &Batch) {
    for b in data.chunks(64) {
        tr.train_batch(&b, Target::Labels).unwrap();
    }
}

#[test]
fn same_seed_gives_bit_identical_training() {
    let (world, mut a) = trainer(SPEC, 9, &cfg());
    let (_, mut b) = trainer(SPEC, 9, &cfg());
    let data = world.batch(640, 1);
    train(&mut a, &data);
    train(&mut b, &data);
    let test = world.batch(100, 2);
    assert_eq!(
        a.predict_logits(&test).unwrap(),
        b.predict_logits(&test).unwrap()
    );
    assert_eq!(a.steps(), 10);
    let (_, c) = trainer(SPEC, 10, &cfg());
    assert_ne!(
        a.predict_logits(&test).unwrap(),
        c.predict_logits(&test).unwrap()
    );
}

#[test]
fn embedding_steps_touch_only_the_rows_in_the_batch() {
    for kind in [EmbOptimizer::Adam, EmbOptimizer::Adagrad] {
        let (world, mut tr) = trainer(
            SPEC,
            1,
            &TrainConfig {
                emb_optimizer: kind,
                ..cfg()
            },
        );
        let b = world.batch(3, 4);
        let before = tr.model().embeddings().clone();
        tr.train_batch(&b, Target::Labels).unwrap();
        let after = tr.model().embeddings();
        let touched = before.batch_rows(&b).unwrap();
        for r in 0..before.rows() {
            let (s, e) = (r * before.dim, (r + 1) * before.dim);
            let same = before.data[s..e] == after.data[s..e];
            assert_eq!(same, !touched.contains(&(r as u32)), "{kind:?} row {r}");
        }
    }
}

#[test]
fn freezing_keeps_the_frozen_part_exactly() {
    let (world, mut tr) = trainer(SPEC, 1, &cfg());
    let b = world.batch(64, 4);
    let test = world.batch(50, 5);
    let table = tr.model().embeddings().data.clone();
    tr.set_frozen(true, false);
    tr.train_batch(&b, Target::Labels).unwrap();
    assert_eq!(tr.model().embeddings().data, table);
    let dense_logits = tr.predict_logits(&test).unwrap();
    tr.set_frozen(false, true);
    let w0 = tr.model().dense().vars()[1]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    tr.train_batch(&b, Target::Labels).unwrap();
    let w1 = tr.model().dense().vars()[1]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(w0, w1);
    assert_ne!(tr.model().embeddings().data, table);
    assert_ne!(tr.predict_logits(&test).unwrap(), dense_logits);
}

#[test]
fn accumulation_steps_once_for_many_batches() {
    let (world, mut tr) = trainer(SPEC, 1, &cfg());
    let test = world.batch(50, 5);
    let z0 = tr.predict_logits(&test).unwrap();
    for s in 0..3 {
        tr.accumulate(&world.batch(32, s), Target::Labels).unwrap();
    }
    assert_eq!((tr.steps(), tr.pending_batches()), (0, 3));
    assert_eq!(
        tr.predict_logits(&test).unwrap(),
        z0,
        "accumulating must not change weights"
    );
    tr.step().unwrap();
    assert_eq!((tr.steps(), tr.pending_batches()), (1, 0));
    assert_ne!(tr.predict_logits(&test).unwrap(), z0);
    tr.step().unwrap();
    assert_eq!(
        tr.steps(),
        1,
        "a step with nothing accumulated is not a step"
    );
}

#[test]
fn distillation_with_zero_weight_is_label_training() {
    let (world, mut a) = trainer(SPEC, 2, &cfg());
    let (_, mut b) = trainer(SPEC, 2, &cfg());
    let data = world.batch(64, 1);
    let teacher = vec![3.0f32; 64];
    let la = a.train_batch(&data, Target::Labels).unwrap();
    let lb = b
        .train_batch(
            &data,
            Target::Distill {
                teacher_logits: &teacher,
                alpha: 0.0,
                temperature: 4.0,
                label_offset: 0.0,
            },
        )
        .unwrap();
    assert_eq!(la, lb);
    let test = world.batch(20, 3);
    assert_eq!(
        a.predict_logits(&test).unwrap(),
        b.predict_logits(&test).unwrap()
    );
    let err = b
        .accumulate(
            &data,
            Target::Distill {
                teacher_logits: &teacher[..3],
                alpha: 0.7,
                temperature: 4.0,
                label_offset: 0.0,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("teacher logits"), "{err}");
}

#[test]
fn diverged_weights_and_bad_batches_are_errors_not_panics() {
    let (world, mut tr) = trainer(SPEC, 1, &cfg());
    let mut bad = world.batch(4, 1);
    bad.cat[5] = 999;
    let e = tr.accumulate(&bad, Target::Labels).unwrap_err().to_string();
    assert!(e.contains("row 1 field 1") && e.contains("999"), "{e}");
    let mut short = world.batch(4, 1);
    short.num.pop();
    assert!(tr.predict_logits(&short).is_err());
    assert!(tr.accumulate(&Batch::empty(4, 1), Target::Labels).is_err());
    tr.model_mut().embeddings_mut().data.fill(f32::NAN);
    let e = tr
        .accumulate(&world.batch(4, 1), Target::Labels)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not finite"), "{e}");
    assert_eq!(tr.pending_batches(), 0);
}

#[test]
fn checkpoint_round_trip_gives_identical_predictions_and_continued_training() {
    for spec in [SPEC, "fibinet:emb=4,hidden=8,ratio=2"] {
        let (world, mut a) = trainer(spec, 3, &cfg());
        train(&mut a, &world.batch(256, 1));
        a.accumulate(&world.batch(32, 9), Target::Labels).unwrap(); // pending across the save
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        a.save(&path).unwrap();
        let mut b = Trainer::load(&path, &cfg()).unwrap();
        assert_eq!((b.steps(), b.pending_batches()), (a.steps(), 1));
        let test = world.batch(100, 2);
        assert_eq!(
            a.predict_logits(&test).unwrap(),
            b.predict_logits(&test).unwrap()
        );
        a.step().unwrap();
        b.step().unwrap();
        let more = world.batch(128, 7);
        train(&mut a, &more);
        train(&mut b, &more);
        assert_eq!(
            a.predict_logits(&test).unwrap(),
            b.predict_logits(&test).unwrap(),
            "{spec}"
        );
        assert_eq!(a.model().spec(), b.model().spec());
    }
}

#[test]
fn bad_checkpoints_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let e = format!("{:#}", Trainer::load(&junk, &cfg()).err().unwrap());
    assert!(e.contains("junk.safetensors"), "{e}");
    let missing = dir.path().join("missing.safetensors");
    let e = format!("{:#}", Trainer::load(&missing, &cfg()).err().unwrap());
    assert!(e.contains("missing.safetensors"), "{e}");
    let (_, tr) = trainer(SPEC, 1, &cfg());
    let path = dir.path().join("adam.safetensors");
    tr.save(&path).unwrap();
    let adagrad = TrainConfig {
        emb_optimizer: EmbOptimizer::Adagrad,
        ..cfg()
    };
    let e = format!("{:#}", Trainer::load(&path, &adagrad).err().unwrap());
    assert!(
        e.contains("adam.safetensors") && e.contains("Adagrad"),
        "{e}"
    );
}

#[test]
fn resetting_optimizer_state_drops_pending_gradients() {
    let (world, mut tr) = trainer(SPEC, 1, &cfg());
    tr.train_batch(&world.batch(32, 1), Target::Labels).unwrap();
    tr.accumulate(&world.batch(32, 2), Target::Labels).unwrap();
    tr.reset_optimizer_state();
    assert_eq!(tr.pending_batches(), 0);
    let test = world.batch(20, 3);
    let z = tr.predict_logits(&test).unwrap();
    tr.step().unwrap();
    assert_eq!(tr.predict_logits(&test).unwrap(), z);
}
