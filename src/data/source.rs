//! A source of raw days: rows of raw categorical keys, numeric values and labels, in time order.
//!
//! Every source (the synthetic stream, Criteo, Avazu, a generic table) produces [`RawDay`]s one
//! day at a time; the [`Vocabulary`](super::vocab::Vocabulary) turns them into encoded
//! [`Batch`](super::batch::Batch)es.

use std::ops::ControlFlow;

/// Raw key of a missing categorical value (null in a file).
pub const NULL_KEY: u64 = u64::MAX;

/// Rows per chunk of a streamed day read ([`DaySource::day_chunks`]): enough that per-chunk
/// costs vanish, few enough that a chunk stays small beside the encoded day at wide schemas.
pub const STREAM_ROWS: usize = 1 << 18;

/// What a chunk visitor of [`DaySource::day_chunks`] answers: go on, or stop reading the day.
pub type Visit = anyhow::Result<ControlFlow<()>>;

/// One day of raw rows, row-major like [`Batch`](super::batch::Batch) but with raw keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawDay {
    pub num_cat: usize,
    pub num_num: usize,
    /// `cat[r * num_cat + f]`: raw key of row `r` in field `f` (strings hashed with
    /// [`string_key`], integers as they are, missing values [`NULL_KEY`]).
    pub cat: Vec<u64>,
    /// `num[r * num_num + j]`: numeric value (missing values are 0).
    pub num: Vec<f32>,
    /// 0.0 or 1.0 per row.
    pub label: Vec<f32>,
}

impl RawDay {
    /// An empty day with the given field counts.
    pub fn empty(num_cat: usize, num_num: usize) -> Self {
        RawDay {
            num_cat,
            num_num,
            ..Default::default()
        }
    }

    /// An empty day with room for `rows` rows.
    pub fn with_capacity(num_cat: usize, num_num: usize, rows: usize) -> Self {
        RawDay {
            num_cat,
            num_num,
            cat: Vec::with_capacity(rows * num_cat),
            num: Vec::with_capacity(rows * num_num),
            label: Vec::with_capacity(rows),
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.label.len()
    }

    /// Appends the rows of `other` (same field counts).
    pub fn extend(&mut self, other: &RawDay) {
        debug_assert_eq!((self.num_cat, self.num_num), (other.num_cat, other.num_num));
        self.cat.extend_from_slice(&other.cat);
        self.num.extend_from_slice(&other.num);
        self.label.extend_from_slice(&other.label);
    }

    /// Its first `rows` rows (all of them when it has fewer).
    pub fn head(&self, rows: usize) -> RawDay {
        let n = rows.min(self.rows());
        RawDay {
            num_cat: self.num_cat,
            num_num: self.num_num,
            cat: self.cat[..n * self.num_cat].to_vec(),
            num: self.num[..n * self.num_num].to_vec(),
            label: self.label[..n].to_vec(),
        }
    }

    /// Raw keys of one categorical field, one per row.
    pub fn field_keys(&self, f: usize) -> impl Iterator<Item = u64> + '_ {
        self.cat
            .iter()
            .skip(f)
            .step_by(self.num_cat.max(1))
            .copied()
    }

    /// Share of positive rows (NaN when empty).
    pub fn positive_rate(&self) -> f64 {
        if self.label.is_empty() {
            return f64::NAN;
        }
        self.label.iter().map(|&y| y as f64).sum::<f64>() / self.label.len() as f64
    }
}

/// Where days come from. Implementations produce any day on its own (no need to produce the
/// days before it): the synthetic stream generates it, a table holds its days read at open.
pub trait DaySource: Send + Sync {
    /// One line for logs and the console, e.g. `synthetic(default, seed 7)`.
    fn describe(&self) -> String;
    /// Number of days, numbered `0..num_days()` in time order.
    fn num_days(&self) -> usize;
    /// Names of the categorical fields, in column order.
    fn cat_fields(&self) -> Vec<String>;
    /// Names of the numeric fields, in column order.
    fn num_fields(&self) -> Vec<String>;
    /// The categorical field that identifies the user (for gAUC), if any.
    fn user_field(&self) -> Option<String>;
    /// The rows of day `day`, in time order.
    fn raw_day(&self, day: usize) -> anyhow::Result<RawDay>;
    /// The rows of day `day` in time order, a chunk of whole rows at a time, until `visit`
    /// answers `Break`. A reader that encodes or summarises a day needs only this, so the day's
    /// raw keys are never all in memory at once. The default hands over [`DaySource::raw_day`]
    /// as one chunk; the generator and the day cache produce [`STREAM_ROWS`]-row chunks.
    fn day_chunks(&self, day: usize, visit: &mut dyn FnMut(RawDay) -> Visit) -> anyhow::Result<()> {
        // One chunk: there is nothing left to stop reading.
        let _ = visit(self.raw_day(day)?)?;
        Ok(())
    }
    /// Number of rows of day `day`. The default reads the day (a chunk at a time); sources
    /// that know it without reading override it.
    fn day_rows(&self, day: usize) -> anyhow::Result<usize> {
        let mut rows = 0;
        self.day_chunks(day, &mut |chunk| {
            rows += chunk.rows();
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(rows)
    }
    /// Fails (one sentence naming the label rule and the days) when the labels of the training
    /// days (history and retained) are all negative or all positive, so the run stops before
    /// training on nothing. Sources that cannot be one-class (the synthetic stream) keep the
    /// default.
    fn check_training_labels(&self, _days: &[u32]) -> anyhow::Result<()> {
        Ok(())
    }
}

/// SplitMix64 finaliser: a fast, well-mixed 64-bit hash of a 64-bit value.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Deterministic key of a string value (FNV-1a, then mixed); never [`NULL_KEY`]. The same
/// string gives the same key on every machine and run.
pub fn string_key(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    let k = mix64(h);
    if k == NULL_KEY {
        NULL_KEY - 1
    } else {
        k
    }
}

/// Key of a text cell read from a file: a plain non-negative integer keeps its value (so ids
/// written as numbers round-trip), anything else is hashed with [`string_key`]; empty is missing.
pub fn text_key(s: &str) -> u64 {
    if s.is_empty() {
        return NULL_KEY;
    }
    match s.parse::<u64>() {
        Ok(v) if v != NULL_KEY => v,
        _ => string_key(s),
    }
}

/// Key of an integer cell: its value (negative values wrap, staying distinct).
pub fn int_key(v: i64) -> u64 {
    let k = v as u64;
    if k == NULL_KEY {
        NULL_KEY - 1
    } else {
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(string_key("68fd1e64"), string_key("68fd1e64"));
        assert_ne!(string_key("a"), string_key("b"));
        assert_eq!(text_key("42"), 42);
        assert_eq!(text_key(""), NULL_KEY);
        assert_eq!(text_key("x42"), string_key("x42"));
        assert_ne!(int_key(-1), NULL_KEY);
        // Known value: guards against an accidental change of the hash (it would silently
        // invalidate every saved vocabulary).
        assert_eq!(string_key(""), mix64(0xcbf2_9ce4_8422_2325));
    }
}
