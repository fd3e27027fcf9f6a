//! The Prometheus-compatible HTTP API under `/prometheus`: the endpoints Grafana and
//! `promtool` use (`query`, `query_range`, `series`, `labels`, `label/{name}/values`,
//! `metadata`, `status/buildinfo`), their parameters as Prometheus reads them, and their JSON
//! answers and errors in Prometheus's shapes. PromQL is parsed by `promql-parser`; what the
//! expression needs is planned and fetched by [`select`] (SQL in `store::prom`) and evaluated
//! by [`eval`] with the functions of [`functions`]. `docs/prometheus.md` describes it all.

mod eval;
mod functions;
mod json;
mod params;
mod select;

use std::time::{Duration, Instant};

use http::StatusCode;
use promql_parser::parser::Expr;

use crate::error::ApiError;
use crate::handlers::{json, HttpResponse};
use crate::server::AppState;

pub use eval::{Labels, Outcome};
use params::Form;

/// Prometheus's default query timeout (`--query.timeout`); a `timeout` parameter may only
/// shorten it.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Prometheus's cap on the points of one series in a range query.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// What can go wrong in a Prometheus API request; each maps to Prometheus's `errorType`
/// and status code.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// The request is wrong: a parameter, the PromQL, or something not supported (400).
    #[error("{0}")]
    BadData(String),
    /// The expression is valid but cannot be evaluated on this data (422).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout (503).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// No such endpoint (404).
    #[error("{0}")]
    NotFound(String),
    /// The database failed: unreachable (503) or otherwise (500, details only in the log).
    #[error("database: {0}")]
    Database(#[from] ApiError),
}

impl From<postgres::Error> for PromError {
    fn from(e: postgres::Error) -> Self {
        PromError::Database(ApiError::Query(e))
    }
}

impl From<store::Error> for PromError {
    fn from(e: store::Error) -> Self {
        PromError::Database(ApiError::from(e))
    }
}

impl PromError {
    /// `invalid parameter "name": reason`, as Prometheus words a bad parameter.
    pub fn invalid_parameter(name: &str, reason: impl std::fmt::Display) -> Self {
        PromError::BadData(format!("invalid parameter {name:?}: {reason}"))
    }

    fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            PromError::BadData(_) => (StatusCode::BAD_REQUEST, "bad_data"),
            PromError::Execution(_) => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
            PromError::Timeout(_) | PromError::Database(ApiError::StatementTimeout(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "timeout")
            }
            PromError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            PromError::Database(e) if e.is_unavailable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            PromError::Database(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn response(&self) -> HttpResponse {
        let (status, kind) = self.status_and_type();
        let message = match self {
            PromError::Database(e @ ApiError::StatementTimeout(_)) => {
                crate::telemetry::record_statement_timeout();
                tracing::warn!(error = %e, "prometheus query: statement timeout");
                e.to_problem().detail
            }
            PromError::Database(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, source = ?std::error::Error::source(e).map(ToString::to_string), "prometheus query: database unavailable");
                e.to_problem().detail
            }
            PromError::Database(e) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(e).map(ToString::to_string), "prometheus query failed");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        json(
            status,
            &serde_json::json!({"status": "error", "errorType": kind, "error": message}),
        )
    }
}

/// Answers one request to `endpoint` (`/api/v1/query`, …) with its form parameters.
pub async fn handle(state: &AppState, endpoint: &str, form: &str) -> HttpResponse {
    let form = Form::parse(form);
    if let Err(e) = form.check_no_nul() {
        return e.response();
    }
    let answer = match endpoint {
        "/api/v1/query" => query(state, &form).await,
        "/api/v1/query_range" => query_range(state, &form).await,
        "/api/v1/series" => series(state, &form).await,
        "/api/v1/labels" => label_names(state, &form).await,
        "/api/v1/metadata" => metadata(state, &form).await,
        "/api/v1/status/buildinfo" => Ok(json::success(&json::build_info())),
        // Grafana asks for exemplars beside its queries; the store keeps none.
        "/api/v1/query_exemplars" => Ok(json::success(&serde_json::json!([]))),
        _ => match label_values_name(endpoint) {
            Some(Ok(name)) => label_values(state, &form, name).await,
            Some(Err(e)) => Err(e),
            None => Err(PromError::NotFound(format!("unknown endpoint {endpoint}"))),
        },
    };
    answer.unwrap_or_else(|e| e.response())
}

/// The label name of `/api/v1/label/{name}/values`, percent-decoded and checked.
fn label_values_name(endpoint: &str) -> Option<Result<String, PromError>> {
    let raw = endpoint
        .strip_prefix("/api/v1/label/")?
        .strip_suffix("/values")?;
    let name = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    Some(match params::is_label_name(&name) {
        true => Ok(name.into_owned()),
        false => Err(PromError::BadData(format!("invalid label name: {name:?}"))),
    })
}

/// Runs `work` with a pooled connection, as an expensive query (every endpoint of this API
/// reads series by matchers or evaluates PromQL); a database failure stays an [`ApiError`] inside the
/// pool's retry loop (a lost connection is retried), every other error comes back as is.
async fn with_db<T, F>(state: &AppState, work: F) -> Result<T, PromError>
where
    T: Send + 'static,
    F: Fn(&mut crate::db::Conn) -> Result<T, PromError> + Send + 'static,
{
    state
        .db
        .run_costing(crate::db::Cost::Expensive, move |conn| match work(conn) {
            Err(PromError::Database(e)) => Err(e),
            other => Ok(other),
        })
        .await?
}

/// The deadline of a query: now plus its `timeout` parameter, at most the default.
fn deadline(form: &Form) -> Result<Instant, PromError> {
    let timeout = match form.get("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(text) => {
            let ms = params::parse_duration_ms(text)
                .map_err(|e| PromError::invalid_parameter("timeout", e))?;
            Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(DEFAULT_TIMEOUT)
        }
    };
    Ok(Instant::now() + timeout)
}

fn parse_query(form: &Form) -> Result<Expr, PromError> {
    parse_promql("query", form.get("query").unwrap_or_default())
}

/// Parses PromQL; a panic inside the parser (a corner it does not guard) is a `bad_data`
/// answer like any other parse error, never a dropped connection.
fn parse_promql(parameter: &str, text: &str) -> Result<Expr, PromError> {
    std::panic::catch_unwind(|| promql_parser::parser::parse(text))
        .unwrap_or_else(|_| Err(format!("cannot parse {text:?}")))
        .map_err(|e| PromError::invalid_parameter(parameter, e))
}

async fn query(state: &AppState, form: &Form) -> Result<HttpResponse, PromError> {
    let time = match form.get("time") {
        None => chrono::Utc::now().timestamp_millis(),
        Some(text) => params::parse_time_ms(text).map_err(|e| {
            PromError::invalid_parameter("time", format!("Invalid time value for 'time': {e}"))
        })?,
    };
    let deadline = deadline(form)?;
    let expr = parse_query(form)?;
    let range = eval::Range::instant(time);
    eval::check(&expr, &range)?;
    let outcome = with_db(state, move |conn| eval::run(conn, &expr, &range, deadline)).await?;
    Ok(json::success(&json::QueryData::from(&outcome)))
}

async fn query_range(state: &AppState, form: &Form) -> Result<HttpResponse, PromError> {
    let start = params::parse_time_ms(form.get("start").unwrap_or_default())
        .map_err(|e| PromError::invalid_parameter("start", e))?;
    let end = params::parse_time_ms(form.get("end").unwrap_or_default())
        .map_err(|e| PromError::invalid_parameter("end", e))?;
    if end < start {
        return Err(PromError::invalid_parameter(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = params::parse_duration_ms(form.get("step").unwrap_or_default())
        .map_err(|e| PromError::invalid_parameter("step", e))?;
    if step <= 0 {
        return Err(PromError::invalid_parameter(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (i128::from(end) - i128::from(start)) / i128::from(step) > i128::from(MAX_POINTS_PER_SERIES)
    {
        return Err(PromError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    let deadline = deadline(form)?;
    let expr = parse_query(form)?;
    let range = eval::Range { start, end, step };
    eval::check(&expr, &range)?;
    let outcome = with_db(state, move |conn| eval::run(conn, &expr, &range, deadline)).await?;
    Ok(json::success(&json::QueryData::from(&outcome)))
}

/// The series of every `match[]`, optionally only those with samples in `start`..`end`.
async fn matched_series(
    state: &AppState,
    form: &Form,
    require_match: bool,
) -> Result<Vec<Labels>, PromError> {
    let window = params::optional_window(form)?;
    let selectors = form
        .all("match[]")
        .map(|text| {
            parse_promql("match[]", text).and_then(|expr| match expr {
                Expr::VectorSelector(vs) => Ok(vs),
                _ => Err(PromError::invalid_parameter(
                    "match[]",
                    format!("{text:?} is not a series selector"),
                )),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if selectors.is_empty() && require_match {
        return Err(PromError::BadData("no match[] parameter provided".into()));
    }
    with_db(state, move |conn| {
        select::series_of_selectors(conn, &selectors, window)
    })
    .await
}

async fn series(state: &AppState, form: &Form) -> Result<HttpResponse, PromError> {
    let series = matched_series(state, form, true).await?;
    Ok(json::success(&json::series_list(&series)))
}

async fn label_names(state: &AppState, form: &Form) -> Result<HttpResponse, PromError> {
    let series = matched_series(state, form, false).await?;
    let mut names: Vec<&str> = series
        .iter()
        .flat_map(|labels| labels.iter().map(|(name, _)| name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    Ok(json::success(&names))
}

async fn label_values(
    state: &AppState,
    form: &Form,
    name: String,
) -> Result<HttpResponse, PromError> {
    let unrestricted = form.all("match[]").next().is_none()
        && form.get("start").is_none()
        && form.get("end").is_none();
    if name == "__name__" && unrestricted {
        let names = with_db(state, select::metric_names).await?;
        return Ok(json::success(&names));
    }
    let series = matched_series(state, form, false).await?;
    let mut values: Vec<&str> = series
        .iter()
        .filter_map(|labels| eval::label(labels, &name))
        .collect();
    values.sort_unstable();
    values.dedup();
    Ok(json::success(&values))
}

/// Metric metadata: the store keeps no type or help text, so every metric is `unknown`.
async fn metadata(state: &AppState, form: &Form) -> Result<HttpResponse, PromError> {
    let limit = match form.get("limit") {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| PromError::invalid_parameter("limit", "cannot parse limit"))?,
        ),
    };
    let only = form
        .get("metric")
        .filter(|m| !m.is_empty())
        .map(String::from);
    let names = with_db(state, select::metric_names).await?;
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| only.as_deref().is_none_or(|m| m == n))
        .take(match limit {
            Some(l) if l >= 0 => usize::try_from(l).unwrap_or(usize::MAX),
            _ => usize::MAX,
        })
        .collect();
    Ok(json::success(&json::metadata(&names)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_promql_is_bad_data_never_a_panic() {
        for text in [
            "",
            "sum(",
            "x[1e30]",
            "x[-5m]",
            "x offset 99999999999999999999y",
            "x[99999999999999999999s]",
            "rate(x[5m:1e30s])",
            "{}",
            "x{a=~\"(\"}",
            "1e400 * x",
        ] {
            let _ = parse_promql("query", text);
        }
        assert!(matches!(
            parse_promql("query", "sum("),
            Err(PromError::BadData(_))
        ));
    }

    #[test]
    fn unsupported_parts_are_named() {
        let check = |text: &str| {
            let expr = parse_promql("query", text).expect("parses");
            eval::check(&expr, &eval::Range::instant(0))
        };
        let message = |r: Result<(), PromError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message(check("histogram_quantile(0.9, x)"))
            .contains("unsupported: function histogram_quantile"));
        assert!(message(check("x and y")).contains("unsupported: set operator and"));
        assert!(message(check("max_over_time(x[5m:1m])")).contains("unsupported: subquery"));
        assert!(message(check("x @ 100")).contains("unsupported: @ modifier"));
        assert!(check("sum by (Hostname) (rate(x[5m])) * 100").is_ok());
    }
}
