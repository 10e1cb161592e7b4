//! A child process with a pseudo-terminal as its standard streams, for the tests that drive the
//! console as a user's terminal would (SIGHUP to the console, an attached console holding the
//! controller lease).
// Each test file uses a part of it.
#![allow(dead_code)]

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A console running in a 40 x 120 pseudo-terminal.
pub struct PtyChild {
    pub child: Child,
    /// The terminal's end (the reader thread reads a copy of it until [`PtyChild::close`]).
    pub master: OwnedFd,
    /// Everything the child wrote to the terminal so far.
    pub output: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl PtyChild {
    /// Closes the terminal's end for good, as sshd does when the link drops: the reader
    /// thread lets go of its copy first, so no descriptor of the master stays open.
    pub fn close(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let null = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        drop(std::mem::replace(&mut self.master, null));
    }
}

/// Spawns `cmd` with a new pseudo-terminal as stdin, stdout and stderr, as the leader of a new
/// session, with `TERM=xterm-256color`. A thread drains the terminal, as a terminal would, so
/// the console never blocks on a full pty.
pub fn spawn_in_pty(cmd: &mut Command) -> PtyChild {
    spawn_in_pty_as(cmd, false)
}

/// [`spawn_in_pty`], and with `controlling` the terminal becomes the child's controlling
/// terminal, as a login shell's is: closing the master then also sends the child SIGHUP from
/// the kernel. Without it no signal comes, and the child learns of the hangup only from the
/// terminal itself.
pub fn spawn_in_pty_as(cmd: &mut Command, controlling: bool) -> PtyChild {
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
    // Neither end may leak into a child (this one, or another test's spawned meanwhile): a
    // child holding a copy of the master would keep the terminal alive after `close`.
    for fd in [master, slave] {
        // SAFETY: sets the close-on-exec flag of a descriptor openpty just opened.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    // SAFETY: both descriptors were just opened by openpty and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    cmd.env("TERM", "xterm-256color")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: setsid only makes the child a session leader, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if controlling && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let sink = output.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    // Waits for output a little at a time, so that `close` can take the copy away.
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stopping.load(Ordering::SeqCst) {
            let mut p = libc::pollfd {
                fd: reader.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, for at most 20 ms.
            if unsafe { libc::poll(&mut p, 1, 20) } <= 0 || p.revents & libc::POLLIN == 0 {
                continue;
            }
            match reader.read(&mut buf) {
                Ok(n) if n > 0 => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
    });
    PtyChild {
        child,
        master,
        output,
        stop,
        reader: Some(reader),
    }
}
