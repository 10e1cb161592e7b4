//! The linear layers' matrix product `a b` for 2-D f32 tensors, as one candle op with its own
//! backward (`g b^T` and `a^T g`, transposed views read in place, never copied).
//!
//! candle's matmul hands each product to the `gemm` crate on all threads at once. That splits
//! the products whose rows are the batch (`x w` and `g w^T`) well, but not the weight gradient
//! `x^T g`, whose long inner dimension (the batch) the crate does not split between threads.
//! This op cuts the work itself and runs one single-threaded `gemm` call per piece on the
//! current rayon pool:
//! - many rows: blocks of [`ROW_BLOCK`] rows, each written straight into its rows of the result;
//! - few rows, long inner dimension: blocks of [`INNER_BLOCK`] of the inner dimension, each
//!   into its own partial product, summed in block order afterwards;
//! - otherwise one call on the crate's own threads.
//!
//! The rates each path reaches are in docs/performance.md.
//!
//! The cut depends on the shapes only, never on the thread count, so a seed gives the same
//! numbers on one thread or many.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Rows per piece when a product is cut by rows.
pub const ROW_BLOCK: usize = 512;
/// Inner-dimension length per piece when a product is cut along it.
pub const INNER_BLOCK: usize = 2048;

/// `a (m, k) x b (k, n) -> (m, n)`, differentiable.
pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    matrix(a)?.apply_op2(&matrix(b)?, Matmul)
}

/// `a b` outside autograd (for backward passes).
pub(super) fn product_no_grad(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    matrix(a)?.apply_op2_no_bwd(&matrix(b)?, &Matmul)
}

/// `t` itself when it can be read in place (row-major or a transposed row-major view), else a
/// contiguous copy.
pub(super) fn matrix(t: &Tensor) -> candle_core::Result<Tensor> {
    let l = t.layout();
    if l.dims().len() == 2 && unit_stride(l.dims(), l.stride()).is_some() {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}

/// For a 2-D layout with one unit stride: `(row stride, column stride)`. `None` for views that
/// are neither row- nor column-major (broadcasts, steps), which are copied first.
fn unit_stride(dims: &[usize], stride: &[usize]) -> Option<(usize, usize)> {
    let (rows, cols) = (dims[0], dims[1]);
    let (rs, cs) = (stride[0], stride[1]);
    if (cs == 1 || cols <= 1) && (rs >= cols || rows <= 1) {
        return Some((rs.max(cols).max(1), 1));
    }
    if (rs == 1 || rows <= 1) && (cs >= rows || cols <= 1) {
        return Some((1, cs.max(rows).max(1)));
    }
    None
}

/// A 2-D f32 operand: its data from the start offset, its shape and its strides in elements.
#[derive(Clone, Copy)]
pub(super) struct Operand<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Operand<'a> {
    pub(super) fn new(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<Self> {
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("matmul: only f32 tensors are supported");
        };
        let (dims, stride) = (l.dims(), l.stride());
        if dims.len() != 2 {
            candle_core::bail!("matmul: 2-D operands only, got {dims:?}");
        }
        let Some((rs, cs)) = unit_stride(dims, stride) else {
            candle_core::bail!("matmul: operand with strides {stride:?} is not a matrix view")
        };
        let data = &v[l.start_offset()..];
        let (rows, cols) = (dims[0], dims[1]);
        // The last element read must lie in the storage (the gemm call reads through pointers).
        if rows > 0 && cols > 0 && (rows - 1) * rs + (cols - 1) * cs >= data.len() {
            candle_core::bail!("matmul: a {rows}x{cols} view overruns its storage");
        }
        Ok(Operand {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }

    /// A row-major `rows x cols` matrix over the first `rows * cols` values of `data`.
    pub(super) fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() >= rows * cols,
            "row_major: {rows}x{cols} over {} values",
            data.len()
        );
        Operand {
            data,
            rows,
            cols,
            rs: cols.max(1),
            cs: 1,
        }
    }

    /// The transpose, read in place.
    pub(super) fn t(self) -> Self {
        Operand {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// `(rows, cols)`.
    pub(super) fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Rows `r0..r0 + len`.
    fn rows(self, r0: usize, len: usize) -> Self {
        Operand {
            data: self.from(r0 * self.rs, len),
            rows: len,
            ..self
        }
    }

    /// Columns `c0..c0 + len`.
    fn cols(self, c0: usize, len: usize) -> Self {
        Operand {
            data: self.from(c0 * self.cs, len),
            cols: len,
            ..self
        }
    }

    /// The data from element `offset` on, or nothing for an empty narrowing.
    fn from(&self, offset: usize, len: usize) -> &'a [f32] {
        if len == 0 {
            &[]
        } else {
            &self.data[offset..]
        }
    }
}

/// One single-threaded `gemm` call adding `a b` to `c` (row-major, `a.rows` rows of `b.cols`
/// values).
pub(super) fn gemm_add(a: Operand, b: Operand, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && c.len() == m * n,
        "gemm_add: shapes do not chain"
    );
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let s = |x: usize| x as isize;
    // SAFETY: as in `gemm_into`; with `read_dst` true the crate reads and writes exactly the
    // `m * n` initialised values of `c`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            s(n),
            true,
            a.data.as_ptr(),
            s(a.cs),
            s(a.rs),
            b.data.as_ptr(),
            s(b.cs),
            s(b.rs),
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// One `gemm` call writing `a b` into every element of `c` (row-major, `a.rows` rows of
/// `b.cols` values).
pub(super) fn gemm_into(
    a: Operand,
    b: Operand,
    c: &mut [MaybeUninit<f32>],
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && c.len() == m * n,
        "gemm_into: shapes do not chain"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(MaybeUninit::new(0.0));
        return;
    }
    let s = |x: usize| x as isize;
    // SAFETY: `a` reads `m x k` values at `data[i * rs + j * cs]`, which `Operand::new` checked
    // lie inside its storage (and `rows` / `cols` only narrow that range); likewise `b` with
    // `k x n`. `c` holds exactly `m * n` values, written at `c[i * n + j]`: with `read_dst`
    // false the crate overwrites every one of them and reads none.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr().cast::<f32>(),
            1,
            s(n),
            false,
            a.data.as_ptr(),
            s(a.cs),
            s(a.rs),
            b.data.as_ptr(),
            s(b.cs),
            s(b.rs),
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A new vector of `len` values, all written by `write` through [`gemm_into`], never zeroed
/// first (zero-filling new activations and gradients showed as 6.8% of the training profile).
fn written_by_gemm(len: usize, write: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut c = Vec::with_capacity(len);
    write(&mut c.spare_capacity_mut()[..len]);
    // SAFETY: every caller passes a `write` that covers the whole slice with `gemm_into`
    // calls on disjoint blocks, and `gemm_into` writes every element of its block.
    unsafe { c.set_len(len) };
    c
}

/// `a b` as a new row-major `a.rows x b.cols` vector, cut into single-threaded pieces on the
/// current rayon pool (module docs).
pub(super) fn product(a: Operand, b: Operand) -> Vec<f32> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return Vec::new();
    }
    if m >= 2 * ROW_BLOCK {
        written_by_gemm(m * n, |c| {
            c.par_chunks_mut(ROW_BLOCK * n)
                .enumerate()
                .for_each(|(i, block)| {
                    let rows = a.rows(i * ROW_BLOCK, block.len() / n);
                    gemm_into(rows, b, block, gemm::Parallelism::None)
                })
        })
    } else if k >= 2 * INNER_BLOCK {
        let partials: Vec<Vec<f32>> = (0..k.div_ceil(INNER_BLOCK))
            .into_par_iter()
            .map(|i| {
                let (k0, len) = (i * INNER_BLOCK, INNER_BLOCK.min(k - i * INNER_BLOCK));
                let (a, b) = (a.cols(k0, len), b.rows(k0, len));
                written_by_gemm(m * n, |c| gemm_into(a, b, c, gemm::Parallelism::None))
            })
            .collect();
        let mut partials = partials.into_iter();
        let mut c = partials.next().unwrap_or_default();
        for p in partials {
            for (x, y) in c.iter_mut().zip(&p) {
                *x += y;
            }
        }
        c
    } else {
        let threads = rayon::current_num_threads();
        let parallelism = if threads > 1 && m * n * k >= 1 << 18 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        written_by_gemm(m * n, |c| gemm_into(a, b, c, parallelism))
    }
}

struct Matmul;

impl CustomOp2 for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let a = Operand::new(s1, l1)?;
        let b = Operand::new(s2, l2)?;
        if a.cols != b.rows {
            candle_core::bail!(
                "matmul: ({}, {}) x ({}, {}) do not chain",
                a.rows,
                a.cols,
                b.rows,
                b.cols
            );
        }
        let c = product(a, b);
        Ok((CpuStorage::F32(c), Shape::from((a.rows, b.cols))))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad_res.contiguous()?;
        let ga = product_no_grad(&g, &b.t()?)?;
        let gb = product_no_grad(&a.t()?, &g)?;
        Ok((Some(ga), Some(gb)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::{matmul, INNER_BLOCK, ROW_BLOCK};
    use crate::model::in_pool;

    fn max_diff(x: &Tensor, y: &Tensor) -> f32 {
        (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 13 + salt) % 11) as f32 / 5.0 - 1.0)
            .collect()
    }

    #[test]
    fn matches_candle_matmul_forward_and_backward() {
        let dev = Device::Cpu;
        let a = Var::from_vec(values(35, 1), (7, 5), &dev).unwrap();
        let b = Var::from_vec(values(20, 2), (5, 4), &dev).unwrap();
        let w = Tensor::arange(0f32, 28.0, &dev)
            .unwrap()
            .reshape((7, 4))
            .unwrap();
        let ours = matmul(a.as_tensor(), b.as_tensor()).unwrap();
        let theirs = a.as_tensor().matmul(b.as_tensor()).unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-5);
        let g1 = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(max_diff(g1.get(&a).unwrap(), g2.get(&a).unwrap()) < 1e-5);
        assert!(max_diff(g1.get(&b).unwrap(), g2.get(&b).unwrap()) < 1e-5);
        // A transposed view is read in place.
        let bt = b.as_tensor().t().unwrap().contiguous().unwrap();
        assert!(
            max_diff(
                &matmul(a.as_tensor(), &bt.t().unwrap()).unwrap(),
                &a.as_tensor().matmul(b.as_tensor()).unwrap(),
            ) < 1e-5
        );
        // A view that cannot be (a broadcast row) is copied first.
        let row = Tensor::arange(0f32, 5.0, &dev)
            .unwrap()
            .reshape((1, 5))
            .unwrap();
        let rows = row.broadcast_as((3, 5)).unwrap();
        assert!(
            max_diff(
                &matmul(&rows, b.as_tensor()).unwrap(),
                &rows.contiguous().unwrap().matmul(b.as_tensor()).unwrap(),
            ) < 1e-5
        );
        assert!(matmul(a.as_tensor(), a.as_tensor()).is_err());
    }

    /// Shapes large enough to be cut by rows (`x w`, `g w^T`) and along the inner dimension
    /// (`x^T g`, the weight gradient) give candle's numbers, and the same bits on one thread as
    /// on three: the cut depends on the shapes, not on the pool.
    #[test]
    fn cut_products_match_candle_and_do_not_depend_on_the_thread_count() {
        let dev = Device::Cpu;
        let (rows, inp, out) = (2 * INNER_BLOCK + 3, 9, 7);
        assert!(rows >= 2 * ROW_BLOCK);
        let x = Var::from_vec(values(rows * inp, 3), (rows, inp), &dev).unwrap();
        let w = Var::from_vec(values(inp * out, 4), (inp, out), &dev).unwrap();
        let mask = Tensor::from_vec(values(rows * out, 5), (rows, out), &dev).unwrap();
        let run = |threads: usize| {
            in_pool(threads, || {
                let y = matmul(x.as_tensor(), w.as_tensor()).unwrap();
                let g = (&y * &mask).unwrap().sum_all().unwrap().backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (flat(&y), flat(g.get(&x).unwrap()), flat(g.get(&w).unwrap()))
            })
        };
        let one = run(1);
        assert_eq!(one, run(3));
        let y = x.as_tensor().matmul(w.as_tensor()).unwrap();
        let g = (&y * &mask).unwrap().sum_all().unwrap().backward().unwrap();
        let close = |ours: &[f32], theirs: &Tensor, tol: f32| {
            let theirs = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (a, e) in ours.iter().zip(&theirs) {
                assert!((a - e).abs() <= tol * (1.0 + e.abs()), "{a} vs {e}");
            }
        };
        close(&one.0, &y, 1e-5);
        close(&one.1, g.get(&x).unwrap(), 1e-5);
        close(&one.2, g.get(&w).unwrap(), 1e-4);
    }

    /// A product too small to cut goes to the crate's own threads, which split only the
    /// result's tiles: the same bits on one thread or three as well.
    #[test]
    fn uncut_products_do_not_depend_on_the_thread_count() {
        let dev = Device::Cpu;
        let a = Tensor::from_vec(values(300 * 200, 6), (300, 200), &dev).unwrap();
        let b = Tensor::from_vec(values(200 * 250, 7), (200, 250), &dev).unwrap();
        let run = |threads: usize| {
            in_pool(threads, || {
                let c = matmul(&a, &b).unwrap();
                c.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            })
        };
        assert_eq!(run(1), run(3));
    }
}
