//! AutoInt (Song et al. 2019): stacked multi-head self-attention over the fields with residual
//! connections; optionally a deep tower next to it (AutoInt+ when `hidden` is not empty).

use anyhow::Result;
use candle_core::{Tensor, D};
use rand_chacha::ChaCha8Rng;

use super::core_access;
use crate::model::blocks::{flatten, Linear, Logit, Mlp};
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

/// `(B, F, A) -> (B, heads, F, A/heads)`.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, f, a) = x.dims3()?;
    Ok(x.reshape((b, f, heads, a / heads))?
        .transpose(1, 2)?
        .contiguous()?)
}

impl CtrModel for AutoInt {
    core_access!();

    fn interact(&self, fields: &Tensor) -> Result<Tensor> {
        let heads = self.core.spec.heads;
        let mut x = fields.clone();
        for l in &self.layers {
            let q = split_heads(&l.q.forward(&x)?, heads)?;
            let k = split_heads(&l.k.forward(&x)?, heads)?;
            let v = split_heads(&l.v.forward(&x)?, heads)?;
            let scale = 1.0 / (q.dim(3)? as f64).sqrt();
            let scores = (q.matmul(&k.transpose(2, 3)?.contiguous()?)? * scale)?;
            let att = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let o = att.matmul(&v)?; // (B, heads, F, a)
            let (b, h, f, a) = o.dims4()?;
            let o = o.transpose(1, 2)?.contiguous()?.reshape((b, f, h * a))?;
            x = (o + l.res.forward(&x)?)?.relu()?;
        }
        let mut y = self.att_out.forward(&flatten(&x)?)?;
        if let Some((mlp, out)) = &self.deep {
            y = (y + out.forward(&mlp.forward(&flatten(fields)?)?)?)?;
        }
        Ok(y)
    }
}
