//! The key-hint bar, generated from the keymap; while a control is edited it shows the edit keys.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::action::{Action, Mode};
use crate::tui::app::App;
use crate::tui::theme::Theme;

/// Dropped first when the bar is too narrow.
const DROP_ORDER: [&str; 7] = [
    "day",
    "summary",
    "zoom",
    "checkpoint",
    "freeze",
    "focus",
    "speed",
];

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    // A finished (or failed) live run takes no more engine commands.
    let ended = app.mode == Mode::Live && app.live().lifecycle.is_over();
    let items: Vec<(String, String)> = if app.edit.is_some() {
        let k = |a: Action| {
            app.keymap
                .keys(a)
                .first()
                .map_or(String::new(), |k| k.label())
        };
        vec![
            (
                format!("{}/{}", k(Action::Left), k(Action::Right)),
                "change".into(),
            ),
            ("0-9 .".into(), "type".into()),
            (k(Action::Edit), "apply".into()),
            (k(Action::Cancel), "cancel".into()),
        ]
    } else {
        app.keymap
            .hints(app.mode)
            .into_iter()
            .filter(|(_, h)| !(ended && matches!(*h, "pause" | "edit" | "checkpoint")))
            .map(|(k, h)| (if k == "space" { "␣".into() } else { k }, h.to_string()))
            .collect()
    };
    let mut items = items;
    let width = |items: &[(String, String)]| -> usize {
        items
            .iter()
            .map(|(k, h)| k.chars().count() + h.chars().count() + 3)
            .sum()
    };
    for drop in DROP_ORDER {
        if width(&items) < area.width as usize {
            break;
        }
        items.retain(|(_, h)| h != drop);
    }
    let mut spans = vec![Span::raw(" ")];
    for (k, h) in items {
        spans.push(Span::styled(k, theme.accent));
        spans.push(Span::styled(format!(" {h}  "), theme.dim));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
