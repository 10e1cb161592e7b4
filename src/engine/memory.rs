//! The heap a session is expected to need at its peak, worked out before it starts from what
//! sets it: the models the arms hold, one training batch's activations, one prediction chunk's,
//! the day in flight and a checkpoint's copy of the arms. Printed as the first lines of a run
//! (and by `run --dry-run`), and checked against `max_memory_mb`.
//!
//! Activations are measured, not derived per architecture (`crate::train::activation`): a wide
//! log's peak is set by them (a FiBiNET over dozens of fields holds a vector per field pair and
//! row), and a measured figure stays true as the zoo changes. Where the heap is not counted
//! (builds without the counting allocator) the estimate says so instead of guessing.

use std::fmt;

use crate::model::{build_model, ModelSpec};
use crate::protocol::ArmKind;
use crate::train::activation::{self, ActivationCost};

use super::config::SessionConfig;
use super::run::Prepared;

/// Bytes of one f32.
const F32: u64 = 4;

/// One named part of the estimate.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub what: String,
    pub bytes: u64,
}

/// The expected heap peak and its parts.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryEstimate {
    pub parts: Vec<Part>,
    /// Whether activations were measured (the counting allocator is installed).
    pub measured: bool,
    /// The largest per-row training cost among the models, for the fix a refusal names.
    train_per_row: u64,
    batch_size: usize,
}

impl MemoryEstimate {
    /// The parts added up: the expected heap peak.
    pub fn total(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }

    /// The largest power-of-two batch size (at most today's) whose training activations
    /// bring the total under `limit`, if any.
    pub fn batch_that_fits(&self, limit: u64) -> Option<usize> {
        let act = self.train_per_row * self.batch_size as u64;
        let rest = self.total().saturating_sub(act);
        let mut b = self.batch_size.next_power_of_two() / 2;
        while b >= 32 {
            if rest + self.train_per_row * b as u64 <= limit {
                return Some(b);
            }
            b /= 2;
        }
        None
    }

    /// Refuses a run whose expected peak passes `max_mb` (0: no limit), naming what would fit.
    pub fn check(&self, max_mb: u64) -> anyhow::Result<()> {
        if max_mb == 0 || !self.measured {
            return Ok(());
        }
        let limit = max_mb * 1_000_000;
        if self.total() <= limit {
            return Ok(());
        }
        let fix = match self.batch_that_fits(limit) {
            Some(b) => format!(
                "--set batch_size={b} would fit (training activations are {} a row), or run \
                 fewer arms",
                crate::num::megabytes(self.train_per_row)
            ),
            None => "no smaller batch fits: run fewer arms, a smaller student, or raise the \
                     limit"
                .to_string(),
        };
        anyhow::bail!(
            "the run is expected to need {} of heap at its peak, above max_memory_mb = {max_mb} \
             ({}); {fix}",
            crate::num::megabytes(self.total()),
            self.breakdown()
        )
    }

    /// The parts as one line: `models 60.2 MB, training batch 720.0 MB, ...`.
    pub fn breakdown(&self) -> String {
        self.parts
            .iter()
            .map(|p| format!("{} {}", p.what, crate::num::megabytes(p.bytes)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.measured {
            return write!(
                f,
                "memory: not estimated (this build does not count its heap); models {}",
                crate::num::megabytes(self.parts.first().map_or(0, |p| p.bytes))
            );
        }
        write!(
            f,
            "memory: expected heap peak {} ({})",
            crate::num::megabytes(self.total()),
            self.breakdown()
        )
    }
}

/// The model of `spec` on the run's fields: its scalars (table and dense) and activation cost.
fn sizes(prepared: &Prepared, spec: &ModelSpec) -> anyhow::Result<(u64, Option<ActivationCost>)> {
    let model = build_model(spec, prepared.dataset().spec(), 0)?;
    Ok((model.param_count() as u64, activation::cost(model.as_ref())))
}

/// The estimate for `cfg` on `prepared`'s data.
pub fn estimate(cfg: &SessionConfig, prepared: &Prepared) -> anyhow::Result<MemoryEstimate> {
    let teacher_spec = prepared.teacher_spec(cfg);
    let (teacher_params, teacher_cost) = sizes(prepared, &teacher_spec)?;
    let (student_params, student_cost) = sizes(prepared, &cfg.student.model)?;
    // A trainer holds its weights, their two Adam moments and a gradient accumulator.
    let trainer = |params: u64| params * F32 * 4;
    // The frozen teacher, then per arm its trainer, and a co-distilled teacher for the
    // CrossAdapt variants (counted for each: conservative for the ones that do not).
    let mut models = trainer(teacher_params);
    for kind in &cfg.arms {
        let own = if kind.is_student() {
            student_params
        } else {
            teacher_params
        };
        models += trainer(own);
        if is_crossadapt(*kind) {
            models += trainer(teacher_params);
        }
    }
    let costs: Vec<ActivationCost> = [teacher_cost, student_cost].into_iter().flatten().collect();
    let measured = costs.len() == 2;
    let train_per_row = costs.iter().map(|c| c.train_per_row).max().unwrap_or(0) as u64;
    // The day in flight: its label and user per row, and every arm's (and the incumbent's)
    // scores of it, kept for the gate; its encoded rows are on disk. The first online day
    // stands for every day.
    let day_rows = prepared
        .plan()
        .online
        .first()
        .map(|&d| prepared.dataset().rows(d as usize))
        .transpose()?
        .unwrap_or(0) as u64;
    // A prediction chunk never holds more rows than the day it predicts.
    let predict = costs
        .iter()
        .map(|c| {
            let rows = activation::predict_rows(cfg.train.predict_chunk, Some(*c)) as u64;
            rows.min(day_rows.max(1)) * c.predict_per_row as u64
        })
        .max()
        .unwrap_or(0);
    let day = day_rows * (4 + 8 + F32 * (cfg.arms.len() as u64 + 1) * 2);
    let mut parts = vec![
        Part {
            what: "models".into(),
            bytes: models,
        },
        Part {
            what: format!("training batch ({} rows)", cfg.batch_size),
            bytes: train_per_row * cfg.batch_size as u64,
        },
        Part {
            what: "prediction chunk".into(),
            bytes: predict,
        },
        Part {
            what: "day in flight".into(),
            bytes: day,
        },
        // A checkpoint serialises every arm's state while training goes on.
        Part {
            what: "checkpoint copy".into(),
            bytes: models,
        },
    ];
    if let Some(live) = crate::heap::live() {
        parts.insert(
            0,
            Part {
                what: "data and vocabulary".into(),
                bytes: live as u64,
            },
        );
    }
    Ok(MemoryEstimate {
        parts,
        measured,
        train_per_row,
        batch_size: cfg.batch_size,
    })
}

fn is_crossadapt(kind: ArmKind) -> bool {
    kind.is_student() && kind.to_string().starts_with("crossadapt")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(train_per_row: u64, batch: usize, rest: u64) -> MemoryEstimate {
        MemoryEstimate {
            parts: vec![
                Part {
                    what: "models".into(),
                    bytes: rest,
                },
                Part {
                    what: "training batch".into(),
                    bytes: train_per_row * batch as u64,
                },
            ],
            measured: true,
            train_per_row,
            batch_size: batch,
        }
    }

    #[test]
    fn a_refusal_names_the_batch_that_fits() {
        // 100 MB of models + 1024 rows x 1 MB = 1,124 MB.
        let e = est(1_000_000, 1024, 100_000_000);
        assert_eq!(e.total(), 1_124_000_000);
        assert!(e.check(0).is_ok(), "0 is no limit");
        assert!(e.check(1200).is_ok());
        // Under 700 MB: 512 rows -> 612 MB fits.
        assert_eq!(e.batch_that_fits(700_000_000), Some(512));
        let msg = e.check(700).unwrap_err().to_string();
        assert!(msg.contains("batch_size=512"), "{msg}");
        assert!(msg.contains("max_memory_mb = 700"), "{msg}");
        // Below the models alone nothing fits.
        assert_eq!(e.batch_that_fits(90_000_000), None);
        assert!(e.check(90).unwrap_err().to_string().contains("fewer arms"));
    }

    #[test]
    fn an_unmeasured_estimate_never_refuses() {
        let mut e = est(1_000_000, 1024, 100_000_000);
        e.measured = false;
        assert!(e.check(1).is_ok());
        assert!(e.to_string().contains("not estimated"));
    }
}
