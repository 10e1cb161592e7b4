//! The real terminal: raw mode and the alternate screen in, restored on the way out and on a
//! panic; logs go to a file, never to the screen.

use std::io::stdout;
use std::path::Path;
use std::sync::Arc;

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use ratatui::DefaultTerminal;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};

type Hook = Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync + 'static>;

/// The terminal while the console runs; [`Session::leave`] (or drop) restores it.
pub struct Session {
    pub terminal: DefaultTerminal,
    mouse: bool,
    original_hook: Option<Hook>,
}

/// Raw mode, alternate screen, optional mouse capture, and a panic hook that restores all of
/// it (and logs the panic) before the usual panic message.
pub fn enter(mouse: bool) -> anyhow::Result<Session> {
    let original: Hook = Arc::from(std::panic::take_hook());
    let chained = original.clone();
    std::panic::set_hook(Box::new(move |info| chained(info)));
    // ratatui installs a hook that restores the terminal, chained to the one above.
    let terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            let o = original.clone();
            std::panic::set_hook(Box::new(move |info| o(info)));
            anyhow::bail!("cannot open the console on this terminal: {e}");
        }
    };
    let restoring = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if mouse {
            let _ = execute!(stdout(), DisableMouseCapture);
        }
        tracing::error!("console panic: {info}");
        restoring(info);
    }));
    if mouse {
        let _ = execute!(stdout(), EnableMouseCapture);
    }
    Ok(Session {
        terminal,
        mouse,
        original_hook: Some(original),
    })
}

impl Session {
    /// Restores the terminal and the panic hook the process had before.
    pub fn leave(mut self) {
        self.restore();
    }

    fn restore(&mut self) {
        if let Some(hook) = self.original_hook.take() {
            if self.mouse {
                let _ = execute!(stdout(), DisableMouseCapture);
            }
            let _ = ratatui::try_restore();
            if !std::thread::panicking() {
                std::panic::set_hook(Box::new(move |info| hook(info)));
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Logs to `dir/console.log` (level from `CROSSADAPT_LOG`, default `info`). Returns the guard
/// that flushes the file; `None` when the file cannot be opened or a logger is already set.
pub fn init_logging(dir: &Path) -> Option<WorkerGuard> {
    std::fs::create_dir_all(dir).ok()?;
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::NEVER)
        .filename_prefix("console.log")
        .build(dir)
        .ok()?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("CROSSADAPT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}
