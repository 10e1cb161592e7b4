//! The session store on disk: config, events log, status, checkpoints, lock; and the readers
//! of a stored session (list, replay, export). See `store` for the layout.
//!
//! Every JSON file carries `schema_version` (a newer one is refused by name), every whole-file
//! write is atomic, the log is append-only and tolerates a torn last line.

pub mod atomic;
pub mod checkpoint;
pub mod compare;
pub mod control;
pub mod export;
pub mod live;
pub mod lock;
pub mod log;
pub mod meta;
pub mod printer;
pub mod replay;
pub mod store;

pub use checkpoint::{day_label, CheckpointRef};
pub use log::{read_log, read_log_with_warnings, EventLog, LogContents};
pub use meta::{check_name, shown_name, ArmHeadline, Parent, RunState, SessionMeta, Status};
pub use printer::DayTablePrinter;
pub use store::{CheckpointWriter, Session, SessionSummary, SessionView, Store};
