//! Loaders on small files the tests write: Criteo-like, Avazu-like, generic CSV and Parquet,
//! the synthetic export read back, and malformed inputs failing with one clear sentence.

use std::path::{Path, PathBuf};

use crossadapt::data::export::{synthetic_schema, write_synthetic};
use crossadapt::data::{
    DataConfig, DaySource, SynthConfig, SyntheticSource, TableSchema, TableSource,
};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write fixture");
    p
}

fn open_err(cfg: DataConfig) -> String {
    match cfg.open() {
        Ok(src) => match (0..src.num_days())
            .map(|d| src.raw_day(d))
            .find_map(Result::err)
        {
            Some(e) => format!("{e:#}"),
            None => panic!("expected an error from {cfg:?}"),
        },
        Err(e) => format!("{e:#}"),
    }
}

fn criteo_line(label: &str, i1: &str, c1: &str) -> String {
    let ints: Vec<String> = (0..13)
        .map(|j| {
            if j == 0 {
                i1.to_string()
            } else {
                j.to_string()
            }
        })
        .collect();
    let cats: Vec<String> = (0..26)
        .map(|j| {
            if j == 0 {
                c1.to_string()
            } else {
                format!("{j:08x}")
            }
        })
        .collect();
    format!("{label}\t{}\t{}\n", ints.join("\t"), cats.join("\t"))
}

#[test]
fn criteo_rows_become_equal_blocks_with_bucketed_ints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::new();
    for r in 0..6 {
        text += &criteo_line(
            if r % 2 == 0 { "1" } else { "0" },
            &(r * 50).to_string(),
            "68fd1e64",
        );
    }
    text += &criteo_line("0", "", ""); // missing values are fine
    let path = write(dir.path(), "train.txt", &text);
    let src = DataConfig::Criteo {
        path,
        days: Some(3),
        bucket_numeric: true,
    }
    .open()
    .expect("open");
    assert_eq!(src.num_days(), 3);
    assert_eq!(src.cat_fields().len(), 26 + 13);
    let d0 = src.raw_day(0).expect("day 0");
    assert_eq!(d0.rows(), 2);
    assert_eq!(d0.label, vec![1.0, 0.0]);
    // I1 of row 1 is 50: bucket floor(ln(50)^2) = 15; it is the 27th categorical field.
    assert_eq!(d0.cat[39 + 26], 15);
    let total: usize = (0..3).map(|d| src.raw_day(d).expect("day").rows()).sum();
    assert_eq!(total, 7);
}

#[test]
fn avazu_hours_become_calendar_days_in_time_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cats = "C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,app_category,device_id,device_ip,device_model,device_type,device_conn_type,C14,C15,C16,C17,C18,C19,C20,C21";
    let row = |id: u32, click: u32, hour: &str| {
        format!("{id},{click},{hour},1005,0,1fbe01fe,f3845767,28905ebd,ecad2386,7801e8d9,07d7df22,a99f214a,ddd2926e,44956a24,1,2,15706,320,50,1722,0,35,-1,79\n")
    };
    let mut text = format!("id,click,hour,{cats}\n");
    text += &row(1, 1, "14102101");
    text += &row(2, 0, "14102100");
    text += &row(3, 0, "14102200");
    let path = write(dir.path(), "avazu.csv", &text);
    let src = DataConfig::Avazu { path, period: None }
        .open()
        .expect("open");
    assert_eq!(src.num_days(), 2);
    let d0 = src.raw_day(0).expect("day 0");
    // Sorted by hour inside the day: the 00h row (click 0) comes first.
    assert_eq!(d0.label, vec![0.0, 1.0]);
    // 21 columns, then the hour of the day and the weekday (2014-10-21 was a Tuesday).
    assert_eq!(d0.num_cat, 23);
    assert_eq!(&d0.cat[21..23], &[0, 1]);
    assert_eq!(&d0.cat[23 + 21..23 + 23], &[1, 1]);
    assert_eq!(src.raw_day(1).expect("day 1").rows(), 1);
}

const GENERIC_SCHEMA: &str = r#"
label = "rating"
positive = "rating >= 4"
time = "ts"
time_unit = "date"
categorical = ["user", "movie"]
numeric = ["age"]
user = "user"
"#;

#[test]
fn generic_csv_and_parquet_with_a_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = write(dir.path(), "schema.toml", GENERIC_SCHEMA);
    let csv = write(
        dir.path(),
        "ratings.csv",
        "user,movie,rating,ts,age\nu1,m1,5,2024-03-02,30\nu2,m1,3,2024-03-01,40\nu1,m2,4,2024-03-01,30\n",
    );
    let src = DataConfig::Table {
        path: csv,
        schema: schema.clone(),
        period: None,
        days: None,
    }
    .open()
    .expect("open csv");
    assert_eq!(src.num_days(), 2);
    assert_eq!(src.user_field().as_deref(), Some("user"));
    let d0 = src.raw_day(0).expect("day 0");
    assert_eq!(d0.label, vec![0.0, 1.0]);
    assert_eq!(d0.num, vec![40.0, 30.0]);

    // The same table as Parquet, written through polars.
    use polars::prelude::*;
    let mut df = df!(
        "user" => ["u1", "u2", "u1"],
        "movie" => ["m1", "m1", "m2"],
        "rating" => [5i64, 3, 4],
        "ts" => ["2024-03-02", "2024-03-01", "2024-03-01"],
        "age" => [30.0f64, 40.0, 30.0],
    )
    .expect("frame");
    let pq = dir.path().join("ratings.parquet");
    ParquetWriter::new(std::fs::File::create(&pq).expect("create"))
        .finish(&mut df)
        .expect("write parquet");
    let src2 = DataConfig::Table {
        path: pq,
        schema,
        period: None,
        days: None,
    }
    .open()
    .expect("open parquet");
    assert_eq!(src2.raw_day(0).expect("day 0"), d0);
}

#[test]
fn synthetic_export_reads_back_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SynthConfig {
        days: 2,
        rows_per_day: 300,
        ..SynthConfig::preset("tiny").expect("tiny")
    };
    let source = SyntheticSource::new(cfg).expect("source");
    let out = dir.path().join("days");
    write_synthetic(&source, &out).expect("write");
    assert!(out.join("schema.toml").exists() && out.join("synth.toml").exists());
    let back = TableSource::open(
        &out,
        TableSchema::load(&out.join("schema.toml")).expect("schema"),
        "table",
    )
    .expect("open");
    assert_eq!(back.num_days(), 2);
    assert_eq!(back.cat_fields(), source.cat_fields());
    for d in 0..2 {
        assert_eq!(
            back.raw_day(d).expect("back"),
            source.raw_day(d).expect("gen"),
            "day {d}"
        );
    }
    assert_eq!(synthetic_schema(&source).days, 2);
    // Same seed, same bytes.
    let out2 = dir.path().join("again");
    write_synthetic(&source, &out2).expect("write again");
    for f in ["day-000.parquet", "day-001.parquet", "schema.toml"] {
        assert_eq!(
            std::fs::read(out.join(f)).expect("a"),
            std::fs::read(out2.join(f)).expect("b"),
            "{f}"
        );
    }
    // A non-empty target is refused, and no temporary folder is left behind.
    assert!(write_synthetic(&source, &out).is_err());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".synth-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn malformed_inputs_fail_with_one_sentence_naming_file_column_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = write(dir.path(), "schema.toml", GENERIC_SCHEMA);
    let table = |name: &str, text: &str| DataConfig::Table {
        path: write(dir.path(), name, text),
        schema: schema.clone(),
        period: None,
        days: None,
    };
    let header = "user,movie,rating,ts,age\n";

    let e = open_err(table(
        "label.csv",
        &format!("{header}u1,m1,5,2024-03-01,30\nu2,m1,five,2024-03-01,40\n"),
    ));
    assert!(
        e.contains("label.csv")
            && e.contains("`rating`")
            && e.contains("row 2")
            && e.contains("five"),
        "{e}"
    );

    let e = open_err(table(
        "time.csv",
        &format!("{header}u1,m1,5,2024-03-01,30\nu2,m1,3,yesterday,40\n"),
    ));
    assert!(
        e.contains("time.csv")
            && e.contains("`ts`")
            && e.contains("row 2")
            && e.contains("yesterday"),
        "{e}"
    );

    let e = open_err(table(
        "missing.csv",
        "user,rating,ts,age\nu1,5,2024-03-01,30\n",
    ));
    assert!(e.contains("missing.csv") && e.contains("`movie`"), "{e}");

    let e = open_err(table(
        "age.csv",
        &format!("{header}u1,m1,5,2024-03-01,old\n"),
    ));
    assert!(e.contains("`age`") && e.contains("row 1"), "{e}");

    let e = open_err(table("empty.csv", ""));
    assert!(e.contains("empty.csv") && e.contains("empty"), "{e}");

    let e = open_err(DataConfig::Table {
        path: dir.path().join("nope.csv"),
        schema: schema.clone(),
        period: None,
        days: None,
    });
    assert!(e.contains("nope.csv"), "{e}");

    let bad_schema = write(
        dir.path(),
        "bad.toml",
        "label = \"rating\"\ncategorical = [\"user\"]\ncolour = 1\n",
    );
    let e = open_err(DataConfig::Table {
        path: dir.path().join("label.csv"),
        schema: bad_schema,
        period: None,
        days: None,
    });
    assert!(e.contains("bad.toml") && e.contains("colour"), "{e}");

    let e = open_err(DataConfig::Criteo {
        path: write(dir.path(), "c.txt", &criteo_line("x", "1", "a")),
        days: Some(1),
        bucket_numeric: true,
    });
    assert!(
        e.contains("c.txt") && e.contains("`label`") && e.contains("row 1"),
        "{e}"
    );
}

/// The day cache: the first open parses and writes one file per day; a second open of the same
/// table reads its days from the cache, not from the text; another identity (here the label;
/// equally the schema or a file) is another entry.
#[test]
fn the_day_cache_serves_later_opens_and_misses_on_a_changed_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SynthConfig {
        days: 3,
        rows_per_day: 200,
        ..SynthConfig::preset("tiny").expect("tiny")
    };
    let source = SyntheticSource::new(cfg).expect("source");
    let out = dir.path().join("days");
    write_synthetic(&source, &out).expect("write");
    let schema = || TableSchema::load(&out.join("schema.toml")).expect("schema");
    let cache = dir.path().join("cache");
    let first = TableSource::open_with_cache(&out, schema(), "table", Some(&cache)).expect("open");
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .expect("cache")
        .flatten()
        .collect();
    assert_eq!(entries.len(), 1, "one entry, no temporary folder left");
    let entry = entries[0].path();
    let files = std::fs::read_dir(&entry).expect("entry").count();
    assert_eq!(files, 3 + 1, "a file per day and the manifest");
    let uncached = TableSource::open_with_cache(&out, schema(), "table", None).expect("open");
    for d in 0..3 {
        let want = source.raw_day(d).expect("gen");
        assert_eq!(first.raw_day(d).expect("cached"), want, "day {d}");
        assert_eq!(uncached.raw_day(d).expect("memory"), want, "day {d}");
    }
    // A second open with the cache answers from it: the day files are what it reads, so a
    // day file swapped for another day's shows through.
    std::fs::copy(
        entry.join("day-00000.parquet"),
        entry.join("day-00002.parquet"),
    )
    .unwrap();
    let second = TableSource::open_with_cache(&out, schema(), "table", Some(&cache)).expect("hit");
    assert_eq!(second.num_days(), 3);
    assert_eq!(
        second.raw_day(2).expect("day 2").cat,
        source.raw_day(0).expect("gen").cat
    );
    // Another identity is another entry, read from the text again.
    let third = TableSource::open_with_cache(&out, schema(), "criteo", Some(&cache)).expect("miss");
    assert_eq!(
        third.raw_day(2).expect("day 2"),
        source.raw_day(2).expect("gen")
    );
    assert_eq!(std::fs::read_dir(&cache).expect("cache").count(), 2);
}
