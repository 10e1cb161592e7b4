//! Header: session, stage, state badge (and READ-ONLY on a console that cannot send
//! commands); progress bar with ETA and samples/second.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph};
use ratatui::Frame;

use super::format;
use crate::protocol::Lifecycle;
use crate::tui::app::{App, Badge};
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let m = app.view_model();
    let [top, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);

    let badge = app.badge();
    let badge_style = match badge {
        Badge::Running => theme.running,
        Badge::Paused => theme.paused,
        Badge::Frozen => theme.frozen,
        Badge::Replay => theme.replay,
        Badge::Done => theme.done,
        Badge::Error => theme.failed,
    };
    let mut right = Vec::new();
    if let Some(p) = &app.playback {
        let icon = if p.paused { "⏸" } else { "▶" };
        right.push(Span::styled(
            format!("{icon} x{} {}/{} ", speed(p.speed), p.position, p.total),
            theme.dim,
        ));
    }
    match app.pause_request {
        Some(false) => right.push(Span::styled("resume pending ", theme.warn)),
        Some(true) => right.push(Span::styled("pause pending ", theme.warn)),
        None if app.live().lifecycle == Lifecycle::Pausing => {
            right.push(Span::styled("pause pending ", theme.warn))
        }
        None => {}
    }
    if app.read_only.is_some() {
        right.push(Span::styled(" READ-ONLY ", theme.warn));
    }
    right.push(Span::styled(format!(" {} ", badge.label()), badge_style));
    let right_w: u16 = right.iter().map(|s| s.width() as u16).sum();
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(right_w)]).areas(top);

    let name = if m.name.is_empty() {
        "waiting for the engine…".into()
    } else {
        crate::session::shown_name(&m.name)
    };
    let mut left = Vec::new();
    if area.width >= 120 {
        left.push(Span::styled(" crossadapt ", theme.title));
        left.push(Span::styled("│", theme.border));
    }
    let left = Line::from(
        left.into_iter()
            .chain([
                Span::styled(format!(" {name}"), theme.text),
                Span::styled(" │ ", theme.border),
                Span::styled(m.stage_label(), theme.accent),
            ])
            .collect::<Vec<_>>(),
    );
    frame.render_widget(Paragraph::new(left), left_area);
    frame.render_widget(
        Paragraph::new(Line::from(right)).right_aligned(),
        right_area,
    );

    let (ratio, label) = match &m.progress {
        _ if m.lifecycle == Lifecycle::Done => (1.0, " run finished ".to_string()),
        Some(p) if p.total > 0 => {
            let r = (p.done as f64 / p.total as f64).clamp(0.0, 1.0);
            let eta = p
                .eta_secs
                .map_or(String::new(), |e| format!(" · ETA {}", format::duration(e)));
            let rate = if p.samples_per_sec > 0.0 {
                format!(" · {} samples/s", format::count(p.samples_per_sec))
            } else {
                String::new()
            };
            (r, format!(" {:>3.0}%{eta}{rate} ", r * 100.0))
        }
        _ => (0.0, " waiting for progress ".to_string()),
    };
    let gauge = LineGauge::default()
        .ratio(ratio)
        .label(Span::styled(label, theme.text))
        .filled_symbol(symbols::line::THICK_HORIZONTAL)
        .unfilled_symbol(symbols::line::HORIZONTAL)
        .filled_style(theme.accent)
        .unfilled_style(theme.border);
    frame.render_widget(gauge, bottom);
}

fn speed(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}
