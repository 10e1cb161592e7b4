//! crossadapt: switch a CTR model to a new architecture by transferring the old model's
//! knowledge (CrossAdapt), as a library driven by a terminal console and a headless CLI.
//!
//! Dependencies point one way (`tests/layers.rs` checks it; `docs/architecture.md` explains
//! it): `cli` / `tui` -> `session` -> `engine` -> `method` -> `protocol` -> `bundle` ->
//! `train` -> `model` -> `data`, with `atomic`, `num`, `fpenv` and `text` under everything. The engine never imports the terminal;
//! the console never touches a tensor; every reader of a run folds its records through one
//! [`protocol::Ledger`].

pub mod atomic;
pub mod bundle;
pub mod cli;
pub mod data;
pub mod engine;
pub mod fpenv;
pub mod heap;
pub mod method;
pub mod model;
pub mod num;
pub mod protocol;
pub mod session;
pub mod signals;
pub mod text;
pub mod train;
pub mod tui;
