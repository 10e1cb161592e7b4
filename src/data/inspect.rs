//! `data inspect`: per day rows, positive rate, and per field cardinality, unseen share and
//! drift (PSI / Jensen-Shannon) against day 0 and against the previous day.

use std::collections::HashSet;
use std::fmt::Write as _;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::drift::{jensen_shannon, psi, IdDistribution};
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

/// Reads every day once, in order, holding one day plus the references in memory.
pub fn inspect(source: &dyn DaySource, top_k: usize) -> Result<InspectReport> {
    let names = source.cat_fields();
    let mut day0: Vec<(IdDistribution, HashSet<u64>)> = Vec::new();
    let mut prev: Vec<IdDistribution> = Vec::new();
    let mut days = Vec::new();
    for d in 0..source.num_days() {
        let raw = source.raw_day(d)?;
        let mut fields = Vec::with_capacity(names.len());
        let mut current = Vec::with_capacity(names.len());
        for (f, name) in names.iter().enumerate() {
            let dist = IdDistribution::reference(raw.field_keys(f), top_k);
            let distinct: HashSet<u64> = raw.field_keys(f).collect();
            if d == 0 {
                day0.push((dist.clone(), distinct.clone()));
            }
            let (ref0, seen0) = &day0[f];
            let q0 = ref0.bucket(raw.field_keys(f));
            let unseen = raw.field_keys(f).filter(|k| !seen0.contains(k)).count();
            let psi_prev = match prev.get(f) {
                Some(p) => psi(p.probabilities(), &p.bucket(raw.field_keys(f))),
                None => 0.0,
            };
            fields.push(FieldDay {
                field: name.clone(),
                cardinality: distinct.len(),
                unseen_share: unseen as f64 / raw.rows().max(1) as f64,
                psi_day0: if d == 0 {
                    0.0
                } else {
                    psi(ref0.probabilities(), &q0)
                },
                js_day0: if d == 0 {
                    0.0
                } else {
                    jensen_shannon(ref0.probabilities(), &q0)
                },
                psi_prev,
            });
            current.push(dist);
        }
        prev = current;
        days.push(DayReport {
            day: d,
            rows: raw.rows(),
            positive_rate: raw.positive_rate(),
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
