//! `crossadapt bench suite`: the scenario suite of issue 17.4. It runs one headless session per
//! synthetic world (`data.seed`) x drift scenario (`data.drift`) x scale (`data.rows_per_day`),
//! in this process and without a session store, and writes one table: for each claim of the
//! method, wins / ties / losses over the runs and a bootstrap interval over worlds and days.
//!
//! Every run's figures are appended to `runs.jsonl` in the output folder as soon as the run
//! ends, and a run already there is not run again: a suite that was stopped continues where it
//! stopped, and the table is rebuilt from every run on file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::ConfigArgs;
use crate::engine::config::shock_day;
use crate::engine::tune::{tune, tune_key, TuneBudget, TuneOutcome, DEFAULT_TRIALS};
use crate::engine::{Engine, EngineIo, Outcome, Record, SessionConfig};
use crate::method::adaptation::WeightSummary;
use crate::method::arm::DayWeight;
use crate::protocol::tune::{trial_line, Tuning, AUC_TIE as TUNE_TIE, ONLINE_TUNING};
use crate::protocol::{ArmKind, CrossAdaptVariant, Ledger, WeightRule};
use crate::train::stats::{bootstrap_clustered, bootstrap_mean, Interval};

/// Interval level of every interval of the suite.
const LEVEL: f64 = 0.95;
/// Offline AUC differences within this band count as ties (one number per run, no interval).
pub const AUC_TIE: f64 = 0.001;
/// The time claim: crossadapt's time to switch at most this share of scratch's.
pub const TIME_BOUND: f64 = 0.5;

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
    /// Rows per day (`data.rows_per_day`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "20000,200000")]
    pub scales: Vec<usize>,
    /// Arms of every run, comma-separated (crossadapt is required; a claim whose arms are
    /// missing is reported as not run).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "scratch,kd,crossadapt,crossadapt-matched"
    )]
    pub arms: Vec<String>,
    /// Output folder: runs.jsonl, suite.md, suite.csv, suite.json.
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

/// One cell of the matrix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    pub world: u64,
    pub scenario: String,
    pub rows_per_day: usize,
    /// Whether the arms were tuned on the run's retained days first (`--tune`).
    pub tuned: bool,
    /// The retained days the tuning's online stage streamed (`--tune-online-days`; 0: none).
    pub online_days: usize,
}

/// What the suite keeps of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuiteRun {
    pub world: u64,
    pub scenario: String,
    pub rows_per_day: usize,
    /// Wall seconds of the whole run (data, teacher, every arm).
    pub seconds: f64,
    /// First day of the drift (None for `none`).
    pub shift_day: Option<u32>,
    /// Mean distillation weight of the adaptive arm over the online days.
    pub mean_distill_weight: Option<f64>,
    /// The adaptive rule's drift weight per online day (absent from runs written before it
    /// was kept, and from runs without an adaptive arm).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift_weights: Vec<DayWeight>,
    pub arms: Vec<ArmRun>,
    /// The validation protocol's record when the run was tuned (`--tune`): every arm's trials on
    /// the run's retained days and its choice, which the run used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<Tuning>,
    /// Wall seconds of the tuning, included in `seconds`.
    #[serde(default)]
    pub tune_seconds: f64,
    /// [`tune_key`] of the run's tuning: runs with the same key tuned on the same retained
    /// days with the same config and budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune_key: Option<String>,
    /// The tuning was an earlier run's with the same key (on file or in this call), not run
    /// again; `tune_seconds` is then the time to compute the key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tune_reused: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmRun {
    pub name: String,
    pub offline_seconds: f64,
    pub offline_auc: Option<f64>,
    pub days: Vec<DayRun>,
    pub failed: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DayRun {
    pub day: u32,
    pub auc: Option<f64>,
    pub abs_bias: Option<f64>,
}

impl SuiteRun {
    fn cell(&self) -> Cell {
        Cell {
            world: self.world,
            scenario: self.scenario.clone(),
            rows_per_day: self.rows_per_day,
            tuned: self.tuning.is_some(),
            online_days: self
                .tuning
                .as_ref()
                .and_then(|t| t.online.as_ref())
                .map_or(0, |o| o.days.len()),
        }
    }

    fn arm(&self, kind: ArmKind) -> Option<&ArmRun> {
        self.arms
            .iter()
            .find(|a| ArmKind::parse(&a.name).ok() == Some(kind) && a.failed.is_none())
    }
}

/// The claims, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    TimeToSwitch,
    OfflineAucVsKd,
    OnlineAucVsKd,
    OnlineAucVsScratch,
    BiasVsKd,
    AdaptiveAfterShift,
    NoHarmWithoutDrift,
}

pub const CLAIMS: [Claim; 7] = [
    Claim::TimeToSwitch,
    Claim::OfflineAucVsKd,
    Claim::OnlineAucVsKd,
    Claim::OnlineAucVsScratch,
    Claim::BiasVsKd,
    Claim::AdaptiveAfterShift,
    Claim::NoHarmWithoutDrift,
];

impl Claim {
    pub fn text(self) -> &'static str {
        match self {
            Claim::TimeToSwitch => "time to switch <= 0.5x scratch",
            Claim::OfflineAucVsKd => "offline AUC >= kd",
            Claim::OnlineAucVsKd => "online AUC >= kd",
            Claim::OnlineAucVsScratch => "online AUC >= scratch",
            Claim::BiasVsKd => "online |bias| <= kd",
            Claim::AdaptiveAfterShift => "adaptive >= matched-fixed after a shift",
            Claim::NoHarmWithoutDrift => "no harm without drift",
        }
    }

    /// What the per-unit value is (the interval is of its mean).
    pub fn value(self) -> &'static str {
        match self {
            Claim::TimeToSwitch => "crossadapt / scratch offline seconds",
            Claim::OfflineAucVsKd => "crossadapt - kd offline AUC",
            Claim::OnlineAucVsKd => "crossadapt - kd AUC per online day",
            Claim::OnlineAucVsScratch => "crossadapt - scratch AUC per online day",
            Claim::BiasVsKd => "kd |bias| - crossadapt |bias| per online day",
            Claim::AdaptiveAfterShift => {
                "crossadapt - crossadapt-matched AUC per day from the shift on (drift scenarios)"
            }
            Claim::NoHarmWithoutDrift => {
                "crossadapt - crossadapt-matched AUC per online day (scenario none)"
            }
        }
    }

    fn key(self) -> &'static str {
        match self {
            Claim::TimeToSwitch => "time",
            Claim::OfflineAucVsKd => "offline_auc_kd",
            Claim::OnlineAucVsKd => "online_auc_kd",
            Claim::OnlineAucVsScratch => "online_auc_scratch",
            Claim::BiasVsKd => "bias_kd",
            Claim::AdaptiveAfterShift => "adaptive_shift",
            Claim::NoHarmWithoutDrift => "no_harm",
        }
    }

    /// The good side: the claim holds for a value above the bound (or below it for time).
    fn bound(self) -> f64 {
        match self {
            Claim::TimeToSwitch => TIME_BOUND,
            _ => 0.0,
        }
    }

    fn lower_is_better(self) -> bool {
        self == Claim::TimeToSwitch
    }

    /// The arm the adaptivity claims compare with: `crossadapt-matched`, fixed at the level the
    /// adaptive rule had on the days before (so the claims isolate responsiveness, not a lower
    /// mean weight). A run without it (e.g. one on file from before the arm existed, which had
    /// `crossadapt-fixed` at `a_max`) does not count for these claims.
    fn fixed(run: &SuiteRun) -> Option<&ArmRun> {
        run.arm(ArmKind::CrossAdapt(CrossAdaptVariant {
            weight: WeightRule::Matched,
            ..CrossAdaptVariant::FULL
        }))
    }

    /// The run's values for this claim (one per day, or one per run), `None` when the claim
    /// does not apply to the run or its arms are missing.
    pub fn values(self, run: &SuiteRun) -> Option<Vec<f64>> {
        let ca = run.arm(ArmKind::CrossAdapt(CrossAdaptVariant::FULL))?;
        let daily = |other: &ArmRun, from: u32, f: &dyn Fn(&DayRun, &DayRun) -> Option<f64>| {
            let by_day: BTreeMap<u32, &DayRun> = other.days.iter().map(|d| (d.day, d)).collect();
            let v: Vec<f64> = ca
                .days
                .iter()
                .filter(|d| d.day >= from)
                .filter_map(|d| by_day.get(&d.day).and_then(|o| f(d, o)))
                .filter(|x| x.is_finite())
                .collect();
            (!v.is_empty()).then_some(v)
        };
        let auc = |a: &DayRun, b: &DayRun| Some(a.auc? - b.auc?);
        match self {
            Claim::TimeToSwitch => {
                let sc = run.arm(ArmKind::Scratch)?;
                (sc.offline_seconds > 0.0).then(|| vec![ca.offline_seconds / sc.offline_seconds])
            }
            Claim::OfflineAucVsKd => {
                let kd = run.arm(ArmKind::Kd)?;
                Some(vec![ca.offline_auc? - kd.offline_auc?])
            }
            Claim::OnlineAucVsKd => daily(run.arm(ArmKind::Kd)?, 0, &auc),
            Claim::OnlineAucVsScratch => daily(run.arm(ArmKind::Scratch)?, 0, &auc),
            Claim::BiasVsKd => daily(run.arm(ArmKind::Kd)?, 0, &|a: &DayRun, b: &DayRun| {
                Some(b.abs_bias? - a.abs_bias?)
            }),
            Claim::AdaptiveAfterShift => daily(Claim::fixed(run)?, run.shift_day?, &auc),
            Claim::NoHarmWithoutDrift if run.shift_day.is_none() => {
                daily(Claim::fixed(run)?, 0, &auc)
            }
            Claim::NoHarmWithoutDrift => None,
        }
    }

    /// Win, tie or loss of one run: a per-day claim by its bootstrap interval over the days
    /// (win when it lies wholly on the good side of the bound); the time claim against its
    /// bound (no ties); offline AUC within [`AUC_TIE`] is a tie.
    pub fn outcome(self, values: &[f64], resamples: usize, seed: u64) -> Outcome3 {
        let good = |x: f64| {
            if self.lower_is_better() {
                self.bound() - x
            } else {
                x - self.bound()
            }
        };
        match self {
            Claim::TimeToSwitch => {
                if values.iter().all(|&v| good(v) >= 0.0) {
                    Outcome3::Win
                } else {
                    Outcome3::Loss
                }
            }
            Claim::OfflineAucVsKd => match values.first().map(|&v| good(v)) {
                Some(d) if d > AUC_TIE => Outcome3::Win,
                Some(d) if d < -AUC_TIE => Outcome3::Loss,
                _ => Outcome3::Tie,
            },
            _ => match bootstrap_mean(values, LEVEL, resamples, seed) {
                Some(i) if good(i.lo) > 0.0 => Outcome3::Win,
                Some(i) if good(i.hi) < 0.0 => Outcome3::Loss,
                _ => Outcome3::Tie,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome3 {
    Win,
    Tie,
    Loss,
}

/// One row of the table: a claim over a set of runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimRow {
    pub claim: String,
    pub key: String,
    /// `all` or one scenario.
    pub scenario: String,
    pub rows_per_day: usize,
    /// Runs the claim applied to (its arms present, its scenario).
    pub runs: usize,
    pub wins: usize,
    pub ties: usize,
    pub losses: usize,
    /// Mean of the values with a two-stage bootstrap interval (worlds, then days).
    pub mean: Option<Interval>,
    /// `holds` (interval wholly on the good side), `fails` (wholly on the bad side),
    /// `undecided`, or `not run`.
    pub verdict: String,
    pub value: String,
}

/// The table of `runs`: per claim and scale over every scenario, then per scenario.
pub fn table(runs: &[SuiteRun], resamples: usize) -> Vec<ClaimRow> {
    let mut scales: Vec<usize> = runs.iter().map(|r| r.rows_per_day).collect();
    scales.sort_unstable();
    scales.dedup();
    let mut scenarios: Vec<String> = Vec::new();
    for r in runs {
        if !scenarios.contains(&r.scenario) {
            scenarios.push(r.scenario.clone());
        }
    }
    let mut rows = Vec::new();
    for &scale in &scales {
        let groups: Vec<(String, Vec<&SuiteRun>)> = std::iter::once((
            "all".to_string(),
            runs.iter().filter(|r| r.rows_per_day == scale).collect(),
        ))
        .chain(scenarios.iter().map(|s| {
            (
                s.clone(),
                runs.iter()
                    .filter(|r| r.rows_per_day == scale && &r.scenario == s)
                    .collect(),
            )
        }))
        .collect();
        for (ci, claim) in CLAIMS.iter().enumerate() {
            for (scenario, set) in &groups {
                rows.push(claim_row(
                    *claim, scenario, scale, set, resamples, ci as u64,
                ));
            }
        }
    }
    rows
}

fn claim_row(
    claim: Claim,
    scenario: &str,
    scale: usize,
    runs: &[&SuiteRun],
    resamples: usize,
    salt: u64,
) -> ClaimRow {
    let (mut wins, mut ties, mut losses) = (0, 0, 0);
    // Values per world (the top level of the two-stage bootstrap).
    let mut by_world: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    let mut applied = 0;
    for r in runs {
        let Some(values) = claim.values(r) else {
            continue;
        };
        applied += 1;
        let seed = salt ^ (r.world << 8) ^ (r.rows_per_day as u64) << 20;
        match claim.outcome(&values, resamples, seed) {
            Outcome3::Win => wins += 1,
            Outcome3::Tie => ties += 1,
            Outcome3::Loss => losses += 1,
        }
        by_world.entry(r.world).or_default().extend(values);
    }
    let groups: Vec<Vec<f64>> = by_world.into_values().collect();
    let mean = bootstrap_clustered(&groups, LEVEL, resamples, salt + scale as u64);
    let verdict = match mean {
        None => "not run".to_string(),
        Some(i) => {
            let (good_lo, good_hi) = if claim.lower_is_better() {
                (claim.bound() - i.hi, claim.bound() - i.lo)
            } else {
                (i.lo - claim.bound(), i.hi - claim.bound())
            };
            if good_lo >= 0.0 {
                "holds".into()
            } else if good_hi < 0.0 {
                "fails".into()
            } else {
                "undecided".into()
            }
        }
    };
    ClaimRow {
        claim: claim.text().into(),
        key: claim.key().into(),
        scenario: scenario.into(),
        rows_per_day: scale,
        runs: applied,
        wins,
        ties,
        losses,
        mean,
        verdict,
        value: claim.value().into(),
    }
}

/// The matrix of `args`, in run order (scale, then world, then scenario: the small scale
/// finishes first).
pub fn cells(args: &SuiteArgs) -> Vec<Cell> {
    let mut out = Vec::new();
    for &rows_per_day in &args.scales {
        for &world in &args.worlds {
            for scenario in &args.scenarios {
                out.push(Cell {
                    world,
                    scenario: scenario.clone(),
                    rows_per_day,
                    tuned: args.tune,
                    online_days: if args.tune { args.tune_online_days } else { 0 },
                });
            }
        }
    }
    out
}

/// The session config of one cell: the user's config and `--set`s, then the cell's world,
/// scenario and scale, and the suite's arms.
pub fn cell_config(args: &SuiteArgs, cell: &Cell) -> anyhow::Result<SessionConfig> {
    let mut sets = args.config.set.clone();
    sets.push(format!("data.seed={}", cell.world));
    sets.push(format!("data.drift=\"{}\"", cell.scenario));
    sets.push(format!("data.rows_per_day={}", cell.rows_per_day));
    let arms: Vec<String> = args.arms.iter().map(|a| format!("\"{a}\"")).collect();
    sets.push(format!("arms=[{}]", arms.join(",")));
    SessionConfig::load(args.config.config.as_deref(), &sets).with_context(|| {
        format!(
            "suite cell world {} · {} · {} rows/day",
            cell.world, cell.scenario, cell.rows_per_day
        )
    })
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
    let ledger = Ledger::of(&records);
    let arms = ledger
        .arms
        .iter()
        .map(|a| ArmRun {
            name: a.name.clone(),
            offline_seconds: a.offline.as_ref().map_or(0.0, |o| o.seconds),
            offline_auc: a.offline.as_ref().and_then(|o| o.metrics.auc),
            days: a
                .days
                .iter()
                .map(|(day, d)| DayRun {
                    day: *day,
                    auc: d.metrics.auc,
                    abs_bias: d.metrics.abs_bias(),
                })
                .collect(),
            failed: a.failed.clone(),
        })
        .collect();
    let weights: Vec<f64> = ledger.drift.values().map(|d| d.distill_weight).collect();
    let shift_day = shift.filter(|d| ledger.plan.online.contains(d));
    Ok(SuiteRun {
        world: cell.world,
        scenario: cell.scenario.clone(),
        rows_per_day: cell.rows_per_day,
        seconds: started.elapsed().as_secs_f64(),
        shift_day,
        mean_distill_weight: (!weights.is_empty())
            .then(|| weights.iter().sum::<f64>() / weights.len() as f64),
        drift_weights: ledger
            .drift
            .iter()
            .map(|(&day, d)| DayWeight {
                day,
                weight: d.weight,
            })
            .collect(),
        arms,
        tuning,
        tune_seconds,
        tune_key: key,
        tune_reused: reused,
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
    anyhow::ensure!(
        args.arms.iter().any(|a| a == "crossadapt"),
        "--arms must include crossadapt (every claim is about it)"
    );
    let cells = cells(args);
    anyhow::ensure!(!cells.is_empty(), "the suite has no cell to run");
    // Every config is checked before the first run, so a bad scenario fails at once.
    let configs = cells
        .iter()
        .map(|c| cell_config(args, c))
        .collect::<anyhow::Result<Vec<_>>>()?;
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
        args.arms.join(","),
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
            "[{}/{}] world {} · {} · {} rows/day: {:.1} s (elapsed {:.0} s, eta {:.0} s)",
            k + 1,
            todo.len(),
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
    write_outputs(args, &runs, &rows)?;
    Ok(rows)
}

/// One value set of one arm, pooled over the tuned runs of one scale: how the retained days of
/// every world and scenario score it. The best of an arm is the value set the protocol would
/// choose for all of them at once (a default chosen on retained days only).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PooledTrial {
    pub rows_per_day: usize,
    pub arm: String,
    pub values: BTreeMap<String, f64>,
    /// Tuned runs of the scale that tried this value set, and how many of them chose it.
    pub runs: usize,
    pub chosen: usize,
    /// Mean validation AUC over the runs that scored it (`None` if none did).
    pub mean_auc: Option<f64>,
    /// The highest mean among the value sets every tuned run of the scale scored; within the
    /// protocol's tie band the earlier set wins (the session's values first).
    pub best: bool,
}

/// Every arm's value sets pooled over the tuned runs, per scale, in the order the runs tried
/// them. Empty without tuned runs.
pub fn pooled_trials(runs: &[SuiteRun]) -> Vec<PooledTrial> {
    let mut out: Vec<PooledTrial> = Vec::new();
    let mut scales: Vec<usize> = runs.iter().map(|r| r.rows_per_day).collect();
    scales.sort_unstable();
    scales.dedup();
    for scale in scales {
        let tuned: Vec<&Tuning> = runs
            .iter()
            .filter(|r| r.rows_per_day == scale)
            .filter_map(|r| r.tuning.as_ref())
            .collect();
        // Each value set of each arm with the AUCs it scored and the runs that scored it, in
        // first-seen order; and the runs that tuned each arm.
        let mut sets: Vec<(PooledTrial, Vec<f64>, Vec<usize>)> = Vec::new();
        let mut tuned_by: BTreeMap<&str, usize> = BTreeMap::new();
        for (r, tuning) in tuned.iter().enumerate() {
            let online = tuning.online.as_ref().map(|o| &o.tuning);
            for arm in tuning.arms.iter().chain(online) {
                *tuned_by.entry(arm.arm.as_str()).or_default() += 1;
                for (i, t) in arm.trials.iter().enumerate() {
                    let k = match sets
                        .iter()
                        .position(|(p, _, _)| p.arm == arm.arm && p.values == t.values)
                    {
                        Some(k) => k,
                        None => {
                            let row = PooledTrial {
                                rows_per_day: scale,
                                arm: arm.arm.clone(),
                                values: t.values.clone(),
                                runs: 0,
                                chosen: 0,
                                mean_auc: None,
                                best: false,
                            };
                            sets.push((row, Vec::new(), Vec::new()));
                            sets.len() - 1
                        }
                    };
                    let (row, aucs, scored_by) = &mut sets[k];
                    if let Some(auc) = t.auc.filter(|a| a.is_finite() && t.failed.is_none()) {
                        aucs.push(auc);
                        if !scored_by.contains(&r) {
                            scored_by.push(r);
                        }
                    }
                    row.runs += 1;
                    row.chosen += usize::from(i == arm.chosen);
                }
            }
        }
        // Eligible for best: scored by every tuned run of the scale that tuned the arm.
        let start = out.len();
        let mut eligible = Vec::new();
        for (mut row, aucs, scored_by) in sets {
            row.mean_auc = (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64);
            eligible.push(
                row.mean_auc.is_some()
                    && scored_by.len() == tuned_by.get(row.arm.as_str()).copied().unwrap_or(0),
            );
            out.push(row);
        }
        let block = &mut out[start..];
        for (arm, _) in tuned_by {
            let candidates = || {
                block
                    .iter()
                    .zip(&eligible)
                    .filter(|(p, &e)| e && p.arm == arm)
                    .filter_map(|(p, _)| p.mean_auc)
            };
            let top = candidates().fold(f64::NEG_INFINITY, f64::max);
            if let Some((p, _)) = block.iter_mut().zip(&eligible).find(|(p, &e)| {
                e && p.arm == arm && p.mean_auc.is_some_and(|m| m >= top - TUNE_TIE)
            }) {
                p.best = true;
            }
        }
    }
    out
}

fn fmt_interval(i: &Option<Interval>, digits: usize) -> String {
    match i {
        Some(i) => format!(
            "{:+.d$} [{:+.d$}, {:+.d$}]",
            i.estimate,
            i.lo,
            i.hi,
            d = digits
        ),
        None => "-".into(),
    }
}

/// A markdown table cell: a `|` in the text (the |bias| claim) would end the cell.
fn md_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The markdown table (overall rows per scale, then the per-scenario breakdown).
pub fn markdown(rows: &[ClaimRow], runs: &[SuiteRun]) -> String {
    let mut s = String::new();
    let wall: f64 = runs.iter().map(|r| r.seconds).sum();
    let worlds: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.world).collect();
    let _ = writeln!(
        s,
        "{} runs ({} worlds), {:.0} s of runs in total.\n",
        runs.len(),
        worlds.len(),
        wall
    );
    let _ = writeln!(
        s,
        "| claim | rows/day | runs | wins | ties | losses | mean [95% CI] | verdict |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|---|");
    for r in rows.iter().filter(|r| r.scenario == "all") {
        let digits = if r.key == "time" { 3 } else { 4 };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            md_cell(&r.claim),
            r.rows_per_day,
            r.runs,
            r.wins,
            r.ties,
            r.losses,
            fmt_interval(&r.mean, digits),
            r.verdict
        );
    }
    let _ = writeln!(s, "\nPer scenario (wins / ties / losses, mean [95% CI]):\n");
    let mut scenarios: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| r.scenario != "all") {
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    let _ = writeln!(s, "| claim | rows/day | {} |", scenarios.join(" | "));
    let _ = writeln!(
        s,
        "|---|---:|{}",
        scenarios.iter().map(|_| "---|").collect::<String>()
    );
    let mut seen: Vec<(String, usize)> = Vec::new();
    for r in rows.iter().filter(|r| r.scenario == "all") {
        if seen.contains(&(r.key.clone(), r.rows_per_day)) {
            continue;
        }
        seen.push((r.key.clone(), r.rows_per_day));
        let digits = if r.key == "time" { 3 } else { 4 };
        let cells: Vec<String> = scenarios
            .iter()
            .map(|sc| {
                rows.iter()
                    .find(|x| {
                        x.key == r.key && x.rows_per_day == r.rows_per_day && x.scenario == *sc
                    })
                    .map_or("-".into(), |x| {
                        if x.runs == 0 {
                            "-".into()
                        } else {
                            format!(
                                "{}/{}/{} {}",
                                x.wins,
                                x.ties,
                                x.losses,
                                x.mean.map_or("-".into(), |i| format!(
                                    "{:+.d$} [{:+.d$}, {:+.d$}]",
                                    i.estimate,
                                    i.lo,
                                    i.hi,
                                    d = digits
                                ))
                            )
                        }
                    })
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            md_cell(&r.claim),
            r.rows_per_day,
            cells.join(" | ")
        );
    }
    drift_weight_table(&mut s, runs);
    let _ = writeln!(s, "\nWhat each value is:\n");
    for c in CLAIMS {
        let _ = writeln!(s, "- {}: {}", c.text(), c.value());
    }
    let pooled = pooled_trials(runs);
    if !pooled.is_empty() {
        let tuned = runs.iter().filter(|r| r.tuning.is_some()).count();
        let reused = runs.iter().filter(|r| r.tune_reused).count();
        let shared = if reused > 0 {
            let times = match tuned - reused {
                1 => "once".to_string(),
                n => format!("{n} times"),
            };
            format!(
                " {reused} of them read the same retained days with the same config as an \
                 earlier run and took its tuning (the protocol ran {times})."
            )
        } else {
            String::new()
        };
        let online = if pooled.iter().any(|p| p.arm == ONLINE_TUNING) {
            format!(
                " The `{ONLINE_TUNING}` rows are the values crossadapt's arms share after the \
                 switch (`--tune-online-days`), scored by their mean test AUC over the retained \
                 days streamed after an earlier switch."
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "\nEvery arm was tuned first in {tuned} of the {} runs, on each run's own retained \
             days (`--tune`).{shared} Each value set tried, per arm and scale: how many runs \
             chose it and its mean validation AUC over them; `*` marks the highest mean among \
             the sets every run scored (ties within {TUNE_TIE} go to the earlier set, the \
             session's values first): the values one choice on the retained days of every run \
             gives.{online}\n",
            runs.len()
        );
        let _ = writeln!(
            s,
            "| arm | rows/day | values | chosen by | mean validation AUC | best |"
        );
        let _ = writeln!(s, "|---|---:|---|---:|---:|---|");
        for p in &pooled {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {}/{} | {} | {} |",
                p.arm,
                p.rows_per_day,
                crate::protocol::tune::values_text(&p.values),
                p.chosen,
                p.runs,
                p.mean_auc.map_or("-".into(), |m| format!("{m:.4}")),
                if p.best { "*" } else { "" }
            );
        }
    }
    s
}

/// The adaptive rule's drift weight per online day of every run that kept it, then per
/// scenario its mean and the days at a bound.
fn drift_weight_table(s: &mut String, runs: &[SuiteRun]) {
    let kept: Vec<&SuiteRun> = runs
        .iter()
        .filter(|r| !r.drift_weights.is_empty())
        .collect();
    if kept.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\nDrift weight `w` per online day (the adaptive rule's, day by day; `*` at a bound):\n"
    );
    let _ = writeln!(
        s,
        "| world | scenario | rows/day | shift | w by day | mean |"
    );
    let _ = writeln!(s, "|---:|---|---:|---:|---|---:|");
    for r in &kept {
        let w: Vec<f64> = r.drift_weights.iter().map(|d| d.weight).collect();
        let days: Vec<String> = r
            .drift_weights
            .iter()
            .map(|d| {
                let mark = if WeightSummary::at_bound(d.weight) {
                    "*"
                } else {
                    ""
                };
                format!("{}:{:.2}{mark}", d.day, d.weight)
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.3} |",
            r.world,
            r.scenario,
            r.rows_per_day,
            r.shift_day.map_or("-".into(), |d| d.to_string()),
            days.join(" "),
            WeightSummary::of(&w).mean
        );
    }
    let mut scenarios: Vec<&str> = Vec::new();
    for r in &kept {
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    let _ = writeln!(s, "\n| scenario | runs | mean w | days at a bound |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for sc in scenarios {
        let w: Vec<f64> = kept
            .iter()
            .filter(|r| r.scenario == sc)
            .flat_map(|r| r.drift_weights.iter().map(|d| d.weight))
            .collect();
        let runs = kept.iter().filter(|r| r.scenario == sc).count();
        let sum = WeightSummary::of(&w);
        let _ = writeln!(
            s,
            "| {sc} | {runs} | {:.3} | {} of {} |",
            sum.mean,
            sum.at_bound,
            w.len()
        );
    }
}

fn csv(rows: &[ClaimRow]) -> String {
    let mut s =
        String::from("claim,scenario,rows_per_day,runs,wins,ties,losses,mean,lo,hi,verdict\n");
    for r in rows {
        let (m, lo, hi) = r
            .mean
            .map_or((String::new(), String::new(), String::new()), |i| {
                (i.estimate.to_string(), i.lo.to_string(), i.hi.to_string())
            });
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{}",
            r.key,
            r.scenario,
            r.rows_per_day,
            r.runs,
            r.wins,
            r.ties,
            r.losses,
            m,
            lo,
            hi,
            r.verdict
        );
    }
    s
}

#[derive(Serialize)]
struct SuiteJson<'a> {
    worlds: &'a [u64],
    scenarios: &'a [String],
    scales: &'a [usize],
    arms: &'a [String],
    sets: &'a [String],
    resamples: usize,
    run_seconds: f64,
    rows: &'a [ClaimRow],
    pooled_trials: Vec<PooledTrial>,
    runs: &'a [SuiteRun],
}

fn write_outputs(args: &SuiteArgs, runs: &[SuiteRun], rows: &[ClaimRow]) -> anyhow::Result<()> {
    let md = markdown(rows, runs);
    let json = SuiteJson {
        worlds: &args.worlds,
        scenarios: &args.scenarios,
        scales: &args.scales,
        arms: &args.arms,
        sets: &args.config.set,
        resamples: args.resamples,
        run_seconds: runs.iter().map(|r| r.seconds).sum(),
        rows,
        pooled_trials: pooled_trials(runs),
        runs,
    };
    let files: [(&str, String); 3] = [
        ("suite.md", md.clone()),
        ("suite.csv", csv(rows)),
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
