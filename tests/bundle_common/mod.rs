//! Running the binary from the bundle tests: against a sessions folder of the test's own, with
//! no standard input, so a prompt can never wait for an answer.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_crossadapt");

/// `crossadapt --sessions-dir STORE ARGS...`, whatever its exit.
pub fn crossadapt(store: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--sessions-dir")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

/// The same, which must succeed; the failure shows its stderr.
pub fn ok(store: &Path, args: &[&str]) -> Output {
    let out = crossadapt(store, args);
    assert!(
        out.status.success(),
        "crossadapt {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
