//! The CSV row → telemetry point mapping (one CSV row = one broker message).
//!
//! Owns the reading of the DCGM CSV by header name (extra or reordered columns are fine; quoted fields, doubled quotes, CRLF and a
//! UTF-8 BOM are the `csv` crate's job), the parsing of `labels_raw` (`k="v",k2="v2"` with
//! backslash escapes) and the reasons a row is rejected. It does not decide what happens to a
//! rejected row (the streamer counts, logs and skips it) nor where a point goes.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use csv::ByteRecord;

use crate::error::{Error, RowProblem};
/// The point's type and its one time format belong to the store, which owns the data model.
pub use store::point::{Labels, Point};
pub use store::time::{format_ts, parse_ts};

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
