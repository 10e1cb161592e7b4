//! The `?` help: every key of the current mode, generated from the keymap.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::{format, layout};
use crate::tui::action::Mode;
use crate::tui::app::App;
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let rows = app.keymap.help_rows(app.mode);
    let key_w = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(4);
    let w = area.width.saturating_sub(4).min(76);
    let h = (rows.len() as u16 + 3).min(area.height.saturating_sub(1));
    let rect = layout::centered(area, w, h);
    let text_w = (w as usize).saturating_sub(key_w + 4);
    let mut lines: Vec<Line> = rows
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!("{keys:>key_w$}  "), theme.accent),
                Span::styled(format::fit(what, text_w), theme.text),
            ])
        })
        .collect();
    lines.push(Line::from(Span::styled(
        "keys are set in keys.toml (crossadapt config dir)",
        theme.dim,
    )));
    let title = match app.mode {
        Mode::Live => " keys · live session ",
        Mode::Replay => " keys · replay ",
    };
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .border_style(theme.focus)
                .title(Span::styled(title, theme.title))
                .title_bottom(Span::styled(" ? or esc closes ", theme.dim)),
        ),
        rect,
    );
}
