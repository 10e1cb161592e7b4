//! AutoInt (Song et al. 2019): stacked multi-head self-attention over the fields with residual
//! connections; optionally a deep tower next to it (AutoInt+ when `hidden` is not empty).

use anyhow::Result;
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

use super::core_access;
use crate::model::blocks::{flatten, Linear, Logit, Mlp};
use crate::model::interact::projected_attention;
use crate::model::{CtrModel, ModelCore};

struct AttentionLayer {
    q: Linear,
    k: Linear,
    v: Linear,
    res: Linear,
}

pub struct AutoInt {
    core: ModelCore,
    layers: Vec<AttentionLayer>,
    att_out: Logit,
    deep: Option<(Mlp, Logit)>,
}

impl AutoInt {
    pub fn new(mut core: ModelCore, rng: &mut ChaCha8Rng) -> Result<Self> {
        let fields = core.num_fields();
        let (emb, att, n, hidden) = (
            core.spec.emb_dim,
            core.spec.att_dim,
            core.spec.att_layers,
            core.spec.hidden.clone(),
        );
        let ps = &mut core.params;
        let mut layers = Vec::with_capacity(n);
        let mut inp = emb;
        for i in 0..n {
            let name = format!("att.{i}");
            layers.push(AttentionLayer {
                q: Linear::new(ps, rng, &format!("{name}.q"), inp, att)?,
                k: Linear::new(ps, rng, &format!("{name}.k"), inp, att)?,
                v: Linear::new(ps, rng, &format!("{name}.v"), inp, att)?,
                res: Linear::new(ps, rng, &format!("{name}.res"), inp, att)?,
            });
            inp = att;
        }
        let att_out = Logit::new(ps, rng, "att_out", fields * att)?;
        let deep = if hidden.is_empty() {
            None
        } else {
            let mlp = Mlp::new(ps, rng, "deep", fields * emb, &hidden)?;
            let out = Logit::new(ps, rng, "deep_out", mlp.out_dim())?;
            Some((mlp, out))
        };
        Ok(AutoInt {
            core,
            layers,
            att_out,
            deep,
        })
    }
}

impl CtrModel for AutoInt {
    core_access!();

    fn interact(&self, fields: &Tensor) -> Result<Tensor> {
        let heads = self.core.spec.heads;
        let (b, f, emb) = fields.dims3()?;
        // One row per field of every sample from here to the last layer, no reshape between.
        let mut x = fields.reshape((b * f, emb))?;
        for l in &self.layers {
            // The four projections as one product, attention, residual and ReLU: one op
            // (`interact.rs`).
            let parts = [&l.q, &l.k, &l.v, &l.res];
            let w = Tensor::cat(&parts.map(|p| p.weight()), 1)?;
            let bias = Tensor::cat(&parts.map(|p| p.bias()), 0)?;
            x = projected_attention(&x, &w, &bias, f, heads)?;
        }
        let mut y = self.att_out.forward(&x.reshape((b, f * x.dim(1)?))?)?;
        if let Some((mlp, out)) = &self.deep {
            y = (y + out.forward(&mlp.forward(&flatten(fields)?)?)?)?;
        }
        Ok(y)
    }
}
