//! `crossadapt bench suite`: the scenario suite of issue 17.4. It runs one headless session per
//! synthetic world (`data.preset` x `data.seed`) x drift scenario (`data.drift`) x scale
//! (`data.rows_per_day`), in this process and without a session store, and prints what
//! [`crate::protocol::suite`] computes from the runs: for each claim of the method, wins / ties
//! / losses over the runs and a bootstrap interval over worlds and days; per student arm its
//! days to switch, degradation area and compute against the others.
//!
//! Every run's figures are appended to `runs.jsonl` in the output folder as soon as the run
//! ends, and a run already there is not run again: a suite that was stopped continues where it
//! stopped, and the table is rebuilt from every run on file.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::ConfigArgs;
use crate::data::DataConfig;
use crate::engine::config::shock_day;
use crate::engine::tune::{tune, tune_key, TuneBudget, TuneOutcome, DEFAULT_TRIALS};
use crate::engine::{Engine, EngineIo, Outcome, Record, SessionConfig};
use crate::protocol::tune::{trial_line, Tuning};
use crate::protocol::{ArmKind, CrossAdaptVariant, Ledger};
// The suite's records and statistics live with the verdict; their old paths stay valid.
pub use crate::protocol::suite::{
    markdown, pooled_trials, switch_table, table, ArmRun, Cell, Claim, ClaimRow, DayRun, Outcome3,
    PooledTrial, SuiteRun, SwitchRow, Tally, Versus, AUC_TIE, CLAIMS, TIME_BOUND,
};

#[derive(Debug, Clone, Args)]
pub struct SuiteArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Synthetic worlds (`data.seed`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    pub worlds: Vec<u64>,
    /// Drift scenarios (`data.drift`), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "none,covariate,concept,label,gradual"
    )]
    pub scenarios: Vec<String>,
    /// Synthetic worlds' presets (`data.preset`), comma-separated, e.g. `default,fm4`; none:
    /// the config's own world.
    #[arg(long, value_delimiter = ',')]
    pub presets: Vec<String>,
    /// Rows per day (`data.rows_per_day`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "20000,200000")]
    pub scales: Vec<usize>,
    /// Arms of every run, comma-separated (crossadapt is required; a claim whose arms are
    /// missing is reported as not run). The incumbent is always added: the gate judges every
    /// student against it. Default: incumbent, scratch, retrain (when the run has a history),
    /// kd, crossadapt, crossadapt-matched.
    #[arg(long, value_delimiter = ',')]
    pub arms: Vec<String>,
    /// Output folder: runs.jsonl, suite.md, suite.csv, switch.csv, suite.json.
    #[arg(long, default_value = "suite", value_name = "DIR")]
    pub out: PathBuf,
    /// Bootstrap resamples per interval.
    #[arg(long, default_value_t = 2000, value_parser = super::ranges::count(1, 1_000_000))]
    pub resamples: usize,
    /// Tune every arm first, in every run, by the validation protocol of `crossadapt tune` on
    /// that run's own retained days, then run with the choice. A tuned run and an untuned one
    /// of the same cell are different cells (one `runs.jsonl` may hold both).
    #[arg(long)]
    pub tune: bool,
    /// Trials per arm of `--tune` (the same budget for every arm).
    #[arg(long, default_value_t = DEFAULT_TRIALS, value_parser = super::ranges::count(1, 10_000))]
    pub tune_trials: usize,
    /// With `--tune`: also choose crossadapt's shared online values on this many retained
    /// days streamed after an earlier switch (`crossadapt tune --online-days`). 0: not tuned.
    #[arg(long, default_value_t = 0, value_name = "DAYS", requires = "tune", value_parser = super::ranges::count(0, 10_000))]
    pub tune_online_days: usize,
}

/// The matrix of `args`, in run order (preset, then scale, then world, then scenario: the
/// small scale finishes first).
pub fn cells(args: &SuiteArgs) -> Vec<Cell> {
    let presets = match args.presets.as_slice() {
        [] => vec![config_preset(args)],
        given => given.to_vec(),
    };
    let mut out = Vec::new();
    for preset in &presets {
        for &rows_per_day in &args.scales {
            for &world in &args.worlds {
                for scenario in &args.scenarios {
                    out.push(Cell {
                        preset: preset.clone(),
                        world,
                        scenario: scenario.clone(),
                        rows_per_day,
                        tuned: args.tune,
                        online_days: if args.tune { args.tune_online_days } else { 0 },
                    });
                }
            }
        }
    }
    out
}

/// The preset of the world `--config` and `--set` describe. A config that does not load
/// names `default` here; [`cell_config`] then fails on it with the reason.
fn config_preset(args: &SuiteArgs) -> String {
    match SessionConfig::load(args.config.config.as_deref(), &args.config.set) {
        Ok(SessionConfig {
            data: DataConfig::Synthetic(world),
            ..
        }) => world.preset,
        _ => "default".into(),
    }
}

/// The suite's arms when `--arms` names none: what the gate and the claims need.
const DEFAULT_ARMS: &[&str] = &[
    "incumbent",
    "scratch",
    "retrain",
    "kd",
    "crossadapt",
    "crossadapt-matched",
];

/// The session config of one cell: the user's config and `--set`s, then the cell's world,
/// scenario and scale, and the suite's arms.
pub fn cell_config(args: &SuiteArgs, cell: &Cell) -> anyhow::Result<SessionConfig> {
    let mut sets = args.config.set.clone();
    sets.push(format!("data.preset=\"{}\"", cell.preset));
    sets.push(format!("data.seed={}", cell.world));
    sets.push(format!("data.drift=\"{}\"", cell.scenario));
    sets.push(format!("data.rows_per_day={}", cell.rows_per_day));
    let context = || {
        format!(
            "suite cell {} world {} · {} · {} rows/day",
            cell.preset, cell.world, cell.scenario, cell.rows_per_day
        )
    };
    let base = SessionConfig::load(args.config.config.as_deref(), &sets).with_context(context)?;
    let mut arms: Vec<String> = if args.arms.is_empty() {
        DEFAULT_ARMS
            .iter()
            .filter(|a| **a != "retrain" || base.history_gone().is_none())
            .map(|a| a.to_string())
            .collect()
    } else {
        args.arms.clone()
    };
    if !arms
        .iter()
        .any(|a| ArmKind::parse(a).ok() == Some(ArmKind::Incumbent))
    {
        arms.insert(0, ArmKind::Incumbent.to_string());
    }
    let arms: Vec<String> = arms.iter().map(|a| format!("\"{a}\"")).collect();
    sets.push(format!("arms=[{}]", arms.join(",")));
    SessionConfig::load(args.config.config.as_deref(), &sets).with_context(context)
}

/// Runs one session in this process, headless, without a store or a console, and returns its
/// records.
pub fn run_records(cfg: SessionConfig) -> anyhow::Result<Vec<Record>> {
    let sink: std::sync::Arc<std::sync::Mutex<Vec<Record>>> = Default::default();
    let io = EngineIo {
        sinks: vec![Box::new(sink.clone())],
        commands: None,
        checkpoints: None,
    };
    let mut engine = Engine::new(cfg, "suite", "suite", io)?;
    let outcome = engine.run()?;
    anyhow::ensure!(outcome == Outcome::Finished, "the run did not finish");
    let records = sink
        .lock()
        .map_err(|_| anyhow::anyhow!("the record sink was poisoned"))?
        .clone();
    Ok(records)
}

/// Tunings already made, by [`tune_key`]: a tuned cell whose key is here takes the record
/// instead of running the protocol again.
pub type TuneCache = BTreeMap<String, Tuning>;

/// The tunings of the runs on file, by key.
pub fn tune_cache(runs: &[SuiteRun]) -> TuneCache {
    runs.iter()
        .filter_map(|r| Some((r.tune_key.clone()?, r.tuning.clone()?)))
        .collect()
}

/// Runs one cell and keeps its figures. A tuned cell first runs the validation protocol with
/// `budget` (one progress line per trial on stderr), or takes the record
/// of an earlier run from `cache` when the protocol would read the same retained days with the
/// same config ([`tune_key`]), then runs the session with the choice.
pub fn run_cell(
    cfg: SessionConfig,
    cell: &Cell,
    budget: TuneBudget,
    cache: &mut TuneCache,
) -> anyhow::Result<SuiteRun> {
    let started = Instant::now();
    let shift = shock_day(&cfg.data);
    let (cfg, tuning, key, reused) = if cell.tuned {
        let context = || format!("tuning world {} · {}", cell.world, cell.scenario);
        let key = tune_key(&cfg, budget).with_context(context)?;
        let (outcome, reused) = match cache.get(&key) {
            Some(tuning) => {
                eprintln!(
                    "  world {} · {} · the retained days are an earlier run's: its tuning is reused",
                    cell.world, cell.scenario
                );
                (TuneOutcome::of_record(&cfg, tuning.clone()), true)
            }
            None => {
                let outcome = tune(&cfg, budget, &mut |arm, i, n, t| {
                    eprintln!(
                        "  world {} · {} · {}",
                        cell.world,
                        cell.scenario,
                        trial_line(arm, i, n, t)
                    )
                })
                .with_context(context)?;
                cache.insert(key.clone(), outcome.tuning.clone());
                (outcome, false)
            }
        };
        (outcome.apply(cfg), Some(outcome.tuning), Some(key), reused)
    } else {
        (cfg, None, None, false)
    };
    let tune_seconds = if cell.tuned {
        started.elapsed().as_secs_f64()
    } else {
        0.0
    };
    let records = run_records(cfg)?;
    let run = SuiteRun::of_ledger(cell, &Ledger::of(&records), shift);
    Ok(SuiteRun {
        seconds: started.elapsed().as_secs_f64(),
        tuning,
        tune_seconds,
        tune_key: key,
        tune_reused: reused,
        ..run
    })
}

/// The runs already on file (`runs.jsonl`); a damaged line is an error naming it.
pub fn read_runs(path: &Path) -> anyhow::Result<Vec<SuiteRun>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not a suite run", path.display(), i + 1))
        })
        .collect()
}

/// The suite: every cell not on file yet is run and appended, then the table is written.
/// Progress lines go to stderr.
pub fn run_suite(args: &SuiteArgs) -> anyhow::Result<Vec<ClaimRow>> {
    let cells = cells(args);
    anyhow::ensure!(!cells.is_empty(), "the suite has no cell to run");
    // Every config is checked before the first run, so a bad scenario fails at once.
    let configs = cells
        .iter()
        .map(|c| cell_config(args, c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let full = ArmKind::CrossAdapt(CrossAdaptVariant::FULL);
    anyhow::ensure!(
        configs.iter().all(|c| c.arms.contains(&full)),
        "--arms must include crossadapt (every claim is about it)"
    );
    let arm_names: Vec<String> = configs[0].arms.iter().map(ToString::to_string).collect();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let log = args.out.join("runs.jsonl");
    let runs = read_runs(&log)?;
    let started = Instant::now();
    let todo: Vec<usize> = (0..cells.len())
        .filter(|&i| !runs.iter().any(|r| r.cell() == cells[i]))
        .collect();
    eprintln!(
        "suite: {} cells, {} on file, {} to run, arms {}{}",
        cells.len(),
        cells.len() - todo.len(),
        todo.len(),
        arm_names.join(","),
        if args.tune {
            let online = match args.tune_online_days {
                0 => String::new(),
                d => format!(", the online values on {d} streamed retained days"),
            };
            format!(
                ", each tuned first ({} trials per arm{online})",
                args.tune_trials
            )
        } else {
            String::new()
        }
    );
    let mut cache = tune_cache(&runs);
    for (k, &i) in todo.iter().enumerate() {
        let cell = &cells[i];
        let budget = TuneBudget {
            trials: args.tune_trials,
            online_days: cell.online_days,
        };
        let run = run_cell(configs[i].clone(), cell, budget, &mut cache)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        writeln!(file, "{}", serde_json::to_string(&run)?)
            .with_context(|| format!("cannot write {}", log.display()))?;
        let elapsed = started.elapsed().as_secs_f64();
        let eta = elapsed / (k + 1) as f64 * (todo.len() - k - 1) as f64;
        eprintln!(
            "[{}/{}] {} world {} · {} · {} rows/day: {:.1} s (elapsed {:.0} s, eta {:.0} s)",
            k + 1,
            todo.len(),
            cell.preset,
            cell.world,
            cell.scenario,
            cell.rows_per_day,
            run.seconds,
            elapsed,
            eta
        );
    }
    // The table is computed from the runs as written (a later call that reads them back
    // gives the same table, to the last bit), over the cells asked for (the file may hold
    // others).
    let mut runs = read_runs(&log)?;
    runs.retain(|r| cells.contains(&r.cell()));
    runs.sort_by_key(|r| r.cell());
    let rows = table(&runs, args.resamples);
    write_outputs(args, &arm_names, &runs, &rows)?;
    Ok(rows)
}

/// What `suite.json` holds.
#[derive(Serialize)]
struct SuiteJson<'a> {
    presets: &'a [String],
    worlds: &'a [u64],
    scenarios: &'a [String],
    scales: &'a [usize],
    arms: &'a [String],
    sets: &'a [String],
    resamples: usize,
    run_seconds: f64,
    rows: &'a [ClaimRow],
    switch: &'a [SwitchRow],
    pooled_trials: Vec<PooledTrial>,
    runs: &'a [SuiteRun],
}

fn write_outputs(
    args: &SuiteArgs,
    arms: &[String],
    runs: &[SuiteRun],
    rows: &[ClaimRow],
) -> anyhow::Result<()> {
    let switch = switch_table(runs, args.resamples);
    let md = markdown(rows, &switch, runs);
    let json = SuiteJson {
        presets: &args.presets,
        worlds: &args.worlds,
        scenarios: &args.scenarios,
        scales: &args.scales,
        arms,
        sets: &args.config.set,
        resamples: args.resamples,
        run_seconds: runs.iter().map(|r| r.seconds).sum(),
        rows,
        switch: &switch,
        pooled_trials: pooled_trials(runs),
        runs,
    };
    let files: [(&str, String); 4] = [
        ("suite.md", md.clone()),
        ("suite.csv", crate::protocol::suite::csv(rows)),
        ("switch.csv", crate::protocol::suite::switch_csv(&switch)),
        ("suite.json", serde_json::to_string_pretty(&json)?),
    ];
    for (name, text) in files {
        let path = args.out.join(name);
        crate::atomic::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    print!("{md}");
    Ok(())
}
