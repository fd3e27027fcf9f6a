//! The JSON bodies the API answers with, and their OpenAPI schemas (with examples).
//!
//! Times are RFC 3339 in UTC with microseconds (`2025-07-18T13:42:33.000123Z`), the precision
//! PostgreSQL stores. These types only describe and serialise; the queries live in `db`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;
use store::read::StoredPoint;
use utoipa::ToSchema;

/// `GET /health`: the API and its database.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "ok", "database": "ok"}))]
pub struct Health {
    /// `ok` when every dependency answers, `unavailable` otherwise.
    #[schema(example = "ok")]
    pub status: String,
    /// `ok`, or `unreachable`.
    #[schema(example = "ok")]
    pub database: String,
}

/// One GPU that has sent telemetry.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!(gpu_example()))]
pub struct Gpu {
    /// The GPU's UUID, the `{id}` of its telemetry path.
    pub uuid: String,
    pub hostname: String,
    /// The GPU's index on its host.
    pub gpu_index: i32,
    /// The device name on the host (`nvidia0`).
    pub device: String,
    pub model: String,
    /// Time of its first point.
    #[serde(serialize_with = "ts")]
    pub first_seen: DateTime<Utc>,
    /// Time of its latest point.
    #[serde(serialize_with = "ts")]
    pub last_seen: DateTime<Utc>,
}

/// `GET /api/v1/gpus`: every GPU with telemetry, by hostname then index.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"count": 1, "gpus": [gpu_example()]}))]
pub struct GpuList {
    /// How many GPUs follow.
    pub count: usize,
    pub gpus: Vec<Gpu>,
}

// The OpenAPI description of `store::read::StoredPoint`, which the handlers serialise (its
// text fields borrow from the database row, so a page is serialised without copying every
// string first). A plain comment, not a doc comment: the doc comment is the schema's public
// description in the spec.
/// One telemetry point of a GPU.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Point, example = json!(point_example()))]
pub struct PointDoc {
    /// When the pipeline took the point (the time the API filters and orders by).
    pub ts: DateTime<Utc>,
    /// The DCGM metric name.
    pub metric: String,
    pub value: f64,
    /// The source's own timestamp, when it had one.
    #[schema(required = true)]
    pub source_ts: Option<DateTime<Utc>>,
    pub hostname: String,
    #[schema(required = true)]
    pub container: Option<String>,
    #[schema(required = true)]
    pub pod: Option<String>,
    #[schema(required = true)]
    pub namespace: Option<String>,
    /// The source's extra labels (passed through as stored).
    #[schema(value_type = Object)]
    pub labels: Value,
}

/// Where this page sits in the window, and how to get the next one.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!(paging_example()))]
pub struct Paging {
    /// The page size asked for.
    pub limit: u32,
    /// How many points of the window come before this page.
    pub offset: u64,
    /// How many points this page holds.
    pub count: usize,
    /// Whether the window has points after this page.
    pub has_more: bool,
    /// The path and query of the next page (same window, next offset); null on the last page.
    #[schema(required = true)]
    pub next: Option<String>,
}

/// `GET /api/v1/gpus/{id}/telemetry`: one page of a GPU's points, ordered by time.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "gpu_uuid": "GPU-5fd4f087-86f3-7a43-b711-4771313afc50",
    "start_time": "2025-07-18T13:42:00.000000Z",
    "end_time": "2025-07-18T13:43:00.000000Z",
    "metric": null,
    "points": [point_example()],
    "paging": paging_example(),
}))]
pub struct TelemetryPage<'a> {
    pub gpu_uuid: &'a str,
    /// The window's inclusive start as applied (UTC), or null for "from the first point".
    #[serde(serialize_with = "opt_ts")]
    #[schema(value_type = Option<DateTime<Utc>>, required = true)]
    pub start_time: Option<DateTime<Utc>>,
    /// The window's inclusive end as applied (UTC), or null for "to the latest point".
    #[serde(serialize_with = "opt_ts")]
    #[schema(value_type = Option<DateTime<Utc>>, required = true)]
    pub end_time: Option<DateTime<Utc>>,
    /// The metric filter, or null for every metric.
    #[schema(required = true)]
    pub metric: Option<&'a str>,
    /// The points, by `ts` (ties in arrival order).
    #[schema(value_type = Vec<PointDoc>)]
    pub points: Vec<StoredPoint<'a>>,
    pub paging: Paging,
}

/// `GET /api/v1/stats`: exact totals over everything stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "points": 2470, "gpus": 247, "hosts": 31, "metrics": 10,
    "first_ts": "2025-07-18T13:42:33.000000Z", "last_ts": "2025-07-18T13:42:34.000000Z",
    "points_per_metric": {"DCGM_FI_DEV_GPU_UTIL": 247, "DCGM_FI_DEV_GPU_TEMP": 247},
}))]
pub struct Stats {
    pub points: i64,
    pub gpus: i64,
    pub hosts: i64,
    pub metrics: i64,
    /// The earliest point's time, null when there are none.
    #[serde(serialize_with = "opt_ts")]
    #[schema(value_type = Option<DateTime<Utc>>, required = true)]
    pub first_ts: Option<DateTime<Utc>>,
    /// The latest point's time, null when there are none.
    #[serde(serialize_with = "opt_ts")]
    #[schema(value_type = Option<DateTime<Utc>>, required = true)]
    pub last_ts: Option<DateTime<Utc>>,
    /// Points stored per metric name.
    pub points_per_metric: BTreeMap<String, i64>,
}

/// An error (RFC 9457 `application/problem+json`), as `pipeline_common::problem::Problem`
/// serialises it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Problem, example = json!({
    "type": "about:blank", "title": "Bad Request", "status": 400,
    "detail": "limit: must be between 1 and 1000, got 5000",
}))]
pub struct ProblemDoc {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for a human.
    pub detail: String,
}

/// RFC 3339, UTC, microseconds: the one time format of every body (the store's).
pub use store::time::format_ts;

fn ts<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    store::time::rfc3339_micros::serialize(t, s)
}

fn opt_ts<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    store::time::rfc3339_micros_opt::serialize(t, s)
}

fn gpu_example() -> Value {
    serde_json::json!({
        "uuid": "GPU-5fd4f087-86f3-7a43-b711-4771313afc50",
        "hostname": "mtv5-dgx1-hgpu-031",
        "gpu_index": 0,
        "device": "nvidia0",
        "model": "NVIDIA H100 80GB HBM3",
        "first_seen": "2025-07-18T13:42:33.000000Z",
        "last_seen": "2025-07-18T13:47:33.000000Z",
    })
}

fn point_example() -> Value {
    serde_json::json!({
        "ts": "2025-07-18T13:42:33.000123Z",
        "metric": "DCGM_FI_DEV_GPU_UTIL",
        "value": 87.0,
        "source_ts": "2025-07-18T13:42:33.000000Z",
        "hostname": "mtv5-dgx1-hgpu-031",
        "container": null,
        "pod": null,
        "namespace": null,
        "labels": {"DCGM_FI_DRIVER_VERSION": "535.129.03"},
    })
}

fn paging_example() -> Value {
    serde_json::json!({
        "limit": 100,
        "offset": 0,
        "count": 100,
        "has_more": true,
        "next": "/api/v1/gpus/GPU-5fd4f087-86f3-7a43-b711-4771313afc50/telemetry?start_time=2025-07-18T13%3A42%3A00.000000Z&end_time=2025-07-18T13%3A43%3A00.000000Z&limit=100&offset=100",
    })
}
