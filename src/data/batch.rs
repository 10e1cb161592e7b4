//! The unit every later stage consumes: encoded rows in time order.

use serde::{Deserialize, Serialize};

/// Id reserved for padding in every categorical field.
pub const PAD_ID: u32 = 0;
/// Id every value unseen by the vocabulary maps to.
pub const OOV_ID: u32 = 1;
/// First id given to a real vocabulary entry.
pub const FIRST_ID: u32 = 2;

/// One categorical field as the models see it: a name and the number of rows its embedding
/// table needs (vocabulary entries plus the padding and OOV rows).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatField {
    pub name: String,
    pub vocab: usize,
}

/// What an encoded batch holds, shared by the data layer, the models and the session config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub cat: Vec<CatField>,
    pub num: Vec<String>,
    /// Name of the categorical field that identifies the user (for gAUC), if any.
    pub user_field: Option<String>,
}

impl FeatureSpec {
    pub fn num_cat(&self) -> usize {
        self.cat.len()
    }
    pub fn num_num(&self) -> usize {
        self.num.len()
    }
    /// Rows of all tables together (one table with per-field offsets).
    pub fn total_rows(&self) -> usize {
        self.cat.iter().map(|f| f.vocab).sum()
    }
    /// Row offset of each field inside one shared table.
    pub fn offsets(&self) -> Vec<usize> {
        let mut acc = 0;
        self.cat
            .iter()
            .map(|f| {
                let o = acc;
                acc += f.vocab;
                o
            })
            .collect()
    }
    pub fn user_index(&self) -> Option<usize> {
        let name = self.user_field.as_ref()?;
        self.cat.iter().position(|f| &f.name == name)
    }
}

/// Encoded rows, row-major. `cat[r * num_cat + f]` is the id of row `r` in field `f`
/// (0 = padding, 1 = OOV, 2.. = vocabulary); `num[r * num_num + j]` a numeric value;
/// `label[r]` is 0.0 or 1.0.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub num_cat: usize,
    pub num_num: usize,
    pub cat: Vec<u32>,
    pub num: Vec<f32>,
    pub label: Vec<f32>,
    /// The raw key of each row's user (the spec's user field), for gAUC: empty when unknown.
    /// The encoded ids cannot group users, since every user the vocabulary has not seen
    /// shares the OOV id; with them a day's new users would count as one user.
    pub users: Vec<u64>,
}

impl Batch {
    pub fn empty(num_cat: usize, num_num: usize) -> Self {
        Batch {
            num_cat,
            num_num,
            ..Default::default()
        }
    }

    pub fn rows(&self) -> usize {
        self.label.len()
    }

    pub fn is_empty(&self) -> bool {
        self.label.is_empty()
    }

    pub fn cat_row(&self, r: usize) -> &[u32] {
        &self.cat[r * self.num_cat..(r + 1) * self.num_cat]
    }

    pub fn num_row(&self, r: usize) -> &[f32] {
        &self.num[r * self.num_num..(r + 1) * self.num_num]
    }

    /// Appends row `r` of `other` (same shape).
    pub fn push_row_from(&mut self, other: &Batch, r: usize) {
        debug_assert_eq!(self.num_cat, other.num_cat);
        debug_assert_eq!(self.num_num, other.num_num);
        let keep_users = !other.users.is_empty() && self.users.len() == self.rows();
        if !keep_users {
            self.users.clear();
        }
        self.cat.extend_from_slice(other.cat_row(r));
        self.num.extend_from_slice(other.num_row(r));
        self.label.push(other.label[r]);
        if keep_users {
            self.users.push(other.users[r]);
        }
    }

    /// Rows `start..end` (clamped) as a new batch, keeping their order.
    pub fn slice(&self, start: usize, end: usize) -> Batch {
        let end = end.min(self.rows());
        let start = start.min(end);
        Batch {
            num_cat: self.num_cat,
            num_num: self.num_num,
            cat: self.cat[start * self.num_cat..end * self.num_cat].to_vec(),
            num: self.num[start * self.num_num..end * self.num_num].to_vec(),
            label: self.label[start..end].to_vec(),
            users: self.users.get(start..end).unwrap_or_default().to_vec(),
        }
    }

    /// The given rows, in the given order (repeats allowed).
    pub fn gather(&self, rows: &[usize]) -> Batch {
        let mut out = Batch::empty(self.num_cat, self.num_num);
        out.cat.reserve(rows.len() * self.num_cat);
        out.num.reserve(rows.len() * self.num_num);
        out.label.reserve(rows.len());
        out.users
            .reserve(if self.users.is_empty() { 0 } else { rows.len() });
        for &r in rows {
            out.push_row_from(self, r);
        }
        out
    }

    /// Appends every row of `other`.
    pub fn extend(&mut self, other: &Batch) {
        debug_assert_eq!(self.num_cat, other.num_cat);
        debug_assert_eq!(self.num_num, other.num_num);
        // Users stay known only while every row's user is known.
        let keep_users = !other.users.is_empty() && self.users.len() == self.rows();
        self.cat.extend_from_slice(&other.cat);
        self.num.extend_from_slice(&other.num);
        self.label.extend_from_slice(&other.label);
        if keep_users {
            self.users.extend_from_slice(&other.users);
        } else {
            self.users.clear();
        }
    }

    /// The same rows without their users (a training pool never groups by user).
    pub fn without_users(mut self) -> Batch {
        self.users = Vec::new();
        self
    }

    /// Consecutive batches of at most `size` rows, in order.
    pub fn chunks(&self, size: usize) -> impl Iterator<Item = Batch> + '_ {
        let size = size.max(1);
        (0..self.rows())
            .step_by(size)
            .map(move |s| self.slice(s, s + size))
    }

    pub fn positive_rate(&self) -> f64 {
        if self.label.is_empty() {
            return f64::NAN;
        }
        self.label.iter().map(|&y| y as f64).sum::<f64>() / self.label.len() as f64
    }

    /// Values of one categorical field, one per row.
    pub fn field_column(&self, f: usize) -> impl Iterator<Item = u32> + '_ {
        self.cat
            .iter()
            .skip(f)
            .step_by(self.num_cat.max(1))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Batch {
        Batch {
            num_cat: 2,
            num_num: 1,
            cat: vec![2, 3, 4, 5, 6, 7],
            num: vec![0.5, 1.5, 2.5],
            label: vec![1.0, 0.0, 1.0],
            users: vec![11, 12, 11],
        }
    }

    #[test]
    fn slice_gather_and_chunks_keep_rows_together() {
        let b = sample();
        let s = b.slice(1, 3);
        assert_eq!(s.cat, vec![4, 5, 6, 7]);
        assert_eq!(s.num, vec![1.5, 2.5]);
        let g = b.gather(&[2, 0, 2]);
        assert_eq!(g.cat, vec![6, 7, 2, 3, 6, 7]);
        assert_eq!(g.label, vec![1.0, 1.0, 1.0]);
        let sizes: Vec<usize> = b.chunks(2).map(|c| c.rows()).collect();
        assert_eq!(sizes, vec![2, 1]);
        assert_eq!(b.field_column(1).collect::<Vec<_>>(), vec![3, 5, 7]);
        assert!((b.positive_rate() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.users, vec![12, 11]);
        assert_eq!(g.users, vec![11, 11, 11]);
        let mut e = b.clone();
        e.extend(&s);
        assert_eq!(e.users, vec![11, 12, 11, 12, 11]);
        // A batch whose users are unknown makes the whole batch's users unknown.
        e.extend(&Batch {
            users: vec![],
            ..s.clone()
        });
        assert!(e.users.is_empty());
        let mut from_empty = Batch::empty(2, 1);
        from_empty.extend(&b);
        assert_eq!(from_empty.users, b.users);
    }

    #[test]
    fn offsets_follow_vocab_sizes() {
        let spec = FeatureSpec {
            cat: vec![
                CatField {
                    name: "user".into(),
                    vocab: 10,
                },
                CatField {
                    name: "item".into(),
                    vocab: 5,
                },
            ],
            num: vec![],
            user_field: Some("user".into()),
        };
        assert_eq!(spec.offsets(), vec![0, 10]);
        assert_eq!(spec.total_rows(), 15);
        assert_eq!(spec.user_index(), Some(0));
    }
}
