//! Statistics for a migration gate: how sure are we that a student is not worse than the
//! incumbent, when both scored the same rows?
//!
//! - [`paired_auc`]: the AUC difference of two models on the same rows with DeLong's variance
//!   for correlated ROC curves (DeLong, DeLong & Clarke-Pearson 1988), computed from placement
//!   values after one sort per model (Sun & Xu 2014), so O(n log n).
//! - [`paired_logloss`]: the LogLoss difference as the mean of per-row differences with its
//!   standard error.
//! - [`paired_auc_clustered`] and [`paired_logloss_clustered`]: the same with rows grouped by
//!   a key (the user), for data where one user's rows are correlated: the clustered DeLong
//!   variance (Obuchowski 1997) and the cluster-robust standard error of a mean.
//! - [`bootstrap_mean`] and [`bootstrap_clustered`]: percentile intervals over days, or over
//!   worlds and the days within them, for summary claims.
//!
//! Why DeLong rather than a paired bootstrap over rows for the per-day AUC: it is the standard
//! for two correlated ROC curves, it is exact given the placement values (no resampling noise,
//! no seed, the same numbers on every machine and on resume), and it costs one sort per model
//! where a bootstrap costs one sort per model per resample (hundreds per day, per arm). Its
//! normal approximation is poor only with a handful of positives or negatives, where
//! [`paired_auc`] refuses (fewer than two of either class) and the interval is visibly wide.
//! The unclustered versions treat rows as independent; with repeated users that makes the
//! interval too narrow, which the clustered versions correct, deterministically and in the
//! same O(n log n) (a bootstrap over users would cost a sort per resample and need a seed).
//! The bootstrap is kept for summaries over days and worlds, where there are few units, no
//! closed form, and the statistic is a mean of per-unit differences.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::metrics::CLIP;

/// A point estimate with a two-sided interval at `level` (e.g. 0.95).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
    pub level: f64,
}

impl Interval {
    /// `estimate ± z(level) * se` (normal approximation).
    pub fn normal(estimate: f64, se: f64, level: f64) -> Interval {
        let z = normal_quantile(0.5 + level / 2.0);
        Interval {
            estimate,
            lo: estimate - z * se,
            hi: estimate + z * se,
            level,
        }
    }

    /// Whether every number is finite (what an event may carry).
    pub fn is_finite(&self) -> bool {
        [self.estimate, self.lo, self.hi, self.level]
            .iter()
            .all(|v| v.is_finite())
    }

    /// Whether the whole interval lies above `-delta`: "not worse by more than `delta`" for a
    /// difference where higher is better (AUC). Non-inferiority trials read the lower end of
    /// the two-sided interval, which is a one-sided test at `(1 - level) / 2`: the stricter
    /// convention, chosen because a wrong switch costs more than a late one.
    pub fn not_below(&self, delta: f64) -> bool {
        self.lo > -delta
    }

    /// Whether the whole interval lies below `delta` (for differences where lower is better,
    /// such as LogLoss).
    pub fn not_above(&self, delta: f64) -> bool {
        self.hi < delta
    }
}

/// The inverse-variance (fixed-effect) pool of independent estimates of one difference, each
/// given as a two-sided normal interval: `sum(w_i d_i) / sum(w_i)` with `w_i = 1 / se_i^2`,
/// `se_i = (hi_i - lo_i) / (2 z(level_i))`, and standard error `1 / sqrt(sum(w_i))`; the result
/// at `level`. This is how the gate pools a window of days: each day is a stratum with its
/// own rows (and its own base rate), and a day with more evidence counts for more. `None`
/// when there is nothing to pool or an interval has no width (no variance to weigh by).
pub fn pooled(intervals: &[Interval], level: f64) -> Option<Interval> {
    if intervals.is_empty() {
        return None;
    }
    let (mut sw, mut swd) = (0.0, 0.0);
    for iv in intervals {
        let z = normal_quantile(0.5 + iv.level / 2.0);
        let se = (iv.hi - iv.lo) / (2.0 * z);
        if !(se > 0.0 && se.is_finite() && iv.estimate.is_finite()) {
            return None;
        }
        let w = 1.0 / (se * se);
        sw += w;
        swd += w * iv.estimate;
    }
    Some(Interval::normal(swd / sw, 1.0 / sw.sqrt(), level))
}

/// The inverse of the standard normal CDF (Acklam's rational approximation, relative error
/// below 1.2e-9 over (0, 1)). NaN outside (0, 1).
pub fn normal_quantile(p: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const P_LOW: f64 = 0.024_25;
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - P_LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Placement values of one model: for each positive, the share of negatives it outranks;
/// for each negative, the share of positives that outrank it (ties count one half). Their
/// means are both the AUC.
#[derive(Clone, Debug)]
struct Placements {
    pos: Vec<f64>,
    neg: Vec<f64>,
}

/// The placement value of every row, by row index (a positive's share of negatives below it,
/// a negative's share of positives above it, ties one half): one sort, then one pass over
/// groups of tied scores. Rows keep their order within each class, so the placements of two
/// models line up row by row.
fn row_placements(scores: &[f32], labels: &[f32]) -> Vec<f64> {
    let is_pos: Vec<bool> = labels.iter().map(|&y| y > 0.5).collect();
    let m = is_pos.iter().filter(|&&p| p).count();
    let n = is_pos.len() - m;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Placement of each row, filled in by row index; then split by class in row order.
    let mut place = vec![0f64; scores.len()];
    let (mut pos_below, mut neg_below) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let group = &order[i..j];
        let pos_here = group.iter().filter(|&&r| is_pos[r]).count();
        let neg_here = group.len() - pos_here;
        let pos_above = m - pos_below - pos_here;
        for &r in group {
            place[r] = if is_pos[r] {
                (neg_below as f64 + 0.5 * neg_here as f64) / n as f64
            } else {
                (pos_above as f64 + 0.5 * pos_here as f64) / m as f64
            };
        }
        pos_below += pos_here;
        neg_below += neg_here;
        i = j;
    }
    place
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample covariance (denominator `len - 1`) of two equally long series.
fn covariance(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (a.len() - 1) as f64
}

/// The AUCs of two models on the same rows and DeLong's standard errors.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedAuc {
    pub auc_a: f64,
    pub auc_b: f64,
    /// Standard error of `auc_a` alone.
    pub se_a: f64,
    pub se_b: f64,
    /// Standard error of `auc_a - auc_b`, using the correlation of the two curves.
    pub se_diff: f64,
}

impl PairedAuc {
    /// `auc_a - auc_b` with its two-sided interval at `level`.
    pub fn diff(&self, level: f64) -> Interval {
        Interval::normal(self.auc_a - self.auc_b, self.se_diff, level)
    }
}

/// One model's scores ranked against a day's labels: every row's placement value (see
/// [`Placements`]), computed once, so a model compared with several others (the incumbent,
/// against each student) is sorted once.
#[derive(Clone, Debug)]
pub struct Ranked {
    place: Vec<f64>,
    /// The same placements split by class, rows in order within each.
    split: Placements,
}

impl Ranked {
    /// `None` when the lengths differ or a score is NaN (no order to rank by).
    pub fn of(scores: &[f32], labels: &[f32]) -> Option<Ranked> {
        if scores.len() != labels.len() || scores.iter().any(|s| s.is_nan()) {
            return None;
        }
        let place = row_placements(scores, labels);
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        for (&p, &y) in place.iter().zip(labels) {
            if y > 0.5 {
                pos.push(p);
            } else {
                neg.push(p);
            }
        }
        Some(Ranked {
            place,
            split: Placements { pos, neg },
        })
    }
}

/// DeLong's paired comparison of models `a` and `b` scored on the same rows (scores may be
/// logits or probabilities: only their order matters). `None` when the lengths differ, a
/// score is NaN, or either class has fewer than two rows (the variance needs two).
pub fn paired_auc(scores_a: &[f32], scores_b: &[f32], labels: &[f32]) -> Option<PairedAuc> {
    paired_auc_ranked(
        &Ranked::of(scores_a, labels)?,
        &Ranked::of(scores_b, labels)?,
        labels,
    )
}

/// [`paired_auc`] of two models already ranked on `labels`.
pub fn paired_auc_ranked(a: &Ranked, b: &Ranked, labels: &[f32]) -> Option<PairedAuc> {
    if a.place.len() != labels.len() || b.place.len() != labels.len() {
        return None;
    }
    let m = labels.iter().filter(|&&y| y > 0.5).count();
    let n = labels.len() - m;
    if m < 2 || n < 2 {
        return None;
    }
    let (a, b) = (&a.split, &b.split);
    // S = S10 / m + S01 / n, entry by entry (DeLong's eq. for the covariance of the AUCs).
    let s = |x: &Placements, y: &Placements| {
        covariance(&x.pos, &y.pos) / m as f64 + covariance(&x.neg, &y.neg) / n as f64
    };
    let (saa, sbb, sab) = (s(a, a), s(b, b), s(a, b));
    Some(PairedAuc {
        auc_a: mean(&a.pos),
        auc_b: mean(&b.pos),
        se_a: saa.max(0.0).sqrt(),
        se_b: sbb.max(0.0).sqrt(),
        // Rounding can make a variance of identical models a hair negative.
        se_diff: (saa + sbb - 2.0 * sab).max(0.0).sqrt(),
    })
}

/// Each row's cluster as a dense index (in order of first appearance, so the same keys give
/// the same indices on every run) and the number of clusters: built once per day and shared by
/// every comparison on it (a hash over every row).
#[derive(Clone, Debug)]
pub struct Clusters {
    index: Vec<usize>,
    count: usize,
}

impl Clusters {
    /// The clusters of `keys` (`keys[i]` is row `i`'s, e.g. its user).
    pub fn of(keys: &[u64]) -> Clusters {
        let mut seen = std::collections::HashMap::with_capacity(keys.len() / 4 + 1);
        let index = keys
            .iter()
            .map(|&k| {
                let next = seen.len();
                *seen.entry(k).or_insert(next)
            })
            .collect();
        Clusters {
            index,
            count: seen.len(),
        }
    }
}

/// [`paired_auc`] with rows grouped into independent clusters (`clusters[i]` is row `i`'s
/// cluster key, e.g. its user): the clustered extension of DeLong's method (Obuchowski 1997,
/// "Nonparametric analysis of clustered ROC curve data", Biometrics 53). Rows of one user are
/// correlated, so counting them as independent evidence makes the interval too narrow; here the
/// independent units are the clusters.
///
/// Per cluster `k` with `m_k` positives and `n_k` negatives, the placement values of its
/// positives are summed (`V10_k`) and those of its negatives (`V01_k`); with `M`, `N` the
/// class totals and `I10`, `I01`, `I` the clusters holding a positive, a negative, any row:
///
/// ```text
/// S10 = I10 / ((I10 - 1) M) * sum_k (V10_k - m_k AUC)^2
/// S01 = I01 / ((I01 - 1) N) * sum_k (V01_k - n_k AUC)^2
/// S11 = I / (I - 1)        * sum_k (V10_k - m_k AUC) (V01_k - n_k AUC)
/// Var(AUC) = S10 / M + S01 / N + 2 S11 / (M N)
/// ```
///
/// and for two models the same with products of their residuals (`S11` symmetrised). With
/// every row its own cluster, `S11` is 0 (a cluster never holds both classes) and `S10`, `S01`
/// are DeLong's sample covariances, so the result equals [`paired_auc`]'s up to rounding.
/// Still one sort per model and one pass over the rows: O(n log n), no resampling.
/// `None` where [`paired_auc`] refuses, when `clusters` has another length, or when fewer than
/// two clusters hold a positive or a negative (the correction needs two).
pub fn paired_auc_clustered(
    scores_a: &[f32],
    scores_b: &[f32],
    labels: &[f32],
    clusters: &[u64],
) -> Option<PairedAuc> {
    paired_auc_clustered_ranked(
        &Ranked::of(scores_a, labels)?,
        &Ranked::of(scores_b, labels)?,
        labels,
        &Clusters::of(clusters),
    )
}

/// [`paired_auc_clustered`] of two models already ranked on `labels`, with the day's clusters.
pub fn paired_auc_clustered_ranked(
    a: &Ranked,
    b: &Ranked,
    labels: &[f32],
    clusters: &Clusters,
) -> Option<PairedAuc> {
    if clusters.index.len() != labels.len() {
        return None;
    }
    // The same refusals as the unclustered comparison (lengths, a class below two rows).
    let plain = paired_auc_ranked(a, b, labels)?;
    let (index, k) = (&clusters.index, clusters.count);
    let (pa, pb) = (&a.place, &b.place);
    // Per cluster: positives, negatives, and the placement sums of each class under a and b.
    let mut c = vec![[0f64; 6]; k];
    for (r, &ci) in index.iter().enumerate() {
        let e = &mut c[ci];
        if labels[r] > 0.5 {
            e[0] += 1.0;
            e[2] += pa[r];
            e[3] += pb[r];
        } else {
            e[1] += 1.0;
            e[4] += pa[r];
            e[5] += pb[r];
        }
    }
    let with_pos = c.iter().filter(|e| e[0] > 0.0).count();
    let with_neg = c.iter().filter(|e| e[1] > 0.0).count();
    if with_pos < 2 || with_neg < 2 {
        return None;
    }
    let m = labels.iter().filter(|&&y| y > 0.5).count() as f64;
    let n = labels.len() as f64 - m;
    let factor = |units: usize| units as f64 / (units - 1) as f64;
    let (f10, f01, f11) = (factor(with_pos), factor(with_neg), factor(k));
    let (auc_a, auc_b) = (plain.auc_a, plain.auc_b);
    // The variance of `x` from each cluster's residuals (`u` of the positives, `v` of the
    // negatives, already divided by M and N): sum_k f10 u^2 + f01 v^2 + 2 f11 u v.
    let variance = |resid: &dyn Fn(&[f64; 6]) -> (f64, f64)| {
        c.iter()
            .map(|e| {
                let (u, v) = resid(e);
                f10 * u * u + f01 * v * v + 2.0 * f11 * u * v
            })
            .sum::<f64>()
    };
    let ra = |e: &[f64; 6]| ((e[2] - e[0] * auc_a) / m, (e[4] - e[1] * auc_a) / n);
    let rb = |e: &[f64; 6]| ((e[3] - e[0] * auc_b) / m, (e[5] - e[1] * auc_b) / n);
    let rd = |e: &[f64; 6]| {
        let ((ua, va), (ub, vb)) = (ra(e), rb(e));
        (ua - ub, va - vb)
    };
    Some(PairedAuc {
        auc_a,
        auc_b,
        // f10, f01 >= f11 > 0 makes each cluster's term at least f11 (u + v)^2: never negative
        // but for rounding.
        se_a: variance(&ra).max(0.0).sqrt(),
        se_b: variance(&rb).max(0.0).sqrt(),
        se_diff: variance(&rd).max(0.0).sqrt(),
    })
}

/// A mean of per-row (or per-unit) differences and its standard error.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedMean {
    pub mean: f64,
    pub se: f64,
    pub n: usize,
}

impl PairedMean {
    /// Mean and standard error (`sd / sqrt(n)`, sample sd); `None` below two values or
    /// when a value is not finite.
    pub fn of(d: &[f64]) -> Option<PairedMean> {
        if d.len() < 2 || d.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let m = mean(d);
        let var = d.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (d.len() - 1) as f64;
        Some(PairedMean {
            mean: m,
            se: (var / d.len() as f64).sqrt(),
            n: d.len(),
        })
    }

    /// Mean and cluster-robust standard error, `clusters[i]` being value `i`'s cluster (e.g.
    /// its user): the residuals `d_i - mean` are summed per cluster and
    /// `se^2 = K / (K - 1) * sum_k E_k^2 / n^2` over the `K` clusters (the sandwich estimator
    /// of a mean with the usual small-sample factor). Values of one cluster that move together
    /// add up instead of cancelling, so the interval is as wide as the clusters' independent
    /// evidence. With every value its own cluster it is [`PairedMean::of`]'s `sd / sqrt(n)`
    /// (the same algebra, summed in another order). `None` below two clusters, on a length
    /// mismatch, or when a value is not finite.
    pub fn of_clustered(d: &[f64], clusters: &[u64]) -> Option<PairedMean> {
        PairedMean::of_clusters(d, &Clusters::of(clusters))
    }

    /// [`PairedMean::of_clustered`] with the clusters already indexed.
    pub fn of_clusters(d: &[f64], clusters: &Clusters) -> Option<PairedMean> {
        if clusters.index.len() != d.len() || d.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let (index, k) = (&clusters.index, clusters.count);
        if k < 2 {
            return None;
        }
        let m = mean(d);
        let mut sums = vec![0f64; k];
        for (&x, &ci) in d.iter().zip(index) {
            sums[ci] += x - m;
        }
        let n = d.len() as f64;
        let var = k as f64 / (k - 1) as f64 * sums.iter().map(|e| e * e).sum::<f64>() / (n * n);
        Some(PairedMean {
            mean: m,
            se: var.sqrt(),
            n: d.len(),
        })
    }

    /// The mean with its two-sided normal interval at `level`.
    pub fn interval(&self, level: f64) -> Interval {
        Interval::normal(self.mean, self.se, level)
    }
}

/// LogLoss of one row (probability clipped like [`super::metrics::logloss`]).
fn row_logloss(p: f32, y: f32) -> f64 {
    let p = (p as f64).clamp(CLIP, 1.0 - CLIP);
    let y = y as f64;
    -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
}

/// LogLoss of `a` minus LogLoss of `b` on the same rows (probabilities), as the mean of the
/// per-row differences: its mean is the difference of the two reported LogLosses, and its
/// standard error uses the pairing (rows one model finds hard, the other mostly does too).
/// `None` when lengths differ or there are fewer than two rows.
pub fn paired_logloss(p_a: &[f32], p_b: &[f32], labels: &[f32]) -> Option<PairedMean> {
    PairedMean::of(&logloss_differences(p_a, p_b, labels)?)
}

/// [`paired_logloss`] with the rows grouped into independent clusters (`clusters[i]` is row
/// `i`'s, e.g. its user): the same mean, with the cluster-robust standard error of
/// [`PairedMean::of_clustered`]. `None` on a length mismatch or below two clusters.
pub fn paired_logloss_clustered(
    p_a: &[f32],
    p_b: &[f32],
    labels: &[f32],
    clusters: &[u64],
) -> Option<PairedMean> {
    PairedMean::of_clustered(&logloss_differences(p_a, p_b, labels)?, clusters)
}

/// [`paired_logloss_clustered`] with the day's clusters already indexed.
pub fn paired_logloss_clusters(
    p_a: &[f32],
    p_b: &[f32],
    labels: &[f32],
    clusters: &Clusters,
) -> Option<PairedMean> {
    PairedMean::of_clusters(&logloss_differences(p_a, p_b, labels)?, clusters)
}

/// Per-row LogLoss of `a` minus that of `b`; `None` when the lengths differ.
fn logloss_differences(p_a: &[f32], p_b: &[f32], labels: &[f32]) -> Option<Vec<f64>> {
    if p_a.len() != labels.len() || p_b.len() != labels.len() {
        return None;
    }
    Some(
        p_a.iter()
            .zip(p_b)
            .zip(labels)
            .map(|((&a, &b), &y)| row_logloss(a, y) - row_logloss(b, y))
            .collect(),
    )
}

/// The `q`-quantile of sorted values, interpolating linearly between order statistics
/// (the usual "type 7" definition).
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn percentile_interval(mut stats: Vec<f64>, estimate: f64, level: f64) -> Interval {
    stats.sort_by(f64::total_cmp);
    Interval {
        estimate,
        lo: quantile_sorted(&stats, 0.5 - level / 2.0),
        hi: quantile_sorted(&stats, 0.5 + level / 2.0),
        level,
    }
}

/// Percentile bootstrap interval of the mean of `values` (e.g. one difference per day):
/// `resamples` draws of `values.len()` values with replacement from a ChaCha8 stream seeded
/// by `seed`. `None` when empty, a value is not finite, or `resamples` is 0.
pub fn bootstrap_mean(values: &[f64], level: f64, resamples: usize, seed: u64) -> Option<Interval> {
    if values.is_empty() || resamples == 0 || values.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = values.len();
    let stats = (0..resamples)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    Some(percentile_interval(stats, mean(values), level))
}

/// Two-stage percentile bootstrap for values nested in groups (days within worlds): each
/// resample draws the groups with replacement, then the values within each drawn group with
/// replacement, and takes the mean of every drawn value. Resampling the groups is what makes
/// the interval honest when days of one world move together. The estimate is the plain mean
/// of all values. `None` when there is no value, a group is empty, a value is not finite,
/// or `resamples` is 0.
pub fn bootstrap_clustered(
    groups: &[Vec<f64>],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<Interval> {
    let all: Vec<f64> = groups.iter().flatten().copied().collect();
    if all.is_empty()
        || resamples == 0
        || groups.iter().any(|g| g.is_empty())
        || all.iter().any(|x| !x.is_finite())
    {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = groups.len();
    let stats = (0..resamples)
        .map(|_| {
            let (mut sum, mut count) = (0f64, 0usize);
            for _ in 0..k {
                let g = &groups[rng.random_range(0..k)];
                for _ in 0..g.len() {
                    sum += g[rng.random_range(0..g.len())];
                }
                count += g.len();
            }
            sum / count as f64
        })
        .collect();
    Some(percentile_interval(stats, mean(&all), level))
}

#[cfg(test)]
mod tests;
