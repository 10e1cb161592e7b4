//! Drawing: one pure function per panel, called from [`render`].

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{App, Focus, View};
use super::theme::Theme;

mod charts;
mod controls;
mod drift;
pub mod format;
mod gate;
mod header;
mod help;
mod hints;
pub mod layout;
mod log;
mod summary;
mod timeline;

/// Draws the whole console for `app`.
pub fn render(frame: &mut Frame, app: &App, theme: &Theme) {
    let area = frame.area();
    let gates = app.view_model().gates();
    let Some(p) = layout::dashboard(area, gates.len()) else {
        too_small(frame, area, theme);
        return;
    };
    header::render(frame, p.header, app, theme);
    gate::render(frame, p.gate, app, &gates, theme, p.wide);
    match app.view {
        View::Dashboard => {
            charts::render(frame, p.charts, app, theme, p.wide);
            timeline::render(frame, p.timeline, app, theme, p.wide);
            drift::render(frame, p.drift, app, theme, p.wide);
            controls::render(frame, p.controls, app, theme);
            log::render(frame, p.log, app, theme);
        }
        View::Summary => summary::render(frame, p.body, app, theme, p.wide),
    }
    hints::render(frame, p.hints, app, theme);
    if app.help {
        help::render(frame, area, app, theme);
    }
}

fn too_small(frame: &mut Frame, area: Rect, theme: &Theme) {
    let text = vec![
        Line::from(Span::styled("terminal too small", theme.warn)),
        Line::from(format!(
            "{}x{}: the console needs at least {}x{}.",
            area.width,
            area.height,
            layout::MIN_WIDTH,
            layout::MIN_HEIGHT
        )),
        Line::from("Enlarge the window, or press q to quit."),
    ];
    let h = (text.len() as u16 + 2).min(area.height);
    let rect = layout::centered(area, area.width, h);
    frame.render_widget(
        Paragraph::new(text)
            .style(theme.text)
            .centered()
            .wrap(Wrap { trim: true }),
        rect,
    );
}

/// A bordered panel; the focused one stands out (colour and a bold `▶` title).
pub(crate) fn panel<'a>(title: &str, focus: Focus, app: &App, theme: &Theme) -> Block<'a> {
    let focused = app.focus == focus && app.view == View::Dashboard;
    let (border, title_style): (Style, Style) = if focused {
        (theme.focus, theme.focus)
    } else {
        (theme.border, theme.title)
    };
    let mark = if focused { "▶ " } else { "" };
    Block::bordered()
        .border_style(border)
        .title(Span::styled(format!(" {mark}{title} "), title_style))
}
