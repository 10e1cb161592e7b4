//! DeepFM (Guo et al. 2017): first-order + FM second-order + a deep tower over shared embeddings.

use anyhow::Result;
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

use super::core_access;
use crate::model::blocks::{flatten, fm_term, Logit, Mlp};
use crate::model::{CtrModel, ModelCore};

pub struct DeepFm {
    core: ModelCore,
    first: Logit,
    mlp: Mlp,
    out: Logit,
}

impl DeepFm {
    pub fn new(mut core: ModelCore, rng: &mut ChaCha8Rng) -> Result<Self> {
        let flat = core.num_fields() * core.spec.emb_dim;
        let hidden = core.spec.hidden.clone();
        let ps = &mut core.params;
        let first = Logit::new(ps, rng, "first_order", flat)?;
        let mlp = Mlp::new(ps, rng, "deep", flat, &hidden)?;
        let out = Logit::new(ps, rng, "deep_out", mlp.out_dim())?;
        Ok(DeepFm {
            core,
            first,
            mlp,
            out,
        })
    }
}

impl CtrModel for DeepFm {
    core_access!();

    fn interact(&self, fields: &Tensor) -> Result<Tensor> {
        let x = flatten(fields)?;
        let deep = self.out.forward(&self.mlp.forward(&x)?)?;
        Ok(((self.first.forward(&x)? + fm_term(fields)?)? + deep)?)
    }
}
