//! `crossadapt train` on the built-in synthetic stream, and its bad input.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");

fn train(args: &[&str]) -> std::process::Output {
    Command::new(BIN).arg("train").args(args).output().unwrap()
}

#[test]
fn trains_on_synthetic_days_and_prints_the_metrics() {
    let out = train(&[
        "--model",
        "lr",
        "--days",
        "0..4",
        "--valid-day",
        "4",
        "--eval-day",
        "5",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for key in [
        "auc=",
        "logloss=",
        "bias=",
        "seconds=",
        "samples=80000",
        "samples_per_sec=",
        "valid_day=4",
        "valid_auc=",
    ] {
        assert!(stdout.contains(key), "{key} missing: {stdout}");
    }
    let auc: f64 = stdout
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("auc="))
        .and_then(|v| v.parse().ok())
        .expect("an AUC");
    assert!(auc > 0.55, "the stream is learnable: {auc}");
}

#[test]
fn bad_arguments_fail_with_one_sentence() {
    for (args, needle) in [
        (vec!["--model", "transformerx"], "transformerx"),
        (vec!["--days", "5..5"], "empty"),
        (vec!["--rows-per-day", "0"], "rows-per-day"),
        (vec!["--emb-optimizer", "sgd"], "sgd"),
        (vec!["--days", "0..8", "--valid-day", "3"], "training days"),
    ] {
        let out = train(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `bench train` prints the steady state and the first and last steps, names the CPU, and runs
/// with denormals flushed: `main` set the bits before any thread existed.
#[test]
fn bench_reports_the_steady_state_with_denormals_flushed() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "train",
            "--model",
            "mlp",
            "--emb",
            "4",
            "--hidden",
            "8",
            "--batch",
            "64",
            "--fields",
            "3",
            "--ids",
            "10",
            "--threads",
            "1",
            "--steps",
            "6",
            "--warmup",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for key in [
        "steps=6",
        "steady_samples_per_sec=",
        "first_ms=",
        "last_ms=",
        "cpu=\"",
    ] {
        assert!(stdout.contains(key), "{key} missing: {stdout}");
    }
    if cfg!(target_arch = "x86_64") {
        assert!(stdout.contains("ftz=on"), "{stdout}");
    }
}
