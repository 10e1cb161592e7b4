//! `crossadapt compare` on the two demo sessions of the repository: the console's compare view
//! as a `TestBackend` snapshot (default, filtered, another baseline), its CSV export, and the
//! headless table.

use std::path::PathBuf;
use std::process::Command;

use crossadapt::cli::ops::load_comparison;
use crossadapt::session::compare::CmpMetric;
use crossadapt::session::Store;
use crossadapt::tui::compare::CompareView;
use crossadapt::tui::{buffer_text, Theme};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn demo(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sessions")
        .join(name)
        .display()
        .to_string()
}

fn demo_view() -> (tempfile::TempDir, CompareView) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(Some(tmp.path().to_path_buf())).unwrap();
    let cmp = load_comparison(&store, &[demo("default-benchmark"), demo("operator-demo")]).unwrap();
    (tmp, CompareView::new(cmp, None, None))
}

fn screen(view: &CompareView, w: u16, h: u16) -> String {
    let theme = Theme::load("default", true).unwrap();
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| view.render(f, &theme)).unwrap();
    buffer_text(terminal.backend().buffer())
}

fn press(view: &mut CompareView, keys: &str) {
    for c in keys.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            c => KeyCode::Char(c),
        };
        view.on_key(KeyEvent::new(code, KeyModifiers::NONE));
    }
}

#[test]
fn the_demo_sessions_side_by_side() {
    let (_tmp, view) = demo_view();
    // Two sessions, of six arms (the default benchmark, with retrain) and five, the first
    // session's crossadapt arm the baseline.
    assert_eq!(view.cmp.series.len(), 11);
    let base = &view.cmp.series[view.baseline.unwrap()];
    assert_eq!(base.arm, "crossadapt");
    insta::assert_snapshot!("compare_demo_140x40", screen(&view, 140, 40));
}

#[test]
fn filtering_pinning_and_switching_the_metric() {
    let (tmp, mut view) = demo_view();
    // Only the crossadapt arms of both sessions.
    press(&mut view, "/crossadapt$\n");
    let visible: Vec<String> = view.visible().iter().map(|s| s.arm.clone()).collect();
    assert_eq!(visible, ["crossadapt", "crossadapt"]);
    // Pin the second session's arm, show LogLoss.
    press(&mut view, "jbm");
    assert_eq!(view.metric, CmpMetric::LogLoss);
    let base = view.cmp.series[view.baseline.unwrap()].clone();
    assert_eq!(base.session, view.visible()[1].session);
    insta::assert_snapshot!("compare_filtered_logloss_140x30", screen(&view, 140, 30));
    // A bad regex is said, the filter stays.
    press(&mut view, "/(\n");
    assert!(view.status.as_deref().unwrap().starts_with("not a regex"));
    assert_eq!(view.visible().len(), 2);
    // `e` exports exactly what is on screen.
    view.export_dir = tmp.path().to_path_buf();
    press(&mut view, "e");
    let status = view.status.clone().unwrap();
    let path = PathBuf::from(status.strip_prefix("wrote ").unwrap());
    let csv = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "metric,session,session_name,arm,day,value,baseline,diff"
    );
    assert!(lines[1..]
        .iter()
        .all(|l| l.starts_with("LogLoss,") && l.contains(",crossadapt,")));
    // Two series of twelve online days.
    assert_eq!(lines.len(), 1 + 2 * 12, "{csv}");
    // The baseline's own rows differ from it by zero.
    let base_rows = lines.iter().filter(|l| l.contains(&base.session)).count();
    assert_eq!(base_rows, 12);
    assert!(lines
        .iter()
        .filter(|l| l.contains(&base.session))
        .all(|l| l.ends_with(",0")));
}

#[test]
fn headless_compare_prints_the_baseline_and_the_differences() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("cmp.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_crossadapt"))
        .env("CROSSADAPT_SESSIONS_DIR", tmp.path())
        .args([
            "compare",
            "--headless",
            "--metric",
            "auc",
            "--filter",
            "/(kd|crossadapt)$",
        ])
        .arg(demo("default-benchmark"))
        .arg(demo("operator-demo"))
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    insta::assert_snapshot!("compare_headless_auc", text);
    let rows = std::fs::read_to_string(&csv).unwrap().lines().count();
    assert_eq!(rows, 1 + 4 * 12);
    // A baseline that names no series fails, naming the ones there are.
    let out = Command::new(env!("CARGO_BIN_EXE_crossadapt"))
        .env("CROSSADAPT_SESSIONS_DIR", tmp.path())
        .args(["compare", "--headless", "--baseline", "nope/kd"])
        .arg(demo("default-benchmark"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no series \"nope/kd\"") && err.contains("/crossadapt"),
        "{err}"
    );
}
