//! `crossadapt train` and `crossadapt bench`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::ranges;
use crate::data::{DataConfig, Dataset, SynthConfig, Vocabulary};
use crate::model::{build_model, ModelSpec};
use crate::train::bench::{self, BenchConfig};
use crate::train::metrics::evaluate;
use crate::train::{EmbOptimizer, Target, TrainConfig, Trainer};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Model spec, e.g. `dcnv2` or `deepfm:emb=16,hidden=400x400x400`.
    #[arg(long, default_value = "deepfm")]
    pub model: String,
    /// Days to train on, as `a..b` (end excluded).
    #[arg(long, default_value = "0..8")]
    pub days: String,
    /// Day to evaluate on.
    #[arg(long, default_value_t = 8, value_parser = ranges::day(0, ranges::MAX_DAY))]
    pub eval_day: u32,
    /// A second held-out day to evaluate on (printed as `valid_*`), for choosing settings on one
    /// day and reporting another; it may not be a training day.
    #[arg(long, value_parser = ranges::day(0, ranges::MAX_DAY))]
    pub valid_day: Option<u32>,
    /// Rows per training batch.
    #[arg(long, default_value_t = 1024, value_parser = ranges::count(1, ranges::MAX_ROWS))]
    pub batch: usize,
    /// Passes over the training days.
    #[arg(long, default_value_t = 1, value_parser = ranges::count(1, 10_000))]
    pub epochs: usize,
    /// Embedding optimiser: adam or adagrad.
    #[arg(long, default_value = "adam")]
    pub emb_optimizer: String,
    /// Embedding learning rate (default: the session default, 0.02; docs/method.md's 0.1 is unstable
    /// on 20,000-row days, see the README).
    #[arg(long, value_parser = ranges::positive(0.0, 10.0))]
    pub emb_lr: Option<f64>,
    /// Dense learning rate (default 1e-3).
    #[arg(long, value_parser = ranges::positive(0.0, 10.0))]
    pub dense_lr: Option<f64>,
    #[arg(long, default_value_t = 2, value_parser = ranges::count(1, ranges::MAX_THREADS))]
    pub threads: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Rows per day of the generated data.
    #[arg(long, default_value_t = 20_000, value_parser = ranges::count(1, 10_000_000))]
    pub rows_per_day: usize,
    /// Save the trained model (weights + optimiser state) here.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Write the trained model as a teacher bundle into this new folder (weights, spec,
    /// vocabulary, data schema: docs/bundles.md); a session loads it with `teacher.bundle=DIR`.
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Ids seen fewer times than this in the training days map to the OOV row.
    #[arg(long, default_value_t = 2, value_parser = ranges::day(0, u32::MAX))]
    pub min_count: u32,
    /// Train on the data of a session config (`--config FILE`, `--set data.KEY=VALUE`) instead
    /// of the generated stream (then --rows-per-day is unused).
    #[command(flatten)]
    pub data: super::ConfigArgs,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Training samples/second of one model after warm-up: the whole run, the steady state
    /// (second half of the steps), and the first and last steps' times, with the CPU named.
    Train {
        #[arg(long, default_value = "deepfm")]
        model: String,
        /// Overrides the spec's embedding size.
        #[arg(long, value_parser = ranges::count(1, 4096))]
        emb: Option<usize>,
        /// Overrides the spec's hidden sizes, e.g. 400x400x400.
        #[arg(long)]
        hidden: Option<String>,
        #[arg(long, default_value_t = 4096, value_parser = ranges::count(1, 1 << 20))]
        batch: usize,
        #[arg(long, default_value_t = 26, value_parser = ranges::count(1, 10_000))]
        fields: usize,
        /// Ids per field.
        #[arg(long, default_value_t = 10_000, value_parser = ranges::count(1, 100_000_000))]
        ids: usize,
        #[arg(long, default_value_t = 2, value_parser = ranges::count(1, ranges::MAX_THREADS))]
        threads: usize,
        /// Timed steps (enough by default to see whether steps slow down as training goes on).
        #[arg(long, default_value_t = 200, value_parser = ranges::count(1, 1_000_000))]
        steps: usize,
        /// Untimed warm-up steps.
        #[arg(long, default_value_t = 5, value_parser = ranges::count(0, 1_000_000))]
        warmup: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// GFLOP/s of the three products of one linear layer's training step (forward, input
    /// gradient, weight gradient) through the crate's product op: the bound on any model's step.
    Matmul {
        /// Rows (the training batch).
        #[arg(long, default_value_t = 4096, value_parser = ranges::count(1, 1 << 20))]
        batch: usize,
        /// The layer's input width.
        #[arg(long, default_value_t = 416, value_parser = ranges::count(1, 1 << 16))]
        inp: usize,
        /// The layer's output width.
        #[arg(long, default_value_t = 400, value_parser = ranges::count(1, 1 << 16))]
        out: usize,
        #[arg(long, default_value_t = 2, value_parser = ranges::count(1, ranges::MAX_THREADS))]
        threads: usize,
        /// Timed repetitions of each product; the median is reported.
        #[arg(long, default_value_t = 50, value_parser = ranges::count(1, 1_000_000))]
        reps: usize,
    },
    /// A whole headless session on the synthetic stream at a chosen size: rows/second per
    /// stage, wall time per online day, peak memory and the session's disk, as a table.
    Scale(super::scale::ScaleArgs),
    /// The scenario suite (issue 17.4): sessions over worlds x drift scenarios x scales, run
    /// headless in this process, and one table of wins / ties / losses per claim of the method
    /// with bootstrap intervals over worlds and days (docs/verdict.md).
    Suite(super::suite::SuiteArgs),
    /// The edge of a synthetic world: the teacher's and the student's architectures trained from
    /// scratch on the same days, each late day scored after every day before it, over several
    /// worlds; the student's AUC lead per day with its interval (docs/data.md).
    Edge(super::edge::EdgeArgs),
}

pub(crate) fn parse_days(text: &str) -> Result<std::ops::Range<u32>> {
    let (a, b) = text
        .split_once("..")
        .with_context(|| format!("--days `{text}` must look like 0..8"))?;
    let a: u32 = a
        .trim()
        .parse()
        .with_context(|| format!("--days `{text}`: `{a}` is not a day number"))?;
    let b: u32 = b
        .trim()
        .parse()
        .with_context(|| format!("--days `{text}`: `{b}` is not a day number"))?;
    if a >= b {
        bail!("--days `{text}` is empty (the end is excluded)");
    }
    if b > ranges::MAX_DAY {
        bail!("--days `{text}`: days must be below {}", ranges::MAX_DAY);
    }
    Ok(a..b)
}

/// Trains one model on the training days, evaluates on the evaluation day, prints one line.
pub fn run_train(args: &TrainArgs) -> Result<()> {
    let spec: ModelSpec = args.model.parse().context("--model")?;
    let days = parse_days(&args.days)?;
    let emb_optimizer = match args.emb_optimizer.as_str() {
        "adam" => EmbOptimizer::Adam,
        "adagrad" => EmbOptimizer::Adagrad,
        other => bail!("--emb-optimizer `{other}`: valid ones are adam, adagrad"),
    };
    let mut cfg = TrainConfig {
        emb_optimizer,
        threads: args.threads,
        ..TrainConfig::default()
    };
    cfg.emb_lr = args
        .emb_lr
        .unwrap_or(crate::engine::SessionConfig::default().train.emb_lr);
    if let Some(lr) = args.dense_lr {
        cfg.dense_lr = lr;
    }
    if let Some(v) = args.valid_day {
        if days.contains(&v) {
            bail!("--valid-day {v} is one of the training days {}", args.days);
        }
    }
    if args.rows_per_day == 0 {
        bail!("--rows-per-day must be at least 1");
    }
    // The built-in drifting stream (seed = --seed), long enough for the days asked for, or the
    // data of a session config; the vocabulary comes from the training days, as in a session.
    let data_cfg = if args.data.config.is_some() || !args.data.set.is_empty() {
        crate::engine::SessionConfig::load(args.data.config.as_deref(), &args.data.set)?.data
    } else {
        DataConfig::Synthetic(SynthConfig {
            seed: args.seed,
            rows_per_day: args.rows_per_day,
            days: SynthConfig::default()
                .days
                .max(days.end as usize)
                .max(args.eval_day as usize + 1)
                .max(args.valid_day.map_or(0, |d| d as usize + 1)),
            ..SynthConfig::default()
        })
    };
    let source = data_cfg.open().context("cannot open the data source")?;
    let last = days
        .end
        .max(args.eval_day + 1)
        .max(args.valid_day.map_or(0, |d| d + 1));
    if last as usize > source.num_days() {
        bail!(
            "--days {} / --eval-day {} need {last} days, but {} has {}",
            args.days,
            args.eval_day,
            source.describe(),
            source.num_days()
        );
    }
    let fit_days: Vec<usize> = days.clone().map(|d| d as usize).collect();
    let vocab = Vocabulary::fit(source.as_ref(), &fit_days, args.min_count)?;
    let data = Dataset::new(source, vocab);
    let model = build_model(&spec, data.spec(), args.seed)?;
    let params = model.param_count();
    let mut tr = Trainer::new(model, &cfg)?;
    tr.set_vocabulary(Some(data.vocabulary().fingerprint()));
    // Days are generated and encoded before the clock starts: samples/s is training alone.
    let train_days = days
        .clone()
        .map(|d| data.day(d as usize).map(|rows| (d, rows)))
        .collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    let mut samples = 0usize;
    for _ in 0..args.epochs.max(1) {
        for (day, rows) in &train_days {
            for b in rows.chunks(args.batch) {
                tr.train_batch(&b, Target::Labels)
                    .with_context(|| format!("training {spec} on day {day}"))?;
                samples += b.rows();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let eval = data.day(args.eval_day as usize)?;
    let logits = tr.predict_logits(&eval)?;
    let m = evaluate(&logits, &eval, data.spec().user_index());
    let fmt_auc = |a: Option<f64>| a.map_or("n/a".to_string(), |a| format!("{a:.4}"));
    let auc = fmt_auc(m.auc);
    let valid = match args.valid_day {
        None => String::new(),
        Some(v) => {
            let rows = data.day(v as usize)?;
            let vm = evaluate(&tr.predict_logits(&rows)?, &rows, data.spec().user_index());
            format!(
                " valid_day={v} valid_auc={} valid_logloss={:.4}",
                fmt_auc(vm.auc),
                vm.logloss
            )
        }
    };
    println!(
        "model={spec} params={params} days={}..{} eval_day={} auc={auc} logloss={:.4} bias={:+.4} ne={:.4} seconds={secs:.2} samples={samples} samples_per_sec={:.0}{valid}",
        days.start,
        days.end,
        args.eval_day,
        m.logloss,
        m.bias,
        m.ne,
        samples as f64 / secs
    );
    if let Some(path) = &args.save {
        tr.save(path)?;
        println!("saved {}", path.display());
    }
    if let Some(dir) = &args.bundle {
        // What share of each field the model itself saw as OOV: a run importing the bundle
        // compares it with its own first day (docs/bundles.md).
        let mut oov = crate::bundle::OovCount::new(data.spec().num_cat());
        for (_, rows) in &train_days {
            oov.add(rows);
        }
        let provenance = crate::bundle::Provenance {
            source: "crossadapt train".into(),
            trained_on: Some(format!(
                "days {}..{} of {}, {} epoch(s), seed {}",
                days.start,
                days.end,
                data.source().describe(),
                args.epochs.max(1),
                args.seed
            )),
            data: Some(serde_json::to_value(&data_cfg)?),
            ..Default::default()
        };
        crate::bundle::write(
            dir,
            crate::bundle::BundleContent {
                role: crate::bundle::Role::Teacher,
                spec: &spec,
                vocab: data.vocabulary(),
                schema: &crate::bundle::DataSchema::of_source(data.source()),
                provenance,
                train_oov_share: oov.shares(),
                origin: None,
            },
            crate::bundle::Weights::Model(tr.model()),
        )?;
        println!("wrote bundle {}", dir.display());
    }
    Ok(())
}

/// Runs a benchmark and prints samples/second and the step split.
pub fn run_bench(cmd: &BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Scale(args) => super::scale::run(args),
        BenchCommand::Suite(args) => super::suite::run_suite(args).map(|_| ()),
        BenchCommand::Edge(args) => super::edge::run(args),
        BenchCommand::Matmul {
            batch,
            inp,
            out,
            threads,
            reps,
        } => {
            let cfg = bench::MatmulConfig {
                batch: *batch,
                inp: *inp,
                out: *out,
                threads: *threads,
                reps: *reps,
                seed: 0,
            };
            let r = bench::run_matmul(&cfg)?;
            println!(
                "bench matmul batch={batch} inp={inp} out={out} threads={threads} reps={reps} forward_gflops={:.1} input_grad_gflops={:.1} weight_grad_gflops={:.1} ftz={} cpu=\"{}\"",
                r.forward_gflops,
                r.input_grad_gflops,
                r.weight_grad_gflops,
                if crate::fpenv::denormals_flushed() { "on" } else { "off" },
                bench::cpu_model(),
            );
            Ok(())
        }
        train @ BenchCommand::Train { .. } => run_train_bench(train),
    }
}

fn run_train_bench(cmd: &BenchCommand) -> Result<()> {
    let BenchCommand::Train {
        model,
        emb,
        hidden,
        batch,
        fields,
        ids,
        threads,
        steps,
        warmup,
        seed,
    } = cmd
    else {
        anyhow::bail!("internal: not a training benchmark");
    };
    let mut spec: ModelSpec = model.parse().context("--model")?;
    if let Some(e) = emb {
        spec.emb_dim = *e;
    }
    if let Some(h) = hidden {
        spec.hidden = crate::model::spec::parse_sizes("--hidden", h)?;
    }
    spec.validate()?;
    let report = bench::run(&BenchConfig {
        spec: spec.clone(),
        batch: *batch,
        fields: *fields,
        ids: *ids,
        threads: *threads,
        steps: *steps,
        warmup: *warmup,
        seed: *seed,
    })?;
    let r = &report;
    println!(
        "bench train model={spec} batch={batch} fields={fields} ids={ids} threads={threads} params={} steps={} warmup={warmup} steady_samples_per_sec={:.0} samples_per_sec={:.0} first_ms={:.1} last_ms={:.1} step_ms={:.1} fwd_ms={:.1} bwd_ms={:.1} opt_ms={:.1} ftz={} cpu=\"{}\"",
        r.params,
        r.steps,
        r.steady_samples_per_sec,
        r.samples_per_sec,
        r.first_ms,
        r.last_ms,
        r.step_ms,
        r.forward_ms,
        r.backward_ms,
        r.optimizer_ms,
        if crate::fpenv::denormals_flushed() { "on" } else { "off" },
        bench::cpu_model(),
    );
    Ok(())
}
