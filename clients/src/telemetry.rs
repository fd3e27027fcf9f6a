//! The telemetry point (one CSV row = one broker message) and the CSV row → point mapping.
//!
//! Owns the message's JSON shape (DESIGN.md "Telemetry point"), the reading of the DCGM CSV by
//! header name (extra or reordered columns are fine; quoted fields, doubled quotes, CRLF and a
//! UTF-8 BOM are the `csv` crate's job), the parsing of `labels_raw` (`k="v",k2="v2"` with
//! backslash escapes) and the reasons a row is rejected. It does not decide what happens to a
//! rejected row (the streamer counts, logs and skips it) nor where a point goes.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use csv::ByteRecord;
use serde::{Deserialize, Serialize};

use crate::error::{Error, RowProblem};

/// One telemetry point: the value of a broker message, keyed by `gpu_uuid`.
///
/// Strings borrow from the CSV record (streamer) or from the fetched bytes (collector) when
/// they can, so neither side copies every field of every row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point<'a> {
    /// When the streamer processed the row (RFC 3339, UTC, microseconds).
    #[serde(with = "rfc3339_micros")]
    pub ts: DateTime<Utc>,
    /// The CSV's own timestamp; optional on decode so other producers may omit it.
    #[serde(with = "rfc3339_micros_opt", default)]
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
        }
        d.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

/// A string that borrows from the input when it has no escapes (serde's `Cow` alone never
/// borrows inside a map).
struct BorrowedStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BorrowedStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wrap<'a>(#[serde(borrow)] Cow<'a, str>);
        Wrap::deserialize(d).map(|w| BorrowedStr(w.0))
    }
}

/// RFC 3339 in UTC with exactly six fractional digits, the wire form of `ts`.
pub fn format_ts(ts: &DateTime<Utc>) -> String {
    let mut buf = [0u8; TS_LEN];
    match write_ts(ts, &mut buf) {
        Some(text) => text.to_string(),
        None => ts.to_rfc3339_opts(SecondsFormat::Micros, true),
    }
}

/// Length of `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
const TS_LEN: usize = 27;

/// Formats `ts` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` into `buf` without allocating (this runs
/// twice per row); `None` for years outside 0–9999, which chrono's formatter handles.
fn write_ts<'b>(ts: &DateTime<Utc>, buf: &'b mut [u8; TS_LEN]) -> Option<&'b str> {
    use chrono::{Datelike, Timelike};
    let year = u32::try_from(ts.year()).ok().filter(|y| *y <= 9999)?;
    // A leap second shows as nanosecond >= 1e9; chrono prints it as second 60.
    let (second, nanos) = match ts.nanosecond() {
        n if n >= 1_000_000_000 => (60, n - 1_000_000_000),
        n => (ts.second(), n),
    };
    let fields: [(usize, u32, usize); 7] = [
        (0, year, 4),
        (5, ts.month(), 2),
        (8, ts.day(), 2),
        (11, ts.hour(), 2),
        (14, ts.minute(), 2),
        (17, second, 2),
        (20, nanos / 1000, 6),
    ];
    buf.copy_from_slice(b"0000-00-00T00:00:00.000000Z");
    for (at, mut value, width) in fields {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    std::str::from_utf8(buf).ok()
}

/// Parses RFC 3339; the exact form [`format_ts`] writes takes a fast path.
pub fn parse_ts(text: &str) -> Option<DateTime<Utc>> {
    parse_ts_fast(text).or_else(|| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    })
}

fn parse_ts_fast(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != TS_LEN || &b[4..5] != b"-" || b[10] != b'T' || b[19] != b'.' || b[26] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let seps = [(7, b'-'), (13, b':'), (16, b':')];
    if seps.iter().any(|(i, c)| b[*i] != *c) {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?
        .and_hms_micro_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 26)?)
        .map(|t| t.and_utc())
}

pub(crate) mod rfc3339_micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; super::TS_LEN];
        match super::write_ts(ts, &mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&super::format_ts(ts)),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = super::BorrowedStr::deserialize(d)?.0;
        super::parse_ts(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time")))
    }
}

pub(crate) mod rfc3339_micros_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(ts) => super::rfc3339_micros::serialize(ts, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text = Option::<super::BorrowedStr<'de>>::deserialize(d)?;
        text.map(|t| {
            super::parse_ts(&t.0).ok_or_else(|| {
                serde::de::Error::custom(format!("{:?} is not an RFC 3339 time", t.0))
            })
        })
        .transpose()
    }
}

/// Where each column is in this file's header; found by name, so order and extra columns do
/// not matter. The four optional columns may be absent (then null / no labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    timestamp: usize,
    metric: usize,
    gpu_id: usize,
    device: usize,
    uuid: usize,
    model: usize,
    hostname: usize,
    value: usize,
    container: Option<usize>,
    pod: Option<usize>,
    namespace: Option<usize>,
    labels: Option<usize>,
}

impl Columns {
    /// Locates the columns in a header row; names a missing required column.
    pub fn from_header(header: &ByteRecord) -> Result<Columns, String> {
        let find = |name: &str| {
            header
                .iter()
                .position(|h| std::str::from_utf8(h).is_ok_and(|h| h.trim() == name))
        };
        let need =
            |name: &str| find(name).ok_or_else(|| format!("no column {name:?} in the header"));
        Ok(Columns {
            timestamp: need("timestamp")?,
            metric: need("metric_name")?,
            gpu_id: need("gpu_id")?,
            device: need("device")?,
            uuid: need("uuid")?,
            model: need("modelName")?,
            hostname: need("Hostname")?,
            value: need("value")?,
            container: find("container"),
            pod: find("pod"),
            namespace: find("namespace"),
            labels: find("labels_raw"),
        })
    }

    /// The raw bytes of the row's `Hostname` (empty when missing), which the streamer shards by
    /// without converting the whole row.
    pub fn hostname_bytes<'r>(&self, record: &'r ByteRecord) -> &'r [u8] {
        record.get(self.hostname).unwrap_or_default()
    }

    /// Turns one CSV record into a point processed at `ts`, or says what is wrong with it.
    pub fn point<'r>(
        &self,
        record: &'r ByteRecord,
        ts: DateTime<Utc>,
    ) -> Result<Point<'r>, RowProblem> {
        let text = |i: usize, name: &str| -> Result<&'r str, RowProblem> {
            let raw = record
                .get(i)
                .ok_or_else(|| RowProblem(format!("missing field {name}")))?;
            std::str::from_utf8(raw).map_err(|_| RowProblem(format!("{name} is not valid UTF-8")))
        };
        let required = |i: usize, name: &str| -> Result<&'r str, RowProblem> {
            let value = text(i, name)?;
            if value.trim().is_empty() {
                return Err(RowProblem(format!("{name} is empty")));
            }
            Ok(value)
        };
        let optional = |i: Option<usize>, name: &str| -> Result<Option<Cow<'r, str>>, RowProblem> {
            match i.map(|i| record.get(i).map(|_| text(i, name))) {
                Some(Some(v)) => Ok(Some(v?).filter(|v| !v.is_empty()).map(Cow::Borrowed)),
                _ => Ok(None),
            }
        };
        let uuid = required(self.uuid, "uuid")?;
        check_uuid(uuid)?;
        let gpu_index = parse_gpu_index(required(self.gpu_id, "gpu_id")?)?;
        let value = parse_value(required(self.value, "value")?)?;
        let source_ts = parse_source_ts(required(self.timestamp, "timestamp")?)?;
        let labels = match self.labels {
            Some(i) if record.get(i).is_some() => parse_labels(text(i, "labels_raw")?)
                .map_err(|e| RowProblem(format!("labels_raw: {e}")))?,
            _ => Labels::default(),
        };
        Ok(Point {
            ts,
            source_ts: Some(source_ts),
            metric: Cow::Borrowed(required(self.metric, "metric_name")?),
            gpu_uuid: Cow::Borrowed(uuid),
            gpu_index,
            device: Cow::Borrowed(text(self.device, "device")?),
            model: Cow::Borrowed(text(self.model, "modelName")?),
            hostname: Cow::Borrowed(required(self.hostname, "Hostname")?),
            container: optional(self.container, "container")?,
            pod: optional(self.pod, "pod")?,
            namespace: optional(self.namespace, "namespace")?,
            value,
            labels,
        })
    }
}

/// A GPU UUID as DCGM prints it: `GPU-` (or `MIG-`) then hex digits and dashes.
fn check_uuid(uuid: &str) -> Result<(), RowProblem> {
    let body = uuid
        .strip_prefix("GPU-")
        .or_else(|| uuid.strip_prefix("MIG-"));
    match body {
        Some(b) if !b.is_empty() && b.chars().all(|c| c.is_ascii_hexdigit() || c == '-') => Ok(()),
        _ => Err(RowProblem(format!(
            "uuid {uuid:?} is not a GPU UUID (GPU-<hex>)"
        ))),
    }
}

fn parse_gpu_index(raw: &str) -> Result<i32, RowProblem> {
    raw.trim()
        .parse::<i32>()
        .ok()
        .filter(|i| *i >= 0)
        .ok_or_else(|| RowProblem(format!("gpu_id {raw:?} is not a GPU index")))
}

fn parse_value(raw: &str) -> Result<f64, RowProblem> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| RowProblem(format!("value {raw:?} is not a finite number")))
}

/// RFC 3339; a zone-less `YYYY-MM-DD HH:MM:SS[.f]` or `…T…` is taken as UTC.
fn parse_source_ts(raw: &str) -> Result<DateTime<Utc>, RowProblem> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .map(|t| t.and_utc())
        .ok_or_else(|| RowProblem(format!("timestamp {raw:?} is not an RFC 3339 time")))
}

/// Parses `k="v",k2="v2"` (Prometheus label syntax: `\"`, `\\` and `\n` escapes inside values;
/// spaces around items and a trailing comma are tolerated). Empty input is no labels.
pub fn parse_labels(raw: &str) -> Result<Labels<'_>, String> {
    let mut pairs = Vec::new();
    let mut rest = raw.trim_start();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("label {:?} has no '='", truncate(rest)))?;
        let key = rest[..eq].trim();
        if !is_label_name(key) {
            return Err(format!("{key:?} is not a label name"));
        }
        let after = rest[eq + 1..].trim_start();
        let body = after
            .strip_prefix('"')
            .ok_or_else(|| format!("value of label {key} does not start with a quote"))?;
        let (value, used) =
            unquote(body).ok_or_else(|| format!("value of label {key} has no closing quote"))?;
        pairs.push((Cow::Borrowed(key), value));
        rest = body[used..].trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => {
                return Err(format!(
                    "expected ',' after label {key}, found {:?}",
                    truncate(rest)
                ))
            }
        }
    }
    Ok(Labels(pairs))
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads a quoted value's body up to its closing quote; returns the value and the bytes used
/// (closing quote included). Borrows when there is no escape.
fn unquote(body: &str) -> Option<(Cow<'_, str>, usize)> {
    let end = body.find(['"', '\\'])?;
    if body.as_bytes()[end] == b'"' {
        return Some((Cow::Borrowed(&body[..end]), end + 1));
    }
    let mut value = String::from(&body[..end]);
    let mut chars = body[end..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((Cow::Owned(value), end + i + 1)),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A DCGM CSV file read record by record: the header is checked once, each record comes with
/// the line it starts on.
pub struct CsvRows {
    path: PathBuf,
    reader: csv::Reader<File>,
    columns: Columns,
    record: ByteRecord,
}

impl CsvRows {
    /// Opens the file and checks its header.
    pub fn open(path: &Path) -> Result<CsvRows, Error> {
        let csv_error = |reason: String| Error::Csv {
            path: path.display().to_string(),
            reason,
        };
        let file = File::open(path).map_err(|e| csv_error(e.to_string()))?;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .buffer_capacity(1 << 20)
            .from_reader(file);
        let header = reader
            .byte_headers()
            .map_err(|e| csv_error(e.to_string()))?;
        let columns = Columns::from_header(header).map_err(csv_error)?;
        Ok(CsvRows {
            path: path.to_path_buf(),
            reader,
            columns,
            record: ByteRecord::new(),
        })
    }

    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// How many bytes of the file have been read (for a progress bar).
    pub fn byte_position(&self) -> u64 {
        self.reader.position().byte()
    }

    /// The next record with its line number, `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<CsvRow<'_>>, Error> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => Ok(None),
            Ok(true) => Ok(Some(CsvRow {
                line: self.record.position().map_or(0, |p| p.line()),
                record: &self.record,
                columns: &self.columns,
            })),
            Err(e) => Err(Error::Csv {
                path: self.path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

/// One record of a [`CsvRows`], with what is needed to map it.
pub struct CsvRow<'a> {
    /// The 1-based line the record starts on (the header is line 1).
    pub line: u64,
    pub record: &'a ByteRecord,
    pub columns: &'a Columns,
}

impl<'a> CsvRow<'a> {
    pub fn hostname_bytes(&self) -> &'a [u8] {
        self.columns.hostname_bytes(self.record)
    }

    pub fn point(&self, ts: DateTime<Utc>) -> Result<Point<'a>, RowProblem> {
        self.columns.point(self.record, ts)
    }
}

#[cfg(test)]
mod tests;
