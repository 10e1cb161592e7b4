//! Vocabulary (min-count, OOV, save/load), dataset, split resolution and shuffled batches.

use crossadapt::data::{
    shuffled_batches, Dataset, DayCount, DaySource, NumScale, SplitConfig, SynthConfig,
    SyntheticSource, Vocabulary, FIRST_ID, OOV_ID,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn tiny() -> SyntheticSource {
    let cfg = SynthConfig {
        rows_per_day: 500,
        ..SynthConfig::preset("tiny").expect("tiny")
    };
    SyntheticSource::new(cfg).expect("source")
}

#[test]
fn vocabulary_min_count_oov_and_save_load() {
    let src = tiny();
    let all = Vocabulary::fit(&src, &[0, 1], 1).expect("fit");
    let cut = Vocabulary::fit(&src, &[0, 1], 3).expect("fit");
    let day0 = src.raw_day(0).expect("day 0");
    // Every key of a training day is in the min-count-1 vocabulary, so no OOV.
    let enc = all.encode(&day0);
    assert!(enc.cat.iter().all(|&id| id >= FIRST_ID));
    // A cut-off drops rare keys to OOV but keeps frequent ones.
    let enc_cut = cut.encode(&day0);
    assert!(enc_cut.cat.contains(&OOV_ID));
    assert!(enc_cut.cat.iter().any(|&id| id >= FIRST_ID));
    for f in 0..all.fields.len() {
        assert!(cut.fields[f].entries() <= all.fields[f].entries());
    }
    let spec = all.feature_spec();
    assert_eq!(spec.cat[0].vocab, all.fields[0].entries() + 2);
    assert_eq!(spec.user_field.as_deref(), Some("user"));
    // Unseen ids of a later day become OOV.
    let later = all.encode(&src.raw_day(9).expect("day 9"));
    assert!(later.cat.iter().all(|&id| id != 0));
    assert!(later.cat.contains(&OOV_ID));

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vocab.json");
    all.save(&path).expect("save");
    let back = Vocabulary::load(&path).expect("load");
    assert_eq!(back.encode(&day0), enc);
    assert_eq!(back.feature_spec(), spec);
    std::fs::write(&path, "{\"fields\": 3}").expect("corrupt");
    let e = format!(
        "{:#}",
        Vocabulary::load(&path).expect_err("corrupt file must fail")
    );
    assert!(e.contains("vocab.json"), "{e}");
}

#[test]
fn numeric_values_are_scaled_by_training_statistics() {
    let src = tiny();
    let vocab = Vocabulary::fit(&src, &[0, 1], 1).expect("fit");
    let nn = src.num_fields().len();
    assert!(nn > 0, "the tiny preset has numeric fields");
    assert_eq!(vocab.num_scale.len(), nn);
    // Over the training days, every scaled field has mean 0 and variance 1.
    let mut train = vocab.encode(&src.raw_day(0).expect("day 0"));
    train.extend(&vocab.encode(&src.raw_day(1).expect("day 1")));
    for j in 0..nn {
        let col: Vec<f64> = (0..train.rows())
            .map(|r| train.num_row(r)[j] as f64)
            .collect();
        let n = col.len() as f64;
        let mean = col.iter().sum::<f64>() / n;
        let var = col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 1e-4, "field {j}: mean {mean}");
        assert!((var - 1.0).abs() < 1e-3, "field {j}: variance {var}");
    }
    // By hand: the first value minus the training mean, over the training deviation.
    let raw = src.raw_day(0).expect("day 0");
    let s = vocab.num_scale[0];
    let want = (raw.num[0] - s.mean) / s.std;
    assert!(
        (train.num[0] - want).abs() < 1e-6,
        "{} vs {want}",
        train.num[0]
    );
    assert!(s.std > 0.0 && s != NumScale::IDENTITY);

    // A vocabulary written before scaling existed has none and passes values through.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vocab.json");
    vocab.save(&path).expect("save");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    json.as_object_mut().expect("object").remove("num_scale");
    std::fs::write(&path, serde_json::to_vec(&json).expect("json")).expect("write");
    let old = Vocabulary::load(&path).expect("old vocabulary loads");
    assert!(old.num_scale.is_empty());
    assert_eq!(old.encode(&raw).num, raw.num);
}

#[test]
fn dataset_encodes_days_on_demand() {
    let src = tiny();
    let vocab = Vocabulary::fit(&src, &[0], 1).expect("fit");
    let ds = Dataset::new(Box::new(tiny()), vocab);
    assert_eq!(ds.num_days(), 10);
    let d3 = ds.day(3).expect("day 3");
    assert_eq!(d3.rows(), 500);
    assert_eq!(d3.num_cat, ds.spec().num_cat());
    assert!(ds.day(10).is_err());
}

#[test]
fn split_counts_fractions_and_errors() {
    let plan = SplitConfig::default().resolve(24).expect("default");
    assert_eq!(plan.history, (0..6).collect::<Vec<u32>>());
    assert_eq!(plan.retained, (6..12).collect::<Vec<u32>>());
    assert_eq!(plan.online, (12..24).collect::<Vec<u32>>());
    let mixed = SplitConfig {
        history: DayCount::Days(2),
        retained: DayCount::Fraction(0.5),
        online: DayCount::Days(1),
        holdout: None,
    };
    // The counts take their days first; the shares divide what the counts leave (7 days),
    // and a share alone among counts takes all of it (docs/data.md): no day goes unread.
    let plan = mixed.resolve(10).expect("mixed");
    assert_eq!(
        (plan.history.len(), plan.retained, plan.online),
        (2, vec![2, 3, 4, 5, 6, 7, 8], vec![9])
    );
    let too_many = SplitConfig {
        history: DayCount::Days(5),
        retained: DayCount::Days(5),
        online: DayCount::Days(1),
        holdout: None,
    };
    let e = format!("{:#}", too_many.resolve(10).expect_err("too many days"));
    assert!(e.contains("11 days") && e.contains("only 10"), "{e}");
    let bad = SplitConfig {
        online: DayCount::Fraction(1.5),
        ..SplitConfig::default()
    };
    assert!(format!("{:#}", bad.resolve(10).expect_err("bad fraction")).contains("split.online"));
    let none = SplitConfig {
        online: DayCount::Days(0),
        ..SplitConfig::default()
    };
    assert!(none.resolve(10).is_err());
    // Counts and fractions parse from TOML.
    let parsed: SplitConfig =
        toml::from_str("history = 4\nretained = 0.25\nonline = 2\n").expect("toml");
    assert_eq!(parsed.retained, DayCount::Fraction(0.25));
    assert_eq!(parsed.history, DayCount::Days(4));
}

#[test]
fn shuffled_batches_cover_every_row_once() {
    let src = tiny();
    let vocab = Vocabulary::fit(&src, &[0], 1).expect("fit");
    let day = vocab.encode(&src.raw_day(0).expect("day"));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let batches = shuffled_batches(&day, 128, &mut rng);
    assert_eq!(
        batches.iter().map(|b| b.rows()).collect::<Vec<_>>(),
        vec![128, 128, 128, 116]
    );
    let mut rows: Vec<Vec<u32>> = batches
        .iter()
        .flat_map(|b| (0..b.rows()).map(|r| b.cat_row(r).to_vec()))
        .collect();
    let mut orig: Vec<Vec<u32>> = (0..day.rows()).map(|r| day.cat_row(r).to_vec()).collect();
    assert_ne!(rows, orig, "order must change");
    rows.sort();
    orig.sort();
    assert_eq!(rows, orig);
    let again = shuffled_batches(&day, 128, &mut ChaCha8Rng::seed_from_u64(1));
    assert_eq!(again, batches);
}
