//! `export`: per day and arm metrics, updates and drift of a session, as CSV or JSON.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::engine::events::{EngineEvent, FieldDrift, Params, Record};

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
/// in; a day redone after a resume keeps its last result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayRow {
    pub day: u32,
    pub arm: String,
    pub auc: Option<f64>,
    pub logloss: f64,
    pub bias: f64,
    pub ne: f64,
    pub gauc: Option<f64>,
    pub rows: u64,
    pub train_seconds: f64,
    pub samples: u64,
    pub samples_per_sec: f64,
    pub student_updates: u32,
    pub teacher_updates: u32,
    pub drift_weight: Option<f64>,
    pub distill_weight: Option<f64>,
    pub replay_ratio: Option<f64>,
    pub label_rate: Option<f64>,
    pub sampling_ratio: Option<f64>,
    pub teacher_interval: Option<u32>,
}

/// Day-level drift of one online day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayDrift {
    pub day: u32,
    pub weight: f64,
    pub distill_weight: f64,
    pub replay_ratio: f64,
    pub label_rate: f64,
    pub reference_label_rate: f64,
    pub fields: Vec<FieldDrift>,
}

/// Rows per (day, arm) in day order then arm order of first appearance, and the drift per day.
pub fn collect(records: &[Record]) -> (Vec<DayRow>, Vec<DayDrift>) {
    let mut params: Option<Params> = None;
    let mut drift: BTreeMap<u32, DayDrift> = BTreeMap::new();
    let mut arm_order: Vec<String> = Vec::new();
    let mut rows: BTreeMap<(u32, usize), DayRow> = BTreeMap::new();
    for r in records {
        match &r.event {
            EngineEvent::SessionStarted {
                params: p, arms, ..
            } => {
                params = Some(p.clone());
                for a in arms {
                    if !arm_order.contains(&a.name) {
                        arm_order.push(a.name.clone());
                    }
                }
            }
            EngineEvent::ParamsChanged { params: p, .. } => params = Some(p.clone()),
            EngineEvent::Drift {
                day,
                batch: None,
                weight,
                distill_weight,
                replay_ratio,
                label_rate,
                reference_label_rate,
                fields,
            } => {
                drift.insert(
                    *day,
                    DayDrift {
                        day: *day,
                        weight: *weight,
                        distill_weight: *distill_weight,
                        replay_ratio: *replay_ratio,
                        label_rate: *label_rate,
                        reference_label_rate: *reference_label_rate,
                        fields: fields.clone(),
                    },
                );
            }
            EngineEvent::DayMetrics {
                arm,
                day,
                metrics,
                train_seconds,
                samples,
                samples_per_sec,
                student_updates,
                teacher_updates,
            } => {
                let idx = match arm_order.iter().position(|a| a == arm) {
                    Some(i) => i,
                    None => {
                        arm_order.push(arm.clone());
                        arm_order.len() - 1
                    }
                };
                let d = drift.get(day);
                rows.insert(
                    (*day, idx),
                    DayRow {
                        day: *day,
                        arm: arm.clone(),
                        auc: metrics.auc,
                        logloss: metrics.logloss,
                        bias: metrics.bias,
                        ne: metrics.ne,
                        gauc: metrics.gauc,
                        rows: metrics.rows,
                        train_seconds: *train_seconds,
                        samples: *samples,
                        samples_per_sec: *samples_per_sec,
                        student_updates: *student_updates,
                        teacher_updates: *teacher_updates,
                        drift_weight: d.map(|d| d.weight),
                        distill_weight: d.map(|d| d.distill_weight),
                        replay_ratio: d.map(|d| d.replay_ratio),
                        label_rate: d.map(|d| d.label_rate),
                        sampling_ratio: params.as_ref().map(|p| p.sampling_ratio),
                        teacher_interval: params.as_ref().map(|p| p.teacher_interval),
                    },
                );
            }
            _ => {}
        }
    }
    (rows.into_values().collect(), drift.into_values().collect())
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
