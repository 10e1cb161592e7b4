//! Each drift scenario moves only what it says: the id distributions (PSI against the day
//! before the shock, via [`crate::data::drift`]), the positive rate, or the truth that links
//! ids to clicks (how well the pre-shock truth still ranks the post-shock labels).

use super::truth::{target_rate, DayTruth, MAX_DIM};
use super::{DriftScenario, SynthConfig, SyntheticSource};
use crate::data::drift::{psi, IdDistribution};
use crate::data::source::{DaySource, RawDay};
use crate::train::metrics::auc;

const SHOCK_DAY: usize = 6;

fn config(drift: DriftScenario) -> SynthConfig {
    SynthConfig {
        rows_per_day: 8_000,
        drift,
        drift_days: 3,
        ..SynthConfig::preset("tiny").expect("tiny preset")
    }
}

fn day(s: &SyntheticSource, d: usize) -> RawDay {
    s.raw_day(d).expect("a day of a valid config")
}

/// PSI of field `f`'s ids on day `b` against day `a` (top 50 ids + other + unseen).
fn field_psi(a: &RawDay, b: &RawDay, f: usize) -> f64 {
    let reference = IdDistribution::reference(a.field_keys(f), 50);
    psi(
        reference.probabilities(),
        &reference.bucket(b.field_keys(f)),
    )
}

/// The hidden logit of each row under `truth` (ids only: the numeric effects never drift).
fn truth_scores(truth: &DayTruth, d: &RawDay) -> Vec<f32> {
    d.cat
        .chunks(d.num_cat)
        .map(|row| truth.row_logit(row))
        .collect()
}

/// What changed from the day before the shock to `after`.
#[derive(Debug)]
struct Moved {
    /// Largest PSI over the shocked fields, and over the other fields.
    psi_shocked: f64,
    psi_other: f64,
    /// Positive rate after minus before.
    rate_change: f64,
    /// AUC on `after`'s labels of `after`'s own truth minus that of the pre-shock truth.
    truth_auc_loss: f64,
}

fn moved(cfg: &SynthConfig, after: usize) -> Moved {
    let s = SyntheticSource::new(cfg.clone()).expect("valid config");
    let (a, b) = (day(&s, SHOCK_DAY - 1), day(&s, after));
    let (mut psi_shocked, mut psi_other) = (0f64, 0f64);
    for (f, field) in cfg.fields.iter().enumerate() {
        let p = field_psi(&a, &b, f);
        if cfg.shock_fields.contains(&field.name) {
            psi_shocked = psi_shocked.max(p);
        } else {
            psi_other = psi_other.max(p);
        }
    }
    let own = auc(&truth_scores(&DayTruth::new(cfg, after), &b), &b.label);
    let old = auc(
        &truth_scores(&DayTruth::new(cfg, SHOCK_DAY - 1), &b),
        &b.label,
    );
    Moved {
        psi_shocked,
        psi_other,
        rate_change: b.positive_rate() - a.positive_rate(),
        truth_auc_loss: own.expect("both classes") - old.expect("both classes"),
    }
}

/// Bands: PSI < 0.1 is "stable"; a rate change within 0.015 is noise at 8 000 rows (about
/// 3 standard errors of a difference of two rates near 0.1); the truth's AUC is unchanged
/// when the truth is.
fn assert_moves(s: DriftScenario, ids: bool, rate: bool, concept: bool) {
    let cfg = config(s);
    let m = moved(&cfg, SHOCK_DAY + 2);
    eprintln!("{s:?}: {m:?}");
    assert!(m.psi_other < 0.1, "{s:?}: unshocked fields moved: {m:?}");
    if ids {
        assert!(m.psi_shocked > 0.25, "{s:?}: ids did not move: {m:?}");
    } else {
        assert!(m.psi_shocked < 0.1, "{s:?}: ids moved: {m:?}");
    }
    let shocked_rate = cfg.base_rate * (cfg.shock_rate_factor - 1.0);
    if rate {
        assert!(
            (m.rate_change - shocked_rate).abs() < 0.015,
            "{s:?}: rate did not move by {shocked_rate}: {m:?}"
        );
    } else {
        assert!(m.rate_change.abs() < 0.015, "{s:?}: rate moved: {m:?}");
    }
    if concept {
        assert!(m.truth_auc_loss > 0.05, "{s:?}: truth did not move: {m:?}");
    } else {
        assert_eq!(m.truth_auc_loss, 0.0, "{s:?}: truth moved: {m:?}");
    }
}

#[test]
fn covariate_moves_only_the_ids() {
    assert_moves(DriftScenario::Covariate, true, false, false);
}

#[test]
fn concept_moves_only_the_interactions() {
    assert_moves(DriftScenario::Concept, false, false, true);
}

#[test]
fn label_moves_only_the_rate() {
    assert_moves(DriftScenario::Label, false, true, false);
}

#[test]
fn none_moves_nothing() {
    assert_moves(DriftScenario::None, false, false, false);
    // Stationary: every day has the same truth and the same expected rate.
    let cfg = config(DriftScenario::None);
    let (t0, t9) = (DayTruth::new(&cfg, 0), DayTruth::new(&cfg, 9));
    for (a, b) in t0.fields.iter().zip(&t9.fields) {
        assert_eq!((a.weight, a.angle, a.churn_period), (b.weight, b.angle, 0));
        assert!(!b.popularity_shocked);
    }
    assert!((0..10).all(|d| target_rate(&cfg, d) == cfg.base_rate));
}

#[test]
fn shock_moves_everything() {
    // The truth also moves through the background rotation, so only its direction is tested.
    assert_moves(DriftScenario::Shock, true, true, true);
}

#[test]
fn gradual_spreads_the_shock_over_its_days() {
    let cfg = config(DriftScenario::Gradual);
    let steps: Vec<Moved> = (0..3).map(|k| moved(&cfg, SHOCK_DAY + k)).collect();
    eprintln!("{steps:#?}");
    for w in steps.windows(2) {
        assert!(w[1].psi_shocked > w[0].psi_shocked, "ids ramp: {steps:?}");
        assert!(
            w[1].truth_auc_loss > w[0].truth_auc_loss,
            "truth ramp: {steps:?}"
        );
    }
    // The first day moved part of the way: visibly (PSI past the "stable" band, the old
    // truth already ranking worse), but less than the sudden shock does in one day.
    let sudden = moved(&config(DriftScenario::Shock), SHOCK_DAY);
    assert!(steps[0].psi_shocked > 0.1, "{steps:?}");
    assert!(steps[0].truth_auc_loss > 0.005, "{steps:?}");
    assert!(
        steps[0].psi_shocked < sudden.psi_shocked,
        "{steps:?} vs {sudden:?}"
    );
    assert!(
        steps[0].truth_auc_loss < sudden.truth_auc_loss,
        "{steps:?} vs {sudden:?}"
    );
    // Once complete, the world is the sudden shock's.
    let shock = config(DriftScenario::Shock);
    for d in [SHOCK_DAY + 2, SHOCK_DAY + 3] {
        let (g, s) = (DayTruth::new(&cfg, d), DayTruth::new(&shock, d));
        assert_eq!(g.shock_move_share, s.shock_move_share);
        for (a, b) in g.fields.iter().zip(&s.fields) {
            assert_eq!(
                (a.weight, a.popularity_shocked),
                (b.weight, b.popularity_shocked)
            );
        }
        assert_eq!(target_rate(&cfg, d), target_rate(&shock, d));
    }
    // The expected rate steps linearly: a third of the way on the first day, when the weekly
    // cycle is set aside.
    let flat = SynthConfig {
        weekday_amplitude: 0.0,
        ..cfg.clone()
    };
    let third = flat.base_rate * (1.0 + (flat.shock_rate_factor - 1.0) / 3.0);
    assert!((target_rate(&flat, SHOCK_DAY) - third).abs() < 1e-12);
}

#[test]
fn drift_start_names_the_first_changed_day() {
    assert_eq!(config(DriftScenario::Shock).drift_start(), Some(SHOCK_DAY));
    assert_eq!(
        config(DriftScenario::Concept).drift_start(),
        Some(SHOCK_DAY)
    );
    assert_eq!(config(DriftScenario::None).drift_start(), None);
    let flat_rate = SynthConfig {
        shock_rate_factor: 1.0,
        ..config(DriftScenario::Label)
    };
    assert_eq!(flat_rate.drift_start(), None);
    let late = SynthConfig {
        shock_day: 10,
        ..config(DriftScenario::Shock)
    };
    assert_eq!(late.drift_start(), None);
}

#[test]
fn scenario_keys_parse_and_bad_values_name_the_key() {
    let parse = |text: &str| toml::from_str::<SynthConfig>(text).map_err(|e| e.to_string());
    let cfg = parse("drift = \"concept\"\ndrift_days = 2\n").expect("valid keys");
    assert_eq!((cfg.drift, cfg.drift_days), (DriftScenario::Concept, 2));
    // Absent: the historical shock (old session files keep their stream).
    assert_eq!(parse("").expect("empty").drift, DriftScenario::Shock);
    let err = parse("drift = \"sudden\"\n").expect_err("unknown scenario");
    assert!(err.contains("sudden"), "{err}");
    let err = parse("drift_days = 0\n").expect_err("zero days");
    assert!(err.contains("drift_days"), "{err}");
}

/// Every piece a streamed read of `day` hands over (the read stopped after `stop_after` pieces
/// when set).
fn pieces(s: &SyntheticSource, day: usize, stop_after: Option<usize>) -> Vec<RawDay> {
    let mut out = Vec::new();
    s.day_chunks(day, &mut |piece| {
        out.push(piece);
        Ok(if Some(out.len()) == stop_after {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        })
    })
    .expect("a day of a valid config");
    out
}

#[test]
fn a_day_read_again_comes_from_the_memo_piece_for_piece() {
    // Two pieces per day, so the memo must keep the streamed read's boundaries.
    let cfg = SynthConfig {
        rows_per_day: crate::data::source::STREAM_ROWS + 100,
        ..config(DriftScenario::None)
    };
    let fresh = SyntheticSource::new(cfg.clone())
        .unwrap()
        .with_memo_budget(0);
    let memo = SyntheticSource::new(cfg).unwrap();
    let want = pieces(&fresh, 2, None);
    assert_eq!(want.len(), 2);
    assert!(fresh.memo_days().is_empty(), "a zero budget keeps nothing");
    assert_eq!(pieces(&memo, 2, None), want);
    assert_eq!(memo.memo_days(), [2]);
    assert_eq!(
        pieces(&memo, 2, None),
        want,
        "the second read, from the memo"
    );
    assert_eq!(
        pieces(&memo, 2, Some(1)),
        want[..1],
        "a stopped read of a kept day"
    );
    assert_eq!(memo.raw_day(2).unwrap(), fresh.raw_day(2).unwrap());
}

#[test]
fn the_memo_keeps_whole_days_within_its_budget_least_recent_out() {
    let cfg = config(DriftScenario::None);
    let one_day = {
        let s = SyntheticSource::new(cfg.clone()).unwrap();
        let day = s.raw_day(0).unwrap();
        day.cat.len() * 8 + (day.num.len() + day.label.len()) * 4
    };
    let s = SyntheticSource::new(cfg)
        .unwrap()
        .with_memo_budget(2 * one_day);
    pieces(&s, 0, Some(1));
    assert!(
        s.memo_days().is_empty(),
        "a read stopped early keeps nothing"
    );
    for d in [0, 1, 2] {
        pieces(&s, d, None);
    }
    assert_eq!(s.memo_days(), [1, 2], "two days fit: the oldest went");
    pieces(&s, 1, None);
    assert_eq!(s.memo_days(), [2, 1], "a re-read day is the most recent");
    let small = SyntheticSource::new(config(DriftScenario::None))
        .unwrap()
        .with_memo_budget(one_day - 1);
    pieces(&small, 0, None);
    assert!(
        small.memo_days().is_empty(),
        "a day over the budget is regenerated"
    );
}

/// FNV-1a over every id, numeric value and label of `days` of `cfg` (a fingerprint of the
/// stream, to pin a world's rows).
fn stream_checksum(cfg: &SynthConfig, days: &[usize]) -> u64 {
    let s = SyntheticSource::new(cfg.clone()).expect("valid config");
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    let mut eat = |x: u64| {
        for b in x.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for &d in days {
        let raw = day(&s, d);
        raw.cat.iter().for_each(|&k| eat(k));
        raw.num.iter().for_each(|&x| eat(x.to_bits() as u64));
        raw.label.iter().for_each(|&y| eat(y.to_bits() as u64));
    }
    h
}

#[test]
fn fm4_is_the_historical_default_world_row_for_row() {
    // Fingerprints taken from the generator before the default world changed (the `default`
    // preset then, `fm4` now; and `tiny`, which keeps the `fm4` truth): days before the shock,
    // after it, and the shock day's neighbourhood.
    let cfg = SynthConfig {
        rows_per_day: 3_000,
        ..SynthConfig::preset("fm4").expect("fm4")
    };
    assert_eq!(stream_checksum(&cfg, &[0, 9, 19]), 0xfaf4_8729_fac8_a6e2);
    let tiny = SynthConfig::preset("tiny").expect("tiny");
    assert_eq!(stream_checksum(&tiny, &[0, 7]), 0xa9df_c61d_adce_db9b);
    // The default world is another one.
    let default = SynthConfig {
        rows_per_day: 3_000,
        ..SynthConfig::default()
    };
    assert_ne!(
        stream_checksum(&default, &[0, 9, 19]),
        0xfaf4_8729_fac8_a6e2
    );
}

#[test]
fn a_stored_config_from_before_the_three_way_term_keeps_its_world() {
    // What a session wrote before `triple_scale` existed: every other key, `preset` default.
    let mut stored = serde_json::to_value(SynthConfig::fm4()).expect("serialise");
    let table = stored.as_object_mut().expect("a table");
    table.remove("triple_scale");
    table.insert("preset".into(), "default".into());
    let cfg: SynthConfig = serde_json::from_value(stored).expect("a stored config reads");
    assert_eq!(cfg.triple_scale, 0.0);
    assert_eq!(cfg.latent_dim, 4);
    // A hand-written config naming a few keys gets the rest from its preset.
    let cfg: SynthConfig = toml::from_str("latent_dim = 12\n").expect("a partial config reads");
    assert_eq!(cfg.triple_scale, SynthConfig::default().triple_scale);
    let err = toml::from_str::<SynthConfig>("latent_dim = 17\n").expect_err("too wide");
    assert!(err.to_string().contains("latent_dim"), "{err}");
    let err = toml::from_str::<SynthConfig>("triple_scale = -1\n").expect_err("negative");
    assert!(err.to_string().contains("triple_scale"), "{err}");
}

/// A three-field world, its row's logit against the formula written out term by term: the
/// biases, every pair's dot product (not the sum-of-squares shortcut the generator takes) and
/// the product of the three summed scores, each with its normalisation.
#[test]
fn row_logit_is_the_formula_term_by_term() {
    let field = |name: &str| super::SynthField {
        name: name.into(),
        cardinality: 50,
        kind: super::FieldKind::Zipf,
    };
    let cfg = SynthConfig {
        fields: vec![field("a"), field("b"), field("c")],
        numeric_fields: vec![],
        user_field: None,
        shock_fields: vec![],
        latent_dim: 12,
        interaction_scale: 1.5,
        triple_scale: 0.5,
        ..SynthConfig::preset("no-drift").expect("no-drift")
    };
    let truth = DayTruth::new(&cfg, 0);
    let row = [3u64, 5, 8];
    let (mut v, mut t, mut bias) = ([[0f32; MAX_DIM]; 3], [[0f32; 3]; 3], 0f64);
    for f in 0..3 {
        bias += truth.id_effect(f, row[f], &mut v[f], &mut t[f]) as f64;
        // Dimensions past `latent_dim` carry nothing.
        assert!(v[f][12..].iter().all(|&x| x == 0.0), "{:?}", v[f]);
        assert!(v[f][..12].iter().all(|&x| x != 0.0), "{:?}", v[f]);
        assert!(t[f].iter().all(|&x| x != 0.0), "{:?}", t[f]);
    }
    let dot = |f: usize, g: usize| {
        (0..12)
            .map(|j| v[f][j] as f64 * v[g][j] as f64)
            .sum::<f64>()
    };
    let pairs = dot(0, 1) + dot(0, 2) + dot(1, 2);
    let score = |k: usize| (0..3).map(|f| t[f][k] as f64).sum::<f64>();
    // 3 pairs; each score a sum over 3 fields.
    let want =
        bias + 1.5 / 3f64.sqrt() * pairs + 0.5 / 27f64.sqrt() * score(0) * score(1) * score(2);
    let got = truth.row_logit(&row) as f64;
    assert!((got - want).abs() < 1e-5, "row_logit {got}, by hand {want}");
    // Without the three-way term the row is the factorisation machine alone.
    let fm = DayTruth::new(
        &SynthConfig {
            triple_scale: 0.0,
            ..cfg
        },
        0,
    );
    let want = bias + 1.5 / 3f64.sqrt() * pairs;
    assert!((fm.row_logit(&row) as f64 - want).abs() < 1e-5);
}
