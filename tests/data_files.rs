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

/// `days` days of `rows_per_day` rows of the tiny synthetic preset, exported as a table folder
/// `dir/days`; the source they came from.
fn tiny_export(dir: &Path, days: usize, rows_per_day: usize) -> (SyntheticSource, PathBuf) {
    let cfg = SynthConfig {
        days,
        rows_per_day,
        ..SynthConfig::preset("tiny").expect("tiny")
    };
    let source = SyntheticSource::new(cfg).expect("source");
    let out = dir.join("days");
    write_synthetic(&source, &out).expect("write");
    (source, out)
}

/// A folder written by `tiny_export`, opened as a table with its own schema.
fn open_export(out: &Path) -> TableSource {
    TableSource::open(
        out,
        TableSchema::load(&out.join("schema.toml")).expect("schema"),
        "table",
    )
    .expect("open")
}

#[test]
fn synthetic_export_reads_back_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (source, out) = tiny_export(dir.path(), 2, 300);
    assert!(out.join("schema.toml").exists() && out.join("synth.toml").exists());
    let back = open_export(&out);
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

/// A day longer than one streamed chunk is written a chunk at a time (a row group each) and
/// still reads back as the generated day, its times in order within the day.
#[test]
fn a_synthetic_day_longer_than_a_chunk_exports_and_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = crossadapt::data::source::STREAM_ROWS + 1_000;
    let (source, out) = tiny_export(dir.path(), 1, rows);
    let back = open_export(&out);
    assert_eq!(back.num_days(), 1);
    let day = back.raw_day(0).expect("back");
    assert_eq!(day.rows(), rows);
    assert_eq!(day, source.raw_day(0).expect("gen"));
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
    let (source, out) = tiny_export(dir.path(), 3, 200);
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

/// A deterministic table for the streamed-ingest tests: `rows` rows over four calendar days
/// in scrambled time order (the rows of a day scattered across the file, some times shared so
/// that ties must keep their file order), a text and an integer key, a number and a label.
fn scrambled_table(rows: usize) -> polars::prelude::DataFrame {
    use polars::prelude::*;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ts, mut user, mut item, mut price, mut click) =
        (vec![], vec![], vec![], vec![], vec![]);
    for r in 0..rows {
        // 2024-03-01 00:00 UTC plus up to four days, on a coarse grid so times repeat.
        ts.push(1_709_251_200i64 + (next() % (4 * 24 * 12)) as i64 * 300);
        user.push(format!("u{}", next() % 17));
        item.push((next() % 50) as i64);
        price.push((r % 13) as f64 * 0.5);
        click.push((next() % 3 == 0) as i64);
    }
    df!("ts" => ts, "user" => user, "item" => item, "price" => price, "click" => click)
        .expect("frame")
}

fn scrambled_schema(timed: bool, days: usize) -> TableSchema {
    let text = format!(
        "label = \"click\"\n{}categorical = [\"user\", \"item\"]\nbucketed = [\"price\"]\n\
         numeric = [\"price\"]\nuser = \"user\"\ndays = {days}\n",
        if timed {
            "time = \"ts\"\ntime_features = [\"hour_of_day\"]\n"
        } else {
            ""
        }
    );
    toml::from_str(&text).expect("schema")
}

/// Every day of `a` and `b`: names, keys, numbers, labels, in order.
fn same_days(a: &TableSource, b: &TableSource, what: &str) {
    assert_eq!(a.num_days(), b.num_days(), "{what}: days");
    for d in 0..a.num_days() {
        assert_eq!(a.day_name(d), b.day_name(d), "{what}: name of day {d}");
        assert_eq!(
            a.raw_day(d).expect("a"),
            b.raw_day(d).expect("b"),
            "{what}: day {d}"
        );
    }
}

/// The streamed first ingest gives exactly the days the in-memory read gives (names, keys,
/// labels, row order), for CSV and Parquet, calendar days from unsorted times (a day's rows
/// arriving in many chunks, ties in file order) and row blocks, with chunks of a few rows; and
/// with at most two day files open at once, so days continue in further files and are merged.
#[test]
fn the_streamed_ingest_gives_the_in_memory_days() {
    use crossadapt::data::table::cache::IngestOptions;
    use polars::prelude::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut df = scrambled_table(403);
    let csv = dir.path().join("t.csv");
    CsvWriter::new(std::fs::File::create(&csv).expect("create"))
        .finish(&mut df)
        .expect("write csv");
    let pq = dir.path().join("t.parquet");
    ParquetWriter::new(std::fs::File::create(&pq).expect("create"))
        .with_row_group_size(Some(50))
        .finish(&mut df)
        .expect("write parquet");
    let options = [
        IngestOptions {
            chunk_rows: 7,
            max_open_days: 64,
        },
        IngestOptions {
            chunk_rows: 7,
            max_open_days: 2,
        },
        IngestOptions {
            chunk_rows: 1000,
            max_open_days: 64,
        },
    ];
    let mut entries = 0;
    for (timed, days) in [(true, 7), (false, 5)] {
        for path in [&csv, &pq] {
            let schema = || scrambled_schema(timed, days);
            let memory = TableSource::open_with_cache(path, schema(), "table", None).expect("mem");
            assert_eq!(memory.num_days(), if timed { 4 } else { 5 });
            for opts in options {
                let cache = dir.path().join(format!("cache-{entries}"));
                entries += 1;
                let what = format!("{} timed={timed} {opts:?}", path.display());
                let streamed = TableSource::open_with(path, schema(), "table", Some(&cache), opts)
                    .expect("streamed");
                same_days(&streamed, &memory, &what);
                // The entry was written (the days come from it, not from memory).
                let reopened = TableSource::open_with_cache(path, schema(), "table", Some(&cache))
                    .expect("reopen");
                same_days(&reopened, &memory, &what);
                let left: Vec<String> = std::fs::read_dir(&cache)
                    .expect("cache")
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect();
                assert_eq!(
                    left.len(),
                    1,
                    "{what}: one entry, no temporary folder: {left:?}"
                );
            }
        }
    }
}

/// A folder without time has one day per file in natural order (`day_2` before `day_10`),
/// streamed as read in memory; and a bad cell in a later chunk is named by its file and row.
#[test]
fn the_streamed_ingest_cuts_folders_by_file_and_names_bad_rows() {
    use crossadapt::data::table::cache::IngestOptions;
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("days");
    std::fs::create_dir(&folder).expect("mkdir");
    for (name, rows) in [("day_10.csv", 9), ("day_2.csv", 11), ("day_1.csv", 5)] {
        let mut text = String::from("click,user,item,price\n");
        for r in 0..rows {
            text += &format!("{},{name}{r},{},{}\n", r % 2, r * 7 % 5, r);
        }
        write(&folder, name, &text);
    }
    let schema = || TableSchema {
        format: Some(crossadapt::data::table::TableFormat::Csv),
        ..scrambled_schema(false, 1)
    };
    let opts = IngestOptions {
        chunk_rows: 4,
        max_open_days: 64,
    };
    let cache = dir.path().join("cache");
    let streamed =
        TableSource::open_with(&folder, schema(), "table", Some(&cache), opts).expect("streamed");
    let memory = TableSource::open_with_cache(&folder, schema(), "table", None).expect("memory");
    same_days(&streamed, &memory, "csv folder");
    let names: Vec<&str> = (0..3)
        .map(|d| streamed.day_name(d).expect("name"))
        .collect();
    assert_eq!(names, ["day_1.csv", "day_2.csv", "day_10.csv"]);
    // The same as Parquet, whose folder scan lists `day_10` before `day_2`.
    let pq_folder = dir.path().join("pq");
    std::fs::create_dir(&pq_folder).expect("mkdir");
    for (name, rows) in [("day_10", 9i64), ("day_2", 11), ("day_1", 5)] {
        use polars::prelude::*;
        let r: Vec<i64> = (0..rows).collect();
        let mut df = df!(
            "click" => r.iter().map(|r| r % 2).collect::<Vec<_>>(),
            "user" => r.iter().map(|r| format!("{name}{r}")).collect::<Vec<_>>(),
            "item" => r.iter().map(|r| r * 7 % 5).collect::<Vec<_>>(),
            "price" => r.clone(),
        )
        .expect("frame");
        let file =
            std::fs::File::create(pq_folder.join(format!("{name}.parquet"))).expect("create");
        ParquetWriter::new(file).finish(&mut df).expect("write");
    }
    let streamed = TableSource::open_with(
        &pq_folder,
        scrambled_schema(false, 1),
        "table",
        Some(&cache),
        opts,
    )
    .expect("streamed");
    let memory =
        TableSource::open_with_cache(&pq_folder, scrambled_schema(false, 1), "table", None)
            .expect("memory");
    same_days(&streamed, &memory, "parquet folder");
    assert_eq!(streamed.day_name(2), Some("day_10.parquet"));

    let mut text = String::from("click,user,item,price\n");
    for r in 0..12 {
        let label = if r == 9 {
            "yes".to_string()
        } else {
            (r % 2).to_string()
        };
        text += &format!("{label},u{r},{r},{r}\n");
    }
    let bad = write(dir.path(), "bad.csv", &text);
    let e = TableSource::open_with(&bad, schema(), "table", Some(&cache), opts)
        .err()
        .map(|e| format!("{e:#}"))
        .expect("a bad label is an error");
    assert!(
        e.contains("bad.csv") && e.contains("`click`") && e.contains("row 10") && e.contains("yes"),
        "{e}"
    );
}

/// The label (or the time column) listed as a feature would hand every model the answer (or
/// an id that never repeats): the schema is refused with one sentence naming the column.
#[test]
fn a_schema_with_the_label_or_the_time_as_a_feature_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = write(
        dir.path(),
        "log.csv",
        "user,movie,rating,ts\nu1,m1,5,2024-03-01\nu2,m2,1,2024-03-02\n",
    );
    for (schema, column, list) in [
        (
            "label = \"rating\"\npositive = \">= 4\"\ntime = \"ts\"\ntime_unit = \"date\"\ncategorical = [\"user\", \"rating\"]\n",
            "rating",
            "categorical",
        ),
        (
            "label = \"rating\"\npositive = \">= 4\"\ncategorical = [\"user\"]\nnumeric = [\"rating\"]\n",
            "rating",
            "numeric",
        ),
        (
            "label = \"rating\"\npositive = \">= 4\"\ntime = \"ts\"\ntime_unit = \"date\"\ncategorical = [\"user\", \"ts\"]\n",
            "ts",
            "categorical",
        ),
    ] {
        let path = write(dir.path(), "s.toml", schema);
        let e = open_err(DataConfig::Table {
            path: data.clone(),
            schema: path,
            period: None,
            days: None,
        });
        assert!(
            e.contains(&format!("column `{column}`"))
                && e.contains(&format!("from `{list}`"))
                && e.contains("s.toml"),
            "{e}"
        );
    }
}
