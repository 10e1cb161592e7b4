//! Hand-written candle ops for the hot element-wise parts of a training step, each one pass over
//! contiguous memory where candle's generic ops take several (and reduce over a middle axis with
//! strided loops):
//! - `relu(z + b)`: one pass forward; backward one masking pass and one row-wise bias sum,
//!   instead of a broadcast add and a ReLU that cost six passes between them (allocation, add,
//!   compare, cast, multiply, sum) plus candle's `sum(0)`. The MLP towers use it for every layer.
//! - the factorisation machine's pairwise term: one pass forward and one backward, instead of
//!   two reductions over the field axis, squares, a difference and their five backward passes.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

/// `relu(z + b)` for `z` of shape `(rows, h)` and `b` of shape `(h,)`, with its gradient.
pub fn bias_relu(z: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    z.contiguous()?.apply_op2(&b.contiguous()?, BiasRelu)
}

/// The f32 slice a contiguous layout covers.
fn contiguous<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{op}: only f32 tensors are supported");
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("{op}: the input must be contiguous"),
    }
}

struct BiasRelu;

impl CustomOp2 for BiasRelu {
    fn name(&self) -> &'static str {
        "bias-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let z = contiguous(self.name(), s1, l1)?;
        let b = contiguous(self.name(), s2, l2)?;
        let h = b.len();
        if l1.dims().len() != 2 || l1.dims()[1] != h || l2.dims().len() != 1 {
            candle_core::bail!(
                "bias-relu: z {:?} and b {:?} do not match",
                l1.dims(),
                l2.dims()
            );
        }
        // Filled by `extend`, not zero-initialised: a zeroed allocation of this size comes
        // fresh from the OS (page faults), while this one reuses the allocator's memory.
        let mut out = Vec::with_capacity(z.len());
        for row in z.chunks(h.max(1)) {
            out.extend(row.iter().zip(b).map(|(&z, &b)| (z + b).max(0.0)));
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _z: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let gz = grad_res.contiguous()?.apply_op2_no_bwd(res, &ReluMask)?;
        let gb = gz.apply_op1_no_bwd(&ColumnSum)?;
        Ok((Some(gz), Some(gb)))
    }
}

/// The column sums of a contiguous `(rows, h)` matrix: `(h,)`. Adds row after row into one
/// accumulator, a contiguous (vectorised) pass, where candle's `sum(0)` walks each column with
/// a stride of `h`.
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
        let mut acc = vec![0.0f32; h];
        for row in x.chunks_exact(h.max(1)) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
        Ok((CpuStorage::F32(acc), Shape::from(h)))
    }
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
        let mut out = Vec::with_capacity(g.len());
        out.extend(
            g.iter()
                .zip(y)
                .map(|(&g, &y)| if y > 0.0 { g } else { 0.0 }),
        );
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
        let mut out = Vec::with_capacity(b);
        let mut s = vec![0.0f32; d];
        if f * d > 0 {
            for row in x.chunks_exact(f * d) {
                field_sum(row, d, &mut s);
                let square_of_sum: f32 = s.iter().map(|v| v * v).sum();
                let sum_of_squares: f32 = row.iter().map(|v| v * v).sum();
                out.push(0.5 * (square_of_sum - sum_of_squares));
            }
        } else {
            out.resize(b, 0.0);
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
        let mut out = Vec::with_capacity(x.len());
        let mut s = vec![0.0f32; d];
        if f * d > 0 {
            for (row, &gb) in x.chunks_exact(f * d).zip(g) {
                field_sum(row, d, &mut s);
                for field in row.chunks_exact(d) {
                    out.extend(field.iter().zip(&s).map(|(&v, &sk)| gb * (sk - v)));
                }
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var, D};

    use super::{bias_relu, fm_pairwise};

    /// Values and gradients equal the unfused `relu(z + b)` (away from the kink at 0).
    #[test]
    fn matches_the_unfused_op_forward_and_backward() {
        let dev = Device::Cpu;
        let zv: Vec<f32> = (0..24)
            .map(|i| ((i * 37 % 19) as f32 - 9.3) / 4.0)
            .collect();
        let z = Var::from_vec(zv, (6, 4), &dev).unwrap();
        let b = Var::from_vec(vec![0.5f32, -1.25, 0.0, 2.0], 4, &dev).unwrap();
        let w = Tensor::from_vec(
            (0..24).map(|i| i as f32 * 0.1 - 1.0).collect::<Vec<_>>(),
            (6, 4),
            &dev,
        )
        .unwrap();

        let fused = bias_relu(z.as_tensor(), b.as_tensor()).unwrap();
        let plain = z
            .as_tensor()
            .broadcast_add(b.as_tensor())
            .unwrap()
            .relu()
            .unwrap();
        assert_eq!(
            fused.to_vec2::<f32>().unwrap(),
            plain.to_vec2::<f32>().unwrap()
        );

        let gf = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (plain * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&z, &b] {
            let a = gf
                .get(v)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let e = gp
                .get(v)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (a, e) in a.iter().zip(&e) {
                assert!((a - e).abs() < 1e-6, "{a} vs {e}");
            }
        }
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

        let xv: Vec<f32> = (0..60)
            .map(|i| ((i * 23 % 17) as f32 - 8.0) / 5.0)
            .collect();
        let x = Var::from_vec(xv, (4, 5, 3), &dev).unwrap();
        let w = Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 0.25], 4, &dev).unwrap();
        let fused = fm_pairwise(x.as_tensor()).unwrap();
        let t = x.as_tensor();
        let sum = t.sum(1).unwrap();
        let plain = ((sum.sqr().unwrap() - t.sqr().unwrap().sum(1).unwrap())
            .unwrap()
            .sum(D::Minus1)
            .unwrap()
            * 0.5)
            .unwrap();
        for (a, e) in fused
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .zip(&plain.to_vec1::<f32>().unwrap())
        {
            assert!((a - e).abs() < 1e-5, "{a} vs {e}");
        }
        let gf = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gp = (plain * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |g: &candle_core::backprop::GradStore| {
            g.get(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        for (a, e) in flat(&gf).iter().zip(&flat(&gp)) {
            assert!((a - e).abs() < 1e-5, "{a} vs {e}");
        }
        assert!(
            fm_pairwise(&Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap()).is_err()
        );
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let dev = Device::Cpu;
        let z = Tensor::zeros((3, 4), candle_core::DType::F32, &dev).unwrap();
        let b = Tensor::zeros(5, candle_core::DType::F32, &dev).unwrap();
        assert!(bias_relu(&z, &b).is_err());
    }
}
