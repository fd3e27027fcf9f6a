//! The one place where a [`BrokerError`] becomes an HTTP status and an
//! `application/problem+json` body. Handlers return `Result<_, BrokerError>` and never pick
//! error statuses themselves — the router's 404 (no route) and 405 (wrong method) included.
//! The body's shape, extension fields included, is the wire contract's (`broker_wire::Problem`).
//! The only problem bodies the broker does not build here are the serving module's
//! (`pipeline_common::serve`) refusals before routing — 401 without the token, 503 on a
//! reserved connection — which have the same fields (the wire-contract tests parse them).

use broker_wire::Problem;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use broker_log::LogError;

use crate::error::BrokerError;

/// The status a failure is answered with.
pub fn status_of(error: &BrokerError) -> StatusCode {
    use BrokerError as E;
    match error {
        E::InvalidName { .. } | E::BadLine { .. } | E::BadRequest(_) => StatusCode::BAD_REQUEST,
        E::UnknownTopic(_)
        | E::NoRoute(_)
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
        E::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        E::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        E::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        E::OffsetOutOfRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        E::NotReady
        | E::ShuttingDown
        | E::Meta(_)
        | E::NotEnoughReplicas { .. }
        | E::NotLeading { .. }
        | E::NotReplicated { .. } => StatusCode::SERVICE_UNAVAILABLE,
        E::EpochMismatch { .. } => StatusCode::CONFLICT,
        E::NotLeader { .. } | E::NotCoordinator { .. } => StatusCode::MISDIRECTED_REQUEST,
        E::Refused(_) => StatusCode::BAD_REQUEST,
        E::Log(log) => log_status(log),
        E::Io { source, .. } if broker_log::io::is_no_space(source) => {
            StatusCode::INSUFFICIENT_STORAGE
        }
        E::SyncFailed { .. } | E::Io { .. } | E::Internal(_) | E::Setup(_) | E::Cluster(_) => {
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

/// The problem+json response for `error`: a [`Problem`] of the wire contract, so a 416 carries
/// the partition's bounds as the `log_start_offset`/`log_end_offset` fields clients read, a 421
/// the partition's leader as `leader_id`/`leader_url`, and a 405 the `Allow` header.
pub fn into_response(error: &BrokerError) -> Response<Full<Bytes>> {
    let status = status_of(error);
    if status.is_server_error() {
        tracing::error!(error = %error, "request failed");
    }
    let mut problem = Problem::new(
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        error.to_string(),
    );
    if let BrokerError::OffsetOutOfRange { start, end, .. }
    | BrokerError::Log(LogError::OffsetOutOfRange { start, end, .. }) = error
    {
        problem = problem.with_log_bounds(*start, *end);
    }
    if let BrokerError::NotLeader { leader, url, .. } = error {
        problem = problem.with_leader(*leader, url.clone());
    }
    if let BrokerError::NotCoordinator {
        coordinator, url, ..
    } = error
    {
        problem = problem.with_leader(Some(*coordinator), url.clone());
    }
    // Serializing strings and numbers cannot fail.
    let bytes = serde_json::to_vec(&problem).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(broker_wire::media::PROBLEM),
    );
    if let BrokerError::MethodNotAllowed { allowed, .. } = error {
        // Built from the route's method names, so always a valid header value.
        if let Ok(allow) = HeaderValue::from_str(allowed) {
            r.headers_mut().insert(header::ALLOW, allow);
        }
    }
    r
}
