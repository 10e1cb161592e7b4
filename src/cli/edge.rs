//! `crossadapt bench edge`: parses the options, runs [`crate::train::edge`], prints the tables.

use anyhow::{bail, Context, Result};
use clap::Args;

use super::{ranges, ConfigArgs};
use crate::data::DataConfig;
use crate::engine::SessionConfig;
use crate::model::ModelSpec;
use crate::train::edge::{self, EdgeConfig, EdgeReport, WorldEdge};

#[derive(Debug, Args)]
pub struct EdgeArgs {
    /// Synthetic world (`data.preset`): default, fm4, no-drift or tiny.
    #[arg(long, default_value = "default")]
    pub preset: String,
    /// Number of worlds (`data.seed` = first-world, first-world + 1, ...).
    #[arg(long, default_value_t = 5, value_parser = ranges::count(1, 1000))]
    pub worlds: usize,
    /// Seed of the first world.
    #[arg(long, default_value_t = 1)]
    pub first_world: u64,
    /// Late days scored, as `a..b` (end excluded; default: the last third of the stream). Day
    /// `d` is scored after training on days `0..d`.
    #[arg(long)]
    pub days: Option<String>,
    /// The old architecture (default: the session's `teacher.model`).
    #[arg(long)]
    pub teacher: Option<String>,
    /// The new architecture (default: the session's `student.model`).
    #[arg(long)]
    pub student: Option<String>,
    /// Rows per day (default: the preset's).
    #[arg(long, value_parser = ranges::count(1, 10_000_000))]
    pub rows_per_day: Option<usize>,
    /// Threads of each model's training.
    #[arg(long, value_parser = ranges::count(1, ranges::MAX_THREADS))]
    pub threads: Option<usize>,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// A session config and `--set` overrides: the world's knobs (`data.*`), the models, the
    /// `[train]` optimiser settings, `batch_size` and `min_count` are read from it.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The measurement the options describe.
fn edge_config(args: &EdgeArgs) -> Result<EdgeConfig> {
    // The preset goes first so that `--set data.KEY=VALUE` overrides it.
    let mut sets = vec![format!("data.preset={}", args.preset)];
    sets.extend(args.config.set.iter().cloned());
    let session = SessionConfig::load(args.config.config.as_deref(), &sets)?;
    let DataConfig::Synthetic(mut world) = session.data.clone() else {
        bail!("bench edge measures a synthetic world: `data` must be the built-in stream");
    };
    if let Some(rows) = args.rows_per_day {
        world.rows_per_day = rows;
    }
    let late_days = match &args.days {
        None => EdgeConfig::default_late_days(world.days),
        Some(text) => super::train::parse_days(text).map(|r| r.start as usize..r.end as usize)?,
    };
    let spec = |flag: &str, text: &Option<String>, default: &ModelSpec| -> Result<ModelSpec> {
        match text {
            None => Ok(default.clone()),
            Some(t) => t.parse().with_context(|| format!("--{flag} `{t}`")),
        }
    };
    let mut train = session.train.clone();
    if let Some(t) = args.threads {
        train.threads = t;
    }
    Ok(EdgeConfig {
        seeds: (0..args.worlds as u64)
            .map(|i| args.first_world + i)
            .collect(),
        late_days,
        teacher: spec("teacher", &args.teacher, &session.teacher.model)?,
        student: spec("student", &args.student, &session.student.model)?,
        train,
        batch: session.batch_size,
        min_count: session.min_count,
        world,
    })
}

fn print_world(w: &WorldEdge) {
    println!(
        "world {} ({:.0} s): day  teacher_auc  student_auc  lead     95% interval",
        w.seed, w.seconds
    );
    for d in &w.days {
        println!(
            "          {:>4}  {:.4}       {:.4}       {:+.4}  [{:+.4}, {:+.4}]",
            d.day, d.teacher_auc, d.student_auc, d.lead.estimate, d.lead.lo, d.lead.hi
        );
    }
}

fn print_report(cfg: &EdgeConfig, r: &EdgeReport) {
    println!(
        "pooled over {} worlds (mean lead, 95% bootstrap interval over worlds; smallest lead):",
        r.worlds.len()
    );
    for d in &r.pooled_days {
        println!(
            "  day {:>3}  {:+.4}  [{:+.4}, {:+.4}]  min {:+.4}",
            d.day, d.lead.estimate, d.lead.lo, d.lead.hi, d.min_lead
        );
    }
    println!(
        "all late days {}..{}: mean lead {:+.4} [{:+.4}, {:+.4}] (bootstrap over worlds, then \
         days); smallest lead {:+.4}",
        cfg.late_days.start,
        cfg.late_days.end,
        r.overall.estimate,
        r.overall.lo,
        r.overall.hi,
        r.min_lead
    );
}

pub fn run(args: &EdgeArgs) -> Result<()> {
    let cfg = edge_config(args)?;
    cfg.validate()?;
    if !args.json {
        println!(
            "bench edge preset={} teacher={} student={} rows_per_day={} days={} late_days={}..{} \
             worlds={} threads={} batch={} emb_lr={} dense_lr={} cpu=\"{}\"",
            cfg.world.preset,
            cfg.teacher,
            cfg.student,
            cfg.world.rows_per_day,
            cfg.world.days,
            cfg.late_days.start,
            cfg.late_days.end,
            cfg.seeds.len(),
            cfg.train.threads,
            cfg.batch,
            cfg.train.emb_lr,
            cfg.train.dense_lr,
            crate::train::bench::cpu_model(),
        );
    }
    let json = args.json;
    let report = edge::run(&cfg, &mut |w| {
        if !json {
            print_world(w);
        }
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&cfg, &report);
    }
    Ok(())
}
