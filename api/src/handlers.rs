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

use crate::db::Cost;
use crate::error::ApiError;
use crate::model::{
    Bucket, GpuList, Health, HostList, LatestList, Paging, Pipeline, ProblemDoc, Stats, StepAnswer,
    StepSeries, TelemetryAnswer, TelemetryPage,
};
use crate::params::{
    format_cursor, GpuQuery, LatestQuery, Request, StepQuery, TelemetryQuery, Window,
};
use crate::server::AppState;
use crate::{db, export};
use store::read::{Cursor, StoredPoint};

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
    get, path = "/health", tag = "health", security(()),
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

/// The GPUs that have sent telemetry, optionally filtered (read from the `gpus` table, never
/// by scanning points).
#[utoipa::path(
    get, path = "/api/v1/gpus", tag = "fleet",
    params(GpuQuery),
    responses(
        (status = 200, description = "The GPUs that pass the filters, ordered by hostname then GPU index.", body = GpuList),
        (status = 400, description = "An unknown, repeated or empty parameter; `detail` names it.", body = ProblemDoc,
            content_type = "application/problem+json",
            example = json!(problem(400, "Bad Request", "host: unknown query parameter (accepted: hostname, model, namespace, pod)"))),
        (status = 503, description = "The database cannot be reached.", body = ProblemDoc,
            content_type = "application/problem+json", example = json!(unavailable_example())),
    )
)]
pub async fn list_gpus(state: &AppState, query: &str) -> Result<HttpResponse, ApiError> {
    let filter = GpuQuery::parse(query, true)?;
    let gpus = state.db.run(move |conn| db::gpus(conn, &filter)).await?;
    Ok(json(
        StatusCode::OK,
        &GpuList {
            count: gpus.len(),
            gpus,
        },
    ))
}

/// Every host with telemetry and how many GPUs it has (from the `gpus` table).
#[utoipa::path(
    get, path = "/api/v1/hosts", tag = "fleet",
    responses(
        (status = 200, description = "Every host, by name.", body = HostList),
        (status = 400, description = "A query parameter was given; this endpoint takes none.", body = ProblemDoc,
            content_type = "application/problem+json", example = json!(no_parameters_example())),
        (status = 503, description = "The database cannot be reached.", body = ProblemDoc,
            content_type = "application/problem+json", example = json!(unavailable_example())),
    )
)]
pub async fn list_hosts(state: &AppState) -> Result<HttpResponse, ApiError> {
    let hosts = state.db.run(db::hosts).await?;
    Ok(json(
        StatusCode::OK,
        &HostList {
            count: hosts.len(),
            hosts,
        },
    ))
}

/// The GPUs of one host, optionally filtered further.
#[utoipa::path(
    get, path = "/api/v1/hosts/{hostname}/gpus", tag = "fleet",
    params(
        ("hostname" = String, Path, description = "The host, as listed by /api/v1/hosts.", example = "mtv5-dgx1-hgpu-031"),
        ("model" = Option<String>, Query, description = "Only GPUs of this model.", min_length = 1, pattern = r"^[^\x00]+$"),
        ("namespace" = Option<String>, Query, description = "Only GPUs with telemetry from a pod of this namespace.", min_length = 1, pattern = r"^[^\x00]+$"),
        ("pod" = Option<String>, Query, description = "Only GPUs with telemetry from this pod.", min_length = 1, pattern = r"^[^\x00]+$"),
    ),
    responses(
        (status = 200, description = "The host's GPUs, by GPU index.", body = GpuList),
        (status = 400, description = "An unknown, repeated or empty parameter; `detail` names it.", body = ProblemDoc,
            content_type = "application/problem+json",
            example = json!(problem(400, "Bad Request", "hostname: unknown query parameter (accepted: model, namespace, pod)"))),
        (status = 404, description = "No host with this name.", body = ProblemDoc,
            content_type = "application/problem+json",
            example = json!(problem(404, "Not Found", "no host named \"nope\""))),
        (status = 503, description = "The database cannot be reached.", body = ProblemDoc,
            content_type = "application/problem+json", example = json!(unavailable_example())),
    )
)]
pub async fn host_gpus(
    state: &AppState,
    hostname: String,
    query: &str,
) -> Result<HttpResponse, ApiError> {
    let mut filter = GpuQuery::parse(query, false)?;
    filter.hostname = Some(hostname.clone());
    let gpus = state
        .db
        .run(move |conn| {
            let gpus = db::gpus(conn, &filter)?;
            if gpus.is_empty() && !db::host_known(conn, &hostname)? {
                return Err(ApiError::UnknownHost(hostname.clone()));
            }
            Ok(gpus)
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &GpuList {
            count: gpus.len(),
            gpus,
        },
    ))
}

/// The latest value of each metric of each GPU, from a small table the collector keeps
/// current (never a scan of the points).
#[utoipa::path(
    get, path = "/api/v1/latest", tag = "fleet",
    params(LatestQuery),
    responses(
        (status = 200, description = "One point per GPU and metric, by hostname, GPU index and metric. A metric or host with no data answers no points.", body = LatestList),
        (status = 400, description = "An unknown or empty parameter; `detail` names it.", body = ProblemDoc,
            content_type = "application/problem+json",
            example = json!(problem(400, "Bad Request", "gpu: unknown query parameter (accepted: metric, hostname)"))),
        (status = 503, description = "The database cannot be reached.", body = ProblemDoc,
            content_type = "application/problem+json", example = json!(unavailable_example())),
    )
)]
pub async fn latest(state: &AppState, query: &str) -> Result<HttpResponse, ApiError> {
    let query = LatestQuery::parse(query)?;
    let points = state
        .db
        .run(move |conn| db::latest(conn, &query.metric, &query.hostname))
        .await?;
    Ok(json(
        StatusCode::OK,
        &LatestList {
            count: points.len(),
            points,
        },
    ))
}

/// The pipeline's health: points stored, dead letters, and each collector group's progress
/// and lag per partition (the lag when the API knows the broker: `--broker-url`).
#[utoipa::path(
    get, path = "/api/v1/pipeline", tag = "operations",
    responses(
        (status = 200, description = "The pipeline's state.", body = Pipeline),
        (status = 400, description = "A query parameter was given; this endpoint takes none.", body = ProblemDoc,
            content_type = "application/problem+json", example = json!(no_parameters_example())),
        (status = 503, description = "The database cannot be reached.", body = ProblemDoc,
            content_type = "application/problem+json", example = json!(unavailable_example())),
    )
)]
pub async fn pipeline(state: &AppState) -> Result<HttpResponse, ApiError> {
    let (stats, progress) = state
        .db
        .run(|conn| Ok((db::stats(conn)?, db::pipeline(conn)?)))
        .await?;
    let mut consumers = progress.consumers;
    let broker = match &state.broker {
        None => "not configured",
        Some(broker) => match broker.fill_lag(&mut consumers).await {
            true => "reachable",
            false => "unreachable",
        },
    };
    Ok(json(
        StatusCode::OK,
        &Pipeline {
            points_total: stats.points,
            latest_ts: stats.last_ts,
            dead_letters: progress.dead_letters,
            last_dead_letter_at: progress.last_dead_letter_at,
            broker,
            consumers,
        },
    ))
}

/// One GPU's telemetry in a time window: a page of its points, or with `step` one value per
/// metric per bucket; with `Accept: text/csv` or `application/x-ndjson`, the whole window.
///
/// Both bounds are inclusive. Pages: points by time (ties in arrival order); follow
/// `paging.next` (or pass `paging.cursor` as `cursor`) until it is null to walk the whole
/// window: every point comes exactly once, and a later page costs what the first does.
/// `offset` still works for clients that count. Export: every point of the window in one
/// streamed answer (chunked, no page limit), CSV with a header line
/// (`ts,metric,value,source_ts,hostname,container,pod,namespace,labels`, labels as JSON) or
/// one JSON point per line; with `step`, the buckets (`ts,metric,value`). A metric the GPU
/// has no points of answers nothing for it; a GPU the database has never seen answers 404.
#[utoipa::path(
    get, path = "/api/v1/gpus/{id}/telemetry", tag = "telemetry",
    params(
        ("id" = String, Path, description = "The GPU's UUID, as listed by /api/v1/gpus.",
            example = "GPU-5fd4f087-86f3-7a43-b711-4771313afc50"),
        TelemetryQuery,
    ),
    responses(
        (status = 200, description = "One page of the window (without `step`) or its buckets (with `step`); the export formats carry the whole window.",
            content(
                (TelemetryAnswer = "application/json"),
                (String = "text/csv", example = "ts,metric,value,source_ts,hostname,container,pod,namespace,labels\n2025-07-18T13:42:33.000123Z,DCGM_FI_DEV_GPU_UTIL,87,2025-07-18T13:42:33.000000Z,mtv5-dgx1-hgpu-031,,,,{}\n"),
                (String = "application/x-ndjson", example = "{\"ts\":\"2025-07-18T13:42:33.000123Z\",\"metric\":\"DCGM_FI_DEV_GPU_UTIL\",\"value\":87.0,\"source_ts\":\"2025-07-18T13:42:33.000000Z\",\"hostname\":\"mtv5-dgx1-hgpu-031\",\"container\":null,\"pod\":null,\"namespace\":null,\"labels\":{}}\n"),
            )),
        (status = 400, description = "A query parameter is malformed, out of range, unknown or inconsistent; `detail` names it.",
            body = ProblemDoc, content_type = "application/problem+json",
            examples(
                ("bad time" = (summary = "start_time is not a time", value = json!(problem(400, "Bad Request",
                    "start_time: not a time: give RFC 3339 (2025-07-18T13:42:33Z), Unix seconds (1752846153.5) or milliseconds (1752846153500), now, or a time relative to now (-6h, now-90m), got \"yesterday\"")))),
                ("start after end" = (summary = "the window is reversed", value = json!(problem(400, "Bad Request",
                    "start_time: must not be after end_time (2025-07-19T00:00:00.000000Z > 2025-07-18T00:00:00.000000Z)")))),
                ("limit out of range" = (summary = "limit above 1000", value = json!(problem(400, "Bad Request",
                    "limit: must be an integer between 1 and 1000, got \"5000\"")))),
                ("too many buckets" = (summary = "the step is too small for the window", value = json!(problem(400, "Bad Request",
                    "step: 1s over this window makes 86401 buckets per metric, more than the 11000 allowed: raise step to at least 8s or narrow the window")))),
                ("unknown parameter" = (summary = "a query parameter this endpoint does not take", value = json!(problem(400, "Bad Request",
                    "colour: unknown query parameter (accepted: start_time, end_time, metric, step, agg, limit, offset, cursor)")))),
                ("offset too deep" = (summary = "an offset past 10,000: use the cursor", value = json!(problem(400, "Bad Request",
                    "offset: must be at most 10000, got 3000000: deep pages cost time in proportion to the offset; follow paging.next (or pass paging.cursor as cursor), which costs the same at any depth")))),
            )),
        (status = 404, description = "No GPU with this id.", body = ProblemDoc,
            content_type = "application/problem+json",
            example = json!(problem(404, "Not Found", "no GPU with id \"GPU-does-not-exist\""))),
        (status = 503, description = "The database cannot be reached, too many expensive queries are in flight, or the query ran past the statement timeout; `detail` says which.", body = ProblemDoc,
            content_type = "application/problem+json",
            examples(
                ("unreachable" = (summary = "the database cannot be reached", value = json!(unavailable_example()))),
                ("statement timeout" = (summary = "the query ran past --statement-timeout-ms", value = json!(problem(503, "Service Unavailable",
                    "statement timeout: the query ran longer than 10000 ms and was cancelled; narrow the window, use a coarser step, or page with cursor")))),
                ("busy" = (summary = "the expensive queries' permits stayed taken", value = json!(problem(503, "Service Unavailable",
                    "too many expensive queries (telemetry pages, aggregations, exports, PromQL) in flight; retry later")))),
            )),
    )
)]
pub async fn gpu_telemetry(
    state: &AppState,
    id: String,
    raw_query: &str,
    headers: &http::HeaderMap,
) -> Result<HttpResponse, ApiError> {
    let format = export::Format::negotiate(headers);
    match TelemetryQuery::request(raw_query)? {
        Request::Step(query) => step_answer(state, id, query, format).await,
        Request::Page(window) if format != export::Format::Json => {
            export::window(state, id, window, format).await
        }
        Request::Page(window) => {
            // The page is built and serialised on the blocking thread, straight from the rows.
            let body = state
                .db
                .run_costing(Cost::Expensive, move |conn| {
                    let rows = db::known_window(conn, &id, &window)?;
                    let (points, next) = rows.page(window.limit)?;
                    encode(&page(&id, &window, points, next))
                })
                .await?;
            Ok(respond(StatusCode::OK, body, "application/json"))
        }
    }
}

/// The buckets of a step query, as JSON or an export format.
async fn step_answer(
    state: &AppState,
    id: String,
    query: StepQuery,
    format: export::Format,
) -> Result<HttpResponse, ApiError> {
    let (id, query, buckets) = state
        .db
        .run_costing(Cost::Expensive, move |conn| {
            let buckets = db::buckets(conn, &id, &query)?;
            if buckets.is_empty() {
                db::check_known(conn, &id)?;
            }
            Ok((id.clone(), query.clone(), buckets))
        })
        .await?;
    let series = step_series(&query, buckets);
    if format != export::Format::Json {
        return Ok(export::buckets(&series, format));
    }
    let answer = StepAnswer {
        gpu_uuid: &id,
        start_time: query.buckets.start,
        end_time: query.buckets.end,
        step: &query.step,
        step_seconds: query.buckets.step_seconds,
        agg: query.agg.name(),
        series,
    };
    Ok(respond(
        StatusCode::OK,
        encode(&answer)?,
        "application/json",
    ))
}

/// One series per metric asked for (empty when it has no points), or per metric found.
fn step_series(query: &StepQuery, buckets: store::aggregate::BucketMap) -> Vec<StepSeries> {
    let mut series: Vec<StepSeries> = query
        .metrics
        .iter()
        .map(|metric| StepSeries {
            metric: metric.clone(),
            points: Vec::new(),
        })
        .collect();
    series.sort_by(|a, b| a.metric.cmp(&b.metric));
    for ((metric, ts), partial) in buckets {
        let value = query.agg.of(&partial);
        let at = match series.binary_search_by(|s| s.metric.as_str().cmp(&metric)) {
            Ok(i) => i,
            Err(i) => {
                series.insert(
                    i,
                    StepSeries {
                        metric,
                        points: Vec::new(),
                    },
                );
                i
            }
        };
        series[at].points.push(Bucket { ts, value });
    }
    series
}

/// The JSON page of `points`, with the links to the one after `next` when more follow.
fn page<'a>(
    id: &'a str,
    window: &'a Window,
    points: Vec<StoredPoint<'a>>,
    next: Option<Cursor>,
) -> TelemetryPage<'a> {
    let has_more = next.is_some();
    let cursor = next.as_ref().map(format_cursor);
    let next = next.map(|after| {
        format!(
            "/api/v1/gpus/{}/telemetry?{}",
            utf8_percent_encode(id, SEGMENT),
            window.query_string_after(&after)
        )
    });
    TelemetryPage {
        gpu_uuid: id,
        start_time: window.start,
        end_time: window.end,
        metrics: &window.metrics,
        paging: Paging {
            limit: window.limit,
            offset: window.offset,
            count: points.len(),
            has_more,
            cursor,
            next,
        },
        points,
    }
}

/// Serialises a body into a buffer sized for a full page in one allocation.
pub fn encode<T: Serialize>(body: &T) -> Result<Bytes, ApiError> {
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
    get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "Alive.", body = String, content_type = "text/plain", example = "ok\n"))
)]
pub async fn healthz() -> Result<HttpResponse, ApiError> {
    Ok(boxed(pipeline_common::ops::healthz()))
}

/// Readiness for orchestrators: ready when the database answers.
#[utoipa::path(
    get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready to serve.", body = String, content_type = "text/plain", example = "ready\n"),
        (status = 503, description = "The database cannot be reached.", body = String, content_type = "text/plain",
            example = "not ready: database unreachable\n"),
    )
)]
pub async fn readyz(state: &AppState) -> Result<HttpResponse, ApiError> {
    let ready = state.db.run(db::ping).await;
    Ok(boxed(pipeline_common::ops::readyz(
        ready.map_err(|_| "database unreachable"),
    )))
}

/// Prometheus metrics (text format 0.0.4): request counts and latency per route, pool state.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Metrics in the Prometheus text format.", body = String,
        content_type = "text/plain; version=0.0.4",
        example = "# HELP api_http_requests_total HTTP requests answered, by route, method and status code.\n# TYPE api_http_requests_total counter\napi_http_requests_total{route=\"/api/v1/gpus\",method=\"GET\",status=\"200\"} 1\n"))
)]
pub async fn metrics(state: &AppState) -> Result<HttpResponse, ApiError> {
    let (open, idle) = state.db.pool_state();
    crate::telemetry::record_pool(open, idle);
    Ok(boxed(pipeline_common::ops::metrics()))
}

/// This document: the OpenAPI 3.1 spec, generated from the code.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations", security(()),
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
    get, path = "/docs", tag = "operations", security(()),
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
