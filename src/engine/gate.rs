//! The migration gate's evidence, computed once where the predictions exist: at the start of
//! each online day, before any arm trains on it, the incumbent and every student arm score the
//! day's rows, and each student's AUC and LogLoss differences to the incumbent, with their
//! intervals, go out as one `Gate` event. The intervals take each user's rows of the day as one
//! independent unit when the data names users, each row otherwise (`gate.cluster`). The ledger
//! folds the events into SWITCH / NOT YET (`protocol::gate`); the console, the report and
//! `list` only show what it folded.

use anyhow::Context;

use super::run::Engine;
use crate::data::pool::Pool;
use crate::protocol::{ArmKind, EngineEvent, GateCluster};
use crate::train::loss::sigmoid;
use crate::train::stats::{
    paired_auc_clustered_ranked, paired_auc_ranked, paired_logloss, paired_logloss_clusters,
    Clusters, Interval, Ranked,
};

impl Engine {
    /// Emits one `Gate` event per running student arm for online day `d` (nothing without a
    /// running incumbent arm). `scores` are each arm's logits on the day (in the arms' order,
    /// `None` where an arm has none), from the models' state before the day's training: the
    /// very predictions the day's `DayMetrics` evaluate, so the AUC difference is exactly the
    /// difference of the two reported AUCs.
    pub(crate) fn gate_day(
        &mut self,
        d: u32,
        day: &Pool,
        scores: &[Option<Vec<f32>>],
    ) -> anyhow::Result<()> {
        let Some(inc) = self
            .arms()
            .iter()
            .position(|a| a.kind() == ArmKind::Incumbent && a.state.failed.is_none())
        else {
            return Ok(());
        };
        let mut rule = self.config().gate;
        // The day's user keys, when the source names a user field (the same keys gAUC groups
        // by); the event records the units actually used.
        let users = self.features().user_index().and(day.users());
        rule.cluster = rule.cluster.resolve(users.is_some());
        let clusters = match rule.cluster {
            GateCluster::Users => Some(users.with_context(|| {
                format!("gate.cluster = \"users\", but day {d} has no user key on every row")
            })?),
            _ => None,
        };
        let incumbent = self.arms()[inc].name();
        // What each arm serves (its calibration intercept added, `online.calibrate`): the
        // logits its `DayMetrics` evaluate.
        let z_inc = self.arms()[inc].served(match scores.get(inc).and_then(Option::as_ref) {
            Some(z) => z.clone(),
            // Without scores the incumbent predicts here, and its error is the run's.
            None => self.arms()[inc].student.predict_pool(day)?,
        });
        let z_inc = &z_inc;
        let p_inc: Vec<f32> = z_inc.iter().map(|&z| sigmoid(z)).collect();
        // What every comparison of the day shares: the incumbent's ranking and the users'
        // index, each built once rather than once per student.
        let y = day.labels();
        let ranked_inc = Ranked::of(z_inc, y);
        let clusters = clusters.map(Clusters::of);
        let mut events = Vec::new();
        for (i, arm) in self.arms().iter().enumerate() {
            if i == inc || arm.state.failed.is_some() {
                continue;
            }
            // A student that cannot predict fails in its own evaluation right after; the gate
            // just has no evidence for it that day.
            let Some(z) = scores.get(i).and_then(Option::as_ref) else {
                continue;
            };
            let z = &arm.served(z.clone());
            let p: Vec<f32> = z.iter().map(|&z| sigmoid(z)).collect();
            let ranked = Ranked::of(z, y);
            let pair = ranked.as_ref().zip(ranked_inc.as_ref());
            let (auc, logloss) = match &clusters {
                Some(c) => (
                    pair.and_then(|(a, b)| paired_auc_clustered_ranked(a, b, y, c)),
                    paired_logloss_clusters(&p, &p_inc, y, c),
                ),
                None => (
                    pair.and_then(|(a, b)| paired_auc_ranked(a, b, y)),
                    paired_logloss(&p, &p_inc, y),
                ),
            };
            let auc = auc.map(|r| r.diff(rule.level)).filter(Interval::is_finite);
            let logloss = logloss
                .map(|m| m.interval(rule.level))
                .filter(Interval::is_finite);
            events.push(EngineEvent::Gate {
                arm: arm.name(),
                day: d,
                incumbent: incumbent.clone(),
                auc,
                logloss,
                rule,
            });
        }
        for e in events {
            self.emit(e)?;
        }
        Ok(())
    }
}
