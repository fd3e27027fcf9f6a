//! Routing by `(method, path)`: the route table, the shared 404 and 405 answers, the
//! problem+json answer of a failed handler, and per-route metrics and logs.

use std::time::Instant;

use http::request::Parts;
use http::{Method, Request};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::error::ApiError;
use crate::handlers::{self, HttpResponse};
use crate::server::AppState;
use crate::{compress, telemetry};

/// The prefix of one GPU's telemetry path; the id and `/telemetry` follow.
const GPUS_PREFIX: &str = "/api/v1/gpus/";
/// The prefix of one host's GPU list; the hostname and `/gpus` follow.
const HOSTS_PREFIX: &str = "/api/v1/hosts/";
/// The Prometheus-compatible API: the endpoint (`/api/v1/query`, …) follows.
const PROMETHEUS_PREFIX: &str = "/prometheus";
/// The largest form body a POST to the Prometheus API may have (a long PromQL expression
/// fits many times over; anything larger is refused before it is read whole).
const MAX_FORM_BODY: usize = 1 << 20;

/// A matched path.
#[derive(Debug, Clone, PartialEq)]
enum Route {
    Root,
    Health,
    Gpus,
    /// The GPU id, percent-decoded.
    Telemetry(String),
    Hosts,
    /// The hostname, percent-decoded.
    HostGpus(String),
    Latest,
    Pipeline,
    Stats,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    /// The asset under `/docs/` (`""` for the page).
    Docs(String),
    /// The asset under `/ui/` (`""` for the page).
    Ui(String),
    /// The endpoint under `/prometheus` (`/api/v1/query`, …).
    Prometheus(String),
}

impl Route {
    fn from_path(path: &str) -> Option<Route> {
        Some(match path {
            "/" => Route::Root,
            "/health" => Route::Health,
            "/api/v1/gpus" => Route::Gpus,
            "/api/v1/hosts" => Route::Hosts,
            "/api/v1/latest" => Route::Latest,
            "/api/v1/pipeline" => Route::Pipeline,
            "/api/v1/stats" => Route::Stats,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            "/openapi.json" => Route::OpenApi,
            "/docs" | "/docs/" => Route::Docs(String::new()),
            "/ui" | "/ui/" => Route::Ui(String::new()),
            _ => return Route::from_dynamic(path),
        })
    }

    fn from_dynamic(path: &str) -> Option<Route> {
        if let Some(tail) = path.strip_prefix("/docs/") {
            return Some(Route::Docs(tail.to_string()));
        }
        if let Some(tail) = path.strip_prefix("/ui/") {
            return Some(Route::Ui(tail.to_string()));
        }
        if let Some(tail) = path.strip_prefix(PROMETHEUS_PREFIX) {
            return tail
                .starts_with("/api/v1/")
                .then(|| Route::Prometheus(tail.to_string()));
        }
        if let Some(rest) = path.strip_prefix(HOSTS_PREFIX) {
            return Some(Route::HostGpus(segment(rest.strip_suffix("/gpus")?)?));
        }
        let rest = path.strip_prefix(GPUS_PREFIX)?;
        Some(Route::Telemetry(segment(rest.strip_suffix("/telemetry")?)?))
    }

    /// The route's template: the `route` label of the metrics (never the raw path).
    fn template(&self) -> &'static str {
        match self {
            Route::Root => "/",
            Route::Health => "/health",
            Route::Gpus => "/api/v1/gpus",
            Route::Telemetry(_) => "/api/v1/gpus/{id}/telemetry",
            Route::Hosts => "/api/v1/hosts",
            Route::HostGpus(_) => "/api/v1/hosts/{hostname}/gpus",
            Route::Latest => "/api/v1/latest",
            Route::Pipeline => "/api/v1/pipeline",
            Route::Stats => "/api/v1/stats",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
            Route::Docs(_) => "/docs",
            Route::Ui(_) => "/ui",
            Route::Prometheus(_) => "/prometheus",
        }
    }

    /// Whether the route reads its query string (the probes, metrics, docs and pages ignore
    /// theirs; the Prometheus API reads its own form).
    fn reads_query(&self) -> bool {
        matches!(
            self,
            Route::Gpus
                | Route::Telemetry(_)
                | Route::Hosts
                | Route::HostGpus(_)
                | Route::Latest
                | Route::Pipeline
                | Route::Stats
        )
    }

    /// The methods the route answers (HEAD as GET without the body; hyper drops it).
    fn allowed(&self) -> &'static [Method] {
        match self {
            // Prometheus's API takes its parameters from a form body too (long expressions).
            Route::Prometheus(_) => &[Method::GET, Method::HEAD, Method::POST],
            _ => &[Method::GET, Method::HEAD],
        }
    }
}

/// One path segment (`{id}`, `{hostname}`), percent-decoded; `None` when empty, nested or
/// not UTF-8.
fn segment(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.contains('/') {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    Some(decoded.into_owned())
}

/// Answers one request.
pub async fn handle(state: AppState, req: Request<Incoming>) -> HttpResponse {
    let started = Instant::now();
    let method = req.method().clone();
    let Some(route) = Route::from_path(req.uri().path()) else {
        let response = handlers::boxed(pipeline_common::problem::not_found(req.uri().path()));
        telemetry::record_request("unmatched", method_label(&method), 404, started.elapsed());
        return response;
    };
    let gzip = compress::accepts_gzip(req.headers());
    let response = if route.allowed().contains(&method) {
        let response = dispatch(&state, route.clone(), req)
            .await
            .unwrap_or_else(error_response);
        match gzip {
            true => compress::gzip_json(response).await,
            false => response,
        }
    } else {
        handlers::boxed(pipeline_common::problem::method_not_allowed(
            &method,
            route.allowed(),
        ))
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

async fn dispatch(
    state: &AppState,
    route: Route,
    req: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().unwrap_or("");
    // Routes without parameters refuse any, so a typo (`/api/v1/stats?x=1`) is an error
    // rather than silently ignored; the probes, metrics, docs and pages ignore query strings,
    // as scrapers and browsers may add their own.
    // Before any route reads them (the Prometheus API checks its form, body included, itself).
    if route.reads_query() {
        crate::params::refuse_nul(query)?;
    }
    match route {
        Route::Root => handlers::root().await,
        Route::Health => handlers::health(state).await,
        Route::Hosts | Route::Stats | Route::Pipeline if !query.is_empty() => {
            Err(no_parameters(query))
        }
        Route::Gpus => handlers::list_gpus(state, query).await,
        Route::Telemetry(id) => handlers::gpu_telemetry(state, id, query, &parts.headers).await,
        Route::Hosts => handlers::list_hosts(state).await,
        Route::HostGpus(hostname) => handlers::host_gpus(state, hostname, query).await,
        Route::Latest => handlers::latest(state, query).await,
        Route::Pipeline => handlers::pipeline(state).await,
        Route::Stats => handlers::stats(state).await,
        Route::Healthz => handlers::healthz().await,
        Route::Readyz => handlers::readyz(state).await,
        Route::Metrics => handlers::metrics(state).await,
        Route::OpenApi => handlers::openapi_json(state).await,
        Route::Docs(tail) => handlers::docs(&tail).await,
        Route::Ui(tail) => handlers::ui(&tail).await,
        Route::Prometheus(endpoint) => {
            let form = prometheus_form(&parts, body).await?;
            Ok(crate::prometheus::handle(state, &endpoint, &form).await)
        }
    }
}

/// The parameters of a Prometheus API request: the query string and, for a POST, the
/// form-encoded body after it (Prometheus reads both, as Go's `ParseForm` does).
async fn prometheus_form(parts: &Parts, body: Incoming) -> Result<String, ApiError> {
    let mut form = parts.uri.query().unwrap_or("").to_string();
    if parts.method != Method::POST {
        return Ok(form);
    }
    let body = http_body_util::Limited::new(body, MAX_FORM_BODY)
        .collect()
        .await
        .map_err(|e| match e.is::<http_body_util::LengthLimitError>() {
            true => ApiError::BodyTooLarge(MAX_FORM_BODY),
            false => ApiError::Body(e.to_string()),
        })?
        .to_bytes();
    let body = std::str::from_utf8(&body)
        .map_err(|_| ApiError::Body("the form body is not UTF-8".into()))?;
    if !body.is_empty() {
        if !form.is_empty() {
            form.push('&');
        }
        form.push_str(body);
    }
    Ok(form)
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
    if let ApiError::StatementTimeout(_) = error {
        // The client's query, not the service, is what failed: counted, logged, not an error.
        telemetry::record_statement_timeout();
        tracing::warn!(error = %error, "statement timeout");
    } else if error.is_unavailable() {
        telemetry::record_db_unavailable();
        tracing::warn!(error = %error, source = ?std::error::Error::source(&error).map(ToString::to_string), "database unavailable");
    } else if problem.status >= 500 {
        tracing::error!(error = %error, source = ?std::error::Error::source(&error).map(ToString::to_string), "request failed");
    }
    handlers::boxed(problem.into_response())
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
            "/api/v1/gpus/",
            "/api/v1/hosts/",
            "/api/v1/hosts/a/b/gpus",
            "/prometheus",
            "/prometheus/x",
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
