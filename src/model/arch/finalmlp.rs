//! FinalMLP (Mao et al. 2023): two MLP streams fused by a multi-head bilinear layer,
//! `y = b + w1.o1 + w2.o2 + sum_h o1_h^T W_h o2_h`. The streams' feature-selection gates of
//! the paper are left out.

use anyhow::Result;
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

use super::core_access;
use crate::model::blocks::{flatten, Logit, Mlp};
use crate::model::{CtrModel, ModelCore};

pub struct FinalMlp {
    core: ModelCore,
    stream1: Mlp,
    stream2: Mlp,
    lin1: Logit,
    lin2: Logit,
    /// `(heads, a, b)` bilinear fusion weights.
    fusion: Tensor,
}

impl FinalMlp {
    pub fn new(mut core: ModelCore, rng: &mut ChaCha8Rng) -> Result<Self> {
        let flat = core.num_fields() * core.spec.emb_dim;
        let (h1, h2, heads) = (
            core.spec.hidden.clone(),
            core.spec.hidden2.clone(),
            core.spec.heads,
        );
        let ps = &mut core.params;
        let stream1 = Mlp::new(ps, rng, "stream1", flat, &h1)?;
        let stream2 = Mlp::new(ps, rng, "stream2", flat, &h2)?;
        let lin1 = Logit::new(ps, rng, "fusion.w1", stream1.out_dim())?;
        let lin2 = Logit::new(ps, rng, "fusion.w2", stream2.out_dim())?;
        let (a, b) = (stream1.out_dim() / heads, stream2.out_dim() / heads);
        let fusion = ps.glorot(rng, "fusion.w12", &[heads, a, b])?;
        Ok(FinalMlp {
            core,
            stream1,
            stream2,
            lin1,
            lin2,
            fusion,
        })
    }
}

impl CtrModel for FinalMlp {
    core_access!();

    fn interact(&self, fields: &Tensor) -> Result<Tensor> {
        let x = flatten(fields)?;
        let o1 = self.stream1.forward(&x)?;
        let o2 = self.stream2.forward(&x)?;
        let (heads, a, b) = self.fusion.dims3()?;
        let n = o1.dim(0)?;
        let o1h = o1.reshape((n, heads, a))?.transpose(0, 1)?.contiguous()?; // (h, B, a)
        let o2h = o2.reshape((n, heads, b))?.transpose(0, 1)?.contiguous()?; // (h, B, b)
        let bil = (o1h.matmul(&self.fusion)? * o2h)?.sum(2)?.sum(0)?; // (B,)
        Ok(((self.lin1.forward(&o1)? + self.lin2.forward(&o2)?)? + bil)?)
    }
}
