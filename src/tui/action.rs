//! Everything an operator can ask of the console: one [`Action`] per bindable key, and the
//! [`Effect`]s the reducer hands back to the event loop.

use crate::protocol::EngineCommand;

/// Whether the console shows a live engine or plays a log back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Live,
    Replay,
}

/// Which modes an action is offered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Both,
    Live,
    Replay,
}

impl Scope {
    pub fn includes(self, mode: Mode) -> bool {
        matches!(
            (self, mode),
            (Scope::Both, _) | (Scope::Live, Mode::Live) | (Scope::Replay, Mode::Replay)
        )
    }
}

/// A bindable console action. Its TOML name, description and default keys live in
/// [`Action::spec`], the single table the keymap, the hint bar and the `?` help read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Pause,
    Freeze,
    FocusNext,
    FocusPrev,
    FocusControls,
    Up,
    Down,
    Left,
    Right,
    Edit,
    Cancel,
    Checkpoint,
    /// Stop the engine without leaving the console (asks to press it again).
    StopEngine,
    ZoomIn,
    ZoomOut,
    ZoomReset,
    NextMetric,
    Summary,
    Faster,
    Slower,
    NextDay,
    PrevDay,
    Help,
    Quit,
}

/// Static facts about an action.
pub struct ActionSpec {
    /// Name in `keys.toml`.
    pub name: &'static str,
    pub live: &'static str,
    /// Description in replay (when it differs).
    pub replay: Option<&'static str>,
    pub scope: Scope,
    pub default_keys: &'static [&'static str],
    /// Short label for the hint bar (`None`: help only).
    pub hint: Option<&'static str>,
}

impl Action {
    /// Every action, in help order.
    pub const ALL: [Action; 24] = [
        Action::Pause,
        Action::Freeze,
        Action::FocusNext,
        Action::FocusPrev,
        Action::FocusControls,
        Action::Up,
        Action::Down,
        Action::Left,
        Action::Right,
        Action::Edit,
        Action::Cancel,
        Action::Checkpoint,
        Action::StopEngine,
        Action::ZoomIn,
        Action::ZoomOut,
        Action::ZoomReset,
        Action::NextMetric,
        Action::Summary,
        Action::Faster,
        Action::Slower,
        Action::NextDay,
        Action::PrevDay,
        Action::Help,
        Action::Quit,
    ];

    pub fn spec(self) -> ActionSpec {
        use Scope::*;
        let s = |name, live, replay, scope, default_keys, hint| ActionSpec {
            name,
            live,
            replay,
            scope,
            default_keys,
            hint,
        };
        match self {
            Action::Pause => s(
                "pause",
                "pause / resume the engine (online: at the end of the arm's day)",
                Some("pause / resume the playback"),
                Both,
                &["space"],
                Some("pause"),
            ),
            Action::Freeze => s(
                "freeze",
                "freeze / unfreeze the view (the engine keeps running)",
                None,
                Both,
                &["f"],
                Some("freeze"),
            ),
            Action::FocusNext => s(
                "focus_next",
                "focus the next panel",
                None,
                Both,
                &["tab"],
                Some("focus"),
            ),
            Action::FocusPrev => s(
                "focus_prev",
                "focus the previous panel",
                None,
                Both,
                &["shift+tab"],
                None,
            ),
            Action::FocusControls => s(
                "focus_controls",
                "jump to the controls",
                None,
                Live,
                &["c"],
                None,
            ),
            Action::Up => s(
                "up",
                "previous control / scroll the log up",
                None,
                Both,
                &["up", "k"],
                None,
            ),
            Action::Down => s(
                "down",
                "next control / scroll the log down",
                None,
                Both,
                &["down", "j"],
                None,
            ),
            Action::Left => s(
                "left",
                "decrease the value being edited / previous chart metric",
                None,
                Both,
                &["left", "h"],
                None,
            ),
            Action::Right => s(
                "right",
                "increase the value being edited / next chart metric",
                None,
                Both,
                &["right", "l"],
                None,
            ),
            Action::Edit => s(
                "edit",
                "edit the selected control; again to apply it",
                None,
                Live,
                &["enter"],
                Some("edit"),
            ),
            Action::Cancel => s(
                "cancel",
                "cancel the edit / close help",
                None,
                Both,
                &["esc"],
                None,
            ),
            Action::Checkpoint => s(
                "checkpoint",
                "checkpoint at the next safe point",
                None,
                Live,
                &["s"],
                Some("checkpoint"),
            ),
            Action::StopEngine => s(
                "stop",
                "stop the engine, checkpointed and resumable (press twice)",
                None,
                Live,
                &["S"],
                None,
            ),
            Action::ZoomIn => s(
                "zoom_in",
                "zoom the charts in (fewer days, newest kept)",
                None,
                Both,
                &["+"],
                Some("zoom"),
            ),
            Action::ZoomOut => s(
                "zoom_out",
                "zoom the charts out (more days)",
                None,
                Both,
                &["-"],
                None,
            ),
            Action::ZoomReset => s("zoom_reset", "show every day", None, Both, &["="], None),
            Action::NextMetric => s(
                "metric",
                "next chart metric: AUC, LogLoss, bias (small terminals)",
                None,
                Both,
                &["m"],
                None,
            ),
            Action::Summary => s(
                "summary",
                "switch between the dashboard and the summary",
                None,
                Both,
                &["v"],
                Some("summary"),
            ),
            Action::Faster => s(
                "faster",
                "play back faster",
                None,
                Replay,
                &[">", "."],
                Some("speed"),
            ),
            Action::Slower => s(
                "slower",
                "play back slower",
                None,
                Replay,
                &["<", ","],
                None,
            ),
            Action::NextDay => s(
                "next_day",
                "jump to the next online day",
                None,
                Replay,
                &["]"],
                Some("day"),
            ),
            Action::PrevDay => s(
                "prev_day",
                "jump back to the previous online day",
                None,
                Replay,
                &["["],
                None,
            ),
            Action::Help => s(
                "help",
                "show / hide this help",
                None,
                Both,
                &["?"],
                Some("help"),
            ),
            Action::Quit => s(
                "quit",
                "quit (a live session is saved and can be resumed)",
                Some("quit"),
                Both,
                &["q", "ctrl+c"],
                Some("quit"),
            ),
        }
    }

    /// The description shown in `mode`.
    pub fn describe(self, mode: Mode) -> &'static str {
        let spec = self.spec();
        match (mode, spec.replay) {
            (Mode::Replay, Some(r)) => r,
            _ => spec.live,
        }
    }
}

/// Playback changes the event loop carries out in replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seek {
    NextDay,
    PrevDay,
}

/// What the reducer asks the event loop to do after a key.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send this command to the engine (live).
    Engine(EngineCommand),
    /// Move the playback (replay).
    Seek(Seek),
    /// Leave the console (live: after sending `Stop`).
    Quit,
}
