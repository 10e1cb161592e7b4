//! [`Pool`]: encoded rows written once into a file and read back by row index: the retained
//! days, and each day a run reads.
//!
//! The strategic sampler (1B/1C), the baselines' offline epochs and the online replay all read
//! the retained days. Held in memory they cost every retained row at once, which at two million
//! rows a day is more than the whole session may use. The pool instead keeps only the labels
//! resident (the sampler stratifies on them) and writes the encoded rows to an unlinked file in
//! the day cache's folder, so a sample or a replay draw costs the rows it reads and the operating
//! system's page cache, not the process, holds the rest. A day a run trains or evaluates on is
//! kept the same way ([`PoolWriter`], written a chunk at a time as the day is read, with each
//! row's user kept beside its label for the day's gAUC).
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

/// Encoded rows in order, on disk; labels (and, when asked for, users) in memory.
pub struct Pool {
    num_cat: usize,
    num_num: usize,
    label: Vec<f32>,
    /// Each row's user key, when kept and known for every row (empty otherwise).
    users: Vec<u64>,
    file: File,
    /// What the rows are, for error messages (`the retained pool`, `day 12`).
    name: String,
}

/// Builds a [`Pool`] from batches pushed in order: a day read a chunk at a time is written as
/// it arrives and never held whole.
pub struct PoolWriter {
    num_cat: usize,
    num_num: usize,
    label: Vec<f32>,
    users: Option<Vec<u64>>,
    out: BufWriter<File>,
    bytes: Vec<u8>,
    name: String,
}

impl PoolWriter {
    /// A writer whose unlinked file lives in `dir` (the day cache's folder when there is one,
    /// else the system's temporary folder). `keep_users` keeps each row's user key in memory
    /// (for gAUC) while every pushed batch has them.
    pub fn create(
        num_cat: usize,
        num_num: usize,
        dir: Option<&Path>,
        keep_users: bool,
        name: &str,
    ) -> Result<PoolWriter> {
        // A cache folder that cannot be written (read-only, a file in its place) costs the
        // pool its location, not the run: the system's temporary folder takes it.
        let file = match dir {
            Some(d) => std::fs::create_dir_all(d)
                .and_then(|()| tempfile::tempfile_in(d))
                .or_else(|e| {
                    tracing::warn!(
                        "{name} cannot go to {} ({e}); using {}",
                        d.display(),
                        std::env::temp_dir().display()
                    );
                    tempfile::tempfile()
                }),
            None => tempfile::tempfile(),
        }
        .with_context(|| format!("creating the file of {name} in the temporary folder"))?;
        Ok(PoolWriter {
            num_cat,
            num_num,
            label: Vec::new(),
            users: keep_users.then(Vec::new),
            out: BufWriter::with_capacity(1 << 20, file),
            bytes: Vec::new(),
            name: name.to_string(),
        })
    }

    /// Appends the rows of `batch`.
    pub fn push(&mut self, batch: &Batch) -> Result<()> {
        anyhow::ensure!(
            batch.num_cat == self.num_cat && batch.num_num == self.num_num,
            "rows with {} categorical and {} numeric fields cannot join {}, which has {} and {}",
            batch.num_cat,
            batch.num_num,
            self.name,
            self.num_cat,
            self.num_num
        );
        for start in (0..batch.rows()).step_by(WRITE_ROWS) {
            let end = (start + WRITE_ROWS).min(batch.rows());
            self.bytes.clear();
            for r in start..end {
                encode_row(batch, r, &mut self.bytes);
            }
            self.out
                .write_all(&self.bytes)
                .with_context(|| format!("writing {} (is the disk full?)", self.name))?;
        }
        self.label.extend_from_slice(&batch.label);
        // Users stay known only while every row's user is known.
        if let Some(users) = &mut self.users {
            if batch.users.len() == batch.rows() {
                users.extend_from_slice(&batch.users);
            } else {
                self.users = None;
            }
        }
        Ok(())
    }

    /// The finished pool.
    pub fn finish(self) -> Result<Pool> {
        let name = self.name;
        let file = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {name} (is the disk full?)"))?;
        Ok(Pool {
            num_cat: self.num_cat,
            num_num: self.num_num,
            label: self.label,
            users: self.users.unwrap_or_default(),
            file,
            name,
        })
    }
}

impl Pool {
    /// Writes `days` (each an encoded day, in order) into a new pool whose file lives in `dir`
    /// (the day cache's folder when there is one, else the system's temporary folder). The file
    /// is unlinked at once: it disappears with the process, even one that crashes. Users are
    /// not kept (a training pool never groups by user).
    pub fn build(
        num_cat: usize,
        num_num: usize,
        dir: Option<&Path>,
        days: impl IntoIterator<Item = Result<Batch>>,
    ) -> Result<Pool> {
        let mut writer = PoolWriter::create(num_cat, num_num, dir, false, "the retained pool")?;
        for day in days {
            writer.push(&day?)?;
        }
        writer.finish()
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

    /// Every row's user key when they were kept and known for every row.
    pub fn users(&self) -> Option<&[u64]> {
        (self.users.len() == self.rows() && !self.users.is_empty()).then_some(&self.users[..])
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
            "row {hi} is outside {} of {} rows",
            self.name,
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
            .with_context(|| format!("reading row {row} of the file of {}", self.name))
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
    fn a_writer_keeps_users_only_when_asked_and_known_for_every_row() {
        let mut w = PoolWriter::create(3, 2, None, true, "day 3").unwrap();
        w.push(&day(4, 0)).unwrap();
        w.push(&day(2, 1)).unwrap();
        let kept = w.finish().unwrap();
        assert_eq!(kept.users(), Some(&[9u64; 6][..]));
        assert_eq!(kept.labels().len(), 6);
        let mut w = PoolWriter::create(3, 2, None, true, "day 3").unwrap();
        w.push(&day(4, 0)).unwrap();
        w.push(&day(2, 1).without_users()).unwrap();
        w.push(&day(1, 0)).unwrap();
        assert_eq!(w.finish().unwrap().users(), None);
        let (_, retained) = both_days();
        assert_eq!(retained.users(), None, "a training pool keeps no users");
        // Errors name what the rows are.
        let err = kept.gather(&[6]).unwrap_err().to_string();
        assert!(err.contains("outside day 3 of 6 rows"), "{err}");
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
