//! The migration gate under the header: per student arm SWITCH / NOT YET, the streak of
//! passing days against the days the rule needs, and why, as the ledger folds it (the same
//! fold as the report's and the summary's: the console only formats it). Always visible, so an
//! engineer watching a run sees the decision move as each online day's evidence arrives. Once
//! an arm has switched, its row says on which day and after how many online days (`d16 in 5d`):
//! the headline figure of a migration, kept when a later day loses the decision again.

use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::protocol::{GateDecision, GateStatus};
use crate::tui::app::App;
use crate::tui::theme::Theme;

/// Longest arm name shown in full in the per-arm rows.
const NAME_WIDTH: usize = 16;
/// Arm names in the one-line gate when the full names do not fit.
const SHORT_NAME: usize = 10;
const PREFIX: &str = " gate ";

/// `gates` are the ledger's judged arms (`Ledger::gates`): one row each when `area` has the
/// rows, else one line with every arm's decision and streak. Lines never wrap: what does not
/// fit is cut with `…`.
pub fn render(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    gates: &[(usize, Option<GateStatus>)],
    theme: &Theme,
    wide: bool,
) {
    if gates.is_empty() || area.height == 0 {
        return;
    }
    let width = usize::from(area.width);
    let lines = if usize::from(area.height) >= gates.len() {
        rows(app, gates, theme, width, wide)
    } else {
        vec![strip(app, gates, theme, width)]
    };
    frame.render_widget(Paragraph::new(lines), area);
}

fn decision(status: Option<&GateStatus>, theme: &Theme) -> Span<'static> {
    match status {
        Some(s) => {
            let style = match s.decision {
                GateDecision::Switch => theme.good,
                GateDecision::NotYet => theme.bad,
            };
            Span::styled(s.decision.label(), style.add_modifier(Modifier::BOLD))
        }
        None => Span::styled("-", theme.dim),
    }
}

/// `2/3`, or `pooled` ([`GateStatus::progress`]).
fn streak(status: Option<&GateStatus>) -> String {
    status.map_or("-/-".into(), GateStatus::progress)
}

/// The first switch day and the online days it took (`d16 in 5d`), once the gate has said
/// SWITCH; `None` before.
fn switched(app: &App, status: Option<&GateStatus>, short: bool) -> Option<String> {
    let s = status?;
    let day = s.first_met?;
    let n = s.days_to_switch(&app.view_model().plan.online)?;
    Some(if short {
        format!("d{day}")
    } else {
        format!("d{day} in {n}d")
    })
}

fn arm_label(app: &App, i: usize, theme: &Theme, name_width: usize) -> Span<'static> {
    let m = app.view_model();
    let name = m.arms.get(i).map_or("?", |a| a.name.as_str());
    let name = super::format::fit(name, name_width);
    Span::styled(
        format!("{} {name:<name_width$}", theme.marker(i)),
        theme.arm(i),
    )
}

/// One row per judged arm: the reason in full when it fits, else its short form.
fn rows(
    app: &App,
    gates: &[(usize, Option<GateStatus>)],
    theme: &Theme,
    width: usize,
    wide: bool,
) -> Vec<Line<'static>> {
    let m = app.view_model();
    let name_width = gates
        .iter()
        .filter_map(|(i, _)| m.arms.get(*i))
        .map(|a| a.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(NAME_WIDTH);
    gates
        .iter()
        .enumerate()
        .map(|(row, (i, status))| {
            let prefix = if row == 0 {
                Span::styled(PREFIX, theme.title)
            } else {
                Span::raw(" ".repeat(PREFIX.len()))
            };
            let status = status.as_ref();
            let mut spans = vec![
                prefix,
                arm_label(app, *i, theme, name_width),
                Span::raw(" "),
            ];
            let word = decision(status, theme);
            let pad = " ".repeat(7usize.saturating_sub(word.width()));
            spans.extend([word, Span::raw(pad)]);
            spans.push(Span::styled(
                format!(" {:>5}  ", streak(status)),
                theme.text,
            ));
            if let Some(first) = switched(app, status, false) {
                spans.push(Span::styled(first, theme.good.add_modifier(Modifier::BOLD)));
                spans.push(Span::raw("  "));
            }
            let used: usize = spans.iter().map(Span::width).sum();
            let reason = match status {
                Some(s) if wide && used + s.reason.chars().count() <= width => s.reason.clone(),
                Some(s) => s.brief.clone(),
                None if m.arms.get(*i).is_some_and(|a| a.failed.is_some()) => {
                    "the arm failed before a judged day".into()
                }
                None => "no online day judged yet".into(),
            };
            let style = match status {
                Some(_) => theme.text,
                None => theme.dim,
            };
            spans.push(Span::styled(reason, style));
            fit_line(spans, width, theme)
        })
        .collect()
}

/// Every arm on one line: names and decisions; names cut to a few letters, or markers alone,
/// when they do not fit.
fn strip(
    app: &App,
    gates: &[(usize, Option<GateStatus>)],
    theme: &Theme,
    width: usize,
) -> Line<'static> {
    let m = app.view_model();
    let build = |names: Option<usize>| {
        let mut spans = vec![Span::styled(PREFIX, theme.title)];
        for (n, (i, status)) in gates.iter().enumerate() {
            if n > 0 {
                spans.push(Span::raw("  "));
            }
            let label = match names {
                Some(w) => {
                    let name = m.arms.get(*i).map_or("?", |a| a.name.as_str());
                    format!("{} {} ", theme.marker(*i), super::format::fit(name, w))
                }
                None => format!("{} ", theme.marker(*i)),
            };
            spans.push(Span::styled(label, theme.arm(*i)));
            spans.push(decision(status.as_ref(), theme));
            match switched(app, status.as_ref(), true) {
                Some(first) => spans.push(Span::styled(format!(" {first}"), theme.good)),
                None => spans.push(Span::styled(
                    format!(" {}", streak(status.as_ref())),
                    theme.text,
                )),
            }
        }
        spans
    };
    let fits = |spans: &Vec<Span<'static>>| spans.iter().map(Span::width).sum::<usize>() <= width;
    let spans = [Some(usize::MAX), Some(SHORT_NAME)]
        .into_iter()
        .map(build)
        .find(fits)
        .unwrap_or_else(|| build(None));
    fit_line(spans, width, theme)
}

/// The spans cut to `width` cells, the cut marked with `…`.
fn fit_line(spans: Vec<Span<'static>>, width: usize, theme: &Theme) -> Line<'static> {
    let total: usize = spans.iter().map(Span::width).sum();
    if total <= width {
        return Line::from(spans);
    }
    let mut out = Vec::new();
    let mut left = width.saturating_sub(1);
    for s in spans {
        if left == 0 {
            break;
        }
        let w = s.width();
        if w <= left {
            left -= w;
            out.push(s);
            continue;
        }
        let mut text = String::new();
        for c in s.content.chars() {
            let cw = Span::raw(c.to_string()).width();
            if cw > left {
                break;
            }
            left -= cw;
            text.push(c);
        }
        out.push(Span::styled(text, s.style));
        break;
    }
    if width > 0 {
        out.push(Span::styled("…", theme.dim));
    }
    Line::from(out)
}
