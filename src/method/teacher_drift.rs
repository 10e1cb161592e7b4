//! The frozen teacher's calibration as a drift signal (the `model` drift measure).
//!
//! The teacher at the switch is frozen from then on, so whatever it says about a day is a
//! fixed yardstick. A logistic calibration of its logit `z` on a day's labels,
//! `P(y = 1) = sigmoid(a + b z)`, says what its scores mean there: `a` follows the day's click
//! rate (the label term measures that already), `b` how much of its spread of scores still
//! separates clicks from non-clicks. When what drives clicks changes (interactions flip, a
//! field's effect reverses) `b` moves. When new ids arrive with the click function unchanged
//! the teacher scores them with its out-of-vocabulary row: it loses what it knew about those
//! ids, which lowers `b` only by the small attenuation of an omitted effect, and its scores
//! keep their meaning. So the signal is the slope's move from the reference window to the
//! day, less twice the standard error of that difference (the noise of a day's estimate,
//! which small days have plenty of), times the teacher's logit spread on the retained days:
//! in logit units, the label term's units.
//!
//! The window's level is taken from the online days in it only. The retained days fitted the
//! vocabulary, so the teacher meets fewer unknown ids there than on any later day, and its
//! slope there is not a later day's level, even in a stationary world (docs/method.md has the
//! measurement). The retained days fix the bins and the unit only.
//!
//! A day is summarised by its rows, positives and summed logits in score bins whose edges are
//! the quantiles of the teacher's logits on the retained days (fixed at the first online day,
//! never moved by an online day): a window is the sum of its days' summaries, and a day costs
//! `SCORE_BINS` numbers however many rows it has. The quantiles are read from a fine grid of
//! the logit range, so the retained rows are summarised in one pass without holding their
//! logits; a bin is a run of fine cells, and a logit is binned through its fine cell.

use serde::{Deserialize, Serialize};

use crate::num;

/// Score bins of the calibration fit: equal shares of the retained days' rows. Twice the
/// deciles of a reliability diagram, so grouping loses little of the slope's information.
pub const SCORE_BINS: usize = 20;
/// The fine grid the bins are cut from: cells of `2 * GRID_LIMIT / GRID_CELLS` logit units
/// over `[-GRID_LIMIT, GRID_LIMIT]` (logits beyond it fall in the end cells, with their value).
const GRID_CELLS: usize = 4096;
const GRID_LIMIT: f64 = 16.0;
/// The slope's move counts beyond this many standard errors of the difference (about a 95%
/// two-sided band).
pub const NOISE_BAND: f64 = 2.0;

/// The fine cell of a logit (`None` for a non-finite one).
fn cell(z: f32) -> Option<usize> {
    let z = z as f64;
    if !z.is_finite() {
        return None;
    }
    let at = ((z + GRID_LIMIT) / (2.0 * GRID_LIMIT) * GRID_CELLS as f64).floor();
    Some(at.clamp(0.0, (GRID_CELLS - 1) as f64) as usize)
}

/// One bin of a day's calibration data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreBin {
    pub rows: u64,
    #[serde(with = "num")]
    pub positives: f64,
    #[serde(with = "num")]
    pub logit_sum: f64,
}

impl ScoreBin {
    fn add(&mut self, z: f32, y: f32) {
        self.rows += 1;
        self.positives += y as f64;
        self.logit_sum += z as f64;
    }

    fn merge(&mut self, other: &ScoreBin) {
        self.rows += other.rows;
        self.positives += other.positives;
        self.logit_sum += other.logit_sum;
    }
}

/// The teacher's scores and labels of one day (or a window of days) in bins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreHistogram {
    pub bins: Vec<ScoreBin>,
}

impl ScoreHistogram {
    fn new(bins: usize) -> Self {
        ScoreHistogram {
            bins: vec![ScoreBin::default(); bins],
        }
    }

    /// Adds `other`'s counts (a window is the sum of its days).
    pub fn merge(&mut self, other: &ScoreHistogram) {
        if self.bins.len() < other.bins.len() {
            self.bins.resize(other.bins.len(), ScoreBin::default());
        }
        for (a, b) in self.bins.iter_mut().zip(&other.bins) {
            a.merge(b);
        }
    }

    /// Rows summarised.
    pub fn rows(&self) -> u64 {
        self.bins.iter().map(|b| b.rows).sum()
    }
}

/// The retained days' logits on the fine grid, gathered a chunk at a time, from which the
/// bins are cut.
#[derive(Clone, Debug)]
pub struct RetainedScores {
    cells: Vec<u64>,
    sum: f64,
    sum_sq: f64,
    rows: u64,
}

impl Default for RetainedScores {
    fn default() -> Self {
        Self::new()
    }
}

impl RetainedScores {
    pub fn new() -> Self {
        RetainedScores {
            cells: vec![0; GRID_CELLS],
            sum: 0.0,
            sum_sq: 0.0,
            rows: 0,
        }
    }

    /// More of the teacher's logits on retained rows (non-finite ones are skipped).
    pub fn add(&mut self, logits: &[f32]) {
        for &z in logits {
            if let Some(c) = cell(z) {
                self.cells[c] += 1;
                self.sum += z as f64;
                self.sum_sq += z as f64 * z as f64;
                self.rows += 1;
            }
        }
    }

    /// The bins cut from every logit added: `SCORE_BINS` equal shares of the rows (fewer when
    /// many rows share a fine cell); `None` without two rows of different scores (no slope can
    /// be fitted then).
    pub fn finish(self) -> Option<ScoreBins> {
        if self.rows < 2 {
            return None;
        }
        let n = self.rows as f64;
        let mean = self.sum / n;
        let logit_sd = ((self.sum_sq / n - mean * mean).max(0.0)).sqrt();
        if !(logit_sd > 0.0 && logit_sd.is_finite()) {
            return None;
        }
        // A bin starts at the first cell where the rows before it reach k / SCORE_BINS of all.
        let mut cuts: Vec<u32> = Vec::new();
        let mut before = 0u64;
        let mut k = 1;
        for (i, &c) in self.cells.iter().enumerate() {
            while k < SCORE_BINS && before as f64 >= k as f64 * n / SCORE_BINS as f64 {
                if i > 0 && cuts.last().is_none_or(|&l| (l as usize) < i) {
                    cuts.push(i as u32);
                }
                k += 1;
            }
            before += c;
        }
        Some(ScoreBins { cuts, logit_sd })
    }
}

/// The score bins fixed from the retained days, and the teacher's logit spread there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreBins {
    /// The fine cells where bins 1, 2, ... start (ascending).
    pub cuts: Vec<u32>,
    /// Standard deviation of the teacher's logit over the retained rows.
    #[serde(with = "num")]
    pub logit_sd: f64,
}

impl ScoreBins {
    /// Number of bins.
    pub fn len(&self) -> usize {
        self.cuts.len() + 1
    }

    /// Always false: there is at least one bin.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn bin_of_cell(&self, c: usize) -> usize {
        self.cuts.partition_point(|&k| k as usize <= c)
    }

    /// The histogram of `logits` and `labels` (non-finite logits are skipped).
    pub fn histogram(&self, logits: &[f32], labels: &[f32]) -> ScoreHistogram {
        let mut h = ScoreHistogram::new(self.len());
        for (&z, &y) in logits.iter().zip(labels) {
            if let Some(c) = cell(z) {
                h.bins[self.bin_of_cell(c)].add(z, y);
            }
        }
        h
    }
}

/// A logistic calibration `P(y = 1) = sigmoid(intercept + slope z)` fitted on binned data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    pub intercept: f64,
    pub slope: f64,
    /// Standard error of the slope (from the observed information).
    pub slope_se: f64,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Maximum-likelihood calibration on the bins (each bin a binomial with its mean logit as the
/// covariate): Newton's method, halving a step that lowers the likelihood. `None` when the
/// data hold one class only, fewer than two bins with rows, or the fit does not converge to a
/// finite point (e.g. classes separated by the bins).
pub fn fit_calibration(h: &ScoreHistogram) -> Option<Calibration> {
    let data: Vec<(f64, f64, f64)> = h
        .bins
        .iter()
        .filter(|b| b.rows > 0)
        .map(|b| {
            let n = b.rows as f64;
            (n, b.positives, b.logit_sum / n)
        })
        .collect();
    if data.len() < 2
        || data
            .iter()
            .any(|&(_, k, x)| !k.is_finite() || !x.is_finite())
    {
        return None;
    }
    let (n, k): (f64, f64) = data
        .iter()
        .fold((0.0, 0.0), |(n, k), &(bn, bk, _)| (n + bn, k + bk));
    if k <= 0.0 || k >= n {
        return None;
    }
    let loglik = |a: f64, b: f64| -> f64 {
        data.iter()
            .map(|&(bn, bk, x)| {
                let eta = a + b * x;
                // log sigmoid(eta) and log(1 - sigmoid(eta)), stable for large |eta|.
                let log_p = -(1.0 + (-eta).exp()).ln();
                let log_q = -(1.0 + eta.exp()).ln();
                bk * log_p + (bn - bk) * log_q
            })
            .sum()
    };
    let info = |a: f64, b: f64| -> ([f64; 2], [f64; 3]) {
        let (mut g, mut h) = ([0.0; 2], [0.0; 3]);
        for &(bn, bk, x) in &data {
            let p = sigmoid(a + b * x);
            let r = bk - bn * p;
            let w = bn * p * (1.0 - p);
            g[0] += r;
            g[1] += r * x;
            h[0] += w;
            h[1] += w * x;
            h[2] += w * x * x;
        }
        (g, h)
    };
    let rate = k / n;
    let (mut a, mut b) = ((rate / (1.0 - rate)).ln(), 0.0);
    let mut ll = loglik(a, b);
    for _ in 0..100 {
        let (g, h) = info(a, b);
        let det = h[0] * h[2] - h[1] * h[1];
        if !(det > 1e-12 * h[0] * h[2]) {
            return None;
        }
        let da = (h[2] * g[0] - h[1] * g[1]) / det;
        let db = (h[0] * g[1] - h[1] * g[0]) / det;
        let mut step = 1.0;
        let (mut na, mut nb, mut nll) = (a + da, b + db, loglik(a + da, b + db));
        while !(nll >= ll - 1e-12 * ll.abs()) && step > 1e-6 {
            step *= 0.5;
            (na, nb) = (a + step * da, b + step * db);
            nll = loglik(na, nb);
        }
        let moved = (na - a).abs().max((nb - b).abs());
        (a, b, ll) = (na, nb, nll);
        if !(a.is_finite() && b.is_finite()) {
            return None;
        }
        if moved < 1e-10 {
            let (_, h) = info(a, b);
            let det = h[0] * h[2] - h[1] * h[1];
            let var = h[0] / det;
            return (det > 0.0 && var.is_finite()).then(|| Calibration {
                intercept: a,
                slope: b,
                slope_se: var.sqrt(),
            });
        }
    }
    None
}

/// The frozen teacher's calibration slope shift of `day` against `window`, beyond
/// [`NOISE_BAND`] standard errors of the difference, in logit units (times `logit_sd`, the
/// teacher's logit spread on the retained days): 0 when the slopes agree within their noise,
/// `None` when either fit is impossible (one class, one bin).
pub fn slope_shift(day: &ScoreHistogram, window: &ScoreHistogram, logit_sd: f64) -> Option<f64> {
    let d = fit_calibration(day)?;
    let w = fit_calibration(window)?;
    let noise = NOISE_BAND * (d.slope_se * d.slope_se + w.slope_se * w.slope_se).sqrt();
    Some(((d.slope - w.slope).abs() - noise).max(0.0) * logit_sd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A histogram of bins given as (rows, positives, mean logit).
    fn hist(bins: &[(u64, f64, f64)]) -> ScoreHistogram {
        ScoreHistogram {
            bins: bins
                .iter()
                .map(|&(rows, positives, x)| ScoreBin {
                    rows,
                    positives,
                    logit_sum: x * rows as f64,
                })
                .collect(),
        }
    }

    fn logit(p: f64) -> f64 {
        (p / (1.0 - p)).ln()
    }

    /// Two bins at logits 0 and 1 make the model saturated: the fit reproduces each bin's
    /// rate, so `a = logit(p0)`, `b = logit(p1) - logit(p0)` and
    /// `var(b) = 1 / (n0 p0 q0) + 1 / (n1 p1 q1)`.
    #[test]
    fn two_bins_give_the_saturated_fit() {
        let c = fit_calibration(&hist(&[(100, 20.0, 0.0), (100, 50.0, 1.0)])).unwrap();
        assert!((c.intercept - logit(0.2)).abs() < 1e-9, "{c:?}");
        assert!((c.slope - (logit(0.5) - logit(0.2))).abs() < 1e-9, "{c:?}");
        let var: f64 = 1.0 / (100.0 * 0.2 * 0.8) + 1.0 / (100.0 * 0.5 * 0.5);
        assert!((c.slope_se - var.sqrt()).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn a_calibrated_teacher_has_slope_one() {
        // Bins whose rates are exactly sigmoid of their logits.
        let bins: Vec<(u64, f64, f64)> = (-4..=2)
            .map(|x| (1000u64, 1000.0 * sigmoid(x as f64), x as f64))
            .collect();
        let c = fit_calibration(&hist(&bins)).unwrap();
        assert!(
            (c.slope - 1.0).abs() < 1e-9 && c.intercept.abs() < 1e-9,
            "{c:?}"
        );
    }

    #[test]
    fn impossible_fits_are_none() {
        assert_eq!(
            fit_calibration(&hist(&[(100, 0.0, 0.0), (50, 0.0, 1.0)])),
            None
        );
        assert_eq!(
            fit_calibration(&hist(&[(100, 100.0, 0.0), (5, 5.0, 1.0)])),
            None
        );
        assert_eq!(
            fit_calibration(&hist(&[(100, 10.0, 0.0), (0, 0.0, 0.0)])),
            None
        );
        assert_eq!(fit_calibration(&ScoreHistogram::default()), None);
    }

    /// The shift of hand-computed saturated fits: the day's slope `logit(.5) - logit(.2)`
    /// against a window whose slope is `logit(.9) - logit(.1)`.
    #[test]
    fn the_shift_is_the_slope_move_beyond_its_noise_in_logit_units() {
        let day = hist(&[(100, 20.0, 0.0), (100, 50.0, 1.0)]);
        let same = hist(&[(400, 80.0, 0.0), (400, 200.0, 1.0)]);
        assert_eq!(slope_shift(&day, &same, 1.3), Some(0.0));
        let window = hist(&[(400, 40.0, 0.0), (400, 360.0, 1.0)]);
        let (b_d, b_w) = (logit(0.5) - logit(0.2), logit(0.9) - logit(0.1));
        let var_d: f64 = 1.0 / 16.0 + 1.0 / 25.0;
        let var_w = 2.0 / (400.0 * 0.9 * 0.1);
        let expect = ((b_w - b_d) - 2.0 * (var_d + var_w).sqrt()) * 1.3;
        let got = slope_shift(&day, &window, 1.3).unwrap();
        assert!((got - expect).abs() < 1e-9, "{got} vs {expect}");
        // Within the noise: a smaller move on the same small day counts nothing.
        let near = hist(&[(400, 80.0, 0.0), (400, 240.0, 1.0)]);
        assert_eq!(slope_shift(&day, &near, 1.3), Some(0.0));
        // One class on the day: no measurement.
        let one_class = hist(&[(100, 0.0, 0.0), (100, 0.0, 1.0)]);
        assert_eq!(slope_shift(&one_class, &window, 1.3), None);
    }

    /// Bins hold equal shares of the retained rows, whichever chunks they arrive in.
    #[test]
    fn retained_rows_cut_equal_share_bins() {
        let logits: Vec<f32> = (0..2000).map(|i| (i as f32 - 1000.0) / 250.0).collect();
        let labels: Vec<f32> = (0..2000).map(|i| (i % 3 == 0) as u8 as f32).collect();
        let mut r = RetainedScores::new();
        r.add(&logits[..700]);
        r.add(&logits[700..]);
        let bins = r.finish().unwrap();
        assert_eq!(bins.len(), SCORE_BINS);
        let all = bins.histogram(&logits, &labels);
        assert_eq!(all.rows(), 2000);
        for b in &all.bins {
            // Equal shares up to a fine cell's rows (2000 rows over 1024 cells).
            assert!((b.rows as i64 - 100).abs() <= 4, "{:?}", all.bins);
        }
        let sd = {
            let m = logits.iter().map(|&z| z as f64).sum::<f64>() / 2000.0;
            (logits.iter().map(|&z| (z as f64 - m).powi(2)).sum::<f64>() / 2000.0).sqrt()
        };
        assert!((bins.logit_sd - sd).abs() < 1e-6);
        // A teacher that scores every row alike gives no bins.
        let mut flat = RetainedScores::new();
        flat.add(&[0.5; 10]);
        assert!(flat.finish().is_none());
    }
}
