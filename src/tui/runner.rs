//! The event loop: engine records (live channel or paced replay), terminal input and a redraw
//! throttle, merged with `tokio::select!`. Generic over the ratatui backend and the input
//! stream, so tests drive it with a `TestBackend` and scripted keys.

use std::time::{Duration, Instant};

use crossterm::event::Event;
use futures::{Stream, StreamExt};
use ratatui::backend::Backend;
use ratatui::Terminal;

use super::action::{Effect, Seek};
use super::app::App;
use super::theme::Theme;
use super::{ConsoleExit, ConsoleSource};
use crate::engine::{EngineCommand, EngineEvent, Record, Stage};
use crate::session::replay::MAX_REPLAY_GAP;
use crate::signals::SignalState;

/// Records folded per wake-up before the screen gets a chance to redraw.
const BATCH: usize = 2048;

/// Shortest gap between redraws caused by engine records alone. Keys redraw at the full frame
/// rate; records (about ten a second from the default run) only need a few frames a second, and
/// every frame the console draws is taken from the engine's two compute threads on a 2-core
/// machine (measured: README, console overhead).
const RECORD_FRAME_GAP: Duration = Duration::from_millis(250);

/// How often the console looks for a signal of the process.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Where records come from.
enum Feed {
    Live {
        events: tokio::sync::mpsc::UnboundedReceiver<Record>,
        commands: std::sync::mpsc::Sender<EngineCommand>,
        open: bool,
        /// The last pause / resume this console sent was a pause (the engine may not have
        /// logged it yet).
        pause_sent: bool,
        /// The engine is another process (attach): leaving the console never stops it.
        remote: bool,
        /// A read-only viewer: commands are not sent, this note says why.
        read_only: Option<String>,
    },
    Replay {
        records: Vec<Record>,
        next: usize,
        due: Option<Instant>,
    },
}

/// Runs the console until the operator quits. A live session gets `Stop` on quit (and on any
/// error of the loop), so the engine checkpoints and stays resumable.
pub async fn run_loop<B, I>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    theme: &Theme,
    source: ConsoleSource,
    input: I,
    fps: u32,
) -> anyhow::Result<ConsoleExit>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    I: Stream<Item = std::io::Result<Event>> + Unpin,
{
    run_loop_with_signals(terminal, app, theme, source, input, fps, None).await
}

/// [`run_loop`] that also closes on the process's signals: SIGTERM / SIGINT send `Stop` to a
/// live engine; SIGHUP, or a terminal that can no longer be read or drawn on, leaves it running
/// headless (see `crate::signals`).
pub async fn run_loop_with_signals<B, I>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    theme: &Theme,
    source: ConsoleSource,
    input: I,
    fps: u32,
    signals: Option<&SignalState>,
) -> anyhow::Result<ConsoleExit>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    I: Stream<Item = std::io::Result<Event>> + Unpin,
{
    let mut feed = match source {
        ConsoleSource::Live { events, commands } => Feed::Live {
            events,
            commands,
            open: true,
            pause_sent: false,
            remote: false,
            read_only: None,
        },
        ConsoleSource::Attached {
            events,
            commands,
            read_only,
        } => {
            // Before the first frame, so the header says it before any key is refused.
            app.read_only = read_only.clone();
            Feed::Live {
                events,
                commands,
                open: true,
                pause_sent: false,
                remote: true,
                read_only,
            }
        }
        ConsoleSource::Replay { records, speed } => {
            if let Some(p) = &mut app.playback {
                p.speed = speed;
                p.total = records.len();
            }
            Feed::Replay {
                records,
                next: 0,
                due: Some(Instant::now()),
            }
        }
    };
    let result = drive(terminal, app, theme, &mut feed, input, fps, signals).await;
    if result.is_err() {
        if let Feed::Live {
            commands,
            remote: false,
            ..
        } = &feed
        {
            let _ = commands.send(EngineCommand::Stop);
        }
    }
    result
}

async fn drive<B, I>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    theme: &Theme,
    feed: &mut Feed,
    mut input: I,
    fps: u32,
    signals: Option<&SignalState>,
) -> anyhow::Result<ConsoleExit>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    I: Stream<Item = std::io::Result<Event>> + Unpin,
{
    let frame_gap = Duration::from_secs_f64(1.0 / f64::from(fps.clamp(1, 60)));
    let record_gap = frame_gap.max(RECORD_FRAME_GAP);
    let mut dirty = true;
    // Dirty because of a key or the mouse: redraw at the full frame rate.
    let mut urgent = true;
    let mut last_draw: Option<Instant> = None;
    let mut input_open = true;
    let mut signal_tick = tokio::time::interval(SIGNAL_POLL);
    loop {
        if let Some(exit) = signals.and_then(|s| on_signal(s, app, feed)) {
            return Ok(exit);
        }
        let now = Instant::now();
        let gap = if urgent { frame_gap } else { record_gap };
        if dirty && last_draw.is_none_or(|t| now >= t + gap) {
            if let Err(e) = terminal.draw(|f| super::ui::render(f, app, theme)) {
                // A terminal that cannot be drawn on is a lost terminal: the run goes on
                // headless, as after SIGHUP, instead of stopping.
                let e = anyhow::Error::new(e);
                match signals {
                    Some(s) => {
                        s.hang_up(&format!("cannot draw the console ({e:#})"));
                        continue;
                    }
                    None => return Err(e),
                }
            }
            if let Ok(size) = terminal.size() {
                app.size = (size.width, size.height);
            }
            dirty = false;
            urgent = false;
            last_draw = Some(now);
        }
        let gap = if urgent { frame_gap } else { record_gap };
        let draw_at = last_draw
            .filter(|_| dirty)
            .map(|t| tokio::time::Instant::from_std(t + gap));
        let (live_open, replay_due) = match feed {
            Feed::Live { open, .. } => (*open, None),
            Feed::Replay { due, .. } => (false, due.map(tokio::time::Instant::from_std)),
        };
        tokio::select! {
            ev = input.next(), if input_open => match ev {
                Some(Ok(ev)) => {
                    let effect = match ev {
                        Event::Key(k) => app.on_key(k),
                        Event::Mouse(m) => app.on_mouse(m),
                        _ => None,
                    };
                    if let Some(effect) = effect {
                        if let Some(exit) = carry_out(effect, app, feed) {
                            return Ok(exit);
                        }
                    }
                    dirty = true;
                    urgent = true;
                }
                Some(Err(e)) => match signals {
                    // As a failed draw: the terminal is lost, the run goes on headless.
                    Some(s) => s.hang_up(&format!("cannot read the terminal ({e})")),
                    None => return Err(anyhow::anyhow!("cannot read the terminal: {e}")),
                },
                None => input_open = false,
            },
            rec = recv(feed), if live_open => {
                match rec {
                    Some(rec) => {
                        app.apply(&rec);
                        if let Feed::Live { events, .. } = feed {
                            for _ in 0..BATCH {
                                match events.try_recv() {
                                    Ok(r) => app.apply(&r),
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                    None => {
                        if let Feed::Live { open, .. } = feed {
                            *open = false;
                        }
                        tracing::info!("the engine closed its event stream");
                        app.note_engine_gone();
                    }
                }
                dirty = true;
            },
            _ = sleep_until(replay_due), if replay_due.is_some() => {
                play_due(app, feed);
                dirty = true;
            },
            _ = sleep_until(draw_at), if draw_at.is_some() => {},
            _ = signal_tick.tick(), if signals.is_some() => {},
        }
        if let Feed::Replay { due, .. } = feed {
            // Pausing (or resuming) the playback takes effect at once.
            let paused = app.playback.as_ref().is_some_and(|p| p.paused);
            if paused {
                *due = None;
            } else if due.is_none() {
                schedule(app, feed, Instant::now());
            }
        }
    }
}

/// The console's exit on a signal of the process, if one came.
fn on_signal(signals: &SignalState, app: &App, feed: &mut Feed) -> Option<ConsoleExit> {
    if signals.stop_requested() {
        if let Feed::Live {
            commands,
            remote: false,
            ..
        } = feed
        {
            tracing::info!("SIGTERM/SIGINT: stopping the engine at its next safe point");
            let _ = commands.send(EngineCommand::Stop);
        }
        return Some(ConsoleExit::Signal);
    }
    if !signals.hung_up() {
        return None;
    }
    // An attached console just goes: the engine is its own process.
    if let Feed::Live {
        commands,
        pause_sent,
        remote: false,
        ..
    } = feed
    {
        let pausing = *pause_sent
            || matches!(
                app.live().lifecycle,
                crate::protocol::Lifecycle::Paused | crate::protocol::Lifecycle::Pausing
            );
        if pausing {
            // No one is left to resume it: stop at the pause's checkpoint instead.
            tracing::info!("SIGHUP while paused: stopping the engine at its checkpoint");
            let _ = commands.send(EngineCommand::Stop);
        } else {
            tracing::info!("SIGHUP: the engine continues headless");
            // A later SIGTERM / SIGINT reaches the engine through the signal thread.
            signals.connect_engine(commands.clone());
        }
    }
    Some(ConsoleExit::Hangup)
}

async fn recv(feed: &mut Feed) -> Option<Record> {
    match feed {
        Feed::Live { events, .. } => events.recv().await,
        Feed::Replay { .. } => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// An effect of a key. Returns the exit when the console should close.
fn carry_out(effect: Effect, app: &mut App, feed: &mut Feed) -> Option<ConsoleExit> {
    match (effect, feed) {
        (Effect::Quit, Feed::Live { remote: true, .. }) => {
            tracing::info!("operator quit: the attached engine keeps running");
            Some(ConsoleExit::Quit)
        }
        (
            Effect::Engine(_),
            Feed::Live {
                read_only: Some(why),
                ..
            },
        ) => {
            app.note(
                crate::tui::model::LogKind::Warning,
                format!("not sent: {why}"),
            );
            None
        }
        (Effect::Quit, Feed::Live { commands, .. }) => {
            if app.live().lifecycle == crate::protocol::Lifecycle::Done {
                return Some(ConsoleExit::Finished);
            }
            tracing::info!("operator quit: stopping the engine");
            let _ = commands.send(EngineCommand::Stop);
            Some(ConsoleExit::Quit)
        }
        (Effect::Quit, Feed::Replay { .. }) => Some(ConsoleExit::Quit),
        (
            Effect::Engine(cmd),
            Feed::Live {
                commands,
                pause_sent,
                ..
            },
        ) => {
            tracing::info!("operator command: {cmd:?}");
            match cmd {
                EngineCommand::Pause => *pause_sent = true,
                EngineCommand::Resume => *pause_sent = false,
                _ => {}
            }
            if commands.send(cmd).is_err() {
                app.note_engine_gone();
            }
            None
        }
        (Effect::Seek(seek), feed @ Feed::Replay { .. }) => {
            seek_to(app, feed, seek);
            None
        }
        _ => None,
    }
}

/// Plays every record that is due, then schedules the next.
fn play_due(app: &mut App, feed: &mut Feed) {
    let Feed::Replay { records, next, .. } = feed else {
        return;
    };
    let now = Instant::now();
    let mut played = 0;
    while *next < records.len() && played < BATCH {
        app.apply(&records[*next]);
        *next += 1;
        played += 1;
        // Records at the same engine time play together.
        if *next < records.len() && records[*next].t > records[*next - 1].t {
            break;
        }
    }
    schedule(app, feed, now);
}

fn schedule(app: &App, feed: &mut Feed, from: Instant) {
    let Feed::Replay { records, next, due } = feed else {
        return;
    };
    let Some(p) = app.playback.as_ref().filter(|p| !p.paused) else {
        *due = None;
        return;
    };
    if *next >= records.len() {
        *due = None;
        return;
    }
    let prev = if *next == 0 {
        records[0].t
    } else {
        records[*next - 1].t
    };
    let cap = MAX_REPLAY_GAP.as_secs_f64() / p.speed;
    let wait = ((records[*next].t - prev) / p.speed).clamp(0.0, cap);
    let wait = if wait.is_finite() { wait } else { 0.0 };
    // Never a panic on an absurd speed: a wait that does not fit a Duration is the longest gap.
    *due = Some(from + Duration::try_from_secs_f64(wait).unwrap_or(MAX_REPLAY_GAP));
}

fn is_day_start(r: &Record) -> bool {
    matches!(
        r.event,
        EngineEvent::StageStarted {
            stage: Stage::Online,
            ..
        }
    )
}

/// Jumps the playback to the start of the next (or previous) online day.
fn seek_to(app: &mut App, feed: &mut Feed, seek: Seek) {
    let Feed::Replay { records, next, .. } = feed else {
        return;
    };
    match seek {
        Seek::NextDay => {
            let target = records[*next..]
                .iter()
                .position(is_day_start)
                .map_or(records.len(), |i| *next + i + 1);
            for r in &records[*next..target] {
                app.apply(r);
            }
            *next = target;
        }
        Seek::PrevDay => {
            let starts: Vec<usize> = (0..*next).filter(|&i| is_day_start(&records[i])).collect();
            // Just past a day's start: go to the day before it.
            let target = match starts.as_slice() {
                [] => 0,
                [.., before, last] if *next <= last + 2 => before + 1,
                [last] if *next <= last + 2 => 0,
                [.., last] => last + 1,
            };
            app.reset_model();
            for r in &records[..target] {
                app.apply(r);
            }
            *next = target;
        }
    }
    schedule(app, feed, Instant::now());
}
