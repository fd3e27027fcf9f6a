//! The JSON answers in Prometheus's shapes: `{"status":"success","data":…}`, results as
//! `vector`, `matrix` or `scalar`, a sample as `[unix_seconds, "value"]` with the time
//! written as Prometheus writes it (whole seconds without a fraction, else to the
//! millisecond) and the value as Go's `FormatFloat(v, 'f', -1)` (`NaN`, `+Inf`, `-Inf`).

use serde::ser::{SerializeMap, SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};

use super::eval::{Labels, Outcome, SeriesOut};
use crate::handlers::{json, HttpResponse};

/// `{"status":"success","data":data}` with 200.
pub fn success<T: Serialize>(data: &T) -> HttpResponse {
    json(
        http::StatusCode::OK,
        &Success {
            status: "success",
            data,
        },
    )
}

#[derive(Serialize)]
struct Success<'a, T> {
    status: &'static str,
    data: &'a T,
}

/// A sample value as Prometheus writes it.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust's shortest round-trip form never uses an exponent, like Go's 'f', -1.
        format!("{v}")
    }
}

/// `[time, "value"]`.
struct Point(i64, f64);

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        if self.0 % 1000 == 0 {
            t.serialize_element(&(self.0 / 1000))?;
        } else {
            t.serialize_element(&(self.0 as f64 / 1000.0))?;
        }
        t.serialize_element(&format_value(self.1))?;
        t.end()
    }
}

/// A label set as a JSON object.
struct Metric<'a>(&'a Labels);

impl Serialize for Metric<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// The `data` of a query answer.
pub struct QueryData<'a>(&'a Outcome);

impl<'a> From<&'a Outcome> for QueryData<'a> {
    fn from(outcome: &'a Outcome) -> Self {
        QueryData(outcome)
    }
}

struct VectorResult<'a>(&'a [(Labels, f64)], i64);
struct MatrixResult<'a>(&'a [SeriesOut]);

impl Serialize for VectorResult<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (labels, value) in self.0 {
            seq.serialize_element(&VectorItem {
                metric: Metric(labels),
                value: Point(self.1, *value),
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct VectorItem<'a> {
    metric: Metric<'a>,
    value: Point,
}

struct Values<'a>(&'a [(i64, f64)]);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for &(t, v) in self.0 {
            seq.serialize_element(&Point(t, v))?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct MatrixItem<'a> {
    metric: Metric<'a>,
    values: Values<'a>,
}

impl Serialize for MatrixResult<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for series in self.0 {
            seq.serialize_element(&MatrixItem {
                metric: Metric(&series.labels),
                values: Values(&series.points),
            })?;
        }
        seq.end()
    }
}

impl Serialize for QueryData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        match self.0 {
            Outcome::Scalar(t, v) => {
                map.serialize_entry("resultType", "scalar")?;
                map.serialize_entry("result", &Point(*t, *v))?;
            }
            Outcome::Vector(t, samples) => {
                map.serialize_entry("resultType", "vector")?;
                map.serialize_entry("result", &VectorResult(samples, *t))?;
            }
            Outcome::Matrix(series) => {
                map.serialize_entry("resultType", "matrix")?;
                map.serialize_entry("result", &MatrixResult(series))?;
            }
        }
        map.end()
    }
}

/// The `data` of `/api/v1/series`: a list of label sets.
pub fn series_list(series: &[Labels]) -> serde_json::Value {
    serde_json::Value::Array(
        series
            .iter()
            .map(|labels| {
                serde_json::Value::Object(
                    labels
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                        .collect(),
                )
            })
            .collect(),
    )
}

/// The `data` of `/api/v1/metadata`.
pub fn metadata(names: &[String]) -> serde_json::Value {
    serde_json::Value::Object(
        names
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    serde_json::json!([{"type": "unknown", "help": "", "unit": ""}]),
                )
            })
            .collect(),
    )
}

/// The `data` of `/api/v1/status/buildinfo`: Grafana reads the version to pick features.
pub fn build_info() -> serde_json::Value {
    serde_json::json!({
        "version": "2.42.0",
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_as_go_writes_them() {
        assert_eq!(format_value(1.5), "1.5");
        assert_eq!(format_value(100.0), "100");
        assert_eq!(format_value(1e-7), "0.0000001");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
    }

    #[test]
    fn times_are_whole_seconds_or_milliseconds() {
        let text = serde_json::to_string(&Point(1_500_000_000_000, 2.0)).unwrap_or_default();
        assert_eq!(text, r#"[1500000000,"2"]"#);
        let text = serde_json::to_string(&Point(1_500_000_000_250, 2.0)).unwrap_or_default();
        assert_eq!(text, r#"[1500000000.25,"2"]"#);
    }
}
