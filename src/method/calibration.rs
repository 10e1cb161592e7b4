//! Served-intercept calibration (`online.calibrate`): after each online day, an arm's served
//! logit gets the constant `c` that makes its end-of-day model calibrated on the rows it has
//! just trained on, and the next day is scored with `z + c`.
//!
//! Why a separate step rather than a change to the loss: the drift-adaptive arm's bias after a
//! shift is not an offset in either of its targets (the co-distilled teacher and the labels are
//! both calibrated on those days, the replay rows are a uniform draw of the retained pool and
//! need no log-odds offset) but an oscillation of the student's overall level during the day
//! that grows when the distillation weight moves across days (`docs/verdict.md`). Whatever phase
//! the day ends in is what the next day is served with. `c` removes that phase as seen on data
//! the arm has already been scored on and trained on, so no evaluation day is read to set it.
//!
//! `c` is the maximum-likelihood intercept of a logistic model with the student's logit as a
//! fixed offset: it minimises the mean log-loss of `sigmoid(z + c)` on the rows, whose
//! derivative in `c` is `mean(sigmoid(z + c)) - mean(y)`, so at the optimum the mean prediction
//! equals the observed rate (prediction bias 0 on those rows). That equation is monotone in
//! `c`, so its root is unique; it has none when the rows hold one class only.
//!
//! A constant added to every logit changes no ranking, so AUC and gAUC are exactly those of the
//! uncalibrated model, and the step touches no training: the student, its teacher, the drift
//! signals and the distillation weight are those of a run without it.

use crate::train::loss::sigmoid;

/// Largest |c| accepted: a logit shift beyond it means the rows' rate is at an extreme the
/// model cannot be recentred to (e.g. a handful of rows), so no correction is made.
const MAX_SHIFT: f64 = 20.0;

/// The intercept `c` with `sum(sigmoid(z_i + c)) = sum(y_i)` over the rows, or `None` when the
/// rows are empty, hold one class only (no finite root), or the root lies beyond `MAX_SHIFT`.
/// Newton's method on the monotone equation, kept inside a shrinking bracket (bisection when a
/// Newton step leaves it), in f64.
pub fn fit_intercept(logits: &[f32], labels: &[f32]) -> Option<f64> {
    let n = logits.len().min(labels.len());
    if n == 0 {
        return None;
    }
    let positives: f64 = labels[..n].iter().map(|&y| y as f64).sum();
    if positives <= 0.0 || positives >= n as f64 {
        return None;
    }
    // f(c) = sum sigmoid(z + c) - positives, increasing in c.
    let f = |c: f64| -> (f64, f64) {
        let (mut s, mut ds) = (0.0, 0.0);
        for &z in &logits[..n] {
            let p = sigmoid_f64(z as f64 + c);
            s += p;
            ds += p * (1.0 - p);
        }
        (s - positives, ds)
    };
    let (mut lo, mut hi) = (-MAX_SHIFT, MAX_SHIFT);
    if f(lo).0 > 0.0 || f(hi).0 < 0.0 {
        return None;
    }
    let mut c = 0.0;
    for _ in 0..100 {
        let (v, dv) = f(c);
        if v.abs() <= 1e-9 * n as f64 {
            return Some(c);
        }
        if v > 0.0 {
            hi = c;
        } else {
            lo = c;
        }
        let newton = c - v / dv;
        c = if dv > 0.0 && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if hi - lo < 1e-12 {
            break;
        }
    }
    Some(c)
}

/// The served logits: `z + c` (the raw logits when `c` is 0).
pub fn served(mut logits: Vec<f32>, c: f64) -> Vec<f32> {
    if c != 0.0 {
        for z in &mut logits {
            *z = (*z as f64 + c) as f32;
        }
    }
    logits
}

fn sigmoid_f64(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Mean prediction over the rows after shifting every logit by `c` (for tests and reports).
pub fn mean_prediction(logits: &[f32], c: f64) -> f64 {
    if logits.is_empty() {
        return f64::NAN;
    }
    logits
        .iter()
        .map(|&z| sigmoid((z as f64 + c) as f32) as f64)
        .sum::<f64>()
        / logits.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn equal_logits_get_the_log_odds_of_the_rate() {
        // Four rows at logit 0, one positive: sigmoid(c) = 1/4, c = ln(1/3).
        let c = fit_intercept(&[0.0; 4], &[1.0, 0.0, 0.0, 0.0]).unwrap();
        close(c, (1.0f64 / 3.0).ln(), 1e-9);
        // Logit 2 everywhere, rate 0.2: c = logit(0.2) - 2 = -ln 4 - 2.
        let c = fit_intercept(&[2.0; 5], &[0.0, 1.0, 0.0, 0.0, 0.0]).unwrap();
        close(c, -(4.0f64).ln() - 2.0, 1e-9);
    }

    #[test]
    fn spread_logits_match_the_hand_solved_root() {
        // z = {0, ln 2}, one positive of two: u/(1+u) + 2u/(1+2u) = 1 with u = e^c gives
        // 2u^2 = 1, so c = -ln(2)/2.
        let c = fit_intercept(&[0.0, 2f32.ln()], &[1.0, 0.0]).unwrap();
        close(c, -0.5 * 2f64.ln(), 1e-6);
        // Symmetric logits with half the rows positive need no shift.
        let c = fit_intercept(&[-(3f32.ln()), 3f32.ln()], &[0.0, 1.0]).unwrap();
        close(c, 0.0, 1e-6);
        // z = {0, 0, ln 4}, one positive of three: 2u/(1+u) + 4u/(1+4u) = 1 gives
        // 8u^2 + u - 1 = 0, so c = ln((sqrt(33) - 1) / 16), about -1.2156 (not the naive
        // logit(1/3) - mean(z), about -1.1552).
        let c = fit_intercept(&[0.0, 0.0, 4f32.ln()], &[1.0, 0.0, 0.0]).unwrap();
        close(c, ((33f64.sqrt() - 1.0) / 16.0).ln(), 1e-6);
    }

    #[test]
    fn the_fitted_shift_makes_the_mean_prediction_the_rate() {
        // An over-predicting model (mean prediction near 0.27 on a 0.1 rate).
        let z: Vec<f32> = (0..1000).map(|i| -1.0 + (i % 7) as f32 * 0.1).collect();
        let y: Vec<f32> = (0..1000).map(|i| (i % 10 == 3) as u8 as f32).collect();
        assert!(mean_prediction(&z, 0.0) > 0.25);
        let c = fit_intercept(&z, &y).unwrap();
        assert!(c < 0.0);
        close(mean_prediction(&z, c), 0.1, 1e-6);
        // The served logits are z + c.
        let s = served(z.clone(), c);
        close(s[3] as f64, z[3] as f64 + c, 1e-6);
        assert_eq!(served(z.clone(), 0.0), z);
    }

    #[test]
    fn one_class_or_no_rows_has_no_intercept() {
        assert_eq!(fit_intercept(&[], &[]), None);
        assert_eq!(fit_intercept(&[0.5, -0.5], &[0.0, 0.0]), None);
        assert_eq!(fit_intercept(&[0.5, -0.5], &[1.0, 1.0]), None);
        // A rate the logits cannot reach within the allowed shift.
        assert_eq!(
            fit_intercept(&[30.0; 1000], &[vec![1.0], vec![0.0; 999]].concat()),
            None
        );
    }
}
