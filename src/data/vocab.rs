//! Per-field vocabulary: raw key -> id, with padding id 0, OOV id 1 and entries from 2; and
//! per numeric field, the scaling that brings its values to zero mean and unit variance.
//!
//! Fitted on training days with a min-count cut-off, saved with the model so later days and
//! other models (the student inherits the teacher's) reuse the same id -> row map and scaling.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::batch::{Batch, CatField, FeatureSpec, FIRST_ID, OOV_ID};
use super::source::{mix64, DaySource, RawDay};

/// Hasher for raw keys that are already well spread or small integers.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        mix64(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64) ^ (self.0 >> 56);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A map from raw key with the fast [`KeyHasher`].
pub type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// One field's entries: `keys[i]` has id `i + FIRST_ID`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "FieldVocabFile", into = "FieldVocabFile")]
pub struct FieldVocab {
    pub name: String,
    keys: Vec<u64>,
    index: KeyMap<u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldVocabFile {
    name: String,
    keys: Vec<u64>,
}

impl From<FieldVocabFile> for FieldVocab {
    fn from(f: FieldVocabFile) -> Self {
        FieldVocab::new(f.name, f.keys)
    }
}

impl From<FieldVocab> for FieldVocabFile {
    fn from(f: FieldVocab) -> Self {
        FieldVocabFile {
            name: f.name,
            keys: f.keys,
        }
    }
}

impl FieldVocab {
    /// A field whose entry `i` (id `i + FIRST_ID`) is `keys[i]`; keys must be distinct.
    pub fn new(name: String, keys: Vec<u64>) -> Self {
        let index = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, i as u32 + FIRST_ID))
            .collect();
        FieldVocab { name, keys, index }
    }

    /// Id of a raw key ([`OOV_ID`] when unseen).
    pub fn id(&self, key: u64) -> u32 {
        self.index.get(&key).copied().unwrap_or(OOV_ID)
    }

    /// Number of entries (without padding and OOV).
    pub fn entries(&self) -> usize {
        self.keys.len()
    }

    /// Raw keys of the entries, in id order (`keys()[i]` has id `i + FIRST_ID`).
    pub fn keys(&self) -> &[u64] {
        &self.keys
    }

    /// Raw key of an entry id, if it is one.
    pub fn key(&self, id: u32) -> Option<u64> {
        let i = id.checked_sub(FIRST_ID)? as usize;
        self.keys.get(i).copied()
    }
}

/// How one numeric field is scaled: `(v - mean) / std` with the training days' statistics.
///
/// A numeric field enters every model as its value times a learned vector, so an unscaled
/// price of 80 weighs 80 times an id's embedding: it swamps the pairwise terms of FM-style
/// models and slows the linear ones. Heavy-tailed counts should also be log-transformed first,
/// which table sources do with `numeric_log1p`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumScale {
    pub mean: f32,
    pub std: f32,
}

impl NumScale {
    /// The identity scaling.
    pub const IDENTITY: NumScale = NumScale {
        mean: 0.0,
        std: 1.0,
    };

    /// A scaled value.
    pub fn apply(&self, v: f32) -> f32 {
        (v - self.mean) / self.std
    }
}

/// Running sums of the values of each numeric field while fitting.
#[derive(Clone, Debug, Default)]
struct NumMoments {
    n: Vec<f64>,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

impl NumMoments {
    fn new(fields: usize) -> Self {
        NumMoments {
            n: vec![0.0; fields],
            sum: vec![0.0; fields],
            sum_sq: vec![0.0; fields],
        }
    }

    /// Adds a day whose numeric field count the caller ([`KeyCounts::add`]) has checked.
    fn add(&mut self, raw: &RawDay) {
        let nn = self.n.len();
        if nn == 0 {
            return;
        }
        for (i, &v) in raw.num.iter().enumerate() {
            let x = v as f64;
            if x.is_finite() {
                let j = i % nn;
                self.n[j] += 1.0;
                self.sum[j] += x;
                self.sum_sq[j] += x * x;
            }
        }
    }

    /// Mean and standard deviation per field; a constant (or empty) field keeps std 1.
    fn scales(&self) -> Vec<NumScale> {
        (0..self.n.len())
            .map(|j| {
                if self.n[j] == 0.0 {
                    return NumScale::IDENTITY;
                }
                let mean = self.sum[j] / self.n[j];
                let var = (self.sum_sq[j] / self.n[j] - mean * mean).max(0.0);
                let std = var.sqrt();
                NumScale {
                    mean: mean as f32,
                    std: if std > 1e-6 { std as f32 } else { 1.0 },
                }
            })
            .collect()
    }
}

/// The vocabularies of every categorical field, the numeric field names and their scaling.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vocabulary {
    pub fields: Vec<FieldVocab>,
    pub num_fields: Vec<String>,
    /// One scaling per numeric field. Empty in vocabularies written before scaling existed:
    /// their numeric values pass through unchanged, so old sessions replay as they ran.
    #[serde(default)]
    pub num_scale: Vec<NumScale>,
    pub user_field: Option<String>,
    pub min_count: u32,
}

impl Vocabulary {
    /// Counts keys over `days` and keeps those seen at least `min_count` times, most frequent
    /// first (ties by key), so small ids are the popular ones.
    pub fn fit(source: &dyn DaySource, days: &[usize], min_count: u32) -> Result<Vocabulary> {
        let mut counts = KeyCounts::new(source.cat_fields().len(), source.num_fields().len());
        for &d in days {
            source
                .day_chunks(d, &mut |raw| {
                    counts.add(&raw)?;
                    Ok(ControlFlow::Continue(()))
                })
                .with_context(|| format!("fitting the vocabulary on day {d}"))?;
        }
        Ok(counts.into_vocabulary(source, min_count))
    }

    /// Like [`Vocabulary::fit`] on days already in memory (`source` gives the field names).
    pub fn fit_raw(source: &dyn DaySource, days: &[RawDay], min_count: u32) -> Result<Vocabulary> {
        let mut counts = KeyCounts::new(source.cat_fields().len(), source.num_fields().len());
        for raw in days {
            counts.add(raw)?;
        }
        Ok(counts.into_vocabulary(source, min_count))
    }

    /// Encodes a raw day: keys not in the vocabulary become [`OOV_ID`], numeric values are
    /// scaled by [`Vocabulary::num_scale`] (non-finite ones become 0, the training mean).
    pub fn encode(&self, raw: &RawDay) -> Batch {
        let mut out = Batch::empty(raw.num_cat, raw.num_num);
        self.encode_into(raw, &mut out);
        out
    }

    /// Encodes `raw` like [`Vocabulary::encode`] and appends its rows to `out` (a day read a
    /// chunk at a time is encoded without ever being whole in raw form).
    pub fn encode_into(&self, raw: &RawDay, out: &mut Batch) {
        let nc = self.fields.len();
        debug_assert_eq!(raw.num_cat, nc);
        debug_assert_eq!((out.num_cat, out.num_num), (raw.num_cat, raw.num_num));
        // Users stay known only while every row's user is known.
        let had_users = out.users.len() == out.rows();
        out.cat.extend(
            raw.cat
                .iter()
                .enumerate()
                .map(|(i, &k)| self.fields[i % nc.max(1)].id(k)),
        );
        let nn = raw.num_num;
        if self.num_scale.len() == nn && nn > 0 {
            out.num.extend(raw.num.iter().enumerate().map(|(i, &v)| {
                let x = self.num_scale[i % nn].apply(v);
                if x.is_finite() {
                    x
                } else {
                    0.0
                }
            }));
        } else {
            out.num.extend_from_slice(&raw.num);
        }
        let user = self
            .user_field
            .as_ref()
            .and_then(|u| self.fields.iter().position(|f| &f.name == u));
        match user {
            Some(f) if had_users => out.users.extend(raw.field_keys(f)),
            _ => out.users.clear(),
        }
        out.label.extend_from_slice(&raw.label);
    }

    /// Field names and table sizes (entries + padding + OOV) for the models.
    pub fn feature_spec(&self) -> FeatureSpec {
        FeatureSpec {
            cat: self
                .fields
                .iter()
                .map(|f| CatField {
                    name: f.name.clone(),
                    vocab: f.entries() + FIRST_ID as usize,
                })
                .collect(),
            num: self.num_fields.clone(),
            user_field: self.user_field.clone(),
        }
    }

    /// SHA-256 (hex) of everything that decides how a raw row becomes model input: field names
    /// in order, every field's keys in id order, the numeric fields and their scaling, the user
    /// field. Two vocabularies with the same table sizes but another id -> row map differ here.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"crossadapt-vocabulary-v1\0");
        h.update((self.fields.len() as u64).to_le_bytes());
        for f in &self.fields {
            h.update(f.name.as_bytes());
            h.update([0u8]);
            h.update((f.keys.len() as u64).to_le_bytes());
            for k in &f.keys {
                h.update(k.to_le_bytes());
            }
        }
        h.update((self.num_fields.len() as u64).to_le_bytes());
        for n in &self.num_fields {
            h.update(n.as_bytes());
            h.update([0u8]);
        }
        h.update((self.num_scale.len() as u64).to_le_bytes());
        for s in &self.num_scale {
            h.update(s.mean.to_bits().to_le_bytes());
            h.update(s.std.to_bits().to_le_bytes());
        }
        if let Some(u) = &self.user_field {
            h.update(b"user\0");
            h.update(u.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Writes the vocabulary as JSON, atomically (temp file in the same folder, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).context("serialising the vocabulary")?;
        crate::atomic::write_atomic(path, &json)
    }

    /// Reads a vocabulary written by [`Vocabulary::save`].
    pub fn load(path: &Path) -> Result<Vocabulary> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read vocabulary file {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a valid vocabulary file", path.display()))
    }
}

/// Key counts per field and numeric moments while fitting.
struct KeyCounts {
    keys: Vec<KeyMap<u32>>,
    num: NumMoments,
}

impl KeyCounts {
    fn new(fields: usize, num_fields: usize) -> Self {
        KeyCounts {
            keys: vec![KeyMap::default(); fields],
            num: NumMoments::new(num_fields),
        }
    }

    fn add(&mut self, raw: &RawDay) -> Result<()> {
        if raw.num_cat != self.keys.len() {
            bail!(
                "the day has {} categorical fields, the source names {}",
                raw.num_cat,
                self.keys.len()
            );
        }
        if raw.num_num != self.num.n.len() {
            bail!(
                "the day has {} numeric fields, the source names {}",
                raw.num_num,
                self.num.n.len()
            );
        }
        for (f, c) in self.keys.iter_mut().enumerate() {
            for k in raw.field_keys(f) {
                *c.entry(k).or_insert(0) += 1;
            }
        }
        self.num.add(raw);
        Ok(())
    }

    fn into_vocabulary(self, source: &dyn DaySource, min_count: u32) -> Vocabulary {
        let fields = source
            .cat_fields()
            .into_iter()
            .zip(self.keys)
            .map(|(name, c)| {
                let mut kept: Vec<(u64, u32)> =
                    c.into_iter().filter(|&(_, n)| n >= min_count).collect();
                kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                FieldVocab::new(name, kept.into_iter().map(|(k, _)| k).collect())
            })
            .collect();
        Vocabulary {
            fields,
            num_fields: source.num_fields(),
            num_scale: self.num.scales(),
            user_field: source.user_field(),
            min_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(num: Vec<f32>, nn: usize) -> RawDay {
        let rows = num.len() / nn;
        RawDay {
            num_cat: 0,
            num_num: nn,
            cat: vec![],
            num,
            label: vec![0.0; rows],
        }
    }

    #[test]
    fn moments_give_mean_and_deviation_per_field() {
        let mut m = NumMoments::new(2);
        // Field 0: 1, 3 (mean 2, std 1); field 1: constant 5.
        m.add(&day(vec![1.0, 5.0, 3.0, 5.0], 2));
        let s = m.scales();
        assert_eq!(
            s[0],
            NumScale {
                mean: 2.0,
                std: 1.0
            }
        );
        // A constant field is centred but keeps unit scale instead of dividing by zero.
        assert_eq!(
            s[1],
            NumScale {
                mean: 5.0,
                std: 1.0
            }
        );
        assert_eq!(s[0].apply(4.0), 2.0);
    }

    /// Encoding keeps each row's raw user key beside its id, so users the vocabulary has not
    /// seen (all OOV) stay apart for gAUC.
    #[test]
    fn encode_keeps_the_raw_user_keys_of_unseen_users() {
        let v = Vocabulary {
            fields: vec![
                FieldVocab::new("item".into(), vec![5]),
                FieldVocab::new("user".into(), vec![10]),
            ],
            num_fields: vec![],
            num_scale: vec![],
            user_field: Some("user".into()),
            min_count: 1,
        };
        let raw = RawDay {
            num_cat: 2,
            num_num: 0,
            cat: vec![5, 10, 5, 77, 6, 88],
            num: vec![],
            label: vec![1.0, 0.0, 1.0],
        };
        let b = v.encode(&raw);
        assert_eq!(
            b.field_column(1).collect::<Vec<_>>(),
            vec![FIRST_ID, OOV_ID, OOV_ID]
        );
        assert_eq!(b.users, vec![10, 77, 88]);
        let anonymous = Vocabulary {
            user_field: None,
            ..v
        };
        assert!(anonymous.encode(&raw).users.is_empty());
    }

    #[test]
    fn fingerprint_sees_the_id_map_not_only_the_sizes() {
        let v = |keys: Vec<u64>| Vocabulary {
            fields: vec![FieldVocab::new("a".into(), keys)],
            num_fields: vec![],
            num_scale: vec![],
            user_field: None,
            min_count: 2,
        };
        let (a, b) = (v(vec![10, 20]), v(vec![20, 10]));
        assert_eq!(a.feature_spec(), b.feature_spec());
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), v(vec![10, 20]).fingerprint());
        let mut c = v(vec![10, 20]);
        c.num_fields = vec!["x".into()];
        c.num_scale = vec![NumScale::IDENTITY];
        let mut d = c.clone();
        d.num_scale[0].mean = 0.5;
        assert_ne!(c.fingerprint(), d.fingerprint());
    }

    #[test]
    fn non_finite_values_are_skipped_when_fitting() {
        let mut m = NumMoments::new(1);
        m.add(&day(vec![2.0, f32::NAN, 4.0, f32::INFINITY], 1));
        assert_eq!(
            m.scales()[0],
            NumScale {
                mean: 3.0,
                std: 1.0
            }
        );
        // An empty field is the identity.
        assert_eq!(NumMoments::new(1).scales()[0], NumScale::IDENTITY);
    }
}
