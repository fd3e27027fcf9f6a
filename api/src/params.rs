//! The telemetry query string: parsed, checked and resolved into a [`Window`].
//!
//! Every refusal is an [`ApiError::BadParameter`] naming the parameter and saying what is
//! wrong, so a client can fix its request from the message alone. The same struct documents the
//! parameters in the OpenAPI spec, so the spec and the parser cannot drift apart.

use chrono::{DateTime, Duration, Utc};
use store::aggregate::{Agg, Buckets, MAX_BUCKETS};
use store::read::Cursor;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::model::format_ts;

/// The page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest page a client may ask for.
pub const MAX_LIMIT: u32 = 1000;
/// The deepest `offset` a page may start at. Skipping costs the database time in proportion
/// to the offset (1.2 s at 3,000,000), so deeper pages are reached with `cursor`, which costs
/// the same at any depth; a deeper `offset` is a 400 that says so.
pub const MAX_OFFSET: u64 = 10_000;
/// How far back a step query reaches when `start_time` is not given.
pub const DEFAULT_STEP_WINDOW: Duration = Duration::hours(1);
/// Every query parameter the telemetry endpoint accepts.
pub const ACCEPTED: [&str; 8] = [
    "start_time",
    "end_time",
    "metric",
    "step",
    "agg",
    "limit",
    "offset",
    "cursor",
];

/// A name given as a filter (a metric, a host): a string that is not empty and holds no NUL. Describes the
/// parameters in the spec; the parsers keep plain strings.
pub struct Name;

impl utoipa::PartialSchema for Name {
    // `example` (deprecated in OpenAPI 3.1 for `examples`) as the derived schemas write it.
    #[allow(deprecated)]
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            // No NUL: PostgreSQL text cannot hold one, and every route refuses it (400).
            .pattern(Some(r"^[^\x00]+$"))
            .example(Some(serde_json::json!("DCGM_FI_DEV_GPU_TEMP")))
            .into()
    }
}

impl ToSchema for Name {}

/// What a bucket's value is (`agg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(as = Agg, example = "avg")]
#[allow(dead_code)] // describes the parameter in the spec; the parser reads `store::aggregate::Agg`
pub enum AggDoc {
    #[schema(rename = "avg")]
    Avg,
    #[schema(rename = "min")]
    Min,
    #[schema(rename = "max")]
    Max,
    #[schema(rename = "sum")]
    Sum,
    #[schema(rename = "count")]
    Count,
    #[schema(rename = "first")]
    First,
    #[schema(rename = "last")]
    Last,
}

/// The query parameters of `GET /api/v1/gpus/{id}/telemetry`.
///
/// Times (`start_time`, `end_time`) are RFC 3339 with any offset (`Z`, `+02:00`; in a query
/// string write `+` as `%2B`), Unix seconds (`1752846153`, `1752846153.25`), Unix
/// milliseconds (13 digits or more: `1752846153250`), `now`, or relative to now (`-6h`,
/// `now-90m`; units s, m, h, d, w).
#[derive(Debug, Clone, Default, PartialEq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TelemetryQuery {
    /// Inclusive start of the window. Default: from the first point; with `step`, one hour
    /// before `end_time`.
    #[param(value_type = Option<String>, pattern = r"^(now|now-[0-9]+[smhdw]([0-9]+[smhdw])*|-[0-9]+[smhdw]([0-9]+[smhdw])*|[0-9]{1,16}(\.[0-9]{1,9})?|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))$", example = "2025-07-18T13:42:33Z")]
    pub start_time: Option<DateTime<Utc>>,
    /// Inclusive end of the window. Default: to the latest point; with `step`, now.
    #[param(value_type = Option<String>, pattern = r"^(now|now-[0-9]+[smhdw]([0-9]+[smhdw])*|-[0-9]+[smhdw]([0-9]+[smhdw])*|[0-9]{1,16}(\.[0-9]{1,9})?|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))$", example = "now")]
    pub end_time: Option<DateTime<Utc>>,
    /// Only points of these metrics (repeat the parameter for several: `metric=a&metric=b`).
    /// A metric the GPU has no points of answers no points (or an empty series with `step`).
    #[param(rename = "metric", value_type = Option<Vec<Name>>, explode, style = Form, example = json!(["DCGM_FI_DEV_GPU_UTIL"]))]
    pub metrics: Vec<String>,
    /// Aggregate into buckets of this width (`15s`, `1m`, `1h`, …): one value per metric per
    /// bucket, bucket edges at multiples of the step from the Unix epoch, the window widened to
    /// whole buckets, empty buckets left out, at most 11,000 buckets per metric.
    #[param(value_type = Option<String>, pattern = r"^([0-9]{1,7}|([0-9]{1,7}[smhdw]){1,5})$", example = "1m")]
    pub step: Option<i64>,
    /// A bucket's value (with `step`).
    #[param(value_type = Option<AggDoc>, default = "avg", example = "max")]
    pub agg: Option<Agg>,
    /// Page size (without `step`).
    #[param(minimum = 1, maximum = 1000, default = 100, example = 100)]
    pub limit: Option<u32>,
    /// How many points of the window to skip (without `step`), at most 10,000: deeper pages
    /// are reached with `cursor` (follow `paging.next`), which costs the same at any depth.
    #[param(minimum = 0, maximum = 10000, default = 0, example = 0)]
    pub offset: Option<u64>,
    /// Where the page starts: the opaque `paging.cursor` of the page before (the `next` link
    /// carries it). Page 1,000 costs what page 1 costs.
    #[param(value_type = Option<String>, pattern = r"^[0-9a-f]{1,16}\.[0-9a-f]{1,16}$", example = "6a1b2c3d4e5f.1f4")]
    pub cursor: Option<Cursor>,
}

/// A checked request for one GPU's window, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Inclusive, rounded up to the microsecond (PostgreSQL's precision).
    pub start: Option<DateTime<Utc>>,
    /// Inclusive, rounded down to the microsecond.
    pub end: Option<DateTime<Utc>>,
    /// Empty for every metric.
    pub metrics: Vec<String>,
    pub limit: u32,
    pub offset: u64,
    pub cursor: Option<Cursor>,
}

/// A checked step aggregation of one GPU's window.
#[derive(Debug, Clone, PartialEq)]
pub struct StepQuery {
    pub buckets: Buckets,
    /// As the client wrote it (`1m`), echoed in the answer.
    pub step: String,
    pub agg: Agg,
    /// Empty for every metric.
    pub metrics: Vec<String>,
}

/// What a telemetry request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Page(Window),
    Step(StepQuery),
}

impl TelemetryQuery {
    /// Parses and checks a raw (still percent-encoded) query string, with `now` for relative
    /// times.
    pub fn parse_at(
        raw: &str,
        now: DateTime<Utc>,
    ) -> Result<(TelemetryQuery, Option<String>), ApiError> {
        let mut query = TelemetryQuery::default();
        let mut step_text = None;
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            if name != "metric" && seen.iter().any(|s| *s == name) {
                return Err(ApiError::bad_parameter(&name, "given more than once"));
            }
            seen.push(name.to_string());
            match name.as_ref() {
                "start_time" => query.start_time = Some(parse_time(&name, &value, now)?),
                "end_time" => query.end_time = Some(parse_time(&name, &value, now)?),
                "metric" if value.is_empty() => {
                    return Err(ApiError::bad_parameter(&name, "must not be empty"))
                }
                "metric" if !query.metrics.iter().any(|m| *m == value) => {
                    query.metrics.push(value.to_string())
                }
                "metric" => {}
                "step" => {
                    query.step = Some(parse_step(&value)?);
                    step_text = Some(value.to_string());
                }
                "agg" => query.agg = Some(parse_agg(&value)?),
                "limit" => query.limit = Some(parse_limit(&value)?),
                "offset" => query.offset = Some(parse_offset(&value)?),
                "cursor" => query.cursor = Some(parse_cursor(&value)?),
                other => {
                    return Err(ApiError::bad_parameter(
                        other,
                        format!(
                            "unknown query parameter (accepted: {})",
                            ACCEPTED.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok((query, step_text))
    }

    /// [`TelemetryQuery::parse_at`] now, then [`TelemetryQuery::resolve`].
    pub fn request(raw: &str) -> Result<Request, ApiError> {
        let now = Utc::now();
        let (query, step) = TelemetryQuery::parse_at(raw, now)?;
        query.resolve(step, now)
    }

    /// Applies the defaults and checks the parameters against each other.
    pub fn resolve(
        self,
        step_text: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Request, ApiError> {
        if let (Some(start), Some(end)) = (self.start_time, self.end_time) {
            if start > end {
                return Err(ApiError::bad_parameter(
                    "start_time",
                    format!(
                        "must not be after end_time ({} > {})",
                        format_ts(&start),
                        format_ts(&end)
                    ),
                ));
            }
        }
        let Some(step) = self.step else {
            if self.agg.is_some() {
                return Err(ApiError::bad_parameter(
                    "agg",
                    "needs a step (e.g. step=1m)",
                ));
            }
            if self.offset.is_some() && self.cursor.is_some() {
                return Err(ApiError::bad_parameter(
                    "offset",
                    "give either offset or cursor, not both",
                ));
            }
            return Ok(Request::Page(Window {
                start: self.start_time.map(ceil_to_micros),
                end: self.end_time.map(floor_to_micros),
                metrics: self.metrics,
                limit: self.limit.unwrap_or(DEFAULT_LIMIT),
                offset: self.offset.unwrap_or(0),
                cursor: self.cursor,
            }));
        };
        for (given, name) in [
            (self.limit.is_some(), "limit"),
            (self.offset.is_some(), "offset"),
            (self.cursor.is_some(), "cursor"),
        ] {
            if given {
                return Err(ApiError::bad_parameter(
                    name,
                    "not used with step (an aggregation answers every bucket at once)",
                ));
            }
        }
        let end = self.end_time.unwrap_or(now);
        let start = self
            .start_time
            .unwrap_or(end - DEFAULT_STEP_WINDOW)
            .min(end);
        let buckets = Buckets::covering(start, end, step)
            .ok_or_else(|| ApiError::bad_parameter("start_time", "out of range"))?;
        let count = buckets.count();
        if count > MAX_BUCKETS {
            let seconds = (end - start).num_seconds();
            let at_least = seconds / MAX_BUCKETS + 1;
            return Err(ApiError::bad_parameter(
                "step",
                format!(
                    "{} over this window makes {count} buckets per metric, more than the {MAX_BUCKETS} allowed: raise step to at least {at_least}s or narrow the window",
                    step_text.as_deref().unwrap_or("the step")
                ),
            ));
        }
        Ok(Request::Step(StepQuery {
            buckets,
            step: step_text.unwrap_or_else(|| format!("{step}s")),
            agg: self.agg.unwrap_or(Agg::Avg),
            metrics: self.metrics,
        }))
    }
}

impl Window {
    /// The query string of the page after `cursor`, same window and size.
    pub fn query_string_after(&self, cursor: &Cursor) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        if let Some(start) = &self.start {
            out.append_pair("start_time", &format_ts(start));
        }
        if let Some(end) = &self.end {
            out.append_pair("end_time", &format_ts(end));
        }
        for metric in &self.metrics {
            out.append_pair("metric", metric);
        }
        out.append_pair("limit", &self.limit.to_string());
        out.append_pair("cursor", &format_cursor(cursor));
        out.finish()
    }
}

/// The filters of `GET /api/v1/gpus` (each an exact match; several combine with AND).
#[derive(Debug, Clone, Default, PartialEq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GpuQuery {
    /// Only the GPUs of this host.
    #[param(
        min_length = 1,
        pattern = r"^[^\x00]+$",
        example = "mtv5-dgx1-hgpu-031"
    )]
    pub hostname: Option<String>,
    /// Only GPUs of this model (`modelName`).
    #[param(
        min_length = 1,
        pattern = r"^[^\x00]+$",
        example = "NVIDIA H100 80GB HBM3"
    )]
    pub model: Option<String>,
    /// Only GPUs with telemetry from a pod of this namespace.
    #[param(min_length = 1, pattern = r"^[^\x00]+$", example = "training")]
    pub namespace: Option<String>,
    /// Only GPUs with telemetry from this pod.
    #[param(min_length = 1, pattern = r"^[^\x00]+$", example = "llama-train-0")]
    pub pod: Option<String>,
}

impl GpuQuery {
    /// Parses a raw query string; `allow_hostname` is false where the path names the host.
    pub fn parse(raw: &str, allow_hostname: bool) -> Result<crate::db::GpuFilter, ApiError> {
        let mut filter = crate::db::GpuFilter::default();
        let accepted: &[&str] = match allow_hostname {
            true => &["hostname", "model", "namespace", "pod"],
            false => &["model", "namespace", "pod"],
        };
        for (name, value) in single_values(raw, accepted)? {
            let slot = match name.as_str() {
                "hostname" => &mut filter.hostname,
                "model" => &mut filter.model,
                "namespace" => &mut filter.namespace,
                _ => &mut filter.pod,
            };
            *slot = Some(value);
        }
        Ok(filter)
    }
}

/// The filters of `GET /api/v1/latest` (each repeatable: `metric=a&metric=b`).
#[derive(Debug, Clone, Default, PartialEq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LatestQuery {
    /// Only these metrics (default: every metric).
    #[param(value_type = Option<Vec<Name>>, explode, style = Form, example = json!(["DCGM_FI_DEV_POWER_USAGE"]))]
    pub metric: Vec<String>,
    /// Only the GPUs of these hosts (default: every host).
    #[param(value_type = Option<Vec<Name>>, explode, style = Form, example = json!(["mtv5-dgx1-hgpu-031"]))]
    pub hostname: Vec<String>,
}

impl LatestQuery {
    pub fn parse(raw: &str) -> Result<LatestQuery, ApiError> {
        let mut query = LatestQuery::default();
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            let list = match name.as_ref() {
                "metric" => &mut query.metric,
                "hostname" => &mut query.hostname,
                other => {
                    return Err(ApiError::bad_parameter(
                        other,
                        "unknown query parameter (accepted: metric, hostname)",
                    ))
                }
            };
            if value.is_empty() {
                return Err(ApiError::bad_parameter(&name, "must not be empty"));
            }
            if !list.iter().any(|v| *v == value) {
                list.push(value.into_owned());
            }
        }
        Ok(query)
    }
}

/// Refuses a query string with a NUL character in a parameter's name or value, whatever the
/// route: nothing stored can hold one (PostgreSQL text), so it is always a client's mistake
/// or a probe, and answering it here keeps it from every statement.
pub fn refuse_nul(raw: &str) -> Result<(), ApiError> {
    match form_urlencoded::parse(raw.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        Some((name, _)) => Err(ApiError::bad_parameter(
            &name.replace('\0', "\\0"),
            "must not contain a NUL character (U+0000)",
        )),
        None => Ok(()),
    }
}

/// The `(name, value)` pairs of a query string whose parameters are each given at most once,
/// are among `accepted`, and are not empty.
fn single_values(raw: &str, accepted: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        if !accepted.contains(&name.as_ref()) {
            return Err(ApiError::bad_parameter(
                &name,
                format!(
                    "unknown query parameter (accepted: {})",
                    accepted.join(", ")
                ),
            ));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::bad_parameter(&name, "given more than once"));
        }
        if value.is_empty() {
            return Err(ApiError::bad_parameter(&name, "must not be empty"));
        }
        out.push((name.into_owned(), value.into_owned()));
    }
    Ok(out)
}

/// A cursor as the API writes it: the last point's time in microseconds and its offset, in
/// hex. Opaque to clients: only ever copied from `paging.cursor` or the `next` link.
pub fn format_cursor(cursor: &Cursor) -> String {
    format!(
        "{:x}.{:x}",
        cursor.0.timestamp_micros() as u64,
        cursor.1 as u64
    )
}

fn parse_cursor(value: &str) -> Result<Cursor, ApiError> {
    let bad = || {
        ApiError::bad_parameter(
            "cursor",
            format!(
                "not a cursor of this API (copy paging.cursor or the next link), got {:?}",
                shorten(value)
            ),
        )
    };
    let (ts, offset) = value.split_once('.').ok_or_else(bad)?;
    let ts = u64::from_str_radix(ts, 16).map_err(|_| bad())? as i64;
    let offset = u64::from_str_radix(offset, 16).map_err(|_| bad())? as i64;
    let ts = DateTime::from_timestamp_micros(ts).ok_or_else(bad)?;
    Ok((ts, offset))
}

fn parse_agg(value: &str) -> Result<Agg, ApiError> {
    Agg::from_name(value).ok_or_else(|| {
        let names: Vec<&str> = Agg::ALL.iter().map(|a| a.name()).collect();
        ApiError::bad_parameter(
            "agg",
            format!(
                "must be one of {}, got {:?}",
                names.join(", "),
                shorten(value)
            ),
        )
    })
}

/// The largest step: a year of seconds is more than any window needs.
const MAX_STEP_SECONDS: i64 = 366 * 86_400;

fn parse_step(value: &str) -> Result<i64, ApiError> {
    let seconds = match value.parse::<i64>() {
        Ok(s) => Some(s),
        Err(_) => parse_duration(value),
    };
    match seconds {
        Some(s) if (1..=MAX_STEP_SECONDS).contains(&s) => Ok(s),
        _ => Err(ApiError::bad_parameter(
            "step",
            format!(
                "must be a duration from 1s to 366d like 15s, 1m, 1h30m (units s, m, h, d, w) or whole seconds, got {:?}",
                shorten(value)
            ),
        )),
    }
}

/// `1h30m`-style durations in whole seconds (units s, m, h, d, w); `None` when malformed or
/// out of range.
fn parse_duration(value: &str) -> Option<i64> {
    if value.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        let unit = match rest.as_bytes()[digits] {
            b's' => 1,
            b'm' => 60,
            b'h' => 3_600,
            b'd' => 86_400,
            b'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[digits + 1..];
    }
    Some(total)
}

/// A time in any of the forms the API takes (see [`TelemetryQuery`]), in UTC.
///
/// A `+` left unencoded in a query string arrives as a space (form decoding), so an RFC 3339
/// time that fails to parse is tried once more with spaces read as `+`.
pub fn parse_time(name: &str, value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let bad = || {
        ApiError::bad_parameter(
            name,
            format!(
                "not a time: give RFC 3339 (2025-07-18T13:42:33Z), Unix seconds (1752846153.5) or milliseconds (1752846153500), now, or a time relative to now (-6h, now-90m), got {:?}",
                shorten(value)
            ),
        )
    };
    if value == "now" {
        return Ok(now);
    }
    if let Some(ago) = value
        .strip_prefix("now-")
        .or_else(|| value.strip_prefix('-'))
    {
        let seconds = parse_duration(ago).ok_or_else(bad)?;
        return Duration::try_seconds(seconds)
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(bad);
    }
    if value.starts_with(|c: char| c.is_ascii_digit()) && !value.contains(['-', ':']) {
        return parse_epoch(value).ok_or_else(bad);
    }
    let parsed = DateTime::parse_from_rfc3339(value)
        .or_else(|e| match value.contains(' ') {
            true => DateTime::parse_from_rfc3339(&value.replace(' ', "+")),
            false => Err(e),
        })
        .map_err(|_| bad())?;
    Ok(parsed.with_timezone(&Utc))
}

/// Unix seconds with an optional fraction, or milliseconds when the integer part has 13 digits
/// or more (seconds reach 13 digits only after the year 33658).
fn parse_epoch(value: &str) -> Option<DateTime<Utc>> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if whole.is_empty() || whole.len() > 16 || fraction.len() > 9 {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction_nanos: i64 = match fraction.is_empty() {
        true => 0,
        false => format!("{fraction:0<9}").parse().ok()?,
    };
    if value.split('.').next().is_some_and(|w| w.len() >= 13) {
        let nanos = fraction_nanos / 1_000_000;
        return DateTime::from_timestamp_millis(whole).map(|t| t + Duration::nanoseconds(nanos));
    }
    DateTime::from_timestamp(whole, u32::try_from(fraction_nanos).ok()?)
}

fn parse_limit(value: &str) -> Result<u32, ApiError> {
    let range = || {
        format!(
            "must be an integer between 1 and {MAX_LIMIT}, got {:?}",
            shorten(value)
        )
    };
    let limit: u64 = value
        .parse()
        .map_err(|_| ApiError::bad_parameter("limit", range()))?;
    match u32::try_from(limit) {
        Ok(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
        _ => Err(ApiError::bad_parameter("limit", range())),
    }
}

fn parse_offset(value: &str) -> Result<u64, ApiError> {
    match value.parse::<u64>() {
        Ok(o) if o <= MAX_OFFSET => Ok(o),
        Ok(_) => Err(ApiError::bad_parameter(
            "offset",
            format!(
                "must be at most {MAX_OFFSET}, got {value}: deep pages cost time in proportion \
                 to the offset; follow paging.next (or pass paging.cursor as cursor), which \
                 costs the same at any depth"
            ),
        )),
        _ => Err(ApiError::bad_parameter(
            "offset",
            format!("must be an integer of 0 or more, got {:?}", shorten(value)),
        )),
    }
}

/// Echoes at most 64 characters of a bad value back: enough to recognise it.
fn shorten(value: &str) -> String {
    value.chars().take(64).collect()
}

fn ceil_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let extra = i64::from(t.timestamp_subsec_nanos() % 1000);
    match extra {
        0 => t,
        n => t + Duration::nanoseconds(1000 - n),
    }
}

fn floor_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t - Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos() % 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-07-18T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn request(raw: &str) -> Result<Request, ApiError> {
        let (query, step) = TelemetryQuery::parse_at(raw, now())?;
        query.resolve(step, now())
    }

    fn window(raw: &str) -> Window {
        match request(raw) {
            Ok(Request::Page(w)) => w,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    fn step(raw: &str) -> StepQuery {
        match request(raw) {
            Ok(Request::Step(s)) => s,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    fn detail(raw: &str) -> String {
        match request(raw) {
            Ok(w) => panic!("{raw:?} was accepted as {w:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let w = window("");
        assert_eq!(
            (w.start, w.end, w.limit, w.offset, w.cursor),
            (None, None, 100, 0, None)
        );
        assert!(w.metrics.is_empty());
    }

    #[test]
    fn any_offset_is_converted_to_utc_and_a_bare_plus_survives() {
        for raw in [
            "start_time=2025-07-18T15:42:33%2B02:00",
            "start_time=2025-07-18T15:42:33+02:00",
            "start_time=2025-07-18T13:42:33Z",
            "start_time=1752846153",
            "start_time=1752846153000",
            "start_time=1752846153.000",
        ] {
            let w = window(raw);
            assert_eq!(
                format_ts(&w.start.unwrap()),
                "2025-07-18T13:42:33.000000Z",
                "{raw}"
            );
        }
    }

    #[test]
    fn epoch_fractions_and_relative_times_resolve_against_now() {
        let w = window("start_time=1752846153.25&end_time=1752846153250");
        assert_eq!(format_ts(&w.start.unwrap()), "2025-07-18T13:42:33.250000Z");
        assert_eq!(w.start, w.end);
        let w = window("start_time=-6h&end_time=now");
        assert_eq!(format_ts(&w.start.unwrap()), "2025-07-18T06:00:00.000000Z");
        assert_eq!(w.end, Some(now()));
        let w = window("start_time=now-1h30m");
        assert_eq!(format_ts(&w.start.unwrap()), "2025-07-18T10:30:00.000000Z");
    }

    #[test]
    fn bounds_are_rounded_inward_to_microseconds() {
        let w =
            window("start_time=2025-01-01T00:00:00.0000001Z&end_time=2025-01-01T00:00:00.0000019Z");
        assert_eq!(format_ts(&w.start.unwrap()), "2025-01-01T00:00:00.000001Z");
        assert_eq!(format_ts(&w.end.unwrap()), "2025-01-01T00:00:00.000001Z");
    }

    #[test]
    fn several_metrics_are_kept_once_each_in_order() {
        let w = window("metric=b&metric=a&metric=b");
        assert_eq!(w.metrics, vec!["b".to_string(), "a".to_string()]);
    }

    #[test]
    fn a_step_widens_the_window_to_whole_buckets() {
        let s =
            step("step=1m&agg=max&start_time=2025-07-18T10:00:30Z&end_time=2025-07-18T10:02:00Z");
        assert_eq!(format_ts(&s.buckets.start), "2025-07-18T10:00:00.000000Z");
        assert_eq!(format_ts(&s.buckets.end), "2025-07-18T10:03:00.000000Z");
        assert_eq!(
            (s.buckets.count(), s.agg, s.step.as_str()),
            (3, Agg::Max, "1m")
        );
        let s = step("step=1h30m");
        assert_eq!(s.buckets.step_seconds, 5400);
        assert_eq!(s.agg, Agg::Avg);
        // default window: the hour before now
        let s = step("step=15");
        assert_eq!((s.buckets.end - s.buckets.start).num_seconds(), 3600 + 15);
    }

    #[test]
    fn too_many_buckets_say_which_step_would_do() {
        let d = detail("step=1s&start_time=-1d");
        assert!(
            d.starts_with("step: 1s over this window makes 86401 buckets"),
            "{d}"
        );
        assert!(d.contains("raise step to at least 8s"), "{d}");
        step("step=8s&start_time=-1d");
    }

    #[test]
    fn a_cursor_round_trips_through_the_next_query() {
        let w = window("start_time=2025-07-18T15:42:33%2B02:00&metric=a+b&limit=5");
        let cursor = (now(), 42);
        let next = w.query_string_after(&cursor);
        assert_eq!(
            next,
            format!(
                "start_time=2025-07-18T13%3A42%3A33.000000Z&metric=a+b&limit=5&cursor={}",
                format_cursor(&cursor)
            )
        );
        let again = window(&next);
        assert_eq!(
            (again.start, again.metrics, again.cursor),
            (w.start, w.metrics, Some(cursor))
        );
    }

    #[test]
    fn each_bad_parameter_is_named_with_what_is_wrong() {
        assert!(detail("start_time=yesterday").starts_with("start_time: not a time"));
        assert!(detail("end_time=2025-13-01T00:00:00Z").starts_with("end_time: not a time"));
        assert!(detail("start_time=-6x").starts_with("start_time: not a time"));
        assert!(detail("start_time=12345678901234567").starts_with("start_time: not a time"));
        assert!(detail("limit=0").starts_with("limit: must be an integer between 1 and 1000"));
        assert!(detail("limit=1001").contains("got \"1001\""));
        assert!(detail("limit=ten").starts_with("limit:"));
        assert!(detail("offset=-1").starts_with("offset: must be an integer of 0 or more"));
        let deep = detail("offset=10001");
        assert!(deep.starts_with("offset: must be at most 10000"), "{deep}");
        assert!(deep.contains("cursor"), "points at the cursor: {deep}");
        assert!(detail("offset=99999999999999999999").starts_with("offset: must be an integer"));
        assert!(detail("metric=").starts_with("metric: must not be empty"));
        assert!(detail("colour=red").starts_with("colour: unknown query parameter"));
        assert!(detail("limit=1&limit=2").starts_with("limit: given more than once"));
        assert!(detail("step=0").starts_with("step: must be a duration"));
        assert!(detail("step=1x").starts_with("step: must be a duration"));
        assert!(detail("step=500ms").starts_with("step: must be a duration"));
        assert!(detail("agg=median&step=1m").starts_with("agg: must be one of avg, min"));
        assert!(detail("agg=max").starts_with("agg: needs a step"));
        assert!(detail("step=1m&limit=5").starts_with("limit: not used with step"));
        assert!(detail("cursor=zz").starts_with("cursor: not a cursor"));
        assert!(detail("cursor=1.1&offset=3").starts_with("offset: give either"));
        assert!(
            detail("start_time=2025-01-02T00:00:00Z&end_time=2025-01-01T00:00:00Z")
                .starts_with("start_time: must not be after end_time")
        );
    }

    proptest::proptest! {
        /// Whatever a client sends, parsing answers (a request or a 400), never panics.
        #[test]
        fn any_query_string_is_answered_without_panicking(raw in "\\PC{0,80}") {
            match request(&raw) {
                Ok(Request::Page(w)) => proptest::prop_assert!((1..=MAX_LIMIT).contains(&w.limit)),
                Ok(Request::Step(s)) => proptest::prop_assert!(s.buckets.count() <= MAX_BUCKETS),
                Err(e) => {
                    let is_bad_parameter = matches!(e, ApiError::BadParameter { .. });
                    proptest::prop_assert!(is_bad_parameter, "{}", e);
                }
            }
        }

        #[test]
        fn parameter_shaped_input_is_answered_without_panicking(
            name in "(start_time|end_time|metric|limit|offset|step|agg|cursor|x)",
            value in "[-+:.0-9TZ% a-zA-Z]{0,40}",
        ) {
            let raw = format!("{name}={value}");
            let _ = request(&raw);
        }
    }
}
