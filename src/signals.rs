//! SIGHUP, SIGTERM and SIGINT of a running session, caught by signal-hook's iterator thread (no
//! hand-written handler: the handler only writes to a pipe, everything else happens on an
//! ordinary thread).
//!
//! - SIGTERM / SIGINT: the engine is asked to stop at its next safe point, where it writes a
//!   checkpoint; the console (if any) closes and restores the terminal; `status.json` ends
//!   `interrupted`, resumable. A second SIGTERM / SIGINT exits at once (exit code 128 + signal),
//!   the terminal restored first: the session is then resumable from its previous checkpoint.
//! - SIGHUP (the terminal went away, e.g. an SSH drop): the run continues headless. The console
//!   closes without stopping the engine; standard input, output and error, where they were the
//!   lost terminal, are pointed at `/dev/null` and the session's `output.log`, so nothing the
//!   process prints later can fail on the dead terminal. A paused engine (or one about to
//!   pause) is stopped instead, at its checkpoint, since no one is left to resume it.
//!
//! See docs/reliability.md for the tests that show each of these.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::engine::EngineCommand;

/// File of a session that receives what the process prints after its terminal hung up.
pub const OUTPUT_FILE: &str = "output.log";

/// What the signal thread shares with the engine's owner and the console.
#[derive(Default)]
struct Shared {
    /// SIGTERM or SIGINT received: stop at the next safe point.
    stop: AtomicBool,
    /// SIGHUP received: the terminal is gone.
    hangup: AtomicBool,
    /// Terminating signals received so far (the second one exits at once).
    terminating: AtomicU32,
    /// A console owns the terminal now (it restores it and forwards the stop itself).
    console: AtomicBool,
    /// Where to send `Stop` when no console does it.
    engine: Mutex<Option<Sender<EngineCommand>>>,
    /// The session folder, for `output.log`.
    session_dir: Mutex<Option<PathBuf>>,
}

/// The process's handling of SIGHUP, SIGTERM and SIGINT (see the module doc). Cloning shares it.
#[derive(Clone, Default)]
pub struct SignalState {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SignalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalState")
            .field("stop", &self.stop_requested())
            .field("hangup", &self.hung_up())
            .finish()
    }
}

impl SignalState {
    /// Installs the handlers (once per process) and starts the thread that acts on them.
    #[cfg(unix)]
    pub fn install() -> anyhow::Result<SignalState> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let state = SignalState::default();
        let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT])
            .context("cannot install the SIGHUP/SIGTERM/SIGINT handlers")?;
        let on_thread = state.clone();
        std::thread::Builder::new()
            .name("crossadapt-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    on_thread.deliver(signal);
                }
            })
            .context("cannot start the signal thread")?;
        Ok(state)
    }

    #[cfg(not(unix))]
    pub fn install() -> anyhow::Result<SignalState> {
        Ok(SignalState::default())
    }

    /// Acts on one signal (the signal thread; tests call it directly).
    pub fn deliver(&self, signal: i32) {
        let s = &self.shared;
        if signal == libc::SIGHUP {
            s.hangup.store(true, Ordering::SeqCst);
            tracing::warn!("SIGHUP: the terminal is gone; the run continues headless");
            if !s.console.load(Ordering::SeqCst) {
                self.detach_stdio();
            }
            return;
        }
        let n = s.terminating.fetch_add(1, Ordering::SeqCst) + 1;
        s.stop.store(true, Ordering::SeqCst);
        if n >= 2 {
            if s.console.load(Ordering::SeqCst) {
                let _ = ratatui::try_restore();
            }
            best_effort_note(&format!(
                "second signal {signal}: exiting now; the session resumes from its previous checkpoint"
            ));
            std::process::exit(128 + signal);
        }
        if !s.console.load(Ordering::SeqCst) {
            best_effort_note(&format!(
                "signal {signal}: stopping at the next safe point with a checkpoint (send it again to exit now)"
            ));
            self.send_stop();
        }
    }

    /// SIGTERM or SIGINT was received.
    pub fn stop_requested(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// SIGHUP was received.
    pub fn hung_up(&self) -> bool {
        self.shared.hangup.load(Ordering::SeqCst)
    }

    /// The engine to stop on SIGTERM / SIGINT while no console runs. A stop that arrived before
    /// the engine was connected is forwarded at once.
    pub fn connect_engine(&self, commands: Sender<EngineCommand>) {
        if let Ok(mut e) = self.shared.engine.lock() {
            *e = Some(commands);
        }
        if self.stop_requested() {
            self.send_stop();
        }
    }

    /// The session whose folder receives `output.log` after a hangup.
    pub fn set_session_dir(&self, dir: &Path) {
        if let Ok(mut d) = self.shared.session_dir.lock() {
            *d = Some(dir.to_path_buf());
        }
    }

    /// A console takes (`true`) or leaves (`false`) the terminal.
    pub fn set_console(&self, active: bool) {
        self.shared.console.store(active, Ordering::SeqCst);
    }

    fn send_stop(&self) {
        if let Ok(e) = self.shared.engine.lock() {
            if let Some(tx) = e.as_ref() {
                let _ = tx.send(EngineCommand::Stop);
            }
        }
    }

    /// Points standard input at `/dev/null` and standard output and error at the session's
    /// `output.log` (or `/dev/null`), each only where it was a terminal: writes to a hung-up
    /// terminal fail, and a failed `eprintln!` panics.
    pub fn detach_stdio(&self) {
        #[cfg(unix)]
        {
            let dir = self.shared.session_dir.lock().ok().and_then(|d| d.clone());
            let out = dir.map(|d| d.join(OUTPUT_FILE));
            redirect_terminal_fds(out.as_deref());
        }
    }
}

/// One line on stderr, never a panic (stderr may be a dead terminal).
fn best_effort_note(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "crossadapt: {text}");
}

#[cfg(unix)]
fn redirect_terminal_fds(out: Option<&Path>) {
    use std::os::fd::AsRawFd;
    let open_out = || {
        let file = out.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        file.or_else(|| {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .ok()
        })
    };
    for fd in [0, 1, 2] {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(fd) } != 1 {
            continue;
        }
        let target = if fd == 0 {
            std::fs::File::open("/dev/null").ok()
        } else {
            open_out()
        };
        if let Some(file) = target {
            // SAFETY: dup2 atomically replaces descriptor `fd` with a copy of an open file's
            // descriptor; `file` stays open for the call and its own descriptor is closed after.
            unsafe {
                libc::dup2(file.as_raw_fd(), fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminating_signal_stops_the_connected_engine_once() {
        let state = SignalState::default();
        let (tx, rx) = std::sync::mpsc::channel();
        state.connect_engine(tx);
        state.deliver(libc::SIGTERM);
        assert!(state.stop_requested());
        assert_eq!(rx.try_recv(), Ok(EngineCommand::Stop));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_stop_before_the_engine_is_connected_is_not_lost_and_a_console_forwards_its_own() {
        let state = SignalState::default();
        state.set_console(true);
        state.deliver(libc::SIGINT);
        let (tx, rx) = std::sync::mpsc::channel();
        state.connect_engine(tx);
        assert_eq!(rx.try_recv(), Ok(EngineCommand::Stop));
    }

    #[test]
    fn a_hangup_does_not_stop_the_run() {
        let state = SignalState::default();
        let (tx, rx) = std::sync::mpsc::channel();
        state.connect_engine(tx);
        state.deliver(libc::SIGHUP);
        assert!(state.hung_up() && !state.stop_requested());
        assert!(rx.try_recv().is_err());
    }
}
