//! FiBiNET (Huang et al. 2019): SENET re-weighting of the fields, bilinear ("field-all")
//! interactions of the original and re-weighted embeddings, a deep tower on top, plus a linear
//! term.

use anyhow::Result;
use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

use super::core_access;
use crate::model::blocks::{flatten, Linear, Logit, Mlp};
use crate::model::{CtrModel, ModelCore};

pub struct FiBiNet {
    core: ModelCore,
    first: Logit,
    squeeze: Linear,
    excite: Linear,
    /// `(d, d)` bilinear weights for the original and the SENET embeddings.
    bilinear: [Tensor; 2],
    /// Left and right field of every pair `i < j`.
    left: Tensor,
    right: Tensor,
    mlp: Mlp,
    out: Logit,
}

impl FiBiNet {
    pub fn new(mut core: ModelCore, rng: &mut ChaCha8Rng) -> Result<Self> {
        let fields = core.num_fields();
        let d = core.spec.emb_dim;
        let reduced = (fields / core.spec.reduction.max(1)).max(1);
        let hidden = core.spec.hidden.clone();
        let ps = &mut core.params;
        let first = Logit::new(ps, rng, "first_order", fields * d)?;
        let squeeze = Linear::new(ps, rng, "senet.squeeze", fields, reduced)?;
        let excite = Linear::new(ps, rng, "senet.excite", reduced, fields)?;
        let bilinear = [
            ps.glorot(rng, "bilinear.emb", &[d, d])?,
            ps.glorot(rng, "bilinear.senet", &[d, d])?,
        ];
        let (mut l, mut r) = (Vec::new(), Vec::new());
        for i in 0..fields {
            for j in i + 1..fields {
                l.push(i as u32);
                r.push(j as u32);
            }
        }
        let pairs = l.len();
        let left = Tensor::from_vec(l, pairs, &Device::Cpu)?;
        let right = Tensor::from_vec(r, pairs, &Device::Cpu)?;
        let mlp = Mlp::new(ps, rng, "deep", 2 * pairs * d, &hidden)?;
        let out = Logit::new(ps, rng, "deep_out", mlp.out_dim())?;
        Ok(FiBiNet {
            core,
            first,
            squeeze,
            excite,
            bilinear,
            left,
            right,
            mlp,
            out,
        })
    }

    /// `(v_i W) * v_j` for every pair, flattened: `(B, pairs * d)`.
    fn pairs(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let (b, f, d) = x.dims3()?;
        let xw = x.reshape((b * f, d))?.matmul(w)?.reshape((b, f, d))?;
        let p = (xw.index_select(&self.left, 1)? * x.index_select(&self.right, 1)?)?;
        Ok(flatten(&p)?)
    }
}

impl CtrModel for FiBiNet {
    core_access!();

    fn interact(&self, fields: &Tensor) -> Result<Tensor> {
        let z = fields.mean(2)?; // (B, F)
        let a = self
            .excite
            .forward(&self.squeeze.forward(&z)?.relu()?)?
            .relu()?;
        let v = fields.broadcast_mul(&a.unsqueeze(2)?)?;
        let p = self.pairs(fields, &self.bilinear[0])?;
        let q = self.pairs(&v, &self.bilinear[1])?;
        let deep = self
            .out
            .forward(&self.mlp.forward(&Tensor::cat(&[p, q], 1)?)?)?;
        Ok((self.first.forward(&flatten(fields)?)? + deep)?)
    }
}
