//! The ingest-once day cache of a table source: the days of a file (or folder) as polars read
//! and cut them, written once as one Parquet file per day of raw keys, numeric values and
//! labels, beside a manifest naming what they were read from.
//!
//! A table held whole in memory grows with the number of days, and every new session, resume,
//! fork or benchmark parsed the text again. With the cache, the first open parses and writes
//! the days; every later open of the same file with the same schema reads only the manifest,
//! and a day read costs that day's file. The first parse still holds the whole table once
//! (polars collects it); `docs/data.md` says so.
//!
//! The cache lives in `CROSSADAPT_CACHE_DIR` (`off` or empty: no cache), else the platform's
//! cache folder (`~/.cache/crossadapt/days` on Linux). A source is identified by its schema, its
//! label and, for each of its files, the relative path, size, modification time and a hash of
//! the first and last MiB: a file replaced in place, even within one clock tick, misses.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::source::RawDay;

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
        let text = std::fs::read_to_string(dir.join(MANIFEST)).ok()?;
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
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create the day cache {}", root.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".ingest-")
            .tempdir_in(root)
            .with_context(|| format!("cannot write in the day cache {}", root.display()))?;
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
        std::fs::write(
            tmp.path().join(MANIFEST),
            serde_json::to_string_pretty(&manifest)?,
        )?;
        let dir = root.join(fingerprint);
        let kept = tmp.keep();
        if std::fs::rename(&kept, &dir).is_err() {
            // Another process wrote the same entry first: theirs stands.
            let _ = std::fs::remove_dir_all(&kept);
            return DayCache::open(root, fingerprint)
                .with_context(|| format!("cannot move the ingested days to {}", dir.display()));
        }
        Ok(DayCache { dir, manifest })
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
        let meta =
            self.manifest.days.get(d).with_context(|| {
                format!("day {d} is not in the day cache {}", self.dir.display())
            })?;
        let path = self.dir.join(day_file(d));
        let file = File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let df = ParquetReader::new(file)
            .finish()
            .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
        let (nc, nn) = (self.manifest.num_cat, self.manifest.num_num);
        let rows = df.height();
        if rows != meta.rows {
            bail!(
                "{} holds {rows} rows, its manifest says {}: delete {} to ingest again",
                path.display(),
                meta.rows,
                self.dir.display()
            );
        }
        let mut day = RawDay {
            num_cat: nc,
            num_num: nn,
            cat: vec![0; rows * nc],
            num: vec![0.0; rows * nn],
            label: Vec::with_capacity(rows),
        };
        let bad = |e: PolarsError| anyhow!("{}: {e}", path.display());
        for f in 0..nc {
            let col = df
                .column(&format!("c{f}"))
                .map_err(bad)?
                .u64()
                .map_err(bad)?;
            for (r, v) in col.iter().enumerate() {
                day.cat[r * nc + f] = v.unwrap_or(crate::data::source::NULL_KEY);
            }
        }
        for j in 0..nn {
            let col = df
                .column(&format!("n{j}"))
                .map_err(bad)?
                .f32()
                .map_err(bad)?;
            for (r, v) in col.iter().enumerate() {
                day.num[r * nn + j] = v.unwrap_or(0.0);
            }
        }
        let label = df.column("label").map_err(bad)?.f32().map_err(bad)?;
        day.label.extend(label.iter().map(|v| v.unwrap_or(0.0)));
        Ok(day)
    }
}

fn day_file(d: usize) -> String {
    format!("day-{d:05}.parquet")
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
