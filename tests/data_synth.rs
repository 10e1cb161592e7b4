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
    let cfg = SynthConfig {
        days: 4,
        shock_day: 3,
        ..SynthConfig::default()
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
            assert!(p > 0.25, "{name}: PSI {p} on the shock day");
        } else {
            assert!(
                p < 0.1,
                "{name}: PSI {p} on the shock day (not a shocked field)"
            );
        }
    }
}
