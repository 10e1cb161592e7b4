//! Per-field vocabulary: raw key -> id, with padding id 0, OOV id 1 and entries from 2.
//!
//! Fitted on training days with a min-count cut-off, saved with the model so later days and
//! other models (the student inherits the teacher's) reuse the same id -> row map.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
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
    fn new(name: String, keys: Vec<u64>) -> Self {
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

    /// Raw key of an entry id, if it is one.
    pub fn key(&self, id: u32) -> Option<u64> {
        let i = id.checked_sub(FIRST_ID)? as usize;
        self.keys.get(i).copied()
    }
}

/// The vocabularies of every categorical field plus the numeric field names.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vocabulary {
    pub fields: Vec<FieldVocab>,
    pub num_fields: Vec<String>,
    pub user_field: Option<String>,
    pub min_count: u32,
}

impl Vocabulary {
    /// Counts keys over `days` and keeps those seen at least `min_count` times, most frequent
    /// first (ties by key), so small ids are the popular ones.
    pub fn fit(source: &dyn DaySource, days: &[usize], min_count: u32) -> Result<Vocabulary> {
        let mut counts = KeyCounts::new(source.cat_fields().len());
        for &d in days {
            let raw = source
                .raw_day(d)
                .with_context(|| format!("fitting the vocabulary on day {d}"))?;
            counts.add(&raw).with_context(|| format!("day {d}"))?;
        }
        Ok(counts.into_vocabulary(source, min_count))
    }

    /// Like [`Vocabulary::fit`] on days already in memory (`source` gives the field names).
    pub fn fit_raw(source: &dyn DaySource, days: &[RawDay], min_count: u32) -> Result<Vocabulary> {
        let mut counts = KeyCounts::new(source.cat_fields().len());
        for raw in days {
            counts.add(raw)?;
        }
        Ok(counts.into_vocabulary(source, min_count))
    }

    /// Encodes a raw day; keys not in the vocabulary become [`OOV_ID`].
    pub fn encode(&self, raw: &RawDay) -> Batch {
        let nc = self.fields.len();
        debug_assert_eq!(raw.num_cat, nc);
        let cat = raw
            .cat
            .iter()
            .enumerate()
            .map(|(i, &k)| self.fields[i % nc.max(1)].id(k))
            .collect();
        Batch {
            num_cat: raw.num_cat,
            num_num: raw.num_num,
            cat,
            num: raw.num.clone(),
            label: raw.label.clone(),
        }
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

/// Key counts per field while fitting.
struct KeyCounts(Vec<KeyMap<u32>>);

impl KeyCounts {
    fn new(fields: usize) -> Self {
        KeyCounts(vec![KeyMap::default(); fields])
    }

    fn add(&mut self, raw: &RawDay) -> Result<()> {
        if raw.num_cat != self.0.len() {
            bail!(
                "the day has {} categorical fields, the source names {}",
                raw.num_cat,
                self.0.len()
            );
        }
        for (f, c) in self.0.iter_mut().enumerate() {
            for k in raw.field_keys(f) {
                *c.entry(k).or_insert(0) += 1;
            }
        }
        Ok(())
    }

    fn into_vocabulary(self, source: &dyn DaySource, min_count: u32) -> Vocabulary {
        let fields = source
            .cat_fields()
            .into_iter()
            .zip(self.0)
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
            user_field: source.user_field(),
            min_count,
        }
    }
}
