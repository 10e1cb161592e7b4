//! FiBiNET (Huang et al. 2019): SENET re-weighting of the fields, bilinear ("field-all")
//! interactions of the original and re-weighted embeddings, a deep tower on top, plus a linear
//! term.

use anyhow::Result;
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

use super::core_access;
use crate::model::blocks::{flatten, Linear, Logit, Mlp};
use crate::model::interact::{bilinear_pairs, scale_fields};
use crate::model::{CtrModel, ModelCore};

pub struct FiBiNet {
    core: ModelCore,
    first: Logit,
    squeeze: Linear,
    excite: Linear,
    /// `(d, d)` bilinear weights for the original and the SENET embeddings.
    bilinear: [Tensor; 2],
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
        let pairs = fields * fields.saturating_sub(1) / 2;
        let mlp = Mlp::new(ps, rng, "deep", 2 * pairs * d, &hidden)?;
        let out = Logit::new(ps, rng, "deep_out", mlp.out_dim())?;
        Ok(FiBiNet {
            core,
            first,
            squeeze,
            excite,
            bilinear,
            mlp,
            out,
        })
    }
}

impl CtrModel for FiBiNet {
    core_access!();

    fn interact(&self, fields: &Tensor) -> Result<Tensor> {
        let z = fields.mean(2)?; // (B, F)
        let a = self.excite.forward_relu(&self.squeeze.forward_relu(&z)?)?;
        // SENET scaling and the pairs `(v_i W) * v_j` (`i < j`, flattened), one op each
        // (`interact.rs`).
        let v = scale_fields(fields, &a)?;
        let p = bilinear_pairs(fields, &self.bilinear[0])?;
        let q = bilinear_pairs(&v, &self.bilinear[1])?;
        let deep = self
            .out
            .forward(&self.mlp.forward(&Tensor::cat(&[p, q], 1)?)?)?;
        Ok((self.first.forward(&flatten(fields)?)? + deep)?)
    }
}
