//! The ingest-once day cache of a table source: the days of a file (or folder) as polars read
//! and cut them, written once as one Parquet file per day of raw keys, numeric values and
//! labels, beside a manifest naming what they were read from.
//!
//! A table held whole in memory grows with the number of days, and every new session, resume,
//! fork or benchmark parsed the text again. With the cache, the first open parses and writes
//! the days; every later open of the same file with the same schema reads only the manifest,
//! and a day read costs that day's file.
//!
//! The first open streams: [`DayWriter`] takes the rows a chunk at a time, routed to their
//! day, buffers a bounded number of them and appends them to one Parquet file per day, so the
//! ingest holds a few chunks, not the table. A day whose rows arrived out of time order, or
//! in several files because too many days were open at once, is put in order at the end, one
//! day at a time.
//!
//! The cache lives in `CROSSADAPT_CACHE_DIR` (`off` or empty: no cache), else the platform's
//! cache folder (`~/.cache/crossadapt/days` on Linux). A source is identified by its schema, its
//! label and, for each of its files, the relative path, size, modification time and a hash of
//! the first and last MiB: a file replaced in place, even within one clock tick, misses.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use polars::io::parquet::write::BatchedWriter;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::source::{RawDay, Visit};

/// Bumped whenever what a cached day holds or how it is encoded changes: older entries miss.
const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
/// Bytes hashed at each end of every source file.
const EDGE: u64 = 1 << 20;

/// Environment variable naming the cache folder (`off` or empty turns the cache off).
pub const CACHE_ENV: &str = "CROSSADAPT_CACHE_DIR";

/// One cached day: its name, rows and positive rows (the training-label check reads these).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedDay {
    pub name: String,
    pub rows: usize,
    pub positives: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    fingerprint: String,
    /// The table as the user named it (for people reading the folder).
    source: String,
    num_cat: usize,
    num_num: usize,
    days: Vec<CachedDay>,
}

/// An opened cache entry: a folder of `day-NNNNN.parquet` files and their manifest.
#[derive(Debug)]
pub struct DayCache {
    dir: PathBuf,
    manifest: Manifest,
}

/// The cache folder in effect: `CROSSADAPT_CACHE_DIR`, else the platform's cache folder; none
/// when turned off or when the platform has no home folder.
pub fn root() -> Option<PathBuf> {
    match std::env::var_os(CACHE_ENV) {
        Some(v) if v.is_empty() || v == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => {
            directories::ProjectDirs::from("", "", "crossadapt").map(|d| d.cache_dir().join("days"))
        }
    }
}

/// The identity of a table: `label`, the schema and every file's path, size, time and edges.
pub fn fingerprint(path: &Path, schema_json: &str, label: &str) -> Result<String> {
    let mut h = Sha256::new();
    h.update(FORMAT.to_le_bytes());
    h.update(label.as_bytes());
    h.update([0]);
    h.update(schema_json.as_bytes());
    h.update([0]);
    let mut files = Vec::new();
    if path.is_dir() {
        walk(path, &mut files)?;
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    for f in &files {
        let rel = f.strip_prefix(path).unwrap_or(f);
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        let meta = std::fs::metadata(f).with_context(|| format!("cannot read {}", f.display()))?;
        // Hashing a FIFO's edges would wait for a writer.
        if !meta.is_file() {
            super::check_input(f)?;
        }
        h.update(meta.len().to_le_bytes());
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(mtime.to_le_bytes());
        hash_edges(f, meta.len(), &mut h)?;
    }
    let digest = h.finalize();
    Ok(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn hash_edges(path: &Path, len: u64, h: &mut Sha256) -> Result<()> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut buf = Vec::new();
    (&mut file)
        .take(EDGE)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?;
    h.update(&buf);
    if len > 2 * EDGE {
        buf.clear();
        file.seek(SeekFrom::Start(len - EDGE))?;
        file.take(EDGE).read_to_end(&mut buf)?;
        h.update(&buf);
    } else if len > EDGE {
        buf.clear();
        file.read_to_end(&mut buf)?;
        h.update(&buf);
    }
    Ok(())
}

impl DayCache {
    /// The entry for `fingerprint` under `root`, if one was written completely.
    pub fn open(root: &Path, fingerprint: &str) -> Option<DayCache> {
        let dir = root.join(fingerprint);
        let text = crate::atomic::read_text_limited(&dir.join(MANIFEST), crate::atomic::JSON_LIMIT)
            .ok()?;
        let manifest: Manifest = serde_json::from_str(&text).ok()?;
        (manifest.format == FORMAT && manifest.fingerprint == fingerprint)
            .then_some(DayCache { dir, manifest })
    }

    /// Writes `days` (named `names`) as the entry for `fingerprint`: into a temporary folder
    /// renamed into place at the end, so a crash or a concurrent writer never leaves a partial
    /// entry (when two processes race, the first rename wins and both read the same days).
    pub fn write(
        root: &Path,
        fingerprint: &str,
        source: &str,
        days: &[RawDay],
        names: &[String],
    ) -> Result<DayCache> {
        let tmp = ingest_dir(root)?;
        let (num_cat, num_num) = days.first().map_or((0, 0), |d| (d.num_cat, d.num_num));
        let mut cached = Vec::with_capacity(days.len());
        for (d, (day, name)) in days.iter().zip(names).enumerate() {
            let mut df = frame(day)?;
            let path = tmp.path().join(day_file(d));
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            ParquetWriter::new(file)
                .finish(&mut df)
                .map_err(|e| anyhow!("writing day {d} to the day cache: {e}"))?;
            cached.push(CachedDay {
                name: name.clone(),
                rows: day.rows(),
                positives: day.label.iter().filter(|&&y| y > 0.5).count(),
            });
        }
        let manifest = Manifest {
            format: FORMAT,
            fingerprint: fingerprint.to_string(),
            source: source.to_string(),
            num_cat,
            num_num,
            days: cached,
        };
        publish(tmp, root, manifest)
    }

    /// The folder of this entry.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn days(&self) -> &[CachedDay] {
        &self.manifest.days
    }

    /// Day `d` read back from its file.
    pub fn day(&self, d: usize) -> Result<RawDay> {
        let mut day = RawDay::empty(self.manifest.num_cat, self.manifest.num_num);
        self.day_chunks(d, usize::MAX, &mut |chunk| {
            day.extend(&chunk);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(day)
    }

    /// Day `d` read back from its file `chunk_rows` rows at a time, until `visit` answers
    /// `Break`: one column of one chunk is read at a time, so neither the day's frame nor the
    /// whole day is ever in memory.
    pub fn day_chunks(
        &self,
        d: usize,
        chunk_rows: usize,
        visit: &mut dyn FnMut(RawDay) -> Visit,
    ) -> Result<()> {
        let meta =
            self.manifest.days.get(d).with_context(|| {
                format!("day {d} is not in the day cache {}", self.dir.display())
            })?;
        let path = self.dir.join(day_file(d));
        let open = || -> Result<ParquetReader<File>> {
            let file =
                File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
            Ok(ParquetReader::new(file))
        };
        let rows = open()?
            .num_rows()
            .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
        if rows != meta.rows {
            bail!(
                "{} holds {rows} rows, its manifest says {}: delete {} to ingest again",
                path.display(),
                meta.rows,
                self.dir.display()
            );
        }
        let column = |name: String, offset: usize, len: usize| -> Result<Column> {
            let df = open()?
                .with_columns(Some(vec![name.clone()]))
                .with_slice(Some((offset, len)))
                .finish()
                .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
            let col = df
                .column(&name)
                .cloned()
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            if col.len() != len {
                bail!(
                    "{}: column `{name}` holds {} rows from row {offset}, {len} were expected: \
                     delete {} to ingest again",
                    path.display(),
                    col.len(),
                    self.dir.display()
                );
            }
            Ok(col)
        };
        let bad = |e: PolarsError| anyhow!("{}: {e}", path.display());
        let (nc, nn) = (self.manifest.num_cat, self.manifest.num_num);
        let step = chunk_rows.max(1);
        let mut offset = 0;
        while offset < rows {
            let len = step.min(rows - offset);
            let label = column("label".to_string(), offset, len)?;
            let mut chunk = RawDay {
                num_cat: nc,
                num_num: nn,
                cat: vec![0; len * nc],
                num: vec![0.0; len * nn],
                label: Vec::with_capacity(len),
            };
            for f in 0..nc {
                let col = column(format!("c{f}"), offset, len)?;
                let col = col.u64().map_err(bad)?;
                for (r, v) in col.iter().enumerate() {
                    chunk.cat[r * nc + f] = v.unwrap_or(crate::data::source::NULL_KEY);
                }
            }
            for j in 0..nn {
                let col = column(format!("n{j}"), offset, len)?;
                let col = col.f32().map_err(bad)?;
                for (r, v) in col.iter().enumerate() {
                    chunk.num[r * nn + j] = v.unwrap_or(0.0);
                }
            }
            chunk
                .label
                .extend(label.f32().map_err(bad)?.iter().map(|v| v.unwrap_or(0.0)));
            offset += len;
            if visit(chunk)?.is_break() {
                break;
            }
        }
        Ok(())
    }
}

fn day_file(d: usize) -> String {
    format!("day-{d:05}.parquet")
}

/// Writes the manifest into the entry being built in `tmp` and renames it into place.
fn publish(tmp: tempfile::TempDir, root: &Path, manifest: Manifest) -> Result<DayCache> {
    std::fs::write(
        tmp.path().join(MANIFEST),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    let fingerprint = manifest.fingerprint.clone();
    let dir = root.join(&fingerprint);
    let kept = tmp.keep();
    if std::fs::rename(&kept, &dir).is_err() {
        // Another process wrote the same entry first: theirs stands.
        let _ = std::fs::remove_dir_all(&kept);
        return DayCache::open(root, &fingerprint)
            .with_context(|| format!("cannot move the ingested days to {}", dir.display()));
    }
    Ok(DayCache { dir, manifest })
}

/// How the streamed first ingest cuts its work: rows per chunk read from the source (and per
/// row group written), and how many day files may be open for appending at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestOptions {
    /// Rows polars hands over at a time; a day's buffer is written out when it holds as many.
    pub chunk_rows: usize,
    /// Day files open for appending at once; past it the least recently written one is
    /// closed and the day continues in another file, merged at the end.
    pub max_open_days: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            chunk_rows: 100_000,
            max_open_days: 64,
        }
    }
}

/// Rows buffered across all days, in chunks, before the largest buffers are written out.
const BUFFERED_CHUNKS: usize = 4;

/// Rows of one or more days as columns, in arrival order: what the streamed ingest converts a
/// chunk into and what a day buffers before it is written.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct DayColumns {
    pub cat: Vec<Vec<u64>>,
    pub num: Vec<Vec<f32>>,
    pub label: Vec<f32>,
    /// The time of each row in the time column's ticks (empty for a source without time).
    pub ticks: Vec<i64>,
}

impl DayColumns {
    fn empty(num_cat: usize, num_num: usize) -> DayColumns {
        DayColumns {
            cat: vec![Vec::new(); num_cat],
            num: vec![Vec::new(); num_num],
            label: Vec::new(),
            ticks: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.label.len()
    }

    /// Appends rows `rows` of `from` in that order (all of them when `None`).
    fn extend_from(&mut self, from: &DayColumns, rows: Option<&[u32]>) {
        fn take<T: Copy>(to: &mut Vec<T>, from: &[T], rows: Option<&[u32]>) {
            match rows {
                None => to.extend_from_slice(from),
                Some(rows) => to.extend(rows.iter().map(|&r| from[r as usize])),
            }
        }
        for (to, from) in self.cat.iter_mut().zip(&from.cat) {
            take(to, from, rows);
        }
        for (to, from) in self.num.iter_mut().zip(&from.num) {
            take(to, from, rows);
        }
        take(&mut self.label, &from.label, rows);
        if !from.ticks.is_empty() {
            take(&mut self.ticks, &from.ticks, rows);
        }
    }

    /// The buffered rows as a frame (`c0..`, `n0..`, `label`, and `t` when `timed`), leaving
    /// the buffer empty.
    fn take_frame(&mut self, timed: bool) -> Result<DataFrame> {
        let n = self.rows();
        let mut cols = Vec::with_capacity(self.cat.len() + self.num.len() + 2);
        for (f, keys) in self.cat.iter_mut().enumerate() {
            cols.push(Column::new(format!("c{f}").into(), std::mem::take(keys)));
        }
        for (j, v) in self.num.iter_mut().enumerate() {
            cols.push(Column::new(format!("n{j}").into(), std::mem::take(v)));
        }
        cols.push(Column::new("label".into(), std::mem::take(&mut self.label)));
        let ticks = std::mem::take(&mut self.ticks);
        if timed {
            cols.push(Column::new(TICKS.into(), ticks));
        }
        DataFrame::new(n, cols).map_err(|e| anyhow!("building a cached day: {e}"))
    }
}

/// The column of a timed day file holding each row's time (in the time column's ticks): what
/// a day whose rows arrived out of order is sorted by.
const TICKS: &str = "t";

/// One day being written: its buffer, its open file, the files it has filled so far.
struct DayPart {
    buf: DayColumns,
    writer: Option<BatchedWriter<BufWriter<File>>>,
    parts: Vec<PathBuf>,
    last_write: u64,
    rows: usize,
    positives: usize,
    last_tick: Option<i64>,
    /// Whether every row arrived at or after the time of the row before it.
    in_order: bool,
}

/// The streamed first ingest's writer: days are opened as their first rows arrive, rows are
/// appended in arrival order, and [`finish`](Self::finish) puts the days in their final order
/// and publishes the entry atomically (as [`DayCache::write`] does).
pub(super) struct DayWriter {
    root: PathBuf,
    fingerprint: String,
    tmp: tempfile::TempDir,
    num_cat: usize,
    num_num: usize,
    timed: bool,
    opts: IngestOptions,
    days: Vec<DayPart>,
    buffered: usize,
    open: usize,
    clock: u64,
}

impl DayWriter {
    /// Starts an entry for `fingerprint` under `root` (`timed`: rows carry their time).
    pub fn begin(
        root: &Path,
        fingerprint: &str,
        num_cat: usize,
        num_num: usize,
        timed: bool,
        opts: IngestOptions,
    ) -> Result<DayWriter> {
        let tmp = ingest_dir(root)?;
        Ok(DayWriter {
            root: root.to_path_buf(),
            fingerprint: fingerprint.to_string(),
            tmp,
            num_cat,
            num_num,
            timed,
            opts: IngestOptions {
                chunk_rows: opts.chunk_rows.max(1),
                max_open_days: opts.max_open_days.max(1),
            },
            days: Vec::new(),
            buffered: 0,
            open: 0,
            clock: 0,
        })
    }

    /// A new day; its index is the order days were opened in, not their final order.
    pub fn add_day(&mut self) -> usize {
        self.days.push(DayPart {
            buf: DayColumns::empty(self.num_cat, self.num_num),
            writer: None,
            parts: Vec::new(),
            last_write: 0,
            rows: 0,
            positives: 0,
            last_tick: None,
            in_order: true,
        });
        self.days.len() - 1
    }

    /// Appends rows `rows` of `from` (all when `None`) to day `d`.
    pub fn push(&mut self, d: usize, from: &DayColumns, rows: Option<&[u32]>) -> Result<()> {
        let day = &mut self.days[d];
        let before = day.buf.rows();
        day.buf.extend_from(from, rows);
        let added = day.buf.rows() - before;
        day.rows += added;
        day.positives += day.buf.label[before..].iter().filter(|&&y| y > 0.5).count();
        for &t in day.buf.ticks.get(before..).unwrap_or(&[]) {
            if day.last_tick.is_some_and(|last| t < last) {
                day.in_order = false;
            }
            day.last_tick = Some(t);
        }
        self.buffered += added;
        if self.days[d].buf.rows() >= self.opts.chunk_rows {
            self.flush(d)?;
        }
        Ok(())
    }

    /// Writes out the largest buffers while more than a few chunks of rows are buffered.
    pub fn relieve(&mut self) -> Result<()> {
        let cap = BUFFERED_CHUNKS * self.opts.chunk_rows;
        if self.buffered <= cap {
            return Ok(());
        }
        let mut by_size: Vec<usize> = (0..self.days.len()).collect();
        by_size.sort_by_key(|&d| std::cmp::Reverse(self.days[d].buf.rows()));
        for d in by_size {
            if self.buffered <= cap / 2 {
                break;
            }
            self.flush(d)?;
        }
        Ok(())
    }

    /// Appends day `d`'s buffer to its open file (opening one, and closing the least recently
    /// written other, when needed).
    fn flush(&mut self, d: usize) -> Result<()> {
        let n = self.days[d].buf.rows();
        if n == 0 {
            return Ok(());
        }
        if self.days[d].writer.is_none() {
            if self.open >= self.opts.max_open_days {
                let oldest = (0..self.days.len())
                    .filter(|&o| self.days[o].writer.is_some())
                    .min_by_key(|&o| self.days[o].last_write);
                if let Some(o) = oldest {
                    self.close(o)?;
                }
            }
            let path = self.tmp.path().join(format!(
                "part-{d:05}-{:05}.parquet",
                self.days[d].parts.len()
            ));
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            let empty = DayColumns::empty(self.num_cat, self.num_num).take_frame(self.timed)?;
            let writer = ParquetWriter::new(BufWriter::new(file))
                .batched(empty.schema())
                .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
            self.days[d].writer = Some(writer);
            self.days[d].parts.push(path);
            self.open += 1;
        }
        self.clock += 1;
        let timed = self.timed;
        let day = &mut self.days[d];
        day.last_write = self.clock;
        let df = day.buf.take_frame(timed)?;
        if let Some(w) = day.writer.as_mut() {
            w.write_batch(&df)
                .map_err(|e| anyhow!("writing day rows to the day cache: {e}"))?;
        }
        self.buffered -= n;
        Ok(())
    }

    fn close(&mut self, d: usize) -> Result<()> {
        if let Some(w) = self.days[d].writer.take() {
            w.finish()
                .map_err(|e| anyhow!("writing day rows to the day cache: {e}"))?;
            self.open -= 1;
        }
        Ok(())
    }

    /// Writes the days out in `order` (indices from [`add_day`](Self::add_day)) named
    /// `names`, and publishes the entry.
    pub fn finish(mut self, order: &[usize], names: &[String], source: &str) -> Result<DayCache> {
        for d in 0..self.days.len() {
            self.flush(d)?;
            self.close(d)?;
        }
        let mut cached = Vec::with_capacity(order.len());
        for (i, (&d, name)) in order.iter().zip(names).enumerate() {
            let out = self.tmp.path().join(day_file(i));
            let day = &self.days[d];
            match day.parts.as_slice() {
                [one] if day.in_order => std::fs::rename(one, &out)
                    .with_context(|| format!("cannot move {} into place", one.display()))?,
                parts => self.merge(parts, !day.in_order, &out)?,
            }
            cached.push(CachedDay {
                name: name.clone(),
                rows: day.rows,
                positives: day.positives,
            });
        }
        let manifest = Manifest {
            format: FORMAT,
            fingerprint: self.fingerprint.clone(),
            source: source.to_string(),
            num_cat: self.num_cat,
            num_num: self.num_num,
            days: cached,
        };
        publish(self.tmp, &self.root, manifest)
    }

    /// One day from the files it filled, in arrival order, sorted by time (stably: rows of
    /// the same time keep their arrival order) when `sort`.
    fn merge(&self, parts: &[PathBuf], sort: bool, out: &Path) -> Result<()> {
        let mut df = DayColumns::empty(self.num_cat, self.num_num).take_frame(self.timed)?;
        for part in parts {
            let file =
                File::open(part).with_context(|| format!("cannot read {}", part.display()))?;
            let piece = ParquetReader::new(file)
                .finish()
                .map_err(|e| anyhow!("reading {}: {e}", part.display()))?;
            df.vstack_mut_owned(piece)
                .map_err(|e| anyhow!("merging {}: {e}", part.display()))?;
            std::fs::remove_file(part)
                .with_context(|| format!("cannot remove {}", part.display()))?;
        }
        if sort {
            let ticks: Vec<i64> = df
                .column(TICKS)
                .and_then(|c| c.i64().map(|t| t.iter().map(|v| v.unwrap_or(0)).collect()))
                .map_err(|e| anyhow!("sorting a day by time: {e}"))?;
            let mut order: Vec<IdxSize> = (0..ticks.len() as IdxSize).collect();
            order.sort_by_key(|&i| ticks[i as usize]);
            let order = IdxCa::from_vec("order".into(), order);
            let height = df.height();
            // Column by column, so the day is held once plus one column.
            let mut sorted = Vec::with_capacity(df.width());
            for c in df.into_columns() {
                sorted.push(c.take(&order).map_err(|e| anyhow!("sorting a day: {e}"))?);
            }
            df = DataFrame::new(height, sorted).map_err(|e| anyhow!("sorting a day: {e}"))?;
        }
        let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
        ParquetWriter::new(BufWriter::new(file))
            .with_row_group_size(Some(self.opts.chunk_rows))
            .finish(&mut df)
            .map_err(|e| anyhow!("writing {}: {e}", out.display()))?;
        Ok(())
    }
}

/// A day as columns `c0..`, `n0..` and `label`.
fn frame(day: &RawDay) -> Result<DataFrame> {
    let n = day.rows();
    let mut cols = Vec::with_capacity(day.num_cat + day.num_num + 1);
    for f in 0..day.num_cat {
        let keys: Vec<u64> = day.field_keys(f).collect();
        cols.push(Column::new(format!("c{f}").into(), keys));
    }
    let nn = day.num_num.max(1);
    for j in 0..day.num_num {
        let v: Vec<f32> = day.num.iter().skip(j).step_by(nn).copied().collect();
        cols.push(Column::new(format!("n{j}").into(), v));
    }
    cols.push(Column::new("label".into(), day.label.clone()));
    DataFrame::new(n, cols).map_err(|e| anyhow!("building a cached day: {e}"))
}

/// A new temporary folder under `root` (created if missing) for an entry being written; it is
/// renamed into place when complete, and removed if the writer stops first.
fn ingest_dir(root: &Path) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(root)
        .with_context(|| format!("cannot create the day cache {}", root.display()))?;
    tempfile::Builder::new()
        .prefix(".ingest-")
        .tempdir_in(root)
        .with_context(|| format!("cannot write in the day cache {}", root.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(rows: usize, seed: u64) -> RawDay {
        let (nc, nn) = (3, 2);
        let mut d = RawDay::empty(nc, nn);
        for r in 0..rows as u64 {
            d.cat.extend([seed * 1000 + r, u64::MAX, r % 7]);
            d.num.extend([r as f32 * 0.5, -1.25]);
            d.label.push((r % 3 == 0) as u8 as f32);
        }
        d
    }

    #[test]
    fn days_round_trip_bit_for_bit_and_the_entry_reopens() {
        let root = tempfile::tempdir().unwrap();
        let days = vec![day(10, 1), day(0, 2), day(7, 3)];
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let written = DayCache::write(root.path(), "f00d", "t.csv", &days, &names).unwrap();
        for (d, want) in days.iter().enumerate() {
            assert_eq!(&written.day(d).unwrap(), want, "day {d}");
        }
        let reopened = DayCache::open(root.path(), "f00d").expect("the entry reopens");
        assert_eq!(reopened.days()[0].positives, 4);
        assert_eq!(reopened.days()[2].name, "c");
        assert_eq!(reopened.day(2).unwrap(), days[2]);
        assert!(DayCache::open(root.path(), "beef").is_none());
        // No temporary folder is left behind.
        let left: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("f00d")]);
    }

    #[test]
    fn a_day_read_in_chunks_is_the_day_and_stops_when_asked() {
        let root = tempfile::tempdir().unwrap();
        let names = vec!["a".to_string(), "b".to_string()];
        let days = [day(23, 1), day(0, 2)];
        let c = DayCache::write(root.path(), "e3", "t", &days, &names).unwrap();
        let mut sizes = Vec::new();
        let mut joined = RawDay::empty(3, 2);
        c.day_chunks(0, 5, &mut |chunk| {
            sizes.push(chunk.rows());
            joined.extend(&chunk);
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        assert_eq!(sizes, [5, 5, 5, 5, 3]);
        assert_eq!(joined, days[0]);
        // `Break` ends the read: no further chunk is read.
        let mut seen = 0;
        c.day_chunks(0, 5, &mut |_| {
            seen += 1;
            Ok(ControlFlow::Break(()))
        })
        .unwrap();
        assert_eq!(seen, 1);
        // An empty day hands over nothing; a day the manifest does not list is an error.
        c.day_chunks(1, 5, &mut |_| panic!("no rows")).unwrap();
        assert!(c
            .day_chunks(2, 5, &mut |_| Ok(ControlFlow::Continue(())))
            .is_err());
    }

    #[test]
    fn a_second_writer_keeps_the_first_entry() {
        let root = tempfile::tempdir().unwrap();
        let names = vec!["a".to_string()];
        DayCache::write(root.path(), "e1", "t", &[day(5, 1)], &names).unwrap();
        let second = DayCache::write(root.path(), "e1", "t", &[day(5, 1)], &names).unwrap();
        assert_eq!(second.day(0).unwrap(), day(5, 1));
    }

    #[test]
    fn the_fingerprint_changes_with_content_schema_and_label() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.csv");
        std::fs::write(&file, "a,b\n1,2\n").unwrap();
        let base = fingerprint(&file, "{}", "table").unwrap();
        assert_eq!(base, fingerprint(&file, "{}", "table").unwrap());
        assert_ne!(base, fingerprint(&file, "{\"x\":1}", "table").unwrap());
        assert_ne!(base, fingerprint(&file, "{}", "criteo").unwrap());
        // Same size, same path, rewritten at once: the content hash tells them apart.
        std::fs::write(&file, "a,b\n1,3\n").unwrap();
        assert_ne!(base, fingerprint(&file, "{}", "table").unwrap());
    }

    #[test]
    fn a_truncated_day_is_a_clear_error() {
        let root = tempfile::tempdir().unwrap();
        let names = vec!["a".to_string(), "b".to_string()];
        let c = DayCache::write(root.path(), "e2", "t", &[day(5, 1), day(6, 2)], &names).unwrap();
        std::fs::write(c.dir().join(day_file(1)), b"not parquet").unwrap();
        let err = format!("{:#}", c.day(1).unwrap_err());
        assert!(err.contains("day-00001.parquet"), "{err}");
    }
}
