//! A child process with a pseudo-terminal as its standard streams, for the tests that drive the
//! console as a user's terminal would (SIGHUP to the console, an attached console holding the
//! controller lease).
// Each test file uses a part of it.
#![allow(dead_code)]

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A console running in a 40 x 120 pseudo-terminal.
pub struct PtyChild {
    pub child: Child,
    /// The terminal's end: dropping it hangs the terminal up (SIGHUP to the console).
    pub master: OwnedFd,
    /// Everything the child wrote to the terminal so far.
    pub output: Arc<Mutex<Vec<u8>>>,
}

/// Spawns `cmd` with a new pseudo-terminal as stdin, stdout and stderr, as the leader of a new
/// session, with `TERM=xterm-256color`. A thread drains the terminal, as a terminal would, so
/// the console never blocks on a full pty.
pub fn spawn_in_pty(cmd: &mut Command) -> PtyChild {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new descriptors into the two integers; the size is read only.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both descriptors were just opened by openpty and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    cmd.env("TERM", "xterm-256color")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: setsid only makes the child a session leader, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let sink = output.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    PtyChild {
        child,
        master,
        output,
    }
}
