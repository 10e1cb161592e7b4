//! [`Pool`]: the retained days, encoded once into a file and read back by row index.
//!
//! The strategic sampler (1B/1C), the baselines' offline epochs and the online replay all read
//! the retained days. Held in memory they cost every retained row at once, which at two million
//! rows a day is more than the whole session may use. The pool instead keeps only the labels
//! resident (the sampler stratifies on them) and writes the encoded rows to an unlinked file in
//! the day cache's folder, so a sample or a replay draw costs the rows it reads and the operating
//! system's page cache, not the process, holds the rest.
//!
//! A record is one row: its categorical ids (`u32`), its numeric values (`f32`) and its label
//! (`f32`), little-endian, so row `r` sits at `r * row_bytes`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};

use super::batch::Batch;

/// Reading the whole span between the first and last requested row in one call beats one call
/// per row while the span is at most this many times the rows wanted...
const SPAN_FACTOR: usize = 16;
/// ...or at most this many bytes (a sampler window, read whole, is cheaper than its draws).
const SPAN_BYTES: usize = 4 << 20;
/// Rows encoded per write while the pool is built.
const WRITE_ROWS: usize = 65_536;

/// The encoded retained rows, in time order, on disk; labels in memory.
pub struct Pool {
    num_cat: usize,
    num_num: usize,
    label: Vec<f32>,
    file: File,
}

impl Pool {
    /// Writes `days` (each an encoded day, in order) into a new pool whose file lives in `dir`
    /// (the day cache's folder when there is one, else the system's temporary folder). The file
    /// is unlinked at once: it disappears with the process, even one that crashes.
    pub fn build(
        num_cat: usize,
        num_num: usize,
        dir: Option<&Path>,
        days: impl IntoIterator<Item = Result<Batch>>,
    ) -> Result<Pool> {
        // A cache folder that cannot be written (read-only, a file in its place) costs the
        // pool its location, not the run: the system's temporary folder takes it.
        let file = match dir {
            Some(d) => std::fs::create_dir_all(d)
                .and_then(|()| tempfile::tempfile_in(d))
                .or_else(|e| {
                    tracing::warn!(
                        "the retained pool cannot go to {} ({e}); using {}",
                        d.display(),
                        std::env::temp_dir().display()
                    );
                    tempfile::tempfile()
                }),
            None => tempfile::tempfile(),
        }
        .context("creating the retained pool's file in the temporary folder")?;
        let mut pool = Pool {
            num_cat,
            num_num,
            label: Vec::new(),
            file,
        };
        let mut out = BufWriter::with_capacity(1 << 20, &pool.file);
        let mut bytes = Vec::new();
        for day in days {
            let day = day?;
            anyhow::ensure!(
                day.num_cat == num_cat && day.num_num == num_num,
                "a retained day has {} categorical and {} numeric fields, the pool {num_cat} and \
                 {num_num}",
                day.num_cat,
                day.num_num
            );
            for start in (0..day.rows()).step_by(WRITE_ROWS) {
                let end = (start + WRITE_ROWS).min(day.rows());
                bytes.clear();
                for r in start..end {
                    encode_row(&day, r, &mut bytes);
                }
                out.write_all(&bytes)
                    .context("writing the retained pool (is the disk full?)")?;
            }
            pool.label.extend_from_slice(&day.label);
        }
        out.flush()
            .context("writing the retained pool (is the disk full?)")?;
        drop(out);
        Ok(pool)
    }

    /// A pool of one batch's rows in the system's temporary folder (tests, small tools).
    pub fn from_batch(batch: &Batch) -> Result<Pool> {
        Pool::build(batch.num_cat, batch.num_num, None, [Ok(batch.clone())])
    }

    pub fn rows(&self) -> usize {
        self.label.len()
    }

    pub fn is_empty(&self) -> bool {
        self.label.is_empty()
    }

    pub fn num_cat(&self) -> usize {
        self.num_cat
    }

    pub fn num_num(&self) -> usize {
        self.num_num
    }

    /// Every row's label, in pool order (resident: the sampler stratifies on them).
    pub fn labels(&self) -> &[f32] {
        &self.label
    }

    /// Bytes of the pool's file.
    pub fn file_bytes(&self) -> u64 {
        (self.rows() * self.row_bytes()) as u64
    }

    fn row_bytes(&self) -> usize {
        (self.num_cat + self.num_num + 1) * 4
    }

    /// Rows `start..end` (clamped), in order: one read.
    pub fn slice(&self, start: usize, end: usize) -> Result<Batch> {
        let end = end.min(self.rows());
        let start = start.min(end);
        let mut out = self.empty_with(end - start);
        let mut buf = vec![0u8; (end - start) * self.row_bytes()];
        self.read_at(start, &mut buf)?;
        for rec in buf.chunks_exact(self.row_bytes()) {
            self.decode_row(rec, &mut out);
        }
        Ok(out)
    }

    /// The given rows, in the given order (repeats allowed). Rows close together are read in
    /// one call; rows spread over the pool one call each.
    pub fn gather(&self, rows: &[usize]) -> Result<Batch> {
        let mut out = self.empty_with(rows.len());
        let (Some(&lo), Some(&hi)) = (rows.iter().min(), rows.iter().max()) else {
            return Ok(out);
        };
        anyhow::ensure!(
            hi < self.rows(),
            "row {hi} is outside the retained pool of {} rows",
            self.rows()
        );
        let rb = self.row_bytes();
        let span = hi - lo + 1;
        if span <= SPAN_FACTOR * rows.len() || span * rb <= SPAN_BYTES {
            let mut buf = vec![0u8; span * rb];
            self.read_at(lo, &mut buf)?;
            for &r in rows {
                self.decode_row(&buf[(r - lo) * rb..(r - lo + 1) * rb], &mut out);
            }
        } else {
            let mut rec = vec![0u8; rb];
            for &r in rows {
                self.read_at(r, &mut rec)?;
                self.decode_row(&rec, &mut out);
            }
        }
        Ok(out)
    }

    /// Consecutive batches of at most `size` rows, in order, each read when it is reached.
    pub fn chunks(&self, size: usize) -> impl Iterator<Item = Result<Batch>> + '_ {
        let size = size.max(1);
        (0..self.rows())
            .step_by(size)
            .map(move |s| self.slice(s, s + size))
    }

    fn empty_with(&self, rows: usize) -> Batch {
        let mut b = Batch::empty(self.num_cat, self.num_num);
        b.cat.reserve(rows * self.num_cat);
        b.num.reserve(rows * self.num_num);
        b.label.reserve(rows);
        b
    }

    fn read_at(&self, row: usize, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, (row * self.row_bytes()) as u64)
            .with_context(|| format!("reading row {row} of the retained pool's file"))
    }

    fn decode_row(&self, rec: &[u8], out: &mut Batch) {
        let (cat, rest) = rec.split_at(self.num_cat * 4);
        let (num, label) = rest.split_at(self.num_num * 4);
        out.cat.extend(
            cat.chunks_exact(4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("four bytes"))),
        );
        out.num.extend(
            num.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("four bytes"))),
        );
        out.label
            .push(f32::from_le_bytes(label.try_into().expect("four bytes")));
    }
}

fn encode_row(day: &Batch, r: usize, out: &mut Vec<u8>) {
    for v in day.cat_row(r) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in day.num_row(r) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&day.label[r].to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(rows: usize, offset: u32) -> Batch {
        Batch {
            num_cat: 3,
            num_num: 2,
            cat: (0..rows * 3).map(|i| i as u32 * 7 + offset).collect(),
            num: (0..rows * 2)
                .map(|i| i as f32 * 0.5 - offset as f32)
                .collect(),
            label: (0..rows).map(|i| (i % 3 == 0) as u8 as f32).collect(),
            users: vec![9; rows],
        }
    }

    fn both_days() -> (Batch, Pool) {
        let (a, b) = (day(40, 1), day(25, 1000));
        let mut all = a.clone().without_users();
        all.extend(&b);
        let pool = Pool::build(3, 2, None, [Ok(a), Ok(b)]).unwrap();
        (all, pool)
    }

    #[test]
    fn reads_back_what_the_days_held() {
        let (all, pool) = both_days();
        assert_eq!(pool.rows(), 65);
        assert_eq!(pool.labels(), &all.label[..]);
        assert_eq!(pool.file_bytes(), 65 * 6 * 4);
        assert_eq!(pool.slice(0, 1000).unwrap(), all);
        assert_eq!(pool.slice(38, 43).unwrap(), all.slice(38, 43));
        assert_eq!(pool.slice(70, 80).unwrap().rows(), 0);
        let chunks: Vec<Batch> = pool.chunks(16).map(|c| c.unwrap()).collect();
        assert_eq!(chunks.len(), 5);
        let mut joined = Batch::empty(3, 2);
        chunks.iter().for_each(|c| joined.extend(c));
        assert_eq!(joined, all);
    }

    #[test]
    fn gathers_in_the_order_asked_whether_near_or_far() {
        let (all, pool) = both_days();
        // A pool this small is always read as one span; the next test takes the other path.
        for rows in [vec![5, 3, 3, 4], vec![64, 0], vec![0, 64, 10, 10, 33]] {
            assert_eq!(pool.gather(&rows).unwrap(), all.gather(&rows), "{rows:?}");
        }
        assert_eq!(pool.gather(&[]).unwrap().rows(), 0);
        let err = pool.gather(&[2, 65]).unwrap_err().to_string();
        assert!(err.contains("row 65 is outside"), "{err}");
    }

    #[test]
    fn the_row_by_row_path_matches_the_span_path() {
        // A pool large enough that two distant rows exceed both span limits.
        let big = day(SPAN_BYTES / 24 + 100, 3);
        let pool = Pool::build(3, 2, None, [Ok(big.clone())]).unwrap();
        let rows = [pool.rows() - 1, 0, pool.rows() / 2];
        assert_eq!(
            pool.gather(&rows).unwrap(),
            big.without_users().gather(&rows)
        );
    }

    #[test]
    fn an_unwritable_folder_falls_back_to_the_temporary_folder() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"x").unwrap();
        let pool = Pool::build(3, 2, Some(&not_a_dir), [Ok(day(5, 0))]).unwrap();
        assert_eq!(pool.slice(0, 5).unwrap(), day(5, 0).without_users());
    }

    #[test]
    fn a_day_of_another_shape_is_refused() {
        let err = Pool::build(3, 2, None, [Ok(day(2, 0)), Ok(Batch::empty(4, 2))])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("4 categorical"), "{err}");
    }
}
