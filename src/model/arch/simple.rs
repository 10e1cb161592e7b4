//! LR, MLP and Wide&Deep: a linear (wide) term, a deep tower, or both.

use anyhow::Result;
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

use super::core_access;
use crate::model::blocks::{flatten, Logit, Mlp};
use crate::model::{Arch, CtrModel, ModelCore};

/// `Lr`: wide only; `Mlp`: deep only; `WideDeep`: the sum of both.
pub struct Simple {
    core: ModelCore,
    wide: Option<Logit>,
    deep: Option<(Mlp, Logit)>,
}

impl Simple {
    pub fn new(mut core: ModelCore, rng: &mut ChaCha8Rng) -> Result<Self> {
        let flat = core.num_fields() * core.spec.emb_dim;
        let arch = core.spec.arch;
        let hidden = core.spec.hidden.clone();
        let ps = &mut core.params;
        let wide = match arch {
            Arch::Lr | Arch::WideDeep => Some(Logit::new(ps, rng, "wide", flat)?),
            _ => None,
        };
        let deep = match arch {
            Arch::Mlp | Arch::WideDeep => {
                let mlp = Mlp::new(ps, rng, "deep", flat, &hidden)?;
                let out = Logit::new(ps, rng, "deep_out", mlp.out_dim())?;
                Some((mlp, out))
            }
            _ => None,
        };
        Ok(Simple { core, wide, deep })
    }
}

impl CtrModel for Simple {
    core_access!();

    fn interact(&self, fields: &Tensor) -> Result<Tensor> {
        let x = flatten(fields)?;
        let wide = self.wide.as_ref().map(|w| w.forward(&x)).transpose()?;
        let deep = match &self.deep {
            Some((mlp, out)) => Some(out.forward(&mlp.forward(&x)?)?),
            None => None,
        };
        Ok(match (wide, deep) {
            (Some(w), Some(d)) => (w + d)?,
            (Some(w), None) => w,
            (None, Some(d)) => d,
            (None, None) => anyhow::bail!("model has neither a wide nor a deep part"),
        })
    }
}
