//! Routing by `(method, path)`: the route table, the shared 404 and 405 answers, the
//! problem+json answer of a failed handler, and per-route metrics and logs.

use std::time::Instant;

use http::{Method, Request};
use hyper::body::Incoming;

use crate::error::ApiError;
use crate::handlers::{self, HttpResponse};
use crate::server::AppState;
use crate::telemetry;

/// The prefix of one GPU's telemetry path; the id and `/telemetry` follow.
const GPUS_PREFIX: &str = "/api/v1/gpus/";

/// A matched path.
#[derive(Debug, Clone, PartialEq)]
enum Route {
    Health,
    Gpus,
    /// The GPU id, percent-decoded.
    Telemetry(String),
    Stats,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    /// The asset under `/docs/` (`""` for the page).
    Docs(String),
}

impl Route {
    fn from_path(path: &str) -> Option<Route> {
        Some(match path {
            "/health" => Route::Health,
            "/api/v1/gpus" => Route::Gpus,
            "/api/v1/stats" => Route::Stats,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            "/openapi.json" => Route::OpenApi,
            "/docs" | "/docs/" => Route::Docs(String::new()),
            _ => return Route::from_dynamic(path),
        })
    }

    fn from_dynamic(path: &str) -> Option<Route> {
        if let Some(tail) = path.strip_prefix("/docs/") {
            return Some(Route::Docs(tail.to_string()));
        }
        let id = path.strip_prefix(GPUS_PREFIX)?.strip_suffix("/telemetry")?;
        if id.is_empty() || id.contains('/') {
            return None;
        }
        let id = percent_encoding::percent_decode_str(id)
            .decode_utf8()
            .ok()?;
        Some(Route::Telemetry(id.into_owned()))
    }

    /// The route's template: the `route` label of the metrics (never the raw path).
    fn template(&self) -> &'static str {
        match self {
            Route::Health => "/health",
            Route::Gpus => "/api/v1/gpus",
            Route::Telemetry(_) => "/api/v1/gpus/{id}/telemetry",
            Route::Stats => "/api/v1/stats",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
            Route::Docs(_) => "/docs",
        }
    }
}

/// Every route answers these methods (HEAD as GET without the body; hyper drops it).
const ALLOWED: [Method; 2] = [Method::GET, Method::HEAD];

/// Answers one request.
pub async fn handle(state: AppState, req: Request<Incoming>) -> HttpResponse {
    let started = Instant::now();
    let method = req.method().clone();
    let Some(route) = Route::from_path(req.uri().path()) else {
        let response = pipeline_common::problem::not_found(req.uri().path());
        telemetry::record_request("unmatched", method_label(&method), 404, started.elapsed());
        return response;
    };
    let response = if ALLOWED.contains(&method) {
        let query = req.uri().query().unwrap_or("");
        dispatch(&state, route.clone(), query)
            .await
            .unwrap_or_else(error_response)
    } else {
        pipeline_common::problem::method_not_allowed(&method, &ALLOWED)
    };
    let status = response.status().as_u16();
    telemetry::record_request(
        route.template(),
        method_label(&method),
        status,
        started.elapsed(),
    );
    tracing::debug!(method = %method, route = route.template(), status, elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

async fn dispatch(state: &AppState, route: Route, query: &str) -> Result<HttpResponse, ApiError> {
    // Only the telemetry route takes parameters. The other API routes refuse any, so a typo
    // (`/api/v1/gpus?host=x`) is an error rather than silently ignored; the probes, metrics
    // and docs ignore query strings, as scrapers and browsers may add their own.
    match route {
        Route::Health => handlers::health(state).await,
        Route::Gpus | Route::Stats if !query.is_empty() => Err(no_parameters(query)),
        Route::Gpus => handlers::list_gpus(state).await,
        Route::Telemetry(id) => handlers::gpu_telemetry(state, id, query).await,
        Route::Stats => handlers::stats(state).await,
        Route::Healthz => handlers::healthz().await,
        Route::Readyz => handlers::readyz(state).await,
        Route::Metrics => handlers::metrics(state).await,
        Route::OpenApi => handlers::openapi_json(state).await,
        Route::Docs(tail) => handlers::docs(&tail).await,
    }
}

/// The 400 of a route that takes no query parameters, naming the first one given.
fn no_parameters(query: &str) -> ApiError {
    let name = form_urlencoded::parse(query.as_bytes())
        .next()
        .map(|(name, _)| name.into_owned())
        .unwrap_or_else(|| query.to_string());
    ApiError::bad_parameter(&name, "unknown query parameter (this endpoint takes none)")
}

/// The problem+json answer for a failed request; internals go to the log only.
fn error_response(error: ApiError) -> HttpResponse {
    let problem = error.to_problem();
    if error.is_unavailable() {
        telemetry::record_db_unavailable();
        tracing::warn!(error = %error, source = ?std::error::Error::source(&error).map(ToString::to_string), "database unavailable");
    } else if problem.status >= 500 {
        tracing::error!(error = %error, source = ?std::error::Error::source(&error).map(ToString::to_string), "request failed");
    }
    problem.into_response()
}

/// A fixed set of method labels, so a client cannot grow the metrics with invented methods.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_routes() {
        assert_eq!(Route::from_path("/api/v1/gpus"), Some(Route::Gpus));
        assert_eq!(
            Route::from_path("/api/v1/gpus/GPU-1%20a/telemetry"),
            Some(Route::Telemetry("GPU-1 a".into()))
        );
        assert_eq!(Route::from_path("/docs"), Some(Route::Docs(String::new())));
        assert_eq!(
            Route::from_path("/docs/init.js"),
            Some(Route::Docs("init.js".into()))
        );
    }

    #[test]
    fn near_misses_are_unknown_paths() {
        for path in [
            "/",
            "/api/v1/gpus/",
            "/api/v1/gpus//telemetry",
            "/api/v1/gpus/a/b/telemetry",
            "/api/v1/gpus/x",
            "/api/v1/gpus/%FF/telemetry",
            "/api/v1/stats/",
        ] {
            assert_eq!(Route::from_path(path), None, "{path}");
        }
    }
}
