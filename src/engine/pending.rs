//! The engine's state for stopping and resuming (`recovery.rs` says how it is used); its own
//! file so that `run.rs` can hold it without importing the file that extends the engine.

use std::collections::VecDeque;

use crate::protocol::{Params, Position};

#[derive(Debug, Default)]
pub(crate) struct Recovery {
    /// A stop asked for mid-day, carried out at the next safe point.
    pub stop_pending: bool,
    /// Logged parameter changes still to apply, in log order, with where they applied.
    pub changes: VecDeque<(Position, Params)>,
}
