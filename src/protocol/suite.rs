//! The scenario suite's figures and their statistics: what one run of a world x scenario x
//! scale cell keeps ([`SuiteRun`], made from the run's [`Ledger`] by [`SuiteRun::of_ledger`]),
//! the method's claims over runs ([`Claim`], [`table`]), each student arm's days to switch,
//! degradation area and compute against the other arms ([`switch_table`]), the tuned value
//! sets pooled over runs ([`pooled_trials`]), and the markdown and CSV they are written as.
//!
//! `crossadapt bench suite` (`cli::suite`) only runs the cells and prints what this module
//! computes; the per-run figures are the ledger's verdict (days to switch, degradation, CPU
//! seconds), the same fold the report and the console read.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::arm::{ArmKind, CrossAdaptVariant, WeightRule};
use super::ledger::{compute_ratio, Ledger, Ratio};
use super::tune::{values_text, Tuning, AUC_TIE as TUNE_TIE, ONLINE_TUNING};
use crate::num;
use crate::train::stats::{bootstrap_clustered, bootstrap_mean, Interval};

/// Interval level of every interval of the suite.
pub const LEVEL: f64 = 0.95;
/// Offline AUC differences within this band count as ties (one number per run, no interval).
pub const AUC_TIE: f64 = 0.001;
/// The time claim: crossadapt's time to switch at most this share of scratch's.
pub const TIME_BOUND: f64 = 0.5;
/// Degradation areas (sums of daily AUC gaps) within this band of each other tie.
pub const AREA_TIE: f64 = 0.001;
/// Compute ratios within this share of 1 tie: identical runs measure within about ±10%.
pub const COMPUTE_TIE: f64 = 0.1;

/// The world a run on file without a `preset` was made in: the suite had no `--presets`, and
/// its runs were of the session's default world unless a `--set` said otherwise.
fn default_preset() -> String {
    "default".into()
}

/// One cell of the matrix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    /// The synthetic world's preset (`data.preset`, `--presets`).
    pub preset: String,
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
    /// The synthetic world's preset (`data.preset`).
    #[serde(default = "default_preset")]
    pub preset: String,
    pub world: u64,
    pub scenario: String,
    pub rows_per_day: usize,
    /// Online days of the run's plan: a student that never switched counts as switching on
    /// the day after them in the mean days to switch (0 in runs written before it was kept).
    #[serde(default)]
    pub online_days: usize,
    /// Wall seconds of the whole run (data, teacher, every arm).
    pub seconds: f64,
    /// First day of the drift (None for `none`).
    pub shift_day: Option<u32>,
    /// Mean distillation weight of the adaptive arm over the online days.
    pub mean_distill_weight: Option<f64>,
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
    /// Process CPU seconds of the offline stage and of all training (`None` in runs written
    /// before CPU time was measured; the ratios then use wall seconds).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub offline_cpu_seconds: Option<f64>,
    /// Wall seconds of all training, offline and online (0 in runs written before it was kept).
    #[serde(default, with = "num")]
    pub total_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub total_cpu_seconds: Option<f64>,
    /// The gate's verdict against the incumbent (student arms of a run with one): the first
    /// switch day, the online days until it, the AUC degradation before it. `judged` is false
    /// for the incumbent, for runs without one, and in runs written before these were kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub judged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_day: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_to_switch: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "num::opt")]
    pub degradation_area: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DayRun {
    pub day: u32,
    pub auc: Option<f64>,
    pub abs_bias: Option<f64>,
}

impl SuiteRun {
    /// The figures of a finished run of `cell`: per arm its offline and daily results and the
    /// ledger's verdict (CPU seconds, days to switch, degradation). `shift` is the scenario's
    /// first drift day; the wall seconds and the tuning record are the caller's to fill in.
    pub fn of_ledger(cell: &Cell, ledger: &Ledger, shift: Option<u32>) -> SuiteRun {
        let verdict = ledger.verdict(None);
        let arms = ledger
            .arms
            .iter()
            .zip(&verdict.arms)
            .map(|(a, v)| ArmRun {
                name: a.name.clone(),
                offline_seconds: v.offline_seconds,
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
                offline_cpu_seconds: v.offline_cpu_seconds,
                total_seconds: v.total_seconds,
                total_cpu_seconds: v.total_cpu_seconds,
                judged: v.gate.is_some(),
                switch_day: v.switch_day,
                days_to_switch: v.days_to_switch,
                degradation_area: v.degradation_area,
            })
            .collect();
        let weights: Vec<f64> = ledger.drift.values().map(|d| d.distill_weight).collect();
        SuiteRun {
            preset: cell.preset.clone(),
            world: cell.world,
            scenario: cell.scenario.clone(),
            rows_per_day: cell.rows_per_day,
            online_days: ledger.plan.online.len(),
            seconds: 0.0,
            shift_day: shift.filter(|d| ledger.plan.online.contains(d)),
            mean_distill_weight: (!weights.is_empty())
                .then(|| weights.iter().sum::<f64>() / weights.len() as f64),
            arms,
            tuning: None,
            tune_seconds: 0.0,
            tune_key: None,
            tune_reused: false,
        }
    }

    /// The matrix cell this run is of.
    pub fn cell(&self) -> Cell {
        Cell {
            preset: self.preset.clone(),
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
            Claim::TimeToSwitch => "crossadapt / scratch offline CPU seconds",
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
                // CPU seconds when the run measured them; a stage too short to time gives no
                // value, so the run does not count for the claim.
                let sc = run.arm(ArmKind::Scratch)?;
                let own = (ca.offline_seconds, ca.offline_cpu_seconds);
                match compute_ratio(own, (sc.offline_seconds, sc.offline_cpu_seconds)) {
                    Ratio::Of(r) => Some(vec![r]),
                    Ratio::TooShort | Ratio::None => None,
                }
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
    /// The world's preset.
    #[serde(default = "default_preset")]
    pub preset: String,
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
    let mut scenarios: Vec<String> = Vec::new();
    for r in runs {
        if !scenarios.contains(&r.scenario) {
            scenarios.push(r.scenario.clone());
        }
    }
    let mut rows = Vec::new();
    for (preset, scale) in kinds(runs) {
        let of = |r: &&SuiteRun| r.preset == preset && r.rows_per_day == scale;
        let groups: Vec<(String, Vec<&SuiteRun>)> =
            std::iter::once(("all".to_string(), runs.iter().filter(of).collect()))
                .chain(scenarios.iter().map(|s| {
                    let set = runs.iter().filter(of).filter(|r| &r.scenario == s);
                    (s.clone(), set.collect())
                }))
                .collect();
        for (ci, claim) in CLAIMS.iter().enumerate() {
            for (scenario, set) in &groups {
                let mut row = claim_row(*claim, scenario, scale, set, resamples, ci as u64);
                row.preset = preset.clone();
                rows.push(row);
            }
        }
    }
    rows
}

/// The world kinds of `runs`: each preset (in the order first seen) with each of its scales
/// (smallest first).
fn kinds(runs: &[SuiteRun]) -> Vec<(String, usize)> {
    let mut presets: Vec<&str> = Vec::new();
    for r in runs {
        if !presets.contains(&r.preset.as_str()) {
            presets.push(&r.preset);
        }
    }
    let mut out = Vec::new();
    for p in presets {
        let mut scales: Vec<usize> = runs
            .iter()
            .filter(|r| r.preset == p)
            .map(|r| r.rows_per_day)
            .collect();
        scales.sort_unstable();
        scales.dedup();
        out.extend(scales.into_iter().map(|s| (p.to_string(), s)));
    }
    out
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
        preset: default_preset(),
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

/// The markdown tables: the claims (overall rows per world and scale, then the per-scenario
/// breakdown), then each student arm's switch (`switch`, from [`switch_table`]), then the
/// pooled tuning when the runs were tuned.
pub fn markdown(rows: &[ClaimRow], switch: &[SwitchRow], runs: &[SuiteRun]) -> String {
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
        "| claim | world | rows/day | runs | wins | ties | losses | mean [95% CI] | verdict |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---|---|");
    for r in rows.iter().filter(|r| r.scenario == "all") {
        let digits = if r.key == "time" { 3 } else { 4 };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md_cell(&r.claim),
            r.preset,
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
    let _ = writeln!(
        s,
        "| claim | world | rows/day | {} |",
        scenarios.join(" | ")
    );
    let _ = writeln!(
        s,
        "|---|---|---:|{}",
        scenarios.iter().map(|_| "---|").collect::<String>()
    );
    let mut seen: Vec<(String, String, usize)> = Vec::new();
    for r in rows.iter().filter(|r| r.scenario == "all") {
        let key = (r.key.clone(), r.preset.clone(), r.rows_per_day);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let digits = if r.key == "time" { 3 } else { 4 };
        let cells: Vec<String> = scenarios
            .iter()
            .map(|sc| {
                rows.iter()
                    .find(|x| {
                        x.key == r.key
                            && x.preset == r.preset
                            && x.rows_per_day == r.rows_per_day
                            && x.scenario == *sc
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
            "| {} | {} | {} | {} |",
            md_cell(&r.claim),
            r.preset,
            r.rows_per_day,
            cells.join(" | ")
        );
    }
    let _ = writeln!(s, "\nWhat each value is:\n");
    for c in CLAIMS {
        let _ = writeln!(s, "- {}: {}", c.text(), c.value());
    }
    switch_markdown(&mut s, switch);
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
                values_text(&p.values),
                p.chosen,
                p.runs,
                p.mean_auc.map_or("-".into(), |m| format!("{m:.4}")),
                if p.best { "*" } else { "" }
            );
        }
    }
    s
}

pub fn csv(rows: &[ClaimRow]) -> String {
    let mut s = String::from(
        "claim,preset,scenario,rows_per_day,runs,wins,ties,losses,mean,lo,hi,verdict\n",
    );
    for r in rows {
        let (m, lo, hi) = r
            .mean
            .map_or((String::new(), String::new(), String::new()), |i| {
                (i.estimate.to_string(), i.lo.to_string(), i.hi.to_string())
            });
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            r.key,
            r.preset,
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

/// One student arm's switch over the runs of one world kind and scale: how many runs the gate
/// judged it in, how many it switched in, how soon, and what it lost before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwitchRow {
    pub preset: String,
    pub rows_per_day: usize,
    pub arm: String,
    /// Runs in which the gate judged the arm.
    pub runs: usize,
    /// Runs in which it said SWITCH on some online day.
    pub switched: usize,
    /// Median online days to switch over the runs that switched.
    #[serde(default, with = "num::opt")]
    pub median_days: Option<f64>,
    /// Mean online days to switch over every judged run, a run that never switched counted as
    /// switching on the day after its online days (a lower bound), with a bootstrap interval
    /// over worlds.
    pub days: Option<Interval>,
    /// Mean AUC degradation area against the incumbent, interval over worlds.
    pub area: Option<Interval>,
    /// Against other arms: `retrain` for every arm, and `scratch` and `kd` for crossadapt.
    pub versus: Vec<Versus>,
}

/// One arm against another over the runs both were judged in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Versus {
    pub other: String,
    pub runs: usize,
    /// Days to switch, own minus the other's: a win is an earlier switch.
    pub days: Tally,
    /// Degradation area, own minus the other's: a win is smaller by more than [`AREA_TIE`].
    pub area: Tally,
    /// Total training compute, own over the other's (CPU seconds when measured): a win is
    /// cheaper by more than [`COMPUTE_TIE`]. Runs where a figure was too short to time do not
    /// count (`too_short`).
    pub compute: Tally,
    pub too_short: usize,
}

/// Wins, ties and losses over runs, and the mean value with a bootstrap interval over worlds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub wins: usize,
    pub ties: usize,
    pub losses: usize,
    pub mean: Option<Interval>,
}

impl Tally {
    /// `values` per world, each with its outcome: the counts and the two-stage interval.
    fn of(values: &[(u64, f64, Outcome3)], resamples: usize, seed: u64) -> Tally {
        let mut t = Tally::default();
        let mut by_world: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for &(world, v, o) in values {
            match o {
                Outcome3::Win => t.wins += 1,
                Outcome3::Tie => t.ties += 1,
                Outcome3::Loss => t.losses += 1,
            }
            by_world.entry(world).or_default().push(v);
        }
        let groups: Vec<Vec<f64>> = by_world.into_values().collect();
        t.mean = bootstrap_clustered(&groups, LEVEL, resamples, seed);
        t
    }

    /// `w/t/l mean [lo, hi]`, or `-` when nothing counted.
    fn text(&self, digits: usize) -> String {
        if self.wins + self.ties + self.losses == 0 {
            return "-".into();
        }
        format!(
            "{}/{}/{} {}",
            self.wins,
            self.ties,
            self.losses,
            fmt_interval(&self.mean, digits)
        )
    }
}

/// The arm's days to switch in `run`, a run where it never switched counted as the day after
/// the online days; `None` when the gate did not judge it (or the run predates the figure).
fn days_or_after(run: &SuiteRun, a: &ArmRun) -> Option<f64> {
    if !a.judged || a.failed.is_some() {
        return None;
    }
    match a.days_to_switch {
        Some(d) => Some(f64::from(d)),
        None if run.online_days > 0 => Some(run.online_days as f64 + 1.0),
        None => None,
    }
}

/// The arm named `name` in `run`, when it ran to the end.
fn named<'a>(run: &'a SuiteRun, name: &str) -> Option<&'a ArmRun> {
    run.arms
        .iter()
        .find(|a| a.name == name && a.failed.is_none())
}

/// Per world kind and scale, per judged arm (in the runs' order): its switch figures and its
/// comparisons with `retrain` (the full retraining, every arm) and with `scratch` and `kd`
/// (crossadapt). Runs without a gate (no incumbent arm) or from before the figures were kept
/// do not count.
pub fn switch_table(runs: &[SuiteRun], resamples: usize) -> Vec<SwitchRow> {
    let mut out = Vec::new();
    for (k, (preset, scale)) in kinds(runs).into_iter().enumerate() {
        let set: Vec<&SuiteRun> = runs
            .iter()
            .filter(|r| r.preset == preset && r.rows_per_day == scale)
            .collect();
        let mut arms: Vec<&str> = Vec::new();
        for r in &set {
            for a in r.arms.iter().filter(|a| a.judged) {
                if !arms.contains(&a.name.as_str()) {
                    arms.push(&a.name);
                }
            }
        }
        for (i, name) in arms.iter().enumerate() {
            let salt = ((k as u64) << 32) ^ ((i as u64) << 16);
            let judged: Vec<(&SuiteRun, &ArmRun)> = set
                .iter()
                .filter_map(|r| Some((*r, named(r, name).filter(|a| a.judged)?)))
                .collect();
            let mut switched: Vec<f64> = judged
                .iter()
                .filter_map(|(_, a)| a.days_to_switch.map(f64::from))
                .collect();
            switched.sort_by(f64::total_cmp);
            let per_world = |f: &dyn Fn(&SuiteRun, &ArmRun) -> Option<f64>| {
                let mut by_world: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
                for (r, a) in &judged {
                    if let Some(v) = f(r, a) {
                        by_world.entry(r.world).or_default().push(v);
                    }
                }
                by_world.into_values().collect::<Vec<_>>()
            };
            let days = per_world(&days_or_after);
            let area = per_world(&|_, a| a.degradation_area);
            let full = ArmKind::CrossAdapt(CrossAdaptVariant::FULL).to_string();
            let others: Vec<&str> = if *name == full {
                vec!["retrain", "scratch", "kd"]
            } else {
                vec!["retrain"]
            };
            let versus = others
                .into_iter()
                .filter(|o| o != name)
                .enumerate()
                .filter_map(|(j, other)| {
                    versus(&judged, other, resamples, salt ^ ((j as u64) << 8))
                })
                .collect();
            out.push(SwitchRow {
                preset: preset.clone(),
                rows_per_day: scale,
                arm: name.to_string(),
                runs: judged.len(),
                switched: switched.len(),
                median_days: median(&switched),
                days: bootstrap_clustered(&days, LEVEL, resamples, salt ^ 1),
                area: bootstrap_clustered(&area, LEVEL, resamples, salt ^ 2),
                versus,
            });
        }
    }
    out
}

/// The median of sorted values (`None` when empty).
fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// An arm (its judged runs) against `other` over the runs where both were judged; `None`
/// when there are none.
fn versus(
    judged: &[(&SuiteRun, &ArmRun)],
    other: &str,
    resamples: usize,
    seed: u64,
) -> Option<Versus> {
    let (mut days, mut area, mut compute) = (Vec::new(), Vec::new(), Vec::new());
    let (mut runs, mut too_short) = (0, 0);
    let sign = |d: f64, tie: f64| {
        if d < -tie {
            Outcome3::Win
        } else if d > tie {
            Outcome3::Loss
        } else {
            Outcome3::Tie
        }
    };
    for (r, a) in judged {
        let Some(b) = named(r, other).filter(|b| b.judged) else {
            continue;
        };
        runs += 1;
        if let (Some(x), Some(y)) = (days_or_after(r, a), days_or_after(r, b)) {
            days.push((r.world, x - y, sign(x - y, 0.0)));
        }
        if let (Some(x), Some(y)) = (a.degradation_area, b.degradation_area) {
            area.push((r.world, x - y, sign(x - y, AREA_TIE)));
        }
        let total = |a: &ArmRun| (a.total_seconds, a.total_cpu_seconds);
        match compute_ratio(total(a), total(b)) {
            Ratio::Of(q) => compute.push((r.world, q, sign(q - 1.0, COMPUTE_TIE))),
            Ratio::TooShort => too_short += 1,
            Ratio::None => {}
        }
    }
    (runs > 0).then(|| Versus {
        other: other.to_string(),
        runs,
        days: Tally::of(&days, resamples, seed ^ 3),
        area: Tally::of(&area, resamples, seed ^ 4),
        compute: Tally::of(&compute, resamples, seed ^ 5),
        too_short,
    })
}

/// The switch tables of [`switch_table`] in markdown (nothing when no run had a gate).
fn switch_markdown(s: &mut String, rows: &[SwitchRow]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\nDays to switch per student arm (the gate against the incumbent; in the mean a run \
         that never switched counts as the day after its online days, so the mean is a lower \
         bound when any did not; intervals: 95% bootstrap over worlds):\n"
    );
    let _ = writeln!(
        s,
        "| arm | world | rows/day | runs | switched | median days | mean days [95% CI] | degradation area [95% CI] |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---|---|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.arm,
            r.preset,
            r.rows_per_day,
            r.runs,
            r.switched,
            r.median_days.map_or("-".into(), |m| num::fixed(m, 1)),
            fmt_interval(&r.days, 2),
            fmt_interval(&r.area, 4)
        );
    }
    let _ = writeln!(
        s,
        "\nAgainst another arm, over the runs both were judged in (wins / ties / losses, then \
         the mean [95% CI] over worlds): days to switch, own minus the other's (earlier wins); \
         degradation area, own minus the other's (smaller by more than {AREA_TIE} wins); total \
         training compute, own over the other's, of CPU seconds (cheaper by more than {:.0}% \
         wins; a run with a figure under 0.25 CPU s is too short to time and not counted):\n",
        COMPUTE_TIE * 100.0
    );
    let _ = writeln!(
        s,
        "| arm | vs | world | rows/day | runs | days to switch | degradation area | compute | too short |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|---|---|---|---:|");
    for r in rows {
        for v in &r.versus {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.arm,
                v.other,
                r.preset,
                r.rows_per_day,
                v.runs,
                v.days.text(2),
                v.area.text(4),
                v.compute.text(3),
                v.too_short
            );
        }
    }
}

/// The switch comparisons as CSV, one line per arm and other arm.
pub fn switch_csv(rows: &[SwitchRow]) -> String {
    let mut s = String::from(
        "arm,preset,rows_per_day,runs,switched,median_days,mean_days,other,pair_runs,\
         days_wins,days_ties,days_losses,days_diff,area_wins,area_ties,area_losses,area_diff,\
         compute_wins,compute_ties,compute_losses,compute_ratio,too_short\n",
    );
    let est = |i: &Option<Interval>| i.map_or(String::new(), |i| i.estimate.to_string());
    for r in rows {
        let own = format!(
            "{},{},{},{},{},{},{}",
            r.arm,
            r.preset,
            r.rows_per_day,
            r.runs,
            r.switched,
            r.median_days.map_or(String::new(), |m| m.to_string()),
            est(&r.days)
        );
        if r.versus.is_empty() {
            let _ = writeln!(s, "{own},,,,,,,,,,,,,,,");
        }
        for v in &r.versus {
            let t = |t: &Tally| format!("{},{},{},{}", t.wins, t.ties, t.losses, est(&t.mean));
            let _ = writeln!(
                s,
                "{own},{},{},{},{},{},{}",
                v.other,
                v.runs,
                t(&v.days),
                t(&v.area),
                t(&v.compute),
                v.too_short
            );
        }
    }
    s
}
