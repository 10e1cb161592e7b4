//! Turning collected polars columns into raw keys, numeric values and labels, with errors that
//! name the file, the column and the (1-based) data row.

use anyhow::{anyhow, Result};
use polars::prelude::*;

use super::schema::PositiveRule;
use crate::data::source::{int_key, string_key, text_key, NULL_KEY};

/// Where cell `i` of a collected column came from: its file and 1-based data row.
pub type Locate<'a> = &'a dyn Fn(usize) -> (String, u64);

/// Where a column came from, for error messages.
pub struct ColumnSite<'a> {
    /// The table as the user named it (for errors about the whole column).
    pub file: &'a str,
    pub column: &'a str,
    pub locate: Locate<'a>,
}

impl ColumnSite<'_> {
    fn error(&self, i: usize, what: &str) -> anyhow::Error {
        let (file, row) = (self.locate)(i);
        anyhow!("{file}: column `{}`, row {row}: {what}", self.column)
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Values of a column as f64 (`None` = missing); text must parse as a number.
pub fn numbers(col: &Column, site: &ColumnSite) -> Result<Vec<Option<f64>>> {
    match col.dtype() {
        DataType::String => col
            .str()?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                None => Ok(None),
                Some(s) if s.trim().is_empty() => Ok(None),
                Some(s) => parse_number(s)
                    .map(Some)
                    .ok_or_else(|| site.error(i, &format!("`{s}` is not a number"))),
            })
            .collect(),
        DataType::Boolean => Ok(col
            .bool()?
            .iter()
            .map(|v| v.map(|b| b as u8 as f64))
            .collect()),
        dt if dt.is_primitive_numeric() => {
            Ok(col.cast(&DataType::Float64)?.f64()?.iter().collect())
        }
        other => Err(anyhow!(
            "{}: column `{}` has type {other}, expected numbers",
            site.file,
            site.column
        )),
    }
}

/// Labels (0/1) by the positive rule; a missing, non-numeric or non-finite (NaN, inf) label
/// is an error, not a silent negative.
pub fn labels(col: &Column, rule: &PositiveRule, site: &ColumnSite) -> Result<Vec<f32>> {
    numbers(col, site)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Some(v) if v.is_finite() => Ok(if rule.is_positive(v) { 1.0 } else { 0.0 }),
            Some(v) => Err(site.error(i, &format!("the label is {v}, not a finite number"))),
            None => Err(site.error(i, "the label is missing")),
        })
        .collect()
}

/// Numeric feature values (missing = 0), optionally `ln(1 + max(x, 0))`.
pub fn numeric(col: &Column, log1p: bool, site: &ColumnSite) -> Result<Vec<f32>> {
    Ok(numbers(col, site)?
        .into_iter()
        .map(|v| {
            let v = v.unwrap_or(0.0);
            (if log1p { v.max(0.0).ln_1p() } else { v }) as f32
        })
        .collect())
}

/// The Criteo bucket of a numeric value: `floor(ln(x)^2)` for x > 2, else `floor(x)`.
pub fn bucket_of(v: f64) -> i64 {
    if v > 2.0 {
        (v.ln().powi(2)).floor() as i64
    } else {
        v.floor() as i64
    }
}

/// Bucketed numeric column as categorical keys (missing = [`NULL_KEY`]).
pub fn bucket_keys(col: &Column, site: &ColumnSite) -> Result<Vec<u64>> {
    Ok(numbers(col, site)?
        .into_iter()
        .map(|v| v.map_or(NULL_KEY, |v| int_key(bucket_of(v))))
        .collect())
}

/// Categorical keys: integers as they are, text via [`text_key`], missing = [`NULL_KEY`].
pub fn cat_keys(col: &Column) -> Result<Vec<u64>> {
    Ok(match col.dtype() {
        DataType::String => col
            .str()?
            .iter()
            .map(|v| v.map_or(NULL_KEY, text_key))
            .collect(),
        DataType::UInt64 => col
            .u64()?
            .iter()
            .map(|v| v.map_or(NULL_KEY, |v| v.min(NULL_KEY - 1)))
            .collect(),
        DataType::Float32 | DataType::Float64 => col
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .map(|v| match v {
                None => NULL_KEY,
                Some(x) if x.fract() == 0.0 && x.abs() < 9.0e18 => int_key(x as i64),
                Some(x) => string_key(&x.to_string()),
            })
            .collect(),
        dt if dt.is_integer() || dt.is_bool() || dt.is_temporal() => col
            .cast(&DataType::Int64)?
            .i64()?
            .iter()
            .map(|v| v.map_or(NULL_KEY, int_key))
            .collect(),
        _ => col
            .cast(&DataType::String)?
            .str()?
            .iter()
            .map(|v| v.map_or(NULL_KEY, text_key))
            .collect(),
    })
}

/// The 0-based file rows of a collected frame's `__row` column.
pub fn row_numbers(df: &DataFrame, name: &str) -> Result<Vec<u64>> {
    Ok(df
        .column(name)?
        .cast(&DataType::UInt64)?
        .u64()?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_labels_and_rules_are_refused() {
        let col = Column::new("y".into(), [Some(1.0f64), Some(0.0), Some(f64::NAN)]);
        let rule = PositiveRule::parse("> 0", "y").unwrap();
        let locate = |i: usize| ("t.parquet".to_string(), i as u64 + 1);
        let site = ColumnSite {
            file: "t.parquet",
            column: "y",
            locate: &locate,
        };
        let e = labels(&col, &rule, &site).unwrap_err().to_string();
        assert!(
            e.contains("t.parquet") && e.contains("row 3") && e.contains("NaN"),
            "{e}"
        );
        let ok = Column::new("y".into(), [Some(1.0f64), Some(0.0)]);
        assert_eq!(labels(&ok, &rule, &site).unwrap(), vec![1.0, 0.0]);
        for bad in ["> nan", "y >= inf", "== -inf"] {
            let e = PositiveRule::parse(bad, "y").unwrap_err().to_string();
            assert!(e.contains("not a finite number"), "{bad}: {e}");
        }
    }

    #[test]
    fn criteo_buckets_follow_the_convention() {
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(2.0), 2);
        assert_eq!(bucket_of(-1.0), -1);
        // ln(3)^2 = 1.207, ln(100)^2 = 21.2
        assert_eq!(bucket_of(3.0), 1);
        assert_eq!(bucket_of(100.0), 21);
    }
}
