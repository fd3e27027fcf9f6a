//! A PromQL range query over many GPUs through the Prometheus-compatible API, next to the
//! same SQL run directly in the same run.
//!
//! `cargo bench -p api --bench promql` seeds a throwaway PostgreSQL (testkit) with one
//! metric (`DCGM_FI_DEV_GPU_TEMP`) of 4,000 GPUs (8 per host) for 6 hours at 60 s — 1.44M
//! points and their minute rollups, written in SQL as the collector would leave them, each
//! GPU's samples at a phase of its own within the interval — starts the real `api` binary
//! and measures, one client, sequentially:
//!
//! - `avg by (Hostname) (DCGM_FI_DEV_GPU_TEMP)` over the 6 hours at 1-minute steps through
//!   `/prometheus/api/v1/query_range` (whole-minute steps: the minute rollups aggregated per
//!   host and minute by PostgreSQL; no raw point reaches the API);
//! - the grouped statement the API runs for it (`store::prom::group_minutes_sql`), directly,
//!   with the same parameters: the reference, and the ratio API/SQL;
//! - the floor: a `SELECT count(*)` of the same `rollup_1m` rows;
//! - the same query with steps 30 s off the minute, which the API evaluates itself from the
//!   raw points (the path any other expression takes), for comparison.
//!
//! Knobs: `PROMQL_BENCH_GPUS` (default 4000), `PROMQL_BENCH_INTERVAL` (seconds between
//! samples, default 60), `PROMQL_BENCH_REQUESTS` (requests per measurement, default 15),
//! `PROMQL_BENCH_ALIGNED=1` (every sample on the whole minute: no phase).

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use store::partitions::TABLES;
use store::prom::StepAggregate;
use testkit::{wait_until, Child, Postgres};

const HOURS: i64 = 6;
const GPUS_PER_HOST: i64 = 8;
const QUERY: &str = "avg by (Hostname) (DCGM_FI_DEV_GPU_TEMP)";

fn env_num(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 7, 18, 0, 0, 0)
        .single()
        .expect("valid time")
}

/// One series per GPU, the points in time order, the minute rollups, `gpus`; then VACUUM
/// ANALYZE (what autovacuum does to filled partitions).
fn seed(client: &mut postgres::Client, gpus: i64, interval: i64, aligned: bool) -> Duration {
    let started = Instant::now();
    // Each GPU's samples keep a phase of a few milliseconds to seconds within the interval,
    // as the pipeline's own clock takes them; or none, every sample on the whole minute.
    let phase_step = if aligned { 0 } else { 7919 };
    for table in TABLES {
        table
            .ensure(client, base_time().date_naive())
            .expect("create a partition");
    }
    let samples = HOURS * 3600 / interval + 1;
    client
        .batch_execute(&format!(
            "SET maintenance_work_mem = '512MB';
             INSERT INTO series (series_id, gpu_uuid, metric, hostname, labels)
             SELECT g + 1, 'GPU-' || lpad(g::text, 8, '0') || '-0000-4000-8000-000000000000',
                    'DCGM_FI_DEV_GPU_TEMP', 'host-' || lpad((g / {GPUS_PER_HOST})::text, 4, '0'),
                    '{{\"DCGM_FI_DRIVER_VERSION\": \"535.129.03\", \"pci_bus_id\": \"00000000:18:00.0\"}}'::jsonb
             FROM generate_series(0, {gpus} - 1) AS g;
             SELECT setval(pg_get_serial_sequence('series', 'series_id'), {gpus});
             INSERT INTO gpus
               SELECT 'GPU-' || lpad(g::text, 8, '0') || '-0000-4000-8000-000000000000',
                      'host-' || lpad((g / {GPUS_PER_HOST})::text, 4, '0'), g % {GPUS_PER_HOST},
                      'nvidia' || (g % {GPUS_PER_HOST}), 'NVIDIA H100 80GB HBM3',
                      timestamptz '2025-07-18 00:00:00+00', timestamptz '2025-07-18 06:00:00+00'
               FROM generate_series(0, {gpus} - 1) AS g;
             INSERT INTO points (ts, value, src_offset, source_ts, series_id, src_partition)
               SELECT timestamptz '2025-07-18 00:00:00+00' + (n / {gpus}) * {interval} * interval '1 second'
                        + ((n % {gpus}) * {phase_step} % ({interval} * 1000)) * interval '1 millisecond',
                      30 + (n % 997)::float8 / 20, n, NULL, n % {gpus} + 1, ((n % {gpus}) % 16)::smallint
               FROM generate_series(0::bigint, {samples} * {gpus} - 1) AS n;
             INSERT INTO rollup_1m (series_id, count, bucket, sum, min, max, first_ts, first_value,
                                    last_ts, last_value)
               SELECT series_id, count(*), date_trunc('minute', ts), sum(value), min(value), max(value),
                      min(ts), (array_agg(value ORDER BY ts, src_offset))[1],
                      max(ts), (array_agg(value ORDER BY ts DESC, src_offset DESC))[1]
               FROM points GROUP BY series_id, date_trunc('minute', ts);"
        ))
        .expect("seed");
    // Not in the batch above: a multi-statement batch is one transaction, VACUUM is not.
    client
        .batch_execute("VACUUM ANALYZE")
        .expect("vacuum and analyze");
    started.elapsed()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let rank = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn report(what: &str, samples: &mut [Duration]) -> Duration {
    let p50 = percentile(samples, 0.5);
    let p99 = percentile(samples, 0.99);
    println!("{what:<58} p50 {:>10}  p99 {:>10}", ms(p50), ms(p99));
    p50
}

/// Times `n` runs of `each` after one warm-up run; returns the warm-up's result too.
fn time<T>(n: usize, mut each: impl FnMut() -> T) -> (T, Vec<Duration>) {
    let first = each();
    let samples = (0..n)
        .map(|_| {
            let started = Instant::now();
            each();
            started.elapsed()
        })
        .collect();
    (first, samples)
}

fn query_range(agent: &ureq::Agent, base: &str, start: i64, end: i64) -> serde_json::Value {
    let response = agent
        .get(&format!("{base}/prometheus/api/v1/query_range"))
        .query("query", QUERY)
        .query("start", &start.to_string())
        .query("end", &end.to_string())
        .query("step", "60")
        .call()
        .unwrap_or_else(|e| panic!("query_range: {e}"));
    response.into_json().expect("JSON")
}

fn points_of(answer: &serde_json::Value) -> (usize, usize) {
    let series = answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let points = series
        .iter()
        .map(|s| s["values"].as_array().map_or(0, Vec::len))
        .sum();
    (series.len(), points)
}

fn main() {
    let gpus = env_num("PROMQL_BENCH_GPUS", 4000).max(GPUS_PER_HOST);
    let interval = env_num("PROMQL_BENCH_INTERVAL", 60).clamp(1, 3600);
    let requests = env_num("PROMQL_BENCH_REQUESTS", 15).max(3) as usize;
    let points = (HOURS * 3600 / interval + 1) * gpus;

    let pg = Postgres::start();
    let mut client = pg.connect();
    store::schema::migrate(&mut client).expect("migrate");
    let aligned = std::env::var("PROMQL_BENCH_ALIGNED").is_ok_and(|v| v == "1");
    let seeded = seed(&mut client, gpus, interval, aligned);
    println!(
        "seeded {points} points ({gpus} GPUs x {HOURS} h at {interval} s) and their minute rollups in {:.1} s",
        seeded.as_secs_f64()
    );

    let port = testkit::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", pg.url())
        .env("RUST_LOG", "warn");
    let _api = Child::spawn("api", command);
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(30), "the api", || {
        testkit::http_get(&format!("{base}/healthz")).is_some_and(|(s, _)| s == 200)
    });
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(300))
        .build();
    let start = base_time().timestamp();
    let end = start + HOURS * 3600;

    let (answer, mut api) = time(requests, || query_range(&agent, &base, start, end));
    let (series, steps) = points_of(&answer);
    println!("query_range {QUERY:?}, 6 h at 1 m: {series} series, {steps} points in the answer");
    let api_p50 = report("API, whole-minute steps (SQL over rollup_1m)", &mut api);

    // The grouped statement as the API runs it: series ids ordered by host (ids are
    // numbered host by host), one offset per host.
    let ids: Vec<i32> = (1..=gpus as i32).collect();
    let offsets: Vec<i32> = (0..=gpus / GPUS_PER_HOST)
        .map(|h| (h * GPUS_PER_HOST).min(gpus) as i32)
        .collect();
    let sql = store::prom::group_minutes_sql(StepAggregate::Avg, false);
    let (from, to) = (
        base_time() - chrono::Duration::minutes(1),
        base_time() + chrono::Duration::hours(HOURS),
    );
    let (rows, mut direct) = time(requests, || {
        client
            .query(&sql, &[&ids, &offsets, &from, &to])
            .expect("the grouped statement")
            .len()
    });
    let sql_p50 = report(
        &format!("its grouped statement, directly ({rows} group-minutes)"),
        &mut direct,
    );
    println!(
        "ratio API/SQL (p50): {:.2}",
        api_p50.as_secs_f64() / sql_p50.as_secs_f64()
    );
    // The floor: counting the same rollup rows, nothing computed.
    let from = base_time() - chrono::Duration::minutes(5);
    let (_, mut floor) = time(requests, || {
        client
            .query_one(
                "SELECT count(*) FROM rollup_1m WHERE series_id = ANY($1) AND bucket >= $2 AND bucket <= $3",
                &[&ids, &from, &to],
            )
            .expect("count")
    });
    report(
        "floor: SELECT count(*) of the same rollup_1m rows",
        &mut floor,
    );

    let raw_requests = (requests / 3).max(3);
    let (answer, mut raw) = time(raw_requests, || {
        query_range(&agent, &base, start + 30, end + 30)
    });
    let (series, steps) = points_of(&answer);
    report(
        &format!("API, steps 30 s off the minute (raw points; {series} series, {steps} points)"),
        &mut raw,
    );
}
