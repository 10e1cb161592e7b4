//! Training: one [`Trainer`] owns a model and its two optimisers (dense Adam over the candle
//! variables, row-sparse Adam/Adagrad over the embedding table), accumulates gradients over
//! batches, and checkpoints weights and optimiser state together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::data::pool::Pool;
use crate::data::Batch;
use crate::model::CtrModel;

pub mod activation;
pub mod bench;
pub mod checkpoint;
pub mod edge;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod stats;
pub mod toy;

pub use optim::{AdamHyper, EmbOptimizer};
use optim::{RowGrads, RowSparseState};

/// Learning rates, optimiser kinds and threads (defaults from docs/method.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub emb_optimizer: EmbOptimizer,
    /// Embedding learning rate (0.1 with Adam in the reference code).
    pub emb_lr: f64,
    /// Dense learning rate (Adam).
    pub dense_lr: f64,
    /// Threads of this trainer's rayon pool (candle's matmuls run on it).
    pub threads: usize,
    /// Rows per forward pass when predicting.
    pub predict_chunk: usize,
    pub adam: AdamHyper,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            emb_optimizer: EmbOptimizer::Adam,
            emb_lr: 0.1,
            dense_lr: 1e-3,
            threads: 2,
            predict_chunk: 8192,
            adam: AdamHyper::default(),
        }
    }
}

/// What the model is trained towards.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// Plain BCE against the batch labels.
    Labels,
    /// `a * T^2 * BCE(sigmoid(z_t/T), z_s/T) + (1 - a) * BCE(y, z_s)`.
    /// `label_offset` is added to the student's logit in the label term (the sampler's exact
    /// log-odds correction; 0 for unbiased rows).
    Distill {
        teacher_logits: &'a [f32],
        alpha: f32,
        temperature: f32,
        label_offset: f32,
    },
}

/// Milliseconds spent in each phase since the last [`Trainer::take_timing`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepTiming {
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
}

/// A model with its optimisers, gradient accumulators and counters.
pub struct Trainer {
    model: Box<dyn CtrModel>,
    cfg: TrainConfig,
    pool: Arc<rayon::ThreadPool>,
    dense_m: Vec<Vec<f32>>,
    dense_v: Vec<Vec<f32>>,
    dense_acc: Vec<Vec<f32>>,
    dense_pending: bool,
    emb_state: RowSparseState,
    emb_acc: RowGrads,
    /// Batches accumulated since the last step.
    accumulated: u32,
    steps: u64,
    dense_t: u64,
    emb_t: u64,
    frozen_emb: bool,
    frozen_dense: bool,
    timing: StepTiming,
    /// [`Vocabulary::fingerprint`](crate::data::Vocabulary::fingerprint) of the id -> row map
    /// the table was trained under, when known; saved in checkpoints so a load can refuse a
    /// table of the right sizes but another mapping.
    vocabulary: Option<String>,
}

/// What one forward/backward pass produced: loss, the forward's logits (when asked for),
/// embedding-row gradients, dense gradients (one per parameter, `None` where it got none),
/// forward and backward milliseconds.
type Pass = (
    f32,
    Option<Vec<f32>>,
    Option<Vec<f32>>,
    Vec<Option<Vec<f32>>>,
    f64,
    f64,
);

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// The training pool of `threads` threads, one per process for each thread count, shared by
/// every trainer. A session's trainers (an arm's student, its co-distilled teacher, the other
/// arms) take turns, never run at once, so one pool loses no speed; and each pool thread's
/// allocator keeps the memory it freed (see `main`), so a pool per trainer multiplied the
/// retained memory by the number of trainers.
pub fn shared_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .map_err(|_| anyhow::anyhow!("the training pools' lock is poisoned"))?;
    if let Some(p) = pools.get(&threads) {
        return Ok(p.clone());
    }
    let pool = Arc::new(
        crate::fpenv::pool_builder(threads)
            .thread_name(move |i| format!("crossadapt-train{threads}-{i}"))
            .build()
            .context("starting the training thread pool")?,
    );
    pools.insert(threads, pool.clone());
    Ok(pool)
}

impl Trainer {
    /// A trainer with fresh optimiser state.
    pub fn new(model: Box<dyn CtrModel>, cfg: &TrainConfig) -> Result<Trainer> {
        if cfg.threads == 0 {
            bail!("train config: threads must be at least 1");
        }
        if !(cfg.emb_lr >= 0.0 && cfg.dense_lr >= 0.0) {
            bail!("train config: learning rates must be non-negative");
        }
        let pool = shared_pool(cfg.threads)?;
        let sizes: Vec<usize> = model
            .dense()
            .vars()
            .iter()
            .map(|v| v.elem_count())
            .collect();
        let zeros = || sizes.iter().map(|&n| vec![0.0f32; n]).collect::<Vec<_>>();
        let table_len = model.embeddings().data.len();
        let dim = model.embeddings().dim;
        Ok(Trainer {
            dense_m: zeros(),
            dense_v: zeros(),
            dense_acc: zeros(),
            dense_pending: false,
            emb_state: RowSparseState::new(cfg.emb_optimizer, table_len),
            emb_acc: RowGrads::new(dim, model.embeddings().rows()),
            accumulated: 0,
            steps: 0,
            dense_t: 0,
            emb_t: 0,
            frozen_emb: false,
            frozen_dense: false,
            timing: StepTiming::default(),
            vocabulary: None,
            model,
            cfg: cfg.clone(),
            pool,
        })
    }

    /// The fingerprint of the vocabulary the table belongs to, if recorded.
    pub fn vocabulary(&self) -> Option<&str> {
        self.vocabulary.as_deref()
    }

    /// Records the fingerprint of the vocabulary the table belongs to.
    pub fn set_vocabulary(&mut self, fingerprint: Option<String>) {
        self.vocabulary = fingerprint;
    }

    pub fn model(&self) -> &dyn CtrModel {
        self.model.as_ref()
    }

    pub fn model_mut(&mut self) -> &mut dyn CtrModel {
        self.model.as_mut()
    }

    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Sets the learning rates of the next steps (an arm's own, `per_arm`); the optimiser state
    /// is kept.
    pub fn set_learning_rates(&mut self, emb_lr: f64, dense_lr: f64) {
        self.cfg.emb_lr = emb_lr;
        self.cfg.dense_lr = dense_lr;
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Batches accumulated and not yet applied.
    pub fn pending_batches(&self) -> u32 {
        self.accumulated
    }

    /// Freezes (true) or unfreezes the embedding table and the dense weights.
    pub fn set_frozen(&mut self, embeddings: bool, dense: bool) {
        self.frozen_emb = embeddings;
        self.frozen_dense = dense;
    }

    /// Zeroes every optimiser moment and pending gradient (e.g. after a table was overwritten).
    pub fn reset_optimizer_state(&mut self) {
        for buf in self
            .dense_m
            .iter_mut()
            .chain(self.dense_v.iter_mut())
            .chain(self.dense_acc.iter_mut())
        {
            buf.fill(0.0);
        }
        self.emb_state =
            RowSparseState::new(self.cfg.emb_optimizer, self.model.embeddings().data.len());
        self.emb_acc.clear();
        self.dense_pending = false;
        self.accumulated = 0;
        self.dense_t = 0;
        self.emb_t = 0;
    }

    /// Phase times since the last call.
    pub fn take_timing(&mut self) -> StepTiming {
        std::mem::take(&mut self.timing)
    }

    fn check_batch(&self, b: &Batch) -> Result<Vec<u32>> {
        self.check_shape(b)?;
        self.model.embeddings().rows_of(b, 0..b.rows())
    }

    /// [`check_batch`](Self::check_batch) without the table rows.
    fn check_shape(&self, b: &Batch) -> Result<()> {
        let want = self.model.features().num_num();
        if b.num_num != want || b.num.len() != b.rows() * want {
            bail!(
                "batch has {} numeric values per row ({} in all for {} rows), the model was built for {want}",
                b.num_num,
                b.num.len(),
                b.rows()
            );
        }
        self.model.embeddings().check_shape(b)
    }

    /// Rows per forward pass when predicting: `predict_chunk`, or fewer where that many rows'
    /// activations would pass the heap budget of [`activation::predict_rows`].
    pub fn predict_rows(&self) -> usize {
        activation::predict_rows(
            self.cfg.predict_chunk.max(1),
            activation::cost(self.model.as_ref()),
        )
    }

    /// Logits of every row (no gradients kept), in chunks of [`predict_rows`](Self::predict_rows).
    pub fn predict_logits(&self, b: &Batch) -> Result<Vec<f32>> {
        // The table rows are looked up a chunk at a time: a whole day's worth never exists.
        self.check_shape(b)?;
        let table = self.model.embeddings();
        let (fc, nn, d) = (b.num_cat, b.num_num, table.dim);
        let chunk = self.predict_rows();
        let mut out = Vec::with_capacity(b.rows());
        self.pool.install(|| -> Result<()> {
            for start in (0..b.rows()).step_by(chunk) {
                let end = (start + chunk).min(b.rows());
                let rows = table.rows_of(b, start..end)?;
                let emb = table.gather(&rows);
                let emb = Tensor::from_vec(emb, (end - start, fc, d), &Device::Cpu)?;
                let z = self.model.forward(&emb, &b.num[start * nn..end * nn])?;
                out.extend(z.detach().to_vec1::<f32>()?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Logits of every row of `pool` (a day kept on disk), read back `predict_chunk` rows at a
    /// time: the same numbers as [`predict_logits`](Self::predict_logits) on the rows in memory.
    pub fn predict_pool(&self, pool: &Pool) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(pool.rows());
        for b in pool.chunks(self.predict_rows()) {
            out.extend(self.predict_logits(&b?)?);
        }
        Ok(out)
    }

    /// Forward and backward of one batch; gradients are added to the accumulators. Returns the
    /// mean loss; a non-finite loss is an error and leaves the accumulators untouched.
    pub fn accumulate(&mut self, b: &Batch, target: Target) -> Result<f32> {
        Ok(self.pass(b, target, false)?.0)
    }

    /// [`accumulate`](Self::accumulate), also returning the logits of the forward pass it
    /// differentiated (detached): the same numbers [`predict_logits`](Self::predict_logits)
    /// gives before the gradients are applied, without a second forward pass. A co-distilled
    /// teacher's distillation target and its own label gradients come from this one pass.
    pub fn accumulate_logits(&mut self, b: &Batch, target: Target) -> Result<(f32, Vec<f32>)> {
        let (loss, logits) = self.pass(b, target, true)?;
        Ok((loss, logits.unwrap_or_default()))
    }

    /// One forward and backward pass into the accumulators; with `keep_logits` the forward's
    /// logits come back too.
    fn pass(
        &mut self,
        b: &Batch,
        target: Target,
        keep_logits: bool,
    ) -> Result<(f32, Option<Vec<f32>>)> {
        let rows = self.check_batch(b)?;
        if b.is_empty() {
            bail!("cannot train on an empty batch");
        }
        if let Target::Distill {
            teacher_logits,
            alpha,
            temperature,
            ..
        } = target
        {
            if teacher_logits.len() != b.rows() {
                bail!(
                    "distillation: {} teacher logits for a batch of {} rows",
                    teacher_logits.len(),
                    b.rows()
                );
            }
            if !(0.0..=1.0).contains(&alpha) || temperature <= 0.0 {
                bail!("distillation: alpha must be in [0, 1] and temperature positive (got {alpha}, {temperature})");
            }
        }
        let dev = Device::Cpu;
        let (n, fc, d) = (b.rows(), b.num_cat, self.model.embeddings().dim);
        let want_emb = !self.frozen_emb;
        let want_dense = !self.frozen_dense;
        let model = self.model.as_ref();
        let t0 = Instant::now();
        let result = self.pool.install(|| -> Result<Pass> {
            let gathered = model.embeddings().gather(&rows);
            let (leaf, emb) = if want_emb {
                let v = Var::from_vec(gathered, (n, fc, d), &dev)?;
                let t = v.as_tensor().clone();
                (Some(v), t)
            } else {
                (None, Tensor::from_vec(gathered, (n, fc, d), &dev)?)
            };
            let z = model.forward(&emb, &b.num)?;
            let logits = if keep_logits {
                Some(z.detach().to_vec1::<f32>()?)
            } else {
                None
            };
            let y = Tensor::from_slice(&b.label, n, &dev)?;
            let loss = match target {
                Target::Labels => loss::bce_with_logits(&z, &y)?,
                Target::Distill {
                    teacher_logits,
                    alpha,
                    temperature,
                    label_offset,
                } => loss::distill_loss(&z, teacher_logits, &y, alpha, temperature, label_offset)?,
            };
            let value = loss.to_scalar::<f32>()?;
            if !value.is_finite() {
                bail!("training loss is {value} (not finite): the model diverged");
            }
            let fwd = ms(t0);
            if !want_emb && !want_dense {
                return Ok((value, logits, None, Vec::new(), fwd, 0.0));
            }
            let t1 = Instant::now();
            let grads = loss.backward()?;
            let emb_grad = match &leaf {
                Some(v) => grads
                    .get(v.as_tensor())
                    .map(|g| g.flatten_all()?.to_vec1::<f32>())
                    .transpose()?,
                None => None,
            };
            let mut dense = Vec::new();
            if want_dense {
                for var in model.dense().vars() {
                    dense.push(
                        grads
                            .get(var.as_tensor())
                            .map(|g| g.flatten_all()?.to_vec1::<f32>())
                            .transpose()?,
                    );
                }
            }
            Ok((value, logits, emb_grad, dense, fwd, ms(t1)))
        });
        let (value, logits, emb_grad, dense, fwd, bwd) = result?;
        let t2 = Instant::now();
        if let Some(g) = emb_grad {
            self.emb_acc.add(&rows, &g);
        }
        for (acc, g) in self.dense_acc.iter_mut().zip(&dense) {
            if let Some(g) = g {
                for (a, x) in acc.iter_mut().zip(g) {
                    *a += x;
                }
                self.dense_pending = true;
            }
        }
        self.accumulated += 1;
        self.timing.forward_ms += fwd;
        self.timing.backward_ms += bwd + ms(t2);
        Ok((value, logits))
    }

    /// Applies the accumulated gradients (embeddings row-sparse) and clears them. Does nothing
    /// if no batch was accumulated.
    pub fn step(&mut self) -> Result<()> {
        if self.accumulated == 0 {
            return Ok(());
        }
        let t0 = Instant::now();
        let h = self.cfg.adam;
        if self.dense_pending && !self.frozen_dense {
            self.dense_t += 1;
            let adam = optim::AdamStep::new(self.cfg.dense_lr as f32, self.dense_t, h);
            for (i, var) in self.model.dense().vars().iter().enumerate() {
                let mut theta = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
                adam.update(
                    &mut theta,
                    &self.dense_acc[i],
                    &mut self.dense_m[i],
                    &mut self.dense_v[i],
                );
                var.set(&Tensor::from_vec(theta, var.shape(), &Device::Cpu)?)?;
            }
        }
        if !self.emb_acc.is_empty() && !self.frozen_emb {
            self.emb_t += 1;
            let lr = self.cfg.emb_lr as f32;
            let t = self.emb_t;
            let table = &mut self.model.embeddings_mut().data;
            let (state, grads) = (&mut self.emb_state, &self.emb_acc);
            self.pool.install(|| state.apply(table, grads, lr, t, h));
        }
        for acc in &mut self.dense_acc {
            acc.fill(0.0);
        }
        self.dense_pending = false;
        self.emb_acc.clear();
        self.accumulated = 0;
        self.steps += 1;
        self.timing.optimizer_ms += ms(t0);
        Ok(())
    }

    /// [`accumulate`](Self::accumulate) then [`step`](Self::step).
    pub fn train_batch(&mut self, b: &Batch, target: Target) -> Result<f32> {
        let loss = self.accumulate(b, target)?;
        self.step()?;
        Ok(loss)
    }
}

#[cfg(test)]
mod tests {
    use super::{TrainConfig, Trainer};
    use crate::model::build_model;
    use crate::train::toy::ToyWorld;

    /// A small MLP on a toy world, with a trainer built from `cfg`.
    fn toy_trainer(cfg: TrainConfig) -> (ToyWorld, Trainer) {
        let world = ToyWorld::new(3, 10, 1);
        let model =
            build_model(&"mlp:emb=2,hidden=4".parse().unwrap(), &world.features, 1).unwrap();
        (world, Trainer::new(model, &cfg).unwrap())
    }

    /// The pool the model computes on flushes denormals on every worker, even when the
    /// creating thread (a test thread here, where `main` never ran) does not.
    #[test]
    fn the_training_pool_flushes_denormals() {
        let (_, tr) = toy_trainer(TrainConfig {
            threads: 3,
            ..TrainConfig::default()
        });
        let flushed = tr.pool.broadcast(|_| crate::fpenv::denormals_flushed());
        assert_eq!(flushed, vec![true; 3]);
    }

    /// A day kept on disk is predicted chunk by chunk from its file: the same logits, bit for
    /// bit, as the rows in memory, whatever the chunk size against the day's length.
    #[test]
    fn predicting_a_day_on_disk_is_predicting_its_rows() {
        let (world, tr) = toy_trainer(TrainConfig {
            predict_chunk: 7,
            ..TrainConfig::default()
        });
        let rows = world.batch(30, 5);
        let pool = crate::data::pool::Pool::from_batch(&rows).unwrap();
        let want = tr.predict_logits(&rows).unwrap();
        assert_eq!(want.len(), 30);
        assert_eq!(tr.predict_pool(&pool).unwrap(), want);
    }
}
