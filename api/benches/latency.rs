//! API latency on a large table, next to the same SQL run directly in the same run.
//!
//! `cargo bench -p api --bench latency` seeds a throwaway PostgreSQL (testkit) with
//! 10,000,000 points (250 GPUs x 10 metrics x 4,000 seconds) in SQL, into the compact store's
//! series and daily points partitions, starts the real `api` binary, and measures:
//!
//! - a 100-point window of one GPU (10 seconds x 10 metrics, random GPU and start) through the
//!   API, 8 concurrent keep-alive clients, p50/p99;
//! - the same SQL (`store::read::WINDOW_SQL`, prepared, same parameters) on 8 threads with their
//!   own connections: the reference, and the ratio API/SQL;
//! - the GPU list and the stats through the API (one client), which read only small tables;
//! - step aggregation of one GPU's metric: 6 hours at 1-minute steps (from `rollup_1m`) and
//!   7 days at 1-hour steps (from `rollup_1h`), each next to its statement
//!   (`store::aggregate`) run directly; the rollups hold 6 hours and 7 days of every series
//!   before the points;
//! - `/api/v1/latest` of one metric for every GPU, next to `store::read::LATEST_SQL`.
//!
//! Goals: window p99 ≤ 5 ms and ≤ 1.5x direct SQL; GPU list and stats ≤ 25 ms; 6-hour
//! 1-minute query p99 ≤ 20 ms; 7-day 1-hour query p99 ≤ 50 ms.
//! Knobs: `API_BENCH_SECONDS` (timestamps per GPU per metric, default 4000, i.e. 10M points),
//! `API_BENCH_REQUESTS` (window requests per client per round, default 1500).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use store::partitions::TABLES;
use testkit::{wait_until, Child, Postgres};

const GPUS: i64 = 250;
const METRICS: i64 = 10;
const CLIENTS: usize = 8;
const ROUNDS: usize = 2;
/// 10 seconds x 10 metrics = a 100-point window.
const WINDOW_SECONDS: i64 = 9;

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

fn gpu_uuid(g: i64) -> String {
    format!("GPU-{g:08}-0000-4000-8000-000000000000")
}

/// The first day of the points (`base_time`) and the days `seconds` of points span.
fn days(seconds: i64) -> impl Iterator<Item = NaiveDate> {
    let first = base_time().date_naive();
    (0..=(seconds - 1) / 86_400).map(move |d| first + chrono::Duration::days(d))
}

/// Seeds `seconds` x 250 GPUs x 10 metrics points into the compact store as a collector
/// would leave them: a series per GPU and metric, the points in time order in their daily
/// partitions (made the store's way), `gpus` and the day totals; then VACUUM ANALYZE, what
/// autovacuum does to a filled partition (statistics, visibility map, and the BRIN summaries
/// without which a BRIN scan returns every block). The rollups stay empty: the API does not
/// read them. Returns (insert, totals + vacuum + analyze) times.
fn seed(client: &mut postgres::Client, seconds: i64) -> (Duration, Duration) {
    let started = Instant::now();
    for day in days(seconds) {
        for table in TABLES {
            table.ensure(client, day).expect("create a partition");
        }
    }
    // Series ids given explicitly (GPU g, metric m is g * 10 + m + 1), so that the points
    // below compute theirs instead of joining 10M rows to `series`.
    client
        .batch_execute(&format!(
            "SET maintenance_work_mem = '1GB';
             INSERT INTO series (series_id, gpu_uuid, metric, hostname, labels)
             SELECT g * {METRICS} + m + 1,
                    'GPU-' || lpad(g::text, 8, '0') || '-0000-4000-8000-000000000000',
                    'DCGM_FI_METRIC_' || m, 'host-' || lpad((g / 8)::text, 3, '0'),
                    '{{\"DCGM_FI_DRIVER_VERSION\": \"535.129.03\", \"pci_bus_id\": \"00000000:18:00.0\"}}'::jsonb
             FROM generate_series(0, {GPUS} - 1) AS g, generate_series(0, {METRICS} - 1) AS m
             ORDER BY 1;
             SELECT setval(pg_get_serial_sequence('series', 'series_id'), {GPUS} * {METRICS});"
        ))
        .expect("seed series");
    let per_second = GPUS * METRICS;
    // Point n is second n / 2500, GPU (n / 10) % 250, metric n % 10: time order, one day
    // (one partition) per statement.
    for (d, day) in days(seconds).enumerate() {
        let first = d as i64 * 86_400 * per_second;
        let end = (seconds * per_second).min(first + 86_400 * per_second);
        client
            .batch_execute(&format!(
                "INSERT INTO points (ts, value, src_offset, source_ts, series_id, src_partition)
                 SELECT timestamptz '2025-07-18 00:00:00+00' + (n / {per_second}) * interval '1 second',
                        (n % 997)::float8,
                        (n / {per_second}) * {METRICS} + n % {METRICS},
                        timestamptz '2025-07-18 00:00:00+00' + (n / {per_second}) * interval '1 second',
                        ((n / {METRICS}) % {GPUS}) * {METRICS} + n % {METRICS} + 1,
                        (((n / {METRICS}) % {GPUS}) % 16)::smallint
                 FROM generate_series({first}::bigint, {end} - 1) AS n"
            ))
            .unwrap_or_else(|e| panic!("seed the points of {day}: {e}"));
    }
    let inserted = started.elapsed();
    let started = Instant::now();
    client
        .batch_execute(&format!(
            "INSERT INTO gpus
               SELECT 'GPU-' || lpad(g::text, 8, '0') || '-0000-4000-8000-000000000000',
                      'host-' || lpad((g / 8)::text, 3, '0'), g % 8, 'nvidia' || (g % 8),
                      'NVIDIA H100 80GB HBM3', timestamptz '2025-07-18 00:00:00+00',
                      timestamptz '2025-07-18 00:00:00+00' + ({seconds} - 1) * interval '1 second'
               FROM generate_series(0, {GPUS} - 1) AS g;
             INSERT INTO metric_day_totals (metric, day, points, first_ts, last_ts)
               SELECT s.metric, (p.ts AT TIME ZONE 'UTC')::date, count(*), min(p.ts), max(p.ts)
               FROM points p JOIN series s USING (series_id)
               GROUP BY 1, 2;"
        ))
        .expect("gpus and totals");
    client
        .batch_execute("VACUUM ANALYZE")
        .expect("vacuum and analyze");
    (inserted, started.elapsed())
}

/// Seeds what the collector's rollups and `latest` would hold: every series' minutes for the
/// 6 hours and hours for the 7 days before the points (values from a formula, counts as at one
/// point a second), and each series' latest point. Returns how many rollup rows were written.
fn seed_rollups(client: &mut postgres::Client) -> i64 {
    let base = base_time();
    let first = (base - chrono::Duration::days(7)).date_naive();
    let mut day = first;
    while day <= base.date_naive() {
        for table in TABLES {
            table.ensure(client, day).expect("create a partition");
        }
        day += chrono::Duration::days(1);
    }
    let series = GPUS * METRICS;
    client
        .batch_execute(&format!(
            "INSERT INTO rollup_1m (series_id, count, bucket, sum, min, max, first_ts, first_value, last_ts, last_value)
             SELECT s, 60, b, 60 * (s % 97 + m % 13), s % 97, s % 97 + m % 13 + 1,
                    b, s % 97, b + interval '59 seconds', s % 97 + m % 13
             FROM generate_series(1, {series}) AS s,
                  generate_series(0, 359) AS m,
                  LATERAL (SELECT timestamptz '2025-07-18 00:00:00+00' - interval '6 hours' + m * interval '1 minute' AS b) t
             ORDER BY s, b;
             INSERT INTO rollup_1h (series_id, count, bucket, sum, min, max, first_ts, first_value, last_ts, last_value)
             SELECT s, 3600, b, 3600 * (s % 97 + h % 13), s % 97, s % 97 + h % 13 + 1,
                    b, s % 97, b + interval '3599 seconds', s % 97 + h % 13
             FROM generate_series(1, {series}) AS s,
                  generate_series(0, 167) AS h,
                  LATERAL (SELECT timestamptz '2025-07-18 00:00:00+00' - interval '7 days' + h * interval '1 hour' AS b) t
             ORDER BY s, b;
             INSERT INTO latest (series_id, ts, value)
             SELECT series_id, timestamptz '2025-07-18 00:00:00+00', series_id % 97 FROM series;"
        ))
        .expect("seed the rollups");
    // Its own statement: VACUUM cannot run in the implicit transaction of a multi-statement batch.
    client
        .batch_execute("VACUUM ANALYZE rollup_1m, rollup_1h, latest")
        .expect("vacuum the rollups");
    series * (360 + 168)
}

/// The 6-hour and 7-day step windows: (start, end, step) as query strings and statement values.
fn step_windows() -> [(&'static str, DateTime<Utc>, DateTime<Utc>, i64); 2] {
    let end = base_time() - chrono::Duration::seconds(1);
    [
        (
            "6 h at 1 m",
            base_time() - chrono::Duration::hours(6),
            end,
            60,
        ),
        (
            "7 d at 1 h",
            base_time() - chrono::Duration::days(7),
            end,
            3600,
        ),
    ]
}

/// One step query through the API and the same statement directly, `n` of each, alternating.
fn step_round(
    base: &str,
    pg_conn: &str,
    (start, end, step): (DateTime<Utc>, DateTime<Utc>, i64),
    n: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut client = postgres::Client::connect(pg_conn, postgres::NoTls).expect("connect");
    let source = store::aggregate::Source::for_step(step);
    let statement = client.prepare(source.sql()).expect("prepare");
    let buckets = store::aggregate::Buckets::covering(start, end, step).expect("buckets");
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut via_api, mut sql) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let gpu = gpu_uuid(rng.i64(0..GPUS));
        let metric = format!("DCGM_FI_METRIC_{}", rng.i64(0..METRICS));
        let started = Instant::now();
        let rows = client
            .query(
                &statement,
                &[
                    &gpu,
                    &Some(vec![metric.clone()]),
                    &buckets.start,
                    &buckets.end,
                    &(step as f64),
                ],
            )
            .expect("step statement");
        sql.push(started.elapsed());
        assert_eq!(rows.len() as i64, buckets.count(), "one row per bucket");
        let url = format!(
            "{base}/api/v1/gpus/{gpu}/telemetry?metric={metric}&step={step}s&agg=avg&start_time={}&end_time={}",
            iso(&start),
            iso(&end)
        );
        let started = Instant::now();
        let body = get(&agent, &url);
        via_api.push(started.elapsed());
        debug_assert!(body.contains("\"series\""));
    }
    (via_api, sql)
}

/// `/api/v1/latest?metric=…` for every GPU and `LATEST_SQL` directly, `n` of each.
fn latest_round(base: &str, pg_conn: &str, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut client = postgres::Client::connect(pg_conn, postgres::NoTls).expect("connect");
    let statement = client.prepare(store::read::LATEST_SQL).expect("prepare");
    let (mut via_api, mut sql) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let metrics = Some(vec!["DCGM_FI_METRIC_3".to_string()]);
    let hosts: Option<Vec<String>> = None;
    for _ in 0..n {
        let started = Instant::now();
        let rows = client
            .query(&statement, &[&metrics, &hosts])
            .expect("latest");
        sql.push(started.elapsed());
        assert_eq!(rows.len() as i64, GPUS);
        let started = Instant::now();
        let body = get(
            &agent,
            &format!("{base}/api/v1/latest?metric=DCGM_FI_METRIC_3"),
        );
        via_api.push(started.elapsed());
        debug_assert!(body.contains(&format!("\"count\":{GPUS}")));
    }
    (via_api, sql)
}

/// A random 100-point window: (gpu, start, end).
fn random_window(rng: &mut fastrand::Rng, seconds: i64) -> (String, DateTime<Utc>, DateTime<Utc>) {
    let gpu = gpu_uuid(rng.i64(0..GPUS));
    let start = base_time() + chrono::Duration::seconds(rng.i64(0..seconds - WINDOW_SECONDS));
    (
        gpu,
        start,
        start + chrono::Duration::seconds(WINDOW_SECONDS),
    )
}

fn iso(t: &DateTime<Utc>) -> String {
    api::model::format_ts(t)
}

/// Runs `each` on `clients` threads, `per_client` times each; returns every latency.
fn concurrent<S: Send + 'static>(
    clients: usize,
    per_client: usize,
    setup: impl Fn(usize) -> S + Send + Sync + 'static,
    each: impl Fn(&mut S, &mut fastrand::Rng) + Send + Sync + 'static,
) -> Vec<Duration> {
    let setup = Arc::new(setup);
    let each = Arc::new(each);
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (setup, each) = (setup.clone(), each.clone());
            std::thread::spawn(move || {
                let mut state = setup(i);
                let mut rng = fastrand::Rng::with_seed(i as u64 * 7919 + 1);
                let mut samples = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let started = Instant::now();
                    each(&mut state, &mut rng);
                    samples.push(started.elapsed());
                }
                samples
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("bench thread"))
        .collect()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let rank = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn get(agent: &ureq::Agent, url: &str) -> String {
    let response = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    response.into_string().expect("body")
}

fn api_window_round(base: &str, seconds: i64, clients: usize, per_client: usize) -> Vec<Duration> {
    let base = base.to_string();
    concurrent(
        clients,
        per_client,
        |_| {
            ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build()
        },
        move |agent, rng| {
            let (gpu, start, end) = random_window(rng, seconds);
            let url = format!(
                "{base}/api/v1/gpus/{gpu}/telemetry?start_time={}&end_time={}&limit=100",
                iso(&start),
                iso(&end)
            );
            let body = get(agent, &url);
            debug_assert!(body.contains("\"count\":100"));
        },
    )
}

fn sql_window_round(
    pg_conn: &str,
    seconds: i64,
    clients: usize,
    per_client: usize,
) -> Vec<Duration> {
    let conn = pg_conn.to_string();
    concurrent(
        clients,
        per_client,
        move |_| {
            let mut client = postgres::Client::connect(&conn, postgres::NoTls).expect("connect");
            let statement = client.prepare(store::read::WINDOW_SQL).expect("prepare");
            (client, statement)
        },
        move |(client, statement), rng| {
            let (gpu, start, end) = random_window(rng, seconds);
            // limit + 1, as the API asks, to know whether a next page exists.
            let rows = client
                .query(
                    &*statement,
                    &[
                        &gpu,
                        &Some(start),
                        &Some(end),
                        &101i64,
                        &0i64,
                        &None::<DateTime<Utc>>,
                        &None::<i64>,
                    ],
                )
                .expect("window query");
            assert_eq!(rows.len(), 100);
        },
    )
}

/// User + system CPU time of process `pid` so far (Linux `/proc`, 100 ticks a second).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn sequential(agent: &ureq::Agent, url: &str, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let started = Instant::now();
            get(agent, url);
            started.elapsed()
        })
        .collect()
}

fn main() {
    let seconds = env_num("API_BENCH_SECONDS", 4000).max(WINDOW_SECONDS + 1);
    let per_client = env_num("API_BENCH_REQUESTS", 1500).max(10) as usize;
    let total_points = seconds * GPUS * METRICS;

    let pg = Postgres::start();
    {
        // Room for the table's hot pages; PostgreSQL reads the setting at start.
        let mut client = pg.connect();
        client
            .batch_execute("ALTER SYSTEM SET shared_buffers = '1GB'")
            .expect("shared_buffers");
    }
    pg.stop();
    pg.start_again();
    let mut client = pg.connect();
    store::schema::migrate(&mut client).expect("migrate");
    let (insert, index) = seed(&mut client, seconds);
    let rollup_rows = seed_rollups(&mut client);
    println!(
        "seeded {total_points} points ({GPUS} GPUs x {METRICS} metrics x {seconds} s) in {:.1} s (insert {:.1} s, totals + vacuum + analyze {:.1} s)",
        (insert + index).as_secs_f64(),
        insert.as_secs_f64(),
        index.as_secs_f64()
    );
    println!("seeded {rollup_rows} rollup rows (6 h of minutes, 7 d of hours per series)");

    let port = testkit::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", pg.url())
        .env("RUST_LOG", "warn");
    let api = Child::spawn("api", command);
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(30), "the api", || {
        testkit::http_get(&format!("{base}/health")).is_some_and(|(s, _)| s == 200)
    });

    // Warm both paths (connections, prepared statements, caches), checking the answers.
    let sample = get(
        &ureq::agent(),
        &format!(
            "{base}/api/v1/gpus/{}/telemetry?start_time={}&end_time={}",
            gpu_uuid(0),
            iso(&base_time()),
            iso(&(base_time() + chrono::Duration::seconds(WINDOW_SECONDS)))
        ),
    );
    assert!(
        sample.contains("\"count\":100"),
        "a window holds 100 points: {sample:.300}"
    );
    let conn = pg.connection_string();
    sql_window_round(&conn, seconds, CLIENTS, per_client / 5);
    api_window_round(&base, seconds, CLIENTS, per_client / 5);

    // Rounds alternate between the two paths so that noise from the (shared) machine falls on
    // both alike.
    let (mut sql, mut via_api) = (Vec::new(), Vec::new());
    let (mut sql1, mut api1) = (Vec::new(), Vec::new());
    let mut api_cpu = Duration::ZERO;
    for _ in 0..ROUNDS {
        sql.extend(sql_window_round(&conn, seconds, CLIENTS, per_client));
        let cpu_before = cpu_time(api.pid());
        via_api.extend(api_window_round(&base, seconds, CLIENTS, per_client));
        api_cpu += cpu_time(api.pid()).saturating_sub(cpu_before);
        sql1.extend(sql_window_round(&conn, seconds, 1, per_client / 2));
        api1.extend(api_window_round(&base, seconds, 1, per_client / 2));
    }
    let agent = ureq::agent();
    let mut gpus = sequential(&agent, &format!("{base}/api/v1/gpus"), 300);
    let mut stats = sequential(&agent, &format!("{base}/api/v1/stats"), 300);
    let step_n = (per_client / 5).max(50);
    let steps: Vec<(&str, Vec<Duration>, Vec<Duration>)> = step_windows()
        .into_iter()
        .map(|(what, start, end, step)| {
            step_round(&base, &conn, (start, end, step), 10);
            let (a, s) = step_round(&base, &conn, (start, end, step), step_n);
            (what, a, s)
        })
        .collect();
    latest_round(&base, &conn, 10);
    let (mut latest_api, mut latest_sql) = latest_round(&base, &conn, step_n);
    api.scan_for_panics();

    let (sql50, sql99) = (percentile(&mut sql, 0.50), percentile(&mut sql, 0.99));
    let (api50, api99) = (
        percentile(&mut via_api, 0.50),
        percentile(&mut via_api, 0.99),
    );
    let (sql1_50, sql1_99) = (percentile(&mut sql1, 0.50), percentile(&mut sql1, 0.99));
    let (api1_50, api1_99) = (percentile(&mut api1, 0.50), percentile(&mut api1, 0.99));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!();
    println!("| what ({total_points} points) | clients | requests | p50 | p99 | goal |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| 100-point window, direct SQL (reference) | {CLIENTS} | {} | {} | {} | |",
        sql.len(),
        ms(sql50),
        ms(sql99)
    );
    println!(
        "| 100-point window, API | {CLIENTS} | {} | {} | {} | p99 <= 5 ms |",
        via_api.len(),
        ms(api50),
        ms(api99)
    );
    println!(
        "| ratio API / SQL | | | {:.2}x | {:.2}x | p99 <= 1.5x |",
        ratio(api50, sql50),
        ratio(api99, sql99)
    );
    println!(
        "| 100-point window, direct SQL (reference) | 1 | {} | {} | {} | |",
        sql1.len(),
        ms(sql1_50),
        ms(sql1_99)
    );
    println!(
        "| 100-point window, API | 1 | {} | {} | {} | |",
        api1.len(),
        ms(api1_50),
        ms(api1_99)
    );
    println!(
        "| ratio API / SQL, 1 client | | | {:.2}x | {:.2}x | |",
        ratio(api1_50, sql1_50),
        ratio(api1_99, sql1_99)
    );
    println!(
        "| GPU list ({GPUS} GPUs), API | 1 | {} | {} | {} | <= 25 ms |",
        gpus.len(),
        ms(percentile(&mut gpus, 0.5)),
        ms(percentile(&mut gpus, 0.99))
    );
    println!(
        "| stats, API | 1 | {} | {} | {} | <= 25 ms |",
        stats.len(),
        ms(percentile(&mut stats, 0.5)),
        ms(percentile(&mut stats, 0.99))
    );
    for (what, mut via, mut direct) in steps {
        let goal = if what.starts_with('6') {
            "p99 <= 20 ms"
        } else {
            "p99 <= 50 ms"
        };
        println!(
            "| {what}, one GPU's metric, direct SQL (reference) | 1 | {} | {} | {} | |",
            direct.len(),
            ms(percentile(&mut direct, 0.5)),
            ms(percentile(&mut direct, 0.99))
        );
        println!(
            "| {what}, one GPU's metric, API | 1 | {} | {} | {} | {goal} |",
            via.len(),
            ms(percentile(&mut via, 0.5)),
            ms(percentile(&mut via, 0.99))
        );
    }
    println!(
        "| latest of one metric for every GPU ({GPUS}), direct SQL (reference) | 1 | {} | {} | {} | |",
        latest_sql.len(),
        ms(percentile(&mut latest_sql, 0.5)),
        ms(percentile(&mut latest_sql, 0.99))
    );
    println!(
        "| latest of one metric for every GPU ({GPUS}), API | 1 | {} | {} | {} | |",
        latest_api.len(),
        ms(percentile(&mut latest_api, 0.5)),
        ms(percentile(&mut latest_api, 0.99))
    );
    println!(
        "api process CPU per window request (8 clients): {:.0} us",
        api_cpu.as_secs_f64() * 1e6 / via_api.len() as f64
    );
    for (name, samples) in [("direct SQL", &mut sql), ("API", &mut via_api)] {
        let tail: Vec<String> = [0.9, 0.95, 0.99, 0.999, 1.0]
            .iter()
            .map(|p| ms(percentile(samples, *p)))
            .collect();
        println!(
            "{name}, 8 clients: p90 / p95 / p99 / p99.9 / max = {}",
            tail.join(" / ")
        );
    }
}
