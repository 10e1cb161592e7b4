//! Range-checked numeric flags: every number on the command line is parsed here, so a value
//! out of range is one clap error naming the flag and the accepted range (exit code 2) before
//! anything runs, never an overflow or a panic deep inside.

/// Parser of a count flag (`usize`) in `lo..=hi`.
pub fn count(lo: usize, hi: usize) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync {
    int(lo, hi)
}

/// Parser of a day flag (`u32`) in `lo..=hi`.
pub fn day(lo: u32, hi: u32) -> impl Fn(&str) -> Result<u32, String> + Clone + Send + Sync {
    int(lo, hi)
}

/// Parser of an integer flag in `lo..=hi`. The flag's field must have type `T` exactly (clap
/// checks it only when the flag is read), hence the typed [`count`] and [`day`].
fn int<T>(lo: T, hi: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
{
    move |text: &str| {
        let v: T = text
            .trim()
            .parse()
            .map_err(|_| format!("expected a whole number in {lo}..={hi}, got {text:?}"))?;
        if v < lo || v > hi {
            return Err(format!("must be in {lo}..={hi}, got {v}"));
        }
        Ok(v)
    }
}

/// Parser of a finite number flag in `(lo, hi]` (`lo` excluded: rates, speeds).
pub fn positive(lo: f64, hi: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |text: &str| {
        let v: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("expected a number in ({lo}, {hi}], got {text:?}"))?;
        if !(v.is_finite() && v > lo && v <= hi) {
            return Err(format!("must be a number in ({lo}, {hi}], got {text}"));
        }
        Ok(v)
    }
}

/// Parser of a finite number flag in `[lo, hi]`.
pub fn between(lo: f64, hi: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |text: &str| {
        let v: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("expected a number in [{lo}, {hi}], got {text:?}"))?;
        if !(v.is_finite() && (lo..=hi).contains(&v)) {
            return Err(format!("must be a number in [{lo}, {hi}], got {text}"));
        }
        Ok(v)
    }
}

/// The most days a command may name (the synthetic stream generates up to the highest one).
pub const MAX_DAY: u32 = 100_000;
/// The most rows of one batch or one generated day.
pub const MAX_ROWS: usize = 100_000_000;
/// The most compute threads.
pub const MAX_THREADS: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_and_garbled_numbers_are_refused_with_the_range() {
        let p = count(1, 10);
        assert_eq!(p("3"), Ok(3));
        assert!(p("0").unwrap_err().contains("1..=10"));
        assert!(p("11").unwrap_err().contains("1..=10"));
        assert!(p("-1").unwrap_err().contains("whole number"));
        assert!(p("1e3").unwrap_err().contains("whole number"));
        assert!(p("99999999999999999999999").is_err());
        let s = positive(0.0, 1000.0);
        assert_eq!(s("2.5"), Ok(2.5));
        for bad in ["0", "-1", "1e-400", "NaN", "inf", "1e300", "x"] {
            assert!(s(bad).is_err(), "{bad}");
        }
        let b = between(0.0, 1.0);
        assert_eq!(b("0"), Ok(0.0));
        assert!(b("1.5").is_err() && b("nan").is_err());
    }
}
