//! DCN (Wang et al. 2017, vector cross layers) and DCNv2 (Wang et al. 2021, matrix cross
//! layers), each with a parallel deep tower; both outputs are concatenated into one logit.

use anyhow::Result;
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

use super::core_access;
use crate::model::blocks::{flatten, Linear, Logit, Mlp};
use crate::model::interact::{cross_mix, cross_stack};
use crate::model::{Arch, CtrModel, ModelCore};

enum Cross {
    /// `x_{l+1} = x0 * (x_l . w_l) + b_l + x_l`: `w_l` is `(D, 1)`.
    Vector(Vec<(Tensor, Tensor)>),
    /// `x_{l+1} = x0 * (x_l W_l + b_l) + x_l`: `W_l` is `(D, D)`.
    Matrix(Vec<Linear>),
}

pub struct Dcn {
    core: ModelCore,
    cross: Cross,
    mlp: Option<Mlp>,
    out: Logit,
}

impl Dcn {
    pub fn new(mut core: ModelCore, rng: &mut ChaCha8Rng) -> Result<Self> {
        let dim = core.num_fields() * core.spec.emb_dim;
        let (arch, layers, hidden) = (
            core.spec.arch,
            core.spec.cross_layers,
            core.spec.hidden.clone(),
        );
        let ps = &mut core.params;
        let cross = if arch == Arch::DcnV2 {
            let l = (0..layers)
                .map(|i| Linear::new(ps, rng, &format!("cross.{i}"), dim, dim))
                .collect::<Result<Vec<_>>>()?;
            Cross::Matrix(l)
        } else {
            let mut l = Vec::with_capacity(layers);
            for i in 0..layers {
                let w = ps.glorot(rng, &format!("cross.{i}.w"), &[dim, 1])?;
                let b = ps.zeros(&format!("cross.{i}.b"), &[dim])?;
                l.push((w, b));
            }
            Cross::Vector(l)
        };
        let mlp = if hidden.is_empty() {
            None
        } else {
            Some(Mlp::new(ps, rng, "deep", dim, &hidden)?)
        };
        let out_in = dim + mlp.as_ref().map_or(0, |m| m.out_dim());
        let out = Logit::new(ps, rng, "out", out_in)?;
        Ok(Dcn {
            core,
            cross,
            mlp,
            out,
        })
    }
}

impl CtrModel for Dcn {
    core_access!();

    fn interact(&self, fields: &Tensor) -> Result<Tensor> {
        let x0 = flatten(fields)?;
        let mut x = x0.clone();
        match &self.cross {
            Cross::Vector(layers) if !layers.is_empty() => {
                // The whole stack is one op (`interact.rs`); every layer's `w` and `b` go in as
                // the rows of one `(2L, D)` operand.
                let dim = x0.dim(1)?;
                let rows = layers
                    .iter()
                    .flat_map(|(w, b)| [w.reshape((1, dim)), b.reshape((1, dim))])
                    .collect::<candle_core::Result<Vec<_>>>()?;
                x = cross_stack(&x0, &Tensor::cat(&rows, 0)?)?;
            }
            Cross::Vector(_) => {}
            Cross::Matrix(layers) => {
                for l in layers {
                    x = cross_mix(&x0, &l.forward(&x)?, &x)?;
                }
            }
        }
        let joined = match &self.mlp {
            Some(m) => Tensor::cat(&[&x, &m.forward(&x0)?], 1)?,
            None => x,
        };
        self.out.forward(&joined)
    }
}
