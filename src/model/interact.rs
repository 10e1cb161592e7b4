//! Hand-written candle ops for the interaction blocks of the zoo's non-MLP architectures, in the
//! style of `fused.rs`: one pass over contiguous memory each way where candle's generic ops take
//! several (broadcasts whose gradients are strided reductions, `index_select` whose gradient is a
//! scatter, intermediate tensors written and read back):
//! - [`cin_layer`]: one layer of xDeepFM's CIN, `(xk (x) x0) W`, with the row-wise outer product
//!   built a block of rows at a time (never the whole `N x H*F` matrix) and multiplied there;
//! - [`bilinear_pairs`]: FiBiNET's field-all bilinear interactions of every field pair;
//! - [`scale_fields`]: FiBiNET's SENET re-weighting of the fields;
//! - [`self_attention`]: one AutoInt layer's multi-head attention, residual and ReLU, per sample
//!   (its attention weights kept from the forward pass for the backward pass);
//! - [`cross_stack`] / [`cross_mix`]: DCN's stack of vector cross layers (one op) and DCNv2's
//!   cross update.
//!
//! Every sum over rows (a weight's gradient) is taken in fixed blocks of rows added in block
//! order, so results do not depend on the number of threads.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::fused::{
    affine, affine_grads, contiguous, par_fill, par_fill_pair, Filler, ROWS_PER_TASK,
};
use super::matmul::{gemm_add, gemm_into, matrix, Operand};
use super::small::{product, softmax_backward_rows, softmax_rows, transpose, View};

type Res<T> = candle_core::Result<T>;

/// Runs `f` on the values of `ts` (made contiguous first), for backward passes that compute
/// every gradient of an op at once.
fn with_values<R>(op: &str, ts: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> R) -> Res<R> {
    let owned: Vec<Tensor> = ts.iter().map(|t| t.contiguous()).collect::<Res<_>>()?;
    let guards: Vec<_> = owned.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        let Storage::Cpu(s) = &**storage else {
            candle_core::bail!("{op}: only CPU tensors are supported");
        };
        slices.push(contiguous(op, s, layout)?);
    }
    Ok(f(&slices))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `acc += a * x`, element-wise.
fn axpy(acc: &mut [f32], a: f32, x: &[f32]) {
    for (s, &v) in acc.iter_mut().zip(x) {
        *s += a * v;
    }
}

/// `dims` as a fixed-size array, or an error naming `op` and `what`.
fn dims<const N: usize>(op: &str, what: &str, l: &Layout) -> Res<[usize; N]> {
    match <[usize; N]>::try_from(l.dims()) {
        Ok(d) => Ok(d),
        Err(_) => candle_core::bail!("{op}: {what} has shape {:?}, expected {N} dims", l.dims()),
    }
}

/// Adds the partial sums in order (the fixed-order reduction of the module docs).
fn sum_in_order(partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut acc = vec![0.0f32; len];
    for p in &partials {
        for (a, &v) in acc.iter_mut().zip(p) {
            *a += v;
        }
    }
    acc
}

fn tensor(v: Vec<f32>, shape: &[usize]) -> Res<Tensor> {
    Tensor::from_vec(v, shape, &candle_core::Device::Cpu)
}

// ---------------------------------------------------------------------------------------------
// xDeepFM's CIN layer

/// Rows of the outer product built at a time: `rows x H*F` values that stay in the L2 cache.
const CIN_ROWS: usize = 64;
/// Rows per task of the CIN's backward pass; each task sums its part of the weight gradient in
/// its own partial (a fixed split, whatever the number of threads).
const CIN_CHUNK: usize = 2048;

/// One CIN layer: `xk (N, H)`, `x0 (N, F)`, `w (H*F, H')` to `(N, H')` with
/// `out[n] = sum_{h,f} xk[n,h] x0[n,f] w[h*F + f]`, i.e. the row-wise outer product of
/// `fused::outer_rows` times `w`, without materialising the `N x H*F` product.
pub fn cin_layer(xk: &Tensor, x0: &Tensor, w: &Tensor) -> Res<Tensor> {
    xk.contiguous()?
        .apply_op3(&x0.contiguous()?, &w.contiguous()?, CinLayer)
}

/// Rows `r0..r0 + rows` of the outer product into `z` (`rows * h * f` values).
fn outer_block(
    xk: &[f32],
    x0: &[f32],
    (h, f): (usize, usize),
    r0: usize,
    rows: usize,
    z: &mut Vec<f32>,
) {
    z.clear();
    for r in r0..r0 + rows {
        let x0r = &x0[r * f..(r + 1) * f];
        for &a in &xk[r * h..(r + 1) * h] {
            z.extend(x0r.iter().map(|&b| a * b));
        }
    }
}

struct CinLayer;

impl CinLayer {
    fn shapes(l1: &Layout, l2: &Layout, l3: &Layout) -> Res<(usize, usize, usize, usize)> {
        let [n, h] = dims("cin-layer", "xk", l1)?;
        let [n0, f] = dims("cin-layer", "x0", l2)?;
        let [hf, hn] = dims("cin-layer", "w", l3)?;
        if n != n0 || hf != h * f {
            candle_core::bail!(
                "cin-layer: xk {:?}, x0 {:?} and w {:?} do not match",
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        }
        Ok((n, h, f, hn))
    }
}

impl CustomOp3 for CinLayer {
    fn name(&self) -> &'static str {
        "cin-layer"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let (n, h, f, hn) = Self::shapes(l1, l2, l3)?;
        let xk = contiguous(self.name(), s1, l1)?;
        let x0 = contiguous(self.name(), s2, l2)?;
        let w = contiguous(self.name(), s3, l3)?;
        let len = n * hn;
        let mut y = Vec::with_capacity(len);
        if len > 0 {
            let wm = Operand::row_major(w, h * f, hn);
            y.spare_capacity_mut()[..len]
                .par_chunks_mut(CIN_ROWS * hn)
                .enumerate()
                .for_each(|(i, block)| {
                    let rows = block.len() / hn;
                    let mut z = Vec::with_capacity(rows * h * f);
                    outer_block(xk, x0, (h, f), i * CIN_ROWS, rows, &mut z);
                    let zm = Operand::row_major(&z, rows, h * f);
                    gemm_into(zm, wm, block, gemm::Parallelism::None);
                });
            // SAFETY: the blocks cover the first `len` values and `gemm_into` writes every
            // value of its block.
            unsafe { y.set_len(len) };
        }
        Ok((CpuStorage::F32(y), Shape::from((n, hn))))
    }

    fn bwd(
        &self,
        xk: &Tensor,
        x0: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Res<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, h, f, hn) = Self::shapes(xk.layout(), x0.layout(), w.layout())?;
        let hf = h * f;
        let (gxk, gx0, gw) = with_values(self.name(), &[xk, x0, w, grad_res], |v| {
            let (xk, x0, w, g) = (v[0], v[1], v[2], v[3]);
            let mut gxk = vec![0.0f32; n * h];
            let mut gx0 = vec![0.0f32; n * f];
            if n * h * f * hn == 0 {
                return (gxk, gx0, vec![0.0f32; hf * hn]);
            }
            let wt = Operand::row_major(w, hf, hn).t();
            let partials: Vec<Vec<f32>> = gxk
                .par_chunks_mut(CIN_CHUNK * h)
                .zip(gx0.par_chunks_mut(CIN_CHUNK * f))
                .enumerate()
                .map(|(c, (gxk_c, gx0_c))| {
                    let mut gw = vec![0.0f32; hf * hn];
                    let mut z = Vec::with_capacity(CIN_ROWS * hf);
                    let mut gz = vec![0.0f32; CIN_ROWS * hf];
                    let rows_c = gxk_c.len() / h;
                    for b0 in (0..rows_c).step_by(CIN_ROWS) {
                        let rows = CIN_ROWS.min(rows_c - b0);
                        let r0 = c * CIN_CHUNK + b0;
                        outer_block(xk, x0, (h, f), r0, rows, &mut z);
                        let gb = Operand::row_major(&g[r0 * hn..], rows, hn);
                        // d w += z^T g
                        gemm_add(Operand::row_major(&z, rows, hf).t(), gb, &mut gw);
                        // d z = g w^T, contracted with the other factor of each product.
                        let gz = &mut gz[..rows * hf];
                        gz.fill(0.0);
                        gemm_add(gb, wt, gz);
                        for r in 0..rows {
                            let gzr = &gz[r * hf..(r + 1) * hf];
                            let x0r = &x0[(r0 + r) * f..][..f];
                            let xkr = &xk[(r0 + r) * h..][..h];
                            let gk = &mut gxk_c[(b0 + r) * h..][..h];
                            let g0 = &mut gx0_c[(b0 + r) * f..][..f];
                            for ((gzh, &a), gkh) in gzr.chunks_exact(f).zip(xkr).zip(gk) {
                                *gkh = dot(gzh, x0r);
                                axpy(g0, a, gzh);
                            }
                        }
                    }
                    gw
                })
                .collect();
            (gxk, gx0, sum_in_order(partials, hf * hn))
        })?;
        Ok((
            Some(tensor(gxk, &[n, h])?),
            Some(tensor(gx0, &[n, f])?),
            Some(tensor(gw, &[hf, hn])?),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// FiBiNET's bilinear interactions and SENET scaling

/// Field-all bilinear interactions of `x (B, F, d)` with `w (d, d)`: `(B, P * d)` where the
/// `P = F (F - 1) / 2` pairs `i < j` come in order (`i` major) and pair `(i, j)` is
/// `(x_i w) * x_j` element-wise.
pub fn bilinear_pairs(x: &Tensor, w: &Tensor) -> Res<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, BilinearPairs)
}

/// `out = row w` for one `d`-vector and a `(d, d)` matrix.
fn vec_mat(row: &[f32], w: &[f32], out: &mut [f32]) {
    let d = out.len();
    out.fill(0.0);
    for (&a, wk) in row.iter().zip(w.chunks_exact(d)) {
        axpy(out, a, wk);
    }
}

/// `x_f w` for every field of one sample.
fn fields_times(xr: &[f32], w: &[f32], d: usize, xw: &mut [f32]) {
    for (xf, out) in xr.chunks_exact(d).zip(xw.chunks_exact_mut(d)) {
        vec_mat(xf, w, out);
    }
}

struct BilinearPairs;

impl BilinearPairs {
    fn shapes(l1: &Layout, l2: &Layout) -> Res<(usize, usize, usize)> {
        let [b, f, d] = dims("bilinear-pairs", "x", l1)?;
        if l2.dims() != [d, d] {
            candle_core::bail!("bilinear-pairs: x {:?}, w {:?}", l1.dims(), l2.dims());
        }
        Ok((b, f, d))
    }
}

impl CustomOp2 for BilinearPairs {
    fn name(&self) -> &'static str {
        "bilinear-pairs"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let (b, f, d) = Self::shapes(l1, l2)?;
        let x = contiguous(self.name(), s1, l1)?;
        let w = contiguous(self.name(), s2, l2)?;
        let width = f * f.saturating_sub(1) / 2 * d;
        let out = if width == 0 {
            Vec::new()
        } else {
            par_fill(b, width, |r0, out| {
                let mut xw = vec![0.0f32; f * d];
                for r in r0..r0 + out.block.len() / width {
                    let xr = &x[r * f * d..(r + 1) * f * d];
                    fields_times(xr, w, d, &mut xw);
                    for i in 0..f {
                        let xwi = &xw[i * d..(i + 1) * d];
                        for xj in xr[(i + 1) * d..].chunks_exact(d) {
                            out.extend(xwi.iter().zip(xj).map(|(&a, &c)| a * c));
                        }
                    }
                }
            })
        };
        Ok((CpuStorage::F32(out), Shape::from((b, width))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Res<(Option<Tensor>, Option<Tensor>)> {
        let (b, f, d) = Self::shapes(x.layout(), w.layout())?;
        let width = f * f.saturating_sub(1) / 2 * d;
        let (gx, gw) = with_values(self.name(), &[x, w, grad_res], |v| {
            let (x, w, g) = (v[0], v[1], v[2]);
            let mut gx = vec![0.0f32; b * f * d];
            if width == 0 {
                return (gx, vec![0.0f32; d * d]);
            }
            let partials: Vec<Vec<f32>> = gx
                .par_chunks_mut(ROWS_PER_TASK * f * d)
                .enumerate()
                .map(|(blk, gx_blk)| {
                    let mut gw = vec![0.0f32; d * d];
                    let mut xw = vec![0.0f32; f * d];
                    let mut gxw = vec![0.0f32; f * d];
                    for (rr, gxr) in gx_blk.chunks_exact_mut(f * d).enumerate() {
                        let r = blk * ROWS_PER_TASK + rr;
                        let xr = &x[r * f * d..(r + 1) * f * d];
                        let gr = &g[r * width..(r + 1) * width];
                        fields_times(xr, w, d, &mut xw);
                        gxw.fill(0.0);
                        let mut pairs = gr.chunks_exact(d);
                        for i in 0..f {
                            let (xwi, gxwi) =
                                (&xw[i * d..(i + 1) * d], &mut gxw[i * d..(i + 1) * d]);
                            for j in i + 1..f {
                                let gp = pairs.next().unwrap_or(&[]);
                                let xj = &xr[j * d..(j + 1) * d];
                                for ((s, &gv), &xv) in gxwi.iter_mut().zip(gp).zip(xj) {
                                    *s += gv * xv;
                                }
                                for ((s, &gv), &a) in
                                    gxr[j * d..(j + 1) * d].iter_mut().zip(gp).zip(xwi)
                                {
                                    *s += gv * a;
                                }
                            }
                        }
                        // Through `x_i w`: d x_i += d(x_i w) w^T, d w += x_i^T d(x_i w).
                        for ((gxi, gxwi), xi) in gxr
                            .chunks_exact_mut(d)
                            .zip(gxw.chunks_exact(d))
                            .zip(xr.chunks_exact(d))
                        {
                            for ((s, wk), (&a, gwk)) in gxi
                                .iter_mut()
                                .zip(w.chunks_exact(d))
                                .zip(xi.iter().zip(gw.chunks_exact_mut(d)))
                            {
                                *s += dot(gxwi, wk);
                                axpy(gwk, a, gxwi);
                            }
                        }
                    }
                    gw
                })
                .collect();
            (gx, sum_in_order(partials, d * d))
        })?;
        Ok((Some(tensor(gx, &[b, f, d])?), Some(tensor(gw, &[d, d])?)))
    }
}

/// SENET's re-weighting: `x (B, F, d)` times `a (B, F)`, each field's vector by its weight.
pub fn scale_fields(x: &Tensor, a: &Tensor) -> Res<Tensor> {
    x.contiguous()?.apply_op2(&a.contiguous()?, ScaleFields)
}

struct ScaleFields;

impl ScaleFields {
    fn shapes(l1: &Layout, l2: &Layout) -> Res<(usize, usize, usize)> {
        let [b, f, d] = dims("scale-fields", "x", l1)?;
        if l2.dims() != [b, f] {
            candle_core::bail!("scale-fields: x {:?}, a {:?}", l1.dims(), l2.dims());
        }
        Ok((b, f, d))
    }
}

/// `x_f * a_f` for the fields of rows `r0..` into `out`.
fn scaled(x: &[f32], a: &[f32], f: usize, d: usize, r0: usize, out: &mut Filler) {
    let rows = out.block.len() / (f * d);
    for (xf, &af) in x[r0 * f * d..(r0 + rows) * f * d]
        .chunks_exact(d)
        .zip(&a[r0 * f..(r0 + rows) * f])
    {
        out.extend(xf.iter().map(|&v| v * af));
    }
}

impl CustomOp2 for ScaleFields {
    fn name(&self) -> &'static str {
        "scale-fields"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let (b, f, d) = Self::shapes(l1, l2)?;
        let x = contiguous(self.name(), s1, l1)?;
        let a = contiguous(self.name(), s2, l2)?;
        let out = if f * d == 0 {
            Vec::new()
        } else {
            par_fill(b, f * d, |r0, out| scaled(x, a, f, d, r0, out))
        };
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Res<(Option<Tensor>, Option<Tensor>)> {
        let (b, f, d) = Self::shapes(x.layout(), a.layout())?;
        let (gx, ga) = with_values(self.name(), &[x, a, grad_res], |v| {
            let (x, a, g) = (v[0], v[1], v[2]);
            if f * d == 0 {
                return (Vec::new(), vec![0.0f32; b * f]);
            }
            let gx = par_fill(b, f * d, |r0, out| scaled(g, a, f, d, r0, out));
            let ga = par_fill(b, f, |r0, out| {
                let span = r0 * f * d..r0 * f * d + out.block.len() * d;
                out.extend(
                    g[span.clone()]
                        .chunks_exact(d)
                        .zip(x[span].chunks_exact(d))
                        .map(|(gf, xf)| dot(gf, xf)),
                );
            });
            (gx, ga)
        })?;
        Ok((Some(tensor(gx, &[b, f, d])?), Some(tensor(ga, &[b, f])?)))
    }
}

// ---------------------------------------------------------------------------------------------
// AutoInt's multi-head self-attention

/// One AutoInt layer after its projections: `p (B * F, 4A)` holds each field's query, key,
/// value and residual projections side by side (`A` values each, split into `heads` heads), the
/// `fields` rows of a sample together; the result `(B * F, A)` is
/// `relu(softmax(q k^T / sqrt(A / heads)) v + r)` head by head. Both are 2-D, so the layer's
/// projection (a 2-D product) feeds it and the next layer's projection reads its result without
/// a reshape between them (candle gives every tensor of the graph its own zeroed gradient, added
/// to: a reshape costs two more passes over the gradient). The forward pass keeps every
/// sample's `F x F` attention weights for the backward pass (which would otherwise compute them
/// again); each sample's products are small ones (`small.rs`).
pub fn self_attention(p: &Tensor, fields: usize, heads: usize) -> Res<Tensor> {
    p.contiguous()?.apply_op1(SelfAttention {
        fields,
        heads,
        weights: OnceLock::new(),
    })
}

struct SelfAttention {
    fields: usize,
    heads: usize,
    /// The forward pass's attention weights, `(B, heads, F, F)`, for the backward pass.
    weights: OnceLock<Vec<f32>>,
}

/// Sizes of one attention problem: fields, attention size `A`, head size.
#[derive(Clone, Copy)]
struct AttShape {
    f: usize,
    att: usize,
    head: usize,
}

impl AttShape {
    /// Query (`which` 0), key (1), value (2) or residual (3) of head `h` of one sample's `p`:
    /// `F` rows of `head` values.
    fn part<'a>(&self, p: &'a [f32], which: usize, h: usize) -> View<'a> {
        View::rows(
            &p[which * self.att + h * self.head..],
            self.f,
            self.head,
            4 * self.att,
        )
    }

    /// Part `which` of every head transposed into `t` (`A x F`), so that head `h`'s rows of it
    /// ([`head_rows`](Self::head_rows)) are the right-hand side of a product with `B^T`.
    fn transposed(&self, p: &[f32], which: usize, t: &mut [f32]) {
        let part = View::rows(&p[which * self.att..], self.f, self.att, 4 * self.att);
        transpose(part, t, self.f);
    }

    /// Head `h`'s `head x F` rows of a [`transposed`](Self::transposed) part.
    fn head_rows<'a>(&self, t: &'a [f32], h: usize) -> View<'a> {
        View::rows(&t[h * self.head * self.f..], self.head, self.f, self.f)
    }

    /// `F x F` matrix `s` as a view.
    fn square<'a>(&self, s: &'a [f32]) -> View<'a> {
        View::rows(s, self.f, self.f, self.f)
    }
}

impl SelfAttention {
    fn shape(&self, l: &Layout) -> Res<(usize, AttShape)> {
        let [n, a4] = dims("self-attention", "p", l)?;
        let (f, att) = (self.fields, a4 / 4);
        if a4 % 4 != 0 || self.heads == 0 || att % self.heads != 0 || f == 0 || n % f != 0 {
            candle_core::bail!(
                "self-attention: {:?} is not (batch x {f} fields, 4 x a multiple of {} heads)",
                l.dims(),
                self.heads
            );
        }
        let b = n / f;
        Ok((
            b,
            AttShape {
                f,
                att,
                head: att / self.heads,
            },
        ))
    }
}

impl SelfAttention {
    /// The layer's result `(B * F, A)` and attention weights `(B, heads, F, F)` from the
    /// projections `p`.
    fn attend(&self, p: &[f32], b: usize, sh: AttShape) -> (Vec<f32>, Vec<f32>) {
        let (f, att, hd) = (sh.f, sh.att, sh.head);
        let (width, ff) = (f * att, f * f);
        let scale = 1.0 / (hd as f32).sqrt();
        if width == 0 {
            return (Vec::new(), Vec::new());
        }
        par_fill_pair(b, (width, self.heads * ff), |r0, out, kept| {
            let mut s = vec![0.0f32; ff];
            let mut kt = vec![0.0f32; width];
            let mut o = vec![0.0f32; width];
            for r in r0..r0 + out.block.len() / width {
                let pr = &p[r * 4 * width..(r + 1) * 4 * width];
                sh.transposed(pr, 1, &mut kt);
                for h in 0..self.heads {
                    // t = q k^T, softmax by rows, then o = s v (head h's columns of `o`).
                    product(sh.part(pr, 0, h), sh.head_rows(&kt, h), &mut s, f);
                    softmax_rows(&mut s, f, scale);
                    product(sh.square(&s), sh.part(pr, 2, h), &mut o[h * hd..], att);
                    kept.extend(s.iter().copied());
                }
                let res = pr.chunks_exact(4 * att).map(|row| &row[3 * att..]);
                for (oi, ri) in o.chunks_exact(att).zip(res) {
                    out.extend(oi.iter().zip(ri).map(|(&v, &r)| (v + r).max(0.0)));
                }
            }
        })
    }

    /// The gradient with respect to `p` from the forward pass's result `y`, its weights and the
    /// result's gradient `g`.
    fn attend_grad(
        &self,
        p: &[f32],
        weights: &[f32],
        y: &[f32],
        g: &[f32],
        b: usize,
        sh: AttShape,
    ) -> Vec<f32> {
        let (f, att, hd) = (sh.f, sh.att, sh.head);
        let (width, ff) = (f * att, f * f);
        let scale = 1.0 / (hd as f32).sqrt();
        if width == 0 {
            return Vec::new();
        }
        par_fill(b, 4 * width, |r0, out| {
            let mut gs = vec![0.0f32; ff];
            let mut vt = vec![0.0f32; width];
            let mut gz = vec![0.0f32; width];
            let mut gpr = vec![0.0f32; 4 * width];
            for r in r0..r0 + out.block.len() / (4 * width) {
                let pr = &p[r * 4 * width..(r + 1) * 4 * width];
                // Through the ReLU; the residual's gradient is the result's.
                let (gr, yr) = (
                    &g[r * width..(r + 1) * width],
                    &y[r * width..(r + 1) * width],
                );
                for ((o, &gv), &yv) in gz.iter_mut().zip(gr).zip(yr) {
                    *o = if yv > 0.0 { gv } else { 0.0 };
                }
                for (gi, zi) in gpr.chunks_exact_mut(4 * att).zip(gz.chunks_exact(att)) {
                    gi[3 * att..].copy_from_slice(zi);
                }
                sh.transposed(pr, 2, &mut vt);
                for h in 0..self.heads {
                    let s = &weights[(r * self.heads + h) * ff..][..ff];
                    let gzh = View::rows(&gz[h * hd..], f, hd, att);
                    // d s = gz v^T; d v = s^T gz.
                    product(gzh, sh.head_rows(&vt, h), &mut gs, f);
                    product(sh.square(s).t(), gzh, &mut gpr[2 * att + h * hd..], 4 * att);
                    // Through the softmax: d t_ij = s_ij (d s_ij - sum_k s_ik d s_ik) / sqrt(head).
                    softmax_backward_rows(s, &mut gs, f, scale);
                    // Through t = q k^T: d q = d t k, d k = d t^T q.
                    let gt = sh.square(&gs);
                    product(gt, sh.part(pr, 1, h), &mut gpr[h * hd..], 4 * att);
                    product(gt.t(), sh.part(pr, 0, h), &mut gpr[att + h * hd..], 4 * att);
                }
                out.extend(gpr.iter().copied());
            }
        })
    }
}

impl CustomOp1 for SelfAttention {
    fn name(&self) -> &'static str {
        "self-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Res<(CpuStorage, Shape)> {
        let (b, sh) = self.shape(l)?;
        let p = contiguous(self.name(), s, l)?;
        let (out, weights) = self.attend(p, b, sh);
        // The first forward of this op instance: `set` cannot fail, and nothing else stores.
        let _ = self.weights.set(weights);
        Ok((CpuStorage::F32(out), Shape::from((b * sh.f, sh.att))))
    }

    fn bwd(&self, p: &Tensor, res: &Tensor, grad_res: &Tensor) -> Res<Option<Tensor>> {
        let (b, sh) = self.shape(p.layout())?;
        let Some(weights) = self.weights.get() else {
            candle_core::bail!("self-attention: backward before forward");
        };
        let gp = with_values(self.name(), &[p, res, grad_res], |v| {
            self.attend_grad(v[0], weights, v[1], v[2], b, sh)
        })?;
        Ok(Some(tensor(gp, &[b * sh.f, 4 * sh.att])?))
    }
}

/// One whole AutoInt layer: the four projections `p = x w + b` (`x (B * F, in)`, `w (in, 4A)`,
/// `b (4A)`) and then [`self_attention`], as one op. The projections stay inside it (kept for the
/// backward pass) instead of becoming a tensor of the graph, for which candle would zero a
/// gradient and add the attention's gradient to it: one pass to write and three to add over
/// `B * F x 4A` values a layer. Same products, same order: the bits of
/// `self_attention(&linear(x, w, b)?, ..)`.
pub fn projected_attention(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    fields: usize,
    heads: usize,
) -> Res<Tensor> {
    let att = SelfAttention {
        fields,
        heads,
        weights: OnceLock::new(),
    };
    matrix(x)?.apply_op3(
        &matrix(w)?,
        &b.contiguous()?,
        ProjectedAttention {
            att,
            p: OnceLock::new(),
        },
    )
}

struct ProjectedAttention {
    att: SelfAttention,
    /// The forward pass's projections `(B * F, 4A)`, for the backward pass.
    p: OnceLock<Vec<f32>>,
}

impl CustomOp3 for ProjectedAttention {
    fn name(&self) -> &'static str {
        "projected-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let (p, rows, out) = affine(self.name(), [(s1, l1), (s2, l2), (s3, l3)], false)?;
        let (b, sh) = self.att.shape(&Layout::contiguous((rows, out)))?;
        let (y, weights) = self.att.attend(&p, b, sh);
        // The first forward of this op instance: neither `set` can fail.
        let _ = self.att.weights.set(weights);
        let _ = self.p.set(p);
        Ok((CpuStorage::F32(y), Shape::from((rows, sh.att))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Res<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (rows, out) = (x.dim(0)?, w.dim(1)?);
        let (b, sh) = self.att.shape(&Layout::contiguous((rows, out)))?;
        let (Some(p), Some(weights)) = (self.p.get(), self.att.weights.get()) else {
            candle_core::bail!("projected-attention: backward before forward");
        };
        let gp = with_values(self.name(), &[res, grad_res], |v| {
            self.att.attend_grad(p, weights, v[0], v[1], b, sh)
        })?;
        affine_grads(x, w, &tensor(gp, &[rows, out])?)
    }
}

// ---------------------------------------------------------------------------------------------
// DCN's and DCNv2's cross layers

/// DCN's vector cross layer: `x0 * (x . w) + b + x` for `x0`, `x (N, D)` and `wb (2, D)`
/// holding `w` and `b` as rows. DCN runs the whole stack as [`cross_stack`]; this one layer is
/// the reference the stack is tested against, so it is built for tests only.
#[cfg(test)]
pub fn cross_vector(x0: &Tensor, x: &Tensor, wb: &Tensor) -> Res<Tensor> {
    x0.contiguous()?
        .apply_op3(&x.contiguous()?, &wb.contiguous()?, CrossVector)
}

#[cfg(test)]
struct CrossVector;

#[cfg(test)]
impl CrossVector {
    fn shapes(l1: &Layout, l2: &Layout, l3: &Layout) -> Res<(usize, usize)> {
        let [n, d] = dims("cross-vector", "x0", l1)?;
        if l2.dims() != [n, d] || l3.dims() != [2, d] {
            candle_core::bail!(
                "cross-vector: x0 {:?}, x {:?} and wb {:?} do not match",
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        }
        Ok((n, d))
    }
}

#[cfg(test)]
impl CustomOp3 for CrossVector {
    fn name(&self) -> &'static str {
        "cross-vector"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let (n, d) = Self::shapes(l1, l2, l3)?;
        let x0 = contiguous(self.name(), s1, l1)?;
        let x = contiguous(self.name(), s2, l2)?;
        let wb = contiguous(self.name(), s3, l3)?;
        let (w, b) = wb.split_at(d);
        let out = if d == 0 {
            Vec::new()
        } else {
            par_fill(n, d, |r0, out| {
                for r in r0..r0 + out.block.len() / d {
                    let (x0r, xr) = (&x0[r * d..(r + 1) * d], &x[r * d..(r + 1) * d]);
                    let s = dot(xr, w);
                    out.extend(
                        x0r.iter()
                            .zip(b)
                            .zip(xr)
                            .map(|((&u, &bv), &v)| u * s + bv + v),
                    );
                }
            })
        };
        Ok((CpuStorage::F32(out), Shape::from((n, d))))
    }

    fn bwd(
        &self,
        x0: &Tensor,
        x: &Tensor,
        wb: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Res<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, d) = Self::shapes(x0.layout(), x.layout(), wb.layout())?;
        let (gx0, gx, gwb) = with_values(self.name(), &[x0, x, wb, grad_res], |v| {
            let (x0, x, wb, g) = (v[0], v[1], v[2], v[3]);
            let w = &wb[..d];
            let mut gx0 = vec![0.0f32; n * d];
            let mut gx = vec![0.0f32; n * d];
            if d == 0 {
                return (gx0, gx, Vec::new());
            }
            // Per block: its rows of d x0 and d x, and its part of (d w, d b).
            let partials: Vec<Vec<f32>> = gx0
                .par_chunks_mut(ROWS_PER_TASK * d)
                .zip(gx.par_chunks_mut(ROWS_PER_TASK * d))
                .enumerate()
                .map(|(blk, (gx0_b, gx_b))| {
                    let mut gwb = vec![0.0f32; 2 * d];
                    let (gw, gb) = gwb.split_at_mut(d);
                    for (rr, (gx0r, gxr)) in gx0_b
                        .chunks_exact_mut(d)
                        .zip(gx_b.chunks_exact_mut(d))
                        .enumerate()
                    {
                        let r = blk * ROWS_PER_TASK + rr;
                        let (x0r, xr, gr) = (
                            &x0[r * d..(r + 1) * d],
                            &x[r * d..(r + 1) * d],
                            &g[r * d..(r + 1) * d],
                        );
                        let s = dot(xr, w);
                        let gs = dot(gr, x0r);
                        for (o, &gv) in gx0r.iter_mut().zip(gr) {
                            *o = gv * s;
                        }
                        for ((o, &gv), &wv) in gxr.iter_mut().zip(gr).zip(w) {
                            *o = gv + gs * wv;
                        }
                        axpy(gw, gs, xr);
                        axpy(gb, 1.0, gr);
                    }
                    gwb
                })
                .collect();
            (gx0, gx, sum_in_order(partials, 2 * d))
        })?;
        Ok((
            Some(tensor(gx0, &[n, d])?),
            Some(tensor(gx, &[n, d])?),
            Some(tensor(gwb, &[2, d])?),
        ))
    }
}

/// DCN's whole stack of vector cross layers in one op: `x_{l+1} = x0 * (x_l . w_l) + b_l + x_l`
/// from `x_0 = x0 (N, D)`, with `wbs (2L, D)` holding `w_0, b_0, w_1, b_1, ...` as rows; the
/// output is `x_L`. Each row's values are those of the layers one by one (`cross_vector`, in
/// tests), bit for bit. What the stack saves
/// is memory traffic on the way back: layer by layer, every layer writes two `(N, D)` gradients
/// and candle adds each gradient of `x0` into a running sum (a fresh tensor per add); here the
/// backward pass recomputes each row's `x_l` in a scratch row (a few dot products) and writes
/// one gradient of `x0`, summed across the layers inside the row.
pub fn cross_stack(x0: &Tensor, wbs: &Tensor) -> Res<Tensor> {
    x0.contiguous()?.apply_op2(&wbs.contiguous()?, CrossStack)
}

struct CrossStack;

impl CrossStack {
    /// `(n, d, layers)`.
    fn shapes(l1: &Layout, l2: &Layout) -> Res<(usize, usize, usize)> {
        let [n, d] = dims("cross-stack", "x0", l1)?;
        let [rows, dw] = dims("cross-stack", "wbs", l2)?;
        if dw != d || rows % 2 != 0 {
            candle_core::bail!(
                "cross-stack: x0 {:?} and wbs {:?} do not match (wbs is (2 * layers, D))",
                l1.dims(),
                l2.dims()
            );
        }
        Ok((n, d, rows / 2))
    }

    /// Row `x0r` through the stack: `s` gets the layers' dot products, `out` the output `x_L`
    /// and `xs`, when the backward pass asks for it, `x_0 .. x_{L-1}` (`L * d` values).
    fn row(x0r: &[f32], wbs: &[f32], mut xs: Option<&mut [f32]>, s: &mut [f32], out: &mut [f32]) {
        let d = x0r.len();
        out.copy_from_slice(x0r);
        for (l, sl) in s.iter_mut().enumerate() {
            let (w, b) = (
                &wbs[2 * l * d..(2 * l + 1) * d],
                &wbs[(2 * l + 1) * d..(2 * l + 2) * d],
            );
            if let Some(xs) = xs.as_deref_mut() {
                xs[l * d..(l + 1) * d].copy_from_slice(out);
            }
            let sv = dot(out, w);
            *sl = sv;
            for ((o, &u), &bv) in out.iter_mut().zip(x0r).zip(b) {
                // `x_l + (x0 * s + b)`: cross_vector's `x0 * s + b + x_l`, the same bits
                // (one addition, commuted).
                *o += u * sv + bv;
            }
        }
    }
}

impl CustomOp2 for CrossStack {
    fn name(&self) -> &'static str {
        "cross-stack"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let (n, d, layers) = Self::shapes(l1, l2)?;
        let x0 = contiguous(self.name(), s1, l1)?;
        let wbs = contiguous(self.name(), s2, l2)?;
        let out = if d == 0 {
            Vec::new()
        } else {
            par_fill(n, d, |r0, out| {
                let (mut s, mut row) = (vec![0.0f32; layers], vec![0.0f32; d]);
                for r in r0..r0 + out.block.len() / d {
                    Self::row(&x0[r * d..(r + 1) * d], wbs, None, &mut s, &mut row);
                    out.extend(row.iter().copied());
                }
            })
        };
        Ok((CpuStorage::F32(out), Shape::from((n, d))))
    }

    fn bwd(
        &self,
        x0: &Tensor,
        wbs: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Res<(Option<Tensor>, Option<Tensor>)> {
        let (n, d, layers) = Self::shapes(x0.layout(), wbs.layout())?;
        let (gx0, gwbs) = with_values(self.name(), &[x0, wbs, grad_res], |v| {
            let (x0, wbs, g) = (v[0], v[1], v[2]);
            let mut gx0 = vec![0.0f32; n * d];
            if d == 0 {
                return (gx0, Vec::new());
            }
            // Per block: its rows of d x0, and its part of every layer's (d w, d b).
            let partials: Vec<Vec<f32>> = gx0
                .par_chunks_mut(ROWS_PER_TASK * d)
                .enumerate()
                .map(|(blk, gx0_b)| {
                    let mut gwbs = vec![0.0f32; 2 * layers * d];
                    let (mut xs, mut s, mut top) = (
                        vec![0.0f32; layers * d],
                        vec![0.0f32; layers],
                        vec![0.0f32; d],
                    );
                    let mut gcur = vec![0.0f32; d];
                    for (rr, gx0r) in gx0_b.chunks_exact_mut(d).enumerate() {
                        let r = blk * ROWS_PER_TASK + rr;
                        let x0r = &x0[r * d..(r + 1) * d];
                        Self::row(x0r, wbs, Some(&mut xs), &mut s, &mut top);
                        gcur.copy_from_slice(&g[r * d..(r + 1) * d]);
                        // gx0r sums x0's gradient from every layer's `x0 * s` term; `gcur` is
                        // the gradient of x_l, which becomes x0's own at l = 0.
                        for l in (0..layers).rev() {
                            let w = &wbs[2 * l * d..(2 * l + 1) * d];
                            let xl = &xs[l * d..(l + 1) * d];
                            let gs = dot(&gcur, x0r);
                            axpy(gx0r, s[l], &gcur);
                            let (gw, gb) = gwbs[2 * l * d..(2 * l + 2) * d].split_at_mut(d);
                            axpy(gw, gs, xl);
                            axpy(gb, 1.0, &gcur);
                            axpy(&mut gcur, gs, w);
                        }
                        axpy(gx0r, 1.0, &gcur);
                    }
                    gwbs
                })
                .collect();
            (gx0, sum_in_order(partials, 2 * layers * d))
        })?;
        Ok((
            Some(tensor(gx0, &[n, d])?),
            Some(tensor(gwbs, &[2 * layers, d])?),
        ))
    }
}

/// DCNv2's cross update after the layer's linear map `u = x W + b`: `x0 * u + x`, all `(N, D)`.
pub fn cross_mix(x0: &Tensor, u: &Tensor, x: &Tensor) -> Res<Tensor> {
    x0.contiguous()?
        .apply_op3(&u.contiguous()?, &x.contiguous()?, CrossMix)
}

/// The element-wise product of two equally shaped contiguous tensors, in parallel.
fn product_of(a: &[f32], b: &[f32], width: usize) -> Vec<f32> {
    if width == 0 {
        return Vec::new();
    }
    par_fill(a.len() / width, width, |r0, out| {
        let span = r0 * width..r0 * width + out.block.len();
        out.extend(a[span.clone()].iter().zip(&b[span]).map(|(&u, &v)| u * v));
    })
}

struct CrossMix;

impl CustomOp3 for CrossMix {
    fn name(&self) -> &'static str {
        "cross-mix"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let [n, d] = dims(self.name(), "x0", l1)?;
        if l2.dims() != [n, d] || l3.dims() != [n, d] {
            candle_core::bail!(
                "cross-mix: x0 {:?}, u {:?} and x {:?} differ",
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        }
        let x0 = contiguous(self.name(), s1, l1)?;
        let u = contiguous(self.name(), s2, l2)?;
        let x = contiguous(self.name(), s3, l3)?;
        let out = if d == 0 {
            Vec::new()
        } else {
            par_fill(n, d, |r0, out| {
                let span = r0 * d..r0 * d + out.block.len();
                out.extend(
                    x0[span.clone()]
                        .iter()
                        .zip(&u[span.clone()])
                        .zip(&x[span])
                        .map(|((&a, &b), &c)| a * b + c),
                );
            })
        };
        Ok((CpuStorage::F32(out), Shape::from((n, d))))
    }

    fn bwd(
        &self,
        x0: &Tensor,
        u: &Tensor,
        _x: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Res<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, d) = x0.dims2()?;
        let (gx0, gu) = with_values(self.name(), &[x0, u, grad_res], |v| {
            let (x0, u, g) = (v[0], v[1], v[2]);
            (product_of(g, u, d), product_of(g, x0, d))
        })?;
        Ok((
            Some(tensor(gx0, &[n, d])?),
            Some(tensor(gu, &[n, d])?),
            Some(grad_res.clone()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var, D};

    use super::*;
    use crate::model::fused::outer_rows;
    use crate::model::in_pool;
    use crate::model::matmul::matmul;

    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 + salt) % 23) as f32 / 10.0 - 1.1)
            .collect()
    }

    fn var(shape: &[usize], salt: usize) -> Var {
        let n = shape.iter().product();
        Var::from_vec(values(n, salt), shape, &Device::Cpu).unwrap()
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    fn assert_close(a: &[f32], e: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), e.len(), "{what}");
        for (i, (a, e)) in a.iter().zip(e).enumerate() {
            assert!(
                (a - e).abs() <= tol * (1.0 + e.abs()),
                "{what}[{i}]: {a} vs {e}"
            );
        }
    }

    /// The output and the gradients of `sum(y * mix)` (every output weighted differently, so a
    /// wrong element of a gradient shows) with respect to `vars`.
    fn run(y: Tensor, vars: &[&Var]) -> (Vec<f32>, Vec<Vec<f32>>) {
        let mix = Tensor::from_vec(values(y.elem_count(), 99), y.shape(), &Device::Cpu).unwrap();
        let g = (&y * mix).unwrap().sum_all().unwrap().backward().unwrap();
        let grads = vars
            .iter()
            .map(|v| flat(g.get(v.as_tensor()).expect("a gradient")))
            .collect();
        (flat(&y), grads)
    }

    /// The fused op gives the generic composition's values and gradients, and the same bits on
    /// one thread as on three.
    fn check(
        fused: impl Fn() -> Tensor + Sync,
        plain: impl Fn() -> Tensor,
        vars: &[&Var],
        tol: f32,
    ) {
        let ours = run(fused(), vars);
        let theirs = run(plain(), vars);
        assert_close(&ours.0, &theirs.0, tol, "value");
        for (i, (a, e)) in ours.1.iter().zip(&theirs.1).enumerate() {
            assert_close(a, e, tol, &format!("gradient {i}"));
        }
        let one = in_pool(1, || run(fused(), vars));
        let three = in_pool(3, || run(fused(), vars));
        assert_eq!(one, three, "thread count changed the bits");
    }

    #[test]
    fn cin_layer_matches_the_outer_product_times_the_filters() {
        // More rows than one backward chunk, so the weight gradient is a sum of partials.
        let (n, h, f, hn) = (2 * CIN_CHUNK + 5, 3, 4, 5);
        let (xk, x0, w) = (var(&[n, h], 1), var(&[n, f], 2), var(&[h * f, hn], 3));
        let vars = [&xk, &x0, &w];
        let fused = || cin_layer(xk.as_tensor(), x0.as_tensor(), w.as_tensor()).unwrap();
        let via_outer = || {
            let z = outer_rows(xk.as_tensor(), x0.as_tensor()).unwrap();
            matmul(&z, w.as_tensor()).unwrap()
        };
        let broadcast = || {
            let z = xk
                .as_tensor()
                .unsqueeze(2)
                .unwrap()
                .broadcast_mul(&x0.as_tensor().unsqueeze(1).unwrap())
                .unwrap()
                .reshape((n, h * f))
                .unwrap();
            z.matmul(w.as_tensor()).unwrap()
        };
        check(fused, via_outer, &vars, 1e-4);
        check(fused, broadcast, &vars, 1e-4);
        // By hand: xk = [1, 2], x0 = [3], w = [[1], [10]]: 1*3*1 + 2*3*10 = 63.
        let dev = Device::Cpu;
        let t = |v: Vec<f32>, s: &[usize]| Tensor::from_vec(v, s, &dev).unwrap();
        let y = cin_layer(
            &t(vec![1., 2.], &[1, 2]),
            &t(vec![3.], &[1, 1]),
            &t(vec![1., 10.], &[2, 1]),
        );
        assert_eq!(flat(&y.unwrap()), vec![63.0]);
    }

    #[test]
    fn bilinear_pairs_match_the_gathered_products() {
        let (b, f, d) = (ROWS_PER_TASK + 9, 4, 3);
        let (x, w) = (var(&[b, f, d], 4), var(&[d, d], 5));
        let (mut left, mut right) = (vec![], vec![]);
        for i in 0..f as u32 {
            for j in i + 1..f as u32 {
                left.push(i);
                right.push(j);
            }
        }
        let p = left.len();
        let left = Tensor::from_vec(left, p, &Device::Cpu).unwrap();
        let right = Tensor::from_vec(right, p, &Device::Cpu).unwrap();
        let plain = || {
            let t = x.as_tensor();
            let xw = t
                .reshape((b * f, d))
                .unwrap()
                .matmul(w.as_tensor())
                .unwrap()
                .reshape((b, f, d))
                .unwrap();
            let prod =
                (xw.index_select(&left, 1).unwrap() * t.index_select(&right, 1).unwrap()).unwrap();
            prod.flatten_from(1).unwrap()
        };
        let fused = || bilinear_pairs(x.as_tensor(), w.as_tensor()).unwrap();
        check(fused, plain, &[&x, &w], 1e-5);
        // By hand: fields (1, 0) and (2, 3), w = [[0, 1], [1, 0]] swaps: (0, 1) * (2, 3).
        let dev = Device::Cpu;
        let xs = Tensor::from_vec(vec![1f32, 0., 2., 3.], (1, 2, 2), &dev).unwrap();
        let sw = Tensor::from_vec(vec![0f32, 1., 1., 0.], (2, 2), &dev).unwrap();
        assert_eq!(flat(&bilinear_pairs(&xs, &sw).unwrap()), vec![0.0, 3.0]);
    }

    #[test]
    fn scale_fields_matches_the_broadcast_product() {
        let (b, f, d) = (ROWS_PER_TASK + 3, 5, 4);
        let (x, a) = (var(&[b, f, d], 6), var(&[b, f], 7));
        let fused = || scale_fields(x.as_tensor(), a.as_tensor()).unwrap();
        let plain = || {
            x.as_tensor()
                .broadcast_mul(&a.as_tensor().unsqueeze(2).unwrap())
                .unwrap()
        };
        check(fused, plain, &[&x, &a], 1e-5);
    }

    /// The fused layer on a `(B, F, 4A)` tensor, its result as `(B, F, A)`.
    fn attention_fused(p: &Tensor, heads: usize) -> Tensor {
        let (b, f, a4) = p.dims3().unwrap();
        let y = self_attention(&p.reshape((b * f, a4)).unwrap(), f, heads).unwrap();
        y.reshape((b, f, a4 / 4)).unwrap()
    }

    /// AutoInt's layer as the architecture wrote it with candle's generic ops.
    fn attention_plain(p: &Tensor, heads: usize) -> Tensor {
        let (b, f, a4) = p.dims3().unwrap();
        let att = a4 / 4;
        let part = |i: usize| p.narrow(2, i * att, att).unwrap();
        let split = |t: Tensor| {
            t.reshape((b, f, heads, att / heads))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (split(part(0)), split(part(1)), split(part(2)));
        let scale = 1.0 / ((att / heads) as f64).sqrt();
        let scores = (q
            .matmul(&k.transpose(2, 3).unwrap().contiguous().unwrap())
            .unwrap()
            * scale)
            .unwrap();
        let w = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
        let o = w.matmul(&v).unwrap();
        let o = o
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((b, f, att))
            .unwrap();
        (o + part(3)).unwrap().relu().unwrap()
    }

    #[test]
    fn self_attention_matches_the_generic_layer() {
        let (b, f, att, heads) = (ROWS_PER_TASK + 5, 5, 6, 2);
        let p = var(&[b, f, 4 * att], 8);
        let fused = || attention_fused(p.as_tensor(), heads);
        let plain = || attention_plain(p.as_tensor(), heads);
        check(fused, plain, &[&p], 1e-5);
        // By hand: one field attends only to itself, so the layer is relu(v + r).
        let one = Tensor::from_vec(vec![9f32, -9., 1., -3.], (1, 4), &Device::Cpu).unwrap();
        assert_eq!(flat(&self_attention(&one, 1, 1).unwrap()), vec![0.0]);
        let one = Tensor::from_vec(vec![9f32, -9., 1., 3.], (1, 4), &Device::Cpu).unwrap();
        assert_eq!(flat(&self_attention(&one, 1, 1).unwrap()), vec![4.0]);
    }

    #[test]
    fn self_attention_matches_the_generic_layer_at_the_default_sizes() {
        // AutoInt's default head size (16) and 26 fields: whole register tiles and masked ends.
        let (b, f, att, heads) = (ROWS_PER_TASK + 5, 26, 32, 2);
        let p = var(&[b, f, 4 * att], 16);
        let fused = || attention_fused(p.as_tensor(), heads);
        let plain = || attention_plain(p.as_tensor(), heads);
        check(fused, plain, &[&p], 1e-5);
    }

    #[test]
    fn projected_attention_is_the_projection_then_the_attention() {
        let (b, f, inp, att, heads) = (ROWS_PER_TASK + 5, 26, 16, 32, 2);
        let x = var(&[b * f, inp], 17);
        let scaled: Vec<f32> = values(inp * 4 * att, 18).iter().map(|v| v * 0.1).collect();
        let w = Var::from_vec(scaled, (inp, 4 * att), &Device::Cpu).unwrap();
        let bias = var(&[4 * att], 19);
        let vars = [&x, &w, &bias];
        let (xt, wt, bt) = (x.as_tensor(), w.as_tensor(), bias.as_tensor());
        let fused = || projected_attention(xt, wt, bt, f, heads).unwrap();
        let two_ops = || {
            let p = crate::model::fused::linear(xt, wt, bt).unwrap();
            self_attention(&p, f, heads).unwrap()
        };
        // The same products in the same order: the same bits.
        assert_eq!(run(fused(), &vars), run(two_ops(), &vars));
        let plain = || {
            let p = xt.matmul(wt).unwrap().broadcast_add(bt).unwrap();
            let y = attention_plain(&p.reshape((b, f, 4 * att)).unwrap(), heads);
            y.reshape((b * f, att)).unwrap()
        };
        check(fused, plain, &vars, 1e-4);
    }

    #[test]
    fn cross_vector_matches_the_broadcast_layer() {
        let (n, d) = (2 * ROWS_PER_TASK + 3, 7);
        let (x0, x, wb) = (var(&[n, d], 9), var(&[n, d], 10), var(&[2, d], 11));
        let fused = || cross_vector(x0.as_tensor(), x.as_tensor(), wb.as_tensor()).unwrap();
        let plain = || {
            let w = wb.as_tensor().get(0).unwrap().reshape((d, 1)).unwrap();
            let b = wb.as_tensor().get(1).unwrap();
            let s = x.as_tensor().matmul(&w).unwrap();
            let y = x0.as_tensor().broadcast_mul(&s).unwrap();
            (y.broadcast_add(&b).unwrap() + x.as_tensor()).unwrap()
        };
        check(fused, plain, &[&x0, &x, &wb], 1e-5);
        // By hand: x0 = (1, 2), x = (3, 4), w = (1, 0), b = (0.5, 0.5): s = 3.
        let t = |v: Vec<f32>, s: (usize, usize)| Tensor::from_vec(v, s, &Device::Cpu).unwrap();
        let y = cross_vector(
            &t(vec![1., 2.], (1, 2)),
            &t(vec![3., 4.], (1, 2)),
            &t(vec![1., 0., 0.5, 0.5], (2, 2)),
        );
        assert_eq!(flat(&y.unwrap()), vec![6.5, 10.5]);
    }

    /// The stack gives the layers one by one: the same values bit for bit, the same gradients
    /// up to the order of the sums.
    #[test]
    fn cross_stack_matches_the_layers_one_by_one() {
        let (n, d, layers) = (2 * ROWS_PER_TASK + 3, 7, 3);
        let x0 = var(&[n, d], 16);
        let wbs = var(&[2 * layers, d], 17);
        let fused = || cross_stack(x0.as_tensor(), wbs.as_tensor()).unwrap();
        let by_layer = || {
            let mut x = x0.as_tensor().clone();
            for l in 0..layers {
                let wb = wbs.as_tensor().narrow(0, 2 * l, 2).unwrap();
                x = cross_vector(x0.as_tensor(), &x, &wb).unwrap();
            }
            x
        };
        check(fused, by_layer, &[&x0, &wbs], 1e-5);
        assert_eq!(flat(&fused()), flat(&by_layer()), "forward bit for bit");
        // By hand, two layers: x0 = (1, 2); w0 = (1, 0), b0 = (0, 0): s0 = 1, x1 = (2, 4);
        // w1 = (0, 1), b1 = (1, 1): s1 = 4, x2 = (1*4 + 1 + 2, 2*4 + 1 + 4) = (7, 13).
        let t = |v: Vec<f32>, s: (usize, usize)| Tensor::from_vec(v, s, &Device::Cpu).unwrap();
        let y = cross_stack(
            &t(vec![1., 2.], (1, 2)),
            &t(vec![1., 0., 0., 0., 0., 1., 1., 1.], (4, 2)),
        );
        assert_eq!(flat(&y.unwrap()), vec![7.0, 13.0]);
        // No layer: the input itself.
        let y = cross_stack(
            &t(vec![1., 2.], (1, 2)),
            &Tensor::zeros((0, 2), candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        assert_eq!(flat(&y.unwrap()), vec![1.0, 2.0]);
    }

    #[test]
    fn cross_mix_and_linear_match_the_generic_layer() {
        let (n, d) = (2 * ROWS_PER_TASK + 3, 6);
        let (x0, x) = (var(&[n, d], 12), var(&[n, d], 13));
        let (w, b) = (var(&[d, d], 14), var(&[d], 15));
        let vars = [&x0, &x, &w, &b];
        let fused = || {
            let u =
                crate::model::fused::linear(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
            cross_mix(x0.as_tensor(), &u, x.as_tensor()).unwrap()
        };
        let plain = || {
            let u = x
                .as_tensor()
                .matmul(w.as_tensor())
                .unwrap()
                .broadcast_add(b.as_tensor())
                .unwrap();
            ((x0.as_tensor() * u).unwrap() + x.as_tensor()).unwrap()
        };
        check(fused, plain, &vars, 1e-5);
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let z = |s: &[usize]| Tensor::zeros(s, candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(cin_layer(&z(&[4, 2]), &z(&[4, 3]), &z(&[5, 2])).is_err());
        assert!(cin_layer(&z(&[4, 2]), &z(&[3, 3]), &z(&[6, 2])).is_err());
        assert!(bilinear_pairs(&z(&[2, 3, 4]), &z(&[3, 3])).is_err());
        assert!(scale_fields(&z(&[2, 3, 4]), &z(&[2, 4])).is_err());
        assert!(self_attention(&z(&[6, 10]), 3, 1).is_err());
        assert!(self_attention(&z(&[6, 12]), 3, 2).is_err());
        assert!(self_attention(&z(&[7, 8]), 3, 1).is_err());
        assert!(self_attention(&z(&[6, 8]), 0, 1).is_err());
        assert!(cross_vector(&z(&[2, 3]), &z(&[2, 3]), &z(&[1, 3])).is_err());
        assert!(cross_stack(&z(&[2, 3]), &z(&[3, 3])).is_err());
        assert!(cross_stack(&z(&[2, 3]), &z(&[2, 4])).is_err());
        assert!(cross_mix(&z(&[2, 3]), &z(&[2, 4]), &z(&[2, 3])).is_err());
    }
}
