//! A dcgm-exporter scrape (Prometheus text exposition format) → telemetry points.
//!
//! The text is parsed by the `openmetrics-parser` crate (its Prometheus grammar), not by hand.
//! That parser is slow: a profile of the bench's bare parse + map + encode path
//! (`SCRAPE_BENCH_PARSE_ONLY=1`, see `benches/scrape.rs`) puts ~71 % of the CPU in the `pest`
//! grammar engine (a third of that in `pest`'s stack probe on every rule call), ~17 % in
//! allocation and copies (mostly the parser's token queue and strings), ~5 % in the crate's
//! model, and ~3 % in this module's mapping and the JSON encoding together — 14,000–30,000
//! samples/s on one thread. So a streamer does not run it on every scrape: each target keeps
//! the shape of its last scrape ([`ShapeCache`], module `shape`), and a scrape that is the same
//! text but for its sample values (what dcgm-exporter serves, scrape after scrape) is mapped
//! and encoded from it without parsing (~3M samples/s on one thread); any other text goes to
//! the parser, as here. The other
//! crates were judged again (2026-12); none is both correct and kept up:
//!
//! - `prometheus-parse` 0.2.5 (still the latest): splits label pairs on `,` and `=` and trims
//!   quotes without unescaping (a value holding `,`, `=`, `}` or an escaped quote comes out
//!   wrong or the line is dropped), drops lines it cannot read without telling, and puts the
//!   scrape time in place of a missing timestamp, so a sample's own timestamp cannot be told
//!   from none.
//! - `prom_text_format_parser` 0.1.0 (one release): keeps label values escaped (`\"` stays
//!   two characters), its `Float::as_f64` is an `unwrap`, and it is built on old `winnow` 0.5
//!   and `derive_more` 0.99.
//! - `nom-openmetrics` 0.3.0: its sample grammar has no timestamp (a line with one does not
//!   parse) and it validates nothing.
//! - `prometheus-client` only encodes; `openmetrics-parser`'s other entry point
//!   (`parse_openmetrics`) is the same engine with the stricter OpenMetrics rules (`# EOF`,
//!   `_total` counters), which dcgm-exporter does not follow.
//!
//! The grammar parser refuses a whole exposition for one bad line, and for a family whose
//! samples have different label sets (dcgm-exporter adds `container`/`pod`/`namespace` only to
//! the GPUs a pod uses). When the whole text does not parse, each sample line is parsed on its
//! own, after the comment lines (`# HELP`, `# TYPE`) that precede its family, so that one bad
//! line costs that line only.
//!
//! The mapping onto [`Point`]:
//!
//! | point       | from                                                                 |
//! |-------------|----------------------------------------------------------------------|
//! | `metric`    | the metric name                                                      |
//! | `gpu_uuid`  | label `UUID` (required)                                              |
//! | `gpu_index` | label `gpu` (required, an index ≥ 0)                                 |
//! | `device`    | label `device` (empty when absent)                                   |
//! | `model`     | label `modelName` (empty when absent)                                |
//! | `hostname`  | label `Hostname`; the target URL's host when absent or empty         |
//! | `container`, `pod`, `namespace` | the labels of those names, when non-empty        |
//! | `value`     | the sample's value (finite only)                                     |
//! | `ts`        | the scrape's time (the pipeline's time: when the sample was taken)  |
//! | `source_ts` | the sample's own timestamp when the line has one, else null          |
//! | `labels`    | every other label as it is (`pci_bus_id`, `DCGM_FI_DRIVER_VERSION`, MIG's `GPU_I_ID`/`GPU_I_PROFILE`, `err_code`, …), plus [`TYPE_LABEL`] |
//!
//! [`TYPE_LABEL`] (`__type__`) holds the family's `# TYPE`: `gauge`, `counter` or `untyped`
//! (no `# TYPE` line). Samples skipped, each counted under one reason ([`Skipped`]), checked
//! in this order: a histogram or summary family (dcgm-exporter has none; not mapped), a line
//! that does not parse, no `UUID`, no usable `gpu`, a NaN or ±Inf value, and a point the store
//! could not hold ([`Point::check`]: a NUL character, a time out of range).

use std::borrow::Cow;

use chrono::{DateTime, TimeZone, Utc};
use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};

use crate::telemetry::{Labels, Point};

/// The label that carries the metric's `# TYPE` (`gauge`, `counter`, `untyped`).
pub const TYPE_LABEL: &str = "__type__";

/// Samples of a scrape that became no point, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// A histogram or summary family (not mapped onto points).
    pub unsupported_type: u64,
    /// A line that is neither a comment nor a sample the parser reads.
    pub unparseable: u64,
    /// No `UUID` label, or an empty one.
    pub no_uuid: u64,
    /// No `gpu` label, or not an index ≥ 0.
    pub no_gpu: u64,
    /// NaN or ±Inf.
    pub not_finite: u64,
    /// A point PostgreSQL could not store ([`Point::check`]).
    pub invalid: u64,
}

impl Skipped {
    /// Each reason with its count, under the names the metrics use.
    pub fn by_reason(&self) -> [(&'static str, u64); 6] {
        [
            ("unsupported_type", self.unsupported_type),
            ("unparseable", self.unparseable),
            ("no_uuid", self.no_uuid),
            ("no_gpu", self.no_gpu),
            ("not_finite", self.not_finite),
            ("invalid", self.invalid),
        ]
    }

    pub fn total(&self) -> u64 {
        self.by_reason().iter().map(|(_, n)| n).sum()
    }
}

/// A scrape mapped: its points (sorted by metric, GPU, then labels) and what was skipped.
#[derive(Debug, Default)]
pub struct Mapped {
    pub points: Vec<Point<'static>>,
    pub skipped: Skipped,
}

type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

/// Maps the text of one scrape taken at `scraped_at` from a target whose host is
/// `target_host`. Never panics, whatever the text (a panic inside the parser is caught and
/// counts the text, or the line, as unparseable).
pub fn map_exposition(text: &str, scraped_at: DateTime<Utc>, target_host: &str) -> Mapped {
    map_and_read(text, scraped_at, target_host).0
}

/// [`map_exposition`], plus the samples as the parser read them when it read the text whole
/// (what [`shape`] memoizes).
fn map_and_read(
    text: &str,
    scraped_at: DateTime<Utc>,
    target_host: &str,
) -> (Mapped, Option<Vec<Read>>) {
    let mut mapped = Mapped::default();
    let whole = match parse(text) {
        Some(exposition) => {
            let reads = reads(exposition);
            mapped.add(&reads, scraped_at, target_host);
            Some(reads)
        }
        None => {
            for (header, line) in line_by_line(text) {
                let with_header = format!("{header}{line}\n");
                match parse(&with_header).or_else(|| parse(line)) {
                    Some(e) => mapped.add(&reads(e), scraped_at, target_host),
                    None => mapped.skipped.unparseable += 1,
                }
            }
            None
        }
    };
    mapped
        .points
        .sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    (mapped, whole)
}

/// The order of a scrape's points: by metric, GPU, then labels (a stable sort, so points
/// with the same key keep their family's line order).
#[allow(clippy::type_complexity)]
fn order_key<'p, 'a>(
    p: &'p Point<'a>,
) -> (
    &'p Cow<'a, str>,
    &'p Cow<'a, str>,
    i32,
    &'p Vec<(Cow<'a, str>, Cow<'a, str>)>,
) {
    (&p.metric, &p.gpu_uuid, p.gpu_index, &p.labels.0)
}

/// The parser on one text (with the final newline its grammar wants); `None` when it refuses
/// the text or panics.
fn parse(text: &str) -> Option<Exposition> {
    if text.trim().is_empty() {
        return None;
    }
    let text = if text.ends_with('\n') {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("{text}\n"))
    };
    std::panic::catch_unwind(|| parse_prometheus(&text).ok())
        .ok()
        .flatten()
}

/// The sample lines of `text`, each after the run of comment lines that last preceded a sample
/// (each ending in `\n`).
fn line_by_line(text: &str) -> Vec<(String, &str)> {
    let mut chunks = Vec::new();
    let mut header = String::new();
    let mut after_sample = true;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('#') {
            if after_sample {
                header.clear();
                after_sample = false;
            }
            header.push_str(line);
            header.push('\n');
        } else {
            after_sample = true;
            chunks.push((header.clone(), line));
        }
    }
    chunks
}

/// One sample as the parser read it.
#[derive(Debug)]
struct Read {
    /// Its family's name (the metric).
    family: String,
    /// Its place among its family's samples (they keep the order of their lines).
    nth: usize,
    /// The family's `# TYPE` as [`TYPE_LABEL`] has it; `None` for a histogram or summary.
    kind: Option<&'static str>,
    value: f64,
    /// Milliseconds since the epoch, as the text format has them.
    timestamp_ms: Option<f64>,
    /// The line has an exemplar (`# {…} value` after the value; a `_total` counter's).
    exemplar: bool,
    /// `None` when the parser could not give its label set.
    labels: Option<Vec<(String, String)>>,
}

/// Every sample of an exposition, family by family.
fn reads(exposition: Exposition) -> Vec<Read> {
    let mut reads = Vec::new();
    for family in exposition.families.into_values() {
        let name = family.family_name.clone();
        for (nth, sample) in family.into_iter_samples().enumerate() {
            let (kind, value, exemplar) = match &sample.value {
                PrometheusValue::Gauge(n) => (Some("gauge"), n.as_f64(), false),
                PrometheusValue::Counter(c) => {
                    (Some("counter"), c.value.as_f64(), c.exemplar.is_some())
                }
                PrometheusValue::Unknown(n) => (Some("untyped"), n.as_f64(), false),
                PrometheusValue::Histogram(_) | PrometheusValue::Summary(_) => {
                    (None, f64::NAN, false)
                }
            };
            let labels = sample.get_labelset().ok().map(|set| {
                set.iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            });
            reads.push(Read {
                family: name.clone(),
                nth,
                kind,
                value,
                timestamp_ms: sample.timestamp,
                exemplar,
                labels,
            });
        }
    }
    reads
}

impl Mapped {
    fn add(&mut self, reads: &[Read], scraped_at: DateTime<Utc>, target_host: &str) {
        for read in reads {
            let Some(kind) = read.kind else {
                self.skipped.unsupported_type += 1;
                continue;
            };
            let Some(labels) = &read.labels else {
                self.skipped.unparseable += 1;
                continue;
            };
            let series = series(
                &read.family,
                kind,
                labels,
                read.timestamp_ms,
                scraped_at,
                target_host,
            );
            match judge(&series, read.value) {
                Some(reason) => reason.count(&mut self.skipped),
                None => {
                    if let Ok(mut point) = series {
                        point.value = read.value;
                        self.points.push(point);
                    }
                }
            }
        }
    }
}

/// Why a sample became no point (a [`Skipped`] counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    NoUuid,
    NoGpu,
    NotFinite,
    Invalid,
}

impl Reason {
    fn count(self, skipped: &mut Skipped) {
        match self {
            Reason::NoUuid => skipped.no_uuid += 1,
            Reason::NoGpu => skipped.no_gpu += 1,
            Reason::NotFinite => skipped.not_finite += 1,
            Reason::Invalid => skipped.invalid += 1,
        }
    }
}

/// What a sample's series (its family, labels and timestamp) maps to whatever its value: its
/// point (the value still 0), or why it is none ([`Reason::NoUuid`], [`Reason::NoGpu`],
/// [`Reason::Invalid`]).
fn series(
    metric: &str,
    kind: &'static str,
    labels: &[(String, String)],
    timestamp_ms: Option<f64>,
    scraped_at: DateTime<Utc>,
    target_host: &str,
) -> Result<Point<'static>, Reason> {
    let mut uuid = None;
    let mut gpu = None;
    let mut device = None;
    let mut model = None;
    let mut hostname = None;
    let mut container = None;
    let mut pod = None;
    let mut namespace = None;
    let mut rest = Vec::with_capacity(labels.len() + 1);
    for (name, value) in labels {
        let slot = match name.as_str() {
            "UUID" => &mut uuid,
            "gpu" => &mut gpu,
            "device" => &mut device,
            "modelName" => &mut model,
            "Hostname" => &mut hostname,
            "container" => &mut container,
            "pod" => &mut pod,
            "namespace" => &mut namespace,
            _ => {
                rest.push((Cow::Owned(name.clone()), Cow::Owned(value.clone())));
                continue;
            }
        };
        *slot = Some(value.as_str());
    }
    fn non_empty(v: Option<&str>) -> Option<&str> {
        v.filter(|v| !v.is_empty())
    }
    let owned = |v: Option<&str>| non_empty(v).map(|v| Cow::Owned(v.to_string()));
    let gpu_uuid = non_empty(uuid).ok_or(Reason::NoUuid)?;
    let gpu_index = gpu
        .and_then(|g| g.trim().parse::<i32>().ok())
        .filter(|i| *i >= 0)
        .ok_or(Reason::NoGpu)?;
    rest.push((Cow::Borrowed(TYPE_LABEL), Cow::Borrowed(kind)));
    let point = Point {
        ts: scraped_at,
        source_ts: timestamp_ms
            .filter(|t| t.is_finite())
            .and_then(|t| Utc.timestamp_millis_opt(t as i64).single()),
        metric: Cow::Owned(metric.to_string()),
        gpu_uuid: Cow::Owned(gpu_uuid.to_string()),
        gpu_index,
        device: Cow::Owned(device.unwrap_or_default().to_string()),
        model: Cow::Owned(model.unwrap_or_default().to_string()),
        hostname: Cow::Owned(non_empty(hostname).unwrap_or(target_host).to_string()),
        container: owned(container),
        pod: owned(pod),
        namespace: owned(namespace),
        value: 0.0,
        labels: Labels(rest),
    };
    point.check().map_err(|_| Reason::Invalid)?;
    Ok(point)
}

/// Why a sample of `series` with `value` becomes no point, in the documented order: no UUID,
/// no usable GPU, a value that is not finite, a point the store could not hold.
fn judge<T>(series: &Result<T, Reason>, value: f64) -> Option<Reason> {
    match series {
        Err(reason @ (Reason::NoUuid | Reason::NoGpu)) => Some(*reason),
        _ if !value.is_finite() => Some(Reason::NotFinite),
        Err(reason) => Some(*reason),
        Ok(_) => None,
    }
}

/// The host of a target URL (`http://host:port/path` → `host`; IPv6 brackets removed), for
/// samples without a `Hostname` label. `None` when the URL has no host.
pub fn target_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    Some(host.to_string()).filter(|h| !h.is_empty())
}

/// The idempotent producer id of a target: `scrape-` and the URL with every character the
/// broker does not allow in a producer id (letters, digits, `.`, `_`, `:`, `-`) made a `-`;
/// a URL too long for the 128-character limit is cut and ends in a hash of the whole URL, so
/// two long URLs with the same beginning still get different ids.
pub fn producer_id(url: &str) -> String {
    let clean: String = url
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let id = format!("scrape-{clean}");
    if id.len() <= 128 {
        return id;
    }
    let hash = format!("-{:016x}", broker_client::fnv1a64(url.as_bytes()));
    format!("{}{hash}", &id[..128 - hash.len()])
}

mod shape;
pub use shape::{Encoded, ShapeCache};

#[cfg(test)]
mod tests;
