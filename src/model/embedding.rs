//! One embedding table for all categorical fields: a plain row-major buffer with per-field row
//! offsets. It is not a candle variable: the trainer gathers the rows of a batch into a leaf
//! tensor and updates only those rows (row-sparse), so a step never touches the whole table.

use anyhow::{bail, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::data::{Batch, FeatureSpec};

/// Standard deviation of the initial embedding values.
pub const EMB_INIT_STD: f32 = 0.01;

/// Rows of every field's embeddings in one buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingTable {
    /// Embedding size.
    pub dim: usize,
    /// First row of each field.
    pub offsets: Vec<usize>,
    /// Rows of each field (vocabulary + padding + OOV).
    pub vocab: Vec<usize>,
    /// `sum(vocab) * dim` values, row-major.
    pub data: Vec<f32>,
}

impl EmbeddingTable {
    /// A table for `features` with values drawn from N(0, EMB_INIT_STD^2).
    pub fn random(features: &FeatureSpec, dim: usize, rng: &mut ChaCha8Rng) -> Result<Self> {
        let normal = Normal::new(0.0f32, EMB_INIT_STD)?;
        let rows = features.total_rows();
        let data = (0..rows * dim).map(|_| normal.sample(rng)).collect();
        Ok(EmbeddingTable {
            dim,
            offsets: features.offsets(),
            vocab: features.cat.iter().map(|f| f.vocab).collect(),
            data,
        })
    }

    /// Number of fields.
    pub fn num_fields(&self) -> usize {
        self.vocab.len()
    }

    /// Rows of all fields together.
    pub fn rows(&self) -> usize {
        self.vocab.iter().sum()
    }

    /// The `vocab[f] x dim` block of field `f`, row-major.
    pub fn field(&self, f: usize) -> &[f32] {
        let start = self.offsets[f] * self.dim;
        &self.data[start..start + self.vocab[f] * self.dim]
    }

    /// Overwrites field `f` with `values` (`vocab[f] * dim`, row-major).
    pub fn set_field(&mut self, f: usize, values: &[f32]) -> Result<()> {
        if f >= self.num_fields() {
            bail!(
                "embedding field {f} does not exist (the table has {} fields)",
                self.num_fields()
            );
        }
        let want = self.vocab[f] * self.dim;
        if values.len() != want {
            bail!(
                "embedding field {f}: got {} values, the table needs {} ({} rows x {})",
                values.len(),
                want,
                self.vocab[f],
                self.dim
            );
        }
        let start = self.offsets[f] * self.dim;
        self.data[start..start + want].copy_from_slice(values);
        Ok(())
    }

    /// Table row of every (row, field) of `b`, row-major, after checking the batch shape
    /// and that every id is inside its field's vocabulary.
    pub fn batch_rows(&self, b: &Batch) -> Result<Vec<u32>> {
        self.check_shape(b)?;
        self.rows_of(b, 0..b.rows())
    }

    /// Fails unless `b` has this table's fields and one id per row and field.
    pub fn check_shape(&self, b: &Batch) -> Result<()> {
        if b.num_cat != self.num_fields() {
            bail!(
                "batch has {} categorical fields, the model was built for {}",
                b.num_cat,
                self.num_fields()
            );
        }
        if b.cat.len() != b.rows() * b.num_cat {
            bail!(
                "batch is malformed: {} ids for {} rows x {} fields",
                b.cat.len(),
                b.rows(),
                b.num_cat
            );
        }
        Ok(())
    }

    /// [`batch_rows`](Self::batch_rows) of rows `range` of `b` only (a long day is looked up a
    /// chunk at a time rather than all at once); `b`'s shape must already have been checked.
    pub fn rows_of(&self, b: &Batch, range: std::ops::Range<usize>) -> Result<Vec<u32>> {
        let nc = b.num_cat;
        let ids = &b.cat[range.start * nc..range.end * nc];
        let mut out = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            let f = i % nc;
            if id as usize >= self.vocab[f] {
                bail!(
                    "batch row {} field {f}: id {id} is outside the field's {} table rows",
                    range.start + i / nc,
                    self.vocab[f]
                );
            }
            out.push((self.offsets[f] + id as usize) as u32);
        }
        Ok(out)
    }

    /// The rows `rows` copied into one buffer (`rows.len() * dim`).
    pub fn gather(&self, rows: &[u32]) -> Vec<f32> {
        // The usual widths copy each row as one fixed-size value, which compiles to a few
        // vector moves; a row of a width known only at run time is a call to `memcpy`, which
        // costs more than the copy itself at these sizes.
        match self.dim {
            4 => self.gather_fixed::<4>(rows),
            8 => self.gather_fixed::<8>(rows),
            16 => self.gather_fixed::<16>(rows),
            32 => self.gather_fixed::<32>(rows),
            64 => self.gather_fixed::<64>(rows),
            _ => self.gather_any(rows),
        }
    }

    fn gather_fixed<const D: usize>(&self, rows: &[u32]) -> Vec<f32> {
        let (table, _) = self.data.as_chunks::<D>();
        let mut out: Vec<[f32; D]> = Vec::with_capacity(rows.len());
        out.extend(rows.iter().map(|&r| table[r as usize]));
        out.into_flattened()
    }

    fn gather_any(&self, rows: &[u32]) -> Vec<f32> {
        let d = self.dim;
        let mut out = Vec::with_capacity(rows.len() * d);
        for &r in rows {
            let s = r as usize * d;
            out.extend_from_slice(&self.data[s..s + d]);
        }
        out
    }

    /// Re-draws every value (used by ablations that start from random embeddings).
    pub fn reinitialise(&mut self, rng: &mut ChaCha8Rng) {
        for v in &mut self.data {
            *v = rng.random_range(-1.0f32..1.0) * EMB_INIT_STD * 1.732;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::CatField;
    use rand::SeedableRng;

    fn spec() -> FeatureSpec {
        FeatureSpec {
            cat: vec![
                CatField {
                    name: "a".into(),
                    vocab: 3,
                },
                CatField {
                    name: "b".into(),
                    vocab: 2,
                },
            ],
            num: vec![],
            user_field: None,
        }
    }

    #[test]
    fn every_width_gathers_the_rows_it_names() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for dim in [1, 4, 8, 12, 16, 32, 64] {
            let t = EmbeddingTable::random(&spec(), dim, &mut rng).unwrap();
            let rows = [4u32, 0, 4, 2];
            let want: Vec<f32> = rows
                .iter()
                .flat_map(|&r| t.data[r as usize * dim..(r as usize + 1) * dim].to_vec())
                .collect();
            assert_eq!(t.gather(&rows), want, "dim {dim}");
            assert_eq!(t.gather_any(&rows), want, "dim {dim}");
            assert!(t.gather(&[]).is_empty());
        }
    }

    #[test]
    fn fields_are_blocks_of_one_buffer() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut t = EmbeddingTable::random(&spec(), 2, &mut rng).unwrap();
        assert_eq!(t.data.len(), 10);
        t.set_field(1, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(t.field(1), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(&t.data[6..], &[1.0, 2.0, 3.0, 4.0]);
        assert!(t.set_field(1, &[1.0]).is_err());
        assert!(t.set_field(2, &[]).is_err());
        let b = Batch {
            num_cat: 2,
            num_num: 0,
            cat: vec![2, 1, 0, 0],
            num: vec![],
            label: vec![1.0, 0.0],
            users: Vec::new(),
        };
        assert_eq!(t.batch_rows(&b).unwrap(), vec![2, 4, 0, 3]);
        assert_eq!(t.gather(&[4]), vec![3.0, 4.0]);
        let bad = Batch {
            num_cat: 2,
            num_num: 0,
            cat: vec![0, 2],
            num: vec![],
            label: vec![1.0],
            users: Vec::new(),
        };
        let e = t.batch_rows(&bad).unwrap_err().to_string();
        assert!(e.contains("row 0 field 1") && e.contains("id 2"), "{e}");
    }
}
