//! The end-of-run summary: the ledger's switch verdict per arm (time vs scratch, AUC vs kd,
//! |bias| vs kd) and its headline.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::format;
use crate::protocol::{ArmVerdict, Lifecycle};
use crate::tui::app::App;
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme, wide: bool) {
    let m = app.view_model();
    let block = Block::bordered()
        .border_style(theme.border)
        .title(Span::styled(
            " summary: switch verdict per arm ",
            theme.title,
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let verdict = (m.lifecycle == Lifecycle::Done).then(|| m.verdict(None));
    let Some(arms) = verdict.as_ref().map(|v| &v.arms) else {
        let done = m.arms.first().map_or(0, |a| a.days.len());
        let text = vec![
            Line::from(Span::styled(
                "The verdict appears when the run finishes.",
                theme.text,
            )),
            Line::from(Span::styled(
                format!(
                    "{done} of {} online days evaluated so far; v returns to the dashboard.",
                    m.plan.online.len()
                ),
                theme.dim,
            )),
        ];
        frame.render_widget(Paragraph::new(text), inner);
        return;
    };
    let table_h = arms.len() as u16 + 2;
    // A tuned run (`run --tune`) says which values the protocol chose, wrapped on lines of its
    // own above the notes.
    let tuned = m.tuning.as_ref().map(|t| t.brief());
    let tuned_h = tuned
        .as_ref()
        .map_or(0, |t| wrapped_lines(t, usize::from(inner.width)));
    let [table_area, verdict_area, tuned_area, notes_area] = Layout::vertical([
        Constraint::Length(table_h),
        Constraint::Min(0),
        Constraint::Length(tuned_h),
        Constraint::Length(3),
    ])
    .areas(inner);
    if let Some(t) = tuned {
        let text = Paragraph::new(Span::styled(t, theme.text)).wrap(Wrap { trim: false });
        frame.render_widget(text, tuned_area);
    }

    let mut header = vec!["arm"];
    if wide {
        header.extend(["model", "offline s", "off smp/s"]);
    }
    // Training throughput, samples per second: offline beside the offline time (wide), online
    // after the online quality.
    header.extend([
        "time/scr", "off AUC", "on AUC", "AUC-kd", "|bias|", "|b|-kd", "on smp/s",
    ]);
    if wide {
        header.push("verdict");
    }
    let rows: Vec<Row> = arms
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut cells = vec![Cell::from(Span::styled(
                format!("{} {}", theme.marker(i), a.arm),
                theme.arm(i),
            ))];
            if wide {
                cells.push(Cell::from(format::fit(&a.model, 24)));
                cells.push(Cell::from(format!("{:.1}", a.offline_seconds)));
                cells.push(Cell::from(rate(a.offline_samples_per_sec)));
            }
            let lower_better = |v: Option<f64>| tone(theme, v.map(|v| -v));
            cells.extend([
                Cell::from(Span::styled(
                    match a.ratio_text("time_vs_scratch", a.time_vs_scratch).as_str() {
                        "-" => "n/a".to_string(),
                        text => text.to_string(),
                    },
                    tone(theme, a.time_vs_scratch.map(|t| 1.0 - t)),
                )),
                Cell::from(format::opt(a.offline.as_ref().and_then(|o| o.auc), 4)),
                Cell::from(format::opt(a.online_mean_auc, 4)),
                Cell::from(Span::styled(
                    format::signed(a.auc_vs_kd, 4),
                    tone(theme, a.auc_vs_kd),
                )),
                Cell::from(format::opt(a.online_mean_abs_bias, 3)),
                Cell::from(Span::styled(
                    format::signed(a.abs_bias_vs_kd, 3),
                    lower_better(a.abs_bias_vs_kd),
                )),
                Cell::from(rate(a.online_samples_per_sec)),
            ]);
            if wide {
                cells.push(Cell::from(Span::styled(verdict_text(a), theme.text)));
            }
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![Constraint::Length(if wide { 20 } else { 18 })];
    if wide {
        widths.extend([
            Constraint::Length(24),
            Constraint::Length(9),
            Constraint::Length(9),
        ]);
    }
    widths.extend([
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(8),
    ]);
    if wide {
        widths.push(Constraint::Min(10));
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.dim))
        .column_spacing(1);
    frame.render_widget(table, table_area);

    if !wide {
        let lines: Vec<Line> = arms
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Line::from(vec![
                    Span::styled(format!("{} {}: ", theme.marker(i), a.arm), theme.arm(i)),
                    Span::styled(verdict_text(a), theme.text),
                ])
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), verdict_area);
    }

    let mut notes = Vec::new();
    if let Some(v) = &verdict {
        let h = &v.headline;
        notes.push(Line::from(vec![
            Span::styled("crossadapt offline time / scratch's: ", theme.dim),
            Span::styled(format::opt(h.time_fraction_vs_scratch, 3), theme.accent),
            Span::styled("   offline AUC - kd's: ", theme.dim),
            Span::styled(format::signed(h.offline_auc_minus_kd, 4), theme.accent),
        ]));
    }
    notes.push(Line::from(Span::styled(
        "time/scr: offline time / scratch's · AUC-kd, |b|-kd: online means minus kd's",
        theme.dim,
    )));
    notes.push(Line::from(Span::styled(
        "v: dashboard · q: quit",
        theme.dim,
    )));
    frame.render_widget(Paragraph::new(notes), notes_area);
}

/// Lines `text` takes when wrapped at spaces to `width` columns (a word longer than a line
/// is cut), as the paragraph wraps it.
fn wrapped_lines(text: &str, width: usize) -> u16 {
    let width = width.max(1);
    let (mut lines, mut col) = (1usize, 0usize);
    for word in text.split(' ') {
        let w = word.chars().count();
        if col > 0 && col + 1 + w <= width {
            col += 1 + w;
        } else {
            if col > 0 {
                lines += 1;
            }
            col = w;
        }
        while col > width {
            lines += 1;
            col -= width;
        }
    }
    lines.min(usize::from(u16::MAX)) as u16
}

/// A throughput in samples per second, `-` when there is none.
fn rate(v: Option<f64>) -> String {
    v.map_or("-".into(), format::count)
}

/// Good when `v > 0`, bad when `v < 0`.
fn tone(theme: &Theme, v: Option<f64>) -> Style {
    match v {
        Some(v) if v > 1e-12 => theme.good,
        Some(v) if v < -1e-12 => theme.bad,
        _ => theme.text,
    }
}

/// `4.0x faster, AUC >= kd, |bias| <= kd`, from the engine's comparisons.
fn verdict_text(a: &ArmVerdict) -> String {
    if let Some(f) = &a.failed {
        return format!("failed: {f}");
    }
    let mut parts = Vec::new();
    match a.time_vs_scratch {
        Some(t) if t > 0.0 && t < 1.0 => parts.push(format!("{:.1}x faster", 1.0 / t)),
        Some(t) if t > 1.0 => parts.push(format!("{t:.1}x slower")),
        _ => {}
    }
    match a.total_vs_scratch {
        Some(t) if (t - 1.0).abs() > 5e-3 => parts.push(format!("total {t:.2}x")),
        _ => {}
    }
    match a.auc_vs_kd {
        Some(d) if d > 0.0 => parts.push("AUC > kd".to_string()),
        Some(d) if d < 0.0 => parts.push("AUC < kd".to_string()),
        _ => {}
    }
    match a.abs_bias_vs_kd {
        Some(d) if d < 0.0 => parts.push("|bias| < kd".to_string()),
        Some(d) if d > 0.0 => parts.push("|bias| > kd".to_string()),
        _ => {}
    }
    if let Some(auc) = a.holdout.as_ref().and_then(|h| h.metrics.auc) {
        parts.push(format!("holdout AUC {auc:.4}"));
    }
    let text = if parts.is_empty() {
        "reference".into()
    } else {
        parts.join(", ")
    };
    match (&a.gate, a.switch_sentence()) {
        (Some(g), Some(switch)) => {
            format!("{} · {text} · {} · {switch}", g.decision.label(), g.reason)
        }
        (Some(g), None) => format!("{} · {text} · {}", g.decision.label(), g.reason),
        (None, _) => text,
    }
}

#[cfg(test)]
mod tests {
    use super::wrapped_lines;

    #[test]
    fn wrapped_lines_counts_as_words_wrap() {
        assert_eq!(wrapped_lines("", 10), 1);
        assert_eq!(wrapped_lines("aaaa bbbb", 9), 1);
        assert_eq!(wrapped_lines("aaaa bbbb", 8), 2);
        // A word that does not fit the rest of a line moves down whole.
        assert_eq!(wrapped_lines("aaaaaa bbbbbb cc", 10), 2);
        assert_eq!(wrapped_lines("aaaaaa bbbbbb cccc", 10), 3);
        // A word longer than the line is cut.
        assert_eq!(wrapped_lines("aaaaaaaaaaaaaaaaaaaaaaaaa", 10), 3);
    }
}
