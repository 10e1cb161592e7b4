//! Strategic sampling of the retained pool for 1B/1C.
//!
//! The sampler walks the retained rows in time order in windows of `batch / ratio` rows and draws
//! a batch from each window. A new ratio set between batches takes effect from the next window,
//! so an operator can tune it mid-run. Every draw is seeded, so a run is reproducible.

use std::ops::Range;

use rand::seq::index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::pool::Pool;
use crate::data::Batch;

/// Which rows a window contributes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Half positives, half negatives (the target rate) from every window, with replacement.
    #[default]
    Biased,
    /// A uniform draw from every window.
    Uniform,
    /// Uniform draws, more of them from recent windows.
    Recency,
    /// Recency-weighted draw sizes with the biased composition.
    BiasedRecency,
    /// Every row, in time order (no sampling).
    All,
}

impl Strategy {
    pub const NAMES: &'static str = "biased, uniform, recency, biased_recency, all";
}

/// Parameters of the sampler (the `[method]` section of the session config carries them).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    pub strategy: Strategy,
    /// Share of each window drawn, in (0, 1].
    pub ratio: f64,
    /// Rows per drawn batch.
    pub batch: usize,
    /// Positive rate the biased strategies aim for, in (0, 1).
    pub target_pos_rate: f64,
    /// Half-life of the recency weight, as a share of the pool.
    pub recency_half_life: f64,
}

/// One drawn batch and where it came from.
#[derive(Clone, Debug)]
pub struct SampledBatch {
    pub batch: Batch,
    /// Rows of the pool the window covered.
    pub window: Range<usize>,
    /// The window had no positives (or no negatives): drawn uniformly instead of biased.
    pub fell_back: bool,
    /// Exact log-odds shift the draw introduced: `ln(s_pos / s_neg)` where `s_*` are the shares
    /// of positives and negatives drawn. A model trained on the batch learns true log-odds when
    /// this is added to its logit in the label loss (0 for unbiased draws).
    pub logit_offset: f32,
}

/// Validates a sampling ratio; the message is shown to operators as is.
pub fn check_ratio(ratio: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        ratio > 0.0 && ratio <= 1.0,
        "sampling ratio must be in (0, 1], got {ratio}"
    );
    Ok(())
}

pub struct StrategicSampler {
    cfg: SamplerConfig,
    cursor: usize,
    rng: ChaCha8Rng,
}

impl StrategicSampler {
    pub fn new(cfg: SamplerConfig, seed: u64) -> anyhow::Result<Self> {
        check_ratio(cfg.ratio)?;
        anyhow::ensure!(cfg.batch > 0, "sampler batch size must be positive");
        anyhow::ensure!(
            cfg.target_pos_rate > 0.0 && cfg.target_pos_rate < 1.0,
            "target positive rate must be in (0, 1), got {}",
            cfg.target_pos_rate
        );
        anyhow::ensure!(
            cfg.recency_half_life > 0.0,
            "recency half-life must be positive, got {}",
            cfg.recency_half_life
        );
        Ok(StrategicSampler {
            cfg,
            cursor: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Changes the ratio; the window being drawn is finished with the old one.
    pub fn set_ratio(&mut self, ratio: f64) -> anyhow::Result<()> {
        check_ratio(ratio)?;
        self.cfg.ratio = ratio;
        Ok(())
    }

    /// Starts again from the oldest row (a fresh draw for the next epoch or stage).
    pub fn rewind(&mut self) {
        self.cursor = 0;
    }

    fn window_rows(&self) -> usize {
        match self.cfg.strategy {
            Strategy::All => self.cfg.batch,
            _ => ((self.cfg.batch as f64 / self.cfg.ratio).round() as usize).max(1),
        }
    }

    /// Rows the whole pass will draw at the current ratio (for progress and ETA).
    pub fn expected_rows(&self, pool_rows: usize) -> u64 {
        match self.cfg.strategy {
            Strategy::All => pool_rows as u64,
            _ => (pool_rows as f64 * self.cfg.ratio).round() as u64,
        }
    }

    /// The next batch of the pass, or `None` when the pool is exhausted; an error when the
    /// pool's file cannot be read.
    pub fn next_batch(&mut self, pool: &Pool) -> anyhow::Result<Option<SampledBatch>> {
        let n = pool.rows();
        if self.cursor >= n {
            return Ok(None);
        }
        let window = self.cursor..(self.cursor + self.window_rows()).min(n);
        self.cursor = window.end;
        let len = window.len();
        let centre = (window.start + window.end) as f64 / (2.0 * n as f64);
        let draw = match self.cfg.strategy {
            Strategy::All => len,
            Strategy::Recency | Strategy::BiasedRecency => {
                let w = recency_weight(centre, self.cfg.recency_half_life);
                // Draw sizes keep the pass's total on average; a partial last window draws less.
                let full = self.cfg.batch as f64 * len as f64 / self.window_rows() as f64;
                ((full * w).round() as usize).max(1)
            }
            _ => ((self.cfg.batch * len).div_ceil(self.window_rows())).max(1),
        };
        let biased = matches!(
            self.cfg.strategy,
            Strategy::Biased | Strategy::BiasedRecency
        );
        let (rows, fell_back, logit_offset) = match self.cfg.strategy {
            Strategy::All => (window.clone().collect(), false, 0.0),
            _ if biased => self.draw_biased(pool.labels(), window.clone(), draw),
            _ => (self.draw_uniform(window.clone(), draw), false, 0.0),
        };
        Ok(Some(SampledBatch {
            batch: pool.gather(&rows)?,
            window,
            fell_back,
            logit_offset,
        }))
    }

    fn draw_uniform(&mut self, window: Range<usize>, draw: usize) -> Vec<usize> {
        let len = window.len();
        if draw <= len {
            let mut picked = index::sample(&mut self.rng, len, draw).into_vec();
            picked.sort_unstable();
            picked.into_iter().map(|i| window.start + i).collect()
        } else {
            (0..draw)
                .map(|_| window.start + self.rng.random_range(0..len))
                .collect()
        }
    }

    fn draw_biased(
        &mut self,
        labels: &[f32],
        window: Range<usize>,
        draw: usize,
    ) -> (Vec<usize>, bool, f32) {
        let (pos, neg): (Vec<usize>, Vec<usize>) = window.clone().partition(|&r| labels[r] >= 0.5);
        if pos.is_empty() || neg.is_empty() {
            return (self.draw_uniform(window, draw), true, 0.0);
        }
        let n_pos = ((draw as f64 * self.cfg.target_pos_rate).round() as usize).clamp(1, draw);
        let n_neg = draw - n_pos;
        let mut rows = Vec::with_capacity(draw);
        rows.extend((0..n_pos).map(|_| pos[self.rng.random_range(0..pos.len())]));
        rows.extend((0..n_neg).map(|_| neg[self.rng.random_range(0..neg.len())]));
        rows.sort_unstable();
        let s_pos = n_pos as f64 / pos.len() as f64;
        let s_neg = n_neg.max(1) as f64 / neg.len() as f64;
        (rows, false, (s_pos / s_neg).ln() as f32)
    }
}

/// Weight of a window centred at `pos` (0 = oldest, 1 = newest): halves every `half_life` of the
/// pool going back in time, normalised so that its mean over the pool is 1.
pub fn recency_weight(pos: f64, half_life: f64) -> f64 {
    let ln2 = std::f64::consts::LN_2;
    let integral = half_life / ln2 * (1.0 - (-ln2 / half_life).exp());
    (-(1.0 - pos) * ln2 / half_life).exp() / integral
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` rows, one field holding the row index, positives where `is_pos(row)`.
    fn pool(n: usize, is_pos: impl Fn(usize) -> bool) -> Pool {
        Pool::from_batch(&Batch {
            num_cat: 1,
            num_num: 0,
            cat: (0..n as u32).collect(),
            num: vec![],
            label: (0..n).map(|r| if is_pos(r) { 1.0 } else { 0.0 }).collect(),
            users: Vec::new(),
        })
        .unwrap()
    }

    fn cfg(strategy: Strategy, ratio: f64) -> SamplerConfig {
        SamplerConfig {
            strategy,
            ratio,
            batch: 100,
            target_pos_rate: 0.5,
            recency_half_life: 0.25,
        }
    }

    #[test]
    fn biased_draws_hit_the_target_rate_inside_each_window() {
        let p = pool(10_000, |r| r % 20 == 0); // 5% positives
        let mut s = StrategicSampler::new(cfg(Strategy::Biased, 0.1), 1).unwrap();
        let mut windows = 0;
        while let Some(b) = s.next_batch(&p).unwrap() {
            windows += 1;
            assert_eq!(b.window.len(), 1000);
            assert_eq!(b.batch.rows(), 100);
            assert!((b.batch.positive_rate() - 0.5).abs() < 1e-9);
            assert!(!b.fell_back);
            for id in &b.batch.cat {
                assert!(b.window.contains(&(*id as usize)), "row outside its window");
            }
            // Each window holds 50 positives and 950 negatives; drawing 50 of each shifts the
            // odds by (50/50) / (50/950) = 19.
            let expected = 19f32.ln();
            assert!((b.logit_offset - expected).abs() < 1e-5);
        }
        assert_eq!(windows, 10);
    }

    #[test]
    fn a_window_without_positives_falls_back_to_uniform() {
        let p = pool(2_000, |r| r >= 1_000 && r % 10 == 0);
        let mut s = StrategicSampler::new(cfg(Strategy::Biased, 0.1), 2).unwrap();
        let first = s.next_batch(&p).unwrap().unwrap();
        assert!(first.fell_back);
        assert_eq!(first.batch.rows(), 100);
        assert_eq!(first.batch.positive_rate(), 0.0);
        assert_eq!(first.logit_offset, 0.0);
        let second = s.next_batch(&p).unwrap().unwrap();
        assert!(!second.fell_back);
        assert!(s.next_batch(&p).unwrap().is_none());
    }

    #[test]
    fn a_new_ratio_takes_effect_from_the_next_window() {
        let p = pool(10_000, |r| r % 7 == 0);
        let mut s = StrategicSampler::new(cfg(Strategy::Uniform, 0.1), 3).unwrap();
        assert_eq!(s.next_batch(&p).unwrap().unwrap().window, 0..1000);
        s.set_ratio(0.5).unwrap();
        assert_eq!(s.next_batch(&p).unwrap().unwrap().window, 1000..1200);
        assert!(s.set_ratio(0.0).is_err());
        assert!(s.set_ratio(1.5).is_err());
        assert!(StrategicSampler::new(cfg(Strategy::Uniform, -0.1), 0).is_err());
    }

    #[test]
    fn uniform_draws_are_distinct_rows_in_time_order() {
        let p = pool(1_000, |r| r % 3 == 0);
        let mut s = StrategicSampler::new(cfg(Strategy::Uniform, 0.5), 4).unwrap();
        let b = s.next_batch(&p).unwrap().unwrap();
        let ids: Vec<u32> = b.batch.cat.clone();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn all_rows_strategy_reads_everything_in_order() {
        let p = pool(250, |r| r % 2 == 0);
        let mut s = StrategicSampler::new(cfg(Strategy::All, 0.1), 5).unwrap();
        let mut seen = vec![];
        while let Some(b) = s.next_batch(&p).unwrap() {
            seen.extend(b.batch.cat);
        }
        assert_eq!(seen, (0..250).collect::<Vec<u32>>());
        assert_eq!(s.expected_rows(250), 250);
    }

    #[test]
    fn recency_draws_more_from_recent_windows_and_keeps_the_total() {
        let p = pool(20_000, |r| r % 10 == 0);
        let mut s = StrategicSampler::new(cfg(Strategy::Recency, 0.1), 6).unwrap();
        let sizes: Vec<usize> = std::iter::from_fn(|| s.next_batch(&p).unwrap())
            .map(|b| b.batch.rows())
            .collect();
        assert!(sizes.first() < sizes.last());
        let total: usize = sizes.iter().sum();
        assert!((total as f64 - 2000.0).abs() < 100.0, "total {total}");
    }

    #[test]
    fn recency_weight_has_mean_one() {
        let n = 10_000;
        let mean: f64 = (0..n)
            .map(|i| recency_weight((i as f64 + 0.5) / n as f64, 0.25))
            .sum::<f64>()
            / n as f64;
        assert!((mean - 1.0).abs() < 1e-4);
    }

    #[test]
    fn same_seed_same_draws() {
        let p = pool(5_000, |r| r % 9 == 0);
        let draw = |seed| {
            let mut s = StrategicSampler::new(cfg(Strategy::BiasedRecency, 0.2), seed).unwrap();
            std::iter::from_fn(|| s.next_batch(&p).unwrap())
                .flat_map(|b| b.batch.cat)
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
    }
}
