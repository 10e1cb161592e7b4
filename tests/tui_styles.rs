//! The console with its styles: whole-screen snapshots of every cell's colours and modifiers
//! for the default theme, the colour-blind theme and `NO_COLOR`, so a theme, focus or badge
//! colour that changes fails a test (the text-only snapshots of `tui_console.rs` cannot).

use crossadapt::tui::action::Action;
use crossadapt::tui::app::App;
use crossadapt::tui::{app_from_records, fixture, render_to_buffer, Theme};
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Style};

const W: u16 = 100;
const H: u16 = 30;

/// Rows of text, then one line per run of cells sharing a style: `row col..col fg bg mods`.
fn styled(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("-- styles (row: first..last fg bg modifiers) --\n");
    for y in 0..buf.area.height {
        let mut x = 0;
        while x < buf.area.width {
            let style = buf[(x, y)].style();
            let start = x;
            while x < buf.area.width && buf[(x, y)].style() == style {
                x += 1;
            }
            if style.fg.unwrap_or(Color::Reset) == Color::Reset
                && style.bg.unwrap_or(Color::Reset) == Color::Reset
                && style.add_modifier.is_empty()
            {
                continue;
            }
            out.push_str(&format!(
                "{y:2}: {start:3}..{:3} {:?} {:?} {:?}\n",
                x - 1,
                style.fg.unwrap_or(Color::Reset),
                style.bg.unwrap_or(Color::Reset),
                style.add_modifier
            ));
        }
    }
    out
}

/// A running session with the controls focused (the focus colour shows).
fn running() -> App {
    let mut app = app_from_records(&fixture::session(4, true));
    app.act(Action::FocusControls);
    app
}

fn paused() -> App {
    app_from_records(&fixture::paused_session())
}

fn finished() -> App {
    app_from_records(&fixture::finished_session())
}

fn snapshot(theme: &Theme, name: &str) {
    for (what, app) in [
        ("running", running()),
        ("paused", paused()),
        ("done", finished()),
    ] {
        let text = styled(&render_to_buffer(&app, theme, W, H));
        insta::assert_snapshot!(format!("{name}_{what}"), text);
    }
}

#[test]
fn default_theme_styles() {
    snapshot(&Theme::load("default", false).unwrap(), "styled_default");
}

#[test]
fn colorblind_theme_styles() {
    snapshot(
        &Theme::load("colorblind", false).unwrap(),
        "styled_colorblind",
    );
}

#[test]
fn no_color_styles_have_no_colour_at_all() {
    let theme = Theme::load("default", true).unwrap();
    snapshot(&theme, "styled_no_color");
    for app in [running(), paused(), finished()] {
        let buf = render_to_buffer(&app, &theme, W, H);
        for cell in buf.content() {
            let s = cell.style();
            assert!(
                s.fg.unwrap_or(Color::Reset) == Color::Reset
                    && s.bg.unwrap_or(Color::Reset) == Color::Reset,
                "a coloured cell under NO_COLOR: {:?} {s:?}",
                cell.symbol()
            );
        }
    }
}

/// The styled snapshot is sensitive to one colour of a theme: the badge, the focus, an arm.
#[test]
fn changing_one_theme_colour_changes_the_styled_screen() {
    let base = Theme::load("default", false).unwrap();
    let render = |t: &Theme, app: &App| styled(&render_to_buffer(app, t, W, H));
    type Change = fn(&mut Theme);
    let changes: [(&str, Change, App); 3] = [
        (
            "running badge",
            |t| t.running = t.running.bg(Color::Magenta),
            running(),
        ),
        (
            "focus",
            |t| t.focus = t.focus.fg(Color::LightRed),
            running(),
        ),
        (
            "paused badge",
            |t| t.paused = Style::new().bg(Color::Blue),
            paused(),
        ),
    ];
    for (what, change, app) in changes {
        let mut changed = base.clone();
        change(&mut changed);
        assert_ne!(render(&base, &app), render(&changed, &app), "{what}");
    }
}

/// The gate's decisions in the theme's pass (`good`) and fail (`bad`) colours: NOT YET for
/// crossadapt after two passing days of three, then SWITCH after the third.
#[test]
fn gate_styles() {
    let theme = Theme::load("default", false).unwrap();
    for (what, days) in [("not_yet", 1), ("switch", 2)] {
        let app = app_from_records(&fixture::session(days, true));
        let text = styled(&render_to_buffer(&app, &theme, 80, 30));
        insta::assert_snapshot!(format!("styled_gate_{what}_80x30"), text);
    }
}

/// Once a student has switched, its gate row says on which day and after how many online days
/// (`d9 in 3d`: crossadapt passes days 7, 8 and 9), bold in the theme's pass colour; the arms
/// that have not say nothing of the kind. With every arm on one line (a short console) the day
/// replaces the streak.
#[test]
fn the_gate_rows_say_when_a_student_switched() {
    let theme = Theme::load("default", false).unwrap();
    let app = app_from_records(&fixture::session(2, true));
    let buf = render_to_buffer(&app, &theme, 80, 30);
    let row = (0..buf.area.height)
        .map(|y| {
            let text: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
            (y, text)
        })
        .find(|(_, t)| t.contains("crossadapt SWITCH"))
        .expect("crossadapt's gate row");
    let (y, text) = row;
    let at = text.find("d9 in 3d").unwrap_or_else(|| panic!("{text}"));
    let x = text[..at].chars().count() as u16;
    let style = buf[(x, y)].style();
    assert_eq!(style.fg, theme.good.fg, "{text}");
    assert!(style.add_modifier.contains(ratatui::style::Modifier::BOLD));
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        if line.contains("NOT YET") {
            assert!(!line.contains(" in "), "{line}");
        }
    }
    // One line for every arm: the switched arm shows its day instead of its streak.
    let buf = render_to_buffer(&app, &theme, 80, 24);
    let text: String = (0..buf.area.height)
        .flat_map(|y| (0..buf.area.width).map(move |x| (x, y)))
        .map(|(x, y)| buf[(x, y)].symbol().to_string())
        .collect();
    assert!(text.contains("SWITCH d9"), "{text}");
}

/// A console attached read-only (`attach --view`, or another holds the controller lease): the
/// header's READ-ONLY mark and its warning colour, at the smallest full layout.
#[test]
fn a_read_only_console_marks_its_header() {
    let mut app = running();
    app.read_only = Some("read-only viewer (attached with --view)".into());
    let theme = Theme::load("default", false).unwrap();
    let text = styled(&render_to_buffer(&app, &theme, 80, 24));
    assert!(
        text.lines().next().is_some_and(|l| l.contains("READ-ONLY")),
        "{text}"
    );
    insta::assert_snapshot!("styled_read_only_80x24", text);
}
