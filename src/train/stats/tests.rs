use super::*;
use crate::train::metrics::{auc, logloss};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn delong_matches_a_hand_computed_case() {
    // Positives score (0.9, 0.8, 0.3) under A and (0.7, 0.4, 0.45) under B; negatives
    // (0.5, 0.2) and (0.5, 0.1). Placements of the positives (share of negatives below):
    // A = (1, 1, 1/2), B = (1, 1/2, 1/2); of the negatives (share of positives above):
    // A = (2/3, 1), B = (1/3, 1). AUC_A = 5/6, AUC_B = 2/3.
    // S10 = [[1/12, 1/24], [1/24, 1/12]] (m - 1 = 2), S01 = [[1/18, 1/9], [1/9, 2/9]] (n - 1 = 1).
    // Var(A - B) = (1/12 + 1/12 - 2/24) / 3 + (1/18 + 2/9 - 2/9) / 2 = 1/36 + 1/36 = 1/18.
    // Var(A) = (1/12) / 3 + (1/18) / 2 = 1/18 as well.
    let y = [1.0, 1.0, 1.0, 0.0, 0.0];
    let a = [0.9, 0.8, 0.3, 0.5, 0.2];
    let b = [0.7, 0.4, 0.45, 0.5, 0.1];
    let r = paired_auc(&a, &b, &y).expect("both classes twice");
    assert!(close(r.auc_a, 5.0 / 6.0, 1e-12), "{r:?}");
    assert!(close(r.auc_b, 2.0 / 3.0, 1e-12), "{r:?}");
    assert!(close(r.se_diff, (1.0f64 / 18.0).sqrt(), 1e-12), "{r:?}");
    assert!(close(r.se_a, (1.0f64 / 18.0).sqrt(), 1e-12), "{r:?}");
    // Var(B) = (1/12) / 3 + (2/9) / 2 = 1/36 + 1/9 = 5/36.
    assert!(close(r.se_b, (5.0f64 / 36.0).sqrt(), 1e-12), "{r:?}");
    let d = r.diff(0.95);
    let half = 1.959_963_985 * (1.0f64 / 18.0).sqrt();
    assert!(close(d.estimate, 1.0 / 6.0, 1e-12));
    assert!(close(d.lo, 1.0 / 6.0 - half, 1e-8) && close(d.hi, 1.0 / 6.0 + half, 1e-8));
}

/// The cross-check data: integer scores (exact in f32 and f64) with many ties.
fn crosscheck_rows() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = 300u32;
    let y: Vec<f32> = (0..n)
        .map(|i| if (i * 7) % 10 < 3 { 1.0 } else { 0.0 })
        .collect();
    let a = (0..n)
        .map(|i| ((i * 37) % 101) as f32 + 20.0 * y[i as usize])
        .collect();
    let b = (0..n)
        .map(|i| (((i * 53) % 97) % 50) as f32 + 10.0 * y[i as usize])
        .collect();
    (a, b, y)
}

#[test]
fn delong_matches_an_independent_numpy_implementation() {
    // Values from an O(m n) kernel implementation with numpy (np.cov, the same rows); the
    // script is quoted in docs/verdict.md.
    let (a, b, y) = crosscheck_rows();
    let r = paired_auc(&a, &b, &y).expect("both classes");
    assert!(close(r.auc_a, 0.667_301_587_301_587_3, 1e-12), "{r:?}");
    assert!(close(r.auc_b, 0.693_148_148_148_148_2, 1e-12), "{r:?}");
    assert!(close(r.se_a, 0.033_543_904_903_198_946, 1e-12), "{r:?}");
    assert!(close(r.se_b, 0.032_483_395_980_241_254, 1e-12), "{r:?}");
    assert!(close(r.se_diff, 0.046_003_480_932_925_216, 1e-12), "{r:?}");
    // And the AUCs are the metrics module's.
    assert!(close(r.auc_a, auc(&a, &y).expect("auc"), 1e-12));
    assert!(close(r.auc_b, auc(&b, &y).expect("auc"), 1e-12));
}

#[test]
fn delong_variance_agrees_with_a_paired_bootstrap_over_rows() {
    // Two correlated models on 2 000 rows; the bootstrap (fixed seed) resamples rows and
    // recomputes both AUCs on the same draw. Its standard deviation of the difference should
    // match DeLong's standard error within bootstrap noise (about 5% at 1 000 resamples).
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = 2_000;
    let (mut a, mut b, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let signal: f32 = rng.random::<f32>() * 2.0 - 1.0;
        let label = if rng.random::<f32>() < 0.2 + 0.3 * signal.max(0.0) {
            1.0
        } else {
            0.0
        };
        let shared: f32 = rng.random::<f32>();
        a.push(signal + 0.8 * shared + 0.5 * rng.random::<f32>());
        b.push(signal + 0.8 * shared + 0.9 * rng.random::<f32>());
        y.push(label);
    }
    let r = paired_auc(&a, &b, &y).expect("both classes");
    let diffs: Vec<f64> = (0..1_000)
        .map(|_| {
            let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            let pick = |v: &[f32]| idx.iter().map(|&i| v[i]).collect::<Vec<f32>>();
            let (ya, aa, bb) = (pick(&y), pick(&a), pick(&b));
            auc(&aa, &ya).expect("auc") - auc(&bb, &ya).expect("auc")
        })
        .collect();
    let m = mean(&diffs);
    let sd = (diffs.iter().map(|d| (d - m) * (d - m)).sum::<f64>() / 999.0).sqrt();
    let ratio = sd / r.se_diff;
    assert!(
        (0.9..1.1).contains(&ratio),
        "bootstrap sd {sd} vs DeLong {}",
        r.se_diff
    );
    // The pairing matters: the unpaired standard error is much larger.
    let unpaired = (r.se_a * r.se_a + r.se_b * r.se_b).sqrt();
    assert!(r.se_diff < 0.8 * unpaired, "{r:?}");
}

#[test]
fn identical_models_have_a_zero_difference_and_zero_width() {
    let (a, _, y) = crosscheck_rows();
    let r = paired_auc(&a, &a, &y).expect("both classes");
    assert_eq!(r.auc_a, r.auc_b);
    assert!(r.se_diff < 1e-9, "{r:?}");
}

#[test]
fn degenerate_inputs_are_refused() {
    assert!(paired_auc(&[0.1, 0.2, 0.3], &[0.1, 0.2, 0.3], &[1.0, 0.0, 0.0]).is_none());
    assert!(paired_auc(&[0.1, 0.2], &[0.1], &[1.0, 0.0]).is_none());
    let nan = [f32::NAN, 0.2, 0.3, 0.4];
    assert!(paired_auc(&nan, &[0.1, 0.2, 0.3, 0.4], &[1.0, 1.0, 0.0, 0.0]).is_none());
    assert!(paired_logloss(&[0.5], &[0.5], &[1.0]).is_none());
    assert!(paired_logloss(&[0.5, 0.5], &[0.5], &[1.0, 0.0]).is_none());
}

#[test]
fn clustered_delong_matches_a_hand_computed_case() {
    // The rows of the hand-computed DeLong case, grouped into three users: user 1 holds the
    // positive 0 and the negative 4, user 2 the positive 1 and the negative 3, user 3 the
    // positive 2 alone (M = 3, N = 2; I10 = 3, I01 = 2, I = 3).
    // Placements: A pos (1, 1, 1/2), neg (2/3, 1); B pos (1, 1/2, 1/2), neg (1/3, 1).
    // Per user, (V10_k - m_k AUC, V01_k - n_k AUC):
    //   A (AUC 5/6): (1/6, 1/6), (1/6, -1/6), (-1/3, 0)
    //   B (AUC 2/3): (1/3, 1/3), (-1/6, -1/3), (-1/6, 0)
    //   A - B (1/6): (-1/6, -1/6), (1/3, 1/6), (-1/6, 0)
    // Var = 3/2 / M^2 * sum u^2 + 2 / N^2 * sum v^2 + 2 * 3/2 / (M N) * sum u v:
    //   A - B: 3/2 / 9 * 1/6 + 2/4 * 1/18 + 1/2 * 1/12 = 1/36 + 1/36 + 1/24 = 7/72
    //   A:     1/36 + 1/36 + 0 = 1/18;  B: 1/36 + 2/4 * 2/9 + 1/2 * 1/6 = 8/36 = 2/9.
    // The unclustered difference has variance 1/18: each user's positive and negative move
    // the same way here, which rows counted as independent cannot see.
    let y = [1.0, 1.0, 1.0, 0.0, 0.0];
    let a = [0.9, 0.8, 0.3, 0.5, 0.2];
    let b = [0.7, 0.4, 0.45, 0.5, 0.1];
    let users = [1, 2, 3, 2, 1];
    let r = paired_auc_clustered(&a, &b, &y, &users).expect("two users of each class");
    assert!(close(r.auc_a, 5.0 / 6.0, 1e-12), "{r:?}");
    assert!(close(r.auc_b, 2.0 / 3.0, 1e-12), "{r:?}");
    assert!(close(r.se_diff, (7.0f64 / 72.0).sqrt(), 1e-12), "{r:?}");
    assert!(close(r.se_a, (1.0f64 / 18.0).sqrt(), 1e-12), "{r:?}");
    assert!(close(r.se_b, (2.0f64 / 9.0).sqrt(), 1e-12), "{r:?}");
    // Keys are only labels: renaming the users changes nothing.
    let renamed = [70, 9, u64::MAX, 9, 70];
    assert_eq!(paired_auc_clustered(&a, &b, &y, &renamed), Some(r));
}

#[test]
fn clustered_delong_matches_an_independent_numpy_implementation() {
    // An O(m n) kernel with explicit per-user sums in numpy, on the cross-check rows with
    // 12 users (`i * i % 23`); the script is quoted in docs/verdict.md.
    let (a, b, y) = crosscheck_rows();
    let users: Vec<u64> = (0..300u64).map(|i| i * i % 23).collect();
    let r = paired_auc_clustered(&a, &b, &y, &users).expect("both classes");
    assert!(close(r.auc_a, 0.667_301_587_301_587_3, 1e-12), "{r:?}");
    assert!(close(r.auc_b, 0.693_148_148_148_148_2, 1e-12), "{r:?}");
    assert!(close(r.se_a, 0.018_340_923_348_910_104, 1e-12), "{r:?}");
    assert!(close(r.se_b, 0.054_714_391_296_482_92, 1e-12), "{r:?}");
    assert!(close(r.se_diff, 0.051_828_064_163_529_69, 1e-12), "{r:?}");
}

#[test]
fn one_row_per_user_is_the_unclustered_case() {
    // Every row its own cluster: no cluster holds both classes (S11 = 0) and the K / (K - 1)
    // factors are DeLong's m / (m - 1), so the clustered variances are DeLong's.
    let (a, b, y) = crosscheck_rows();
    let users: Vec<u64> = (0..300u64).map(|i| 1_000 + 7 * i).collect();
    let (c, r) = (
        paired_auc_clustered(&a, &b, &y, &users).expect("both classes"),
        paired_auc(&a, &b, &y).expect("both classes"),
    );
    assert_eq!((c.auc_a, c.auc_b), (r.auc_a, r.auc_b));
    for (x, z) in [(c.se_a, r.se_a), (c.se_b, r.se_b), (c.se_diff, r.se_diff)] {
        assert!(close(x, z, 1e-12), "{c:?} vs {r:?}");
    }
    let p =
        |v: &[f32]| -> Vec<f32> { v.iter().map(|&x| 1.0 / (1.0 + (-x / 40.0).exp())).collect() };
    let (pa, pb) = (p(&a), p(&b));
    let (c, r) = (
        paired_logloss_clustered(&pa, &pb, &y, &users).expect("rows"),
        paired_logloss(&pa, &pb, &y).expect("rows"),
    );
    assert_eq!((c.mean, c.n), (r.mean, r.n));
    assert!(close(c.se, r.se, 1e-12), "{c:?} vs {r:?}");
}

#[test]
fn duplicating_rows_within_users_narrows_rows_but_not_users() {
    // Every row twice, under the same user (a user who comes back with the same behaviour):
    // no new evidence. Counted as rows, the intervals narrow by about sqrt(2); counted as
    // users, nothing changes (cluster sums and class totals both double), so the clustered
    // interval ends up about sqrt(2) wider than the row one.
    let (a, b, y) = crosscheck_rows();
    let users: Vec<u64> = (0..300u64).collect();
    let twice = |v: &[f32]| -> Vec<f32> { v.iter().chain(v).copied().collect() };
    let (a2, b2, y2) = (twice(&a), twice(&b), twice(&y));
    let users2: Vec<u64> = users.iter().chain(&users).copied().collect();
    let rows = |a: &[f32], b: &[f32], y: &[f32]| paired_auc(a, b, y).expect("auc").se_diff;
    let clustered = |a: &[f32], b: &[f32], y: &[f32], u: &[u64]| {
        paired_auc_clustered(a, b, y, u).expect("auc").se_diff
    };
    let (r1, r2) = (rows(&a, &b, &y), rows(&a2, &b2, &y2));
    let (c1, c2) = (
        clustered(&a, &b, &y, &users),
        clustered(&a2, &b2, &y2, &users2),
    );
    assert!(close(r2 / r1, 0.5f64.sqrt(), 0.01), "rows: {r1} -> {r2}");
    assert!(close(c2, c1, 1e-12), "users: {c1} -> {c2}");
    assert!(c2 > 1.4 * r2, "users {c2} vs rows {r2}");
    // The same for the LogLoss difference.
    let p =
        |v: &[f32]| -> Vec<f32> { v.iter().map(|&x| 1.0 / (1.0 + (-x / 40.0).exp())).collect() };
    let (pa, pb, pa2, pb2) = (p(&a), p(&b), p(&a2), p(&b2));
    let (r1, r2) = (
        paired_logloss(&pa, &pb, &y).expect("rows").se,
        paired_logloss(&pa2, &pb2, &y2).expect("rows").se,
    );
    let (c1, c2) = (
        paired_logloss_clustered(&pa, &pb, &y, &users)
            .expect("rows")
            .se,
        paired_logloss_clustered(&pa2, &pb2, &y2, &users2)
            .expect("rows")
            .se,
    );
    assert!(close(r2 / r1, 0.5f64.sqrt(), 0.01), "rows: {r1} -> {r2}");
    assert!(close(c2, c1, 1e-12), "users: {c1} -> {c2}");
    assert!(c2 > 1.4 * r2, "users {c2} vs rows {r2}");
}

#[test]
fn clustered_mean_matches_a_hand_computed_case() {
    // d = (1, 2, 3, 6), users (a, a, b, c): mean 3, residuals (-2, -1, 0, 3), per-user sums
    // (-3, 0, 3); se^2 = 3/2 * 18 / 16 = 27/16. As rows: 14 / 3 / 4 = 7/6.
    let d = [1.0, 2.0, 3.0, 6.0];
    let c = PairedMean::of_clustered(&d, &[5, 5, 8, 9]).expect("three users");
    assert_eq!((c.mean, c.n), (3.0, 4));
    assert!(close(c.se, (27.0f64 / 16.0).sqrt(), 1e-12), "{c:?}");
    let r = PairedMean::of(&d).expect("four values");
    assert!(close(r.se, (7.0f64 / 6.0).sqrt(), 1e-12), "{r:?}");
}

#[test]
fn clustered_statistics_refuse_what_they_cannot_estimate() {
    let y = [1.0, 1.0, 0.0, 0.0];
    let s = [0.9, 0.6, 0.5, 0.1];
    // Every positive in one user: one unit of positive evidence, no variance.
    assert!(paired_auc_clustered(&s, &s, &y, &[1, 1, 2, 3]).is_none());
    assert!(paired_auc_clustered(&s, &s, &y, &[1, 2, 3, 3]).is_none());
    assert!(paired_auc_clustered(&s, &s, &y, &[1, 2, 1, 2]).is_some());
    assert!(paired_auc_clustered(&s, &s, &y, &[1, 2, 1]).is_none());
    assert!(PairedMean::of_clustered(&[1.0, 2.0], &[4, 4]).is_none());
    assert!(PairedMean::of_clustered(&[1.0, 2.0], &[4]).is_none());
    assert!(PairedMean::of_clustered(&[1.0, f64::NAN], &[4, 5]).is_none());
}

#[test]
fn logloss_difference_matches_hand_computation_and_numpy() {
    // Three rows: y = (1, 0, 1), A = (0.8, 0.4, 0.5), B = (0.6, 0.1, 0.5).
    // Differences: ln(0.6/0.8), ln(0.9/0.6), 0: mean = (ln 0.75 + ln 1.5) / 3 = ln(1.125) / 3.
    let y = [1.0, 0.0, 1.0];
    let r = paired_logloss(&[0.8, 0.4, 0.5], &[0.6, 0.1, 0.5], &y).expect("three rows");
    let d = [
        (0.6f64 / 0.8).ln(),
        (0.9f64 / 0.6).ln(),
        // f32 0.5 is exact: the third row contributes exactly 0.
        0.0,
    ];
    let m = d.iter().sum::<f64>() / 3.0;
    let sd = (d.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 2.0).sqrt();
    // f32 inputs: 0.8, 0.4, 0.6, 0.1 are not exact, hence 1e-7.
    assert!(
        close(r.mean, m, 1e-7) && close(r.se, sd / 3f64.sqrt(), 1e-7),
        "{r:?}"
    );
    // The mean is the difference of the metrics module's LogLosses.
    let (a, b, y) = crosscheck_rows();
    let prob = |v: &[f32], c: f64, s: f64| -> Vec<f32> {
        v.iter()
            .map(|&x| (1.0 / (1.0 + (-(x as f64 - c) / s).exp())) as f32)
            .collect()
    };
    let (pa, pb) = (prob(&a, 60.0, 20.0), prob(&b, 30.0, 15.0));
    let r = paired_logloss(&pa, &pb, &y).expect("rows");
    assert!(close(r.mean, logloss(&pa, &y) - logloss(&pb, &y), 1e-12));
    // numpy on the same rows: mean and sd(ddof=1) / sqrt(n).
    assert!(close(r.mean, 0.089_733_652_763_713_49, 1e-9), "{r:?}");
    assert!(close(r.se, 0.042_404_323_063_225_94, 1e-9), "{r:?}");
}

#[test]
fn normal_quantiles_are_the_textbook_values() {
    assert!(close(normal_quantile(0.975), 1.959_963_984_540_054, 1e-8));
    assert!(close(normal_quantile(0.5), 0.0, 1e-12));
    assert!(close(normal_quantile(0.05), -1.644_853_626_951_472_2, 1e-8));
    assert!(close(
        normal_quantile(0.001),
        -3.090_232_306_167_813_6,
        1e-8
    ));
    assert!(close(normal_quantile(0.999), 3.090_232_306_167_813_6, 1e-8));
    assert!(normal_quantile(1.0).is_nan() && normal_quantile(0.0).is_nan());
}

#[test]
fn gate_reads_the_interval_ends() {
    let iv = Interval {
        estimate: -0.001,
        lo: -0.004,
        hi: 0.002,
        level: 0.95,
    };
    assert!(iv.not_below(0.005) && !iv.not_below(0.004) && !iv.not_below(0.003));
    assert!(iv.not_above(0.003) && !iv.not_above(0.002));
}

#[test]
fn bootstrap_of_two_values_spans_them() {
    // Means of two draws from (0, 1) are 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4: the
    // 2.5% and 97.5% quantiles of many resamples are 0 and 1.
    let iv = bootstrap_mean(&[0.0, 1.0], 0.95, 4_000, 3).expect("values");
    assert_eq!((iv.estimate, iv.lo, iv.hi), (0.5, 0.0, 1.0));
    // At 40% the interval is the middle value only.
    let iv = bootstrap_mean(&[0.0, 1.0], 0.4, 4_000, 3).expect("values");
    assert_eq!((iv.lo, iv.hi), (0.5, 0.5));
    let flat = bootstrap_mean(&[2.0; 7], 0.95, 100, 1).expect("values");
    assert_eq!((flat.lo, flat.hi), (2.0, 2.0));
    assert!(bootstrap_mean(&[], 0.95, 100, 1).is_none());
    assert!(bootstrap_mean(&[1.0, f64::NAN], 0.95, 100, 1).is_none());
}

#[test]
fn bootstrap_of_many_values_matches_the_normal_interval() {
    // 400 values with mean 0 and sd about 1: the half-width is close to 1.96 / sqrt(400).
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let v: Vec<f64> = (0..400)
        .map(|_| (rng.random::<f64>() - 0.5) * 12f64.sqrt())
        .collect();
    let iv = bootstrap_mean(&v, 0.95, 2_000, 9).expect("values");
    let normal = PairedMean::of(&v).expect("values").interval(0.95);
    let ratio = (iv.hi - iv.lo) / (normal.hi - normal.lo);
    assert!((0.9..1.1).contains(&ratio), "{iv:?} vs {normal:?}");
    // Same seed, same interval.
    assert_eq!(Some(iv), bootstrap_mean(&v, 0.95, 2_000, 9));
}

#[test]
fn clustered_bootstrap_widens_when_groups_move_together() {
    // Four worlds whose days agree within the world but not across worlds: the days alone
    // look precise, the worlds say otherwise.
    let groups: Vec<Vec<f64>> = [0.0, 0.01, -0.01, 0.02]
        .iter()
        .map(|&w| (0..6).map(|d| w + 0.0001 * d as f64).collect())
        .collect();
    let flat: Vec<f64> = groups.iter().flatten().copied().collect();
    let days = bootstrap_mean(&flat, 0.95, 2_000, 4).expect("values");
    let worlds = bootstrap_clustered(&groups, 0.95, 2_000, 4).expect("values");
    assert_eq!(days.estimate, worlds.estimate);
    assert!(
        worlds.hi - worlds.lo > 1.5 * (days.hi - days.lo),
        "{worlds:?} vs {days:?}"
    );
    // One world of identical days: no spread at all.
    let one = bootstrap_clustered(&[vec![0.3; 5]], 0.95, 100, 1).expect("values");
    assert_eq!((one.lo, one.hi), (0.3, 0.3));
    assert!(bootstrap_clustered(&[vec![1.0], vec![]], 0.95, 100, 1).is_none());
}

#[test]
fn ranked_and_indexed_once_is_the_same_as_from_the_scores_each_time() {
    // The gate ranks the incumbent once and indexes the day's users once, then compares each
    // student with them: the same numbers, to the bit, as each comparison from scratch.
    let (a, b, y) = crosscheck_rows();
    let c: Vec<f32> = a.iter().zip(&b).map(|(x, z)| 0.5 * x - z).collect();
    let users: Vec<u64> = (0..a.len() as u64).map(|r| r % 37 * 1_000_003).collect();
    let (ra, rb, rc) = (
        Ranked::of(&a, &y).expect("a"),
        Ranked::of(&b, &y).expect("b"),
        Ranked::of(&c, &y).expect("c"),
    );
    let clusters = Clusters::of(&users);
    for (s, r) in [(&a, &ra), (&c, &rc)] {
        assert_eq!(paired_auc_ranked(r, &rb, &y), paired_auc(s, &b, &y));
        assert_eq!(
            paired_auc_clustered_ranked(r, &rb, &y, &clusters),
            paired_auc_clustered(s, &b, &y, &users)
        );
        let (p, q): (Vec<f32>, Vec<f32>) = (s.iter().map(|v| v / 9.0).collect(), b.clone());
        let q: Vec<f32> = q.iter().map(|v| 0.5 + v / 99.0).collect();
        let p: Vec<f32> = p.iter().map(|v| 0.5 + v.clamp(-4.0, 4.0) / 9.0).collect();
        assert_eq!(
            paired_logloss_clusters(&p, &q, &y, &clusters),
            paired_logloss_clustered(&p, &q, &y, &users)
        );
    }
    // The refusals carry over: NaN scores, and rankings or clusters of another day's length.
    assert!(Ranked::of(&[0.1, f32::NAN], &[1.0, 0.0]).is_none());
    assert!(Ranked::of(&a[1..], &y).is_none());
    let short = Ranked::of(&a[1..], &y[1..]).expect("short");
    assert!(paired_auc_ranked(&short, &rb, &y).is_none());
    let fewer = Clusters::of(&users[1..]);
    assert!(paired_auc_clustered_ranked(&ra, &rb, &y, &fewer).is_none());
    assert!(paired_logloss_clusters(&a, &b, &y, &fewer).is_none());
}

#[test]
fn pooling_days_weighs_each_by_its_inverse_variance() {
    // Two days at 95%: +0.010 with se 0.004 and -0.002 with se 0.002. Weights 1/se^2 are
    // 62,500 and 250,000 (sum 312,500): pooled = (625 - 500) / 312,500 = 0.0004, with
    // se = 1 / sqrt(312,500) = 0.0017889.
    let z = normal_quantile(0.975);
    let day = |d: f64, se: f64| Interval::normal(d, se, 0.95);
    let p = pooled(&[day(0.010, 0.004), day(-0.002, 0.002)], 0.95).expect("two days");
    assert!(close(p.estimate, 0.0004, 1e-12), "{p:?}");
    let se = 1.0 / 312_500f64.sqrt();
    assert!(close(p.lo, 0.0004 - z * se, 1e-12) && close(p.hi, 0.0004 + z * se, 1e-12));
    assert!(close(se, 0.001_788_854_4, 1e-9));
    // One day pools to itself; a day of no width (no variance) refuses to weigh.
    let one = pooled(&[day(0.003, 0.001)], 0.95).expect("one day");
    assert!(close(one.estimate, 0.003, 1e-15) && close(one.lo, 0.003 - z * 0.001, 1e-12));
    assert!(pooled(&[day(0.003, 0.0)], 0.95).is_none());
    assert!(pooled(&[], 0.95).is_none());
    // Another level: the same standard error, a wider interval.
    let p99 = pooled(&[day(0.010, 0.004), day(-0.002, 0.002)], 0.99).expect("two days");
    let z99 = normal_quantile(0.995);
    assert!(close(p99.hi - p99.estimate, z99 * se, 1e-12));
}
