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
        ("data/sample-avazu.csv", "data/avazu.toml", 10),
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

/// The Criteo and Avazu samples are written by this generator from the tiny synthetic stream
/// (so their clicks follow real signal, with the stream's shock): `CROSSADAPT_WRITE_SAMPLES=1
/// cargo test --test data_samples` rewrites them; otherwise the test checks the shipped files
/// are exactly what it writes.
#[test]
fn criteo_and_avazu_samples_are_what_the_generator_writes() {
    use crossadapt::data::source::mix64;
    use crossadapt::data::{DaySource, SynthConfig, SyntheticSource};

    let source = |days: usize, rows: usize| {
        SyntheticSource::new(SynthConfig {
            days,
            rows_per_day: rows,
            seed: 11,
            ..SynthConfig::preset("tiny").expect("tiny")
        })
        .expect("source")
    };
    // Criteo: 7 blocks of 60 rows. I1-I8 are small counts of the 8 synthetic fields' ids, I9-I13
    // counts of nothing (noise); C1-C8 the ids hashed, C9-C26 pairs of ids hashed (crosses).
    let src = source(7, 60);
    let mut criteo = String::new();
    for d in 0..7 {
        let day = src.raw_day(d).expect("day");
        let nc = day.num_cat;
        for r in 0..day.rows() {
            let keys = &day.cat[r * nc..(r + 1) * nc];
            let mut cols = vec![format!("{}", day.label[r] as u8)];
            for j in 0..13 {
                let v = if j < nc {
                    keys[j] % 40
                } else {
                    mix64(keys[0] ^ j as u64) % 7
                };
                // Missing now and then, as in the real data.
                let missing = mix64(keys[j % nc] ^ ((j as u64) << 32)).is_multiple_of(9);
                cols.push(if missing {
                    String::new()
                } else {
                    v.to_string()
                });
            }
            for j in 0..26u64 {
                let (a, b) = ((j as usize) % nc, (j as usize / nc + j as usize) % nc);
                let k = if j < nc as u64 {
                    mix64(keys[a])
                } else {
                    mix64(keys[a] ^ keys[b].rotate_left(17))
                };
                cols.push(format!("{:08x}", k >> 40));
            }
            criteo += &cols.join("\t");
            criteo.push('\n');
        }
    }
    // Avazu: 10 days (2014-10-21 to 30) of 48 rows; the synthetic `hour` field gives the hour.
    let src = source(10, 48);
    let names = src.cat_fields();
    let hour_field = names.iter().position(|n| n == "hour").expect("hour field");
    let mut avazu = String::from(
        "id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,app_category,device_id,device_ip,device_model,device_type,device_conn_type,C14,C15,C16,C17,C18,C19,C20,C21\n",
    );
    let mut id = 10_000u64;
    for d in 0..10 {
        let day = src.raw_day(d).expect("day");
        let nc = day.num_cat;
        let mut rows: Vec<(u64, String)> = (0..day.rows())
            .map(|r| {
                let keys = &day.cat[r * nc..(r + 1) * nc];
                let hour = keys[hour_field] % 24;
                let mut cols = Vec::new();
                for j in 0..21usize {
                    let k = keys[j % nc] ^ if j < nc { 0 } else { keys[(j + 3) % nc] << 7 };
                    cols.push(match j {
                        0 => format!("{}", 1005 + k % 3),
                        1 => format!("{}", k % 2),
                        j if j < 13 => format!("{:08x}", mix64(k) >> 40),
                        _ => format!("{}", 15_000 + mix64(k) % 100),
                    });
                }
                let line = format!(
                    "{},{}{:02},{}\n",
                    day.label[r] as u8,
                    141_021 + d,
                    hour,
                    cols.join(",")
                );
                (hour, line)
            })
            .collect();
        rows.sort_by_key(|(h, _)| *h);
        for (_, line) in rows {
            id += 1;
            avazu += &format!("{id},{line}");
        }
    }
    for (file, text) in [
        ("data/sample-criteo.txt", criteo),
        ("data/sample-avazu.csv", avazu),
    ] {
        let path = repo(file);
        if std::env::var_os("CROSSADAPT_WRITE_SAMPLES").is_some() {
            std::fs::write(&path, &text).expect("write sample");
        }
        let shipped = std::fs::read_to_string(&path).expect("read sample");
        assert!(
            shipped == text,
            "{file} differs from its generator (CROSSADAPT_WRITE_SAMPLES=1 rewrites it)"
        );
    }
}
