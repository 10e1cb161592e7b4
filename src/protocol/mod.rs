//! The protocol: what the engine tells the world and how that story is folded.
//!
//! This layer sits under the method, the engine, the session store and the console, and above
//! only the data, model and training types it names (`DayPlan` lives with the split,
//! `EvalMetrics` with the metrics). Everything here is plain data: the [`Record`] stream and the
//! commands that travel the other way ([`event`]), the arm names ([`arm`]), the stage and
//! lifecycle enums ([`lifecycle`]), the one fold of the stream ([`Ledger`]) and the report,
//! a serde view of the ledger ([`report`]). See `docs/architecture.md`.

pub mod arm;
pub mod event;
pub mod gate;
pub mod ledger;
pub mod lifecycle;
pub mod report;
pub mod suite;
pub mod tune;

pub use arm::{ArmKind, CrossAdaptVariant, WeightRule, ARM_NAMES};
pub use event::{
    ArmInfo, DayPlan, EngineCommand, EngineEvent, EvalMetrics, EventSink, FieldDrift,
    FieldProjection, ParamError, ParamPatch, Params, Position, Record, StageAt,
    EVENT_SCHEMA_VERSION,
};
pub use gate::{GateCluster, GateDay, GateDecision, GateRule, GateStatus, MetBy, PooledEvidence};
pub use ledger::{
    throughput, ArmLedger, ArmVerdict, DayEntry, DayTicks, DriftReading, HoldoutEntry, Ledger,
    Verdict,
};
pub use lifecycle::{Lifecycle, Stage};
pub use report::Report;
