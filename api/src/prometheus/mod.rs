//! The Prometheus-compatible HTTP API under `/prometheus` (being built).

use crate::handlers::{json, HttpResponse};
use crate::server::AppState;

/// Answers one request to `endpoint` (`/api/v1/query`, …) with its form parameters.
pub async fn handle(_state: &AppState, endpoint: &str, _form: &str) -> HttpResponse {
    json(
        http::StatusCode::NOT_FOUND,
        &serde_json::json!({"status": "error", "errorType": "bad_data", "error": format!("unknown endpoint {endpoint}")}),
    )
}
