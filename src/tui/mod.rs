//! Placeholder until the console lands from its branch (replaced on merge).
use std::path::PathBuf;

use crate::engine::{EngineCommand, Record};

pub struct ConsoleOptions {
    pub theme: String,
    pub keymap_file: Option<PathBuf>,
    pub fps: u32,
    pub mouse: bool,
    pub no_color: bool,
    pub log_dir: PathBuf,
}

pub enum ConsoleSource {
    Live {
        events: tokio::sync::mpsc::UnboundedReceiver<Record>,
        commands: std::sync::mpsc::Sender<EngineCommand>,
    },
    Replay {
        records: Vec<Record>,
        speed: f64,
    },
}

pub enum ConsoleExit {
    Quit,
    Finished,
}

pub fn run_console(_source: ConsoleSource, _opts: ConsoleOptions) -> anyhow::Result<ConsoleExit> {
    anyhow::bail!("console not merged yet")
}
