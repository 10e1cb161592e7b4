//! Teacher / student update timeline: one strip per arm along its current day's batches
//! (`▂` the student stepped, `█` the teacher stepped too) and the update counts per day, so
//! the asymmetric schedule shows at a glance. The arm rows double as the charts' legend.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{format, panel};
use crate::protocol::DayTicks;
use crate::tui::app::{App, Focus};
use crate::tui::theme::Theme;

const NAME_W: usize = 14;
/// ` d12 S40  T14  `
const COUNTS_W: usize = 15;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme, wide: bool) {
    let m = app.view_model();
    let title = match m.timeline_day() {
        Some(d) => format!("updates · day {d} · student ▂ teacher █"),
        None => "updates · student ▂ teacher █".to_string(),
    };
    let block = panel(&title, Focus::Timeline, app, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if m.arms.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("no arms yet", theme.dim)),
            inner,
        );
        return;
    }
    let history_days = if wide { 3 } else { 0 };
    let history_w = if wide { 31 } else { 0 };
    let strip_w = (inner.width as usize)
        .saturating_sub(NAME_W + COUNTS_W + history_w)
        .max(4);
    let mut lines = Vec::new();
    if let Some(p) = &m.params {
        let batches = m
            .timeline_day()
            .and_then(|d| m.day_batches.get(&d))
            .map_or(String::new(), |b| format!("{b} batches/day · "));
        let mut head = format!("{batches}teacher steps every {}", p.teacher_interval);
        if wide {
            let w = NAME_W + strip_w + COUNTS_W;
            head = format!("{:w$} S/T per day", format::fit(&head, w));
        }
        lines.push(Line::from(Span::styled(head, theme.dim)));
    }
    for (i, arm) in m.arms.iter().enumerate() {
        let mut spans = vec![Span::styled(
            format!(
                "{} {:w$} ",
                theme.marker(i),
                format::fit(&arm.name, NAME_W - 3),
                w = NAME_W - 3
            ),
            theme.arm(i),
        )];
        let ticks = arm.ticks.as_ref();
        let nb = ticks
            .map(|t| {
                let seen = m.day_batches.get(&t.day).copied().unwrap_or(0);
                let before = m
                    .day_batches
                    .range(..t.day)
                    .next_back()
                    .map_or(0, |(_, b)| *b);
                seen.max(before).max(t.batches)
            })
            .unwrap_or(0);
        match ticks {
            Some(t) if nb > 0 => spans.extend(strip(t, nb, strip_w, i, theme)),
            _ => spans.push(Span::styled("·".repeat(strip_w), theme.border)),
        }
        let (s, t, day) = match ticks {
            Some(t) => (t.student.len(), t.teacher.len(), format!("d{}", t.day)),
            None => (0, 0, "  ".into()),
        };
        let counts = if arm.failed.is_some() {
            " failed".to_string()
        } else {
            format!(" {day:>3} S{s:<4}T{t:<4}")
        };
        let style = if arm.failed.is_some() {
            theme.error
        } else {
            theme.text
        };
        spans.push(Span::styled(counts, style));
        if history_days > 0 {
            let past: Vec<String> = arm
                .days
                .iter()
                .rev()
                .take(history_days)
                .rev()
                .map(|(d, e)| format!("d{d} {}/{}", e.student_updates, e.teacher_updates))
                .collect();
            spans.push(Span::styled(format!(" {}", past.join(" ")), theme.dim));
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The strip of one arm: one cell per batch of its day, the newest `width` batches when the
/// day has more.
fn strip(t: &DayTicks, nb: u32, width: usize, arm: usize, theme: &Theme) -> Vec<Span<'static>> {
    let w = width as u32;
    let start = if nb <= w {
        0
    } else {
        t.batches.max(w).min(nb) - w
    };
    let end = (start + w).min(nb.max(w));
    (start..end)
        .map(|b| {
            if t.teacher.binary_search(&b).is_ok() {
                Span::styled("█", theme.teacher)
            } else if t.student.binary_search(&b).is_ok() {
                Span::styled("▂", theme.arm(arm))
            } else if b < t.batches {
                Span::styled(" ", theme.text)
            } else if b < nb {
                Span::styled("·", theme.border)
            } else {
                Span::raw(" ")
            }
        })
        .collect()
}
