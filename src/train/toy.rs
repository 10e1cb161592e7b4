//! A tiny seeded CTR generator with a learnable signal (first-order effects, a numeric effect
//! and hidden pairwise interactions a linear model cannot express). Used by tests and by
//! `crossadapt train --toy`; the real synthetic drifting stream lives in the data layer.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::loss::sigmoid;
use crate::data::{Batch, CatField, FeatureSpec, FIRST_ID};

/// The hidden truth of a toy world.
pub struct ToyWorld {
    pub features: FeatureSpec,
    first: Vec<Vec<f32>>,
    latent: Vec<Vec<[f32; 4]>>,
    bias: f32,
}

impl ToyWorld {
    /// `fields` categorical fields of `ids` real ids each (plus padding and OOV rows), one
    /// numeric feature; interactions between fields (0, 1), (2, 3), ...
    pub fn new(fields: usize, ids: usize, seed: u64) -> ToyWorld {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, 1.0).unwrap_or_else(|_| unreachable!());
        let vocab = ids + FIRST_ID as usize;
        let first = (0..fields)
            .map(|_| (0..vocab).map(|_| 0.4 * normal.sample(&mut rng)).collect())
            .collect();
        let latent = (0..fields)
            .map(|_| {
                (0..vocab)
                    .map(|_| std::array::from_fn(|_| normal.sample(&mut rng)))
                    .collect()
            })
            .collect();
        ToyWorld {
            features: FeatureSpec {
                cat: (0..fields)
                    .map(|i| CatField {
                        name: format!("f{i}"),
                        vocab,
                    })
                    .collect(),
                num: vec!["x".into()],
                user_field: Some("f0".into()),
            },
            first,
            latent,
            bias: -1.0,
        }
    }

    /// The true logit of one row.
    pub fn logit(&self, ids: &[u32], x: f32) -> f32 {
        let mut z = self.bias + x;
        for (f, &id) in ids.iter().enumerate() {
            z += self.first[f][id as usize];
        }
        for pair in ids.chunks_exact(2).enumerate() {
            let (p, ab) = pair;
            let (u, v) = (
                &self.latent[2 * p][ab[0] as usize],
                &self.latent[2 * p + 1][ab[1] as usize],
            );
            z += 0.9 * u.iter().zip(v).map(|(a, b)| a * b).sum::<f32>();
        }
        z
    }

    /// `rows` rows drawn with `seed`.
    pub fn batch(&self, rows: usize, seed: u64) -> Batch {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fields = self.features.num_cat();
        let mut b = Batch::empty(fields, 1);
        for _ in 0..rows {
            let ids: Vec<u32> = self
                .features
                .cat
                .iter()
                .map(|c| rng.random_range(FIRST_ID..c.vocab as u32))
                .collect();
            let x: f32 = rng.random_range(0.0..1.0);
            let y = rng.random::<f32>() < sigmoid(self.logit(&ids, x));
            b.cat.extend_from_slice(&ids);
            b.num.push(x);
            b.label.push(if y { 1.0 } else { 0.0 });
        }
        b
    }
}
