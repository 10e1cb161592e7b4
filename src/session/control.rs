//! Commands through the session folder: `commands.jsonl`, an append-only file of
//! [`CommandLine`]s that the engine's process polls and feeds into the engine's command channel,
//! so an attached console or `crossadapt ctl` reaches an engine wherever the folder is visible
//! (a shared filesystem included). The engine logs every command it takes as an `operator`
//! record at the position it applied it, followed by its result (`params_changed` or
//! `params_refused` for a change): that is the acknowledgement the senders wait for.
//!
//! [`LogTail`] follows a growing `events.jsonl` (attach, `ctl`).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::live::{write_engine, Holder, HEARTBEAT_EVERY};
use crate::protocol::{EngineCommand, Record};

/// File of the commands sent to a session's engine.
pub const COMMANDS_FILE: &str = "commands.jsonl";

/// How often the engine's process looks for new commands.
pub const POLL_EVERY: Duration = Duration::from_millis(200);

/// One line of `commands.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandLine {
    /// Who sent it: `user@host (pid N)`.
    pub from: String,
    pub sent: DateTime<Utc>,
    #[serde(flatten)]
    pub command: EngineCommand,
}

/// Appends one command to the session's command file (one `write` of one line, so lines of
/// concurrent senders do not interleave on a local filesystem).
pub fn send_command(dir: &Path, command: &EngineCommand) -> Result<()> {
    let line = CommandLine {
        from: Holder::me().who(),
        sent: Utc::now(),
        command: command.clone(),
    };
    let mut text = serde_json::to_string(&line)?;
    text.push('\n');
    let path = dir.join(COMMANDS_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_data())
        .with_context(|| format!("cannot write to {}", path.display()))
}

/// Reads what was appended to a file since the last call, whole lines only.
#[derive(Debug)]
struct LineTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl LineTail {
    fn new(path: PathBuf, offset: u64) -> LineTail {
        LineTail {
            path,
            offset,
            partial: Vec::new(),
        }
    }

    /// New complete lines. A file that shrank (a resume cut its log) is read again from the
    /// start; a missing file has no lines yet.
    fn poll(&mut self) -> Vec<String> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0;
            self.partial.clear();
        }
        if len == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        let Ok(n) = (&mut file).take(len - self.offset).read_to_end(&mut buf) else {
            return Vec::new();
        };
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]).trim().to_string();
            if !text.is_empty() {
                lines.push(text);
            }
        }
        lines
    }
}

/// Follows a session's `events.jsonl` as it grows.
#[derive(Debug)]
pub struct LogTail(LineTail);

impl LogTail {
    /// From the start of the log (every record so far, then the new ones).
    pub fn from_start(dir: &Path) -> LogTail {
        LogTail(LineTail::new(dir.join(super::store::EVENTS_FILE), 0))
    }

    /// Only records appended from now on.
    pub fn from_end(dir: &Path) -> LogTail {
        let path = dir.join(super::store::EVENTS_FILE);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        LogTail(LineTail::new(path, len))
    }

    /// The records appended since the last call (a line that does not parse is skipped: the
    /// log's own reader reports damage).
    pub fn poll(&mut self) -> Vec<Record> {
        self.0
            .poll()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// The engine process's side: a thread that feeds `commands.jsonl` into the engine's command
/// channel and rewrites `engine.json`'s heartbeat. Stops (and joins) on drop.
pub struct CommandPoller {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CommandPoller {
    /// Starts polling `dir`: commands appended from now on go to `commands`; `rate` gives the
    /// latest samples/s for the heartbeat. Commands already in the file were for an earlier
    /// process of the session and are not replayed.
    pub fn start(
        dir: &Path,
        commands: Sender<EngineCommand>,
        rate: Box<dyn Fn() -> Option<f64> + Send>,
    ) -> Result<CommandPoller> {
        let path = dir.join(COMMANDS_FILE);
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut tail = LineTail::new(path, offset);
        let mut engine = Holder::me();
        write_engine(dir, &engine)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("crossadapt-commands".into())
            .spawn(move || {
                let mut last_beat = Instant::now();
                while !flag.load(Ordering::SeqCst) {
                    for line in tail.poll() {
                        match serde_json::from_str::<CommandLine>(&line) {
                            Ok(c) => {
                                tracing::info!("command from {}: {:?}", c.from, c.command);
                                if commands.send(c.command).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                // Not for the engine: the process's output.log keeps the note.
                                let _ = writeln!(
                                    std::io::stderr(),
                                    "warning: ignored a line of {COMMANDS_FILE} that is no command ({e}): {line}"
                                );
                            }
                        }
                    }
                    if last_beat.elapsed() >= HEARTBEAT_EVERY {
                        last_beat = Instant::now();
                        engine.heartbeat = Utc::now();
                        engine.samples_per_sec = rate();
                        let _ = write_engine(&dir, &engine);
                    }
                    std::thread::sleep(POLL_EVERY);
                }
            })
            .context("cannot start the command poller")?;
        Ok(CommandPoller {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for CommandPoller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ParamPatch;

    #[test]
    fn commands_appended_after_the_start_reach_the_channel_in_order() {
        let dir = tempfile::tempdir().unwrap();
        send_command(dir.path(), &EngineCommand::Pause).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let poller = CommandPoller::start(dir.path(), tx, Box::new(|| None)).unwrap();
        let set = EngineCommand::SetParams {
            patch: ParamPatch {
                replay_ratio: Some(0.25),
                ..Default::default()
            },
        };
        send_command(dir.path(), &set).unwrap();
        send_command(dir.path(), &EngineCommand::Resume).unwrap();
        let got: Vec<_> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        drop(poller);
        assert_eq!(got, vec![set, EngineCommand::Resume]);
        assert!(rx.try_recv().is_err(), "the earlier pause was replayed");
        assert!(dir.path().join(super::super::live::ENGINE_FILE).exists());
    }

    #[test]
    fn the_tail_returns_whole_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "a\nb").unwrap();
        let mut tail = LineTail::new(path.clone(), 0);
        assert_eq!(tail.poll(), vec!["a"]);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"c\n")
            .unwrap();
        assert_eq!(tail.poll(), vec!["bc"]);
    }
}
