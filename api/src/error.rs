//! The crate's one error enum, and the one place that maps errors to HTTP answers.
//!
//! What a client sees is decided here: a parameter error names the parameter and what is
//! wrong with it; a database outage is a 503 with a short reason; anything unexpected is a 500
//! that says only "internal error" — SQL text, driver messages and backtraces go to the log,
//! never into a response.

use http::StatusCode;
use pipeline_common::problem::Problem;

/// Everything that can go wrong in the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter is missing its form, out of range, unknown, or inconsistent.
    #[error("{parameter}: {reason}")]
    BadParameter { parameter: String, reason: String },

    /// A request body could not be read (too large, cut off, or not UTF-8).
    #[error("request body: {0}")]
    Body(String),

    /// A request body is larger than the route accepts.
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),

    /// The path names a host the database has never seen.
    #[error("no host named {0:?}")]
    UnknownHost(String),

    /// The path names a GPU the database has never seen.
    #[error("no GPU with id {0:?}")]
    UnknownGpu(String),

    /// No connection could be had within the pool timeout (the database is down or full).
    #[error("database unavailable")]
    PoolTimeout(#[source] r2d2::Error),

    /// Every connection stayed busy for the whole timeout.
    #[error("database busy: no connection free within the timeout")]
    Busy,

    /// Every permit of the expensive queries stayed taken for the whole timeout.
    #[error("too many expensive queries in flight")]
    ExpensiveBusy,

    /// PostgreSQL cancelled a statement that ran past `--statement-timeout-ms` (the
    /// timeout's milliseconds).
    #[error("the query ran longer than the statement timeout of {0} ms")]
    StatementTimeout(u128),

    /// The database answered with an error, or the connection broke mid-query.
    #[error("database query failed")]
    Query(#[source] postgres::Error),

    /// A response body could not be serialised.
    #[error("cannot encode a response")]
    Encode(#[source] serde_json::Error),

    /// An export could not be encoded.
    #[error("cannot encode an export: {0}")]
    Export(String),

    /// A blocking database task panicked or was cancelled.
    #[error("database task failed")]
    Task(#[source] tokio::task::JoinError),

    /// The database connection settings do not parse (or ask for TLS that cannot be set up).
    #[error("invalid database settings")]
    DatabaseConfig(#[source] store::Error),

    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// The serving settings cannot be used (the token file, the TLS certificate or key).
    #[error("cannot set the server up: {0}")]
    Serve(#[from] pipeline_common::Error),
}

impl From<postgres::Error> for ApiError {
    fn from(e: postgres::Error) -> Self {
        ApiError::Query(e)
    }
}

impl ApiError {
    pub fn bad_parameter(parameter: &str, reason: impl Into<String>) -> Self {
        ApiError::BadParameter {
            parameter: parameter.to_string(),
            reason: reason.into(),
        }
    }

    /// Whether this error means "the database cannot be reached right now" (answered 503)
    /// rather than "this request or this code is wrong".
    pub fn is_unavailable(&self) -> bool {
        match self {
            ApiError::PoolTimeout(_) | ApiError::Busy | ApiError::ExpensiveBusy => true,
            ApiError::Query(e) => is_connection_error(e),
            _ => false,
        }
    }

    /// The HTTP answer for this error; the only status mapping in the crate.
    pub fn to_problem(&self) -> Problem {
        match self {
            ApiError::BadParameter { .. } => {
                Problem::new(StatusCode::BAD_REQUEST, self.to_string())
            }
            ApiError::Body(_) => Problem::new(StatusCode::BAD_REQUEST, self.to_string()),
            ApiError::BodyTooLarge(_) => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, self.to_string())
            }
            ApiError::UnknownGpu(_) | ApiError::UnknownHost(_) => {
                Problem::new(StatusCode::NOT_FOUND, self.to_string())
            }
            // Busy with expensive work, not down: say so, and that cheap routes still answer.
            ApiError::ExpensiveBusy => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many expensive queries (telemetry pages, aggregations, exports, PromQL) in flight; retry later",
            ),
            // Retrying the same request will likely time out again: say what to change.
            ApiError::StatementTimeout(ms) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "statement timeout: the query ran longer than {ms} ms and was cancelled; \
                     narrow the window, use a coarser step, or page with cursor"
                ),
            ),
            e if e.is_unavailable() => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unreachable; retry later",
            ),
            _ => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        }
    }
}

/// A connection-level failure: the socket closed or failed (an I/O error underneath), or the
/// server is shutting down or starting up (SQLSTATE class 08, 57P01–57P03). Such a query may
/// be retried on another connection. A value that does not convert is not one of these.
pub fn is_connection_error(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let code = code.code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

impl From<store::Error> for ApiError {
    /// A statement's failure is a query failure; anything else the store reports while
    /// reading is about the connection settings.
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Postgres(e) => ApiError::Query(e),
            other => ApiError::DatabaseConfig(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_parameter_is_a_400_naming_it() {
        let p = ApiError::bad_parameter("limit", "must be at most 1000, got 5000").to_problem();
        assert_eq!(p.status, 400);
        assert_eq!(p.detail, "limit: must be at most 1000, got 5000");
    }

    #[test]
    fn a_statement_timeout_is_a_503_that_names_it() {
        let p = ApiError::StatementTimeout(250).to_problem();
        assert_eq!(p.status, 503);
        assert!(p.detail.starts_with("statement timeout: "), "{}", p.detail);
        assert!(p.detail.contains("250 ms"), "{}", p.detail);
    }

    #[test]
    fn the_specs_examples_of_abuse_answers_are_the_real_messages() {
        let spec = crate::openapi::spec_json();
        let offset = crate::params::TelemetryQuery::request("offset=3000000")
            .err()
            .map(|e| e.to_problem().detail);
        let details = [
            ApiError::StatementTimeout(10_000).to_problem().detail,
            ApiError::ExpensiveBusy.to_problem().detail,
            offset.unwrap_or_default(),
        ];
        for detail in details {
            let quoted = serde_json::to_string(&detail).unwrap();
            assert!(spec.contains(&quoted), "the spec has no example {quoted}");
        }
    }

    #[test]
    fn an_unknown_gpu_is_a_404() {
        let p = ApiError::UnknownGpu("GPU-x".into()).to_problem();
        assert_eq!(p.status, 404);
        assert!(p.detail.contains("GPU-x"));
    }
}
