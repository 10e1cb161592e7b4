//! Runs a session plan (stages -> arms -> days), takes commands between batches, checkpoints at
//! safe points, emits [`Record`]s. The event types live in [`crate::protocol`].

pub(crate) mod checkpoint;
pub mod config;
pub mod cpu;
pub mod emitter;
mod gate;
mod holdout;
pub mod memory;
mod offline;
mod online;
mod pending;
mod recovery;
pub mod run;
pub mod state;
pub mod tune;

/// The seed streams under their old path (see [`crate::method::seeds`]).
pub use crate::method::seeds;

/// The event types under their old path, for code written before they moved to
/// [`crate::protocol`] (new code imports `crate::protocol`).
pub mod events {
    pub use crate::protocol::event::*;
}

/// The arm kinds under their old path (see [`crate::protocol::arm`]).
pub mod arms {
    pub use crate::protocol::arm::*;
}

/// The report under its old path (see [`crate::protocol::report`]).
pub mod report {
    pub use crate::protocol::report::*;
}

pub use crate::protocol::{
    EngineCommand, EngineEvent, EventSink, ParamPatch, Params, Position, Record, Stage,
};
pub use config::SessionConfig;
pub use run::{CheckpointStore, Engine, EngineIo, Outcome, Prepared, SavedCheckpoint};
