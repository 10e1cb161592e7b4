//! The dense (non-embedding) parameters of a model: named candle variables initialised from
//! the model's own seeded RNG (candle's CPU backend cannot be seeded).

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Named dense parameters, in creation order (the order is part of the checkpoint format).
#[derive(Default)]
pub struct ParamSet {
    names: Vec<String>,
    vars: Vec<Var>,
}

impl ParamSet {
    /// The variables, in creation order.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The names, in creation order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of scalar parameters.
    pub fn count(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    fn add(&mut self, name: &str, values: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        let var = Var::from_vec(values, shape, &Device::Cpu)?;
        let t = var.as_tensor().clone();
        self.names.push(name.to_string());
        self.vars.push(var);
        Ok(t)
    }

    /// A `(fan_in, fan_out)` weight, Glorot-uniform.
    pub fn glorot(&mut self, rng: &mut ChaCha8Rng, name: &str, shape: &[usize]) -> Result<Tensor> {
        let (fan_in, fan_out) = match shape {
            [a, b] => (*a, *b),
            [_, a, b] => (*a, *b),
            _ => (shape.iter().product(), 1),
        };
        let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
        let n = shape.iter().product();
        let values = (0..n).map(|_| rng.random_range(-limit..limit)).collect();
        self.add(name, values, shape)
    }

    /// A tensor drawn from N(0, std^2).
    pub fn normal(
        &mut self,
        rng: &mut ChaCha8Rng,
        name: &str,
        shape: &[usize],
        std: f32,
    ) -> Result<Tensor> {
        let normal = Normal::new(0.0f32, std)?;
        let n = shape.iter().product();
        let values = (0..n).map(|_| normal.sample(rng)).collect();
        self.add(name, values, shape)
    }

    /// A tensor of zeros (biases).
    pub fn zeros(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.add(name, vec![0.0; shape.iter().product()], shape)
    }
}
