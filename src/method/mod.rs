//! The CrossAdapt method: embedding transfer (1A), strategic sampling for progressive
//! distillation (1B/1C), and the drift-aware weighting of the online stage.

pub mod adaptation;
pub mod projection;
pub mod sampler;
