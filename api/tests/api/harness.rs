//! The shared harness: a real PostgreSQL with the store's schema, seeded with known points
//! through the store's write path; the real `api` binary on a free port; HTTP through ureq.

use std::borrow::Cow;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use store::write::{Record, Window, Writer};
use store::{Labels, Point};
use testkit::{wait_until, Child, Postgres};

/// The first point's time; point `i` of a GPU is `T0 + i` seconds.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 7, 18, 13, 42, 0)
        .single()
        .expect("valid time")
}

pub fn at(seconds: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(seconds)
}

pub const UTIL: &str = "DCGM_FI_DEV_GPU_UTIL";
pub const TEMP: &str = "DCGM_FI_DEV_GPU_TEMP";
/// 50 seconds of UTIL and TEMP, plus one extra UTIL at second 10 (a tie on `ts`).
pub const GPU_A: &str = "GPU-aaaaaaaa-0000-0000-0000-000000000001";
/// 5 UTIL points with pod labels and no source timestamp.
pub const GPU_B: &str = "GPU-bbbbbbbb-0000-0000-0000-000000000002";
/// Known in `gpus`, but without points (as after retention dropped them).
pub const GPU_C: &str = "GPU-cccccccc-0000-0000-0000-000000000003";
pub const GPU_A_POINTS: usize = 101;
pub const TOTAL_POINTS: i64 = 106;

/// A seeded database and an `api` process serving it.
pub struct Fixture {
    pub pg: Postgres,
    pub api: Child,
    pub base: String,
}

impl Fixture {
    /// PostgreSQL, the schema, the known points, and the API, ready.
    pub fn start() -> Fixture {
        let pg = Postgres::start();
        let mut client = pg.connect();
        store::schema::migrate(&mut client).expect("migrate");
        seed(&mut client);
        let (api, base) = start_api(&pg);
        Fixture { pg, api, base }
    }

    pub fn get(&self, path_and_query: &str) -> Reply {
        request("GET", &format!("{}{path_and_query}", self.base))
    }
}

/// Starts the `api` binary against `pg` and waits until it answers.
pub fn start_api(pg: &Postgres) -> (Child, String) {
    start_api_with(pg, &[])
}

/// [`start_api`] with more environment variables.
pub fn start_api_with(pg: &Postgres, env: &[(&str, &str)]) -> (Child, String) {
    let port = testkit::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", pg.url())
        .env("RUST_LOG", "info")
        .envs(env.iter().copied());
    let api = Child::spawn("api", command);
    let base = format!("http://127.0.0.1:{port}");
    wait_until(
        Duration::from_secs(30),
        "the api to answer /healthz",
        || testkit::http_get(&format!("{base}/healthz")).is_some_and(|(s, _)| s == 200),
    );
    (api, base)
}

/// One HTTP answer, whatever its status.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub allow: Option<String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `detail` of a problem+json answer, after checking it is one.
    pub fn problem_detail(&self, status: u16) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.body
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        body["detail"].as_str().expect("detail").to_string()
    }
}

/// `method url` over a fresh connection-pooling agent; 4xx/5xx are answers, not errors.
pub fn request(method: &str, url: &str) -> Reply {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    let response = match agent.request(method, url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    Reply {
        status: response.status(),
        content_type: response.content_type().to_string(),
        allow: response.header("allow").map(str::to_string),
        body: response.into_string().expect("body"),
    }
}

/// The known points, written by the collector's own write path (`store::write::Writer`), so
/// the API reads exactly what a collector would have stored: series, points, `gpus` and the
/// day totals behind `/api/v1/stats`. The batch is in an order unlike time order, so that
/// ORDER BY, not the physical order of the rows, is what sorts a window.
pub fn seed(client: &mut postgres::Client) {
    let mut rows: Vec<(&str, i64, &str, f64, i64)> = Vec::new();
    for i in 0..50 {
        rows.push((GPU_A, i, UTIL, i as f64, 2 * i));
        rows.push((GPU_A, i, TEMP, 1000.0 + i as f64, 2 * i + 1));
    }
    // Same ts as second 10, later in the log: must come after both points of second 10.
    rows.push((GPU_A, 10, UTIL, 10.5, 500));
    for i in 0..5 {
        rows.push((GPU_B, i * 60, UTIL, 50.0 + i as f64, i));
    }
    rows.reverse();
    let records: Vec<Record> = rows
        .into_iter()
        .map(|(gpu, second, metric, value, offset)| point(gpu, second, metric, value, offset))
        .collect();
    let batch: Vec<&Record> = records.iter().collect();
    let writer = Writer::new(Window::default());
    let (written, rejected) = writer.write_batch(client, &batch).expect("write the batch");
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(written, TOTAL_POINTS as u64);

    // A GPU the collector once saw, whose points are gone (retention drops points, never
    // GPUs): in `gpus`, with no points anywhere.
    client
        .execute(
            "INSERT INTO gpus (gpu_uuid, hostname, gpu_index, device, model, first_seen, last_seen)
             VALUES ($1, 'host-b', 0, 'nvidia0', 'NVIDIA H100 80GB HBM3', $2, $2)",
            &[&GPU_C, &at(-3600)],
        )
        .expect("seed a GPU without points");
}

/// One point of GPU A (host-a, nvidia0, a source time 250 ms before `ts`) or GPU B (host-a,
/// nvidia1, in pod `trainer-0`, no source time), at `T0 + second`, at broker `offset`.
fn point(gpu: &str, second: i64, metric: &str, value: f64, offset: i64) -> Record {
    let gpu_a = gpu == GPU_A;
    let pod = (!gpu_a).then_some(Cow::Borrowed("trainer-0"));
    Record {
        // A GPU's points are all in one broker partition.
        partition: u32::from(!gpu_a),
        offset,
        point: Point {
            ts: at(second),
            source_ts: gpu_a.then(|| at(second) - chrono::Duration::milliseconds(250)),
            metric: Cow::Owned(metric.to_string()),
            gpu_uuid: Cow::Owned(gpu.to_string()),
            gpu_index: i32::from(!gpu_a),
            device: Cow::Borrowed(if gpu_a { "nvidia0" } else { "nvidia1" }),
            model: Cow::Borrowed("NVIDIA H100 80GB HBM3"),
            hostname: Cow::Borrowed("host-a"),
            container: pod.clone(),
            pod: pod.clone(),
            namespace: pod,
            value,
            labels: Labels(vec![(
                Cow::Borrowed("DCGM_FI_DRIVER_VERSION"),
                Cow::Borrowed("535.129.03"),
            )]),
        },
    }
}

/// Formats a time the way the API does.
pub fn iso(t: DateTime<Utc>) -> String {
    api::model::format_ts(&t)
}
