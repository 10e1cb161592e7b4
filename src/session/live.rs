//! What a session folder says about the process running it, readable from any machine that
//! sees the folder (a shared filesystem included):
//!
//! - `engine.json`: the engine process (pid, host, user) with a heartbeat its command poller
//!   rewrites every few seconds, and the latest samples/s;
//! - `controller.json`: the one console (or script) allowed to send commands, as a lease with
//!   its own heartbeat.
//!
//! A holder is alive when it is on this host and its pid exists, or on another host and its
//! heartbeat is recent: the OS lock (`lock`) only proves liveness on the machine that holds it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::atomic::write_atomic;

/// File of the engine process's identity and heartbeat.
pub const ENGINE_FILE: &str = "engine.json";
/// File of the controller lease.
pub const CONTROLLER_FILE: &str = "controller.json";

/// How often the engine and a controller rewrite their heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// A heartbeat older than this (from another host, whose pids cannot be checked) is stale: many
/// missed beats, so a slow shared filesystem does not make a live engine look dead.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// A process somewhere: who runs it and when it last said it was alive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub user: String,
    pub since: DateTime<Utc>,
    pub heartbeat: DateTime<Utc>,
    /// Training speed at the latest progress report (engine only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_per_sec: Option<f64>,
}

impl Holder {
    /// This process, now.
    pub fn me() -> Holder {
        let now = Utc::now();
        Holder {
            pid: std::process::id(),
            host: hostname(),
            user: username(),
            since: now,
            heartbeat: now,
            samples_per_sec: None,
        }
    }

    /// `user@host (pid N)`.
    pub fn who(&self) -> String {
        format!("{}@{} (pid {})", self.user, self.host, self.pid)
    }

    /// This very process.
    pub fn is_me(&self) -> bool {
        self.pid == std::process::id() && self.host == hostname()
    }

    /// Alive: on this host, its pid exists; elsewhere, its heartbeat is recent.
    pub fn is_alive(&self) -> bool {
        if self.host == hostname() {
            return pid_alive(self.pid);
        }
        let age = Utc::now().signed_duration_since(self.heartbeat);
        age.to_std().map_or(true, |age| age < STALE_AFTER)
    }
}

/// Whether a process with this pid exists on this machine.
pub fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 only checks that the process exists (and may be signalled).
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// The machine's host name (`unknown` if it cannot be read).
pub fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
    }
    "unknown".to_string()
}

fn username() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| {
            #[cfg(unix)]
            {
                // SAFETY: getuid has no preconditions.
                format!("uid{}", unsafe { libc::getuid() })
            }
            #[cfg(not(unix))]
            "unknown".to_string()
        })
}

fn read_holder(path: &Path) -> Option<Holder> {
    let text = crate::atomic::read_text_limited(path, crate::atomic::JSON_LIMIT).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_holder(path: &Path, holder: &Holder) -> Result<()> {
    write_atomic(path, &serde_json::to_vec_pretty(holder)?)
}

/// The engine process of the session in `dir`, as its last heartbeat describes it.
pub fn read_engine(dir: &Path) -> Option<Holder> {
    read_holder(&dir.join(ENGINE_FILE))
}

/// Rewrites `engine.json` with this process and a fresh heartbeat.
pub fn write_engine(dir: &Path, engine: &Holder) -> Result<()> {
    write_holder(&dir.join(ENGINE_FILE), engine)
}

/// The live controller of the session in `dir`, if any (a stale lease is no controller).
pub fn controller(dir: &Path) -> Option<Holder> {
    read_holder(&dir.join(CONTROLLER_FILE)).filter(Holder::is_alive)
}

/// The right to send commands to a session, held by one console at a time. Released (the file
/// removed) on drop; a holder that died leaves a lease the next taker sees as stale.
#[derive(Debug)]
pub struct ControllerLease {
    path: PathBuf,
    holder: Holder,
}

impl ControllerLease {
    /// Takes the lease of `dir` or fails naming who holds it. A stale lease (its holder dead,
    /// or silent for [`STALE_AFTER`] on another host) is taken over.
    pub fn acquire(dir: &Path) -> Result<ControllerLease> {
        let path = dir.join(CONTROLLER_FILE);
        let me = Holder::me();
        for _ in 0..3 {
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path);
            match created {
                Ok(file) => {
                    drop(file);
                    write_holder(&path, &me)?;
                    return Ok(ControllerLease { path, holder: me });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    match read_holder(&path) {
                        Some(h) if h.is_alive() => bail!(
                            "the session is controlled by {} since {} (a second controller is refused; attach with --view to watch)",
                            h.who(),
                            h.since.format("%Y-%m-%d %H:%M:%S UTC")
                        ),
                        // Dead holder or a torn file: take it over.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()))
                }
            }
        }
        bail!("cannot take the controller lease {}", path.display())
    }

    /// Rewrites the heartbeat (a holder on another host stays alive for [`STALE_AFTER`]).
    pub fn beat(&mut self) -> Result<()> {
        self.holder.heartbeat = Utc::now();
        write_holder(&self.path, &self.holder)
    }

    pub fn holder(&self) -> &Holder {
        &self.holder
    }
}

impl Drop for ControllerLease {
    fn drop(&mut self) {
        // Only our own lease: a taker may have replaced a lease it judged stale.
        if read_holder(&self.path)
            .is_some_and(|h| h.pid == self.holder.pid && h.host == self.holder.host)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether the engine of a session that its status calls running (or paused) is alive.
#[derive(Clone, Debug, PartialEq)]
pub enum Liveness {
    /// Its process is alive (on this host: the pid, or the session's OS lock; elsewhere: a
    /// recent heartbeat).
    Alive(Option<Holder>),
    /// No process: the run was killed or its machine went down.
    Dead(Option<Holder>),
}

/// Probes the engine of the session in `dir`; `locked` is whether the session's OS lock is
/// held (known true only on the lock's host).
pub fn probe(dir: &Path, locked: bool) -> Liveness {
    let engine = read_engine(dir);
    let alive = match &engine {
        _ if locked => true,
        Some(h) => h.is_alive() && h.host != hostname(),
        None => false,
    };
    if alive {
        Liveness::Alive(engine)
    } else {
        Liveness::Dead(engine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_controller_is_refused_with_the_holder_named_and_a_dead_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let first = ControllerLease::acquire(dir.path()).unwrap();
        let err = ControllerLease::acquire(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&first.holder().who()), "{err}");
        drop(first);
        assert!(!dir.path().join(CONTROLLER_FILE).exists());
        // A lease left by a process that is gone (this host, a pid that does not exist)...
        let mut dead = Holder::me();
        dead.pid = u32::MAX - 1;
        write_holder(&dir.path().join(CONTROLLER_FILE), &dead).unwrap();
        assert!(controller(dir.path()).is_none());
        // ...and one from another host, silent for longer than STALE_AFTER.
        let lease = ControllerLease::acquire(dir.path()).unwrap();
        drop(lease);
        let mut silent = Holder::me();
        silent.host = "elsewhere".into();
        silent.heartbeat = Utc::now() - chrono::Duration::seconds(600);
        write_holder(&dir.path().join(CONTROLLER_FILE), &silent).unwrap();
        assert!(ControllerLease::acquire(dir.path()).is_ok());
        // A recent heartbeat from another host is a live holder.
        let mut live = Holder::me();
        live.host = "elsewhere".into();
        write_holder(&dir.path().join(CONTROLLER_FILE), &live).unwrap();
        let err = ControllerLease::acquire(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("@elsewhere"), "{err}");
    }
}
