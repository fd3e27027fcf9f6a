//! One function per endpoint. Each is annotated with `#[utoipa::path]`, which is where the
//! OpenAPI spec gets the route, its parameters and every response (errors included).
//!
//! Handlers return `Result<Response, ApiError>`; the router turns an error into its
//! problem+json answer, so no handler builds an error body itself.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Serialize;

use crate::db;
use crate::error::ApiError;
use crate::model::{GpuList, Health, Paging, ProblemDoc, Stats, TelemetryPage};
use crate::params::{TelemetryQuery, Window};
use crate::server::AppState;
use store::read::StoredPoint;

/// A response body: whole (most answers) or streamed (exports). A streamed body that fails
/// half-way ends with an error, which makes hyper cut the connection rather than end the
/// message cleanly, so a client never takes a truncated export for a whole one.
pub type Body = BoxBody<Bytes, BodyError>;
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;
pub type HttpResponse = Response<Body>;

/// A whole body.
pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// A response built elsewhere with a whole body (the shared problem answers).
pub fn boxed(response: Response<Full<Bytes>>) -> HttpResponse {
    response.map(|body| body.map_err(|never| match never {}).boxed())
}

/// What must be escaped in a path segment (the GPU id in a `next` link).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Liveness of the API and reachability of its database.
#[utoipa::path(
    get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "The API and its database answer.", body = Health,
            example = json!({"status": "ok", "database": "ok"})),
        (status = 503, description = "The database cannot be reached.", body = Health,
            example = json!({"status": "unavailable", "database": "unreachable"})),
    )
)]
pub async fn health(state: &AppState) -> Result<HttpResponse, ApiError> {
    let (status, body) = match state.db.run(db::ping).await {
        Ok(()) => (StatusCode::OK, health_body("ok", "ok")),
        Err(e) if e.is_unavailable() => (
            StatusCode::SERVICE_UNAVAILABLE,
            health_body("unavailable", "unreachable"),
        ),
        Err(e) => return Err(e),
    };
    Ok(json(status, &body))
}

fn health_body(status: &str, database: &str) -> Health {
    Health {
        status: status.to_string(),
        database: database.to_string(),
    }
}

/// Every GPU that has sent telemetry (read from the `gpus` table, never by scanning points).
#[utoipa::path(
    get, path = "/api/v1/gpus", tag = "telemetry",
    responses(
        (status = 200, description = "Every GPU, ordered by hostname then GPU index.", body = GpuList),
        (status = 400, description = "A query parameter was given; this endpoint takes none.", body = ProblemDoc,
            content_type = "application/problem+json",
            example = json!(no_parameters_example())),
        (status = 503, description = "The database cannot be reached.", body = ProblemDoc,
            content_type = "application/problem+json", example = json!(unavailable_example())),
    )
)]
pub async fn list_gpus(state: &AppState, _query: &str) -> Result<HttpResponse, ApiError> {
    let gpus = state.db.run(db::gpus).await?;
    Ok(json(
        StatusCode::OK,
        &GpuList {
            count: gpus.len(),
            gpus,
        },
    ))
}

/// One page of a GPU's points in a time window, ordered by time (ties in arrival order).
///
/// Both bounds are inclusive. Follow `paging.next` until it is null to walk the whole window:
/// every point comes exactly once. A GPU with no points in the window answers an empty page;
/// a GPU the database has never seen answers 404.
#[utoipa::path(
    get, path = "/api/v1/gpus/{id}/telemetry", tag = "telemetry",
    params(
        ("id" = String, Path, description = "The GPU's UUID, as listed by /api/v1/gpus.",
            example = "GPU-5fd4f087-86f3-7a43-b711-4771313afc50"),
        TelemetryQuery,
    ),
    responses(
        (status = 200, description = "One page of the window.", body = TelemetryPage),
        (status = 400, description = "A query parameter is malformed, out of range, unknown or inconsistent; `detail` names it.",
            body = ProblemDoc, content_type = "application/problem+json",
            examples(
                ("bad time" = (summary = "start_time is not RFC 3339", value = json!(problem(400, "Bad Request",
                    "start_time: not an RFC 3339 time like 2025-07-18T13:42:33Z or 2025-07-18T15:42:33.5+02:00, got \"yesterday\"")))),
                ("start after end" = (summary = "the window is reversed", value = json!(problem(400, "Bad Request",
                    "start_time: must not be after end_time (2025-07-19T00:00:00.000000Z > 2025-07-18T00:00:00.000000Z)")))),
                ("limit out of range" = (summary = "limit above 1000", value = json!(problem(400, "Bad Request",
                    "limit: must be an integer between 1 and 1000, got \"5000\"")))),
                ("unknown metric" = (summary = "no such metric", value = json!(problem(400, "Bad Request",
                    "metric: unknown metric \"DCGM_FI_NOPE\" (GET /api/v1/stats lists the metrics)")))),
                ("unknown parameter" = (summary = "a query parameter this endpoint does not take", value = json!(problem(400, "Bad Request",
                    "colour: unknown query parameter (accepted: start_time, end_time, metric, limit, offset)")))),
            )),
        (status = 404, description = "No GPU with this id.", body = ProblemDoc,
            content_type = "application/problem+json",
            example = json!(problem(404, "Not Found", "no GPU with id \"GPU-does-not-exist\""))),
        (status = 503, description = "The database cannot be reached.", body = ProblemDoc,
            content_type = "application/problem+json", example = json!(unavailable_example())),
    )
)]
pub async fn gpu_telemetry(
    state: &AppState,
    id: String,
    raw_query: &str,
    _headers: &http::HeaderMap,
) -> Result<HttpResponse, ApiError> {
    let window = TelemetryQuery::parse(raw_query)?.resolve()?;
    // The page is built and serialised on the blocking thread, straight from the rows.
    let body = state
        .db
        .run(move |conn| {
            let rows = db::window(conn, &id, &window)?;
            if rows.is_empty() {
                db::check_known(conn, &id, window.metric.as_deref())?;
            }
            let points = rows.points(window.limit as usize + 1)?;
            encode(&page(&id, &window, points))
        })
        .await?;
    Ok(respond(StatusCode::OK, body, "application/json"))
}

/// The page of `points` (up to `limit + 1` of them: the extra one only says "more").
fn page<'a>(
    id: &'a str,
    window: &'a Window,
    mut points: Vec<StoredPoint<'a>>,
) -> TelemetryPage<'a> {
    let limit = window.limit as usize;
    let has_more = points.len() > limit;
    points.truncate(limit);
    let next = has_more.then(|| {
        let next_offset = window.offset.saturating_add(u64::from(window.limit));
        format!(
            "/api/v1/gpus/{}/telemetry?{}",
            utf8_percent_encode(id, SEGMENT),
            window.query_string_at(next_offset)
        )
    });
    TelemetryPage {
        gpu_uuid: id,
        start_time: window.start,
        end_time: window.end,
        metric: window.metric.as_deref(),
        paging: Paging {
            limit: window.limit,
            offset: window.offset,
            count: points.len(),
            has_more,
            next,
        },
        points,
    }
}

/// Serialises a body into a buffer sized for a full page in one allocation.
fn encode<T: Serialize>(body: &T) -> Result<Bytes, ApiError> {
    let mut buf = Vec::with_capacity(64 * 1024);
    serde_json::to_writer(&mut buf, body).map_err(ApiError::Encode)?;
    Ok(Bytes::from(buf))
}

/// Exact totals over everything stored, kept current by the collector (no counting per request).
#[utoipa::path(
    get, path = "/api/v1/stats", tag = "telemetry",
    responses(
        (status = 200, description = "Totals.", body = Stats),
        (status = 400, description = "A query parameter was given; this endpoint takes none.", body = ProblemDoc,
            content_type = "application/problem+json",
            example = json!(no_parameters_example())),
        (status = 503, description = "The database cannot be reached.", body = ProblemDoc,
            content_type = "application/problem+json", example = json!(unavailable_example())),
    )
)]
pub async fn stats(state: &AppState) -> Result<HttpResponse, ApiError> {
    let stats = state.db.run(db::stats).await?;
    Ok(json(StatusCode::OK, &stats))
}

/// Liveness for orchestrators: the process answers HTTP.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive.", body = String, content_type = "text/plain", example = "ok\n"))
)]
pub async fn healthz() -> Result<HttpResponse, ApiError> {
    Ok(text(StatusCode::OK, "ok\n", "text/plain; charset=utf-8"))
}

/// Readiness for orchestrators: ready when the database answers.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve.", body = String, content_type = "text/plain", example = "ready\n"),
        (status = 503, description = "The database cannot be reached.", body = String, content_type = "text/plain",
            example = "not ready: database unreachable\n"),
    )
)]
pub async fn readyz(state: &AppState) -> Result<HttpResponse, ApiError> {
    let plain = "text/plain; charset=utf-8";
    Ok(match state.db.run(db::ping).await {
        Ok(()) => text(StatusCode::OK, "ready\n", plain),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: database unreachable\n",
            plain,
        ),
    })
}

/// Prometheus metrics (text format 0.0.4): request counts and latency per route, pool state.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics in the Prometheus text format.", body = String,
        content_type = "text/plain; version=0.0.4",
        example = "# HELP api_http_requests_total HTTP requests answered, by route, method and status code.\n# TYPE api_http_requests_total counter\napi_http_requests_total{route=\"/api/v1/gpus\",method=\"GET\",status=\"200\"} 1\n"))
)]
pub async fn metrics(state: &AppState) -> Result<HttpResponse, ApiError> {
    let (open, idle) = state.db.pool_state();
    crate::telemetry::record_pool(open, idle);
    Ok(text(
        StatusCode::OK,
        &pipeline_common::ops::render_metrics(),
        pipeline_common::ops::METRICS_CONTENT_TYPE,
    ))
}

/// This document: the OpenAPI 3.1 spec, generated from the code.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI spec.", body = Object, content_type = "application/json",
        example = json!({"openapi": "3.1.0", "info": {"title": "GPU telemetry API", "version": "1"}, "paths": {}})))
)]
pub async fn openapi_json(state: &AppState) -> Result<HttpResponse, ApiError> {
    Ok(respond(
        StatusCode::OK,
        state.spec.clone(),
        "application/json",
    ))
}

/// An interactive page (Swagger UI) over this spec; its assets are served by the API itself,
/// so it works without internet access.
#[utoipa::path(
    get, path = "/docs", tag = "operations",
    responses((status = 200, description = "The Swagger UI page.", body = String, content_type = "text/html",
        example = "<!doctype html><html><head><title>GPU telemetry API</title></head>…</html>"))
)]
pub async fn docs(tail: &str) -> Result<HttpResponse, ApiError> {
    Ok(match crate::docs::asset(tail) {
        Some((bytes, content_type)) => respond(StatusCode::OK, bytes, &content_type),
        None => boxed(pipeline_common::problem::not_found(&format!(
            "/docs/{tail}"
        ))),
    })
}

/// The hosts (stub).
pub async fn list_hosts(_state: &AppState) -> Result<HttpResponse, ApiError> {
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"count": 0, "hosts": []}),
    ))
}

/// One host's GPUs (stub).
pub async fn host_gpus(
    state: &AppState,
    hostname: String,
    _query: &str,
) -> Result<HttpResponse, ApiError> {
    let _ = (state, hostname);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"count": 0, "gpus": []}),
    ))
}

/// Latest values (stub).
pub async fn latest(_state: &AppState, _query: &str) -> Result<HttpResponse, ApiError> {
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"count": 0, "points": []}),
    ))
}

/// Pipeline health (stub).
pub async fn pipeline(_state: &AppState) -> Result<HttpResponse, ApiError> {
    Ok(json(StatusCode::OK, &serde_json::json!({})))
}

/// The landing page: links to the dashboard and the API docs.
pub async fn root() -> Result<HttpResponse, ApiError> {
    Ok(text(StatusCode::OK, ROOT_PAGE, "text/html; charset=utf-8"))
}

const ROOT_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>GPU telemetry</title></head>\n<body><h1>GPU telemetry</h1><ul>\n<li><a href=\"/ui\">Dashboard</a>: the fleet, one GPU's metrics, the pipeline's health</li>\n<li><a href=\"/docs\">API docs</a> (<a href=\"/openapi.json\">OpenAPI spec</a>)</li>\n<li><a href=\"/prometheus/api/v1/labels\">Prometheus-compatible API</a> at <code>/prometheus</code></li>\n</ul></body></html>\n";

/// The dashboard's page and assets, embedded in the binary.
pub async fn ui(tail: &str) -> Result<HttpResponse, ApiError> {
    Ok(match crate::ui::asset(tail) {
        Some((bytes, content_type)) => respond(StatusCode::OK, bytes, content_type),
        None => boxed(pipeline_common::problem::not_found(&format!("/ui/{tail}"))),
    })
}

/// A JSON body with `status`.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => respond(status, Bytes::from(bytes), "application/json"),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise a response body");
            boxed(
                pipeline_common::problem::Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                )
                .into_response(),
            )
        }
    }
}

fn text(status: StatusCode, body: &str, content_type: &str) -> HttpResponse {
    respond(
        status,
        Bytes::copy_from_slice(body.as_bytes()),
        content_type,
    )
}

/// The one place a handler's response is put together.
pub fn respond(status: StatusCode, body: Bytes, content_type: &str) -> HttpResponse {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    // The types are constants and asset-table entries, all valid; were one not, the answer
    // would go without the header rather than panic.
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn problem(status: u16, title: &str, detail: &str) -> serde_json::Value {
    serde_json::json!({"type": "about:blank", "title": title, "status": status, "detail": detail})
}

fn no_parameters_example() -> serde_json::Value {
    problem(
        400,
        "Bad Request",
        "host: unknown query parameter (this endpoint takes none)",
    )
}

fn unavailable_example() -> serde_json::Value {
    problem(
        503,
        "Service Unavailable",
        "the database is unreachable; retry later",
    )
}
