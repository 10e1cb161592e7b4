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

/// The panels of `area`, or `None` when it is below the minimum.
pub fn dashboard(area: Rect) -> Option<Panels> {
    if too_small(area) {
        return None;
    }
    let wide = area.width >= WIDE_WIDTH && area.height >= WIDE_HEIGHT;
    let [header, body, hints] = Layout::vertical([
        Constraint::Length(2),
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

/// The panel under a mouse click.
pub fn panel_at(width: u16, height: u16, x: u16, y: u16) -> Option<Focus> {
    let p = dashboard(Rect::new(0, 0, width, height))?;
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
