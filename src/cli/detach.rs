//! `run --detach` / `resume --detach` / `fork --detach`: the engine as its own background
//! process. The binary re-executes itself headless in a new session (no controlling terminal,
//! so no SIGHUP when the terminal that started it goes), with standard input from `/dev/null`;
//! once the session folder exists the child names it on a pipe and points its standard output
//! and error at the folder's `output.log`; the parent prints the id and returns.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context};

/// Set in the detached child's environment.
pub const DETACHED_ENV: &str = "CROSSADAPT_DETACHED";
/// The line the child writes on its standard error once its session exists.
const MARKER: &str = "crossadapt-detached-session ";

/// Starts this same command line without `--detach`, headless, as a background process, and
/// returns once it has opened its session (printing the id), or fails with what it printed.
pub fn spawn_detached() -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the crossadapt executable")?;
    let args: Vec<OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--detach" && a != "--headless")
        .collect();
    let mut cmd = Command::new(exe);
    cmd.args(&args)
        .arg("--headless")
        .env(DETACHED_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid only makes the child the leader of a new session (no controlling
        // terminal), between fork and exec; it is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().context("cannot start the detached engine")?;
    let stderr = child
        .stderr
        .take()
        .context("the detached engine has no stderr pipe")?;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix(MARKER) {
            let (id, dir) = rest.split_once(' ').unwrap_or((rest, ""));
            crate::say_out!("{id}\n");
            crate::say_err!(
                "session {id} runs detached (pid {}); its output goes to {}/{}",
                child.id(),
                dir,
                crate::signals::OUTPUT_FILE
            );
            crate::say_err!("follow it with `crossadapt attach {id}`, command it with `crossadapt ctl {id} ...`");
            return Ok(());
        }
        crate::say_err!("{line}");
    }
    let status = child
        .wait()
        .context("cannot wait for the detached engine")?;
    bail!("the detached engine exited ({status}) before its session started")
}

/// In the detached child (see [`DETACHED_ENV`]): names the session to the parent, then
/// sends standard output and error to the session's `output.log`, standard input from
/// `/dev/null`. Once per process (a resume may open its session more than once).
pub fn become_detached(dir: &Path, id: &str) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if std::env::var_os(DETACHED_ENV).is_none() || DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    crate::say_err!("{MARKER}{id} {}", dir.display());
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(crate::signals::OUTPUT_FILE));
        let null = std::fs::File::open("/dev/null");
        if let (Ok(out), Ok(null)) = (out, null) {
            // SAFETY: dup2 atomically replaces descriptors 0, 1 and 2 with copies of files that
            // stay open for the calls; their own descriptors are closed afterwards.
            unsafe {
                libc::dup2(null.as_raw_fd(), 0);
                libc::dup2(out.as_raw_fd(), 1);
                libc::dup2(out.as_raw_fd(), 2);
            }
        }
    }
}
