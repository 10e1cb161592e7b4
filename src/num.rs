//! Floats in every file the tool writes (events, checkpoint state, status, report, export).
//!
//! JSON has no NaN or infinity: serde_json writes them as `null`, which then fails to read back
//! as `f64`, so one diverged arm would make a whole session unreadable. Every float field of a
//! written type goes through this module (`#[serde(with = "num")]`, `num::opt`, `num::map`):
//! finite values stay JSON numbers, non-finite ones become the strings `"NaN"`, `"inf"` and
//! `"-inf"`. Reading accepts those strings and also `null` (as NaN for a plain float, as `None`
//! for an optional one), which is what version-1 logs hold where a number was not finite.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// The text a non-finite value is written as (`None` for a finite one).
fn tag(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("inf")
    } else if v == f64::NEG_INFINITY {
        Some("-inf")
    } else {
        None
    }
}

/// Writes `v` as a number, or its tag when it is not finite.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    match tag(*v) {
        Some(t) => s.serialize_str(t),
        None => s.serialize_f64(*v),
    }
}

/// Reads a number, a tag, or `null` (NaN).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(FloatVisitor)
}

fn parse_tag(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" | "NAN" => Some(f64::NAN),
        "inf" | "+inf" | "Infinity" | "infinity" | "+Infinity" => Some(f64::INFINITY),
        "-inf" | "-Infinity" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

struct FloatVisitor;

impl<'de> Visitor<'de> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, \"NaN\", \"inf\" or \"-inf\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        parse_tag(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    /// `null`: what version-1 writers put where a value was not finite.
    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }

    fn visit_none<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_any(FloatVisitor)
    }
}

/// `Option<f64>`: `None` is `null`; `Some` of a non-finite value is its tag.
pub mod opt {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        d.deserialize_any(OptVisitor)
    }

    struct OptVisitor;

    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<f64>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("null, a number, \"NaN\", \"inf\" or \"-inf\"")
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            FloatVisitor.visit_str(v).map(Some)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(OptVisitor)
        }
    }
}

/// A map of names to floats (the report's per-arm headline figures).
pub mod map {
    use super::*;
    use serde::ser::SerializeMap;

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        struct Value(f64);
        impl serde::Serialize for Value {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                super::serialize(&self.0, s)
            }
        }
        let mut out = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            out.serialize_entry(k, &Value(*v))?;
        }
        out.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        struct Value(f64);
        impl<'de> serde::Deserialize<'de> for Value {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                super::deserialize(d).map(Value)
            }
        }
        let raw: BTreeMap<String, Value> = serde::Deserialize::deserialize(d)?;
        Ok(raw.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}

/// `v` with `digits` decimals, or `–` when it is not finite (a diverged arm's loss).
pub fn fixed(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        UNDEFINED_MARK.to_string()
    }
}

/// Like [`fixed`] with a sign.
pub fn signed(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:+.digits$}")
    } else {
        UNDEFINED_MARK.to_string()
    }
}

/// A size on disk in megabytes (decimal, as `du --si` shows), for logs and tables.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// What a table cell shows for a value that is not a finite number.
pub const UNDEFINED_MARK: &str = "–";

/// `v` with `digits` decimals, or `undefined` when it is not finite (sentences in logs).
pub fn word(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "undefined".to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Probe {
        #[serde(with = "super")]
        x: f64,
        #[serde(default, with = "super::opt")]
        y: Option<f64>,
        #[serde(default, with = "super::map")]
        m: BTreeMap<String, f64>,
    }

    fn round_trip(x: f64, y: Option<f64>) -> (String, Probe) {
        let p = Probe {
            x,
            y,
            m: BTreeMap::from([("a".to_string(), x)]),
        };
        let text = serde_json::to_string(&p).unwrap();
        (text.clone(), serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn non_finite_values_round_trip_as_tags_and_finite_ones_as_numbers() {
        let (text, back) = round_trip(f64::NAN, Some(f64::INFINITY));
        assert_eq!(text, r#"{"x":"NaN","y":"inf","m":{"a":"NaN"}}"#);
        assert!(back.x.is_nan() && back.m["a"].is_nan());
        assert_eq!(back.y, Some(f64::INFINITY));
        let (text, back) = round_trip(f64::NEG_INFINITY, None);
        assert_eq!(text, r#"{"x":"-inf","y":null,"m":{"a":"-inf"}}"#);
        assert_eq!((back.x, back.y), (f64::NEG_INFINITY, None));
        let (text, back) = round_trip(0.25, Some(-3.0));
        assert_eq!(text, r#"{"x":0.25,"y":-3.0,"m":{"a":0.25}}"#);
        assert_eq!((back.x, back.y), (0.25, Some(-3.0)));
    }

    #[test]
    fn version_1_nulls_and_integers_read_back() {
        let p: Probe = serde_json::from_str(r#"{"x":null,"y":null,"m":{"a":null}}"#).unwrap();
        assert!(p.x.is_nan() && p.y.is_none() && p.m["a"].is_nan());
        let p: Probe = serde_json::from_str(r#"{"x":3,"y":-2}"#).unwrap();
        assert_eq!((p.x, p.y), (3.0, Some(-2.0)));
        let err = serde_json::from_str::<Probe>(r#"{"x":"seven"}"#).unwrap_err();
        assert!(err.to_string().contains("seven"), "{err}");
    }

    #[test]
    fn cells_show_a_dash_and_sentences_a_word() {
        assert_eq!(fixed(0.123456, 3), "0.123");
        assert_eq!(fixed(f64::NAN, 3), "–");
        assert_eq!(signed(f64::INFINITY, 2), "–");
        assert_eq!(signed(0.5, 2), "+0.50");
        assert_eq!(word(f64::NAN, 4), "undefined");
    }
}
