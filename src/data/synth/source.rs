//! [`SyntheticSource`]: the generator as a [`DaySource`].

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use rayon::prelude::*;

use super::truth::{calibrate_intercept, hash, target_rate, DayTruth};
use super::{FieldKind, SynthConfig};
use crate::data::source::{DaySource, RawDay, Visit, STREAM_ROWS};

/// Rows generated per independent random stream (fixed, so output does not depend on threads).
const CHUNK_ROWS: usize = 4096;
/// Chunks generated in parallel and handed over together (enough to keep every thread busy;
/// a group is the streamed read's chunk, `STREAM_ROWS` rows).
const GROUP_CHUNKS: usize = STREAM_ROWS / CHUNK_ROWS;
/// Rows drawn to calibrate each day's intercept.
const CALIBRATION_ROWS: usize = 4096;
/// Stream tag of the calibration sample (rows chunks use their index).
const CALIBRATION_STREAM: u64 = u64::MAX;
/// Bytes of generated days kept for re-reads ([`DayMemo`]).
const MEMO_BYTES: usize = 64 << 20;

/// The synthetic drifting stream. Cheap to build; every day is generated on demand, and the
/// most recently read days are kept within a byte budget for the reads that follow.
#[derive(Clone, Debug)]
pub struct SyntheticSource {
    cfg: SynthConfig,
    zipf: Vec<Option<Zipf<f64>>>,
    item: usize,
    user: usize,
    /// Shared by clones: they generate the same days.
    memo: Arc<Mutex<DayMemo>>,
}

/// Generated days, whole and as the pieces their streamed read handed over, least recently
/// read first. A run reads each day several times (the teacher's training, every arm's
/// offline passes, the drift sketch's two passes, the evaluation), and generating a row (a
/// Zipf draw and the truth's effects per field) costs far more than copying it; a day larger
/// than the budget is regenerated on every read, so a day of millions of rows is never held.
#[derive(Debug)]
struct DayMemo {
    budget: usize,
    bytes: usize,
    days: VecDeque<(usize, Arc<Vec<RawDay>>)>,
}

impl DayMemo {
    fn new(budget: usize) -> Self {
        DayMemo {
            budget,
            bytes: 0,
            days: VecDeque::new(),
        }
    }

    fn get(&mut self, day: usize) -> Option<Arc<Vec<RawDay>>> {
        let at = self.days.iter().position(|(d, _)| *d == day)?;
        let entry = self.days.remove(at)?;
        let pieces = entry.1.clone();
        self.days.push_back(entry);
        Some(pieces)
    }

    fn put(&mut self, day: usize, pieces: Vec<RawDay>, bytes: usize) {
        if self.days.iter().any(|(d, _)| *d == day) {
            return; // another reader generated it meanwhile
        }
        while self.bytes + bytes > self.budget {
            let Some((_, old)) = self.days.pop_front() else {
                break;
            };
            self.bytes -= day_bytes(&old);
        }
        self.bytes += bytes;
        self.days.push_back((day, Arc::new(pieces)));
    }
}

/// Bytes a raw row of `nc` categorical and `nn` numeric fields holds (keys, values, label).
fn row_bytes(nc: usize, nn: usize) -> usize {
    nc * 8 + nn * 4 + 4
}

/// Bytes held by a day's pieces.
fn day_bytes(pieces: &[RawDay]) -> usize {
    pieces
        .iter()
        .map(|p| p.rows() * row_bytes(p.num_cat, p.num_num))
        .sum()
}

/// One generated row's fields before the label draw.
struct RowOut {
    logit_wo_intercept: f32,
}

impl SyntheticSource {
    /// Validates the config and prepares the popularity distributions.
    pub fn new(cfg: SynthConfig) -> Result<SyntheticSource> {
        cfg.validate()?;
        let zipf = cfg
            .fields
            .iter()
            .map(|f| match f.kind {
                FieldKind::HourOfDay => Ok(None),
                FieldKind::Zipf => Zipf::new(f.cardinality as f64, cfg.zipf_exponent)
                    .map(Some)
                    .with_context(|| format!("synthetic field `{}`", f.name)),
            })
            .collect::<Result<Vec<_>>>()?;
        let find = |name: &str| cfg.fields.iter().position(|f| f.name == name).unwrap_or(0);
        let item = find("item");
        let user = find("user");
        Ok(SyntheticSource {
            zipf,
            item,
            user,
            cfg,
            memo: Arc::new(Mutex::new(DayMemo::new(MEMO_BYTES))),
        })
    }

    /// The same source keeping at most `bytes` of generated days (0: none).
    pub fn with_memo_budget(mut self, bytes: usize) -> Self {
        self.memo = Arc::new(Mutex::new(DayMemo::new(bytes)));
        self
    }

    /// The days kept for re-reads, least recently read first.
    pub fn memo_days(&self) -> Vec<usize> {
        self.memo().days.iter().map(|(d, _)| *d).collect()
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, DayMemo> {
        // The memo is only ever a cache: one left by a panicking reader is still consistent.
        self.memo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The config this source generates from.
    pub fn config(&self) -> &SynthConfig {
        &self.cfg
    }

    fn rng(&self, day: usize, stream: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(hash(&[self.cfg.seed, day as u64, stream]))
    }

    /// Draws one row into `cat`/`num`; returns its logit without the day's intercept.
    fn draw_row(
        &self,
        truth: &DayTruth,
        rng: &mut ChaCha8Rng,
        second: u64,
        cat: &mut Vec<u64>,
        num: &mut Vec<f32>,
    ) -> RowOut {
        let start = cat.len();
        // Every id is drawn before any effect is computed: the effects draw nothing, so the
        // stream of random numbers is the one the generator always drew.
        for (f, zipf) in self.zipf.iter().enumerate() {
            let id = match zipf {
                None => second / 3600,
                Some(z) => {
                    let slot = (z.sample(rng) as u64).saturating_sub(1);
                    truth.slot_id(f, slot, rng.random::<f64>())
                }
            };
            cat.push(id);
        }
        let mut logit = truth.row_logit(&cat[start..]);
        let row = &cat[start..];
        for (j, _) in self.cfg.numeric_fields.iter().enumerate() {
            let (value, effect) = match j {
                0 => {
                    let position = rng.random_range(1..=10u32) as f32;
                    (position, -0.05 * (position - 1.0))
                }
                1 => {
                    let z = id_normal(self.cfg.seed, 1, row[self.item]);
                    ((3.0 + 0.5 * z).exp(), -0.15 * z)
                }
                2 => {
                    let z = id_normal(self.cfg.seed, 2, row[self.user]);
                    let noise = 1.0 + 0.2 * (rng.random::<f32>() - 0.5);
                    ((0.5 * z).exp() * noise, 0.2 * z)
                }
                // Beyond the first three (the `wide` preset): counts linked to the ids of other
                // fields, with weaker effects.
                j => {
                    let z = id_normal(self.cfg.seed, j as u64, row[(j * 7) % row.len()]);
                    let noise = 1.0 + 0.2 * (rng.random::<f32>() - 0.5);
                    ((1.5 + 0.7 * z).exp() * noise, 0.05 * z)
                }
            };
            num.push(value);
            logit += effect;
        }
        RowOut {
            logit_wo_intercept: logit,
        }
    }

    /// Generates rows `start..end` of `day` with the chunk's own stream.
    fn chunk(
        &self,
        truth: &DayTruth,
        day: usize,
        chunk: usize,
        rows: usize,
        intercept: f32,
    ) -> RawDay {
        let nc = self.cfg.fields.len();
        let nn = self.cfg.numeric_fields.len();
        let start = chunk * CHUNK_ROWS;
        let end = (start + CHUNK_ROWS).min(rows);
        let mut out = RawDay::with_capacity(nc, nn, end - start);
        let mut rng = self.rng(day, chunk as u64);
        for r in start..end {
            let second = (r as u64 * 86_400) / rows as u64;
            let row = self.draw_row(truth, &mut rng, second, &mut out.cat, &mut out.num);
            let p = 1.0 / (1.0 + (-(intercept + row.logit_wo_intercept) as f64).exp());
            out.label
                .push(if rng.random::<f64>() < p { 1.0 } else { 0.0 });
        }
        out
    }

    /// The intercept that gives `day` its configured expected positive rate.
    pub fn intercept(&self, day: usize) -> f32 {
        let truth = DayTruth::new(&self.cfg, day);
        let mut rng = self.rng(day, CALIBRATION_STREAM);
        let (mut cat, mut num) = (Vec::new(), Vec::new());
        let z: Vec<f32> = (0..CALIBRATION_ROWS)
            .map(|r| {
                cat.clear();
                num.clear();
                let second = (r as u64 * 86_400) / CALIBRATION_ROWS as u64;
                self.draw_row(&truth, &mut rng, second, &mut cat, &mut num)
                    .logit_wo_intercept
            })
            .collect();
        calibrate_intercept(&z, target_rate(&self.cfg, day))
    }
}

/// A unit-variance value from the hash of an id (for id-linked numeric fields).
fn id_normal(seed: u64, tag: u64, id: u64) -> f32 {
    let h = hash(&[seed, 0xA11CE, tag, id]);
    ((h >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 1.732_050_8
}

impl DaySource for SyntheticSource {
    fn describe(&self) -> String {
        format!(
            "synthetic({}, seed {}, {} days x {} rows)",
            self.cfg.preset, self.cfg.seed, self.cfg.days, self.cfg.rows_per_day
        )
    }

    fn num_days(&self) -> usize {
        self.cfg.days
    }

    fn cat_fields(&self) -> Vec<String> {
        self.cfg.fields.iter().map(|f| f.name.clone()).collect()
    }

    fn num_fields(&self) -> Vec<String> {
        self.cfg.numeric_fields.clone()
    }

    fn user_field(&self) -> Option<String> {
        self.cfg.user_field.clone()
    }

    fn raw_day(&self, day: usize) -> Result<RawDay> {
        let (nc, nn) = (self.cfg.fields.len(), self.cfg.numeric_fields.len());
        let mut out = RawDay::with_capacity(nc, nn, self.day_rows(day)?);
        self.day_chunks(day, &mut |chunk| {
            out.extend(&chunk);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    fn day_chunks(&self, day: usize, visit: &mut dyn FnMut(RawDay) -> Visit) -> Result<()> {
        let rows = self.day_rows(day)?;
        let kept = self.memo().get(day);
        if let Some(pieces) = kept {
            for piece in pieces.iter() {
                if visit(piece.clone())?.is_break() {
                    break;
                }
            }
            return Ok(());
        }
        let truth = DayTruth::new(&self.cfg, day);
        let intercept = self.intercept(day);
        let (nc, nn) = (self.cfg.fields.len(), self.cfg.numeric_fields.len());
        let bytes = rows * row_bytes(nc, nn);
        let mut keep = (bytes <= self.memo().budget).then(Vec::new);
        // Chunks are generated in parallel a group at a time and handed over as one piece per
        // group: unless it fits the memo, the day is never held whole.
        let n_chunks = rows.div_ceil(CHUNK_ROWS);
        for group in (0..n_chunks).step_by(GROUP_CHUNKS) {
            let chunks: Vec<RawDay> = (group..(group + GROUP_CHUNKS).min(n_chunks))
                .into_par_iter()
                .map(|c| self.chunk(&truth, day, c, rows, intercept))
                .collect();
            let n: usize = chunks.iter().map(RawDay::rows).sum();
            let mut piece = RawDay::with_capacity(nc, nn, n);
            for c in chunks {
                piece.extend(&c);
            }
            if let Some(kept) = keep.as_mut() {
                kept.push(piece.clone());
            }
            if visit(piece)?.is_break() {
                // Only whole days are kept.
                return Ok(());
            }
        }
        if let Some(pieces) = keep {
            self.memo().put(day, pieces, bytes);
        }
        Ok(())
    }

    fn day_rows(&self, day: usize) -> Result<usize> {
        anyhow::ensure!(
            day < self.cfg.days,
            "day {day} does not exist: the synthetic stream has {} days",
            self.cfg.days
        );
        Ok(self.cfg.rows_per_day)
    }
}
