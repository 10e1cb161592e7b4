//! The final test slice (`split.holdout`): after the last online day, every arm that is still
//! running scores the held-out days once, with the model it ended the online stage with. The
//! held-out days are never trained on and never test-then-trained; this is the figure that can
//! be set beside published numbers measured on a held-out test set.

use std::time::Instant;

use super::run::Engine;
use crate::data::Batch;
use crate::protocol::EngineEvent;
use crate::train::metrics;

impl Engine {
    /// One `Holdout` record per running arm (none when the split holds nothing out).
    pub(crate) fn holdout_eval(&mut self) -> anyhow::Result<()> {
        let days = self.plan().holdout.clone();
        if days.is_empty() {
            return Ok(());
        }
        let spec = self.features();
        let (user, mut rows) = (
            spec.user_index(),
            Batch::empty(spec.num_cat(), spec.num_num()),
        );
        for &d in &days {
            rows.extend(&self.day(d)?);
        }
        for i in 0..self.arms().len() {
            let arm = &self.arms()[i];
            if arm.state.failed.is_some() {
                continue;
            }
            let started = Instant::now();
            let logits = arm.served(arm.student.predict_logits(&rows)?);
            let metrics = metrics::evaluate(&logits, &rows, user);
            let event = EngineEvent::Holdout {
                arm: arm.name(),
                days: days.clone(),
                metrics,
                seconds: started.elapsed().as_secs_f64(),
            };
            self.emit(event)?;
        }
        Ok(())
    }
}
