//! Drift: the drift weight as a gauge and its day-by-day history, the distillation weight it
//! produced, and the most drifting fields.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Sparkline};
use ratatui::Frame;

use super::{format, panel};
use crate::tui::app::{App, Focus};
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme, wide: bool) {
    let m = app.view_model();
    let title = match &m.drift_now {
        Some(d) => match d.batch {
            Some(b) => format!("drift · day {} batch {b}", d.day),
            None => format!("drift · day {}", d.day),
        },
        None => "drift".to_string(),
    };
    let block = panel(&title, Focus::Drift, app, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(d) = &m.drift_now else {
        frame.render_widget(
            Paragraph::new(Span::styled(
                "measured from the first online day",
                theme.dim,
            )),
            inner,
        );
        return;
    };
    let [gauge_area, weights_area, history_area, fields_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(if wide { 2 } else { 1 }),
        Constraint::Min(0),
    ])
    .areas(inner);

    let w = if d.weight.is_finite() {
        d.weight.clamp(0.0, 1.0)
    } else {
        0.0
    };
    frame.render_widget(
        Gauge::default()
            .ratio(w)
            .label(Span::styled(
                format!("drift w {}", crate::num::fixed(d.weight, 2)),
                theme.text,
            ))
            .gauge_style(theme.gauge)
            .use_unicode(true),
        gauge_area,
    );
    let mut weights = vec![
        Span::styled("distill a ", theme.dim),
        Span::styled(crate::num::fixed(d.distill_weight, 2), theme.accent),
        Span::styled(" · replay ", theme.dim),
        Span::styled(crate::num::fixed(d.replay_ratio, 2), theme.text),
    ];
    if wide {
        weights.push(Span::styled(
            format!(
                " · ctr {:.1}% vs {:.1}%",
                d.label_rate * 100.0,
                d.reference_label_rate * 100.0
            ),
            theme.dim,
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(weights)), weights_area);

    let [label_area, spark_area] =
        Layout::horizontal([Constraint::Length(8), Constraint::Min(0)]).areas(history_area);
    frame.render_widget(
        Paragraph::new(Span::styled("w by day", theme.dim)),
        label_area,
    );
    let history: Vec<u64> = m
        .drift
        .values()
        .map(|r| (r.weight.clamp(0.0, 1.0) * 100.0).round() as u64)
        .collect();
    frame.render_widget(
        Sparkline::default()
            .data(&history)
            .max(100)
            .style(theme.gauge),
        spark_area,
    );

    let mut lines = Vec::new();
    if wide {
        lines.push(Line::from(Span::styled(
            "field            PSI     JS",
            theme.dim,
        )));
        for f in &d.fields {
            lines.push(Line::from(Span::styled(
                format!(
                    "{:<14} {:>6} {:>6}",
                    format::fit(&f.field, 14),
                    crate::num::fixed(f.psi, 3),
                    crate::num::fixed(f.js, 3)
                ),
                theme.text,
            )));
        }
    } else {
        let mut spans = vec![Span::styled("psi ", theme.dim)];
        for f in d.fields.iter().take(3) {
            spans.push(Span::styled(
                format!(
                    "{} {} ",
                    format::fit(&f.field, 8),
                    crate::num::fixed(f.psi, 2)
                ),
                theme.text,
            ));
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), fields_area);
}
