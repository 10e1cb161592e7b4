//! `relu(z + b)` as one candle op: one pass forward, and backward one masking pass plus the bias
//! sum, instead of a broadcast add and a ReLU that cost six passes over the activations between
//! them (allocation, add, compare, cast, multiply, sum). The MLP towers use it for every layer.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

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
        let gb = gz.sum(0)?;
        Ok((Some(gz), Some(gb)))
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

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::bias_relu;

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

    #[test]
    fn mismatched_shapes_are_an_error() {
        let dev = Device::Cpu;
        let z = Tensor::zeros((3, 4), candle_core::DType::F32, &dev).unwrap();
        let b = Tensor::zeros(5, candle_core::DType::F32, &dev).unwrap();
        assert!(bias_relu(&z, &b).is_err());
    }
}
