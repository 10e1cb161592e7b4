//! Event log: stage changes, operator commands, checkpoints, warnings; newest at the bottom.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::panel;
use crate::tui::app::{App, Focus};
use crate::tui::model::LogKind;
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let m = app.view_model();
    let title = if app.log_scroll > 0 {
        format!("events · ↑{}", app.log_scroll)
    } else {
        "events".to_string()
    };
    let block = panel(&title, Focus::Log, app, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = inner.height as usize;
    let end = m.log.len().saturating_sub(app.log_scroll.min(m.log.len()));
    let start = end.saturating_sub(rows);
    let lines: Vec<Line> = m.log[start..end]
        .iter()
        .map(|l| {
            let style = match l.kind {
                LogKind::Stage => theme.accent,
                LogKind::Info => theme.text,
                LogKind::Operator => theme.focus,
                LogKind::Checkpoint => theme.good,
                LogKind::Warning => theme.warn,
                LogKind::Error => theme.error,
            };
            Line::from(vec![
                Span::styled(format!("{:>6.1} ", l.t), theme.dim),
                Span::styled(l.text.clone(), style),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}
