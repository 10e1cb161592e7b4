//! crossadapt: switch a CTR model to a new architecture by transferring the old model's
//! knowledge (CrossAdapt), as a library driven by a terminal console and a headless CLI.
//!
//! Dependencies point one way: `tui` -> `session` / `engine` -> `method` -> `model` / `train`
//! -> `data`. The engine never imports the terminal; the console never touches a tensor.

pub mod atomic;
pub mod bundle;
pub mod cli;
pub mod data;
pub mod engine;
pub mod fpenv;
pub mod method;
pub mod model;
pub mod session;
pub mod signals;
pub mod train;
pub mod tui;
