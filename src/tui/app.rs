//! The console's state and its pure reducer: records and keys in, state (and effects) out.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, MouseButton, MouseEvent, MouseEventKind};

use super::action::{Action, Effect, Mode, Seek};
use super::control::{Control, Edit};
use super::keymap::Keymap;
use super::model::{LogKind, Model};
use crate::protocol::{EngineCommand, EngineEvent, Lifecycle, ParamPatch, Record};

/// The panel that takes the arrows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Charts,
    Timeline,
    Drift,
    Controls,
    Log,
}

impl Focus {
    const ORDER: [Focus; 5] = [
        Focus::Charts,
        Focus::Timeline,
        Focus::Drift,
        Focus::Controls,
        Focus::Log,
    ];

    fn shift(self, by: isize) -> Focus {
        let i = Focus::ORDER.iter().position(|f| *f == self).unwrap_or(0) as isize;
        let n = Focus::ORDER.len() as isize;
        Focus::ORDER[((i + by).rem_euclid(n)) as usize]
    }
}

/// Dashboard or end-of-run summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Dashboard,
    Summary,
}

/// The chart shown alone on small terminals (all three show on large ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Auc,
    LogLoss,
    Bias,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Auc, Metric::LogLoss, Metric::Bias];

    pub fn label(self) -> &'static str {
        match self {
            Metric::Auc => "AUC",
            Metric::LogLoss => "LogLoss",
            Metric::Bias => "bias",
        }
    }

    fn shift(self, by: isize) -> Metric {
        let i = Metric::ALL.iter().position(|m| *m == self).unwrap_or(0) as isize;
        Metric::ALL[((i + by).rem_euclid(3)) as usize]
    }
}

/// The header's state badge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Badge {
    Running,
    Paused,
    Frozen,
    Replay,
    Done,
    Error,
}

impl Badge {
    pub fn label(self) -> &'static str {
        match self {
            Badge::Running => "RUNNING",
            Badge::Paused => "PAUSED",
            Badge::Frozen => "FROZEN",
            Badge::Replay => "REPLAY",
            Badge::Done => "DONE",
            Badge::Error => "ERROR",
        }
    }
}

/// Replay transport.
#[derive(Clone, Debug, PartialEq)]
pub struct Playback {
    pub speed: f64,
    pub paused: bool,
    /// Records played so far, of `total`.
    pub position: usize,
    pub total: usize,
}

/// Fastest and slowest replay speeds.
pub const MAX_SPEED: f64 = 256.0;
pub const MIN_SPEED: f64 = 0.125;

/// The console state: the run as the records tell it plus what the operator did to the view.
#[derive(Clone, Debug)]
pub struct App {
    pub mode: Mode,
    pub keymap: Keymap,
    model: Model,
    frozen: Option<Box<Model>>,
    pub focus: Focus,
    pub view: View,
    pub help: bool,
    pub metric: Metric,
    /// Days the charts show, newest last (`None`: every day).
    pub zoom: Option<u32>,
    /// Selected control.
    pub selected: usize,
    pub edit: Option<Edit>,
    /// Changes sent to the engine and not yet confirmed by `ParamsChanged`.
    pub pending: ParamPatch,
    /// Controls whose last change the engine confirmed.
    pub confirmed: Vec<Control>,
    /// Log lines scrolled up from the newest.
    pub log_scroll: usize,
    pub playback: Option<Playback>,
    /// The pause (`true`) or resume (`false`) sent last that the engine has not applied yet.
    pub pause_request: Option<bool>,
    /// Pauses and resumes sent that the engine has not logged yet.
    pause_in_flight: u32,
    /// Last known terminal size (for mouse hit tests).
    pub size: (u16, u16),
    /// The last key was a first press of `stop`: the next one stops the engine.
    pub stop_armed: bool,
    /// `Some(why)`: a console attached read-only (another holds the controller lease, or
    /// `attach --view`); the header says so from the first frame, before a key is refused.
    pub read_only: Option<String>,
}

impl App {
    pub fn new(mode: Mode, keymap: Keymap) -> App {
        App {
            mode,
            keymap,
            model: Model::default(),
            frozen: None,
            focus: Focus::Charts,
            view: View::Dashboard,
            help: false,
            metric: Metric::Auc,
            zoom: None,
            selected: 0,
            edit: None,
            pending: ParamPatch::default(),
            confirmed: Vec::new(),
            log_scroll: 0,
            playback: (mode == Mode::Replay).then_some(Playback {
                speed: 1.0,
                paused: false,
                position: 0,
                total: 0,
            }),
            pause_request: None,
            pause_in_flight: 0,
            size: (80, 24),
            stop_armed: false,
            read_only: None,
        }
    }

    /// A console with `records` folded in (README captures, snapshot tests).
    pub fn from_records(mode: Mode, records: &[Record]) -> App {
        let mut app = App::new(mode, Keymap::default());
        for r in records {
            app.apply(r);
        }
        app
    }

    /// What the panels draw: the frozen snapshot, or the live model.
    pub fn view_model(&self) -> &Model {
        self.frozen.as_deref().unwrap_or(&self.model)
    }

    /// The newest state, frozen or not (controls, badge).
    pub fn live(&self) -> &Model {
        &self.model
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// Forgets the run (a replay seeking backwards refolds from the start); view settings stay.
    pub fn reset_model(&mut self) {
        self.model = Model::default();
        self.frozen = None;
        self.pending = ParamPatch::default();
        self.confirmed.clear();
        self.pause_request = None;
        self.pause_in_flight = 0;
        if let Some(p) = &mut self.playback {
            p.position = 0;
        }
        if self.view == View::Summary {
            self.view = View::Dashboard;
        }
    }

    /// Folds one engine record in.
    pub fn apply(&mut self, rec: &Record) {
        self.model.apply(rec);
        match &rec.event {
            EngineEvent::ParamsChanged { params, .. } if self.mode == Mode::Live => {
                for c in Control::ALL {
                    if let Some(v) = c.in_patch(&self.pending) {
                        if (v - c.get(params)).abs() < 1e-9 {
                            c.set_in(&mut self.pending, None);
                            self.confirmed.retain(|x| *x != c);
                            self.confirmed.push(c);
                        }
                    }
                }
            }
            EngineEvent::ParamsRefused { .. } if self.mode == Mode::Live => {
                self.pending = ParamPatch::default();
            }
            EngineEvent::Operator {
                command: EngineCommand::Pause | EngineCommand::Resume,
                ..
            } if self.mode == Mode::Live => {
                self.pause_in_flight = self.pause_in_flight.saturating_sub(1);
                if self.pause_in_flight == 0 {
                    self.pause_request = None;
                }
            }
            EngineEvent::Finished { .. } => {
                self.view = View::Summary;
                self.edit = None;
            }
            _ => {}
        }
        if let Some(p) = &mut self.playback {
            p.position += 1;
        }
    }

    /// A line in the console's log panel (e.g. why a key did nothing).
    pub fn note(&mut self, kind: LogKind, text: String) {
        self.model.note(kind, text);
    }

    /// Notes in the log that the engine's stream ended without a finish or an error.
    pub fn note_engine_gone(&mut self) {
        if !self.model.lifecycle.is_over() {
            self.model
                .note(LogKind::Warning, "the engine stopped sending events".into());
        }
    }

    /// The state badge.
    pub fn badge(&self) -> Badge {
        let m = &self.model;
        if m.lifecycle == Lifecycle::Failed {
            return Badge::Error;
        }
        if self.frozen.is_some() {
            return Badge::Frozen;
        }
        if m.lifecycle == Lifecycle::Done {
            return Badge::Done;
        }
        match &self.playback {
            Some(p) if p.paused => Badge::Paused,
            Some(_) => Badge::Replay,
            None if m.lifecycle == Lifecycle::Paused => Badge::Paused,
            None => Badge::Running,
        }
    }

    /// A key press: changes the view state and may ask the event loop for an [`Effect`].
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Effect> {
        if key.kind != KeyEventKind::Press {
            return None;
        }
        if let Some(edit) = &mut self.edit {
            match key.code {
                KeyCode::Char(c) if c.is_ascii_digit() || c == '.' => {
                    edit.text.push(c);
                    edit.error = None;
                    return None;
                }
                KeyCode::Backspace => {
                    edit.text.pop();
                    return None;
                }
                _ => {}
            }
        }
        let action = self.keymap.action_for(&key, self.mode)?;
        self.act(action)
    }

    /// Carries out one action.
    pub fn act(&mut self, action: Action) -> Option<Effect> {
        if self.help && !matches!(action, Action::Help | Action::Cancel | Action::Quit) {
            return None;
        }
        // The confirmation of a stop is the very next key.
        let stop_armed = std::mem::take(&mut self.stop_armed);
        match action {
            Action::Pause => return self.toggle_pause(),
            Action::Freeze => {
                self.frozen = match self.frozen.take() {
                    Some(_) => None,
                    None => Some(Box::new(self.model.clone())),
                };
            }
            Action::FocusNext => self.focus = self.focus.shift(1),
            Action::FocusPrev => self.focus = self.focus.shift(-1),
            Action::FocusControls => {
                self.view = View::Dashboard;
                self.focus = Focus::Controls;
            }
            Action::Up => self.vertical(-1),
            Action::Down => self.vertical(1),
            Action::Left => self.horizontal(-1.0),
            Action::Right => self.horizontal(1.0),
            Action::Edit => return self.edit_or_apply(),
            Action::Cancel => {
                if self.help {
                    self.help = false;
                } else {
                    self.edit = None;
                }
            }
            Action::Checkpoint => {
                if self.running() {
                    self.model
                        .note(LogKind::Operator, "checkpoint requested".into());
                    return Some(Effect::Engine(EngineCommand::Checkpoint));
                }
            }
            Action::StopEngine if self.running() => {
                if stop_armed {
                    self.model.note(
                        LogKind::Operator,
                        "stop requested: the engine checkpoints and exits".into(),
                    );
                    return Some(Effect::Engine(EngineCommand::Stop));
                }
                self.stop_armed = true;
                let key = self.keymap.label(Action::StopEngine);
                self.model.note(
                    LogKind::Warning,
                    format!("press {key} again to stop the engine (it stays resumable); any other key cancels"),
                );
            }
            Action::StopEngine => {}
            Action::ZoomIn => {
                let w = self.window();
                self.zoom = Some(w.div_ceil(2).max(2).min(w.max(2)));
            }
            Action::ZoomOut => {
                let span = self.day_span();
                let w = self.window().saturating_mul(2);
                self.zoom = (w < span).then_some(w);
            }
            Action::ZoomReset => self.zoom = None,
            Action::NextMetric => self.metric = self.metric.shift(1),
            Action::Summary => {
                self.view = match self.view {
                    View::Dashboard => View::Summary,
                    View::Summary => View::Dashboard,
                }
            }
            Action::Faster | Action::Slower => {
                if let Some(p) = &mut self.playback {
                    p.speed = if action == Action::Faster {
                        (p.speed * 2.0).min(MAX_SPEED)
                    } else {
                        (p.speed / 2.0).max(MIN_SPEED)
                    };
                }
            }
            Action::NextDay => return Some(Effect::Seek(Seek::NextDay)),
            Action::PrevDay => return Some(Effect::Seek(Seek::PrevDay)),
            Action::Help => self.help = !self.help,
            Action::Quit => return Some(Effect::Quit),
        }
        None
    }

    /// A mouse event: the wheel zooms the charts, a click focuses a panel.
    pub fn on_mouse(&mut self, m: MouseEvent) -> Option<Effect> {
        match m.kind {
            MouseEventKind::ScrollUp => self.act(Action::ZoomIn),
            MouseEventKind::ScrollDown => self.act(Action::ZoomOut),
            MouseEventKind::Down(MouseButton::Left) => {
                let (w, h) = self.size;
                let gate = self.view_model().gates().len();
                if let Some(f) = super::ui::layout::panel_at(w, h, gate, m.column, m.row) {
                    self.focus = f;
                }
                None
            }
            _ => None,
        }
    }

    fn running(&self) -> bool {
        self.mode == Mode::Live && !self.model.lifecycle.is_over()
    }

    fn toggle_pause(&mut self) -> Option<Effect> {
        if let Some(p) = &mut self.playback {
            p.paused = !p.paused;
            return None;
        }
        if !self.running() {
            return None;
        }
        // What the engine will be once it has applied what was sent so far.
        let paused = self.pause_request.unwrap_or(matches!(
            self.model.lifecycle,
            Lifecycle::Paused | Lifecycle::Pausing
        ));
        self.pause_request = Some(!paused);
        self.pause_in_flight += 1;
        Some(Effect::Engine(if paused {
            EngineCommand::Resume
        } else {
            EngineCommand::Pause
        }))
    }

    fn vertical(&mut self, dir: isize) {
        match self.focus {
            Focus::Controls => {
                if let Some(e) = &mut self.edit {
                    e.step(-dir as f64);
                } else {
                    let n = Control::ALL.len() as isize;
                    self.selected = (self.selected as isize + dir).clamp(0, n - 1) as usize;
                }
            }
            Focus::Log => {
                let max = self.view_model().log.len().saturating_sub(1);
                self.log_scroll = (self.log_scroll as isize - dir).clamp(0, max as isize) as usize;
            }
            Focus::Charts => self.metric = self.metric.shift(dir),
            _ => {}
        }
    }

    fn horizontal(&mut self, dir: f64) {
        match self.focus {
            Focus::Controls if self.mode == Mode::Live => {
                if self.edit.is_none() {
                    self.start_edit();
                }
                if let Some(e) = &mut self.edit {
                    e.step(dir);
                }
            }
            Focus::Charts => self.metric = self.metric.shift(dir as isize),
            _ => {}
        }
    }

    fn start_edit(&mut self) {
        if self.mode != Mode::Live || !self.running() {
            return;
        }
        let Some(params) = &self.model.params else {
            return;
        };
        let c = Control::ALL[self.selected.min(Control::ALL.len() - 1)];
        let current = c.in_patch(&self.pending).unwrap_or_else(|| c.get(params));
        self.edit = Some(Edit::new(c, current));
    }

    fn edit_or_apply(&mut self) -> Option<Effect> {
        if self.mode != Mode::Live {
            return None;
        }
        if self.focus != Focus::Controls {
            self.focus = Focus::Controls;
            return None;
        }
        let Some(edit) = self.edit.clone() else {
            self.start_edit();
            return None;
        };
        let params = self.model.params.clone()?;
        match edit.to_patch(&params, &self.pending) {
            Ok(patch) => {
                let c = edit.control;
                c.set_in(&mut self.pending, c.in_patch(&patch));
                self.confirmed.retain(|x| *x != c);
                self.edit = None;
                Some(Effect::Engine(EngineCommand::SetParams { patch }))
            }
            Err(msg) => {
                if let Some(e) = &mut self.edit {
                    e.error = Some(msg);
                }
                None
            }
        }
    }

    /// (first, last) day with a chart point.
    pub fn day_range(&self) -> Option<(u32, u32)> {
        let m = self.view_model();
        let off = m
            .offline_x()
            .filter(|_| m.arms.iter().any(|a| a.offline.is_some()));
        let days = m
            .arms
            .iter()
            .flat_map(|a| a.days.keys().copied())
            .chain(off);
        days.fold(None, |acc, d| match acc {
            None => Some((d, d)),
            Some((lo, hi)) => Some((lo.min(d), hi.max(d))),
        })
    }

    fn day_span(&self) -> u32 {
        self.day_range().map_or(1, |(lo, hi)| hi - lo + 1)
    }

    /// Days the charts show now.
    pub fn window(&self) -> u32 {
        let span = self.day_span();
        self.zoom.map_or(span, |z| z.min(span)).max(1)
    }
}
