//! The one place where a [`BrokerError`] becomes an HTTP status and an
//! `application/problem+json` body. Handlers return `Result<_, BrokerError>` and never pick
//! error statuses themselves.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use pipeline_common::problem::Problem;
use serde::Serialize;

use broker_log::LogError;

use crate::error::BrokerError;

/// The status a failure is answered with.
pub fn status_of(error: &BrokerError) -> StatusCode {
    use BrokerError as E;
    match error {
        E::InvalidName { .. } | E::BadLine { .. } | E::BadRequest(_) => StatusCode::BAD_REQUEST,
        E::UnknownTopic(_)
        | E::NoAutoCreate(_)
        | E::UnknownPartition { .. }
        | E::UnknownGroup(_)
        | E::UnknownMember { .. } => StatusCode::NOT_FOUND,
        E::PartitionCountMismatch { .. }
        | E::StaleSequence { .. }
        | E::SequenceMismatch { .. }
        | E::StaleGeneration { .. }
        | E::NotAssigned { .. } => StatusCode::CONFLICT,
        E::LimitReached { .. } => StatusCode::CONFLICT,
        E::TooManyTopics { .. } => StatusCode::INSUFFICIENT_STORAGE,
        E::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        E::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        E::OffsetOutOfRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        E::NotReady | E::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        E::Log(log) => log_status(log),
        E::Io { source, .. } if broker_log::io::is_no_space(source) => {
            StatusCode::INSUFFICIENT_STORAGE
        }
        E::SyncFailed { .. } | E::Io { .. } | E::Internal(_) | E::Setup(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn log_status(error: &LogError) -> StatusCode {
    match error {
        LogError::NoSpace { .. } => StatusCode::INSUFFICIENT_STORAGE,
        LogError::Io { source, .. } if broker_log::io::is_no_space(source) => {
            StatusCode::INSUFFICIENT_STORAGE
        }
        LogError::OffsetOutOfRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        LogError::InvalidBatch { .. } => StatusCode::BAD_REQUEST,
        LogError::RecordTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A 416 problem also tells the valid range, so a consumer can jump to it.
#[derive(Serialize)]
struct RangeProblem {
    #[serde(flatten)]
    problem: Problem,
    log_start_offset: u64,
    log_end_offset: u64,
}

/// The problem+json response for `error`.
pub fn into_response(error: &BrokerError) -> Response<Full<Bytes>> {
    let status = status_of(error);
    if status.is_server_error() {
        tracing::error!(error = %error, "request failed");
    }
    let problem = Problem::new(status, error.to_string());
    let range = match error {
        BrokerError::OffsetOutOfRange { start, end, .. }
        | BrokerError::Log(LogError::OffsetOutOfRange { start, end, .. }) => Some((*start, *end)),
        _ => None,
    };
    match range {
        None => problem.into_response(),
        Some((start, end)) => {
            let body = RangeProblem {
                problem,
                log_start_offset: start,
                log_end_offset: end,
            };
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let mut r = Response::new(Full::new(Bytes::from(bytes)));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            r
        }
    }
}
