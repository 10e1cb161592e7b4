//! Bounded summaries of raw keys for drift measured against a window of days, so the online
//! drift weight neither keeps nor re-reads the reference days and is measured on the keys the
//! data holds rather than on vocabulary ids (where every key the vocabulary lacks is one OOV id).
//!
//! A day is summarised once, as it arrives, by its [`DaySketch`]: per field the exact counts
//! of at most `capacity` candidate heavy hitters. The candidates come from a Misra-Gries pass
//! (every key with more than `rows / (capacity + 1)` occurrences is among them), a second pass
//! counts them exactly; both passes are O(rows) and the sketch's size depends on neither the
//! number of days nor the field's cardinality. A window's reference distribution
//! ([`KeyReference`]) adds its days' counts; a key that was below a day's threshold counts 0
//! that day, so a reference count can only be short by less than `rows / (capacity + 1)` per
//! day. The capacity is chosen by how close the PSI from sketches comes to the PSI from exact
//! counts (docs/method.md, "Drift on raw keys").
//!
//! No crate is used: the structure is a map and two loops, and the well-known sketch crates
//! (count-min, top-k with heaps) give approximate counts where this gives exact ones for the
//! keys that matter.

use std::cmp::Reverse;

use super::source::RawDay;
use super::vocab::KeyMap;

/// The candidate heavy hitters of one field on one day with their exact counts.
#[derive(Clone, Debug, PartialEq)]
pub struct HeavyHitters {
    /// `(key, count)`, most frequent first (ties by the smaller key).
    counts: Vec<(u64, u64)>,
    rows: u64,
}

impl HeavyHitters {
    /// Summarises the keys `keys()` yields (called twice: candidates, then exact counts).
    #[cfg(test)]
    pub fn of_keys<I: Iterator<Item = u64>>(keys: impl Fn() -> I, capacity: usize) -> Self {
        let mut pass = HeavyHittersPass::new(capacity);
        pass.candidates(keys());
        pass.start_counting();
        pass.count(keys());
        pass.finish()
    }

    /// Rows summarised.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The kept keys with their exact counts, most frequent first.
    pub fn counts(&self) -> &[(u64, u64)] {
        &self.counts
    }
}

/// [`HeavyHitters`] built over keys that arrive in pieces (a day read a chunk at a time): the
/// candidate pass sees every piece, then the counting pass sees them again in the same order.
/// Fed the same keys, it gives exactly what [`HeavyHitters::of_keys`] gives.
#[derive(Clone, Debug)]
struct HeavyHittersPass {
    capacity: usize,
    candidates: KeyMap<u64>,
    /// The candidates' exact counts, once counting has started.
    exact: Option<KeyMap<u64>>,
    rows: u64,
}

impl HeavyHittersPass {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let mut candidates: KeyMap<u64> = KeyMap::default();
        candidates.reserve(capacity + 1);
        HeavyHittersPass {
            capacity,
            candidates,
            exact: None,
            rows: 0,
        }
    }

    fn candidates(&mut self, keys: impl Iterator<Item = u64>) {
        let candidates = &mut self.candidates;
        for k in keys {
            self.rows += 1;
            if let Some(c) = candidates.get_mut(&k) {
                *c += 1;
            } else if candidates.len() < self.capacity {
                candidates.insert(k, 1);
            } else {
                // Misra-Gries: the new key and one of each candidate cancel out. Each such step
                // consumes `capacity + 1` arrivals, so the retains cost O(rows) in all.
                candidates.retain(|_, c| {
                    *c -= 1;
                    *c > 0
                });
            }
        }
    }

    fn start_counting(&mut self) {
        self.exact = Some(self.candidates.keys().map(|&k| (k, 0)).collect());
    }

    fn count(&mut self, keys: impl Iterator<Item = u64>) {
        let Some(exact) = self.exact.as_mut() else {
            return;
        };
        for k in keys {
            if let Some(c) = exact.get_mut(&k) {
                *c += 1;
            }
        }
    }

    fn finish(self) -> HeavyHitters {
        let mut counts: Vec<(u64, u64)> = self.exact.unwrap_or_default().into_iter().collect();
        counts.sort_unstable_by_key(|&(k, c)| (Reverse(c), k));
        HeavyHitters {
            counts,
            rows: self.rows,
        }
    }
}

/// One day summarised for drift: each categorical field's heavy hitters and the label count.
#[derive(Clone, Debug, PartialEq)]
pub struct DaySketch {
    pub fields: Vec<HeavyHitters>,
    pub rows: u64,
    pub positives: f64,
}

impl DaySketch {
    /// Summarises `raw` keeping at most `capacity` keys per field.
    pub fn of(raw: &RawDay, capacity: usize) -> DaySketch {
        let mut sketcher = DaySketcher::new(raw.num_cat, capacity);
        sketcher.first_pass(raw);
        sketcher.start_second_pass();
        sketcher.second_pass(raw);
        sketcher.finish()
    }
}

/// A [`DaySketch`] made over a day read a chunk at a time, in two passes over the chunks (the
/// candidates, then their exact counts), so the day's raw keys are never held whole. Fed the
/// whole day as one chunk it is [`DaySketch::of`].
#[derive(Clone, Debug)]
pub struct DaySketcher {
    fields: Vec<HeavyHittersPass>,
    rows: u64,
    positives: f64,
}

impl DaySketcher {
    /// A sketcher of days with `num_cat` categorical fields, keeping `capacity` keys each.
    pub fn new(num_cat: usize, capacity: usize) -> Self {
        DaySketcher {
            fields: (0..num_cat)
                .map(|_| HeavyHittersPass::new(capacity))
                .collect(),
            rows: 0,
            positives: 0.0,
        }
    }

    /// The candidate pass over the next chunk of the day.
    pub fn first_pass(&mut self, chunk: &RawDay) {
        for (f, field) in self.fields.iter_mut().enumerate() {
            field.candidates(chunk.field_keys(f));
        }
        self.rows += chunk.rows() as u64;
        for &y in &chunk.label {
            self.positives += y as f64;
        }
    }

    /// Ends the candidate pass: from here on the chunks, fed again from the day's start, are
    /// counted.
    pub fn start_second_pass(&mut self) {
        self.fields
            .iter_mut()
            .for_each(HeavyHittersPass::start_counting);
    }

    /// The counting pass over the next chunk of the day.
    pub fn second_pass(&mut self, chunk: &RawDay) {
        for (f, field) in self.fields.iter_mut().enumerate() {
            field.count(chunk.field_keys(f));
        }
    }

    /// The day's sketch.
    pub fn finish(self) -> DaySketch {
        let rows = self.rows;
        DaySketch {
            fields: self
                .fields
                .into_iter()
                .map(HeavyHittersPass::finish)
                .collect(),
            rows,
            positives: self.positives,
        }
    }
}

/// A window's distribution of one field in buckets: its `top_k` most frequent keys (by the
/// summed sketch counts, ties by the smaller key), then `other` (every other key, seen in the
/// window or not).
#[derive(Clone, Debug)]
pub struct KeyReference {
    top: KeyMap<usize>,
    probs: Vec<f64>,
}

impl KeyReference {
    /// The reference of field `f` over the sketched days.
    pub fn new(days: &[&DaySketch], f: usize, top_k: usize) -> KeyReference {
        let mut sum: KeyMap<u64> = KeyMap::default();
        let mut total = 0u64;
        for day in days {
            let field = &day.fields[f];
            total += field.rows;
            for &(k, c) in &field.counts {
                *sum.entry(k).or_insert(0) += c;
            }
        }
        let mut ranked: Vec<(u64, u64)> = sum.into_iter().collect();
        ranked.sort_unstable_by_key(|&(k, c)| (Reverse(c), k));
        ranked.truncate(top_k);
        let mut probs = vec![0.0; ranked.len() + 1];
        if total > 0 {
            for (i, &(_, c)) in ranked.iter().enumerate() {
                probs[i] = c as f64 / total as f64;
            }
            let top: f64 = probs.iter().sum();
            probs[ranked.len()] = (1.0 - top).max(0.0);
        }
        KeyReference {
            top: ranked
                .iter()
                .enumerate()
                .map(|(i, &(k, _))| (k, i))
                .collect(),
            probs,
        }
    }

    /// Probabilities of the buckets (top keys in order, then other).
    pub fn probabilities(&self) -> &[f64] {
        &self.probs
    }

    /// Number of buckets (top keys + 1).
    pub fn len(&self) -> usize {
        self.probs.len()
    }

    /// Always false: there is at least the `other` bucket.
    pub fn is_empty(&self) -> bool {
        self.probs.is_empty()
    }

    /// The bucket of `key`.
    pub fn bucket_of(&self, key: u64) -> usize {
        self.top.get(&key).copied().unwrap_or(self.probs.len() - 1)
    }
}

/// Shares of counts per bucket (all zero when the counts are).
pub fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return vec![0.0; counts.len()];
    }
    counts.iter().map(|&c| c as f64 / total as f64).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::data::drift::psi;

    /// Keys drawn from a Zipf-like law over `n` keys (rank r with weight 1/r), deterministic.
    fn zipf(rows: usize, n: u64, seed: u64) -> Vec<u64> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let weights: Vec<f64> = (1..=n).map(|r| 1.0 / r as f64).collect();
        let total: f64 = weights.iter().sum();
        let cdf: Vec<f64> = weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w / total;
                Some(*acc)
            })
            .collect();
        (0..rows)
            .map(|_| {
                let u: f64 = rng.random();
                cdf.partition_point(|&c| c < u) as u64 * 7919 + seed % 3
            })
            .collect()
    }

    #[test]
    fn every_key_above_the_threshold_is_kept_with_its_exact_count() {
        let keys = zipf(20_000, 5_000, 1);
        let mut exact: HashMap<u64, u64> = HashMap::new();
        for &k in &keys {
            *exact.entry(k).or_insert(0) += 1;
        }
        let capacity = 64;
        let hh = HeavyHitters::of_keys(|| keys.iter().copied(), capacity);
        assert_eq!(hh.rows(), 20_000);
        assert!(hh.counts().len() <= capacity);
        for &(k, c) in hh.counts() {
            assert_eq!(exact[&k], c, "key {k}");
        }
        let threshold = 20_000 / (capacity as u64 + 1);
        for (&k, &c) in &exact {
            if c > threshold {
                assert!(
                    hh.counts().iter().any(|&(h, _)| h == k),
                    "lost key {k} ({c})"
                );
            }
        }
    }

    /// PSI from sketches of a window against the PSI from exact counts with the same buckets
    /// definition: close for a capacity a few times `top_k`.
    #[test]
    fn sketched_psi_is_close_to_the_exact_psi() {
        let days: Vec<Vec<u64>> = (0..6).map(|d| zipf(20_000, 20_000, d)).collect();
        let current = zipf(20_000, 20_000, 99);
        let top_k = 50;
        // Exact: top keys of the whole window by their exact counts.
        let mut exact: HashMap<u64, u64> = HashMap::new();
        for day in &days {
            for &k in day {
                *exact.entry(k).or_insert(0) += 1;
            }
        }
        let raw = |keys: &Vec<u64>| RawDay {
            num_cat: 1,
            num_num: 0,
            cat: keys.clone(),
            num: vec![],
            label: vec![0.0; keys.len()],
        };
        let full: Vec<DaySketch> = days
            .iter()
            .map(|d| DaySketch::of(&raw(d), 1 << 20))
            .collect();
        let refs: Vec<&DaySketch> = full.iter().collect();
        let exact_ref = KeyReference::new(&refs, 0, top_k);
        let count = |r: &KeyReference| {
            let mut c = vec![0u64; r.len()];
            for &k in &current {
                c[r.bucket_of(k)] += 1;
            }
            psi(r.probabilities(), &shares(&c))
        };
        let exact_psi = count(&exact_ref);
        let sketches: Vec<DaySketch> = days
            .iter()
            .map(|d| DaySketch::of(&raw(d), 4 * top_k))
            .collect();
        let refs: Vec<&DaySketch> = sketches.iter().collect();
        let sketched = count(&KeyReference::new(&refs, 0, top_k));
        assert!(
            (sketched - exact_psi).abs() < 0.01,
            "sketched {sketched} vs exact {exact_psi}"
        );
    }

    #[test]
    fn references_rank_summed_counts_and_keep_the_rest_as_other() {
        let day = |keys: &[u64]| RawDay {
            num_cat: 1,
            num_num: 0,
            cat: keys.to_vec(),
            num: vec![],
            label: vec![1.0; keys.len()],
        };
        let a = DaySketch::of(&day(&[1, 1, 2, 3]), 8);
        let b = DaySketch::of(&day(&[2, 2, 2, 4]), 8);
        assert_eq!(a.positives, 4.0);
        let r = KeyReference::new(&[&a, &b], 0, 2);
        // 2: 4 of 8 rows, 1: 2 of 8, other: 3 and 4.
        assert_eq!(r.probabilities(), &[0.5, 0.25, 0.25]);
        assert_eq!(r.bucket_of(2), 0);
        assert_eq!(r.bucket_of(1), 1);
        assert_eq!(r.bucket_of(3), 2);
        assert_eq!(r.bucket_of(77), 2);
    }

    /// How close sketched PSI comes to exact-count PSI on the default stream's history and
    /// retained days (6-day windows, the next day as current), per sketch capacity: the
    /// measurement behind the engine's capacity (docs/method.md). Run with
    /// `cargo test --release --lib sketch_capacity -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn sketch_capacity_on_the_default_stream() {
        use crate::data::{DaySource, SynthConfig, SyntheticSource};
        let source = SyntheticSource::new(SynthConfig::default()).unwrap();
        let days: Vec<RawDay> = (0..12).map(|d| source.raw_day(d).unwrap()).collect();
        let top_k = 50;
        let psi_of = |sketches: &[DaySketch], current: &RawDay| -> Vec<f64> {
            let refs: Vec<&DaySketch> = sketches.iter().collect();
            (0..current.num_cat)
                .map(|f| {
                    let r = KeyReference::new(&refs, f, top_k);
                    let mut c = vec![0u64; r.len()];
                    for k in current.field_keys(f) {
                        c[r.bucket_of(k)] += 1;
                    }
                    psi(r.probabilities(), &shares(&c))
                })
                .collect()
        };
        let windows: Vec<(usize, usize)> = (0..6).map(|s| (s, s + 6)).collect();
        let exact: Vec<Vec<f64>> = windows
            .iter()
            .map(|&(a, b)| {
                let sk: Vec<DaySketch> = days[a..b]
                    .iter()
                    .map(|d| DaySketch::of(d, 1 << 22))
                    .collect();
                psi_of(&sk, &days[b])
            })
            .collect();
        for capacity in [50, 100, 200, 400, 800] {
            let (mut max_err, mut sum_err, mut n, mut max_rel) = (0.0f64, 0.0, 0, 0.0f64);
            for (w, &(a, b)) in windows.iter().enumerate() {
                let sk: Vec<DaySketch> = days[a..b]
                    .iter()
                    .map(|d| DaySketch::of(d, capacity))
                    .collect();
                for (f, v) in psi_of(&sk, &days[b]).into_iter().enumerate() {
                    let e = (v - exact[w][f]).abs();
                    max_err = max_err.max(e);
                    max_rel = max_rel.max(e / exact[w][f].max(1e-3));
                    sum_err += e;
                    n += 1;
                }
            }
            println!(
                "capacity {capacity}: PSI abs error max {max_err:.5} mean {:.5}, max relative {max_rel:.3} ({n} field-days)",
                sum_err / n as f64
            );
        }
    }
}
