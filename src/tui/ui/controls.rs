//! Controls: the operator parameters, editable mid-run. An applied change shows `…` (pending)
//! until the engine's `ParamsChanged` confirms it (`✓`).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{format, panel};
use crate::tui::action::Mode;
use crate::tui::app::{App, Focus};
use crate::tui::control::Control;
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    // Controls show the newest values even while the view is frozen.
    let m = app.live();
    let title = if app.mode == Mode::Replay {
        "controls (replay: read-only)"
    } else {
        "controls · next safe point"
    };
    let mut block = panel(title, Focus::Controls, app, theme);
    if let Some(err) = app.edit.as_ref().and_then(|e| e.error.as_ref()) {
        block = block.title_bottom(Span::styled(
            format!(
                " {} ",
                format::fit(err, area.width.saturating_sub(4) as usize)
            ),
            theme.error,
        ));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(params) = &m.params else {
        frame.render_widget(
            Paragraph::new(Span::styled("waiting for the session…", theme.dim)),
            inner,
        );
        return;
    };
    let label_w = (inner.width as usize).saturating_sub(14).clamp(8, 20);
    let focused = app.focus == Focus::Controls;
    let lines: Vec<Line> = Control::ALL
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let selected = focused && i == app.selected && app.mode == Mode::Live;
            let cursor = if selected { "▸" } else { " " };
            let label_style = if selected { theme.focus } else { theme.text };
            let mut spans = vec![Span::styled(
                format!("{cursor}{:label_w$} ", format::fit(c.label(), label_w)),
                label_style,
            )];
            let current = c.format(c.get(params));
            match (&app.edit, c.in_patch(&app.pending)) {
                (Some(e), _) if e.control == c => {
                    spans.push(Span::styled(format!("[{}▏]", e.text), theme.focus));
                }
                (_, Some(v)) => {
                    spans.push(Span::styled(
                        format!("{current}→{}", c.format(v)),
                        theme.warn,
                    ));
                    spans.push(Span::styled(" …", theme.warn));
                }
                _ if app.confirmed.contains(&c) => {
                    spans.push(Span::styled(current, theme.good));
                    spans.push(Span::styled(" ✓", theme.good));
                }
                _ => spans.push(Span::styled(current, theme.text)),
            }
            Line::from(spans)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}
