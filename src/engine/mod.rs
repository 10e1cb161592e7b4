//! Runs a session plan (stages -> arms -> days), takes commands between batches, checkpoints at
//! safe points, emits events.

pub mod arms;
pub(crate) mod checkpoint;
pub mod config;
pub mod emitter;
pub mod events;
mod offline;
mod online;
mod recovery;
pub mod report;
pub mod run;
pub mod seeds;
pub mod state;

pub use config::SessionConfig;
pub use events::{
    EngineCommand, EngineEvent, EventSink, ParamPatch, Params, Position, Record, Stage,
};
pub use run::{CheckpointStore, Engine, EngineIo, Outcome, Prepared};
