//! Request parameters as Prometheus reads them: the form (query string and POST body), times
//! (RFC 3339 or unix seconds, to the millisecond), durations (`5m`, `1h30m` or seconds) and
//! label names. Times are milliseconds since the epoch, as Prometheus evaluates them.

use super::PromError;

/// The decoded `name=value` pairs of a request, in order (a name may repeat: `match[]`).
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(raw: &str) -> Form {
        Form(
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Refuses a parameter whose name or value holds a NUL character: nothing stored can
    /// hold one (PostgreSQL text), so it is always a client's mistake or a probe.
    pub fn check_no_nul(&self) -> Result<(), PromError> {
        match self
            .0
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            Some((name, _)) => Err(PromError::invalid_parameter(
                name,
                "must not contain a NUL character (U+0000)",
            )),
            None => Ok(()),
        }
    }

    /// The first value of `name` (as Go's `FormValue`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The largest |seconds| a time or duration may have: far beyond any stored sample, and
/// small enough that milliseconds never overflow.
const MAX_SECONDS: f64 = 9.0e12;

/// A time as Prometheus parses it: unix seconds (a float, rounded to the millisecond) or
/// RFC 3339; milliseconds since the epoch.
pub fn parse_time_ms(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds.abs() < MAX_SECONDS {
            let whole = seconds.trunc();
            let millis = ((seconds - whole) * 1000.0).round();
            return Ok(whole as i64 * 1000 + millis as i64);
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    Err(format!("cannot parse {text:?} to a valid timestamp"))
}

/// A duration as Prometheus parses it: float seconds or a PromQL duration (`1h30m`);
/// milliseconds (truncated, as Prometheus's evaluation does).
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds.abs() < MAX_SECONDS {
            return Ok((seconds * 1000.0) as i64);
        }
        if !seconds.is_nan() {
            return Err(format!(
                "cannot parse {text:?} to a valid duration. It overflows int64"
            ));
        }
    }
    match promql_parser::util::parse_duration(text) {
        Ok(d) if d.as_secs_f64() < MAX_SECONDS => Ok(i64::try_from(d.as_millis()).unwrap_or(0)),
        _ => Err(format!("cannot parse {text:?} to a valid duration")),
    }
}

/// The `start`/`end` of the series and label endpoints, when given.
pub fn optional_window(form: &super::Form) -> Result<Option<(i64, i64)>, PromError> {
    let start = form
        .get("start")
        .map(parse_time_ms)
        .transpose()
        .map_err(|e| PromError::invalid_parameter("start", e))?;
    let end = form
        .get("end")
        .map(parse_time_ms)
        .transpose()
        .map_err(|e| PromError::invalid_parameter("end", e))?;
    match (start, end) {
        (None, None) => Ok(None),
        (start, end) => {
            let (start, end) = (start.unwrap_or(i64::MIN / 2), end.unwrap_or(i64::MAX / 2));
            if end < start {
                return Err(PromError::BadData(
                    "end timestamp must not be before start timestamp".into(),
                ));
            }
            Ok(Some((start, end)))
        }
    }
}

/// Whether `name` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_prometheus_parses_them() {
        assert_eq!(parse_time_ms("1500000000"), Ok(1_500_000_000_000));
        assert_eq!(parse_time_ms("1500000000.1234"), Ok(1_500_000_000_123));
        assert_eq!(
            parse_time_ms("2017-07-14T02:40:00.5Z"),
            Ok(1_500_000_000_500)
        );
        assert!(parse_time_ms("yesterday").is_err());
        assert!(parse_time_ms("1e300").is_err());
        assert!(parse_time_ms("NaN").is_err());
    }

    #[test]
    fn durations_parse_as_seconds_or_promql_durations() {
        assert_eq!(parse_duration_ms("15"), Ok(15_000));
        assert_eq!(parse_duration_ms("0.5"), Ok(500));
        assert_eq!(parse_duration_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert!(parse_duration_ms("1e300").is_err());
        assert!(parse_duration_ms("soon").is_err());
    }

    #[test]
    fn label_names_follow_the_prometheus_grammar() {
        assert!(is_label_name("Hostname"));
        assert!(is_label_name("__name__"));
        assert!(!is_label_name("1x"));
        assert!(!is_label_name("a-b"));
        assert!(!is_label_name(""));
    }
}
