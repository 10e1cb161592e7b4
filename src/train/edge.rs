//! The edge of a world: is the new architecture better than the old one there, arch against
//! arch, with equal data? (`crossadapt bench edge`, docs/data.md.)
//!
//! For each world (a seed of the synthetic stream) the teacher's and the student's
//! architectures are trained from random init, with labels only and the same optimiser
//! settings, batches and days, and both are scored on each late day `d` after training on every
//! day before it. The student's lead on a day is its AUC minus the teacher architecture's, with
//! the clustered DeLong interval over the day's rows ([`super::stats`]); over worlds, a
//! percentile bootstrap of the worlds (per day) and of worlds then days (overall).
//!
//! Why one pass in day order: trained one pass over days `0..d` in order, a model is the same
//! whether it starts from scratch for each `d` or goes on from `d - 1` (the batches, their order
//! and the optimiser state are the same), so scoring day `d` on the way is the `from scratch on
//! all days before d` measurement at the cost of a single pass. One pass is also how a session
//! trains its teacher (`teacher.epochs` 1). The vocabulary is the days before the first late
//! day's (ids seen `min_count` times), as a deployed model's is fitted before the days it
//! serves; an id first seen later is out of vocabulary for both architectures alike.
//!
//! Nothing here reads a session: a world's edge is a property of the world, never of
//! crossadapt's results.

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::stats::{bootstrap_clustered, bootstrap_mean, paired_auc, paired_auc_clustered};
use super::stats::{Interval, PairedAuc};
use super::{Target, TrainConfig, Trainer};
use crate::data::{Batch, Dataset, SynthConfig, SyntheticSource, Vocabulary};
use crate::model::{build_model, ModelSpec};

/// Level of every interval.
pub const LEVEL: f64 = 0.95;
/// Resamples of the bootstrap over worlds.
const RESAMPLES: usize = 2000;
/// Seed of the bootstrap (fixed: the same runs print the same intervals).
const BOOTSTRAP_SEED: u64 = 0xED6E;

/// What to measure.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// The world; its `seed` is replaced by each of `seeds`.
    pub world: SynthConfig,
    pub seeds: Vec<u64>,
    /// The days scored, each after training on every day before it.
    pub late_days: std::ops::Range<usize>,
    pub teacher: ModelSpec,
    pub student: ModelSpec,
    pub train: TrainConfig,
    pub batch: usize,
    pub min_count: u32,
}

impl EdgeConfig {
    /// The last third of a stream of `days` days (at least one day, never day 0).
    pub fn default_late_days(days: usize) -> std::ops::Range<usize> {
        let first = (days - days / 3).clamp(1, days.saturating_sub(1).max(1));
        first..days
    }

    /// Refuses a measurement that cannot run, in one sentence naming what is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.seeds.is_empty() {
            bail!("bench edge: at least one world is needed");
        }
        let days = self.world.days;
        let late = &self.late_days;
        if late.start == 0 {
            bail!("bench edge: the late days may not include day 0, which has no day before it to train on");
        }
        if late.start >= late.end || late.end > days {
            bail!(
                "bench edge: the late days {}..{} must be a non-empty range within 1..{days} (the stream has {days} days)",
                late.start,
                late.end
            );
        }
        if self.batch == 0 {
            bail!("bench edge: the batch must hold at least one row");
        }
        Ok(())
    }
}

/// One late day of one world.
#[derive(Clone, Debug, Serialize)]
pub struct DayLead {
    pub day: usize,
    pub teacher_auc: f64,
    pub student_auc: f64,
    /// Student AUC minus teacher-architecture AUC, with its DeLong interval (clustered by
    /// user when the data has one).
    pub lead: Interval,
}

/// Every late day of one world.
#[derive(Clone, Debug, Serialize)]
pub struct WorldEdge {
    pub seed: u64,
    pub days: Vec<DayLead>,
    /// Seconds the world took (generation, training and scoring).
    pub seconds: f64,
}

impl WorldEdge {
    /// The smallest lead over the world's late days.
    pub fn min_lead(&self) -> f64 {
        self.days
            .iter()
            .map(|d| d.lead.estimate)
            .fold(f64::INFINITY, f64::min)
    }
}

/// One late day over every world: the mean lead with a bootstrap interval over worlds.
#[derive(Clone, Debug, Serialize)]
pub struct PooledDay {
    pub day: usize,
    pub lead: Interval,
    pub min_lead: f64,
}

/// The whole measurement.
#[derive(Clone, Debug, Serialize)]
pub struct EdgeReport {
    pub teacher: String,
    pub student: String,
    pub worlds: Vec<WorldEdge>,
    pub pooled_days: Vec<PooledDay>,
    /// Mean lead over every world and late day, bootstrapped over worlds then days.
    pub overall: Interval,
    /// The smallest lead of any late day of any world.
    pub min_lead: f64,
}

impl EdgeReport {
    fn of(cfg: &EdgeConfig, worlds: Vec<WorldEdge>) -> Result<EdgeReport> {
        let leads: Vec<Vec<f64>> = worlds
            .iter()
            .map(|w| w.days.iter().map(|d| d.lead.estimate).collect())
            .collect();
        let pooled_days = cfg
            .late_days
            .clone()
            .enumerate()
            .map(|(i, day)| {
                let values: Vec<f64> = leads.iter().map(|w| w[i]).collect();
                let lead = bootstrap_mean(&values, LEVEL, RESAMPLES, BOOTSTRAP_SEED)
                    .with_context(|| format!("day {day}: a lead is not a number"))?;
                let min_lead = values.iter().copied().fold(f64::INFINITY, f64::min);
                Ok(PooledDay {
                    day,
                    lead,
                    min_lead,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let overall = bootstrap_clustered(&leads, LEVEL, RESAMPLES, BOOTSTRAP_SEED)
            .context("a lead is not a number")?;
        let min_lead = worlds
            .iter()
            .map(WorldEdge::min_lead)
            .fold(f64::INFINITY, f64::min);
        Ok(EdgeReport {
            teacher: cfg.teacher.to_string(),
            student: cfg.student.to_string(),
            worlds,
            pooled_days,
            overall,
            min_lead,
        })
    }
}

/// Measures every world in turn; `on_world` sees each as it finishes (for a long run's
/// progress).
pub fn run(cfg: &EdgeConfig, on_world: &mut dyn FnMut(&WorldEdge)) -> Result<EdgeReport> {
    cfg.validate()?;
    let mut worlds = Vec::with_capacity(cfg.seeds.len());
    for &seed in &cfg.seeds {
        let world = run_world(cfg, seed).with_context(|| format!("world {seed}"))?;
        on_world(&world);
        worlds.push(world);
    }
    EdgeReport::of(cfg, worlds)
}

/// Each row's user key, when the data names a user field.
fn users(b: &Batch, user_index: Option<usize>) -> Option<Vec<u64>> {
    if !b.users.is_empty() && b.users.len() == b.rows() {
        return Some(b.users.clone());
    }
    let f = user_index.filter(|&f| f < b.num_cat)?;
    Some(b.field_column(f).map(u64::from).collect())
}

fn run_world(cfg: &EdgeConfig, seed: u64) -> Result<WorldEdge> {
    let start = std::time::Instant::now();
    let world = SynthConfig {
        seed,
        ..cfg.world.clone()
    };
    let source = SyntheticSource::new(world)?;
    let fit_days: Vec<usize> = (0..cfg.late_days.start).collect();
    let vocab = Vocabulary::fit(&source, &fit_days, cfg.min_count)?;
    let data = Dataset::new(Box::new(source), vocab);
    let user_index = data.spec().user_index();
    let trainer = |spec: &ModelSpec| -> Result<Trainer> {
        let model = build_model(spec, data.spec(), seed)?;
        Trainer::new(model, &cfg.train)
    };
    let mut teacher = trainer(&cfg.teacher)?;
    let mut student = trainer(&cfg.student)?;
    let mut days = Vec::with_capacity(cfg.late_days.len());
    for day in 0..cfg.late_days.end {
        let rows = data.day(day)?;
        if cfg.late_days.contains(&day) {
            days.push(score_day(&teacher, &student, &rows, day, user_index)?);
        }
        if day + 1 < cfg.late_days.end {
            for b in rows.chunks(cfg.batch) {
                teacher
                    .train_batch(&b, Target::Labels)
                    .with_context(|| format!("training {} on day {day}", cfg.teacher))?;
                student
                    .train_batch(&b, Target::Labels)
                    .with_context(|| format!("training {} on day {day}", cfg.student))?;
            }
        }
    }
    Ok(WorldEdge {
        seed,
        days,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn score_day(
    teacher: &Trainer,
    student: &Trainer,
    rows: &Batch,
    day: usize,
    user_index: Option<usize>,
) -> Result<DayLead> {
    let t = teacher.predict_logits(rows)?;
    let s = student.predict_logits(rows)?;
    let paired: Option<PairedAuc> = match users(rows, user_index) {
        Some(u) => paired_auc_clustered(&s, &t, &rows.label, &u),
        None => paired_auc(&s, &t, &rows.label),
    };
    let Some(p) = paired else {
        bail!(
            "day {day}: no AUC comparison (fewer than two rows or users of a class, or a \
             model's score is not a number)"
        );
    };
    Ok(DayLead {
        day,
        teacher_auc: p.auc_b,
        student_auc: p.auc_a,
        lead: p.diff(LEVEL),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default session's pair and batching, written out here: this layer does not read
    /// the engine's config.
    fn config(late: std::ops::Range<usize>) -> EdgeConfig {
        let spec = |text: &str| -> ModelSpec { text.parse().expect("a built-in spec") };
        EdgeConfig {
            world: SynthConfig::preset("tiny").expect("tiny"),
            seeds: vec![1],
            late_days: late,
            teacher: spec("mlp:emb=8,hidden=64x32"),
            student: spec("dcn:emb=16,hidden=128x64,cross=3"),
            train: TrainConfig {
                emb_lr: 0.02,
                ..TrainConfig::default()
            },
            batch: 1024,
            min_count: 2,
        }
    }

    #[test]
    fn the_late_days_are_the_last_third_and_never_day_0() {
        assert_eq!(EdgeConfig::default_late_days(24), 16..24);
        assert_eq!(EdgeConfig::default_late_days(10), 7..10);
        assert_eq!(EdgeConfig::default_late_days(2), 1..2);
    }

    #[test]
    fn bad_late_days_and_no_worlds_are_refused_in_one_sentence() {
        for (late, what) in [
            (0..3, "day 0,"),
            (5..5, "non-empty"),
            (8..11, "within 1..10"),
        ] {
            let err = run(&config(late), &mut |_| {}).expect_err("refused");
            assert!(err.to_string().contains(what), "{err}");
        }
        let mut cfg = config(7..10);
        cfg.seeds.clear();
        let err = run(&cfg, &mut |_| {}).expect_err("refused");
        assert!(err.to_string().contains("at least one world"), "{err}");
    }

    #[test]
    fn a_tiny_world_scores_every_late_day_of_every_world() {
        let mut cfg = config(8..10);
        cfg.seeds = vec![1, 2];
        let mut seen = Vec::new();
        let report = run(&cfg, &mut |w| seen.push(w.seed)).expect("runs");
        assert_eq!(seen, [1, 2]);
        assert_eq!(report.pooled_days.len(), 2);
        for w in &report.worlds {
            assert_eq!(w.days.iter().map(|d| d.day).collect::<Vec<_>>(), [8, 9]);
            for d in &w.days {
                let lead = d.student_auc - d.teacher_auc;
                assert!((d.lead.estimate - lead).abs() < 1e-12, "{d:?}");
                assert!(d.lead.lo < d.lead.estimate && d.lead.estimate < d.lead.hi);
            }
        }
        assert!(report.min_lead <= report.overall.estimate);
    }
}
