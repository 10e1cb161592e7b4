//! The training-speed benchmark behind `crossadapt bench train`: random ids, a fixed model,
//! warm-up steps, then samples/second and the forward / backward / optimiser split.

use std::time::Instant;

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Target, TrainConfig, Trainer};
use crate::data::{Batch, CatField, FeatureSpec};
use crate::model::{build_model, ModelSpec};

/// Shapes of one benchmark run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub spec: ModelSpec,
    pub batch: usize,
    pub fields: usize,
    /// Ids per field.
    pub ids: usize,
    pub threads: usize,
    /// Timed steps (after `warmup` untimed ones).
    pub steps: usize,
    pub warmup: usize,
    pub seed: u64,
}

/// What a run measured. The whole-run rate includes the first steps, where caches and the
/// allocator warm up and (on CPUs that handle denormal numbers slowly) before values drift
/// towards zero; the steady-state figures cover the second half of the timed steps only.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Timed steps.
    pub steps: usize,
    /// Over every timed step.
    pub samples_per_sec: f64,
    /// Over the second half of the timed steps.
    pub steady_samples_per_sec: f64,
    /// Mean step time over the first tenth of the timed steps (at least one step).
    pub first_ms: f64,
    /// Mean step time over the last tenth of the timed steps (at least one step).
    pub last_ms: f64,
    /// Per-step means of the phases over the second half of the timed steps.
    pub step_ms: f64,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
    pub params: usize,
}

/// The CPU's model name from `/proc/cpuinfo` (with `+avx512` when it has AVX-512 Foundation),
/// or `unknown CPU` where that file does not exist: every benchmark result names the machine.
pub fn cpu_model() -> String {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return "unknown CPU".into();
    };
    let field = |key: &str| {
        info.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    let name = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let avx512 = field("flags").is_some_and(|f| f.split_whitespace().any(|x| x == "avx512f"));
    if avx512 {
        format!("{name} +avx512")
    } else {
        name
    }
}

/// `rows` rows of `fields` uniform ids in `0..ids` (no numeric features), labels from a
/// hidden rule of the first two fields so the loss has something to learn.
pub fn random_batch(fields: usize, ids: usize, rows: usize, rng: &mut ChaCha8Rng) -> Batch {
    let mut b = Batch::empty(fields, 0);
    for _ in 0..rows {
        let row: Vec<u32> = (0..fields)
            .map(|_| rng.random_range(0..ids as u32))
            .collect();
        let signal = fields >= 2 && (row[0] + row[1]).is_multiple_of(3);
        let p = if signal { 0.6 } else { 0.2 };
        b.cat.extend_from_slice(&row);
        b.label
            .push(if rng.random::<f64>() < p { 1.0 } else { 0.0 });
    }
    b
}

/// Runs the benchmark.
pub fn run(cfg: &BenchConfig) -> Result<BenchReport> {
    if cfg.batch == 0 || cfg.fields == 0 || cfg.ids == 0 || cfg.steps == 0 {
        bail!("bench: batch, fields, ids and steps must all be at least 1");
    }
    let features = FeatureSpec {
        cat: (0..cfg.fields)
            .map(|i| CatField {
                name: format!("C{}", i + 1),
                vocab: cfg.ids,
            })
            .collect(),
        num: vec![],
        user_field: None,
    };
    let model = build_model(&cfg.spec, &features, cfg.seed)?;
    let params = model.param_count();
    let tc = TrainConfig {
        threads: cfg.threads,
        ..TrainConfig::default()
    };
    let mut tr = Trainer::new(model, &tc)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xbe7c);
    let batches: Vec<Batch> = (0..4)
        .map(|_| random_batch(cfg.fields, cfg.ids, cfg.batch, &mut rng))
        .collect();
    for i in 0..cfg.warmup {
        tr.train_batch(&batches[i % batches.len()], Target::Labels)?;
    }
    tr.take_timing();
    let mut times = Vec::with_capacity(cfg.steps);
    let half = cfg.steps / 2;
    for i in 0..cfg.steps {
        if i == half {
            tr.take_timing();
        }
        let t = Instant::now();
        tr.train_batch(&batches[i % batches.len()], Target::Labels)?;
        times.push(t.elapsed().as_secs_f64());
    }
    let t = tr.take_timing();
    let steady = &times[half..];
    let steady_secs: f64 = steady.iter().sum();
    let n = steady.len() as f64;
    let tenth = (cfg.steps / 10).max(1);
    let mean_ms = |s: &[f64]| s.iter().sum::<f64>() * 1e3 / s.len() as f64;
    Ok(BenchReport {
        steps: cfg.steps,
        samples_per_sec: (cfg.batch * cfg.steps) as f64 / times.iter().sum::<f64>(),
        steady_samples_per_sec: cfg.batch as f64 * n / steady_secs,
        first_ms: mean_ms(&times[..tenth]),
        last_ms: mean_ms(&times[cfg.steps - tenth..]),
        step_ms: steady_secs * 1e3 / n,
        forward_ms: t.forward_ms / n,
        backward_ms: t.backward_ms / n,
        optimizer_ms: t.optimizer_ms / n,
        params,
    })
}

/// The three products of one linear layer's training step, timed apart: `batch x inp` inputs
/// times an `inp x out` weight (forward), the output gradient times the weight's transpose
/// (the input's gradient) and the inputs' transpose times the output gradient (the weight's
/// gradient), each through the crate's product op ([`crate::model::matmul`]) on a pool of
/// `threads`. A model's training step cannot be faster than its products: this is the bound.
#[derive(Clone, Debug)]
pub struct MatmulConfig {
    pub batch: usize,
    pub inp: usize,
    pub out: usize,
    pub threads: usize,
    /// Timed repetitions of each product (after two untimed ones); the median is reported.
    pub reps: usize,
    pub seed: u64,
}

/// GFLOP/s of each product (`2 m k n` floating-point operations per product), medians.
#[derive(Clone, Debug, PartialEq)]
pub struct MatmulReport {
    pub forward_gflops: f64,
    pub input_grad_gflops: f64,
    pub weight_grad_gflops: f64,
}

/// Runs the product benchmark.
pub fn run_matmul(cfg: &MatmulConfig) -> Result<MatmulReport> {
    use candle_core::{Device, Tensor};
    if cfg.batch == 0 || cfg.inp == 0 || cfg.out == 0 || cfg.reps == 0 || cfg.threads == 0 {
        bail!("bench matmul: batch, inp, out, reps and threads must all be at least 1");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x3a7);
    let mut values = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random::<f32>() - 0.5).collect() };
    let dev = Device::Cpu;
    let x = Tensor::from_vec(values(cfg.batch * cfg.inp), (cfg.batch, cfg.inp), &dev)?;
    let w = Tensor::from_vec(values(cfg.inp * cfg.out), (cfg.inp, cfg.out), &dev)?;
    let g = Tensor::from_vec(values(cfg.batch * cfg.out), (cfg.batch, cfg.out), &dev)?;
    let pool = crate::fpenv::pool_builder(cfg.threads).build()?;
    let flops = 2.0 * (cfg.batch * cfg.inp * cfg.out) as f64;
    let time = |a: &Tensor, b: &Tensor| -> Result<f64> {
        let mut secs = Vec::with_capacity(cfg.reps);
        for i in 0..cfg.reps + 2 {
            let t = Instant::now();
            let c = pool.install(|| crate::model::matmul::matmul(a, b))?;
            let e = t.elapsed().as_secs_f64();
            drop(c);
            if i >= 2 {
                secs.push(e);
            }
        }
        secs.sort_by(f64::total_cmp);
        Ok(flops / secs[secs.len() / 2] / 1e9)
    };
    Ok(MatmulReport {
        forward_gflops: time(&x, &w)?,
        input_grad_gflops: time(&g, &w.t()?)?,
        weight_grad_gflops: time(&x.t()?, &g)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_reports_consistent_figures() {
        let cfg = BenchConfig {
            spec: "deepfm:emb=4,hidden=8".parse().unwrap(),
            batch: 32,
            fields: 3,
            ids: 10,
            threads: 1,
            steps: 20,
            warmup: 1,
            seed: 0,
        };
        let r = run(&cfg).unwrap();
        assert_eq!(r.steps, 20);
        assert!(r.samples_per_sec > 0.0 && r.steady_samples_per_sec > 0.0);
        assert!(r.first_ms > 0.0 && r.last_ms > 0.0);
        // The steady rate is the batch over the mean steady step time.
        let implied = 32.0 * 1e3 / r.step_ms;
        assert!((implied - r.steady_samples_per_sec).abs() < 1e-6 * implied);
        // The split covers (most of) the step: the rest is the loop around it.
        let split = r.forward_ms + r.backward_ms + r.optimizer_ms;
        assert!(split <= r.step_ms * 1.0001, "{split} > {}", r.step_ms);
    }

    #[test]
    fn the_cpu_is_named() {
        let name = cpu_model();
        assert!(!name.is_empty());
        if std::path::Path::new("/proc/cpuinfo").exists() {
            assert_ne!(name, "unknown CPU");
        }
    }

    #[test]
    fn the_product_benchmark_times_the_three_products() {
        let cfg = MatmulConfig {
            batch: 64,
            inp: 8,
            out: 4,
            threads: 1,
            reps: 3,
            seed: 0,
        };
        let r = run_matmul(&cfg).unwrap();
        for v in [r.forward_gflops, r.input_grad_gflops, r.weight_grad_gflops] {
            assert!(v.is_finite() && v > 0.0, "{r:?}");
        }
        let bad = MatmulConfig { reps: 0, ..cfg };
        assert!(run_matmul(&bad).is_err());
    }
}
