//! `crossadapt compare` in the console: the chosen metric of every series (arm of a session)
//! overlaid per day in a chart, and a table with the pinned baseline's values and every other
//! series' difference from it. `/` filters series by a regex over `session/arm`, `e` writes
//! what is on screen as CSV.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Cell, Chart, Dataset, GraphType, Paragraph, Row, Table,
};
use ratatui::Frame;
use regex::Regex;

use super::theme::Theme;
use crate::session::compare::{self, CmpMetric, Comparison, Series};

/// The compare view's state.
#[derive(Clone, Debug)]
pub struct CompareView {
    pub cmp: Comparison,
    pub metric: CmpMetric,
    /// Index of the pinned baseline in `cmp.series`.
    pub baseline: Option<usize>,
    /// Row selected among the visible series.
    pub selected: usize,
    pub filter: Option<Regex>,
    /// The filter being typed after `/`.
    pub input: Option<String>,
    /// Show differences from the baseline (else every series' own values).
    pub diffs: bool,
    /// One line for the footer: an export's path, a bad regex.
    pub status: Option<String>,
    /// Where `e` writes its CSV files.
    pub export_dir: PathBuf,
}

impl CompareView {
    pub fn new(cmp: Comparison, baseline: Option<usize>, filter: Option<Regex>) -> CompareView {
        // Default baseline: the first session's crossadapt arm, else its first arm.
        let baseline = baseline.or_else(|| {
            let first = cmp.series.first()?;
            cmp.series
                .iter()
                .position(|s| s.session == first.session && s.arm == "crossadapt")
                .or(Some(0))
        });
        CompareView {
            cmp,
            metric: CmpMetric::Auc,
            baseline,
            selected: 0,
            filter,
            input: None,
            diffs: true,
            status: None,
            export_dir: PathBuf::from("."),
        }
    }

    /// The series on screen.
    pub fn visible(&self) -> Vec<&Series> {
        self.cmp.filtered(self.filter.as_ref())
    }

    fn base(&self) -> Option<&Series> {
        self.baseline.and_then(|i| self.cmp.series.get(i))
    }

    /// A key; returns true when the view should close.
    pub fn on_key(&mut self, key: KeyEvent) -> bool {
        if key.kind != KeyEventKind::Press {
            return false;
        }
        if let Some(text) = &mut self.input {
            match key.code {
                KeyCode::Enter => {
                    let text = std::mem::take(text);
                    self.input = None;
                    if text.is_empty() {
                        self.filter = None;
                        self.status = Some("filter cleared".into());
                    } else {
                        match Regex::new(&text) {
                            Ok(re) => {
                                self.filter = Some(re);
                                self.selected = 0;
                                self.status = None;
                            }
                            Err(e) => {
                                let first = e.to_string().lines().last().unwrap_or("").to_string();
                                self.status = Some(format!("not a regex: {first}"));
                            }
                        }
                    }
                }
                KeyCode::Esc => self.input = None,
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) => text.push(c),
                _ => {}
            }
            return false;
        }
        let n = self.visible().len();
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return true,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => return true,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(n.saturating_sub(1))
            }
            KeyCode::Char('m') => self.metric = self.metric.next(),
            KeyCode::Char('d') => self.diffs = !self.diffs,
            KeyCode::Char('/') => self.input = Some(String::new()),
            KeyCode::Char('b') => {
                let key = self.visible().get(self.selected).map(|s| s.key());
                if let Some(key) = key {
                    self.baseline = self.cmp.series.iter().position(|s| s.key() == key);
                    self.status = Some(format!("baseline: {key}"));
                }
            }
            KeyCode::Char('e') => {
                self.status = Some(match self.export(&self.export_dir.clone()) {
                    Ok(path) => format!("wrote {}", path.display()),
                    Err(e) => format!("export failed: {e:#}"),
                });
            }
            _ => {}
        }
        false
    }

    /// Writes what is on screen (the visible series, the current metric, values, baseline and
    /// differences) as CSV into `dir`; returns the file.
    pub fn export(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let name = format!(
            "compare-{}-{}.csv",
            self.metric.label().to_ascii_lowercase(),
            chrono::Local::now().format("%Y%m%d-%H%M%S")
        );
        let path = dir.join(name);
        let text = compare::csv(&self.visible(), self.base(), &[self.metric]);
        crate::atomic::write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Draws the view.
    pub fn render(&self, f: &mut Frame, theme: &Theme) {
        let [head, chart, table, foot] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Percentage(50),
            Constraint::Min(4),
            Constraint::Length(1),
        ])
        .areas(f.area());
        let visible = self.visible();
        let base = self.base();
        let sessions: std::collections::BTreeSet<&str> =
            self.cmp.series.iter().map(|s| s.session.as_str()).collect();
        let mut header = vec![
            Span::styled("compare ", theme.title),
            Span::styled(
                format!(
                    "{} sessions · {} of {} series · {} · baseline {}",
                    sessions.len(),
                    visible.len(),
                    self.cmp.series.len(),
                    self.metric.label(),
                    base.map_or("none".into(), Series::key)
                ),
                theme.text,
            ),
        ];
        if let Some(re) = &self.filter {
            header.push(Span::styled(
                format!(" · filter /{}/", re.as_str()),
                theme.accent,
            ));
        }
        f.render_widget(Paragraph::new(Line::from(header)), head);
        self.render_chart(f, chart, &visible, theme);
        self.render_table(f, table, &visible, base, theme);
        let footer = match (&self.input, &self.status) {
            (Some(text), _) => Line::from(vec![
                Span::styled("filter (regex over session/arm, enter applies, esc cancels): /", theme.accent),
                Span::styled(text.clone(), theme.text),
            ]),
            (None, Some(status)) => Line::from(Span::styled(status.clone(), theme.warn)),
            (None, None) => Line::from(Span::styled(
                "↑↓ select  b pin baseline  m metric  d values/differences  / filter  e export CSV  q quit",
                theme.dim,
            )),
        };
        f.render_widget(Paragraph::new(footer), foot);
    }

    fn palette(theme: &Theme) -> [Style; 6] {
        [
            theme.student,
            theme.teacher,
            theme.accent,
            theme.good,
            theme.warn,
            theme.bad,
        ]
    }

    fn render_chart(
        &self,
        f: &mut Frame,
        area: ratatui::layout::Rect,
        visible: &[&Series],
        theme: &Theme,
    ) {
        let metric = self.metric;
        let points: Vec<Vec<(f64, f64)>> = visible
            .iter()
            .map(|s| {
                s.days
                    .keys()
                    .filter_map(|&d| s.value(d, metric).map(|v| (f64::from(d), v)))
                    .collect()
            })
            .collect();
        let all = points.iter().flatten();
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in all {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border)
            .title(Span::styled(
                format!(" {} per day ", metric.label()),
                theme.title,
            ));
        if x0 > x1 {
            f.render_widget(
                Paragraph::new("no online days in these series").block(block),
                area,
            );
            return;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-4);
        let (y0, y1) = (y0 - pad, y1 + pad);
        let x1 = x1.max(x0 + 1.0);
        let palette = Self::palette(theme);
        let base_key = self.base().map(Series::key);
        let datasets: Vec<Dataset> = visible
            .iter()
            .zip(&points)
            .enumerate()
            .map(|(i, (s, pts))| {
                let is_base = base_key.as_deref() == Some(s.key().as_str());
                let style = if is_base {
                    theme.text.add_modifier(Modifier::BOLD)
                } else {
                    palette[i % palette.len()]
                };
                Dataset::default()
                    .name(if is_base {
                        format!("{} *", s.key())
                    } else {
                        s.key()
                    })
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(style)
                    .data(pts)
            })
            .collect();
        let chart = Chart::new(datasets)
            .block(block)
            .x_axis(
                Axis::default()
                    .style(theme.dim)
                    .bounds([x0, x1])
                    .labels([format!("day {x0}"), format!("day {x1}")]),
            )
            .y_axis(
                Axis::default()
                    .style(theme.dim)
                    .bounds([y0, y1])
                    .labels([format!("{y0:.3}"), format!("{y1:.3}")]),
            )
            // The table below names each series in its line's colour: a legend would cover the
            // lines of ten series.
            .legend_position(None);
        f.render_widget(chart, area);
    }

    fn render_table(
        &self,
        f: &mut Frame,
        area: ratatui::layout::Rect,
        visible: &[&Series],
        base: Option<&Series>,
        theme: &Theme,
    ) {
        let metric = self.metric;
        let palette = Self::palette(theme);
        let all_days = compare::days_of(visible);
        let key_w = visible
            .iter()
            .map(|s| s.key().len() + 2)
            .max()
            .unwrap_or(8)
            .max(8) as u16;
        // The newest days that fit, after the name and the mean column.
        let fit = usize::from(area.width.saturating_sub(key_w + 2 + 10) / 9);
        let days = &all_days[all_days.len().saturating_sub(fit)..];
        let diffs = self.diffs && base.is_some();
        let mut head = vec![Cell::from("series")];
        head.extend(
            days.iter()
                .map(|d| Cell::from(format!("{:>8}", format!("day {d}")))),
        );
        head.push(Cell::from(if diffs { "  mean Δ" } else { "" }));
        let rows: Vec<Row> = visible
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let is_base = base.is_some_and(|b| std::ptr::eq(*s, b));
                let name_style = if is_base {
                    theme.text.add_modifier(Modifier::BOLD)
                } else {
                    palette[i % palette.len()]
                };
                let mut cells = vec![Cell::from(Span::styled(
                    format!("{}{}", s.key(), if is_base { " *" } else { "" }),
                    name_style,
                ))];
                for &d in days {
                    let (v, signed) = match base {
                        Some(b) if diffs && !is_base => (compare::diff(s, b, d, metric), true),
                        _ => (s.value(d, metric), false),
                    };
                    let text = match v {
                        Some(v) if signed => format!("{v:>+8.4}"),
                        Some(v) => format!("{v:>8.4}"),
                        None => format!("{:>8}", "-"),
                    };
                    // Better is higher AUC, lower LogLoss, bias nearer 0.
                    let style = match (v, signed, metric) {
                        (Some(v), true, CmpMetric::Auc) if v > 0.0 => theme.good,
                        (Some(v), true, CmpMetric::Auc) if v < 0.0 => theme.bad,
                        (Some(v), true, CmpMetric::LogLoss) if v < 0.0 => theme.good,
                        (Some(v), true, CmpMetric::LogLoss) if v > 0.0 => theme.bad,
                        _ => theme.text,
                    };
                    cells.push(Cell::from(Span::styled(text, style)));
                }
                let mean = match base {
                    Some(b) if diffs && !is_base => compare::mean_diff(s, b, &all_days, metric)
                        .map_or(format!("{:>8}", "-"), |m| format!("{m:>+8.4}")),
                    _ => String::new(),
                };
                cells.push(Cell::from(mean));
                let row = Row::new(cells);
                if i == self.selected {
                    row.style(theme.focus.add_modifier(Modifier::REVERSED))
                } else {
                    row
                }
            })
            .collect();
        let mut widths = vec![Constraint::Length(key_w)];
        widths.extend(days.iter().map(|_| Constraint::Length(8)));
        widths.push(Constraint::Length(9));
        let title = if diffs {
            format!(
                " {} · baseline values, others as differences from it ",
                metric.label()
            )
        } else {
            format!(" {} · values ", metric.label())
        };
        let table = Table::new(rows, widths)
            .header(Row::new(head).style(theme.title))
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(theme.border)
                    .title(Span::styled(title, theme.title)),
            );
        f.render_widget(table, area);
    }
}

/// Runs the compare view on the real terminal until `q`; SIGTERM, SIGINT and SIGHUP close it.
pub fn run_compare(
    mut view: CompareView,
    theme: &Theme,
    signals: Option<&crate::signals::SignalState>,
) -> anyhow::Result<()> {
    let mut session = super::terminal::enter(false)?;
    if let Some(s) = signals {
        s.set_console(true);
    }
    let result = (|| -> anyhow::Result<()> {
        loop {
            if signals.is_some_and(|s| s.stop_requested() || s.hung_up()) {
                return Ok(());
            }
            session.terminal.draw(|f| view.render(f, theme))?;
            if crossterm::event::poll(Duration::from_millis(200))? {
                if let Event::Key(key) = crossterm::event::read()? {
                    if view.on_key(key) {
                        return Ok(());
                    }
                }
            }
        }
    })();
    session.leave();
    result
}
