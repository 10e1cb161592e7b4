//! The binary killed at random moments, seeded: SIGKILL, SIGHUP, SIGTERM and a real hangup (the
//! run's pseudo-terminal closed, as sshd closes it when a link drops), of a whole run
//! (teacher, offline stage, online days) and of a fork whose operator parameters differ from
//! its parent's. Every kill must be shown to have interrupted a running session (the process
//! was alive and its log had no `Finished` record); after `resume`, every (arm, day) metric must
//! equal the uninterrupted run's and the fork's parameter change must still be in force.
//!
//! `CROSSADAPT_CRASH_KILLS=20` runs 20 kills instead of the default 4 (one of each), and
//! `CROSSADAPT_CRASH_SEED` picks other moments; docs/reliability.md has the 20-kill result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crossadapt::engine::config::TINY_SETS;
use crossadapt::engine::events::{EngineEvent, EvalMetrics, Params};
use crossadapt::session::read_log;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod pty_common;

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");

/// The fork's change: what the test checks survives every kill.
const FORK_SET: &str = "online.replay_ratio=0.3";
const FORK_DAY: &str = "7";

fn tiny_args() -> Vec<String> {
    TINY_SETS
        .iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect()
}

fn crossadapt(store: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--sessions-dir").arg(store).args(args);
    cmd.stdin(Stdio::null());
    cmd
}

fn run_ok(store: &Path, args: &[String]) -> Output {
    let out = crossadapt(store, args).output().expect("binary runs");
    assert!(
        out.status.success(),
        "crossadapt {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sessions(store: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(store)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        // A kill during `create` can leave its `.creating-ID` staging folder, which holds
        // session.json before status.json: not a session.
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter(|p| p.join("session.json").exists())
        .collect();
    dirs.sort();
    dirs
}

fn id_of(dir: &Path) -> String {
    dir.file_name().unwrap().to_str().unwrap().to_string()
}

type Metrics = BTreeMap<(String, u32), EvalMetrics>;

fn metrics_of(dir: &Path) -> Metrics {
    let mut out = BTreeMap::new();
    for r in read_log(&dir.join("events.jsonl")).unwrap() {
        if let EngineEvent::DayMetrics {
            arm, day, metrics, ..
        } = r.event
        {
            let previous = out.insert((arm.clone(), day), metrics);
            assert!(previous.is_none(), "({arm}, {day}) logged twice");
        }
    }
    out
}

fn finished(dir: &Path) -> bool {
    read_log(&dir.join("events.jsonl"))
        .unwrap_or_default()
        .iter()
        .any(|r| matches!(r.event, EngineEvent::Finished { .. }))
}

/// The parameters in force at the end of the log (the last `ParamsChanged`, else the start's).
fn final_params(dir: &Path) -> Option<Params> {
    let mut params = None;
    for r in read_log(&dir.join("events.jsonl")).unwrap() {
        match r.event {
            EngineEvent::SessionStarted { params: p, .. } => params = Some(p),
            EngineEvent::ParamsChanged { params: p, .. } => params = Some(p),
            _ => {}
        }
    }
    params
}

/// One way to start the process that gets killed.
struct Job {
    args: Vec<String>,
    reference: Metrics,
    /// The uninterrupted run's final parameters.
    params: Option<Params>,
    /// How long the uninterrupted run took.
    took: Duration,
}

fn reference(store: &Path, args: &[String]) -> Job {
    let before = sessions(store);
    let started = Instant::now();
    run_ok(store, args);
    let took = started.elapsed();
    let dir = sessions(store)
        .into_iter()
        .find(|d| !before.contains(d))
        .expect("the run created its session");
    Job {
        args: args.to_vec(),
        reference: metrics_of(&dir),
        params: final_params(&dir),
        took,
    }
}

#[derive(Clone, Copy, Debug)]
enum Sig {
    Kill,
    Hup,
    Term,
    /// No signal from the test: the run's terminal is closed (the kernel sends SIGHUP to its
    /// controlling process, and every later write to the terminal fails).
    Hangup,
}

impl Sig {
    fn number(self) -> Option<i32> {
        match self {
            Sig::Kill => Some(libc::SIGKILL),
            Sig::Hup => Some(libc::SIGHUP),
            Sig::Term => Some(libc::SIGTERM),
            Sig::Hangup => None,
        }
    }
}

/// Starts `args` and interrupts it with `sig` after `at`: whether it was still running then,
/// its exit status and what it wrote on stderr (for a hangup, its terminal before the hangup).
fn interrupt(
    store: &Path,
    args: &[String],
    sig: Sig,
    at: Duration,
) -> (bool, std::process::ExitStatus, String) {
    let mut cmd = crossadapt(store, args);
    let Some(number) = sig.number() else {
        let mut pty = pty_common::spawn_in_pty_as(&mut cmd, true);
        std::thread::sleep(at);
        let alive = pty.child.try_wait().unwrap().is_none();
        pty.close();
        let status = pty.child.wait().unwrap();
        let text = String::from_utf8_lossy(&pty.output.lock().unwrap()).into_owned();
        return (alive, status, text);
    };
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(at);
    let alive = child.try_wait().unwrap().is_none();
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for yet.
    unsafe {
        libc::kill(child.id() as i32, number);
    }
    let out = child.wait_with_output().unwrap();
    (
        alive,
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn random_kills_hups_and_terms_resume_to_the_uninterrupted_numbers() {
    let kills: usize = std::env::var("CROSSADAPT_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("CROSSADAPT_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(13);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let store = tempfile::tempdir().unwrap();
    let store = store.path();

    let mut run_args = vec!["run".to_string(), "--headless".to_string()];
    run_args.extend(tiny_args());
    let whole = reference(store, &run_args);
    assert_eq!(whole.reference.len(), 30);
    let parent = id_of(&sessions(store)[0]);
    let fork_args: Vec<String> = [
        "fork",
        &parent,
        "--from-day",
        FORK_DAY,
        "--headless",
        "--set",
        FORK_SET,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let fork = reference(store, &fork_args);
    assert_eq!(fork.params.as_ref().map(|p| p.replay_ratio), Some(0.3));
    assert_ne!(
        fork.reference, whole.reference,
        "the fork's change must show"
    );

    let signals = [Sig::Kill, Sig::Hup, Sig::Term, Sig::Hangup];
    let mut summary = Vec::new();
    let mut attempts = 0;
    while summary.len() < kills {
        attempts += 1;
        assert!(attempts <= kills * 4, "too few kills landed inside a run");
        let sig = signals[summary.len() % signals.len()];
        let job = if rng.random_bool(0.5) { &whole } else { &fork };
        // Anywhere from just after start-up (the handlers are in place) to a little before the
        // uninterrupted run's end.
        let at = job
            .took
            .mul_f64(rng.random_range(0.0..0.9))
            .max(Duration::from_millis(150));
        let before = sessions(store);
        let (alive, exit, mut stderr) = interrupt(store, &job.args, sig, at);
        let Some(dir) = sessions(store).into_iter().find(|d| !before.contains(d)) else {
            assert!(!stderr.contains("panicked"), "{sig:?}: {stderr}");
            // Killed before the session folder existed: nothing to resume; try another moment.
            continue;
        };
        // After a hangup the process writes to the session's output.log.
        stderr += &std::fs::read_to_string(dir.join(crossadapt::signals::OUTPUT_FILE))
            .unwrap_or_default();
        assert!(!stderr.contains("panicked"), "{sig:?}: {stderr}");
        let done_at_signal = finished(&dir);
        if !alive || (done_at_signal && !matches!(sig, Sig::Hup | Sig::Hangup)) {
            continue; // the run ended before the signal: not an interruption
        }
        let id = id_of(&dir);
        let status = std::fs::read_to_string(dir.join("status.json")).unwrap();
        match sig {
            Sig::Hup | Sig::Hangup => {
                // The run kept going headless and finished by itself.
                assert!(exit.success(), "{sig:?} ended the run: {stderr}");
                assert!(finished(&dir), "{sig:?}: the run did not finish");
                assert!(status.contains("\"done\""), "{status}");
            }
            Sig::Term => {
                // A clean stop: exit 0, a truthful status, a checkpoint at the stop.
                assert!(exit.success(), "SIGTERM: {stderr}");
                if !finished(&dir) {
                    assert!(status.contains("\"interrupted\""), "{status}");
                }
            }
            Sig::Kill => assert!(!exit.success()),
        }
        let interrupted = !finished(&dir);
        if interrupted {
            let out = run_ok(store, &["resume".into(), id.clone(), "--headless".into()]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
        let what = if std::ptr::eq(job, &whole) {
            "run"
        } else {
            "fork"
        };
        let got = metrics_of(&dir);
        assert_eq!(got.len(), job.reference.len(), "{sig:?} at {at:?}");
        for (key, m) in &job.reference {
            assert_eq!(
                got.get(key),
                Some(m),
                "{key:?} after {sig:?} at {at:?} ({what})"
            );
        }
        assert_eq!(
            final_params(&dir),
            job.params,
            "{sig:?} at {at:?}: a change was lost"
        );
        summary.push(format!(
            "{sig:?} at {:.2}s of {:.2}s ({}){}",
            at.as_secs_f64(),
            job.took.as_secs_f64(),
            if std::ptr::eq(job, &whole) {
                "run"
            } else {
                "fork"
            },
            if interrupted {
                ", resumed"
            } else {
                ", continued headless"
            }
        ));
    }
    eprintln!(
        "{} signals (seed {seed}), every one inside a running session, every resume equal to the uninterrupted run:\n  {}",
        summary.len(),
        summary.join("\n  ")
    );
}
