//! The `lock` file: an exclusive OS lock held by the one process that writes a session.
//!
//! The lock is an advisory `flock`-style lock on the open file (released by the OS when the
//! process dies, even by SIGKILL), and the file holds the owner's pid for the error message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// File name of the lock inside a session directory.
pub const LOCK_FILE: &str = "lock";

/// An exclusive hold on a session directory, released on drop.
#[derive(Debug)]
pub struct SessionLock {
    _file: File,
}

impl SessionLock {
    /// Takes the lock of `dir` or fails with "session ID is in use by another crossadapt
    /// process (pid N)".
    pub fn acquire(dir: &Path, id: &str) -> Result<SessionLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                let owner = owner.trim();
                let pid = if owner.is_empty() { "unknown" } else { owner };
                bail!("session {id} is in use by another crossadapt process (pid {pid})");
            }
            Err(TryLockError::Error(e)) => {
                bail!("cannot lock {}: {e}", path.display())
            }
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .with_context(|| format!("cannot write the lock file {}", path.display()))?;
        Ok(SessionLock { _file: file })
    }

    /// Whether some process holds the lock of `dir` now (a live run); never blocks.
    pub fn is_held(dir: &Path) -> bool {
        let Ok(file) = File::open(dir.join(LOCK_FILE)) else {
            return false;
        };
        matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
    }
}
