//! The engine: owns the data, the teacher and every arm's models; runs the stages in order;
//! applies operator commands between batches; checkpoints at safe points; emits events.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::config::SessionConfig;
use super::emitter::Emitter;
use super::pending::Recovery;
use super::state::{ArmState, CheckpointState, ResumePoint, STATE_SCHEMA_VERSION};
use crate::data::dataset::Dataset;
use crate::data::pool::{Pool, PoolWriter};
use crate::data::vocab::Vocabulary;
use crate::data::{Batch, FeatureSpec};
use crate::method::recipe::{Host, Settings};
use crate::method::Arm;
use crate::model::{build_model, ModelSpec};
use crate::protocol::{
    ArmInfo, ArmKind, DayPlan, EngineCommand, EngineEvent, EventSink, GateCluster, ParamPatch,
    Params, Position, Stage,
};
use crate::train::Trainer;

/// Where checkpoints go (the session store implements it; tests may use a plain folder).
pub trait CheckpointStore: Send {
    /// Writes the checkpoint `label` atomically: `write` fills a staging folder, which becomes
    /// visible only when complete. `seq` is the last event the checkpoint covers.
    fn save(
        &mut self,
        label: &str,
        seq: u64,
        write: &mut dyn FnMut(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<SavedCheckpoint>;
}

/// Where a checkpoint landed.
#[derive(Clone, Debug)]
pub struct SavedCheckpoint {
    /// The path to show in the log.
    pub shown: String,
    /// The folder itself, whose unchanged files later checkpoints may hard-link.
    pub dir: PathBuf,
}

/// The engine's connections to the world.
#[derive(Default)]
pub struct EngineIo {
    pub sinks: Vec<Box<dyn EventSink>>,
    pub commands: Option<Receiver<EngineCommand>>,
    pub checkpoints: Option<Box<dyn CheckpointStore>>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Finished,
    /// An operator stopped it; it resumes from its latest checkpoint.
    Stopped,
}

/// Raised through the stage loops when an operator asks to stop.
#[derive(Debug)]
pub(crate) struct StopRequested;

impl std::fmt::Display for StopRequested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped by the operator")
    }
}

impl std::error::Error for StopRequested {}

pub struct Engine {
    cfg: SessionConfig,
    session_id: String,
    name: String,
    data: Dataset,
    /// The source's identity, recorded in every checkpoint and checked on resume.
    data_fingerprint: String,
    plan: DayPlan,
    teacher_spec: ModelSpec,
    student_spec: ModelSpec,
    emitter: Emitter,
    commands: Option<Receiver<EngineCommand>>,
    checkpoints: Option<Box<dyn CheckpointStore>>,
    params: Params,
    /// The pretrained teacher, frozen from the switch on (kd's and the frozen ablation's).
    teacher: Option<Trainer>,
    /// The teacher's file in the newest checkpoint written or resumed from: later checkpoints
    /// link it rather than write the frozen teacher again (`checkpoint::write`).
    teacher_file: Option<PathBuf>,
    teacher_seconds: f64,
    arms: Vec<Arm>,
    phase: Option<ResumePoint>,
    paused: bool,
    pause_pending: bool,
    checkpoint_requested: bool,
    retained_pool: Option<Arc<Pool>>,
    /// Drift sketches of the days in the current reference window (`online::drift_reference`),
    /// each made once when its day is read; rebuilt from the days after a resume.
    drift_window: Vec<(u32, crate::data::sketch::DaySketch)>,
    last_progress: Instant,
    /// Pending stop and restored parameter changes (`recovery.rs`).
    recovery: super::pending::Recovery,
    /// Online rows streamed since the last checkpoint (resets with every checkpoint).
    rows_since_checkpoint: u64,
    /// `[train]` and `[method]` as each arm kind sees them (`per_arm` laid over the session's).
    arm_cfgs: Vec<ArmCfg>,
    /// The validation protocol's choice (`run --tune`), announced after `SessionStarted`.
    tuned: Option<EngineEvent>,
    /// The checkpoint being written in the background (`checkpoint_in_background`).
    in_flight: Option<InFlight>,
}

/// What a checkpoint writer hands back: the store it borrowed, and where the checkpoint landed
/// with the bytes it wrote (or why it did not).
type Written = (
    Box<dyn CheckpointStore>,
    anyhow::Result<(SavedCheckpoint, u64)>,
);

/// A checkpoint handed to its writer thread, which owns the store until it is joined.
struct InFlight {
    writer: std::thread::JoinHandle<Written>,
    label: String,
    reason: String,
    at: Position,
}

/// One arm kind's resolved settings.
struct ArmCfg {
    kind: ArmKind,
    train: crate::train::TrainConfig,
    method: crate::method::MethodConfig,
    sampling_ratio: Option<f64>,
}

/// Every named arm kind's settings under `cfg` (a handful of small records).
fn resolve_arm_cfgs(cfg: &SessionConfig) -> Vec<ArmCfg> {
    crate::protocol::ARM_NAMES
        .iter()
        .filter_map(|(name, _)| ArmKind::parse(name).ok())
        .map(|kind| {
            let (train, method) = cfg.for_arm(kind);
            ArmCfg {
                kind,
                train,
                method,
                sampling_ratio: cfg.arm_overrides(kind).and_then(|o| o.sampling_ratio),
            }
        })
        .collect()
}

/// What a run needs from its data, made before any session exists (so a source that cannot
/// run leaves nothing behind): the source opened, the split resolved, the training labels
/// checked and the vocabulary fitted.
pub struct Prepared {
    data: Dataset,
    plan: DayPlan,
    bundle: Option<crate::bundle::Bundle>,
    notes: Vec<String>,
    /// The source's identity, recorded in every checkpoint (`checkpoint::data_fingerprint`).
    data_fingerprint: String,
}

impl Prepared {
    /// Opens the data, resolves the split, checks that the training days hold both classes,
    /// and fits the vocabulary on the teacher's days (history and retained), so the student
    /// inherits the teacher's feature map.
    pub fn new(cfg: &SessionConfig) -> anyhow::Result<Prepared> {
        Prepared::with_plan(cfg, Ok)
    }

    /// [`Prepared::new`] on the plan `reshape` makes of the session's split (the validation
    /// protocol's shortened plans). The training labels are checked and the vocabulary fitted
    /// on that plan's history and retained days, so a day it puts after the switch is as
    /// unseen as a session's online day: its new ids are out of vocabulary there too.
    fn with_plan(
        cfg: &SessionConfig,
        reshape: impl FnOnce(DayPlan) -> anyhow::Result<DayPlan>,
    ) -> anyhow::Result<Prepared> {
        cfg.validate()?;
        let source = cfg.data.open().context("cannot open the data source")?;
        let plan = cfg
            .split
            .resolve(source.num_days())
            .with_context(|| format!("cannot split {}", source.describe()))?;
        let plan = reshape(plan)?;
        let training: Vec<u32> = plan.history.iter().chain(&plan.retained).copied().collect();
        source.check_training_labels(&training)?;
        // A teacher bundle brings its vocabulary and model (crate::bundle).
        let (vocab, bundle) = crate::bundle::session_vocabulary(
            cfg.teacher.bundle.as_deref(),
            cfg.min_count,
            source.as_ref(),
            &plan,
        )?;
        // A bundle's vocabulary against the data's keys: a field hashed otherwise would put
        // every row in the OOV row and still give a plausible run.
        let mut notes = Vec::new();
        if let (Some(b), Some(&day)) = (&bundle, plan.retained.first()) {
            notes = b
                .check_oov(&vocab, source.as_ref(), day, cfg.teacher.allow_oov_jump)
                .context("teacher.bundle")?;
        }
        let what = source.describe();
        let data_fingerprint = super::checkpoint::data_fingerprint(source.as_ref());
        let data = Dataset::new(source, vocab);
        anyhow::ensure!(
            cfg.gate.cluster != GateCluster::Users || data.spec().user_index().is_some(),
            "gate.cluster = \"users\" needs a data source with a user field, and {what} has none: use \"rows\" (or \"auto\")",
        );
        Ok(Prepared {
            data,
            plan,
            bundle,
            notes,
            data_fingerprint,
        })
    }

    pub fn plan(&self) -> &DayPlan {
        &self.plan
    }

    /// The split as the session's `days:` line shows it, with the held-out and unused days.
    pub fn plan_line(&self) -> String {
        use crate::data::split::day_span;
        let p = &self.plan;
        let mut line = format!(
            "days: history {} · retained {} · online {}",
            day_span(&p.history),
            day_span(&p.retained),
            day_span(&p.online)
        );
        if !p.holdout.is_empty() {
            line += &format!(" · holdout {}", day_span(&p.holdout));
        }
        if !p.unused.is_empty() {
            line += &format!(" · unused {} (never read)", day_span(&p.unused));
        }
        line
    }

    /// The opened data and its vocabulary.
    pub fn dataset(&self) -> &Dataset {
        &self.data
    }

    /// The teacher's architecture: the bundle's when one is imported, else `cfg`'s.
    pub fn teacher_spec(&self, cfg: &SessionConfig) -> ModelSpec {
        match &self.bundle {
            Some(b) => b.spec.clone(),
            None => cfg.teacher.model.clone(),
        }
    }

    /// What the preparation has to tell the user that does not stop the run (a check it
    /// skipped or was told to let through).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The data on the plan of the validation protocol (`engine::tune`): the last retained
    /// day becomes the last day after the switch (the validation day, which scores the
    /// trials); the online and held-out days leave the plan, so nothing built on it can read
    /// them, and the vocabulary is fitted without the days after the switch.
    ///
    /// With three retained days or more, the day before the validation day becomes an online
    /// day too (the first of `plan.online`): each trial lives through it with its online step
    /// before it is scored, so values that win the switch and lose the days after it (kd's
    /// weight against a frozen teacher) are seen. With two, the switch alone is validated.
    pub fn for_validation(cfg: &SessionConfig) -> anyhow::Result<Prepared> {
        Prepared::with_plan(cfg, |mut plan| {
            anyhow::ensure!(
                plan.retained.len() >= 2,
                "tune needs at least two retained days (the last one validates, the others train); the split has {}",
                plan.retained.len()
            );
            let validation = plan.retained.pop().context("no retained day")?;
            plan.online = vec![validation];
            if plan.retained.len() >= 2 {
                let online = plan.retained.pop().context("no retained day")?;
                plan.online.insert(0, online);
            }
            plan.holdout.clear();
            Ok(plan)
        })
    }

    /// The data on the plan of the protocol's online stage (`engine::tune`): the last `days`
    /// retained days become the days after the switch, streamed test-then-train; the switch
    /// trains on the retained days before them. The online and held-out days leave the plan,
    /// and the vocabulary is fitted without the streamed days.
    pub fn for_online_validation(cfg: &SessionConfig, days: usize) -> anyhow::Result<Prepared> {
        Prepared::with_plan(cfg, |mut plan| {
            online_stage_fits(days, plan.retained.len())?;
            let n = plan.retained.len();
            plan.online = plan.retained.split_off(n - days);
            plan.holdout.clear();
            Ok(plan)
        })
    }
}

/// The online stage streams `days` retained days after a switch on the ones before them.
pub(crate) fn online_stage_fits(days: usize, retained: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        days >= 1 && days < retained,
        "the online stage of tune streams {days} retained day(s) after a switch on the retained days before them, so it needs 1 to {} with this split (it retains {retained})",
        retained.saturating_sub(1)
    );
    Ok(())
}

impl Engine {
    /// A new run: [`Prepared::new`], then [`Engine::start`].
    pub fn new(
        cfg: SessionConfig,
        session_id: &str,
        name: &str,
        io: EngineIo,
    ) -> anyhow::Result<Engine> {
        let prepared = Prepared::new(&cfg)?;
        Engine::start(cfg, prepared, session_id, name, io)
    }

    /// A new run on data already prepared with the same `cfg`.
    pub fn start(
        cfg: SessionConfig,
        prepared: Prepared,
        session_id: &str,
        name: &str,
        io: EngineIo,
    ) -> anyhow::Result<Engine> {
        cfg.validate()?;
        configure_threads(cfg.threads);
        let Prepared {
            data,
            plan,
            bundle,
            data_fingerprint,
            ..
        } = prepared;
        let teacher_spec = match bundle {
            Some(b) => b.spec,
            None => cfg.teacher.model.clone(),
        };
        let student_spec = cfg.student.model.clone();
        let params = cfg.params();
        Ok(Engine {
            session_id: session_id.to_string(),
            name: name.to_string(),
            data,
            data_fingerprint,
            plan,
            teacher_spec,
            student_spec,
            emitter: Emitter::new(io.sinks, 0, 0.0),
            commands: io.commands,
            checkpoints: io.checkpoints,
            params,
            teacher: None,
            teacher_file: None,
            teacher_seconds: 0.0,
            arms: Vec::new(),
            phase: None,
            paused: false,
            pause_pending: false,
            checkpoint_requested: false,
            retained_pool: None,
            drift_window: Vec::new(),
            last_progress: Instant::now(),
            recovery: Default::default(),
            rows_since_checkpoint: 0,
            arm_cfgs: resolve_arm_cfgs(&cfg),
            tuned: None,
            in_flight: None,
            cfg,
        })
    }

    pub fn plan(&self) -> &DayPlan {
        &self.plan
    }

    pub fn features(&self) -> &FeatureSpec {
        self.data.spec()
    }

    /// Runs from wherever the engine stands to the end (or until an operator stops it).
    pub fn run(&mut self) -> anyhow::Result<Outcome> {
        let mut result = self.run_stages();
        // However the stages ended, a checkpoint still being written is finished and logged (or
        // its failure reported) before the engine returns; the stages' own error comes first.
        let settled = self.settle_checkpoint();
        if result.is_ok() {
            result = settled;
        }
        match result {
            Ok(()) => Ok(Outcome::Finished),
            Err(e) if e.downcast_ref::<StopRequested>().is_some() => Ok(Outcome::Stopped),
            Err(e) => {
                // Best effort: the error is returned to the caller either way.
                let _ = self.emitter.emit(EngineEvent::Error {
                    message: format!("{e:#}"),
                });
                Err(e)
            }
        }
    }

    fn run_stages(&mut self) -> anyhow::Result<()> {
        if self.phase.is_none() {
            self.emit(EngineEvent::SessionStarted {
                session: self.session_id.clone(),
                name: self.name.clone(),
                arms: self
                    .cfg
                    .arms
                    .iter()
                    .map(|&kind| ArmInfo {
                        name: kind.to_string(),
                        model: self.arm_model_spec(kind).to_string(),
                    })
                    .collect(),
                teacher: self.teacher_spec.to_string(),
                days: self.plan.clone(),
                params: self.params.clone(),
                seed: self.cfg.seed,
            })?;
            if let Some(tuned) = self.tuned.take() {
                self.emit(tuned)?;
            }
            let (teacher, seconds) = self.prepare_teacher()?;
            self.install_teacher(teacher, seconds);
            self.check_teacher()?;
            self.phase = Some(ResumePoint::TeacherReady);
            self.checkpoint_in_background("teacher ready")?;
        }
        if self.phase == Some(ResumePoint::TeacherReady) {
            self.phase = Some(ResumePoint::Offline { arms_done: 0 });
        }
        if let Some(ResumePoint::Offline { arms_done }) = self.phase {
            self.offline_stage(arms_done)?;
            self.phase = Some(ResumePoint::Online {
                next: 0,
                arms_done: 0,
            });
            self.checkpoint_in_background("offline stage done")?;
        }
        while let Some(ResumePoint::Online { next, arms_done }) = self.phase {
            if next >= self.plan.online.len() {
                break;
            }
            self.online_day(next, arms_done)?;
            self.phase = Some(ResumePoint::Online {
                next: next + 1,
                arms_done: 0,
            });
            // A checkpoint costs the same on a day of 500 rows as on one of 2 million: short
            // days are checkpointed together (see `checkpoint_min_rows`); the last is `done`.
            let last = next + 1 >= self.plan.online.len();
            if last || self.rows_since_checkpoint >= self.cfg.checkpoint_min_rows {
                self.checkpoint_in_background("day boundary")?;
            }
        }
        self.holdout_eval()?;
        self.settle_checkpoint()?;
        self.phase = Some(ResumePoint::Done);
        self.emit(EngineEvent::StageStarted {
            stage: Stage::Done,
            arm: None,
            day: None,
            total: 0,
        })?;
        self.emit(EngineEvent::Finished {})?;
        Ok(())
    }

    /// The checkpoint label of the current phase: `teacher`, `offline` inside the offline stage
    /// (one label, replaced as arms finish), `day-NNNN` at the start of an online day,
    /// `day-NNNN-arm-K` after K arms of it, `done` at the end.
    fn phase_label(&self) -> String {
        match self.phase {
            Some(ResumePoint::Online { next, arms_done }) => match self.plan.online.get(next) {
                Some(d) if arms_done == 0 => format!("day-{d:04}"),
                Some(d) => format!("day-{d:04}-arm-{arms_done}"),
                None => "done".to_string(),
            },
            Some(ResumePoint::Done) => "done".to_string(),
            Some(ResumePoint::Offline { .. }) => "offline".to_string(),
            _ => "teacher".to_string(),
        }
    }

    pub(crate) fn arm_model_spec(&self, kind: ArmKind) -> &ModelSpec {
        if kind.is_student() {
            &self.student_spec
        } else {
            &self.teacher_spec
        }
    }

    pub(crate) fn arm_states(&self) -> Vec<ArmState> {
        self.arms.iter().map(|a| a.state.clone()).collect()
    }

    pub(crate) fn emit(&mut self, event: EngineEvent) -> anyhow::Result<()> {
        self.emitter.emit(event)
    }

    /// Builds a fresh model of `spec` for this run's features.
    pub(crate) fn new_trainer(&self, spec: &ModelSpec, seed: u64) -> anyhow::Result<Trainer> {
        let model = build_model(spec, self.data.spec(), seed)?;
        let mut t = Trainer::new(model, &self.cfg.train)?;
        t.set_vocabulary(Some(self.data.vocabulary().fingerprint()));
        Ok(t)
    }

    /// The encoded retained days in time order (the sampler's, the baselines' and replay's
    /// pool), written once to a file in the day cache's folder and shared; a chunk of a day is
    /// in memory while it is built.
    pub(crate) fn retained_pool(&mut self) -> anyhow::Result<Arc<Pool>> {
        if let Some(pool) = &self.retained_pool {
            return Ok(pool.clone());
        }
        let days = self.plan.retained.clone();
        let pool = Arc::new(self.pool_of_days(&days, "the retained pool")?);
        self.retained_pool = Some(pool.clone());
        Ok(pool)
    }

    /// The history and retained days encoded into one pool, in time order (`retrain`). Not
    /// kept: only one arm reads it, and it is the largest pool a session makes.
    pub(crate) fn history_and_retained_pool(&mut self) -> anyhow::Result<Arc<Pool>> {
        anyhow::ensure!(
            !self.plan.history.is_empty(),
            "arm `retrain` trains on the history, and this run has no history days"
        );
        let days: Vec<u32> = self
            .plan
            .history
            .iter()
            .chain(&self.plan.retained)
            .copied()
            .collect();
        Ok(Arc::new(
            self.pool_of_days(&days, "the history and retained pool")?,
        ))
    }

    /// `days` encoded into one pool file in the day cache's folder, in the order given.
    fn pool_of_days(&mut self, days: &[u32], what: &str) -> anyhow::Result<Pool> {
        let spec = self.data.spec();
        let dir = crate::data::table::cache::root();
        let mut writer =
            PoolWriter::create(spec.num_cat(), spec.num_num(), dir.as_deref(), false, what)?;
        for &d in days {
            self.data.write_day(d as usize, &mut writer, |_| ())?;
        }
        writer.finish()
    }

    // What the stage files (`offline.rs`, `online.rs`, `gate.rs`, `recovery.rs`) may read and
    // change; the fields themselves stay private to this file.

    pub(crate) fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Puts arms' own values (`per_arm`) in effect for the arms built from now on.
    pub(crate) fn set_per_arm(
        &mut self,
        per_arm: std::collections::BTreeMap<String, super::config::ArmOverrides>,
    ) {
        self.cfg.per_arm = per_arm;
        self.arm_cfgs = resolve_arm_cfgs(&self.cfg);
    }

    /// Puts the session-wide online values of `cfg` (`[online]`, `[adaptation]`) in effect, as
    /// an operator's change between days would (the protocol's online stage tries several).
    pub(crate) fn set_online_values(&mut self, cfg: &SessionConfig) {
        self.cfg.online = cfg.online.clone();
        self.cfg.adaptation = cfg.adaptation.clone();
        self.params = self.cfg.params();
    }

    /// The record of the validation protocol that chose this run's `per_arm` values
    /// (`run --tune`): emitted once, right after `SessionStarted`.
    pub fn announce_tuning(&mut self, tuned: EngineEvent) {
        self.tuned = Some(tuned);
    }

    /// The encoded rows of day `d`.
    pub(crate) fn day(&self, d: u32) -> anyhow::Result<Batch> {
        self.data.day(d as usize)
    }

    /// Day `d` encoded into an unlinked file beside the retained pool's and read back by batch
    /// (`look` sees its raw keys a chunk at a time): the training and evaluation passes over a
    /// day hold a few batches of it, not the day.
    pub(crate) fn day_on_disk(
        &self,
        d: u32,
        look: impl FnMut(&crate::data::RawDay),
    ) -> anyhow::Result<Pool> {
        let dir = crate::data::table::cache::root();
        self.data.day_on_disk(d as usize, dir.as_deref(), look)
    }

    pub(crate) fn vocabulary(&self) -> &Vocabulary {
        self.data.vocabulary()
    }

    pub(crate) fn dataset(&self) -> &Dataset {
        &self.data
    }

    /// The drift sketches of the current reference window's days (`online::drift_reference`).
    pub(crate) fn drift_window_mut(&mut self) -> &mut Vec<(u32, crate::data::sketch::DaySketch)> {
        &mut self.drift_window
    }

    pub(crate) fn teacher_spec(&self) -> &ModelSpec {
        &self.teacher_spec
    }

    /// The shared teacher, ready for the arms, and the seconds its pretraining took.
    pub(crate) fn install_teacher(&mut self, teacher: Trainer, seconds: f64) {
        self.teacher = Some(teacher);
        self.teacher_seconds = seconds;
    }

    pub(crate) fn arms(&self) -> &[Arm] {
        &self.arms
    }

    pub(crate) fn arms_mut(&mut self) -> &mut Vec<Arm> {
        &mut self.arms
    }

    pub(crate) fn set_phase(&mut self, phase: ResumePoint) {
        self.phase = Some(phase);
    }

    /// Online rows streamed since the last checkpoint grow by `rows`.
    pub(crate) fn count_online_rows(&mut self, rows: u64) {
        self.rows_since_checkpoint += rows;
    }

    pub(crate) fn recovery_mut(&mut self) -> &mut Recovery {
        &mut self.recovery
    }

    /// Puts `params` in effect (a restored change) and logs it where it applies.
    pub(crate) fn change_params(&mut self, params: Params, at: &Position) -> anyhow::Result<()> {
        self.params = params;
        self.emit(EngineEvent::ParamsChanged {
            params: self.params.clone(),
            at: at.clone(),
        })
    }

    /// Applies pending operator commands between batches. A pause inside an online arm-day is
    /// held until the arm finishes its day (a safe point, where a checkpoint is written), so a
    /// paused session can always be quit and resumed exactly.
    pub(crate) fn poll_commands(&mut self, at: &Position) -> anyhow::Result<()> {
        self.drain_commands(at, false)
    }

    /// Like [`Engine::poll_commands`], at a safe point: writes requested checkpoints and enters a
    /// pending pause, blocking until resumed or stopped.
    pub(crate) fn safe_point(&mut self, at: &Position) -> anyhow::Result<()> {
        self.drain_commands(at, true)?;
        self.stop_if_pending()?;
        if self.checkpoint_requested || self.pause_pending {
            let reason = if self.pause_pending {
                "pause"
            } else {
                "operator request"
            };
            self.checkpoint(reason)?;
        }
        if self.pause_pending {
            self.pause_pending = false;
            self.paused = true;
            self.emit(EngineEvent::Paused { at: at.clone() })?;
        }
        while self.paused {
            let Some(rx) = &self.commands else {
                self.paused = false;
                break;
            };
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(cmd) => {
                    self.apply_command(cmd, at, true)?;
                    if self.checkpoint_requested {
                        self.checkpoint("operator request")?;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The console went away while paused: stop, resumable from the checkpoint.
                Err(RecvTimeoutError::Disconnected) => return Err(StopRequested.into()),
            }
        }
        Ok(())
    }

    fn drain_commands(&mut self, at: &Position, safe: bool) -> anyhow::Result<()> {
        self.apply_due_changes(at)?;
        loop {
            let cmd = match &self.commands {
                Some(rx) => match rx.try_recv() {
                    Ok(cmd) => cmd,
                    Err(_) => return Ok(()),
                },
                None => return Ok(()),
            };
            self.apply_command(cmd, at, safe)?;
        }
    }

    fn apply_command(
        &mut self,
        cmd: EngineCommand,
        at: &Position,
        safe: bool,
    ) -> anyhow::Result<()> {
        self.emit(EngineEvent::Operator {
            command: cmd.clone(),
            at: at.clone(),
        })?;
        match cmd {
            EngineCommand::Pause if !self.paused => {
                if safe {
                    self.pause_pending = true;
                } else if held_to_safe_point(at.stage) {
                    self.pause_pending = true;
                    self.emit(EngineEvent::Warning {
                        arm: at.arm.clone(),
                        message: format!(
                            "pausing at {} (checkpointed there)",
                            next_safe_point(at.stage)
                        ),
                    })?;
                } else {
                    // Teacher pretraining pauses at once; the resumable point stays the last
                    // checkpoint.
                    self.paused = true;
                    self.emit(EngineEvent::Paused { at: at.clone() })?;
                    while self.paused {
                        let Some(rx) = &self.commands else { break };
                        match rx.recv_timeout(Duration::from_millis(200)) {
                            Ok(cmd) => self.apply_command(cmd, at, false)?,
                            Err(RecvTimeoutError::Timeout) => {}
                            Err(RecvTimeoutError::Disconnected) => return Err(StopRequested.into()),
                        }
                    }
                }
            }
            EngineCommand::Resume if self.paused || self.pause_pending => {
                let was_paused = self.paused;
                self.paused = false;
                self.pause_pending = false;
                if was_paused {
                    self.emit(EngineEvent::Resumed { at: at.clone() })?;
                }
            }
            EngineCommand::Pause | EngineCommand::Resume => {}
            EngineCommand::SetParams { patch } => match self.params.patched(&patch) {
                Ok(p) => {
                    self.params = p;
                    self.emit(EngineEvent::ParamsChanged {
                        params: self.params.clone(),
                        at: at.clone(),
                    })?;
                }
                Err(e) => self.emit(EngineEvent::ParamsRefused {
                    field: e.field.to_string(),
                    reason: e.reason,
                    at: at.clone(),
                })?,
            },
            EngineCommand::Checkpoint => {
                self.checkpoint_requested = true;
                if !safe {
                    self.emit(EngineEvent::Warning {
                        arm: at.arm.clone(),
                        message: "checkpoint requested: written at the next safe point".into(),
                    })?;
                }
            }
            EngineCommand::Stop => self.request_stop(at, safe)?,
        }
        Ok(())
    }

    /// Emits a `Progress` event at most every quarter second.
    pub(crate) fn progress(
        &mut self,
        stage: Stage,
        arm: Option<&str>,
        day: Option<u32>,
        done: u64,
        total: u64,
        started: Instant,
    ) -> anyhow::Result<()> {
        let now = Instant::now();
        if now.duration_since(self.last_progress) < Duration::from_millis(250) && done < total {
            return Ok(());
        }
        self.last_progress = now;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / secs;
        let eta = (rate > 0.0 && total >= done).then(|| (total - done) as f64 / rate);
        self.emit(EngineEvent::Progress {
            stage,
            arm: arm.map(str::to_string),
            day,
            done,
            total,
            samples_per_sec: rate,
            eta_secs: eta,
        })
    }

    /// Writes a checkpoint (if the run has a store) covering every event so far, and waits
    /// until it is on disk.
    pub(crate) fn checkpoint(&mut self, reason: &str) -> anyhow::Result<()> {
        self.checkpoint_in_background(reason)?;
        self.settle_checkpoint()
    }

    /// Takes a checkpoint covering every event so far and leaves its writing (the files, their
    /// fsyncs and checksums) to a thread while the run goes on; the `checkpointed` record
    /// follows when [`settle_checkpoint`](Self::settle_checkpoint) finds it on disk: at the next
    /// checkpoint, a stop or the end of the run, so its place in the log does not depend on the
    /// disk's speed. A crash before then resumes from the checkpoint before, as a crash during
    /// a synchronous write would.
    pub(crate) fn checkpoint_in_background(&mut self, reason: &str) -> anyhow::Result<()> {
        self.settle_checkpoint()?;
        self.checkpoint_requested = false;
        self.rows_since_checkpoint = 0;
        let label = self.phase_label();
        let Some(mut store) = self.checkpoints.take() else {
            return Ok(());
        };
        // The checkpoint covers every record emitted so far; a resume continues after it.
        let seq = self.emitter.next_seq().saturating_sub(1);
        let snapshot = self
            .phase
            .context("checkpoint before the teacher is ready")
            .and_then(|phase| {
                let state = CheckpointState {
                    schema_version: STATE_SCHEMA_VERSION,
                    phase,
                    params: self.params.clone(),
                    arms: self.arm_states(),
                    clock: self.emitter.clock(),
                    teacher_seconds: self.teacher_seconds,
                    data: Some(self.data_fingerprint.clone()),
                };
                super::checkpoint::snapshot(
                    &state,
                    self.teacher.as_ref(),
                    self.teacher_file.as_deref(),
                    &self.arms,
                )
            });
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(e) => {
                self.checkpoints = Some(store);
                return Err(self.checkpoint_failed(&label, e));
            }
        };
        let (day, stage) = match self.phase {
            Some(ResumePoint::Online { next, .. }) => {
                (self.plan.online.get(next).copied(), Stage::Online)
            }
            Some(ResumePoint::Offline { .. }) => (None, Stage::OfflineTrain),
            _ => (None, Stage::TeacherPretrain),
        };
        let at = Position {
            stage,
            arm: None,
            day,
            batch: 0,
        };
        let thread_label = label.clone();
        let writer = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                let mut bytes = 0;
                let saved = store.save(&thread_label, seq, &mut |dir| {
                    bytes = snapshot.write(dir)?;
                    Ok(())
                });
                (store, saved.map(|saved| (saved, bytes)))
            })
            .context("cannot start the checkpoint writer")?;
        self.in_flight = Some(InFlight {
            writer,
            label,
            reason: reason.to_string(),
            at,
        });
        Ok(())
    }

    /// Waits for the checkpoint being written, if any, and logs it (`checkpointed`); its
    /// failure is the run's.
    pub(crate) fn settle_checkpoint(&mut self) -> anyhow::Result<()> {
        let Some(job) = self.in_flight.take() else {
            return Ok(());
        };
        let (store, result) = job
            .writer
            .join()
            .map_err(|_| anyhow::anyhow!("the checkpoint writer panicked"))
            .with_context(|| format!("cannot write checkpoint `{}`", job.label))?;
        self.checkpoints = Some(store);
        let (saved, bytes) = result.map_err(|e| self.checkpoint_failed(&job.label, e))?;
        if self.teacher.is_some() {
            self.teacher_file = Some(super::checkpoint::teacher_file(&saved.dir));
        }
        self.emit(EngineEvent::Checkpointed {
            at: job.at,
            path: saved.shown,
            reason: job.reason,
            bytes: Some(bytes),
        })
    }

    /// A checkpoint that could not be written fails the run, yet the session keeps the
    /// checkpoints before it and its log: the error says so and how to go on, since the first
    /// thing an operator reads after a full disk should not leave them guessing whether the
    /// run is lost.
    fn checkpoint_failed(&self, label: &str, e: anyhow::Error) -> anyhow::Error {
        let full = e
            .chain()
            .filter_map(|c| c.downcast_ref::<std::io::Error>())
            .any(disk_full);
        let fix = if full {
            "the disk is full: free some space"
        } else {
            "fix that"
        };
        anyhow::anyhow!(
            "cannot write checkpoint `{label}` ({e:#}); {fix}, then `crossadapt resume {}` continues the session from its latest checkpoint",
            self.session_id
        )
    }

    /// Restores a run from a checkpoint folder; the next event gets `next_seq`.
    pub fn resume(
        cfg: SessionConfig,
        session_id: &str,
        name: &str,
        checkpoint_dir: &Path,
        next_seq: u64,
        io: EngineIo,
    ) -> anyhow::Result<Engine> {
        let mut engine = Engine::new(cfg, session_id, name, io)?;
        let fingerprint = engine.data.vocabulary().fingerprint();
        let restored = super::checkpoint::read(
            checkpoint_dir,
            &engine.cfg.train,
            engine.data.spec(),
            Some(&fingerprint),
            &engine.data_fingerprint,
        )?;
        let sinks =
            std::mem::replace(&mut engine.emitter, Emitter::new(Vec::new(), 0, 0.0)).into_sinks();
        engine.emitter = Emitter::new(sinks, next_seq, restored.state.clock);
        engine.params = restored.state.params.clone();
        engine.teacher_seconds = restored.state.teacher_seconds;
        engine.teacher = Some(restored.teacher);
        engine.teacher_file = Some(super::checkpoint::teacher_file(checkpoint_dir));
        engine.arms = restored.arms;
        // A checkpoint holds weights and optimiser state; the learning rates are the arm's.
        for arm in &mut engine.arms {
            if let Some(a) = engine.arm_cfgs.iter().find(|a| a.kind == arm.kind()) {
                arm.student
                    .set_learning_rates(a.train.emb_lr, a.train.dense_lr);
            }
        }
        engine.phase = Some(restored.state.phase);
        let (stage, day) = match restored.state.phase {
            ResumePoint::Online { next, .. } => {
                (Stage::Online, engine.plan.online.get(next).copied())
            }
            ResumePoint::TeacherReady => (Stage::TeacherPretrain, None),
            ResumePoint::Offline { .. } => (Stage::OfflineTrain, None),
            ResumePoint::Done => (Stage::Done, None),
        };
        engine.emit(EngineEvent::SessionResumed {
            from: Position {
                stage,
                arm: None,
                day,
                batch: 0,
            },
        })?;
        Ok(engine)
    }

    /// The operator parameters in effect.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Changes operator parameters before the run continues (a fork with changed settings);
    /// logged as `ParamsChanged` so a replay shows it. An empty patch changes nothing.
    pub fn apply_patch(&mut self, patch: &ParamPatch) -> anyhow::Result<()> {
        if *patch == ParamPatch::default() {
            return Ok(());
        }
        self.params = self.params.patched(patch)?;
        let at = Position {
            stage: Stage::Setup,
            ..Default::default()
        };
        self.emit(EngineEvent::ParamsChanged {
            params: self.params.clone(),
            at,
        })
    }
}

/// The engine as the recipes see it (`method::recipe`): settings, data, the shared teacher,
/// and the command and record channels, and nothing of its scheduling state.
impl Host for Engine {
    fn settings(&self) -> Settings<'_> {
        Settings {
            seed: self.cfg.seed,
            batch_size: self.cfg.batch_size,
            method: &self.cfg.method,
            adaptation: &self.cfg.adaptation,
            train: &self.cfg.train,
            sampling_ratio: None,
        }
    }

    fn arm_settings(&self, kind: ArmKind) -> Settings<'_> {
        let Some(a) = self.arm_cfgs.iter().find(|a| a.kind == kind) else {
            return self.settings();
        };
        Settings {
            seed: self.cfg.seed,
            batch_size: self.cfg.batch_size,
            method: &a.method,
            adaptation: &self.cfg.adaptation,
            train: &a.train,
            sampling_ratio: a.sampling_ratio,
        }
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn features(&self) -> &FeatureSpec {
        self.data.spec()
    }

    fn student_spec(&self) -> &ModelSpec {
        &self.student_spec
    }

    fn teacher(&self) -> anyhow::Result<&Trainer> {
        self.teacher.as_ref().context("the teacher is not ready")
    }

    fn new_trainer(&self, spec: &ModelSpec, seed: u64) -> anyhow::Result<Trainer> {
        Engine::new_trainer(self, spec, seed)
    }

    fn retained_pool(&mut self) -> anyhow::Result<Arc<Pool>> {
        Engine::retained_pool(self)
    }

    fn history_and_retained_pool(&mut self) -> anyhow::Result<Arc<Pool>> {
        Engine::history_and_retained_pool(self)
    }

    fn poll(&mut self, at: &Position) -> anyhow::Result<()> {
        self.poll_commands(at)
    }

    fn emit(&mut self, event: EngineEvent) -> anyhow::Result<()> {
        Engine::emit(self, event)
    }

    fn progress(
        &mut self,
        stage: Stage,
        arm: &str,
        day: Option<u32>,
        done: u64,
        total: u64,
        started: Instant,
    ) -> anyhow::Result<()> {
        Engine::progress(self, stage, Some(arm), day, done, total, started)
    }
}

/// Whether a pause or stop asked for in `stage` waits for the next safe point (the end of the
/// current arm's day online, of the current arm's offline work offline) rather than taking
/// effect at once. Teacher pretraining has no safe point before its end.
pub(crate) fn held_to_safe_point(stage: Stage) -> bool {
    !matches!(stage, Stage::Setup | Stage::TeacherPretrain | Stage::Done)
}

/// Where a pause or stop held in `stage` takes effect, for the operator's warning.
pub(crate) fn next_safe_point(stage: Stage) -> &'static str {
    match stage {
        Stage::Online => "the end of this arm's day",
        Stage::OfflineEval => "the start of the online days",
        _ => "the end of this arm's offline stage",
    }
}

/// No space left on the device, or the user's quota reached.
fn disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Sizes candle's compute pool once per process; later calls keep the first size.
fn configure_threads(threads: usize) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
}

/// An engine over the tiny session with no sinks, commands or checkpoints, for unit tests of the
/// stages.
#[cfg(test)]
pub(crate) fn tiny_engine() -> Engine {
    let io = EngineIo {
        sinks: vec![],
        commands: None,
        checkpoints: None,
    };
    Engine::new(SessionConfig::tiny(&[]).unwrap(), "t", "t", io).unwrap()
}
