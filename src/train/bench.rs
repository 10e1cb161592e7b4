//! The training-speed benchmark behind `crossadapt bench train`: random ids, a fixed model,
//! warm-up steps, then samples/second and the forward / backward / optimiser split.

use std::time::Instant;

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Target, TrainConfig, Trainer};
use crate::data::{Batch, CatField, FeatureSpec};
use crate::model::{build_model, ModelSpec};

/// Shapes of one benchmark run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub spec: ModelSpec,
    pub batch: usize,
    pub fields: usize,
    /// Ids per field.
    pub ids: usize,
    pub threads: usize,
    /// Timed steps (after `warmup` untimed ones).
    pub steps: usize,
    pub warmup: usize,
    pub seed: u64,
}

/// What a run measured (per step means over the timed steps).
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub samples_per_sec: f64,
    pub step_ms: f64,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
    pub params: usize,
}

/// `rows` rows of `fields` uniform ids in `0..ids` (no numeric features), labels from a
/// hidden rule of the first two fields so the loss has something to learn.
pub fn random_batch(fields: usize, ids: usize, rows: usize, rng: &mut ChaCha8Rng) -> Batch {
    let mut b = Batch::empty(fields, 0);
    for _ in 0..rows {
        let row: Vec<u32> = (0..fields)
            .map(|_| rng.random_range(0..ids as u32))
            .collect();
        let signal = fields >= 2 && (row[0] + row[1]).is_multiple_of(3);
        let p = if signal { 0.6 } else { 0.2 };
        b.cat.extend_from_slice(&row);
        b.label
            .push(if rng.random::<f64>() < p { 1.0 } else { 0.0 });
    }
    b
}

/// Runs the benchmark.
pub fn run(cfg: &BenchConfig) -> Result<BenchReport> {
    if cfg.batch == 0 || cfg.fields == 0 || cfg.ids == 0 || cfg.steps == 0 {
        bail!("bench: batch, fields, ids and steps must all be at least 1");
    }
    let features = FeatureSpec {
        cat: (0..cfg.fields)
            .map(|i| CatField {
                name: format!("C{}", i + 1),
                vocab: cfg.ids,
            })
            .collect(),
        num: vec![],
        user_field: None,
    };
    let model = build_model(&cfg.spec, &features, cfg.seed)?;
    let params = model.param_count();
    let tc = TrainConfig {
        threads: cfg.threads,
        ..TrainConfig::default()
    };
    let mut tr = Trainer::new(model, &tc)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xbe7c);
    let batches: Vec<Batch> = (0..4)
        .map(|_| random_batch(cfg.fields, cfg.ids, cfg.batch, &mut rng))
        .collect();
    for i in 0..cfg.warmup {
        tr.train_batch(&batches[i % batches.len()], Target::Labels)?;
    }
    tr.take_timing();
    let start = Instant::now();
    for i in 0..cfg.steps {
        tr.train_batch(&batches[i % batches.len()], Target::Labels)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let t = tr.take_timing();
    let n = cfg.steps as f64;
    Ok(BenchReport {
        samples_per_sec: (cfg.batch * cfg.steps) as f64 / secs,
        step_ms: secs * 1e3 / n,
        forward_ms: t.forward_ms / n,
        backward_ms: t.backward_ms / n,
        optimizer_ms: t.optimizer_ms / n,
        params,
    })
}
