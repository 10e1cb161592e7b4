//! The operations console: a live (or replayed) view of one session's event stream, with the
//! operator's controls.
//!
//! - [`App`] holds the state; [`App::apply`] folds engine [`Record`]s in and [`App::on_key`]
//!   turns keys into view changes and [`Effect`]s (engine commands, replay seeks, quit).
//! - `ui/` draws it: one small pure function per panel.
//! - [`runner::run_loop`] merges records, terminal input and a redraw throttle; it is generic
//!   over the ratatui backend and the input stream, so tests run it headless.
//! - [`Keymap`] and [`Theme`] come from TOML (built-in defaults, `keys.toml`, `themes/*.toml`).

use std::path::PathBuf;

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use crate::protocol::{EngineCommand, Record};

pub mod action;
pub mod app;
pub mod compare;
pub mod control;
pub mod fixture;
pub mod keymap;
pub mod model;
pub mod runner;
pub mod terminal;
pub mod theme;
pub mod ui;

pub use action::{Action, Effect, Mode};
pub use app::App;
pub use keymap::{keymap_text, Keymap};
pub use theme::Theme;

/// How the console looks and listens.
#[derive(Clone, Debug)]
pub struct ConsoleOptions {
    /// A built-in theme name (`default`, `light`, `high-contrast`, `colorblind`) or a path to a
    /// `.toml` theme file.
    pub theme: String,
    /// A `keys.toml`; `None` reads `keys.toml` from the crossadapt config dir when present.
    pub keymap_file: Option<PathBuf>,
    /// Redraws per second at most.
    pub fps: u32,
    pub mouse: bool,
    /// No colours at all (`NO_COLOR`).
    pub no_color: bool,
    /// Where `console.log` goes.
    pub log_dir: PathBuf,
    /// The process's SIGHUP / SIGTERM / SIGINT, when it handles them (see `crate::signals`):
    /// the console closes on them, restoring the terminal.
    pub signals: Option<crate::signals::SignalState>,
}

/// Where the console's records come from.
pub enum ConsoleSource {
    Live {
        events: tokio::sync::mpsc::UnboundedReceiver<Record>,
        commands: std::sync::mpsc::Sender<EngineCommand>,
    },
    Replay {
        records: Vec<Record>,
        speed: f64,
    },
    /// An engine in another process (`crossadapt attach`): quitting or a signal closes the
    /// console and leaves the engine running; only the `stop` key stops it.
    Attached {
        events: tokio::sync::mpsc::UnboundedReceiver<Record>,
        commands: std::sync::mpsc::Sender<EngineCommand>,
        /// `Some(why)`: a read-only viewer (e.g. who holds the controller lease); commands are
        /// refused with this note.
        read_only: Option<String>,
    },
}

/// How the console closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleExit {
    /// The operator quit; a live engine was sent `Stop` (the session is resumable).
    Quit,
    /// The operator closed the console after the run finished.
    Finished,
    /// SIGTERM or SIGINT: a live engine was sent `Stop`.
    Signal,
    /// SIGHUP: the terminal is gone; a live engine keeps running headless (or was stopped at
    /// its checkpoint if it was paused or pausing, with no one left to resume it).
    Hangup,
}

/// Checks the theme and the keymap of `opts` (one sentence naming file and problem on error),
/// so a caller can refuse a bad flag before it creates a session or starts an engine.
pub fn validate_options(opts: &ConsoleOptions) -> anyhow::Result<()> {
    Theme::load(&opts.theme, opts.no_color)?;
    Keymap::load(Keymap::resolve_path(opts.keymap_file.as_deref()).as_deref())?;
    Ok(())
}

/// Opens the console on the real terminal and runs it until the operator quits. A bad theme
/// or keymap fails before the screen changes (and stops a live engine).
pub fn run_console(source: ConsoleSource, opts: ConsoleOptions) -> anyhow::Result<ConsoleExit> {
    let stop = |source: &ConsoleSource| {
        if let ConsoleSource::Live { commands, .. } = source {
            let _ = commands.send(EngineCommand::Stop);
        }
    };
    let prepared = (|| -> anyhow::Result<_> {
        let theme = Theme::load(&opts.theme, opts.no_color)?;
        let keys = Keymap::resolve_path(opts.keymap_file.as_deref());
        let keymap = Keymap::load(keys.as_deref())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok((theme, keymap, runtime))
    })();
    let (theme, keymap, runtime) = match prepared {
        Ok(p) => p,
        Err(e) => {
            stop(&source);
            return Err(e);
        }
    };
    let _log = terminal::init_logging(&opts.log_dir);
    let mode = match source {
        ConsoleSource::Live { .. } | ConsoleSource::Attached { .. } => Mode::Live,
        ConsoleSource::Replay { .. } => Mode::Replay,
    };
    let mut app = App::new(mode, keymap);
    if let ConsoleSource::Attached {
        read_only: Some(why),
        ..
    } = &source
    {
        app.note(model::LogKind::Warning, why.clone());
    }
    let mut session = match terminal::enter(opts.mouse) {
        Ok(s) => s,
        Err(e) => {
            stop(&source);
            return Err(e);
        }
    };
    if let Some(signals) = &opts.signals {
        signals.set_console(true);
    }
    tracing::info!(?mode, theme = %theme.name, "console opened");
    let input = crossterm::event::EventStream::new();
    let result = runtime.block_on(runner::run_loop_with_signals(
        &mut session.terminal,
        &mut app,
        &theme,
        source,
        input,
        opts.fps,
        opts.signals.as_ref(),
    ));
    session.leave();
    if let Some(signals) = &opts.signals {
        signals.set_console(false);
    }
    tracing::info!("console closed: {result:?}");
    result
}

/// A live-mode console with `records` folded in (README captures, tests).
pub fn app_from_records(records: &[Record]) -> App {
    App::from_records(Mode::Live, records)
}

/// The screen of `app` at `width` x `height` as plain text, one line per row (trailing spaces
/// trimmed): for README captures and snapshot tests.
pub fn render_to_string(app: &App, theme: &Theme, width: u16, height: u16) -> String {
    buffer_text(&render_to_buffer(app, theme, width, height))
}

/// The screen of `app` at `width` x `height` with every cell's symbol and style: for styled
/// snapshot tests (themes, `NO_COLOR`, focus and badge colours).
pub fn render_to_buffer(
    app: &App,
    theme: &Theme,
    width: u16,
    height: u16,
) -> ratatui::buffer::Buffer {
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(never) => match never {},
    };
    let mut app = app.clone();
    app.size = (width, height);
    if let Err(never) = terminal.draw(|f| ui::render(f, &app, theme)) {
        match never {}
    }
    terminal.backend().buffer().clone()
}

/// A buffer's symbols, row by row.
pub fn buffer_text(buf: &ratatui::buffer::Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
