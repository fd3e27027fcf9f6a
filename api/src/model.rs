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
    /// The `offset` asked for (0 when paging by cursor).
    pub offset: u64,
    /// How many points this page holds.
    pub count: usize,
    /// Whether the window has points after this page.
    pub has_more: bool,
    /// The opaque cursor of the next page (pass it as `cursor`); null on the last page.
    #[schema(required = true)]
    pub cursor: Option<String>,
    /// The path and query of the next page (same window, the cursor); null on the last page.
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
    "metrics": [],
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
    /// The metric filter; empty for every metric.
    pub metrics: &'a [String],
    /// The points, by `ts` (ties in arrival order).
    #[schema(value_type = Vec<PointDoc>)]
    pub points: Vec<StoredPoint<'a>>,
    pub paging: Paging,
}

/// What the telemetry route answers in JSON: a page of points, or with `step` the buckets.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(example = json!({"gpu_uuid": "GPU-5fd4f087-86f3-7a43-b711-4771313afc50",
    "start_time": "2025-07-18T13:00:00.000000Z", "end_time": "2025-07-18T13:01:00.000000Z",
    "step": "1m", "step_seconds": 60, "agg": "avg",
    "series": [{"metric": "DCGM_FI_DEV_GPU_TEMP", "points": [{"ts": "2025-07-18T13:00:00.000000Z", "value": 41.5}]}]}))]
#[allow(dead_code)] // describes the two answers in the spec; handlers serialise each directly
pub enum TelemetryAnswer<'a> {
    Page(TelemetryPage<'a>),
    Step(StepAnswer<'a>),
}

/// One bucket's value.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"ts": "2025-07-18T13:00:00.000000Z", "value": 41.5}))]
pub struct Bucket {
    /// The bucket's start (a multiple of the step from the Unix epoch).
    #[serde(serialize_with = "ts")]
    #[schema(value_type = DateTime<Utc>)]
    pub ts: DateTime<Utc>,
    pub value: f64,
}

/// One metric's buckets.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"metric": "DCGM_FI_DEV_GPU_TEMP", "points": [{"ts": "2025-07-18T13:00:00.000000Z", "value": 41.5}]}))]
pub struct StepSeries {
    pub metric: String,
    /// The buckets that hold points, by time.
    pub points: Vec<Bucket>,
}

/// `GET /api/v1/gpus/{id}/telemetry?step=…`: one value per metric per bucket.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "gpu_uuid": "GPU-5fd4f087-86f3-7a43-b711-4771313afc50",
    "start_time": "2025-07-18T13:00:00.000000Z", "end_time": "2025-07-18T13:03:00.000000Z",
    "step": "1m", "step_seconds": 60, "agg": "avg",
    "series": [{"metric": "DCGM_FI_DEV_GPU_TEMP", "points": [
        {"ts": "2025-07-18T13:00:00.000000Z", "value": 41.5},
        {"ts": "2025-07-18T13:02:00.000000Z", "value": 43.0}]}],
}))]
pub struct StepAnswer<'a> {
    pub gpu_uuid: &'a str,
    /// The first bucket's start (the window's start rounded down to the step).
    #[serde(serialize_with = "ts")]
    #[schema(value_type = DateTime<Utc>)]
    pub start_time: DateTime<Utc>,
    /// The last bucket's end, exclusive (the window's end rounded up to the step).
    #[serde(serialize_with = "ts")]
    #[schema(value_type = DateTime<Utc>)]
    pub end_time: DateTime<Utc>,
    /// The step as asked for.
    pub step: &'a str,
    pub step_seconds: i64,
    /// The aggregation: avg, min, max, sum, count, first or last.
    pub agg: &'static str,
    /// One series per metric asked for (or per metric with points when none is named), by
    /// metric name.
    pub series: Vec<StepSeries>,
}

/// One host and its GPUs.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"hostname": "mtv5-dgx1-hgpu-031", "gpus": 8,
    "first_seen": "2025-07-18T13:42:33.000000Z", "last_seen": "2025-07-18T13:47:33.000000Z"}))]
pub struct Host {
    pub hostname: String,
    /// How many GPUs of the host have sent telemetry.
    pub gpus: i64,
    #[serde(serialize_with = "ts")]
    #[schema(value_type = DateTime<Utc>)]
    pub first_seen: DateTime<Utc>,
    #[serde(serialize_with = "ts")]
    #[schema(value_type = DateTime<Utc>)]
    pub last_seen: DateTime<Utc>,
}

/// `GET /api/v1/hosts`: every host, by name.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"count": 1, "hosts": [{"hostname": "mtv5-dgx1-hgpu-031", "gpus": 8,
    "first_seen": "2025-07-18T13:42:33.000000Z", "last_seen": "2025-07-18T13:47:33.000000Z"}]}))]
pub struct HostList {
    pub count: usize,
    pub hosts: Vec<Host>,
}

/// The latest value of one metric of one GPU.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"gpu_uuid": "GPU-5fd4f087-86f3-7a43-b711-4771313afc50",
    "hostname": "mtv5-dgx1-hgpu-031", "gpu_index": 0, "metric": "DCGM_FI_DEV_POWER_USAGE",
    "ts": "2025-07-18T13:47:33.000000Z", "value": 312.5}))]
pub struct LatestPoint {
    pub gpu_uuid: String,
    pub hostname: String,
    pub gpu_index: i32,
    pub metric: String,
    /// When the point was taken.
    #[serde(serialize_with = "ts")]
    #[schema(value_type = DateTime<Utc>)]
    pub ts: DateTime<Utc>,
    pub value: f64,
}

/// `GET /api/v1/latest`: the latest value of each metric of each GPU, by host, GPU index
/// and metric.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"count": 1, "points": [{"gpu_uuid": "GPU-5fd4f087-86f3-7a43-b711-4771313afc50",
    "hostname": "mtv5-dgx1-hgpu-031", "gpu_index": 0, "metric": "DCGM_FI_DEV_POWER_USAGE",
    "ts": "2025-07-18T13:47:33.000000Z", "value": 312.5}]}))]
pub struct LatestList {
    pub count: usize,
    pub points: Vec<LatestPoint>,
}

/// One consumer group's progress on one partition.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"group": "collectors", "topic": "telemetry", "partition": 0,
    "next_offset": 1235, "updated_at": "2025-07-18T13:47:34.000000Z", "end_offset": 1240, "lag": 5}))]
pub struct ConsumerProgress {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// The next offset the group will store (everything before it is in the database).
    pub next_offset: i64,
    /// When the group last committed on this partition.
    #[serde(serialize_with = "ts")]
    #[schema(value_type = DateTime<Utc>)]
    pub updated_at: DateTime<Utc>,
    /// The partition's end offset at the broker; null when the API has no `--broker-url` or
    /// the broker did not answer.
    #[schema(required = true)]
    pub end_offset: Option<i64>,
    /// `end_offset - next_offset`: messages not yet stored; null when the end is unknown.
    #[schema(required = true)]
    pub lag: Option<i64>,
}

/// `GET /api/v1/pipeline`: the pipeline's health as the database and the broker see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"points_total": 2470, "latest_ts": "2025-07-18T13:47:33.000000Z",
    "dead_letters": 0, "last_dead_letter_at": null, "broker": "reachable",
    "consumers": [{"group": "collectors", "topic": "telemetry", "partition": 0,
        "next_offset": 1235, "updated_at": "2025-07-18T13:47:34.000000Z", "end_offset": 1240, "lag": 5}]}))]
pub struct Pipeline {
    /// Points stored (exact; as `/api/v1/stats` counts them). Two readings a few seconds
    /// apart give the ingest rate.
    pub points_total: i64,
    /// The newest point's time.
    #[serde(serialize_with = "opt_ts")]
    #[schema(value_type = Option<DateTime<Utc>>, required = true)]
    pub latest_ts: Option<DateTime<Utc>>,
    /// Messages the collectors could not store, kept with the reason.
    pub dead_letters: i64,
    #[serde(serialize_with = "opt_ts")]
    #[schema(value_type = Option<DateTime<Utc>>, required = true)]
    pub last_dead_letter_at: Option<DateTime<Utc>>,
    /// `reachable`, `unreachable`, or `not configured` (no `--broker-url`).
    pub broker: &'static str,
    pub consumers: Vec<ConsumerProgress>,
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
        "cursor": "6399a3b6e2e10.1f4",
        "next": "/api/v1/gpus/GPU-5fd4f087-86f3-7a43-b711-4771313afc50/telemetry?start_time=2025-07-18T13%3A42%3A00.000000Z&end_time=2025-07-18T13%3A43%3A00.000000Z&limit=100&cursor=6399a3b6e2e10.1f4",
    })
}
