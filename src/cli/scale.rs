//! `crossadapt bench scale`: a whole headless session on the synthetic stream at a chosen size,
//! measured the way an operator would see it: rows/second per stage, wall time per online day,
//! peak resident memory, and the session's disk (checkpoints and log) at the end.
//!
//! The session is a real one (the store, its checkpoints and their pruning), in `--dir` or in a
//! temporary folder removed at the end, so what is measured is what `crossadapt run` costs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use super::live::{attach, run_attached, Attached, LaunchMode};
use super::ranges;
use crate::engine::{Engine, Outcome, Prepared, SessionConfig};
use crate::protocol::{EngineEvent, EventSink, Record, Stage};
use crate::session::store::Store;

#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Rows per day of the synthetic stream.
    #[arg(long, default_value_t = 20_000, value_parser = ranges::count(1, 100_000_000))]
    pub rows_per_day: usize,
    /// Days of the stream (split as a session splits them: a quarter history, a quarter
    /// retained, half online).
    #[arg(long, default_value_t = 24, value_parser = ranges::count(3, 3650))]
    pub days: usize,
    /// Arms, comma-separated (default: the session's default arms).
    #[arg(long)]
    pub arms: Option<String>,
    /// Any other session setting, as for `run` (e.g. `--set keep_day_checkpoints=0`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Keep the session in this folder (default: a temporary folder, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Also write the table (markdown) to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// What the run's events and the process said, stage by stage.
#[derive(Default)]
struct Measured {
    /// Per stage (and arm), in the order they first finished: seconds, rows and the largest
    /// heap peak of its runs (bytes; 0 where the heap is not counted).
    stages: Vec<(String, f64, u64, u64)>,
    /// Per online day: seconds (all arms), rows (all arms), resident memory after it.
    days: Vec<(u32, f64, u64, u64)>,
    checkpoints: Vec<u64>,
}

impl Measured {
    fn add(&mut self, name: String, seconds: f64, rows: u64, heap: Option<u64>) {
        let heap = heap.unwrap_or(0);
        match self.stages.iter_mut().find(|s| s.0 == name) {
            Some(s) => {
                s.1 += seconds;
                s.2 += rows;
                s.3 = s.3.max(heap);
            }
            None => self.stages.push((name, seconds, rows, heap)),
        }
    }
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Measured>>);

impl EventSink for Collector {
    fn emit(&mut self, record: &Record) -> Result<()> {
        let mut m = self
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("measurements poisoned"))?;
        match &record.event {
            EngineEvent::StageFinished {
                stage: Stage::Online,
                day: Some(d),
                seconds,
                samples,
                heap_peak,
                ..
            } => {
                let rss = proc_status_kb("VmRSS").unwrap_or(0) * 1024;
                m.days.push((*d, *seconds, *samples, rss));
                m.add("online (all arms)".into(), *seconds, *samples, *heap_peak);
            }
            EngineEvent::StageFinished {
                stage,
                arm,
                seconds,
                samples,
                heap_peak,
                ..
            } => {
                let name = match arm {
                    Some(a) => format!("{} ({a})", stage_name(*stage)),
                    None => stage_name(*stage).to_string(),
                };
                m.add(name, *seconds, *samples, *heap_peak);
            }
            EngineEvent::Checkpointed { bytes: Some(b), .. } => m.checkpoints.push(*b),
            _ => {}
        }
        Ok(())
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Setup => "setup",
        Stage::TeacherPretrain => "teacher",
        Stage::Transfer => "1A transfer",
        Stage::DenseDistill => "1B dense",
        Stage::JointDistill => "1C joint",
        Stage::OfflineTrain => "offline train",
        Stage::OfflineEval => "offline eval",
        Stage::Online => "online",
        Stage::Done => "done",
    }
}

/// The process's CPU time so far, user plus system, in seconds: what the session cost the
/// machine, which a shared machine's load inflates far less than it inflates wall time. The
/// engine's clock, so `bench scale` and the report's compute figures read one clock.
fn process_cpu_seconds() -> Option<f64> {
    crate::engine::cpu::process_seconds()
}

/// A field of `/proc/self/status` in kB (`VmHWM`: peak resident memory; `VmRSS`: now).
pub fn proc_status_kb(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Bytes of the files under `dir`, each file counted once however many hard links it has
/// there (checkpoints share the frozen teacher), as `du` counts.
pub fn disk_bytes(dir: &Path) -> Result<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?
        {
            let entry = entry.with_context(|| format!("cannot read {}", d.display()))?;
            let meta = entry
                .metadata()
                .with_context(|| format!("cannot read {}", entry.path().display()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && seen.insert(file_id(&meta, &entry.path())) {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata, _: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata, path: &Path) -> (u64, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    (0, h.finish())
}

/// Runs the benchmark (see the module doc) and prints its table.
pub fn run(args: &ScaleArgs) -> Result<()> {
    let mut sets = vec![
        format!("data.rows_per_day={}", args.rows_per_day),
        format!("data.days={}", args.days),
    ];
    if let Some(arms) = &args.arms {
        let list: Vec<String> = arms
            .split(',')
            .map(|a| format!("\"{}\"", a.trim()))
            .collect();
        sets.push(format!("arms=[{}]", list.join(",")));
    }
    sets.extend(args.set.iter().cloned());
    let cfg = SessionConfig::load(None, &sets)?;
    let tmp;
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
            tmp.path().to_path_buf()
        }
    };
    let started = Instant::now();
    let cpu_before = process_cpu_seconds().unwrap_or(f64::NAN);
    let prepared = Prepared::new(&cfg)?;
    let setup_seconds = started.elapsed().as_secs_f64();
    let store = Store::open(Some(root))?;
    let session = store.create("bench scale", &cfg.to_toml()?, None)?;
    let session_dir = session.dir().to_path_buf();
    let Attached { mut io, shared } = attach(session, &cfg, &LaunchMode::Headless, None, None)?;
    let collector = Collector::default();
    io.sinks.push(Box::new(collector.clone()));
    let engine = Engine::start(cfg.clone(), prepared, "bench", "bench scale", io)?;
    let outcome = run_attached(engine, shared, &LaunchMode::Headless, &cfg, None)?;
    anyhow::ensure!(outcome == Outcome::Finished, "the session did not finish");
    let wall = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds().unwrap_or(f64::NAN) - cpu_before;
    let peak = proc_status_kb("VmHWM").unwrap_or(0) * 1024;
    let disk = disk_bytes(&session_dir)?;
    let m = collector
        .0
        .lock()
        .map_err(|_| anyhow::anyhow!("measurements poisoned"))?;
    let table = table(args, &cfg, &m, setup_seconds, (wall, cpu), peak, disk);
    print!("{table}");
    if let Some(path) = &args.out {
        crate::atomic::write_atomic(path, table.as_bytes())?;
        eprintln!("table written to {}", path.display());
    }
    Ok(())
}

fn table(
    args: &ScaleArgs,
    cfg: &SessionConfig,
    m: &Measured,
    setup_seconds: f64,
    (wall, cpu): (f64, f64),
    peak: u64,
    disk: u64,
) -> String {
    let mb = crate::num::megabytes;
    let arms: Vec<String> = cfg.arms.iter().map(|a| a.to_string()).collect();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "bench scale: {} rows/day x {} days, arms {}, {} threads, cpu \"{}\"\n",
        args.rows_per_day,
        args.days,
        arms.join(","),
        cfg.threads,
        crate::train::bench::cpu_model()
    );
    let _ = writeln!(t, "| stage | seconds | rows | rows/s | heap peak |");
    let _ = writeln!(t, "|---|---:|---:|---:|---:|");
    let _ = writeln!(
        t,
        "| setup (open, split, vocabulary) | {setup_seconds:.1} | | | |"
    );
    for (name, secs, rows, heap) in &m.stages {
        let rate = if *secs > 0.0 {
            *rows as f64 / secs
        } else {
            0.0
        };
        let heap = if *heap > 0 { mb(*heap) } else { String::new() };
        let _ = writeln!(t, "| {name} | {secs:.1} | {rows} | {rate:.0} | {heap} |");
    }
    let per_day: Vec<f64> = m.days.iter().map(|d| d.1).collect();
    let mean = per_day.iter().sum::<f64>() / per_day.len().max(1) as f64;
    let max = per_day.iter().copied().fold(0.0, f64::max);
    let ckpt_mean = m.checkpoints.iter().sum::<u64>() / m.checkpoints.len().max(1) as u64;
    let rss_last = m.days.last().map_or(0, |d| d.3);
    let _ = writeln!(t);
    let _ = writeln!(t, "| measure | value |");
    let _ = writeln!(t, "|---|---:|");
    let _ = writeln!(t, "| wall, whole session | {wall:.1} s |");
    let _ = writeln!(
        t,
        "| CPU time, whole session (user + system) | {cpu:.1} s |"
    );
    let _ = writeln!(
        t,
        "| wall per online day (mean / max, all arms) | {mean:.1} / {max:.1} s |"
    );
    let _ = writeln!(t, "| peak RSS (VmHWM) | {} |", mb(peak));
    let _ = writeln!(t, "| RSS after the last day | {} |", mb(rss_last));
    let _ = writeln!(
        t,
        "| checkpoints written | {} (mean {} each) |",
        m.checkpoints.len(),
        mb(ckpt_mean)
    );
    let _ = writeln!(t, "| session disk at the end | {} |", mb(disk));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_counts_a_hard_linked_file_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("y"), vec![0u8; 10]).unwrap();
        std::fs::hard_link(dir.path().join("a/x"), dir.path().join("x2")).unwrap();
        assert_eq!(disk_bytes(dir.path()).unwrap(), 1010);
    }

    #[test]
    fn cpu_time_grows_with_work() {
        // A fixed amount of work, not 60 ms of wall: on a loaded machine a 60 ms spin got
        // 11 ms of CPU, and this test failed.
        let before = process_cpu_seconds().unwrap();
        let mut x = 1u64;
        for _ in 0..20_000_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = process_cpu_seconds().unwrap();
        assert!(after > before && x != 0, "{before} -> {after}");
    }

    #[test]
    fn peak_memory_is_read_from_proc() {
        if std::path::Path::new("/proc/self/status").exists() {
            let hwm = proc_status_kb("VmHWM").unwrap();
            let rss = proc_status_kb("VmRSS").unwrap();
            assert!(hwm >= rss && rss > 0, "{hwm} {rss}");
        }
    }
}
