//! Building blocks shared by the architectures: linear layers, the MLP tower, the FM term.

use anyhow::Result;
use candle_core::Tensor;
use rand_chacha::ChaCha8Rng;

use super::fused::{linear, linear_relu};
use super::params::ParamSet;

/// `x W + b` with `W` stored as `(in, out)`, so the forward needs no transposed copy.
pub struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    /// A Glorot-initialised layer registered under `name.w` / `name.b`.
    pub fn new(
        ps: &mut ParamSet,
        rng: &mut ChaCha8Rng,
        name: &str,
        inp: usize,
        out: usize,
    ) -> Result<Self> {
        Ok(Linear {
            w: ps.glorot(rng, &format!("{name}.w"), &[inp, out])?,
            b: ps.zeros(&format!("{name}.b"), &[out])?,
        })
    }

    /// The `(in, out)` weight.
    pub fn weight(&self) -> &Tensor {
        &self.w
    }

    /// The `(out,)` bias.
    pub fn bias(&self) -> &Tensor {
        &self.b
    }

    /// `relu(x W + b)` for `(B, in) -> (B, out)`, the whole layer one op (`fused.rs`).
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != 2 {
            return Ok(self.forward(x)?.relu()?);
        }
        Ok(linear_relu(x, &self.w, &self.b)?)
    }

    /// `(B, in) -> (B, out)`; also `(B, F, in) -> (B, F, out)`. One op (`fused.rs`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() == 2 {
            return Ok(linear(x, &self.w, &self.b)?);
        }
        // Fold the leading dims into rows: one 2-D product (`matmul.rs`), no broadcast copy of
        // the weight.
        let mut dims = x.dims().to_vec();
        let inp = dims.pop().unwrap_or(1);
        let rows: usize = dims.iter().product();
        let y = linear(&x.reshape((rows, inp))?, &self.w, &self.b)?;
        dims.push(self.w.dim(1)?);
        Ok(y.reshape(dims)?)
    }
}

/// A ReLU tower; the output has the size of the last hidden layer (or the input if empty).
pub struct Mlp {
    layers: Vec<Linear>,
    out: usize,
}

impl Mlp {
    /// Layers `inp -> hidden[0] -> ... -> hidden[last]`.
    pub fn new(
        ps: &mut ParamSet,
        rng: &mut ChaCha8Rng,
        name: &str,
        inp: usize,
        hidden: &[usize],
    ) -> Result<Self> {
        let mut layers = Vec::with_capacity(hidden.len());
        let mut prev = inp;
        for (i, &h) in hidden.iter().enumerate() {
            layers.push(Linear::new(ps, rng, &format!("{name}.{i}"), prev, h)?);
            prev = h;
        }
        Ok(Mlp { layers, out: prev })
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.out
    }

    /// Every layer followed by ReLU.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for l in &self.layers {
            h = l.forward_relu(&h)?;
        }
        Ok(h)
    }
}

/// A layer to one logit: `(B, in) -> (B,)`.
pub struct Logit(Linear);

impl Logit {
    /// Registered as `name.w` / `name.b`.
    pub fn new(ps: &mut ParamSet, rng: &mut ChaCha8Rng, name: &str, inp: usize) -> Result<Self> {
        Ok(Logit(Linear::new(ps, rng, name, inp, 1)?))
    }

    /// `(B, in) -> (B,)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.0.forward(x)?.squeeze(1)?)
    }
}

/// Factorisation-machine second-order term of `(B, F, d)` embeddings: `(B,)`.
/// `0.5 * sum_k ((sum_f e_fk)^2 - sum_f e_fk^2)`, one fused op each way (`fused.rs`).
pub fn fm_term(x: &Tensor) -> Result<Tensor> {
    Ok(super::fused::fm_pairwise(x)?)
}

/// `(B, F, d) -> (B, F*d)`.
pub fn flatten(x: &Tensor) -> Result<Tensor> {
    Ok(x.flatten_from(1)?)
}
