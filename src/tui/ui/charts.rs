//! AUC, LogLoss and bias by day, one line per arm told apart by colour and marker; the window
//! of days follows the newest day and zooms with `+`/`-`/`=`. The offline result is each arm's
//! first point, on the day before the first online day (the switch).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use super::panel;
use crate::protocol::EvalMetrics;
use crate::tui::app::{App, Focus, Metric};
use crate::tui::model::Model;
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme, wide: bool) {
    if wide {
        let [legend_area, charts] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
        frame.render_widget(Paragraph::new(legend(app.view_model(), theme)), legend_area);
        let cols: [Rect; 3] = Layout::horizontal([Constraint::Ratio(1, 3); 3]).areas(charts);
        for (metric, rect) in Metric::ALL.into_iter().zip(cols) {
            render_metric(frame, rect, app, theme, metric, metric == app.metric);
        }
    } else {
        render_metric(frame, area, app, theme, app.metric, true);
    }
}

/// `● incumbent  ▲ scratch  ■ kd ...` in the arms' colours.
pub fn legend(m: &Model, theme: &Theme) -> Line<'static> {
    let mut spans = vec![Span::raw(" ")];
    for (i, a) in m.arms.iter().enumerate() {
        spans.push(Span::styled(
            format!("{} {}  ", theme.marker(i), a.name),
            theme.arm(i),
        ));
    }
    Line::from(spans)
}

fn value(metric: Metric, m: &EvalMetrics) -> Option<f64> {
    let v = match metric {
        Metric::Auc => m.auc?,
        Metric::LogLoss => m.logloss,
        Metric::Bias => m.bias,
    };
    v.is_finite().then_some(v)
}

fn render_metric(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    theme: &Theme,
    metric: Metric,
    selected: bool,
) {
    let m = app.view_model();
    let window = app.window();
    let title = if selected && !app.is_frozen() {
        format!("{} by day · {window}d", metric.label())
    } else {
        format!("{} by day", metric.label())
    };
    let block = if selected {
        panel(&title, Focus::Charts, app, theme)
    } else {
        Block::bordered()
            .border_style(theme.border)
            .title(Span::styled(format!(" {title} "), theme.title))
    };
    let Some((_, hi)) = app.day_range() else {
        frame.render_widget(
            Paragraph::new(Span::styled("waiting for the first evaluation…", theme.dim))
                .block(block),
            area,
        );
        return;
    };
    let lo = hi.saturating_sub(window - 1);
    let offline_x = m.offline_x();
    let series: Vec<Vec<(f64, f64)>> = m
        .arms
        .iter()
        .map(|a| {
            let off = a
                .offline
                .as_ref()
                .zip(offline_x)
                .and_then(|(om, x)| Some((x, value(metric, &om.metrics)?)));
            off.into_iter()
                .chain(
                    a.days
                        .iter()
                        .filter_map(|(d, dm)| Some((*d, value(metric, &dm.metrics)?))),
                )
                .filter(|(d, _)| *d >= lo && *d <= hi)
                .map(|(d, v)| (f64::from(d), v))
                .collect()
        })
        .collect();
    let values = series.iter().flatten().map(|(_, v)| *v);
    let (mut y0, mut y1) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !y0.is_finite() {
        frame.render_widget(
            Paragraph::new(Span::styled("no values in this window", theme.dim)).block(block),
            area,
        );
        return;
    }
    if metric == Metric::Bias {
        y0 = y0.min(0.0);
        y1 = y1.max(0.0);
    }
    let pad = ((y1 - y0) * 0.08).max(1e-3);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let (x0, x1) = (f64::from(lo) - 0.3, f64::from(hi) + 0.3);

    let zero = [(x0, 0.0), (x1, 0.0)];
    let mut datasets = Vec::new();
    if metric == Metric::Bias {
        datasets.push(
            Dataset::default()
                .data(&zero)
                .graph_type(GraphType::Line)
                .marker(Marker::Dot)
                .style(theme.dim),
        );
    }
    for (i, data) in series.iter().enumerate() {
        datasets.push(
            Dataset::default()
                .data(data)
                .graph_type(GraphType::Line)
                .marker(Marker::Braille)
                .style(theme.arm(i)),
        );
    }
    for (i, data) in series.iter().enumerate() {
        datasets.push(
            Dataset::default()
                .data(data)
                .graph_type(GraphType::Scatter)
                .marker(Marker::Custom(theme.marker(i)))
                .style(theme.arm(i)),
        );
    }
    let digits = |v: f64| match metric {
        Metric::Bias => format!("{v:+.3}"),
        _ => format!("{v:.3}"),
    };
    let day_label = |d: u32| {
        if Some(d) == offline_x {
            format!("d{d} switch")
        } else {
            format!("d{d}")
        }
    };
    let axis_style: Style = theme.dim;
    let chart = Chart::new(datasets)
        .block(block)
        .style(theme.text)
        .x_axis(
            Axis::default()
                .bounds([x0, x1])
                .style(axis_style)
                .labels([day_label(lo), day_label(hi)]),
        )
        .y_axis(
            Axis::default()
                .bounds([y0, y1])
                .style(axis_style)
                .labels([digits(y0 + pad), digits(y1 - pad)]),
        );
    frame.render_widget(chart, area);
}
