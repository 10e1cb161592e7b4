//! Hand-written candle ops for the hot parts of a training step, each one pass over contiguous
//! memory where candle's generic ops take several (and reduce over a middle axis with strided
//! loops), split by fixed blocks of rows over the current rayon pool:
//! - `relu(x W + b)`, one op for a whole MLP layer: the product (`matmul.rs`), then the bias and
//!   the ReLU in place. Backward: one masking pass, the two products and a row-wise bias sum.
//!   As separate ops, candle would also allocate, zero and accumulate the gradient of `x W` and
//!   of `x W + b`, and sum the bias gradient column by column.
//! - the factorisation machine's pairwise term: one pass forward and one backward, instead of
//!   two reductions over the field axis, squares, a difference and their five backward passes.
//! - xDeepFM's row-wise outer product: backward contracts the gradient with the other factor
//!   row by row instead of reducing a broadcast.
//!
//! Blocks have a fixed number of rows, so sums come out the same on any number of threads.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::matmul::{matrix, product, product_no_grad, Operand};

/// Rows per parallel task.
pub(super) const ROWS_PER_TASK: usize = 64;

/// `relu(x w + b)` for `x (rows, in)`, `w (in, out)`, `b (out,)`, with its gradient.
pub fn linear_relu(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    matrix(x)?.apply_op3(&matrix(w)?, &b.contiguous()?, Linear { relu: true })
}

/// `x w + b` for `x (rows, in)`, `w (in, out)`, `b (out,)`, with its gradient: the bias added
/// in place after the product, its gradient one row-wise column sum (where candle's broadcast
/// add would sum its gradient column by column).
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    matrix(x)?.apply_op3(&matrix(w)?, &b.contiguous()?, Linear { relu: false })
}

/// The f32 slice a contiguous layout covers.
pub(super) fn contiguous<'a>(
    op: &str,
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{op}: only f32 tensors are supported");
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("{op}: the input must be contiguous"),
    }
}

/// `x w + b` (then ReLU when `relu`) of a fused op's inputs `[x, w, b]` (`rows x inp`,
/// `inp x out`, `out`), checked; the output with its `rows` and `out`. The linear ops and
/// AutoInt's projection share it.
pub(super) fn affine(
    op: &str,
    [(s1, l1), (s2, l2), (s3, l3)]: [(&CpuStorage, &Layout); 3],
    relu: bool,
) -> candle_core::Result<(Vec<f32>, usize, usize)> {
    let x = Operand::new(s1, l1)?;
    let w = Operand::new(s2, l2)?;
    let b = contiguous(op, s3, l3)?;
    let ((rows, inp), (w_rows, out)) = (x.shape(), w.shape());
    if inp != w_rows || l3.dims() != [out] {
        candle_core::bail!(
            "{op}: x {:?}, w {:?} and b {:?} do not match",
            l1.dims(),
            l2.dims(),
            l3.dims()
        );
    }
    let mut y = product(x, w);
    par_row_blocks(&mut y, out, |_, block| {
        for row in block.chunks_exact_mut(out.max(1)) {
            for (v, &bias) in row.iter_mut().zip(b) {
                *v = if relu {
                    (*v + bias).max(0.0)
                } else {
                    *v + bias
                };
            }
        }
    });
    Ok((y, rows, out))
}

/// Calls `f(first_row, block)` on blocks of [`ROWS_PER_TASK`] rows of `width` values, in
/// parallel.
pub(super) fn par_row_blocks(out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    out.par_chunks_mut(ROWS_PER_TASK * width.max(1))
        .enumerate()
        .for_each(|(i, block)| f(i * ROWS_PER_TASK, block));
}

/// The not yet written part of one block of [`par_fill`]'s output.
pub(super) struct Filler<'a> {
    pub(super) block: &'a mut [MaybeUninit<f32>],
    written: usize,
}

impl Filler<'_> {
    /// Writes `values` after the values written so far (those that fit in the block).
    pub(super) fn extend(&mut self, values: impl IntoIterator<Item = f32>) {
        let mut n = 0;
        for (slot, v) in self.block[self.written..].iter_mut().zip(values) {
            slot.write(v);
            n += 1;
        }
        self.written += n;
    }
}

/// A new vector of `rows * width` values, written block by block in parallel by
/// `fill(first_row, filler)`, which must write the block's `ROWS_PER_TASK` rows (fewer in the
/// last block) in order. Never zero-filled first: the allocator's `memset` of every new
/// activation and gradient showed in the profile.
pub(super) fn par_fill(
    rows: usize,
    width: usize,
    fill: impl Fn(usize, &mut Filler) + Sync,
) -> Vec<f32> {
    let len = rows * width;
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(ROWS_PER_TASK * width.max(1))
        .enumerate()
        .for_each(|(i, block)| {
            let mut filler = Filler { block, written: 0 };
            fill(i * ROWS_PER_TASK, &mut filler);
            assert_eq!(
                filler.written,
                filler.block.len(),
                "par_fill: a block was not filled"
            );
        });
    // SAFETY: the blocks cover the first `len` elements, and each block wrote every one of its
    // elements (the assert would have panicked, and the panic left `for_each`, otherwise).
    unsafe { out.set_len(len) };
    out
}

/// [`par_fill`] for two outputs with the same rows, `widths.0` and `widths.1` values a row:
/// `fill(first_row, first, second)` writes a block's rows of both. Both widths must be non-zero.
pub(super) fn par_fill_pair(
    rows: usize,
    widths: (usize, usize),
    fill: impl Fn(usize, &mut Filler, &mut Filler) + Sync,
) -> (Vec<f32>, Vec<f32>) {
    assert!(
        widths.0 > 0 && widths.1 > 0,
        "par_fill_pair: an output without values"
    );
    let lens = (rows * widths.0, rows * widths.1);
    let (mut a, mut b) = (Vec::with_capacity(lens.0), Vec::with_capacity(lens.1));
    a.spare_capacity_mut()[..lens.0]
        .par_chunks_mut(ROWS_PER_TASK * widths.0)
        .zip(b.spare_capacity_mut()[..lens.1].par_chunks_mut(ROWS_PER_TASK * widths.1))
        .enumerate()
        .for_each(|(i, (block_a, block_b))| {
            let mut fa = Filler {
                block: block_a,
                written: 0,
            };
            let mut fb = Filler {
                block: block_b,
                written: 0,
            };
            fill(i * ROWS_PER_TASK, &mut fa, &mut fb);
            assert!(
                fa.written == fa.block.len() && fb.written == fb.block.len(),
                "par_fill_pair: a block was not filled"
            );
        });
    // SAFETY: as in `par_fill`, for each of the two vectors: with both widths non-zero both
    // split into one block per `ROWS_PER_TASK` rows, so the zip pairs every block of each.
    unsafe {
        a.set_len(lens.0);
        b.set_len(lens.1);
    }
    (a, b)
}

/// A linear layer, followed by a ReLU when `relu` is set.
struct Linear {
    relu: bool,
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        if self.relu {
            "linear-relu"
        } else {
            "linear"
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (y, rows, out) = affine(self.name(), [(s1, l1), (s2, l2), (s3, l3)], self.relu)?;
        Ok((CpuStorage::F32(y), Shape::from((rows, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let gz = if self.relu {
            grad_res.contiguous()?.apply_op2_no_bwd(res, &ReluMask)?
        } else {
            grad_res.contiguous()?
        };
        affine_grads(x, w, &gz)
    }
}

/// The gradients of `x w + b` for `x`, `w` and `b`, from the gradient `gz` (contiguous
/// `(rows, out)`) of its output: the backward pass of every op whose forward is [`affine`].
pub(super) fn affine_grads(
    x: &Tensor,
    w: &Tensor,
    gz: &Tensor,
) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let gx = product_no_grad(gz, &w.t()?)?;
    let gw = product_no_grad(&x.t()?, gz)?;
    let gb = gz.apply_op1_no_bwd(&ColumnSum)?;
    Ok((Some(gx), Some(gw), Some(gb)))
}

/// The column sums of a contiguous `(rows, h)` matrix: `(h,)`. Each block of rows adds row
/// after row into its own accumulator (a contiguous, vectorised pass, where candle's `sum(0)`
/// walks each column with a stride of `h`); the blocks' sums are then added in block order.
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(self.name(), s, l)?;
        let &[_, h] = l.dims() else {
            candle_core::bail!("column-sum: expected a matrix, got {:?}", l.dims());
        };
        Ok((CpuStorage::F32(column_sums(x, h)), Shape::from(h)))
    }
}

/// The column sums of a row-major matrix of `h` columns (see [`ColumnSum`]).
pub(super) fn column_sums(x: &[f32], h: usize) -> Vec<f32> {
    block_sums(x.len() / h.max(1), h, |r0, rows, acc| {
        for row in x[r0 * h..(r0 + rows) * h].chunks_exact(h.max(1)) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    })
}

/// A sum over `rows` rows of `len` values each: `add(first_row, rows, acc)` adds the
/// contributions of blocks of [`ROWS_PER_TASK`] rows, each into its own zeroed accumulator, in
/// parallel; the blocks' accumulators are then added in block order, so the result does not
/// depend on the number of threads.
fn block_sums(rows: usize, len: usize, add: impl Fn(usize, usize, &mut [f32]) + Sync) -> Vec<f32> {
    let blocks: Vec<Vec<f32>> = (0..rows.div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .map(|i| {
            let mut acc = vec![0.0f32; len];
            let r0 = i * ROWS_PER_TASK;
            add(r0, ROWS_PER_TASK.min(rows - r0), &mut acc);
            acc
        })
        .collect();
    let mut acc = vec![0.0f32; len];
    for block in &blocks {
        for (a, &v) in acc.iter_mut().zip(block) {
            *a += v;
        }
    }
    acc
}

/// `g` where the ReLU output is positive, 0 elsewhere.
struct ReluMask;

impl CustomOp2 for ReluMask {
    fn name(&self) -> &'static str {
        "relu-mask"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = contiguous(self.name(), s1, l1)?;
        let y = contiguous(self.name(), s2, l2)?;
        if g.len() != y.len() {
            candle_core::bail!("relu-mask: {:?} vs {:?}", l1.dims(), l2.dims());
        }
        let width = l1.dims().last().copied().unwrap_or(1).max(1);
        let out = par_fill(g.len() / width, width, |r0, out| {
            let span = r0 * width..(r0 * width + out.block.len());
            out.extend(
                g[span.clone()]
                    .iter()
                    .zip(&y[span])
                    .map(|(&g, &y)| if y > 0.0 { g } else { 0.0 }),
            );
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// The factorisation machine's second-order term of `(B, F, d)` embeddings, `(B,)`:
/// `0.5 * sum_k ((sum_f x_fk)^2 - sum_f x_fk^2)`, the sum of `<x_f, x_g>` over field pairs.
pub fn fm_pairwise(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(FmPairwise)
}

/// `(B, F, d)` of a contiguous layout, or an error naming `op`.
fn fields_dims(op: &str, l: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    match *l.dims() {
        [b, f, d] => Ok((b, f, d)),
        ref dims => candle_core::bail!("{op}: expected (batch, fields, dim), got {dims:?}"),
    }
}

/// `sum_f x_fk` of one row's `(F, d)` block into `s` (length `d`).
fn field_sum(row: &[f32], d: usize, s: &mut [f32]) {
    s.fill(0.0);
    for field in row.chunks_exact(d) {
        for (a, &v) in s.iter_mut().zip(field) {
            *a += v;
        }
    }
}

struct FmPairwise;

impl CustomOp1 for FmPairwise {
    fn name(&self) -> &'static str {
        "fm-pairwise"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(self.name(), st, l)?;
        let (b, f, d) = fields_dims(self.name(), l)?;
        let mut out = vec![0f32; b];
        let width = f * d;
        if width > 0 {
            par_row_blocks(&mut out, 1, |r0, block| {
                let mut s = vec![0.0f32; d];
                let rows = x[r0 * width..].chunks_exact(width);
                for (o, row) in block.iter_mut().zip(rows) {
                    field_sum(row, d, &mut s);
                    let square_of_sum: f32 = s.iter().map(|v| v * v).sum();
                    let sum_of_squares: f32 = row.iter().map(|v| v * v).sum();
                    *o = 0.5 * (square_of_sum - sum_of_squares);
                }
            });
        }
        Ok((CpuStorage::F32(out), Shape::from(b)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(x.contiguous()?.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &FmPairwiseGrad,
        )?))
    }
}

/// `d out_b / d x_bfk = sum_f' x_bf'k - x_bfk`, times the incoming gradient `g_b`.
struct FmPairwiseGrad;

impl CustomOp2 for FmPairwiseGrad {
    fn name(&self) -> &'static str {
        "fm-pairwise-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(self.name(), s1, l1)?;
        let g = contiguous(self.name(), s2, l2)?;
        let (b, f, d) = fields_dims(self.name(), l1)?;
        if l2.dims() != [b] {
            candle_core::bail!("fm-pairwise-grad: x {:?}, g {:?}", l1.dims(), l2.dims());
        }
        let width = f * d;
        if width == 0 {
            return Ok((CpuStorage::F32(Vec::new()), l1.shape().clone()));
        }
        let out = par_fill(b, width, |r0, out| {
            let mut s = vec![0.0f32; d];
            let rows = x[r0 * width..(r0 * width + out.block.len())].chunks_exact(width);
            for (row, &gb) in rows.zip(&g[r0..]) {
                field_sum(row, d, &mut s);
                for field in row.chunks_exact(d) {
                    out.extend(field.iter().zip(&s).map(|(&v, &sk)| gb * (sk - v)));
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Row-wise outer products: `(N, H)` and `(N, F)` to `(N, H * F)` with
/// `out[n, h * F + f] = u[n, h] * v[n, f]` (xDeepFM's CIN). Backward contracts the incoming
/// gradient with the other factor row by row, where candle's broadcast multiply would sum its
/// gradient over the broadcast axes with strided reductions of the whole `N x H x F` block.
pub fn outer_rows(u: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
    u.contiguous()?.apply_op2(&v.contiguous()?, OuterRows)
}

/// `(N, H)` and `(N, F)` of two contiguous layouts, or an error naming `op`.
fn two_matrices(op: &str, l1: &Layout, l2: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    match (l1.dims(), l2.dims()) {
        (&[n, h], &[n2, f]) if n == n2 => Ok((n, h, f)),
        (a, b) => candle_core::bail!("{op}: {a:?} and {b:?} are not two matrices of equal rows"),
    }
}

struct OuterRows;

impl CustomOp2 for OuterRows {
    fn name(&self) -> &'static str {
        "outer-rows"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let u = contiguous(self.name(), s1, l1)?;
        let v = contiguous(self.name(), s2, l2)?;
        let (n, h, f) = two_matrices(self.name(), l1, l2)?;
        let out = par_fill(n, h * f, |r0, out| {
            let rows = out.block.len() / (h * f).max(1);
            for r in r0..r0 + rows {
                let v_row = &v[r * f..(r + 1) * f];
                for &a in &u[r * h..(r + 1) * h] {
                    out.extend(v_row.iter().map(|&b| a * b));
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((n, h * f))))
    }

    fn bwd(
        &self,
        u: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad_res.contiguous()?;
        let gu = g.apply_op2_no_bwd(&v.contiguous()?, &OuterGrad::Left)?;
        let gv = g.apply_op2_no_bwd(&u.contiguous()?, &OuterGrad::Right)?;
        Ok((Some(gu), Some(gv)))
    }
}

/// The gradients of [`outer_rows`] from its output gradient `g` `(N, H * F)`:
/// `Left` with `v`: `gu[n, h] = sum_f g[n, h * F + f] v[n, f]`;
/// `Right` with `u`: `gv[n, f] = sum_h g[n, h * F + f] u[n, h]`.
enum OuterGrad {
    Left,
    Right,
}

impl CustomOp2 for OuterGrad {
    fn name(&self) -> &'static str {
        match self {
            OuterGrad::Left => "outer-rows-grad-left",
            OuterGrad::Right => "outer-rows-grad-right",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = contiguous(self.name(), s1, l1)?;
        let other = contiguous(self.name(), s2, l2)?;
        let (n, width, k) = two_matrices(self.name(), l1, l2)?;
        if k == 0 || width % k != 0 {
            candle_core::bail!("{}: {:?} against {:?}", self.name(), l1.dims(), l2.dims());
        }
        // The other factor has `k` columns; the result has `m` (`width = h * f`).
        let m = width / k;
        let out = match self {
            OuterGrad::Left => par_fill(n, m, |r0, out| {
                let rows = out.block.len() / m.max(1);
                for r in r0..r0 + rows {
                    let v_row = &other[r * k..(r + 1) * k];
                    let g_row = &g[r * width..(r + 1) * width];
                    out.extend(
                        g_row
                            .chunks_exact(k)
                            .map(|gh| gh.iter().zip(v_row).map(|(&a, &b)| a * b).sum::<f32>()),
                    );
                }
            }),
            OuterGrad::Right => par_fill(n, m, |r0, out| {
                let rows = out.block.len() / m.max(1);
                let mut acc = vec![0.0f32; m];
                for r in r0..r0 + rows {
                    let u_row = &other[r * k..(r + 1) * k];
                    let g_row = &g[r * width..(r + 1) * width];
                    acc.fill(0.0);
                    for (&a, gh) in u_row.iter().zip(g_row.chunks_exact(m)) {
                        for (s, &x) in acc.iter_mut().zip(gh) {
                            *s += a * x;
                        }
                    }
                    out.extend(acc.iter().copied());
                }
            }),
        };
        Ok((CpuStorage::F32(out), Shape::from((n, m))))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::backprop::GradStore;
    use candle_core::{Device, Tensor, Var, D};

    use super::{fm_pairwise, linear_relu, outer_rows, ROWS_PER_TASK};
    use crate::model::in_pool;

    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 + salt) % 19) as f32 / 4.0 - 2.3)
            .collect()
    }

    fn grad(g: &GradStore, v: &Var) -> Vec<f32> {
        g.get(v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    }

    /// The gradients of `sum(y * mix)`: every output weighted differently, so a wrong
    /// element of a gradient shows.
    fn backward_mixed(y: Tensor, mix: &Tensor) -> GradStore {
        (y * mix).unwrap().sum_all().unwrap().backward().unwrap()
    }

    fn assert_close(a: &[f32], e: &[f32], tol: f32) {
        assert_eq!(a.len(), e.len());
        for (a, e) in a.iter().zip(e) {
            assert!((a - e).abs() <= tol * (1.0 + e.abs()), "{a} vs {e}");
        }
    }

    /// A layer of more rows than one parallel block.
    fn layer() -> (Var, Var, Var, Tensor) {
        let dev = Device::Cpu;
        let (rows, inp, out) = (2 * ROWS_PER_TASK + 7, 5, 4);
        let x = Var::from_vec(values(rows * inp, 1), (rows, inp), &dev).unwrap();
        let w = Var::from_vec(values(inp * out, 2), (inp, out), &dev).unwrap();
        let b = Var::from_vec(vec![0.5f32, -1.25, 0.0, 2.0], out, &dev).unwrap();
        let mix = Tensor::from_vec(values(rows * out, 3), (rows, out), &dev).unwrap();
        (x, w, b, mix)
    }

    /// Values and gradients equal `relu(x w + b)` written with candle's generic ops.
    #[test]
    fn linear_relu_matches_the_unfused_layer_forward_and_backward() {
        let (x, w, b, mix) = layer();
        let fused = linear_relu(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
        let plain = x
            .as_tensor()
            .matmul(w.as_tensor())
            .unwrap()
            .broadcast_add(b.as_tensor())
            .unwrap()
            .relu()
            .unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_close(&flat(&fused), &flat(&plain), 1e-5);
        let gf = backward_mixed(fused, &mix);
        let gp = backward_mixed(plain, &mix);
        for v in [&x, &w, &b] {
            assert_close(&grad(&gf, v), &grad(&gp, v), 1e-5);
        }
    }

    /// Blocks of rows are fixed, so one thread and three give the same bits.
    #[test]
    fn fused_ops_do_not_depend_on_the_thread_count() {
        let (x, w, b, mix) = layer();
        let fields = x.as_tensor().reshape((x.dims()[0], 1, 5)).unwrap();
        let run = |threads: usize| {
            in_pool(threads, || {
                let y = linear_relu(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
                let fm = fm_pairwise(&fields).unwrap();
                let loss =
                    ((y * &mix).unwrap().sum_all().unwrap() + fm.sum_all().unwrap()).unwrap();
                let g = loss.backward().unwrap();
                (grad(&g, &x), grad(&g, &w), grad(&g, &b))
            })
        };
        assert_eq!(run(1), run(3));
    }

    /// Values and gradients equal the FM term written with candle's generic ops, and a
    /// hand-computed case: fields (1, 2) and (3, -1) give `<x_1, x_2> = 1`.
    #[test]
    fn fm_pairwise_matches_the_generic_formula_forward_and_backward() {
        let dev = Device::Cpu;
        let hand = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, -1.0], (1, 2, 2), &dev).unwrap();
        assert_eq!(
            fm_pairwise(&hand).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0]
        );

        let rows = ROWS_PER_TASK + 9;
        let x = Var::from_vec(values(rows * 15, 4), (rows, 5, 3), &dev).unwrap();
        let mix = Tensor::from_vec(values(rows, 5), rows, &dev).unwrap();
        let fused = fm_pairwise(x.as_tensor()).unwrap();
        let t = x.as_tensor();
        let sum = t.sum(1).unwrap();
        let plain = ((sum.sqr().unwrap() - t.sqr().unwrap().sum(1).unwrap())
            .unwrap()
            .sum(D::Minus1)
            .unwrap()
            * 0.5)
            .unwrap();
        assert_close(
            &fused.to_vec1::<f32>().unwrap(),
            &plain.to_vec1::<f32>().unwrap(),
            1e-5,
        );
        let gf = backward_mixed(fused, &mix);
        let gp = backward_mixed(plain, &mix);
        assert_close(&grad(&gf, &x), &grad(&gp, &x), 1e-5);
    }

    /// Values and gradients equal the broadcast product xDeepFM used before, reshaped.
    #[test]
    fn outer_rows_matches_the_broadcast_product_forward_and_backward() {
        let dev = Device::Cpu;
        let (n, h, f) = (ROWS_PER_TASK + 5, 3, 4);
        let u = Var::from_vec(values(n * h, 6), (n, h), &dev).unwrap();
        let v = Var::from_vec(values(n * f, 7), (n, f), &dev).unwrap();
        let mix = Tensor::from_vec(values(n * h * f, 8), (n, h * f), &dev).unwrap();
        let fused = outer_rows(u.as_tensor(), v.as_tensor()).unwrap();
        let plain = u
            .as_tensor()
            .unsqueeze(2)
            .unwrap()
            .broadcast_mul(&v.as_tensor().unsqueeze(1).unwrap())
            .unwrap()
            .reshape((n, h * f))
            .unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&fused), flat(&plain));
        let gf = backward_mixed(fused, &mix);
        let gp = backward_mixed(plain, &mix);
        for x in [&u, &v] {
            assert_close(&grad(&gf, x), &grad(&gp, x), 1e-5);
        }
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let dev = Device::Cpu;
        let zeros = |shape: &[usize]| Tensor::zeros(shape, candle_core::DType::F32, &dev).unwrap();
        assert!(linear_relu(&zeros(&[3, 4]), &zeros(&[4, 2]), &zeros(&[5])).is_err());
        assert!(linear_relu(&zeros(&[3, 4]), &zeros(&[3, 2]), &zeros(&[2])).is_err());
        assert!(fm_pairwise(&zeros(&[2, 3])).is_err());
        assert!(outer_rows(&zeros(&[2, 3]), &zeros(&[3, 3])).is_err());
    }
}
