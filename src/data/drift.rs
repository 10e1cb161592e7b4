//! Drift of a field's id distribution against a reference window: bucketed distributions,
//! PSI and Jensen-Shannon divergence. Used by `data inspect` and by the online drift weight.

use std::collections::{HashMap, HashSet};

/// Probability floor used by [`psi`] so empty buckets give a finite value. With it a bucket
/// that goes from 0 to share `q` adds `q * ln(q / 1e-4)` (e.g. 0.046 for q = 0.01).
pub const PSI_EPSILON: f64 = 1e-4;

/// A reference id distribution in buckets: the `top_k` most frequent ids of the reference
/// (ties broken by the smaller id), then `other` (ids seen in the reference but not in the
/// top), then `unseen` (ids absent from the reference).
///
/// The reference's own `unseen` probability is the Good-Turing estimate (share of reference
/// rows whose id occurs exactly once): the chance that a fresh draw from an unchanged
/// distribution shows an id the reference did not contain. Without it every long-tailed field
/// would look drifted, because a new day always samples some tail ids the reference missed.
#[derive(Clone, Debug)]
pub struct IdDistribution {
    top: HashMap<u64, usize>,
    seen: HashSet<u64>,
    probs: Vec<f64>,
}

impl IdDistribution {
    /// Builds the buckets from the reference ids.
    pub fn reference<T: Into<u64>>(ids: impl IntoIterator<Item = T>, top_k: usize) -> Self {
        let mut counts: HashMap<u64, u64> = HashMap::new();
        count_into(&mut counts, ids);
        Self::from_counts(counts, top_k)
    }

    /// Builds the buckets from the reference's count of each id (what [`count_into`] gathers
    /// a chunk at a time).
    pub fn from_counts(counts: HashMap<u64, u64>, top_k: usize) -> Self {
        let total: u64 = counts.values().sum();
        let mut by_count: Vec<(u64, u64)> = counts.iter().map(|(&k, &c)| (k, c)).collect();
        by_count.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        by_count.truncate(top_k);
        let top: HashMap<u64, usize> = by_count
            .iter()
            .enumerate()
            .map(|(i, &(k, _))| (k, i))
            .collect();
        let mut probs = vec![0.0; by_count.len() + 2];
        if total > 0 {
            let singletons = counts.values().filter(|&&c| c == 1).count() as f64;
            let unseen = singletons / total as f64;
            let top_total: u64 = by_count.iter().map(|&(_, c)| c).sum();
            for (i, &(_, c)) in by_count.iter().enumerate() {
                probs[i] = c as f64 / total as f64 * (1.0 - unseen);
            }
            let n = probs.len();
            probs[n - 2] = (total - top_total) as f64 / total as f64 * (1.0 - unseen);
            probs[n - 1] = unseen;
        }
        IdDistribution {
            top,
            seen: counts.into_keys().collect(),
            probs,
        }
    }

    /// Probabilities of the reference buckets (top ids in order, other, unseen).
    pub fn probabilities(&self) -> &[f64] {
        &self.probs
    }

    /// Number of buckets (top ids + 2).
    pub fn len(&self) -> usize {
        self.probs.len()
    }

    /// Always false: there are at least the `other` and `unseen` buckets.
    pub fn is_empty(&self) -> bool {
        self.probs.is_empty()
    }

    /// Whether `id` occurred in the reference.
    pub fn has_seen(&self, id: u64) -> bool {
        self.seen.contains(&id)
    }

    /// The bucket of one id.
    fn bucket_of(&self, id: u64) -> usize {
        let n = self.probs.len();
        match self.top.get(&id) {
            Some(&i) => i,
            None if self.seen.contains(&id) => n - 2,
            None => n - 1,
        }
    }

    /// Probabilities of the same buckets for other ids (all zero when `ids` is empty).
    pub fn bucket<T: Into<u64>>(&self, ids: impl IntoIterator<Item = T>) -> Vec<f64> {
        let mut counts = vec![0u64; self.probs.len()];
        for id in ids {
            counts[self.bucket_of(id.into())] += 1;
        }
        shares(&counts)
    }

    /// [`bucket`](Self::bucket) of the ids counted in `counts` (id -> occurrences).
    pub fn bucket_counts(&self, counts: &HashMap<u64, u64>) -> Vec<f64> {
        let mut buckets = vec![0u64; self.probs.len()];
        for (&id, &c) in counts {
            buckets[self.bucket_of(id)] += c;
        }
        shares(&buckets)
    }
}

/// Adds each id's occurrences to `counts`.
pub fn count_into<T: Into<u64>>(counts: &mut HashMap<u64, u64>, ids: impl IntoIterator<Item = T>) {
    for id in ids {
        *counts.entry(id.into()).or_insert(0) += 1;
    }
}

/// Each bucket's share of the total (all zero when the total is).
fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return vec![0.0; counts.len()];
    }
    counts.iter().map(|&c| c as f64 / total as f64).collect()
}

/// Population stability index `sum (q - p) ln(q / p)`, each probability floored at
/// [`PSI_EPSILON`]. 0 for equal distributions; < 0.1 stable, 0.1-0.25 moderate, > 0.25
/// significant by the usual bands.
pub fn psi(p_ref: &[f64], p_cur: &[f64]) -> f64 {
    p_ref
        .iter()
        .zip(p_cur)
        .map(|(&p, &q)| {
            let (p, q) = (p.max(PSI_EPSILON), q.max(PSI_EPSILON));
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// Jensen-Shannon divergence in bits (base 2), in [0, 1]; zero-probability buckets are fine.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let kl_to_mid = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
    let js: f64 = p
        .iter()
        .zip(q)
        .map(|(&a, &b)| {
            let m = 0.5 * (a + b);
            0.5 * kl_to_mid(a, m) + 0.5 * kl_to_mid(b, m)
        })
        .sum();
    js.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_matches_hand_computation() {
        // (0.4-0.5) ln(0.4/0.5) + (0.6-0.5) ln(0.6/0.5)
        let expect = -0.1 * (0.8f64).ln() + 0.1 * (1.2f64).ln();
        assert!((psi(&[0.5, 0.5], &[0.4, 0.6]) - expect).abs() < 1e-12);
        assert_eq!(psi(&[0.3, 0.7], &[0.3, 0.7]), 0.0);
        // An empty reference bucket is floored at the epsilon.
        let with_floor = (0.1 - PSI_EPSILON) * (0.1 / PSI_EPSILON).ln() + (-0.1) * (0.9f64).ln();
        assert!((psi(&[0.0, 1.0], &[0.1, 0.9]) - with_floor).abs() < 1e-12);
    }

    #[test]
    fn jensen_shannon_is_bounded_and_symmetric() {
        assert_eq!(jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
        assert_eq!(jensen_shannon(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        // p = (1, 0), q = (0.5, 0.5): m = (0.75, 0.25);
        // JS = 0.5 * log2(1/0.75) + 0.5 * (0.5 log2(0.5/0.75) + 0.5 log2(0.5/0.25))
        let expect = 0.5 * (1.0f64 / 0.75).log2()
            + 0.5 * (0.5 * (0.5f64 / 0.75).log2() + 0.5 * (0.5f64 / 0.25).log2());
        let js = jensen_shannon(&[1.0, 0.0], &[0.5, 0.5]);
        assert!((js - expect).abs() < 1e-12);
        assert!((js - jensen_shannon(&[0.5, 0.5], &[1.0, 0.0])).abs() < 1e-12);
    }

    #[test]
    fn buckets_split_top_other_and_unseen() {
        // 7 twice, 5 twice, 3 once, 9 once: top-2 = {5, 7} (tie on count -> smaller id first).
        let d = IdDistribution::reference([7u64, 7, 5, 5, 3, 9], 2);
        assert_eq!(d.len(), 4);
        let p = d.probabilities();
        // Good-Turing unseen share: 2 singletons out of 6 rows.
        let unseen = 2.0 / 6.0;
        assert!((p[3] - unseen).abs() < 1e-12);
        assert!((p[0] - 2.0 / 6.0 * (1.0 - unseen)).abs() < 1e-12);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let q = d.bucket([5u32, 3, 100, 100]);
        assert_eq!(q, vec![0.25, 0.0, 0.25, 0.5]);
        assert_eq!(d.bucket(Vec::<u64>::new()), vec![0.0; 4]);
    }
}
