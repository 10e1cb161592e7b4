//! Reducer tests: records and keys in, state and effects out.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::action::{Action, Effect, Mode, Seek};
use super::app::{App, Badge, Focus, Metric, View};
use super::control::Control;
use super::fixture;
use super::keymap::Keymap;
use crate::protocol::{
    EngineCommand, EngineEvent, Lifecycle, ParamPatch, Position, Record, Stage,
    EVENT_SCHEMA_VERSION,
};

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn record(seq: u64, event: EngineEvent) -> Record {
    Record {
        v: EVENT_SCHEMA_VERSION,
        seq,
        t: seq as f64,
        event,
    }
}

fn live(records: &[Record]) -> App {
    App::from_records(Mode::Live, records)
}

#[test]
fn records_fill_the_series_timeline_drift_and_stage() {
    let app = live(&fixture::session(3, true));
    let m = app.live();
    assert_eq!(m.name, "deepfm vs mlp on synthetic");
    assert_eq!(m.arms.len(), 4);
    assert_eq!(m.arms[3].days.len(), 3);
    assert!(m.arms.iter().all(|a| a.offline.is_some()));
    assert_eq!(m.stage, Stage::Online);
    assert_eq!(m.stage_label(), "online day 4 of 7 (day 10) [kd]");
    let ticks = m.arm("kd").and_then(|a| a.ticks.as_ref()).unwrap();
    assert_eq!(
        (ticks.day, ticks.batches, ticks.student.len()),
        (10, 24, 24)
    );
    let ca = m.arm("crossadapt").and_then(|a| a.ticks.as_ref()).unwrap();
    assert_eq!(ca.day, 9, "crossadapt has not started day 10");
    assert_eq!(ca.teacher.len(), 14, "every 3 batches and the last");
    assert_eq!(m.drift_now.as_ref().map(|d| d.day), Some(10));
    assert_eq!(m.drift.len(), 4);
    assert_eq!(app.badge(), Badge::Running);
    assert_eq!(
        app.day_range(),
        Some((6, 10)),
        "offline point on the switch day 6"
    );
}

#[test]
fn space_pauses_then_resumes_and_the_badge_follows_the_engine() {
    let mut app = live(&fixture::session(2, true));
    assert_eq!(
        app.on_key(key(' ')),
        Some(Effect::Engine(EngineCommand::Pause))
    );
    assert_eq!(app.pause_request, Some(true));
    assert_eq!(
        app.badge(),
        Badge::Running,
        "not paused until the engine says so"
    );
    let at = Position::default();
    app.apply(&record(
        900,
        EngineEvent::Operator {
            command: EngineCommand::Pause,
            at: at.clone(),
        },
    ));
    assert_eq!(app.live().lifecycle, Lifecycle::Pausing);
    assert_eq!(app.pause_request, None);
    app.apply(&record(901, EngineEvent::Paused { at: at.clone() }));
    assert_eq!(app.badge(), Badge::Paused);
    assert_eq!(
        app.on_key(key(' ')),
        Some(Effect::Engine(EngineCommand::Resume))
    );
    app.apply(&record(902, EngineEvent::Resumed { at }));
    assert_eq!(app.badge(), Badge::Running);
}

#[test]
fn quick_presses_alternate_even_before_the_engine_answers() {
    let mut app = live(&fixture::session(2, true));
    let pause = Some(Effect::Engine(EngineCommand::Pause));
    let resume = Some(Effect::Engine(EngineCommand::Resume));
    assert_eq!(app.on_key(key(' ')), pause);
    assert_eq!(app.on_key(key(' ')), resume);
    assert_eq!(app.on_key(key(' ')), pause);
    // The engine applies the first two; the third is still on its way.
    for (i, command) in [EngineCommand::Pause, EngineCommand::Resume]
        .into_iter()
        .enumerate()
    {
        app.apply(&record(
            900 + i as u64,
            EngineEvent::Operator {
                command,
                at: Position::default(),
            },
        ));
    }
    assert_eq!(app.pause_request, Some(true));
    assert_eq!(app.on_key(key(' ')), resume);
}

#[test]
fn freezing_keeps_the_view_while_records_keep_arriving() {
    let records = fixture::session(2, false);
    let mut app = live(&records[..records.len() - 30]);
    let before = app.view_model().records;
    assert_eq!(app.on_key(key('f')), None);
    assert_eq!(app.badge(), Badge::Frozen);
    for r in &records[records.len() - 30..] {
        app.apply(r);
    }
    assert_eq!(app.view_model().records, before);
    assert_eq!(app.live().records, records.len() as u64);
    app.on_key(key('f'));
    assert_eq!(app.view_model().records, records.len() as u64);
}

#[test]
fn editing_a_control_sends_a_patch_that_stays_pending_until_confirmed() {
    let mut app = live(&fixture::session(2, true));
    assert_eq!(app.on_key(key('c')), None);
    assert_eq!(app.focus, Focus::Controls);
    app.on_key(code(KeyCode::Down)); // replay ratio
    assert_eq!(app.on_key(code(KeyCode::Enter)), None);
    assert!(app.edit.is_some());
    app.on_key(code(KeyCode::Right));
    app.on_key(code(KeyCode::Right));
    let effect = app.on_key(code(KeyCode::Enter));
    let expected = ParamPatch {
        replay_ratio: Some(0.2),
        ..Default::default()
    };
    assert_eq!(
        effect,
        Some(Effect::Engine(EngineCommand::SetParams {
            patch: expected.clone()
        }))
    );
    assert_eq!(app.pending, expected);
    let mut params = fixture::params();
    params.replay_ratio = 0.2;
    app.apply(&record(
        900,
        EngineEvent::ParamsChanged {
            params,
            at: Position::default(),
        },
    ));
    assert_eq!(app.pending, ParamPatch::default());
    assert_eq!(app.confirmed, vec![Control::ReplayRatio]);
    assert!(app
        .live()
        .log
        .last()
        .is_some_and(|l| l.text.contains("replay ratio 0.10 → 0.20")));
}

#[test]
fn typed_values_are_validated_before_anything_is_sent() {
    let mut app = live(&fixture::session(1, true));
    app.on_key(key('c'));
    for _ in 0..3 {
        app.on_key(code(KeyCode::Down)); // distill weight min
    }
    app.on_key(code(KeyCode::Enter));
    for _ in 0..4 {
        app.on_key(code(KeyCode::Backspace));
    }
    for c in "0.95".chars() {
        app.on_key(key(c));
    }
    assert_eq!(app.on_key(code(KeyCode::Enter)), None);
    let err = app.edit.as_ref().and_then(|e| e.error.clone()).unwrap();
    assert!(err.contains("distill_min"), "{err}");
    assert_eq!(app.on_key(code(KeyCode::Esc)), None);
    assert!(app.edit.is_none());
    assert_eq!(app.pending, ParamPatch::default());
}

#[test]
fn a_refused_change_clears_the_pending_value() {
    let mut app = live(&fixture::session(1, true));
    app.pending.sampling_ratio = Some(0.5);
    app.apply(&record(
        900,
        EngineEvent::ParamsRefused {
            field: "sampling_ratio".into(),
            reason: "sampling_ratio must be in (0, 1], got 0".into(),
            at: Position::default(),
        },
    ));
    assert_eq!(app.pending, ParamPatch::default());
}

#[test]
fn zoom_follows_the_newest_day_and_resets() {
    let mut app = live(&fixture::session(7, false));
    assert_eq!(app.day_range(), Some((6, 13)));
    assert_eq!(app.window(), 8);
    app.on_key(key('+'));
    assert_eq!(app.window(), 4);
    app.on_key(key('+'));
    app.on_key(key('+'));
    assert_eq!(app.window(), 2, "never below two days");
    app.on_key(key('-'));
    assert_eq!(app.window(), 4);
    app.on_key(key('='));
    assert_eq!(app.zoom, None);
    assert_eq!(app.window(), 8);
}

#[test]
fn checkpoint_quit_help_and_metric_keys() {
    let mut app = live(&fixture::session(1, true));
    assert_eq!(
        app.on_key(key('s')),
        Some(Effect::Engine(EngineCommand::Checkpoint))
    );
    assert_eq!(app.on_key(key('m')), None);
    assert_eq!(app.metric, Metric::LogLoss);
    app.on_key(key('?'));
    assert!(app.help);
    assert_eq!(app.on_key(key(' ')), None, "help swallows other keys");
    app.on_key(code(KeyCode::Esc));
    assert!(!app.help);
    assert_eq!(app.on_key(key('q')), Some(Effect::Quit));
    let release = KeyEvent {
        kind: KeyEventKind::Release,
        ..key('q')
    };
    assert_eq!(app.on_key(release), None, "only presses count");
}

#[test]
fn stop_needs_a_second_press_and_any_other_key_cancels_it() {
    let mut app = live(&fixture::session(3, true));
    let shift_s = KeyEvent::new(KeyCode::Char('S'), KeyModifiers::SHIFT);
    assert_eq!(app.on_key(shift_s), None);
    assert!(app.stop_armed);
    // Another key in between: the stop is forgotten.
    app.on_key(key('m'));
    assert!(!app.stop_armed);
    assert_eq!(app.on_key(shift_s), None);
    assert_eq!(
        app.on_key(shift_s),
        Some(Effect::Engine(EngineCommand::Stop))
    );
    // Nothing to stop after the end.
    let mut done = live(&fixture::finished_session());
    assert_eq!(done.on_key(shift_s), None);
    assert_eq!(done.on_key(shift_s), None);
}

#[test]
fn finishing_opens_the_summary_and_stops_engine_commands() {
    let mut app = live(&fixture::finished_session());
    assert_eq!(app.view, View::Summary);
    assert_eq!(app.badge(), Badge::Done);
    let verdict = app.live().verdict(None);
    assert_eq!(verdict.arms.len(), 4);
    assert!(verdict.headline.time_fraction_vs_scratch.is_some());
    assert_eq!(app.on_key(key(' ')), None);
    assert_eq!(app.on_key(key('s')), None);
    app.on_key(key('v'));
    assert_eq!(app.view, View::Dashboard);
}

#[test]
fn replay_keys_drive_the_transport_not_the_engine() {
    let mut app = App::new(Mode::Replay, Keymap::default());
    assert_eq!(app.badge(), Badge::Replay);
    assert_eq!(app.on_key(key(' ')), None);
    assert_eq!(app.badge(), Badge::Paused);
    app.on_key(key('>'));
    app.on_key(key('>'));
    assert_eq!(app.playback.as_ref().map(|p| p.speed), Some(4.0));
    app.on_key(key('<'));
    assert_eq!(app.playback.as_ref().map(|p| p.speed), Some(2.0));
    assert_eq!(app.on_key(key(']')), Some(Effect::Seek(Seek::NextDay)));
    assert_eq!(app.on_key(key('[')), Some(Effect::Seek(Seek::PrevDay)));
    assert_eq!(app.on_key(key('s')), None, "no checkpoints in a replay");
    app.act(Action::FocusControls);
    assert_eq!(app.on_key(code(KeyCode::Enter)), None);
    assert!(app.edit.is_none(), "controls are read-only in a replay");
}

#[test]
fn an_engine_error_shows_the_error_badge() {
    let mut app = live(&fixture::session(1, true));
    app.apply(&record(
        900,
        EngineEvent::Error {
            message: "disk full".into(),
        },
    ));
    assert_eq!(app.badge(), Badge::Error);
    assert!(app
        .live()
        .log
        .last()
        .is_some_and(|l| l.text.contains("disk full")));
}

#[test]
fn rendering_never_panics_at_any_size() {
    let theme = super::Theme::default_theme(false);
    for records in [
        Vec::new(),
        fixture::session(0, true),
        fixture::paused_session(),
        fixture::finished_session(),
    ] {
        let mut app = live(&records);
        for (w, h) in [
            (0, 0),
            (1, 1),
            (20, 5),
            (79, 24),
            (80, 23),
            (80, 24),
            (100, 30),
            (120, 36),
            (200, 60),
        ] {
            app.help = false;
            let _ = super::render_to_string(&app, &theme, w, h);
            app.help = true;
            let _ = super::render_to_string(&app, &theme, w, h);
        }
        app.help = false;
        app.view = View::Dashboard;
        for _ in 0..5 {
            app.on_key(key('+'));
        }
        let _ = super::render_to_string(&app, &theme, 80, 24);
    }
}

#[test]
fn a_tuned_run_logs_the_protocols_choice() {
    let app = live(&fixture::tuned_finished_session());
    let line = app
        .live()
        .log
        .iter()
        .find(|l| l.text.starts_with("tuned on retained day 6"))
        .expect("a log line for the tuning");
    assert_eq!(line.kind, super::model::LogKind::Stage);
    assert!(
        line.text.contains("kd 2/2") && line.text.contains("online values (days 5-6) 2/2"),
        "{}",
        line.text
    );
}
