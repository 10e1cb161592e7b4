//! The synthetic drifting stream: determinism, label rate, drift statistics.

use crossadapt::data::drift::{psi, IdDistribution};
use crossadapt::data::{DaySource, RawDay, SynthConfig, SyntheticSource};

fn source(cfg: SynthConfig) -> SyntheticSource {
    match SyntheticSource::new(cfg) {
        Ok(s) => s,
        Err(e) => panic!("valid test config rejected: {e:#}"),
    }
}

fn day(s: &SyntheticSource, d: usize) -> RawDay {
    match s.raw_day(d) {
        Ok(r) => r,
        Err(e) => panic!("day {d}: {e:#}"),
    }
}

fn field_psi(a: &RawDay, b: &RawDay, f: usize) -> f64 {
    let reference = IdDistribution::reference(a.field_keys(f), 50);
    psi(
        reference.probabilities(),
        &reference.bucket(b.field_keys(f)),
    )
}

#[test]
fn same_seed_same_rows_and_other_seed_differs() {
    let tiny = || SynthConfig::preset("tiny").expect("tiny preset");
    let a = source(tiny());
    let b = source(tiny());
    let c = source(SynthConfig { seed: 8, ..tiny() });
    // Day 3 directly, without producing days 0..3 first.
    assert_eq!(day(&a, 3), day(&b, 3));
    assert_ne!(day(&a, 3).cat, day(&c, 3).cat);
    assert_ne!(day(&a, 3).cat, day(&a, 4).cat);
    assert_eq!(day(&a, 3).rows(), 1_000);
}

#[test]
fn label_rate_follows_the_config_and_the_shock() {
    let cfg = SynthConfig {
        rows_per_day: 20_000,
        weekday_amplitude: 0.0,
        ..SynthConfig::preset("tiny").expect("tiny preset")
    };
    let s = source(cfg.clone());
    let before = day(&s, cfg.shock_day - 1).positive_rate();
    let after = day(&s, cfg.shock_day).positive_rate();
    assert!((before - cfg.base_rate).abs() < 0.01, "rate {before}");
    let shocked = cfg.base_rate * cfg.shock_rate_factor;
    assert!((after - shocked).abs() < 0.015, "rate {after} vs {shocked}");
}

#[test]
fn adjacent_days_are_stable_and_the_shock_stands_out() {
    // `fm4`'s shock moves 40% of the shocked fields' slots, the default world's 15%
    // (`shock_strength / 2`): both stand out of the ordinary days' PSI below 0.1.
    shock_stands_out("fm4", 0.25);
    shock_stands_out("default", 0.1);
}

fn shock_stands_out(preset: &str, shock_psi: f64) {
    let cfg = SynthConfig {
        days: 4,
        shock_day: 3,
        ..SynthConfig::preset(preset).expect("a known preset")
    };
    let s = source(cfg.clone());
    let days: Vec<RawDay> = (0..4).map(|d| day(&s, d)).collect();
    let names = s.cat_fields();
    for (f, name) in names.iter().enumerate() {
        for d in 0..2 {
            let p = field_psi(&days[d], &days[d + 1], f);
            eprintln!("{name} day {d}->{}: psi {p:.4}", d + 1);
            assert!(
                p < 0.1,
                "{name}: PSI {p} between ordinary days {d} and {}",
                d + 1
            );
        }
        let p = field_psi(&days[2], &days[3], f);
        eprintln!("{name} shock: psi {p:.4}");
        if cfg.shock_fields.contains(name) {
            assert!(p > shock_psi, "{preset} {name}: PSI {p} on the shock day");
        } else {
            assert!(
                p < 0.1,
                "{name}: PSI {p} on the shock day (not a shocked field)"
            );
        }
    }
}

/// A 64-bit digest of every key, numeric value (its bits) and label of a day, in row order.
fn checksum(d: &RawDay) -> u64 {
    use crossadapt::data::source::mix64;
    let mut h = mix64(d.rows() as u64);
    for &k in &d.cat {
        h = mix64(h ^ k);
    }
    for &x in &d.num {
        h = mix64(h ^ x.to_bits() as u64);
    }
    for &y in &d.label {
        h = mix64(h ^ y.to_bits() as u64);
    }
    h
}

#[test]
fn fm4_stream_is_the_historical_default_bit_for_bit() {
    // Digests computed with the generator as it was before drift scenarios existed (commit
    // cfdef11), when today's `fm4` world was the default: it must keep producing exactly these
    // rows, and so must `tiny` (the `fm4` truth on small fields) and `fm4` without drift (what
    // `no-drift` was before the default world changed).
    let expect_default: [(usize, u64); 4] = [
        (0, 0xcd3f_51cd_4d37_3c57),
        (17, 0x8982_f18a_b861_6598),
        (18, 0xe63a_a01f_8e63_e5b3),
        (23, 0xe059_ce8e_2587_81e2),
    ];
    let expect_tiny: [(usize, u64); 3] = [
        (5, 0x58ce_62b2_b25c_1515),
        (6, 0x2ae2_ff42_f3ba_c8e9),
        (9, 0x1bca_b8b5_f34a_81e2),
    ];
    let expect_still: [(usize, u64); 1] = [(3, 0xe543_56cb_76c9_0551)];
    let s = source(SynthConfig::preset("fm4").expect("fm4 preset"));
    let got: Vec<(usize, u64)> = expect_default
        .iter()
        .map(|&(d, _)| (d, checksum(&day(&s, d))))
        .collect();
    let t = source(SynthConfig::preset("tiny").expect("tiny preset"));
    let got_tiny: Vec<(usize, u64)> = expect_tiny
        .iter()
        .map(|&(d, _)| (d, checksum(&day(&t, d))))
        .collect();
    let still = SynthConfig::preset("no-drift").expect("no-drift preset");
    let n = source(SynthConfig {
        latent_dim: 4,
        interaction_scale: 1.0,
        triple_scale: 0.0,
        ..still
    });
    let got_still: Vec<(usize, u64)> = expect_still
        .iter()
        .map(|&(d, _)| (d, checksum(&day(&n, d))))
        .collect();
    assert_eq!(got, expect_default);
    assert_eq!(got_tiny, expect_tiny);
    assert_eq!(got_still, expect_still);
}
