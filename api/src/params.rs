//! The telemetry query string: parsed, checked and resolved into a [`Window`].
//!
//! Every refusal is an [`ApiError::BadParameter`] naming the parameter and saying what is
//! wrong, so a client can fix its request from the message alone. The same struct documents the
//! parameters in the OpenAPI spec, so the spec and the parser cannot drift apart.

use chrono::{DateTime, Duration, Utc};
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::model::format_ts;

/// The page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest page a client may ask for.
pub const MAX_LIMIT: u32 = 1000;
/// Every query parameter the telemetry endpoint accepts.
pub const ACCEPTED: [&str; 5] = ["start_time", "end_time", "metric", "limit", "offset"];

/// The query parameters of `GET /api/v1/gpus/{id}/telemetry`.
#[derive(Debug, Clone, Default, PartialEq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TelemetryQuery {
    /// Inclusive start of the window, RFC 3339 with any offset (`Z`, `+02:00`; in a query
    /// string write `+` as `%2B`). Default: from the first point.
    #[param(value_type = Option<String>, format = DateTime, example = "2025-07-18T13:42:33Z")]
    pub start_time: Option<DateTime<Utc>>,
    /// Inclusive end of the window, RFC 3339 with any offset. Default: to the latest point.
    #[param(value_type = Option<String>, format = DateTime, example = "2025-07-18T15:42:33+02:00")]
    pub end_time: Option<DateTime<Utc>>,
    /// Only points of this metric (a name listed by `/api/v1/stats`).
    #[param(example = "DCGM_FI_DEV_GPU_UTIL", min_length = 1)]
    pub metric: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100, example = 100)]
    pub limit: Option<u32>,
    /// How many points of the window to skip (use the `next` link rather than counting).
    #[param(minimum = 0, default = 0, example = 0)]
    pub offset: Option<u64>,
}

/// A checked request for one page of one GPU's window, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Inclusive, rounded up to the microsecond (PostgreSQL's precision).
    pub start: Option<DateTime<Utc>>,
    /// Inclusive, rounded down to the microsecond.
    pub end: Option<DateTime<Utc>>,
    pub metric: Option<String>,
    pub limit: u32,
    pub offset: u64,
}

impl TelemetryQuery {
    /// Parses a raw (still percent-encoded) query string.
    pub fn parse(raw: &str) -> Result<TelemetryQuery, ApiError> {
        let mut query = TelemetryQuery::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            if seen.iter().any(|s| *s == name) {
                return Err(ApiError::bad_parameter(&name, "given more than once"));
            }
            seen.push(name.to_string());
            query.set(&name, &value)?;
        }
        Ok(query)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), ApiError> {
        match name {
            "start_time" => self.start_time = Some(parse_time(name, value)?),
            "end_time" => self.end_time = Some(parse_time(name, value)?),
            "metric" if value.is_empty() => {
                return Err(ApiError::bad_parameter(name, "must not be empty"))
            }
            "metric" => self.metric = Some(value.to_string()),
            "limit" => self.limit = Some(parse_limit(value)?),
            "offset" => self.offset = Some(parse_offset(value)?),
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
        Ok(())
    }

    /// Applies the defaults and checks the parameters against each other.
    pub fn resolve(self) -> Result<Window, ApiError> {
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
        Ok(Window {
            start: self.start_time.map(ceil_to_micros),
            end: self.end_time.map(floor_to_micros),
            metric: self.metric,
            limit: self.limit.unwrap_or(DEFAULT_LIMIT),
            offset: self.offset.unwrap_or(0),
        })
    }
}

impl Window {
    /// The query string of the page that starts at `offset`, same window and size.
    pub fn query_string_at(&self, offset: u64) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        if let Some(start) = &self.start {
            out.append_pair("start_time", &format_ts(start));
        }
        if let Some(end) = &self.end {
            out.append_pair("end_time", &format_ts(end));
        }
        if let Some(metric) = &self.metric {
            out.append_pair("metric", metric);
        }
        out.append_pair("limit", &self.limit.to_string());
        out.append_pair("offset", &offset.to_string());
        out.finish()
    }
}

/// RFC 3339 with any offset, converted to UTC.
///
/// A `+` left unencoded in a query string arrives as a space (form decoding), so a time that
/// fails to parse is tried once more with spaces read as `+`.
fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    let parsed = DateTime::parse_from_rfc3339(value)
        .or_else(|e| match value.contains(' ') {
            true => DateTime::parse_from_rfc3339(&value.replace(' ', "+")),
            false => Err(e),
        })
        .map_err(|_| {
            ApiError::bad_parameter(
                name,
                format!(
                    "not an RFC 3339 time like 2025-07-18T13:42:33Z or 2025-07-18T15:42:33.5+02:00, got {:?}",
                    shorten(value)
                ),
            )
        })?;
    Ok(parsed.with_timezone(&Utc))
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
        // The database counts in i64.
        Ok(o) if o <= i64::MAX as u64 => Ok(o),
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

    fn detail(raw: &str) -> String {
        match TelemetryQuery::parse(raw).and_then(TelemetryQuery::resolve) {
            Ok(w) => panic!("{raw:?} was accepted as {w:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let w = TelemetryQuery::parse("").unwrap().resolve().unwrap();
        assert_eq!((w.start, w.end, w.limit, w.offset), (None, None, 100, 0));
    }

    #[test]
    fn any_offset_is_converted_to_utc_and_a_bare_plus_survives() {
        for raw in [
            "start_time=2025-07-18T15:42:33%2B02:00",
            "start_time=2025-07-18T15:42:33+02:00",
            "start_time=2025-07-18T13:42:33Z",
        ] {
            let w = TelemetryQuery::parse(raw).unwrap().resolve().unwrap();
            assert_eq!(
                format_ts(&w.start.unwrap()),
                "2025-07-18T13:42:33.000000Z",
                "{raw}"
            );
        }
    }

    #[test]
    fn bounds_are_rounded_inward_to_microseconds() {
        let w = TelemetryQuery::parse(
            "start_time=2025-01-01T00:00:00.0000001Z&end_time=2025-01-01T00:00:00.0000019Z",
        )
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(format_ts(&w.start.unwrap()), "2025-01-01T00:00:00.000001Z");
        assert_eq!(format_ts(&w.end.unwrap()), "2025-01-01T00:00:00.000001Z");
    }

    #[test]
    fn each_bad_parameter_is_named_with_what_is_wrong() {
        assert!(detail("start_time=yesterday").starts_with("start_time: not an RFC 3339 time"));
        assert!(detail("end_time=2025-13-01T00:00:00Z").starts_with("end_time: not an RFC 3339"));
        assert!(detail("limit=0").starts_with("limit: must be an integer between 1 and 1000"));
        assert!(detail("limit=1001").contains("got \"1001\""));
        assert!(detail("limit=ten").starts_with("limit:"));
        assert!(detail("offset=-1").starts_with("offset: must be an integer of 0 or more"));
        assert!(detail("metric=").starts_with("metric: must not be empty"));
        assert!(detail("colour=red").starts_with("colour: unknown query parameter"));
        assert!(detail("limit=1&limit=2").starts_with("limit: given more than once"));
        assert!(
            detail("start_time=2025-01-02T00:00:00Z&end_time=2025-01-01T00:00:00Z")
                .starts_with("start_time: must not be after end_time")
        );
    }

    #[test]
    fn the_next_query_keeps_the_window_and_moves_the_offset() {
        let w = TelemetryQuery::parse("start_time=2025-07-18T15:42:33%2B02:00&metric=a+b&limit=5")
            .unwrap()
            .resolve()
            .unwrap();
        let next = w.query_string_at(5);
        assert_eq!(
            next,
            "start_time=2025-07-18T13%3A42%3A33.000000Z&metric=a+b&limit=5&offset=5"
        );
        let again = TelemetryQuery::parse(&next).unwrap().resolve().unwrap();
        assert_eq!(
            (again.start, again.metric, again.offset),
            (w.start, w.metric, 5)
        );
    }

    proptest::proptest! {
        /// Whatever a client sends, parsing answers (a window or a 400), never panics.
        #[test]
        fn any_query_string_is_answered_without_panicking(raw in "\\PC{0,80}") {
            match TelemetryQuery::parse(&raw).and_then(TelemetryQuery::resolve) {
                Ok(w) => proptest::prop_assert!((1..=MAX_LIMIT).contains(&w.limit)),
                Err(e) => {
                    let is_bad_parameter = matches!(e, ApiError::BadParameter { .. });
                    proptest::prop_assert!(is_bad_parameter, "{}", e);
                }
            }
        }

        #[test]
        fn parameter_shaped_input_is_answered_without_panicking(
            name in "(start_time|end_time|metric|limit|offset|x)",
            value in "[-+:.0-9TZ% a-z]{0,40}",
        ) {
            let raw = format!("{name}={value}");
            let _ = TelemetryQuery::parse(&raw).and_then(TelemetryQuery::resolve);
        }
    }
}
