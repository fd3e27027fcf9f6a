//! The serving module's own metrics: open connections, requests in flight, and why
//! connections were closed early (shed, timed out, refused) or not accepted at all.

use metrics::{Counter, Gauge};

/// Handles, made once per server so the hot path only bumps atomics.
pub struct ServeMetrics {
    pub open: Gauge,
    pub in_flight: Gauge,
    pub shed: Counter,
    pub timed_out: Counter,
    pub refused: Counter,
    pub accept_errors: Counter,
}

impl ServeMetrics {
    pub fn new() -> ServeMetrics {
        metrics::describe_gauge!("http_connections", "HTTP connections open.");
        metrics::describe_gauge!(
            "http_requests_in_flight",
            "HTTP requests being answered (long-polls included)."
        );
        metrics::describe_counter!(
            "http_connections_shed_total",
            "Connections without a request in flight closed to make room at the connection cap or when out of descriptors."
        );
        metrics::describe_counter!(
            "http_connections_timed_out_total",
            "Connections closed by the header-read or the idle timeout."
        );
        metrics::describe_counter!(
            "http_connections_refused_total",
            "Connections closed at once: the cap and its reserve were full and none was idle."
        );
        metrics::describe_counter!(
            "http_accept_errors_total",
            "Failed accepts (out of file descriptors, typically)."
        );
        ServeMetrics {
            open: metrics::gauge!("http_connections"),
            in_flight: metrics::gauge!("http_requests_in_flight"),
            shed: metrics::counter!("http_connections_shed_total"),
            timed_out: metrics::counter!("http_connections_timed_out_total"),
            refused: metrics::counter!("http_connections_refused_total"),
            accept_errors: metrics::counter!("http_accept_errors_total"),
        }
    }
}
