//! The telemetry point: one GPU's one metric at one time, the value of one broker message.
//!
//! Owns the message's JSON shape (below) and what makes a point storable ([`Point::check`]).
//! The streamer builds points (from CSV rows or scrapes), the collector decodes them and hands
//! them to [`crate::write`]; neither has a point type of its own.
//!
//! ```json
//! {"ts":"2026-01-02T03:04:05.123456Z","source_ts":"2025-07-18T20:42:34.000000Z",
//!  "metric":"DCGM_FI_DEV_GPU_TEMP","gpu_uuid":"GPU-5fd4…","gpu_index":0,"device":"nvidia0",
//!  "model":"NVIDIA H100 80GB HBM3","hostname":"mtv5-dgx1-hgpu-031","container":null,
//!  "pod":null,"namespace":null,"value":41.0,"labels":{"DCGM_FI_DRIVER_VERSION":"535.129.03"}}
//! ```
//!
//! `ts` is when the point was taken by the pipeline (the streamer's processing time, or the
//! scrape's), `source_ts` the source's own timestamp when it has one. Times are RFC 3339 with
//! microseconds ([`crate::time`]). `labels` is an object of strings; `container`, `pod`,
//! `namespace` may be null or absent.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

/// One telemetry point: the value of a broker message, keyed by `gpu_uuid`.
///
/// Strings borrow from the CSV record (streamer) or from the fetched bytes (collector) when
/// they can, so neither side copies every field of every row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point<'a> {
    /// When the pipeline took the point: the streamer's processing time of a CSV row, or the
    /// time of the scrape a sample came from (RFC 3339, UTC, microseconds).
    #[serde(with = "crate::time::rfc3339_micros")]
    pub ts: DateTime<Utc>,
    /// The source's own timestamp: the CSV's, or a scraped sample's when its line has one
    /// (dcgm-exporter's have none). Optional on decode so other producers may omit it.
    #[serde(with = "crate::time::rfc3339_micros_opt", default)]
    pub source_ts: Option<DateTime<Utc>>,
    #[serde(borrow)]
    pub metric: Cow<'a, str>,
    #[serde(borrow)]
    pub gpu_uuid: Cow<'a, str>,
    pub gpu_index: i32,
    #[serde(borrow)]
    pub device: Cow<'a, str>,
    #[serde(borrow)]
    pub model: Cow<'a, str>,
    #[serde(borrow)]
    pub hostname: Cow<'a, str>,
    #[serde(borrow)]
    pub container: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub pod: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub namespace: Option<Cow<'a, str>>,
    pub value: f64,
    #[serde(borrow, default)]
    pub labels: Labels<'a>,
}

/// `labels_raw` parsed: name → value pairs in their CSV order, a JSON object on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl Serialize for Labels<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Labels<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Labels<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of string labels")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Labels<'a>, M::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = m.next_entry::<BorrowedStr<'a>, BorrowedStr<'a>>()? {
                    pairs.push((k.0, v.0));
                }
                Ok(Labels(pairs))
            }
            /// `"labels": null` is no labels, as an absent field is.
            fn visit_unit<E: serde::de::Error>(self) -> Result<Labels<'a>, E> {
                Ok(Labels::default())
            }
        }
        d.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

/// A string that borrows from the input when it has no escapes (serde's `Cow` alone never
/// borrows inside a map).
pub(crate) struct BorrowedStr<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BorrowedStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wrap<'a>(#[serde(borrow)] Cow<'a, str>);
        Wrap::deserialize(d).map(|w| BorrowedStr(w.0))
    }
}

impl Point<'_> {
    /// The point with every borrowed string copied, so it can outlive the bytes it was
    /// decoded from (the collector hands points from its fetch thread to its writers).
    pub fn into_owned(self) -> Point<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        Point {
            ts: self.ts,
            source_ts: self.source_ts,
            metric: own(self.metric),
            gpu_uuid: own(self.gpu_uuid),
            gpu_index: self.gpu_index,
            device: own(self.device),
            model: own(self.model),
            hostname: own(self.hostname),
            container: self.container.map(own),
            pod: self.pod.map(own),
            namespace: self.namespace.map(own),
            value: self.value,
            labels: Labels(
                self.labels
                    .0
                    .into_iter()
                    .map(|(k, v)| (own(k), own(v)))
                    .collect(),
            ),
        }
    }

    /// Whether PostgreSQL can store the point as it is; why not, otherwise.
    pub fn check(&self) -> Result<(), String> {
        let texts = [
            &self.gpu_uuid,
            &self.metric,
            &self.hostname,
            &self.device,
            &self.model,
        ];
        let optional = [&self.container, &self.pod, &self.namespace];
        let nul = texts.iter().any(|t| t.contains('\0'))
            || optional
                .iter()
                .any(|t| t.as_deref().is_some_and(|t| t.contains('\0')))
            || self
                .labels
                .0
                .iter()
                .any(|(k, v)| k.contains('\0') || v.contains('\0'));
        if nul {
            return Err("contains a NUL character, which PostgreSQL text cannot hold".into());
        }
        for t in std::iter::once(&self.ts).chain(self.source_ts.as_ref()) {
            if !(1..=9999).contains(&t.year()) {
                return Err(format!("time {t} is out of range"));
            }
        }
        if self.gpu_uuid.is_empty() || self.metric.is_empty() {
            return Err("gpu_uuid and metric must not be empty".into());
        }
        Ok(())
    }
}

impl Labels<'_> {
    /// The labels as a JSON object, in their order.
    pub fn to_json(&self) -> String {
        // A map of strings always serialises.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}
