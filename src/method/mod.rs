//! The CrossAdapt method and the baselines it is compared with: embedding transfer (1A),
//! strategic sampling for progressive distillation (1B/1C), the drift-aware weighting of the
//! online stage, the served-intercept calibration, and each arm's recipe (`recipe`), which the engine runs.

pub mod adaptation;
pub mod arm;
pub mod calibration;
pub mod config;
pub mod drift;
pub mod projection;
pub mod recipe;
pub mod sampler;
pub mod seeds;

pub use arm::{Arm, ArmState};
pub use config::MethodConfig;
pub use recipe::{recipe, Host, Recipe};
