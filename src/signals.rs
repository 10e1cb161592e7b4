//! SIGHUP, SIGTERM and SIGINT of a running session, caught by signal-hook's iterator thread (no
//! hand-written handler: the handler only writes to a pipe, everything else happens on an
//! ordinary thread).
//!
//! - SIGTERM / SIGINT: the engine is asked to stop at its next safe point, where it writes a
//!   checkpoint; the console (if any) closes and restores the terminal; `status.json` ends
//!   `interrupted`, resumable. A second SIGTERM / SIGINT exits at once (exit code 128 + signal),
//!   the terminal restored first: the session is then resumable from its previous checkpoint.
//! - SIGHUP, or the terminal found hung up without one (the terminal went away, e.g. an SSH
//!   drop): the run continues headless. The console closes without stopping the engine;
//!   standard input, output and error, where they were the lost terminal, are pointed away from
//!   it (output and error at the session's `output.log`), so nothing the process prints later
//!   can fail on the dead terminal. A paused engine (or one about to pause) is stopped instead,
//!   at its checkpoint, since no one is left to resume it.
//!
//! A hangup does not always come as a signal: a process that is not the terminal's controlling
//! process (started by a shell, or with no controlling terminal at all) may get none, and a
//! hung-up terminal answers `isatty()` with EIO. So the descriptors that were the terminal are
//! recorded when the handlers are installed, a watcher thread waits (in `poll`, at no cost) for
//! the terminal to hang up, and a write that fails with EIO counts as the hangup too.
//!
//! See docs/reliability.md for the tests that show each of these.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;

use crate::protocol::EngineCommand;

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
    /// Bit `fd` set: standard descriptor `fd` (0, 1 or 2) was a terminal at install.
    terminal_fds: AtomicU8,
}

/// The process's state, once installed: what a failed write anywhere reports a hangup to.
static PROCESS: OnceLock<SignalState> = OnceLock::new();

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
        // One state per process: the handlers and the watcher are installed once.
        if let Some(state) = PROCESS.get() {
            return Ok(state.clone());
        }
        let state = SignalState::default();
        let mut mask = 0u8;
        for fd in 0..3 {
            // SAFETY: isatty only inspects the descriptor.
            if unsafe { libc::isatty(fd) } == 1 {
                mask |= 1 << fd;
            }
        }
        state.shared.terminal_fds.store(mask, Ordering::SeqCst);
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
        if mask != 0 {
            watch_terminal(state.clone(), mask.trailing_zeros() as i32)?;
        }
        let _ = PROCESS.set(state.clone());
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
            self.hang_up("SIGHUP");
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

    /// The terminal is gone (SIGHUP, or found hung up): the run goes on headless. Standard
    /// streams that were the terminal leave it at once: while a console still owns them (it
    /// restores the terminal on its way out, and those writes must neither fail nor land in the
    /// log) output and error go to `/dev/null`, and [`SignalState::detach_stdio`] points them at
    /// `output.log` once it has left; otherwise straight to `output.log`. Only the first call acts.
    pub fn hang_up(&self, why: &str) {
        let s = &self.shared;
        if s.hangup.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::warn!("{why}: the terminal is gone; the run continues headless");
        if s.console.load(Ordering::SeqCst) {
            #[cfg(unix)]
            redirect_terminal_fds(s.terminal_fds.load(Ordering::SeqCst), None);
        } else {
            self.detach_stdio();
        }
    }

    /// The terminal is gone: SIGHUP was received, or the terminal was found hung up.
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

    /// Points standard output and error at the session's `output.log` (or `/dev/null` before
    /// a session exists) and standard input away, each only where it was a terminal when the
    /// handlers were installed (a hung-up terminal can no longer be recognised: `isatty()`
    /// fails on it with EIO).
    pub fn detach_stdio(&self) {
        #[cfg(unix)]
        {
            let dir = self.shared.session_dir.lock().ok().and_then(|d| d.clone());
            let out = dir.map(|d| d.join(OUTPUT_FILE));
            redirect_terminal_fds(
                self.shared.terminal_fds.load(Ordering::SeqCst),
                Some(out.as_deref().unwrap_or(Path::new("/dev/null"))),
            );
        }
    }
}

/// Whether an error says the terminal behind a standard stream is gone: EIO (a hung-up
/// terminal) or ENXIO (no device behind it any more).
pub fn is_terminal_loss(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EIO) | Some(libc::ENXIO))
}

/// Reports a terminal found gone by a failed write or read, where the process's state is
/// installed (the binary): the same as a SIGHUP. Returns whether the error was such a loss, so
/// the caller may write once more (to `output.log` now).
pub fn terminal_lost(err: &std::io::Error) -> bool {
    if !is_terminal_loss(err) {
        return false;
    }
    match PROCESS.get() {
        Some(state) => {
            state.hang_up("a write to the terminal failed");
            true
        }
        None => false,
    }
}

/// Writes `text` to standard output (`err == false`) or standard error, never panicking: a
/// terminal found gone on the way is reported as a hangup and the text goes to `output.log`
/// instead; any other failure is dropped (the session log keeps every record).
pub fn say(text: &str, err: bool) {
    use std::io::Write;
    let write = || -> std::io::Result<()> {
        if err {
            let mut e = std::io::stderr().lock();
            e.write_all(text.as_bytes())?;
            e.flush()
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(text.as_bytes())?;
            o.flush()
        }
    };
    if let Err(e) = write() {
        if terminal_lost(&e) {
            let _ = write();
        }
    }
}

/// [`say`] on standard output, formatted, with no newline added.
#[macro_export]
macro_rules! say_out {
    ($($arg:tt)*) => { $crate::signals::say(&format!($($arg)*), false) };
}

/// [`say`] on standard error, formatted, one line.
#[macro_export]
macro_rules! say_err {
    ($($arg:tt)*) => { $crate::signals::say(&format!("{}\n", format_args!($($arg)*)), true) };
}

/// One line on stderr, never a panic (stderr may be a dead terminal).
fn best_effort_note(text: &str) {
    say(&format!("crossadapt: {text}\n"), true);
}

/// Waits, on a thread of its own and without polling, for the terminal behind descriptor `fd`
/// to hang up (POLLHUP: the other side closed, as sshd does on a dropped link), and reports it
/// as [`SignalState::hang_up`]. A copy of the descriptor is watched, closed once it fires.
#[cfg(unix)]
fn watch_terminal(state: SignalState, fd: i32) -> anyhow::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor (or -1) that this function then owns.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Ok(());
    }
    // SAFETY: `copy` is a fresh descriptor owned by nobody else.
    let copy = unsafe { OwnedFd::from_raw_fd(copy) };
    std::thread::Builder::new()
        .name("crossadapt-tty-watch".into())
        .spawn(move || loop {
            let mut p = libc::pollfd {
                fd: copy.as_raw_fd(),
                // No events asked for: poll still reports POLLHUP, POLLERR and POLLNVAL.
                events: 0,
                revents: 0,
            };
            // SAFETY: one valid pollfd, waited on without a time limit.
            let n = unsafe { libc::poll(&mut p, 1, -1) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                state.hang_up("the terminal hung up");
                return;
            }
        })
        .context("cannot start the terminal watcher")?;
    Ok(())
}

/// Replaces each standard descriptor whose bit is set in `mask`. Output and error go to `out`
/// (appended; `/dev/null` when it cannot be opened, or when `out` is `None`). Input becomes an
/// empty pipe that never ends: crossterm's reader thread reads the terminal in a loop that
/// only a "would block" leaves, and a hung-up terminal (or `/dev/null`) answers every read at
/// once with end-of-file, so it would spin on a core for the rest of the run. Input is
/// replaced once per process (a console's hangup redirects twice: first away from the
/// terminal, then to `output.log` once it has left).
#[cfg(unix)]
fn redirect_terminal_fds(mask: u8, out: Option<&Path>) {
    use std::os::fd::AsRawFd;
    static STDIN_DONE: AtomicBool = AtomicBool::new(false);
    let mask = if STDIN_DONE.swap(true, Ordering::SeqCst) {
        mask & !1
    } else {
        mask
    };
    let devnull = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .ok()
    };
    let open_out = || {
        let file = out.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        file.or_else(devnull)
    };
    for fd in [0, 1, 2] {
        if mask & (1 << fd) == 0 {
            continue;
        }
        if fd == 0 {
            let mut ends = [0; 2];
            // SAFETY: pipe2 writes two new descriptors into `ends`.
            if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } == 0 {
                // SAFETY: dup2 replaces descriptor 0 with the pipe's read end, whose own
                // descriptor is then closed. The write end stays open for the life of the
                // process, so reads say "would block" instead of end-of-file.
                unsafe {
                    libc::dup2(ends[0], 0);
                    libc::close(ends[0]);
                }
            }
            continue;
        }
        if let Some(file) = open_out() {
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
