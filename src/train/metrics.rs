//! Evaluation metrics: exact AUC (ties as average rank), gAUC, LogLoss, prediction bias, NE.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::data::Batch;
use crate::num;

use super::loss::sigmoid;

/// Evaluation of one model on one day.
///
/// A day with one class (only clicks, or none) leaves some metrics undefined, and they say so
/// explicitly: `auc` and `gauc` are `None`, `ne` is NaN (the base rate's entropy is zero) and,
/// with no positives, `bias` is infinite. A diverged model's NaN predictions give NaN LogLoss
/// and bias. Every such value is written and read back through [`crate::num`] and shown as `–`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// `None` when the day has a single class.
    #[serde(default, with = "num::opt")]
    pub auc: Option<f64>,
    #[serde(with = "num")]
    pub logloss: f64,
    /// `mean(p) / mean(y) - 1`; infinite when the day has no positives.
    #[serde(with = "num")]
    pub bias: f64,
    /// Normalised entropy; NaN when the day has a single class.
    #[serde(with = "num")]
    pub ne: f64,
    /// `None` when no user has both classes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub gauc: Option<f64>,
    pub rows: u64,
}

impl EvalMetrics {
    /// `|bias|` when it is a number (a day without positives has none).
    pub fn abs_bias(&self) -> Option<f64> {
        Some(self.bias.abs()).filter(|b| b.is_finite())
    }
}

/// Predictions are clipped to `[CLIP, 1 - CLIP]` for LogLoss.
pub const CLIP: f64 = 1e-7;

/// Exact ROC AUC (Mann-Whitney U with average ranks for ties). `None` when the labels hold a
/// single class (or are empty) or lengths differ.
pub fn auc(scores: &[f32], labels: &[f32]) -> Option<f64> {
    if scores.len() != labels.len() {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut pos, mut rank_sum) = (0f64, 0f64);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] > 0.5 {
                pos += 1.0;
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    let neg = scores.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Impression-weighted mean of per-user AUCs; users with a single class are skipped. `None`
/// if no user has both classes.
pub fn gauc<U: Copy + Eq + std::hash::Hash + Ord>(
    scores: &[f32],
    labels: &[f32],
    users: &[U],
) -> Option<f64> {
    let mut groups: HashMap<U, Vec<usize>> = HashMap::new();
    for (i, &u) in users
        .iter()
        .enumerate()
        .take(scores.len().min(labels.len()))
    {
        groups.entry(u).or_default().push(i);
    }
    let mut keys: Vec<U> = groups.keys().copied().collect();
    keys.sort_unstable();
    let (mut num, mut den) = (0f64, 0f64);
    for u in keys {
        let rows = &groups[&u];
        let s: Vec<f32> = rows.iter().map(|&i| scores[i]).collect();
        let y: Vec<f32> = rows.iter().map(|&i| labels[i]).collect();
        if let Some(a) = auc(&s, &y) {
            num += a * rows.len() as f64;
            den += rows.len() as f64;
        }
    }
    (den > 0.0).then(|| num / den)
}

/// Mean BCE of probabilities clipped to `[1e-7, 1 - 1e-7]`; NaN for empty input.
pub fn logloss(p: &[f32], y: &[f32]) -> f64 {
    let n = p.len().min(y.len());
    if n == 0 {
        return f64::NAN;
    }
    let s: f64 = p
        .iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = (p as f64).clamp(CLIP, 1.0 - CLIP);
            let y = y as f64;
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum();
    s / n as f64
}

/// `mean(p) / mean(y) - 1`: infinite when there are no positives, NaN for empty input.
pub fn bias(p: &[f32], y: &[f32]) -> f64 {
    let n = p.len().min(y.len());
    if n == 0 {
        return f64::NAN;
    }
    let mp: f64 = p.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let my: f64 = y.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    mp / my - 1.0
}

/// Normalised entropy: LogLoss over the entropy of the base rate; NaN when the base rate is
/// 0 or 1 (the entropy is zero).
pub fn ne(p: &[f32], y: &[f32]) -> f64 {
    let n = y.len();
    if n == 0 {
        return f64::NAN;
    }
    let r = y.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    if r <= 0.0 || r >= 1.0 {
        return f64::NAN;
    }
    let h = -(r * r.ln() + (1.0 - r) * (1.0 - r).ln());
    logloss(p, y) / h
}

/// Every metric of one evaluated batch (a day). gAUC groups rows by the batch's raw user keys
/// when it has them (`Batch::users`), else by the ids of `user_field`, where every user the
/// vocabulary has not seen falls into one OOV group.
pub fn evaluate(logits: &[f32], b: &Batch, user_field: Option<usize>) -> EvalMetrics {
    if !b.users.is_empty() && b.users.len() == b.rows() {
        return evaluate_rows(logits, &b.label, user_field.map(|_| &b.users[..]));
    }
    let column: Option<Vec<u64>> = user_field
        .filter(|&f| f < b.num_cat)
        .map(|f| b.field_column(f).map(u64::from).collect());
    evaluate_rows(logits, &b.label, column.as_deref())
}

/// [`evaluate`] from the labels and, for gAUC, each row's user (a day kept on disk holds
/// only these in memory).
pub fn evaluate_rows(logits: &[f32], labels: &[f32], users: Option<&[u64]>) -> EvalMetrics {
    let p: Vec<f32> = logits.iter().map(|&z| sigmoid(z)).collect();
    EvalMetrics {
        auc: auc(logits, labels),
        logloss: logloss(&p, labels),
        bias: bias(&p, labels),
        ne: ne(&p, labels),
        gauc: users.and_then(|u| gauc(logits, labels, u)),
        rows: labels.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_hand_cases_with_ties() {
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]),
            Some(0.75)
        );
        assert_eq!(auc(&[0.1, 0.2], &[0.0, 1.0]), Some(1.0));
        assert_eq!(auc(&[0.2, 0.1], &[0.0, 1.0]), Some(0.0));
        // All tied: 0.5. One tie between a positive and a negative counts half.
        assert_eq!(auc(&[0.5, 0.5, 0.5], &[0.0, 1.0, 1.0]), Some(0.5));
        assert_eq!(
            auc(&[0.1, 0.5, 0.5, 0.9], &[0.0, 0.0, 1.0, 1.0]),
            Some(0.875)
        );
        assert_eq!(auc(&[0.3, 0.2], &[1.0, 1.0]), None);
        assert_eq!(auc(&[], &[]), None);
        assert_eq!(auc(&[0.3], &[1.0, 0.0]), None);
    }

    #[test]
    fn gauc_weights_users_by_impressions_and_skips_one_class_users() {
        let s = [0.1, 0.9, 0.8, 0.2, 0.3, 0.5, 0.7];
        let y = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        let u = [1, 1, 2, 2, 2, 3, 3];
        // user 1: AUC 1 (2 rows); user 2: pos 0.2 vs negs 0.8, 0.3 -> 0 (3 rows); user 3 skipped.
        assert_eq!(gauc(&s, &y, &u), Some(2.0 / 5.0));
        assert_eq!(gauc(&[0.1], &[1.0], &[1]), None);
    }

    #[test]
    fn logloss_bias_and_ne_hand_values() {
        let ll = logloss(&[0.5, 0.5], &[1.0, 0.0]);
        assert!((ll - 2f64.ln()).abs() < 1e-12);
        assert!(logloss(&[0.0], &[1.0]) < 16.2 && logloss(&[0.0], &[1.0]) > 16.0); // -ln 1e-7
        assert!((bias(&[0.3, 0.3], &[1.0, 0.0]) - (-0.4)).abs() < 1e-6);
        assert!(bias(&[0.3], &[0.0]).is_infinite());
        // Predicting the base rate gives NE 1.
        assert!((ne(&[0.25; 4], &[1.0, 0.0, 0.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(ne(&[0.5], &[1.0]).is_nan());
        assert!(logloss(&[], &[]).is_nan());
    }

    #[test]
    fn a_one_class_day_leaves_its_undefined_metrics_explicit_and_they_round_trip() {
        let b = Batch {
            num_cat: 1,
            num_num: 0,
            cat: vec![1, 2, 1],
            num: vec![],
            label: vec![0.0, 0.0, 0.0],
            users: Vec::new(),
        };
        let m = evaluate(&[-1.0, 0.5, 2.0], &b, Some(0));
        assert_eq!((m.auc, m.gauc), (None, None));
        assert!(m.ne.is_nan());
        assert_eq!(m.bias, f64::INFINITY);
        assert_eq!(m.abs_bias(), None);
        assert!(m.logloss.is_finite());
        let text = serde_json::to_string(&m).unwrap();
        assert!(
            text.contains(r#""auc":null"#)
                && text.contains(r#""bias":"inf""#)
                && text.contains(r#""ne":"NaN""#),
            "{text}"
        );
        let back: EvalMetrics = serde_json::from_str(&text).unwrap();
        assert_eq!(back.auc, None);
        assert!(back.ne.is_nan());
        assert_eq!(back.bias, f64::INFINITY);
        // serde_json reads a float to within one unit in the last place.
        assert!((back.logloss - m.logloss).abs() <= 4.0 * f64::EPSILON * m.logloss);
    }

    #[test]
    fn evaluate_fills_every_field() {
        let b = Batch {
            num_cat: 1,
            num_num: 0,
            cat: vec![2, 2, 3, 3],
            num: vec![],
            label: vec![0.0, 1.0, 0.0, 1.0],
            users: Vec::new(),
        };
        let m = evaluate(&[-1.0, 1.0, 2.0, 0.0], &b, Some(0));
        assert_eq!(m.rows, 4);
        assert_eq!(m.auc, Some(0.5));
        assert_eq!(m.gauc, Some(0.5));
        assert!(m.logloss > 0.0 && m.ne > 0.0);
    }

    /// Two new users share the OOV id 1: by ids they are one user, by their raw keys two.
    #[test]
    fn gauc_groups_new_users_by_their_raw_keys_not_by_the_oov_id() {
        let mut b = Batch {
            num_cat: 1,
            num_num: 0,
            cat: vec![1, 1, 1, 1],
            num: vec![],
            label: vec![0.0, 1.0, 0.0, 1.0],
            users: vec![70, 70, 70, 80],
        };
        let logits = [0.1, 0.9, 0.6, 0.5];
        // By raw keys: user 70 (rows 0-2) ranks its positive 0.9 above 0.1 and 0.6 (AUC 1);
        // user 80 has one class and is skipped.
        assert_eq!(evaluate(&logits, &b, Some(0)).gauc, Some(1.0));
        // By ids (users unknown): one OOV group of four rows, positives {0.9, 0.5} against
        // negatives {0.1, 0.6}: 3 of 4 pairs in order.
        b.users.clear();
        assert_eq!(evaluate(&logits, &b, Some(0)).gauc, Some(0.75));
    }
}
