//! `data inspect`: per day rows, positive rate, and per field cardinality, unseen share and
//! drift (PSI / Jensen-Shannon) against day 0 and against the previous day.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::ControlFlow;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::drift::{count_into, jensen_shannon, psi, IdDistribution};
use super::source::DaySource;

/// Top ids per field kept as their own buckets in the drift measures.
pub const INSPECT_TOP_K: usize = 50;
/// PSI above which a field's drift counts as significant (industry band).
pub const PSI_SIGNIFICANT: f64 = 0.25;

/// One field on one day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldDay {
    pub field: String,
    /// Distinct ids on the day.
    pub cardinality: usize,
    /// Share of the day's rows whose id never occurred on day 0.
    pub unseen_share: f64,
    pub psi_day0: f64,
    pub js_day0: f64,
    /// PSI against the previous day (0 on day 0).
    pub psi_prev: f64,
}

/// One day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DayReport {
    pub day: usize,
    pub rows: usize,
    pub positive_rate: f64,
    pub fields: Vec<FieldDay>,
}

/// Every day of a source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InspectReport {
    pub source: String,
    pub top_k: usize,
    pub days: Vec<DayReport>,
}

/// Reads every day once, in order, a chunk at a time: what is held is each field's count of
/// every id of the day being read, plus day 0's and the previous day's buckets and ids.
pub fn inspect(source: &dyn DaySource, top_k: usize) -> Result<InspectReport> {
    let names = source.cat_fields();
    let mut day0: Vec<IdDistribution> = Vec::new();
    let mut prev: Vec<IdDistribution> = Vec::new();
    let mut days = Vec::new();
    for d in 0..source.num_days() {
        let mut counts: Vec<HashMap<u64, u64>> = vec![HashMap::new(); names.len()];
        let (mut rows, mut positives) = (0usize, 0.0f64);
        source.day_chunks(d, &mut |chunk| {
            for (f, c) in counts.iter_mut().enumerate() {
                count_into(c, chunk.field_keys(f));
            }
            rows += chunk.rows();
            for &y in &chunk.label {
                positives += f64::from(y);
            }
            Ok(ControlFlow::Continue(()))
        })?;
        let mut fields = Vec::with_capacity(names.len());
        let mut current = Vec::with_capacity(names.len());
        for (f, (name, c)) in names.iter().zip(counts).enumerate() {
            let (cardinality, psi_prev) = (
                c.len(),
                prev.get(f)
                    .map_or(0.0, |p| psi(p.probabilities(), &p.bucket_counts(&c))),
            );
            let (unseen, psi_day0, js_day0) = match day0.get(f) {
                Some(ref0) => {
                    let q0 = ref0.bucket_counts(&c);
                    let unseen: u64 = c
                        .iter()
                        .filter(|(&k, _)| !ref0.has_seen(k))
                        .map(|(_, &n)| n)
                        .sum();
                    (
                        unseen,
                        psi(ref0.probabilities(), &q0),
                        jensen_shannon(ref0.probabilities(), &q0),
                    )
                }
                // Day 0 is its own reference.
                None => (0, 0.0, 0.0),
            };
            fields.push(FieldDay {
                field: name.clone(),
                cardinality,
                unseen_share: unseen as f64 / rows.max(1) as f64,
                psi_day0,
                js_day0,
                psi_prev,
            });
            current.push(IdDistribution::from_counts(c, top_k));
        }
        if d == 0 {
            day0 = current.clone();
        }
        prev = current;
        days.push(DayReport {
            day: d,
            rows,
            positive_rate: if rows == 0 {
                f64::NAN
            } else {
                positives / rows as f64
            },
            fields,
        });
    }
    Ok(InspectReport {
        source: source.describe(),
        top_k,
        days,
    })
}

impl InspectReport {
    /// Days on which some field's PSI against the previous day is significant, with the
    /// fields, and the change of the positive rate.
    pub fn drift_alerts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for w in self.days.windows(2) {
            let shifted: Vec<String> = w[1]
                .fields
                .iter()
                .filter(|f| f.psi_prev > PSI_SIGNIFICANT)
                .map(|f| format!("{} ({:.2})", f.field, f.psi_prev))
                .collect();
            if !shifted.is_empty() {
                out.push(format!(
                    "day {}: PSI > {PSI_SIGNIFICANT} against day {} in {}; positive rate {:.4} -> {:.4}",
                    w[1].day,
                    w[0].day,
                    shifted.join(", "),
                    w[0].positive_rate,
                    w[1].positive_rate
                ));
            }
        }
        out
    }

    /// The human-readable table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "source: {} (top {} ids per field)",
            self.source, self.top_k
        );
        for d in &self.days {
            let _ = writeln!(
                s,
                "\nday {:>3}  rows {:>9}  positive rate {:.4}",
                d.day, d.rows, d.positive_rate
            );
            let _ = writeln!(
                s,
                "  {:<18} {:>9} {:>8} {:>9} {:>8} {:>9}",
                "field", "distinct", "unseen0", "psi_day0", "js_day0", "psi_prev"
            );
            for f in &d.fields {
                let _ = writeln!(
                    s,
                    "  {:<18} {:>9} {:>8.4} {:>9.4} {:>8.4} {:>9.4}",
                    f.field, f.cardinality, f.unseen_share, f.psi_day0, f.js_day0, f.psi_prev
                );
            }
        }
        let alerts = self.drift_alerts();
        let _ = writeln!(s, "\ndrift alerts:");
        if alerts.is_empty() {
            let _ = writeln!(s, "  none");
        }
        for a in alerts {
            let _ = writeln!(s, "  {a}");
        }
        s
    }
}
