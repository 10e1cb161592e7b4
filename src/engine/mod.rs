//! Runs a session plan (stages -> arms -> days), takes commands between batches, emits events.

pub mod events;

pub use events::{
    EngineCommand, EngineEvent, EventSink, ParamPatch, Params, Position, Record, Stage,
};
