//! The API's own Prometheus metrics: what they are called, their HELP text, and recording.
//!
//! Rendering is `pipeline_common::ops::render_metrics` (the classic text format promtool
//! reads); this module only names, describes and records.

use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};

pub const REQUESTS: &str = "api_http_requests_total";
pub const LATENCY: &str = "api_http_request_duration_seconds";
pub const DB_UNAVAILABLE: &str = "api_db_unavailable_total";
pub const STATEMENT_TIMEOUTS: &str = "api_db_statement_timeouts_total";
pub const POOL_CONNECTIONS: &str = "api_db_pool_connections";
pub const POOL_IDLE: &str = "api_db_pool_idle_connections";

/// Installs the recorder (once per process) and gives every metric its HELP line.
pub fn describe() {
    pipeline_common::ops::install_metrics_recorder();
    describe_counter!(
        REQUESTS,
        "HTTP requests answered, by route, method and status code."
    );
    describe_histogram!(
        LATENCY,
        Unit::Seconds,
        "Time from request to response, by route."
    );
    describe_counter!(
        DB_UNAVAILABLE,
        "Requests answered 503 because the database could not be reached."
    );
    describe_counter!(
        STATEMENT_TIMEOUTS,
        "Requests answered 503 because a statement ran past --statement-timeout-ms."
    );
    describe_gauge!(POOL_CONNECTIONS, "Database connections open in the pool.");
    describe_gauge!(POOL_IDLE, "Database connections idle in the pool.");
}

/// Counts one answered request and its latency. `route` is the route template, never the
/// raw path, so label cardinality stays fixed.
pub fn record_request(route: &'static str, method: &str, status: u16, elapsed: Duration) {
    counter!(REQUESTS, "route" => route, "method" => method.to_string(), "status" => status.to_string())
        .increment(1);
    histogram!(LATENCY, "route" => route).record(elapsed.as_secs_f64());
}

pub fn record_db_unavailable() {
    counter!(DB_UNAVAILABLE).increment(1);
}

pub fn record_statement_timeout() {
    counter!(STATEMENT_TIMEOUTS).increment(1);
}

/// Sets the pool gauges (called just before rendering `/metrics`).
pub fn record_pool(connections: u32, idle: u32) {
    gauge!(POOL_CONNECTIONS).set(f64::from(connections));
    gauge!(POOL_IDLE).set(f64::from(idle));
}
