//! What a model's forward (and forward + backward) pass allocates per row, measured once per
//! architecture and field layout by running it on a few zero rows, and the prediction chunk that
//! keeps a forward pass within a fixed heap budget.
//!
//! Per-row activations are what sets a wide log's memory: a FiBiNET over dozens of fields holds
//! a bilinear vector per field pair for every row, hundreds of kilobytes a row, so a fixed
//! prediction chunk of thousands of rows costs gigabytes while the tables are a few megabytes.
//! Counting the heap (`crate::heap::thread_peak`) instead of a formula per architecture keeps
//! the figure true as the zoo changes. The probe runs on a one-thread pool so every allocation
//! it causes is on the counted thread; the allocations of a given binary for given shapes are
//! the same on every run, so the chunk (which decides how rows are grouped into products) is
//! too: a seed still fixes every number.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};

use crate::model::matmul::ROW_BLOCK;
use crate::model::CtrModel;

/// Heap a prediction chunk's activations may take.
pub const PREDICT_BUDGET_BYTES: usize = 256 << 20;
/// The smallest chunk the budget may choose: products of fewer rows take another path
/// (`crate::model::matmul`), and tiny chunks waste the kernels.
pub const MIN_PREDICT_ROWS: usize = 2 * ROW_BLOCK;
/// Rows of the two probes; their difference removes what a pass allocates whatever its rows
/// (weight views, transposes). Products of fewer than `MIN_PREDICT_ROWS` rows take another
/// path with other buffers (`crate::model::matmul`): the larger probe is a training batch's
/// size, so the figure is the one training pays.
const PROBE_ROWS: (usize, usize) = (MIN_PREDICT_ROWS / 2, MIN_PREDICT_ROWS);

/// Heap bytes per row of one pass, measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivationCost {
    /// A forward pass without gradients (prediction).
    pub predict_per_row: usize,
    /// A forward and a backward pass (one training step's activations and gradients).
    pub train_per_row: usize,
}

type Key = (String, usize, usize);

fn cache() -> &'static Mutex<HashMap<Key, Option<ActivationCost>>> {
    static CACHE: std::sync::OnceLock<Mutex<HashMap<Key, Option<ActivationCost>>>> =
        std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The model's [`ActivationCost`], measured on first use for its spec and field layout;
/// `None` where the heap is not counted (test binaries) or the probe failed.
pub fn cost(model: &dyn CtrModel) -> Option<ActivationCost> {
    let f = model.features();
    let key = (model.name(), f.num_cat(), f.num_num());
    if let Some(c) = cache().lock().ok()?.get(&key) {
        return *c;
    }
    let measured = measure(model).ok().flatten();
    if let Ok(mut c) = cache().lock() {
        c.insert(key, measured);
    }
    measured
}

fn measure(model: &dyn CtrModel) -> Result<Option<ActivationCost>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let measured = pool.install(|| {
        let per_row = |train: bool| -> Result<Option<usize>> {
            let (a, b) = PROBE_ROWS;
            let (Some(pa), Some(pb)) = (probe(model, a, train)?, probe(model, b, train)?) else {
                return Ok(None);
            };
            Ok(Some(pb.saturating_sub(pa).div_ceil(b - a).max(1)))
        };
        Ok(match (per_row(false)?, per_row(true)?) {
            (Some(p), Some(t)) => Some(ActivationCost {
                predict_per_row: p,
                train_per_row: t,
            }),
            _ => None,
        })
    });
    // The probe thread's allocator keeps what it freed (see `main`) until told otherwise; the
    // thread ends with the pool, and what it held must not stay resident for the whole run.
    pool.install(|| {
        // SAFETY: asks the allocator to return this thread's free memory; valid at any time.
        unsafe { libmimalloc_sys::mi_collect(true) }
    });
    measured
}

/// The heap peak of one pass over `n` zero rows, counted on this thread.
fn probe(model: &dyn CtrModel, n: usize, train: bool) -> Result<Option<usize>> {
    let f = model.features();
    let (fc, nn, d) = (f.num_cat(), f.num_num(), model.emb_dim());
    let dev = Device::Cpu;
    let (result, peak) = crate::heap::thread_peak(|| -> Result<()> {
        let emb = vec![0.01f32; n * fc * d];
        let num = vec![0.0f32; n * nn];
        if train {
            let leaf = Var::from_vec(emb, (n, fc, d), &dev)?;
            let z = model.forward(leaf.as_tensor(), &num)?;
            let y = Tensor::zeros(n, DType::F32, &dev)?;
            let grads = super::loss::bce_with_logits(&z, &y)?.backward()?;
            drop(grads);
        } else {
            let emb = Tensor::from_vec(emb, (n, fc, d), &dev)?;
            let z = model.forward(&emb, &num)?.detach();
            let _ = z.to_vec1::<f32>()?;
        }
        Ok(())
    });
    result?;
    Ok(peak)
}

/// Rows per prediction chunk: `configured`, or fewer (a multiple of [`MIN_PREDICT_ROWS`], at
/// least that) when that many rows' activations would pass [`PREDICT_BUDGET_BYTES`].
pub fn predict_rows(configured: usize, cost: Option<ActivationCost>) -> usize {
    let Some(c) = cost else {
        return configured;
    };
    let fit = PREDICT_BUDGET_BYTES / c.predict_per_row.max(1);
    if fit >= configured {
        return configured;
    }
    (fit / MIN_PREDICT_ROWS * MIN_PREDICT_ROWS)
        .max(MIN_PREDICT_ROWS)
        .min(configured)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(per_row: usize) -> Option<ActivationCost> {
        Some(ActivationCost {
            predict_per_row: per_row,
            train_per_row: 3 * per_row,
        })
    }

    #[test]
    fn the_chunk_fits_the_budget_in_whole_blocks() {
        // Unknown cost: the configured chunk.
        assert_eq!(predict_rows(8192, None), 8192);
        // Small rows: the configured chunk, never more.
        assert_eq!(predict_rows(8192, cost(1000)), 8192);
        // 256 MiB / 100 kB = 2684 rows -> 2048, a multiple of 1024.
        assert_eq!(predict_rows(8192, cost(100_000)), 2048);
        // Rows so wide that not even 1024 fit: 1024 all the same.
        assert_eq!(predict_rows(8192, cost(10_000_000)), 1024);
        // A configured chunk below the floor is kept.
        assert_eq!(predict_rows(7, cost(10_000_000)), 7);
    }
}
