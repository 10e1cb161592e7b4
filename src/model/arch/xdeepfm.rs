//! xDeepFM (Lian et al. 2018): a Compressed Interaction Network next to a linear term and a
//! deep tower. CIN states are kept as `(B * d, H)` so each layer is one op: the row-wise outer
//! product with `x0` times the layer's filters (`interact.rs`).

use anyhow::Result;
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

use super::core_access;
use crate::model::blocks::{flatten, Logit, Mlp};
use crate::model::interact::cin_layer;
use crate::model::{CtrModel, ModelCore};

pub struct XDeepFm {
    core: ModelCore,
    first: Logit,
    /// Per CIN layer: `(H_{k-1} * F, H_k)` filters.
    cin: Vec<Tensor>,
    cin_out: Logit,
    mlp: Mlp,
    deep_out: Logit,
}

impl XDeepFm {
    pub fn new(mut core: ModelCore, rng: &mut ChaCha8Rng) -> Result<Self> {
        let fields = core.num_fields();
        let flat = fields * core.spec.emb_dim;
        let (sizes, hidden) = (core.spec.cin.clone(), core.spec.hidden.clone());
        let ps = &mut core.params;
        let first = Logit::new(ps, rng, "first_order", flat)?;
        let mut cin = Vec::with_capacity(sizes.len());
        let mut prev = fields;
        for (i, &h) in sizes.iter().enumerate() {
            cin.push(ps.glorot(rng, &format!("cin.{i}"), &[prev * fields, h])?);
            prev = h;
        }
        let cin_out = Logit::new(ps, rng, "cin_out", sizes.iter().sum())?;
        let mlp = Mlp::new(ps, rng, "deep", flat, &hidden)?;
        let deep_out = Logit::new(ps, rng, "deep_out", mlp.out_dim().max(1))?;
        Ok(XDeepFm {
            core,
            first,
            cin,
            cin_out,
            mlp,
            deep_out,
        })
    }
}

impl CtrModel for XDeepFm {
    core_access!();

    fn interact(&self, fields: &Tensor) -> Result<Tensor> {
        let (b, f, d) = fields.dims3()?;
        // Rows are (sample, embedding coordinate): x0 is (B * d, F), each layer's state
        // (B * d, H), and z_k their row-wise outer product (B * d, H * F).
        let x0 = fields.transpose(1, 2)?.contiguous()?.reshape((b * d, f))?;
        let mut xk = x0.clone();
        let mut pooled = Vec::with_capacity(self.cin.len());
        for w in &self.cin {
            xk = cin_layer(&xk, &x0, w)?;
            pooled.push(xk.reshape((b, d, w.dim(1)?))?.sum(1)?);
        }
        let refs: Vec<&Tensor> = pooled.iter().collect();
        let cin = self.cin_out.forward(&Tensor::cat(&refs, 1)?)?;
        let x = flatten(fields)?;
        let deep = if self.core.spec.hidden.is_empty() {
            None
        } else {
            Some(self.deep_out.forward(&self.mlp.forward(&x)?)?)
        };
        let mut y = (self.first.forward(&x)? + cin)?;
        if let Some(dp) = deep {
            y = (y + dp)?;
        }
        Ok(y)
    }
}
