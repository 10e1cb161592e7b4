//! The model zoo: ten CTR architectures behind one trait.
//!
//! Every model reads its inputs the same way: the categorical ids of a batch are looked up in
//! one shared [`EmbeddingTable`] (the trainer gathers those rows into a leaf tensor), each numeric
//! value scales a learned vector of its own, and the architecture maps the resulting
//! `(batch, fields, emb)` tensor to one logit per row. First-order ("wide") terms are linear
//! maps of the flattened embeddings, so LR is a logistic regression over one-hot features with
//! each id's weight factorised through its embedding.

use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::FeatureSpec;

pub mod arch;
pub mod blocks;
pub mod embedding;
pub mod fused;
pub mod interact;
pub mod matmul;
pub mod params;
mod small;
pub mod spec;

pub use embedding::EmbeddingTable;
pub use params::ParamSet;
pub use spec::{Arch, ModelSpec};

/// Runs `f` on a fresh rayon pool of `threads` threads (tests that results do not depend on
/// the thread count).
#[cfg(test)]
pub(crate) fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a test thread pool")
        .install(f)
}

/// What every model owns besides its architecture blocks.
pub struct ModelCore {
    pub spec: ModelSpec,
    pub features: FeatureSpec,
    pub table: EmbeddingTable,
    pub params: ParamSet,
    /// One vector per numeric feature, `(num_num, emb)`; `None` without numeric features.
    pub num_emb: Option<Tensor>,
}

impl ModelCore {
    /// Fields the architecture sees: categorical plus numeric.
    pub fn num_fields(&self) -> usize {
        self.features.num_cat() + self.features.num_num()
    }
}

/// A CTR model: from embeddings of a batch to one logit per row.
pub trait CtrModel: Send + Sync {
    /// Shared state (spec, table, dense parameters).
    fn core(&self) -> &ModelCore;
    /// Shared state, mutable.
    fn core_mut(&mut self) -> &mut ModelCore;
    /// `(B, F, d)` field embeddings to `(B,)` logits.
    fn interact(&self, fields: &Tensor) -> Result<Tensor>;

    fn spec(&self) -> &ModelSpec {
        &self.core().spec
    }
    /// The feature schema the model was built for.
    fn features(&self) -> &FeatureSpec {
        &self.core().features
    }
    fn embeddings(&self) -> &EmbeddingTable {
        &self.core().table
    }
    fn embeddings_mut(&mut self) -> &mut EmbeddingTable {
        &mut self.core_mut().table
    }
    /// The dense parameters (everything but the embedding table).
    fn dense(&self) -> &ParamSet {
        &self.core().params
    }
    /// Scalars in the table plus dense parameters.
    fn param_count(&self) -> usize {
        self.embeddings().data.len() + self.dense().count()
    }
    /// The spec in its text form.
    fn name(&self) -> String {
        self.spec().to_string()
    }
    fn emb_dim(&self) -> usize {
        self.spec().emb_dim
    }
    /// Logits from the gathered categorical embeddings `(B, num_cat, d)` and the numeric values
    /// (`B * num_num`, row-major).
    fn forward(&self, cat_emb: &Tensor, num: &[f32]) -> Result<Tensor> {
        let core = self.core();
        let fields = match &core.num_emb {
            None => cat_emb.clone(),
            Some(w) => {
                let b = cat_emb.dim(0)?;
                let n = core.features.num_num();
                let vals = Tensor::from_slice(num, (b, n, 1), &Device::Cpu)?;
                let num_fields = vals.broadcast_mul(&w.unsqueeze(0)?)?;
                Tensor::cat(&[cat_emb, &num_fields], 1)?
            }
        };
        self.interact(&fields)
    }
}

/// Builds a model with every weight drawn from a ChaCha8 RNG seeded with `seed`.
pub fn build_model(
    spec: &ModelSpec,
    features: &FeatureSpec,
    seed: u64,
) -> Result<Box<dyn CtrModel>> {
    spec.validate()?;
    if features.num_cat() + features.num_num() == 0 {
        anyhow::bail!("cannot build {spec}: the feature schema has no fields");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let table = EmbeddingTable::random(features, spec.emb_dim, &mut rng)?;
    let mut params = ParamSet::default();
    let num_emb = if features.num_num() > 0 {
        Some(params.normal(
            &mut rng,
            "num_emb",
            &[features.num_num(), spec.emb_dim],
            0.1,
        )?)
    } else {
        None
    };
    let core = ModelCore {
        spec: spec.clone(),
        features: features.clone(),
        table,
        params,
        num_emb,
    };
    arch::build(core, &mut rng)
}
