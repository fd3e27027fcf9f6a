//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and the
//! model types' schemas. `GET /openapi.json` serves it; `api --print-openapi` prints it, which
//! is how `make openapi` writes the committed `api/openapi.json` (a test fails when that file
//! is stale).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers;
use crate::model::{
    Bucket, ConsumerProgress, Gpu, GpuList, Health, Host, HostList, LatestList, LatestPoint,
    Paging, Pipeline, PointDoc, ProblemDoc, Stats, StepAnswer, StepSeries, TelemetryAnswer,
    TelemetryPage,
};
use crate::params::{AggDoc, Name};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "GPU telemetry API",
        version = "1",
        description = "GPU telemetry (DCGM metrics) carried from the hosts through the pipeline's \
            broker into PostgreSQL, served read-only. Times are RFC 3339; responses use UTC with \
            microseconds. Errors are `application/problem+json` (RFC 9457). Every route answers GET \
            and HEAD; any other method is answered 405 with an `Allow` header, and a path that is \
            not listed here 404, both as problems. JSON answers are gzip'd for clients that send \
            `Accept-Encoding: gzip`. Beside these routes, `/prometheus` serves the Prometheus HTTP \
            query API (documented by Prometheus) and `/ui` the dashboard. When the server is \
            started with a token (`--token`, `API_TOKEN`, `API_TOKEN_FILE`), every route but the \
            probes, `/metrics`, `/health`, the docs and the dashboard's pages needs \
            `Authorization: Bearer <token>` and is answered 401 without it; without a token \
            nothing needs one.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        handlers::health,
        handlers::list_hosts,
        handlers::host_gpus,
        handlers::list_gpus,
        handlers::gpu_telemetry,
        handlers::latest,
        handlers::stats,
        handlers::pipeline,
        handlers::healthz,
        handlers::readyz,
        handlers::metrics,
        handlers::openapi_json,
        handlers::docs,
    ),
    components(schemas(
        Health, Gpu, GpuList, Host, HostList, LatestPoint, LatestList, PointDoc, Paging,
        TelemetryPage, TelemetryAnswer, StepAnswer, StepSeries, Bucket, AggDoc, Name, Stats,
        ConsumerProgress, Pipeline, ProblemDoc
    )),
    modifiers(&BearerAuth),
    // Optional: the bearer token is required only when the server is given one.
    security((), ("bearer" = [])),
    tags(
        (name = "fleet", description = "Hosts, GPUs and their latest values."),
        (name = "telemetry", description = "One GPU's points and aggregates, exports, totals."),
        (name = "health", description = "Whether the API and its database answer."),
        (name = "operations", description = "Probes, metrics, the spec and its page."),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The server's token (`--token`, `API_TOKEN` or `API_TOKEN_FILE`), when it has one.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The spec as pretty JSON with a final newline: byte for byte what `api/openapi.json` holds.
pub fn spec_json() -> String {
    let doc = ApiDoc::openapi();
    // Serialising a value built from our own types cannot fail; an empty spec would fail the
    // freshness test loudly rather than crash the server.
    let mut text = doc.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
