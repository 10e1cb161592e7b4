//! A day is read a chunk at a time (`DaySource::day_chunks`) so its raw keys are never held
//! whole: everything computed from the chunks must equal what the whole day gives.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossadapt::data::sketch::{DaySketch, DaySketcher};
use crossadapt::data::source::{Visit, STREAM_ROWS};
use crossadapt::data::{Dataset, DaySource, RawDay, SynthConfig, SyntheticSource, Vocabulary};
use crossadapt::method::drift::{DriftMeter, DriftReference, DRIFT_SKETCH_KEYS};

/// The tiny world with a day just over two stream chunks long, so chunk edges are crossed.
fn source() -> SyntheticSource {
    let cfg = SynthConfig {
        rows_per_day: 2 * STREAM_ROWS + 1_234,
        days: 3,
        ..SynthConfig::preset("tiny").expect("tiny")
    };
    SyntheticSource::new(cfg).expect("source")
}

/// A source that counts the chunks it hands over, to see that a read stops early.
struct Counting {
    inner: SyntheticSource,
    chunks: Arc<AtomicUsize>,
}

impl DaySource for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn num_days(&self) -> usize {
        self.inner.num_days()
    }
    fn cat_fields(&self) -> Vec<String> {
        self.inner.cat_fields()
    }
    fn num_fields(&self) -> Vec<String> {
        self.inner.num_fields()
    }
    fn user_field(&self) -> Option<String> {
        self.inner.user_field()
    }
    fn raw_day(&self, day: usize) -> anyhow::Result<RawDay> {
        self.inner.raw_day(day)
    }
    fn day_chunks(&self, day: usize, visit: &mut dyn FnMut(RawDay) -> Visit) -> anyhow::Result<()> {
        let chunks = self.chunks.clone();
        self.inner.day_chunks(day, &mut |raw| {
            chunks.fetch_add(1, Ordering::SeqCst);
            visit(raw)
        })
    }
    fn day_rows(&self, day: usize) -> anyhow::Result<usize> {
        self.inner.day_rows(day)
    }
}

fn chunks_of(src: &dyn DaySource, day: usize) -> Vec<RawDay> {
    let mut out = Vec::new();
    src.day_chunks(day, &mut |raw| {
        out.push(raw);
        Ok(ControlFlow::Continue(()))
    })
    .expect("chunks");
    out
}

#[test]
fn a_streamed_day_is_encoded_sketched_and_measured_as_the_whole_day() {
    let src = source();
    let whole = src.raw_day(2).expect("day 2");
    let chunks = chunks_of(&src, 2);
    assert_eq!(
        chunks.iter().map(RawDay::rows).collect::<Vec<_>>(),
        [STREAM_ROWS, STREAM_ROWS, 1_234]
    );
    let mut joined = RawDay::empty(whole.num_cat, whole.num_num);
    chunks.iter().for_each(|c| joined.extend(c));
    assert_eq!(joined, whole, "the chunks are the day, in order");
    assert_eq!(src.day_rows(2).expect("rows"), whole.rows());

    // Encoding a chunk at a time: the same ids, scaled values, labels and users.
    let vocab = Vocabulary::fit(&src, &[0], 2).expect("fit");
    let want = vocab.encode(&whole);
    assert!(!want.users.is_empty(), "the tiny world names its users");
    let chunks_seen = Arc::new(AtomicUsize::new(0));
    let data = Dataset::new(
        Box::new(Counting {
            inner: source(),
            chunks: chunks_seen.clone(),
        }),
        vocab.clone(),
    );
    assert_eq!(data.day(2).expect("day"), want);
    assert_eq!(
        Vocabulary::fit(&src, &[0], 2).expect("fit").fingerprint(),
        Vocabulary::fit_raw(&src, &[src.raw_day(0).expect("day 0")], 2)
            .expect("fit")
            .fingerprint(),
        "a vocabulary fitted on streamed days is the one fitted on whole days"
    );

    // The day kept on disk: the same rows read back, its labels and users in memory, and
    // `look` sees every raw row once.
    let mut looked = 0;
    let on_disk = data
        .day_on_disk(2, None, |raw| looked += raw.rows())
        .expect("day on disk");
    assert_eq!(looked, whole.rows());
    assert_eq!(on_disk.rows(), want.rows());
    assert_eq!(on_disk.labels(), &want.label[..]);
    assert_eq!(on_disk.users(), Some(&want.users[..]));
    let mut joined = want.slice(0, 0).without_users();
    for b in on_disk.chunks(100_000) {
        joined.extend(&b.expect("batch"));
    }
    assert_eq!(joined, want.clone().without_users());

    // The head stops reading once it has its rows.
    chunks_seen.store(0, Ordering::SeqCst);
    let head = data.head(2, 100).expect("head");
    assert_eq!(head, want.slice(0, 100));
    assert_eq!(chunks_seen.load(Ordering::SeqCst), 1);
    chunks_seen.store(0, Ordering::SeqCst);
    let over = data.head(2, STREAM_ROWS + 5).expect("head");
    assert_eq!(over, want.slice(0, STREAM_ROWS + 5));
    assert_eq!(chunks_seen.load(Ordering::SeqCst), 2);

    // The sketch: two passes over the chunks give the whole day's sketch.
    let sketch = DaySketch::of(&whole, DRIFT_SKETCH_KEYS);
    assert_eq!(data.sketch(2, DRIFT_SKETCH_KEYS).expect("sketch"), sketch);
    let mut sketcher = DaySketcher::new(whole.num_cat, DRIFT_SKETCH_KEYS);
    chunks.iter().for_each(|c| sketcher.first_pass(c));
    sketcher.start_second_pass();
    chunks.iter().for_each(|c| sketcher.second_pass(c));
    assert_eq!(sketcher.finish(), sketch);

    // Drift, re-measured inside the day at batch edges that fall inside chunks.
    let reference_sketches = [
        data.sketch(0, DRIFT_SKETCH_KEYS).expect("sketch 0"),
        data.sketch(1, DRIFT_SKETCH_KEYS).expect("sketch 1"),
    ];
    let reference = DriftReference::of(
        &reference_sketches.iter().collect::<Vec<_>>(),
        whole.num_cat,
    );
    let spec = vocab.feature_spec();
    let (batch, every) = (1_000, 7);
    let mut one = DriftMeter::new(&reference, &spec, batch, every);
    one.add(&whole);
    let one = one.finish();
    let mut streamed = DriftMeter::new(&reference, &spec, batch, every);
    chunks.iter().for_each(|c| streamed.add(c));
    let streamed = streamed.finish();
    assert_eq!(one.within.len(), whole.rows() / 7_000);
    assert_eq!(format!("{one:?}"), format!("{streamed:?}"));
    assert!(one.fields.iter().any(|f| f.psi > 0.0));
}

/// `data inspect` reads each day a chunk at a time and counts ids instead of holding the day:
/// its figures equal those measured on the whole days, field by field.
#[test]
fn inspect_of_chunked_days_gives_the_whole_days_figures() {
    use crossadapt::data::inspect::inspect;
    use crossadapt::data::{jensen_shannon, psi, IdDistribution};
    let src = source();
    let top_k = 10;
    let report = inspect(&src, top_k).expect("inspect");
    let days: Vec<RawDay> = (0..src.num_days())
        .map(|d| src.raw_day(d).expect("day"))
        .collect();
    assert_eq!(report.days.len(), days.len());
    for (d, raw) in days.iter().enumerate() {
        let got = &report.days[d];
        assert_eq!(got.rows, raw.rows(), "day {d}: rows");
        assert_eq!(got.positive_rate, raw.positive_rate(), "day {d}: rate");
        for (f, field) in got.fields.iter().enumerate() {
            let what = format!("day {d}, field {}", field.field);
            let ref0 = IdDistribution::reference(days[0].field_keys(f), top_k);
            let q0 = ref0.bucket(raw.field_keys(f));
            let distinct: std::collections::HashSet<u64> = raw.field_keys(f).collect();
            let unseen = raw.field_keys(f).filter(|&k| !ref0.has_seen(k)).count();
            assert_eq!(field.cardinality, distinct.len(), "{what}: distinct");
            assert_eq!(
                field.unseen_share,
                unseen as f64 / raw.rows() as f64,
                "{what}: unseen"
            );
            let (psi0, js0, psi_prev) = if d == 0 {
                (0.0, 0.0, 0.0)
            } else {
                let prev = IdDistribution::reference(days[d - 1].field_keys(f), top_k);
                (
                    psi(ref0.probabilities(), &q0),
                    jensen_shannon(ref0.probabilities(), &q0),
                    psi(prev.probabilities(), &prev.bucket(raw.field_keys(f))),
                )
            };
            assert_eq!(field.psi_day0, psi0, "{what}: psi against day 0");
            assert_eq!(field.js_day0, js0, "{what}: js against day 0");
            assert_eq!(
                field.psi_prev, psi_prev,
                "{what}: psi against the day before"
            );
        }
    }
    // The drift of day 2 is not all zero, so the comparison above means something.
    assert!(report.days[2].fields.iter().any(|f| f.psi_day0 > 0.0));
}
