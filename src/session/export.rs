//! `export`: per day and arm metrics, updates and drift of a session, as CSV or JSON.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::num;
use crate::protocol::{FieldDrift, Ledger, Record};

use super::meta::SessionMeta;

/// Schema version of the JSON export.
pub const EXPORT_SCHEMA_VERSION: u32 = 1;

/// Output format of `export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl std::str::FromStr for ExportFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "csv" => Ok(ExportFormat::Csv),
            "json" => Ok(ExportFormat::Json),
            other => anyhow::bail!("unknown export format {other:?} (use csv or json)"),
        }
    }
}

/// One online day of one arm. The parameters are those in effect when the day's metrics came
/// in; a day redone after a resume keeps its last result; the drift is the day's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayRow {
    pub day: u32,
    pub arm: String,
    #[serde(with = "num::opt")]
    pub auc: Option<f64>,
    #[serde(with = "num")]
    pub logloss: f64,
    #[serde(with = "num")]
    pub bias: f64,
    #[serde(with = "num")]
    pub ne: f64,
    #[serde(with = "num::opt")]
    pub gauc: Option<f64>,
    pub rows: u64,
    #[serde(with = "num")]
    pub train_seconds: f64,
    pub samples: u64,
    #[serde(with = "num")]
    pub samples_per_sec: f64,
    pub student_updates: u32,
    pub teacher_updates: u32,
    #[serde(with = "num::opt")]
    pub drift_weight: Option<f64>,
    #[serde(with = "num::opt")]
    pub distill_weight: Option<f64>,
    #[serde(with = "num::opt")]
    pub replay_ratio: Option<f64>,
    #[serde(with = "num::opt")]
    pub label_rate: Option<f64>,
    #[serde(with = "num::opt")]
    pub sampling_ratio: Option<f64>,
    pub teacher_interval: Option<u32>,
}

/// Day-level drift of one online day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayDrift {
    pub day: u32,
    #[serde(with = "num")]
    pub weight: f64,
    #[serde(with = "num")]
    pub distill_weight: f64,
    #[serde(with = "num")]
    pub replay_ratio: f64,
    #[serde(with = "num")]
    pub label_rate: f64,
    #[serde(with = "num")]
    pub reference_label_rate: f64,
    pub fields: Vec<FieldDrift>,
}

/// Rows per (day, arm) in day order then the ledger's arm order, and the drift per day.
pub fn collect(records: &[Record]) -> (Vec<DayRow>, Vec<DayDrift>) {
    let ledger = Ledger::of(records);
    let mut rows = Vec::new();
    for day in ledger.days() {
        let drift = ledger.drift.get(&day);
        for a in &ledger.arms {
            let Some(d) = a.days.get(&day) else { continue };
            let m = &d.metrics;
            rows.push(DayRow {
                day,
                arm: a.name.clone(),
                auc: m.auc,
                logloss: m.logloss,
                bias: m.bias,
                ne: m.ne,
                gauc: m.gauc,
                rows: m.rows,
                train_seconds: d.train_seconds,
                samples: d.samples,
                samples_per_sec: d.samples_per_sec,
                student_updates: d.student_updates,
                teacher_updates: d.teacher_updates,
                drift_weight: drift.map(|r| r.weight),
                distill_weight: drift.map(|r| r.distill_weight),
                replay_ratio: drift.map(|r| r.replay_ratio),
                label_rate: drift.map(|r| r.label_rate),
                sampling_ratio: d.params.as_ref().map(|p| p.sampling_ratio),
                teacher_interval: d.params.as_ref().map(|p| p.teacher_interval),
            });
        }
    }
    let drift = ledger
        .drift
        .values()
        .map(|r| DayDrift {
            day: r.day,
            weight: r.weight,
            distill_weight: r.distill_weight,
            replay_ratio: r.replay_ratio,
            label_rate: r.label_rate,
            reference_label_rate: r.reference_label_rate,
            fields: r.fields.clone(),
        })
        .collect();
    (rows, drift)
}

/// The export of a session's records in `format`.
pub fn render(meta: &SessionMeta, records: &[Record], format: ExportFormat) -> Result<String> {
    let (rows, drift) = collect(records);
    match format {
        ExportFormat::Csv => Ok(to_csv(&rows)),
        ExportFormat::Json => {
            #[derive(Serialize)]
            struct Export<'a> {
                schema_version: u32,
                session: &'a str,
                name: &'a str,
                days: &'a [DayRow],
                drift: &'a [DayDrift],
            }
            let doc = Export {
                schema_version: EXPORT_SCHEMA_VERSION,
                session: &meta.id,
                name: &meta.name,
                days: &rows,
                drift: &drift,
            };
            let mut s =
                serde_json::to_string_pretty(&doc).context("cannot serialise the export")?;
            s.push('\n');
            Ok(s)
        }
    }
}

/// CSV with a header line; empty cells for missing values; fields quoted when needed.
pub fn to_csv(rows: &[DayRow]) -> String {
    let mut out = String::from(
        "day,arm,auc,logloss,bias,ne,gauc,rows,train_seconds,samples,samples_per_sec,\
         student_updates,teacher_updates,drift_weight,distill_weight,replay_ratio,label_rate,\
         sampling_ratio,teacher_interval\n",
    );
    let o = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in rows {
        let cells = [
            r.day.to_string(),
            csv_cell(&r.arm),
            o(r.auc),
            r.logloss.to_string(),
            r.bias.to_string(),
            r.ne.to_string(),
            o(r.gauc),
            r.rows.to_string(),
            r.train_seconds.to_string(),
            r.samples.to_string(),
            r.samples_per_sec.to_string(),
            r.student_updates.to_string(),
            r.teacher_updates.to_string(),
            o(r.drift_weight),
            o(r.distill_weight),
            o(r.replay_ratio),
            o(r.label_rate),
            o(r.sampling_ratio),
            r.teacher_interval.map_or(String::new(), |v| v.to_string()),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
