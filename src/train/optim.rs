//! The two optimisers a trainer owns, with state kept as plain buffers so checkpoints hold it:
//! Adam over the dense parameters, and a row-sparse Adam or Adagrad over the embedding table
//! that reads and writes only the rows a batch touched.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which row-sparse optimiser updates the embeddings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbOptimizer {
    /// Lazy Adam: moments of untouched rows stay as they are (like PyTorch's SparseAdam).
    #[default]
    Adam,
    Adagrad,
}

/// Adam hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamHyper {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

impl Default for AdamHyper {
    fn default() -> Self {
        AdamHyper {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// The constants of one Adam step `t` (from 1), computed once per step rather than per row.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    h: AdamHyper,
    /// `lr / (1 - beta1^t)`.
    step: f32,
    /// `sqrt(1 - beta2^t)`.
    bc2_sqrt: f32,
}

impl AdamStep {
    pub fn new(lr: f32, t: u64, h: AdamHyper) -> Self {
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        AdamStep {
            h,
            step: lr / (1.0 - h.beta1.powi(t)),
            bc2_sqrt: (1.0 - h.beta2.powi(t)).sqrt(),
        }
    }

    /// Updates `theta` with gradient `g` and moments `m`, `v` (all the same length).
    pub fn update(&self, theta: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let AdamHyper { beta1, beta2, eps } = self.h;
        for (((th, &gi), mi), vi) in theta.iter_mut().zip(g).zip(m).zip(v) {
            *mi = beta1 * *mi + (1.0 - beta1) * gi;
            *vi = beta2 * *vi + (1.0 - beta2) * gi * gi;
            *th -= self.step * *mi / (vi.sqrt() / self.bc2_sqrt + eps);
        }
    }
}

/// One Adagrad update.
pub fn adagrad_update(theta: &mut [f32], g: &[f32], acc: &mut [f32], lr: f32, eps: f32) {
    for ((th, &gi), a) in theta.iter_mut().zip(g).zip(acc) {
        *a += gi * gi;
        *th -= lr * gi / (a.sqrt() + eps);
    }
}

/// Marks a table row with no slot in [`RowGrads`].
const NO_SLOT: u32 = u32::MAX;

/// Summed gradients of the embedding rows touched since the last step, in first-touch order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowGrads {
    pub dim: usize,
    pub rows: Vec<u32>,
    pub grad: Vec<f32>,
    /// For every table row, its index in `rows`, or `NO_SLOT`. A direct index rather than a
    /// hash map: a lookup per (sample, field) is the whole cost of accumulating, and the array
    /// is a fraction (`1 / dim`) of the table, whose optimiser moments are already twice its
    /// size. `clear` resets only the touched entries.
    slot: Vec<u32>,
}

impl RowGrads {
    /// An empty accumulator for a table of `table_rows` rows of `dim` values.
    pub fn new(dim: usize, table_rows: usize) -> Self {
        RowGrads {
            dim,
            rows: Vec::new(),
            grad: Vec::new(),
            slot: vec![NO_SLOT; table_rows],
        }
    }

    /// Adds `grad` (`rows.len() * dim`, one slice per entry of `rows`; repeats allowed). Every
    /// row must be below the table's row count (the trainer's rows come from
    /// `EmbeddingTable::batch_rows`, which checks them).
    pub fn add(&mut self, rows: &[u32], grad: &[f32]) {
        let d = self.dim;
        for (&r, g) in rows.iter().zip(grad.chunks_exact(d.max(1))) {
            let s = &mut self.slot[r as usize];
            if *s == NO_SLOT {
                *s = self.rows.len() as u32;
                self.rows.push(r);
                self.grad.extend_from_slice(g);
            } else {
                let at = *s as usize * d;
                for (a, v) in self.grad[at..at + d].iter_mut().zip(g) {
                    *a += v;
                }
            }
        }
    }

    /// Rebuilds the accumulator from saved rows and gradients; an error if a row is outside
    /// the table or named twice, or the gradients do not match the rows.
    pub fn from_parts(
        dim: usize,
        table_rows: usize,
        rows: Vec<u32>,
        grad: Vec<f32>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            grad.len() == rows.len() * dim,
            "{} accumulated gradient values for {} rows of {dim}",
            grad.len(),
            rows.len()
        );
        let mut slot = vec![NO_SLOT; table_rows];
        for (i, &r) in rows.iter().enumerate() {
            let s = slot
                .get_mut(r as usize)
                .ok_or_else(|| anyhow::anyhow!("row {r} is outside the table's {table_rows}"))?;
            anyhow::ensure!(*s == NO_SLOT, "row {r} is named twice");
            *s = i as u32;
        }
        Ok(RowGrads {
            dim,
            rows,
            grad,
            slot,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn clear(&mut self) {
        for &r in &self.rows {
            self.slot[r as usize] = NO_SLOT;
        }
        self.rows.clear();
        self.grad.clear();
    }
}

/// State of the row-sparse embedding optimiser: one or two moment buffers of the table's size.
#[derive(Clone, Debug, PartialEq)]
pub struct RowSparseState {
    pub kind: EmbOptimizer,
    /// Adam: first moment; Adagrad: squared-gradient sum.
    pub m: Vec<f32>,
    /// Adam: second moment; Adagrad: empty.
    pub v: Vec<f32>,
}

impl RowSparseState {
    /// Zero state for a table of `len` values.
    pub fn new(kind: EmbOptimizer, len: usize) -> Self {
        let v = if kind == EmbOptimizer::Adam {
            vec![0.0; len]
        } else {
            Vec::new()
        };
        RowSparseState {
            kind,
            m: vec![0.0; len],
            v,
        }
    }

    /// Applies `grads` to the rows of `table` they name, at step `t` (from 1).
    ///
    /// The table is cut into as many contiguous parts as the current rayon pool has threads,
    /// each updated by one thread with the touched rows that fall in it. Rows are independent,
    /// so the result does not depend on the number of threads.
    pub fn apply(&mut self, table: &mut [f32], grads: &RowGrads, lr: f32, t: u64, h: AdamHyper) {
        let d = grads.dim;
        if d == 0 || grads.rows.is_empty() {
            return;
        }
        let parts = rayon::current_num_threads().max(1);
        let rows_per_part = (table.len() / d).div_ceil(parts).max(1);
        let mut touched: Vec<Vec<usize>> = vec![Vec::new(); parts];
        for (i, &r) in grads.rows.iter().enumerate() {
            touched[r as usize / rows_per_part].push(i);
        }
        let chunk = rows_per_part * d;
        let adam = AdamStep::new(lr, t, h);
        let kind = self.kind;
        let update_part = |part: usize, tab: &mut [f32], m: &mut [f32], v: &mut [f32]| {
            let base = part * rows_per_part;
            for &i in &touched[part] {
                let r = grads.rows[i] as usize - base;
                let g = &grads.grad[i * d..(i + 1) * d];
                let span = r * d..(r + 1) * d;
                match kind {
                    EmbOptimizer::Adam => adam.update(
                        &mut tab[span.clone()],
                        g,
                        &mut m[span.clone()],
                        &mut v[span],
                    ),
                    EmbOptimizer::Adagrad => {
                        adagrad_update(&mut tab[span.clone()], g, &mut m[span], lr, 1e-10)
                    }
                }
            }
        };
        // Adagrad keeps no second moment: each part gets an empty slice for it.
        let v_parts: Vec<&mut [f32]> = if self.v.is_empty() {
            (0..parts).map(|_| Default::default()).collect()
        } else {
            self.v.chunks_mut(chunk).collect()
        };
        table
            .par_chunks_mut(chunk)
            .zip(self.m.par_chunks_mut(chunk))
            .zip(v_parts)
            .enumerate()
            .for_each(|(part, ((tab, m), v))| update_part(part, tab, m, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_adam_step_moves_by_lr_against_the_gradient_sign() {
        let mut th = [1.0f32, 1.0];
        let (mut m, mut v) = ([0.0f32; 2], [0.0f32; 2]);
        AdamStep::new(0.1, 1, AdamHyper::default()).update(&mut th, &[0.5, -2.0], &mut m, &mut v);
        assert!(
            (th[0] - 0.9).abs() < 1e-5 && (th[1] - 1.1).abs() < 1e-5,
            "{th:?}"
        );
    }

    /// The table is split between the pool's threads; each row's update is the same on one
    /// thread or three, for both optimisers.
    #[test]
    fn row_sparse_updates_do_not_depend_on_the_thread_count() {
        let (rows, dim) = (50, 3);
        let mut grads = RowGrads::new(dim, rows);
        let touched: Vec<u32> = (0..rows as u32).filter(|r| r % 3 != 1).collect();
        let g: Vec<f32> = (0..touched.len() * dim)
            .map(|i| i as f32 * 0.01 - 0.3)
            .collect();
        grads.add(&touched, &g);
        for kind in [EmbOptimizer::Adam, EmbOptimizer::Adagrad] {
            let run = |threads: usize| {
                crate::model::in_pool(threads, || {
                    let mut table: Vec<f32> = (0..rows * dim).map(|i| i as f32 * 0.1).collect();
                    let mut st = RowSparseState::new(kind, rows * dim);
                    for t in 1..=3 {
                        st.apply(&mut table, &grads, 0.05, t, AdamHyper::default());
                    }
                    (table, st)
                })
            };
            let (one, three) = (run(1), run(3));
            assert_eq!(one, three);
            // Row 1 was not touched: it keeps its value and its moments stay zero.
            assert_eq!(&one.0[dim..2 * dim], &[0.3f32, 0.4, 0.5][..]);
            assert!(one.1.m[dim..2 * dim].iter().all(|&m| m == 0.0));
        }
    }

    #[test]
    fn row_grads_sum_repeats_and_only_touched_rows_change() {
        let mut g = RowGrads::new(2, 4);
        g.add(&[3, 1, 3], &[1.0, 1.0, 2.0, 2.0, 0.5, 0.5]);
        assert_eq!(g.rows, vec![3, 1]);
        assert_eq!(g.grad, vec![1.5, 1.5, 2.0, 2.0]);
        let mut table = vec![0.0f32; 8];
        let mut st = RowSparseState::new(EmbOptimizer::Adagrad, 8);
        st.apply(&mut table, &g, 0.1, 1, AdamHyper::default());
        assert_eq!(&table[0..2], &[0.0, 0.0]);
        assert_eq!(&table[4..6], &[0.0, 0.0]);
        assert!((table[6] + 0.1).abs() < 1e-6 && (table[2] + 0.1).abs() < 1e-6);
        let back = RowGrads::from_parts(2, 4, g.rows.clone(), g.grad.clone()).unwrap();
        assert_eq!(back, g);
        assert!(RowGrads::from_parts(2, 3, g.rows.clone(), g.grad.clone()).is_err());
        assert!(RowGrads::from_parts(2, 4, vec![1, 1], vec![0.0; 4]).is_err());
        assert!(RowGrads::from_parts(2, 4, vec![1], vec![0.0; 3]).is_err());
        g.clear();
        assert_eq!(g, RowGrads::new(2, 4));
    }
}
