//! The examples shipped in `data/` stay readable, and the CLI fails cleanly on bad input.

use std::path::Path;

use assert_cmd::Command;
use crossadapt::data::inspect::inspect;
use crossadapt::data::DataConfig;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn shipped_samples_open_with_their_schemas() {
    let cases = [
        ("data/sample-criteo.txt", "data/criteo.toml", 7),
        ("data/sample-avazu.csv", "data/avazu.toml", 3),
        ("data/sample-events.csv", "data/events.toml", 3),
        (
            "data/sample-synthetic",
            "data/sample-synthetic/schema.toml",
            3,
        ),
    ];
    for (path, schema, days) in cases {
        let cfg = DataConfig::Table {
            path: repo(path),
            schema: repo(schema),
            period: None,
            days: None,
        };
        let src = cfg.open().unwrap_or_else(|e| panic!("{path}: {e:#}"));
        assert_eq!(src.num_days(), days, "{path}");
        let report = inspect(src.as_ref(), 10).unwrap_or_else(|e| panic!("{path}: {e:#}"));
        assert!(report.days.iter().all(|d| d.rows > 0), "{path}");
    }
}

#[test]
fn cli_inspect_reports_json_and_fails_cleanly() {
    let out = Command::cargo_bin("crossadapt")
        .expect("binary")
        .args(["data", "inspect", "synthetic:tiny", "--json"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["days"].as_array().map(Vec::len), Some(10));

    let out = Command::cargo_bin("crossadapt")
        .expect("binary")
        .args(["data", "inspect", "no-such-file.csv"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-file.csv") && !err.contains("panicked"),
        "{err}"
    );
}
