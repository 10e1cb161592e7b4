//! Number formatting shared by the panels.

/// `850`, `3.2k`, `1.4M`.
pub fn count(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// `42s`, `3m05s`, `1h02m`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `0.7312`, `n/a` when there is no value, `–` when it is not a finite number.
pub fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| crate::num::fixed(v, digits))
}

/// `+0.0123`, `n/a` or `–`.
pub fn signed(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| crate::num::signed(v, digits))
}

/// Cuts `s` to `width` characters, marking the cut with `…`.
pub fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_compactly() {
        assert_eq!(count(3210.0), "3.2k");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(opt(None, 3), "n/a");
        assert_eq!(signed(Some(0.01), 3), "+0.010");
        assert_eq!(opt(Some(f64::NAN), 3), "–");
        assert_eq!(signed(Some(f64::INFINITY), 3), "–");
        assert_eq!(fit("crossadapt-fixed", 8), "crossad…");
    }
}
