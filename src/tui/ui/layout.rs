//! Where each panel goes: a compact layout from 80x24, a wide one from 120x36, and a notice
//! below the minimum.

use ratatui::layout::{Constraint, Layout, Rect};

use crate::tui::app::Focus;

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;
const WIDE_WIDTH: u16 = 120;
const WIDE_HEIGHT: u16 = 36;

/// The dashboard's rectangles.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Panels {
    pub header: Rect,
    /// The migration gate under the header (zero height without a gate).
    pub gate: Rect,
    /// Body of the summary view (everything between header and hints).
    pub body: Rect,
    pub charts: Rect,
    pub timeline: Rect,
    pub drift: Rect,
    pub controls: Rect,
    pub log: Rect,
    pub hints: Rect,
    /// All three charts side by side, and more detail per panel.
    pub wide: bool,
}

pub fn too_small(area: Rect) -> bool {
    area.width < MIN_WIDTH || area.height < MIN_HEIGHT
}

/// Rows the dashboard's panels need below the header: charts and the right column over the
/// timeline and log (compact), or charts, the middle row and a few log lines (wide).
const COMPACT_BODY: u16 = 20;
const WIDE_BODY: u16 = 26;

/// Rows of the migration gate for `arms` judged arms: one per arm when the terminal has the
/// room, else one line for all of them (the minimum 80x24 has exactly one spare row), none
/// without a gate.
pub fn gate_rows(area: Rect, arms: usize) -> u16 {
    if arms == 0 {
        return 0;
    }
    let wide = area.width >= WIDE_WIDTH && area.height >= WIDE_HEIGHT;
    let need = if wide { WIDE_BODY } else { COMPACT_BODY };
    let spare = area.height.saturating_sub(3 + need);
    let arms = u16::try_from(arms).unwrap_or(u16::MAX);
    if spare >= arms {
        arms
    } else {
        1
    }
}

/// The panels of `area` with the gate rows of `gate_arms` judged arms, or `None` when it is
/// below the minimum.
pub fn dashboard(area: Rect, gate_arms: usize) -> Option<Panels> {
    if too_small(area) {
        return None;
    }
    let wide = area.width >= WIDE_WIDTH && area.height >= WIDE_HEIGHT;
    let [header, gate, body, hints] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(gate_rows(area, gate_arms)),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    let (charts, timeline, drift, controls, log) = if wide {
        let chart_h = (body.height * 2 / 5).max(12);
        let [charts, middle, log] = Layout::vertical([
            Constraint::Length(chart_h),
            Constraint::Length(10),
            Constraint::Min(4),
        ])
        .areas(body);
        let [timeline, drift, controls] = Layout::horizontal([
            Constraint::Min(40),
            Constraint::Length(42),
            Constraint::Length(40),
        ])
        .areas(middle);
        (charts, timeline, drift, controls, log)
    } else {
        let [top, bottom] =
            Layout::vertical([Constraint::Min(12), Constraint::Length(8)]).areas(body);
        let [charts, right] =
            Layout::horizontal([Constraint::Min(40), Constraint::Length(34)]).areas(top);
        let [controls, drift] =
            Layout::vertical([Constraint::Length(7), Constraint::Min(4)]).areas(right);
        let [timeline, log] =
            Layout::horizontal([Constraint::Min(40), Constraint::Length(34)]).areas(bottom);
        (charts, timeline, drift, controls, log)
    };
    Some(Panels {
        header,
        gate,
        body,
        charts,
        timeline,
        drift,
        controls,
        log,
        hints,
        wide,
    })
}

/// The panel under a mouse click (`gate_arms` as for [`dashboard`]).
pub fn panel_at(width: u16, height: u16, gate_arms: usize, x: u16, y: u16) -> Option<Focus> {
    let p = dashboard(Rect::new(0, 0, width, height), gate_arms)?;
    let hit = |r: Rect| x >= r.x && x < r.right() && y >= r.y && y < r.bottom();
    [
        (p.charts, Focus::Charts),
        (p.timeline, Focus::Timeline),
        (p.drift, Focus::Drift),
        (p.controls, Focus::Controls),
        (p.log, Focus::Log),
    ]
    .into_iter()
    .find(|(r, _)| hit(*r))
    .map(|(_, f)| f)
}

/// A `w` x `h` rectangle in the middle of `area` (clipped to it).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}
