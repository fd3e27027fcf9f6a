//! The API under abuse (issue 13, finding 6), on the real binary and a real PostgreSQL:
//! clients paging deep leave cheap routes their throughput; a statement that runs past
//! `--statement-timeout-ms` is cancelled and answered 503 naming it; a NUL in any path or
//! query parameter is a 400 or 404, never a 500; and with the database down every request is
//! answered 503 within one `--db-timeout-ms`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use testkit::wait_until;

use crate::harness::*;

/// The GPU the deep pagers walk: 10 metrics x 20,000 seconds = 200,000 points.
const DEEP_GPU: &str = "GPU-dddddddd-0000-0000-0000-00000000dddd";
const DEEP_POINTS: i64 = 200_000;

/// One GPU with [`DEEP_POINTS`] points on the fixture's day, written as a collector's rows
/// would be (series, points, `gpus`), then analysed.
fn seed_deep_gpu(client: &mut postgres::Client) {
    let day = NaiveDate::from_ymd_opt(2025, 7, 18).expect("a date");
    store::partitions::POINTS
        .ensure(client, day)
        .expect("the day's partition");
    client
        .batch_execute(&format!(
            "INSERT INTO series (gpu_uuid, metric, hostname, labels)
             SELECT '{DEEP_GPU}', 'DCGM_FI_METRIC_' || m, 'host-deep', '{{}}'
             FROM generate_series(0, 9) AS m;
             INSERT INTO points (ts, value, src_offset, source_ts, series_id, src_partition)
             SELECT timestamptz '2025-07-18 00:00:00+00' + t * interval '1 second',
                    (t % 100)::float8, t * 10 + (s.series_id % 10), NULL, s.series_id, 7
             FROM generate_series(0, {per_series} - 1) AS t, series s
             WHERE s.gpu_uuid = '{DEEP_GPU}'
             ORDER BY t, s.series_id;
             INSERT INTO gpus (gpu_uuid, hostname, gpu_index, device, model, first_seen, last_seen)
             VALUES ('{DEEP_GPU}', 'host-deep', 0, 'nvidia0', 'NVIDIA H100 80GB HBM3',
                     '2025-07-18 00:00:00+00', '2025-07-18 05:33:19+00');",
            per_series = DEEP_POINTS / 10,
        ))
        .expect("seed the deep GPU");
    client.batch_execute("VACUUM ANALYZE").expect("vacuum");
}

/// A keep-alive HTTP client for one load thread.
fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// `GET url` on `agent`: the status and the body, whatever the status.
fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    match agent.get(url).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap_or_default()),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// The `paging.cursor` of a page, read without parsing the 1,000 points after it.
fn cursor_of(page: &str) -> Option<String> {
    let at = page.find("\"cursor\":\"")? + "\"cursor\":\"".len();
    let len = page[at..].find('"')?;
    Some(page[at..at + len].to_string())
}

/// What the cheap clients saw in one measured period.
struct Cheap {
    per_second: f64,
    server_errors: u64,
}

/// `threads` clients asking the cheap routes (GPUs, latest, stats) as fast as they are
/// answered, for `period`.
fn measure_cheap(base: &str, threads: usize, period: Duration) -> Cheap {
    let answered = Arc::new(AtomicU64::new(0));
    let server_errors = Arc::new(AtomicU64::new(0));
    let routes = [
        "/api/v1/gpus?hostname=host-a",
        "/api/v1/latest?hostname=host-a",
        "/api/v1/stats",
    ];
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (answered, server_errors) = (answered.clone(), server_errors.clone());
            scope.spawn(move || {
                let agent = agent();
                let mut i = t;
                while started.elapsed() < period {
                    let (status, body) = get(&agent, &format!("{base}{}", routes[i % 3]));
                    i += 1;
                    match status {
                        200 => answered.fetch_add(1, Ordering::Relaxed),
                        s if s >= 500 => {
                            eprintln!("cheap route answered {s}: {body}");
                            server_errors.fetch_add(1, Ordering::Relaxed)
                        }
                        s => panic!("cheap route answered {s}: {body}"),
                    };
                }
            });
        }
    });
    Cheap {
        per_second: answered.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
        server_errors: server_errors.load(Ordering::Relaxed),
    }
}

/// What the deep pagers got, and the switch that pauses them between measured periods.
#[derive(Default)]
struct Pagers {
    paused: AtomicBool,
    in_flight: AtomicU64,
    pages: AtomicU64,
    deep_offsets_refused: AtomicU64,
    /// 503s naming the expensive queries' limit: load shed from the expensive routes.
    shed: AtomicU64,
    unexpected: AtomicU64,
}

/// One deep pager: walks an hour of the deep GPU's window (36,000 points) by cursor, 1,000
/// points a page, over and over; its first request and every tenth after asks for an offset
/// far into the window (refused, pointing at the cursor), and every tenth the deepest offset
/// allowed (answered).
fn page_deep(base: &str, stop: &AtomicBool, seen: &Pagers) {
    let agent = agent();
    let window = format!(
        "{base}/api/v1/gpus/{DEEP_GPU}/telemetry?limit=1000\
         &start_time=2025-07-18T00:00:00Z&end_time=2025-07-18T01:00:00Z"
    );
    let mut cursor: Option<String> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if seen.paused.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let url = match (n % 10, &cursor) {
            (0, _) => format!("{window}&offset=3000000"),
            (5, _) => format!("{window}&offset=10000"),
            (_, Some(c)) => format!("{window}&cursor={c}"),
            (_, None) => window.clone(),
        };
        n += 1;
        seen.in_flight.fetch_add(1, Ordering::SeqCst);
        let (status, body) = get(&agent, &url);
        seen.in_flight.fetch_sub(1, Ordering::SeqCst);
        match status {
            200 => {
                seen.pages.fetch_add(1, Ordering::Relaxed);
                if !url.contains("offset=") {
                    cursor = cursor_of(&body);
                }
            }
            400 if url.ends_with("offset=3000000") && body.contains("cursor") => {
                seen.deep_offsets_refused.fetch_add(1, Ordering::Relaxed);
            }
            503 if body.contains("too many expensive queries") => {
                seen.shed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                eprintln!("deep pager: {status} for {url}: {body:.300}");
                seen.unexpected.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[test]
fn deep_paging_by_eight_clients_leaves_cheap_routes_their_throughput() {
    let f = Fixture::start();
    seed_deep_gpu(&mut f.pg.connect());
    // A fixed pool, so the test means the same on any machine, and one permit for expensive
    // queries: on a 2-core machine that keeps them to about one core's worth of the
    // database's and the API's CPU (what the permits bound is connections; the CPU an
    // expensive query burns is the rest of the story).
    let (_api, base) = start_api_with(
        &f.pg,
        &[
            ("API_DB_POOL_SIZE", "4"),
            ("API_DB_EXPENSIVE_CONCURRENCY", "1"),
        ],
    );
    let cheap_threads = 4;
    let period = Duration::from_millis(1500);
    // Warm the pool and the statement caches.
    measure_cheap(&base, cheap_threads, Duration::from_millis(500));

    let stop = AtomicBool::new(false);
    let seen = Pagers::default();
    // Periods with and without the pagers, interleaved, so that load from elsewhere on the
    // machine (other tests, builds) falls on both alike; the reference is of this run.
    let (mut unloaded, mut abused) = (Vec::new(), Vec::new());
    let mut pages_while_measured = 0;
    std::thread::scope(|scope| {
        seen.paused.store(true, Ordering::SeqCst);
        for _ in 0..8 {
            scope.spawn(|| page_deep(&base, &stop, &seen));
        }
        for _ in 0..3 {
            seen.paused.store(true, Ordering::SeqCst);
            wait_until(Duration::from_secs(60), "the pagers to pause", || {
                seen.in_flight.load(Ordering::SeqCst) == 0
            });
            unloaded.push(measure_cheap(&base, cheap_threads, period));

            let before = seen.pages.load(Ordering::SeqCst);
            seen.paused.store(false, Ordering::SeqCst);
            wait_until(Duration::from_secs(60), "the pagers to get going", || {
                seen.pages.load(Ordering::SeqCst) >= before + 2
            });
            let before = seen.pages.load(Ordering::SeqCst);
            abused.push(measure_cheap(&base, cheap_threads, period));
            pages_while_measured += seen.pages.load(Ordering::SeqCst) - before;
        }
        stop.store(true, Ordering::SeqCst);
    });

    let rate = |periods: &[Cheap]| {
        periods.iter().map(|c| c.per_second).sum::<f64>() / periods.len() as f64
    };
    let errors = |periods: &[Cheap]| periods.iter().map(|c| c.server_errors).sum::<u64>();
    let ratio = rate(&abused) / rate(&unloaded);
    eprintln!(
        "cheap routes: {:.0} req/s unloaded, {:.0} req/s under 8 deep pagers ({:.0} % kept); \
         pagers: {pages_while_measured} pages of 1,000 points meanwhile, {} deep offsets \
         refused, {} shed (503)",
        rate(&unloaded),
        rate(&abused),
        ratio * 100.0,
        seen.deep_offsets_refused.load(Ordering::Relaxed),
        seen.shed.load(Ordering::Relaxed),
    );
    assert_eq!(
        (errors(&unloaded), errors(&abused)),
        (0, 0),
        "no 5xx on cheap routes"
    );
    // Measured here: 62-70 % kept (139 % once, under other load); with the expensive-query
    // permits removed, 0.4 %. A third is far from both, so a busy CI runner cannot fail it
    // while a lost limit still does.
    assert!(
        ratio >= 1.0 / 3.0,
        "cheap routes kept {:.0} % of their throughput under deep paging (want >= 33 %)",
        ratio * 100.0
    );
    assert!(
        pages_while_measured > 0,
        "the pagers were served too, not shut out"
    );
    assert!(seen.deep_offsets_refused.load(Ordering::Relaxed) > 0);
    assert_eq!(seen.unexpected.load(Ordering::Relaxed), 0);
}

#[test]
fn an_offset_beyond_the_bound_is_a_400_pointing_at_the_cursor() {
    let f = Fixture::start();
    let at_bound = f.get(&format!(
        "/api/v1/gpus/{GPU_A}/telemetry?offset={}",
        api::params::MAX_OFFSET
    ));
    assert_eq!(at_bound.status, 200, "{}", at_bound.body);
    let detail = f
        .get(&format!("/api/v1/gpus/{GPU_A}/telemetry?offset=3000000"))
        .problem_detail(400);
    assert!(
        detail.starts_with("offset: must be at most 10000"),
        "{detail}"
    );
    assert!(
        detail.contains("paging.next") && detail.contains("cursor"),
        "{detail}"
    );
}

#[test]
fn a_statement_past_the_statement_timeout_is_cancelled_and_answered_503_naming_it() {
    let f = Fixture::start();
    let (api, base) = start_api_with(&f.pg, &[("API_STATEMENT_TIMEOUT_MS", "300")]);
    let telemetry = format!("{base}/api/v1/gpus/{GPU_A}/telemetry?limit=5");
    assert_eq!(request("GET", &telemetry).status, 200);

    // Another session holds the points: every statement reading them waits, past the timeout.
    let mut locker = f.pg.connect();
    let mut lock = locker.transaction().expect("begin");
    lock.batch_execute("LOCK TABLE points IN ACCESS EXCLUSIVE MODE")
        .expect("lock the points");

    let started = Instant::now();
    let timed_out = request("GET", &telemetry);
    let detail = timed_out.problem_detail(503);
    assert!(
        detail.starts_with("statement timeout: the query ran longer than 300 ms"),
        "{detail}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cancelled by the timeout, not by the lock's end"
    );
    let step = request(
        "GET",
        &format!(
            "{base}/api/v1/gpus/{GPU_A}/telemetry?step=15s&start_time={}&end_time={}",
            at(0).timestamp(),
            at(60).timestamp()
        ),
    )
    .problem_detail(503);
    assert!(step.starts_with("statement timeout:"), "{step}");
    let promql = request(
        "GET",
        &format!(
            "{base}/prometheus/api/v1/query?query={UTIL}&time={}",
            at(10).timestamp()
        ),
    );
    assert_eq!(promql.status, 503, "{}", promql.body);
    let promql = promql.json();
    assert_eq!(promql["errorType"], "timeout");
    assert!(
        promql["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("statement timeout:")),
        "{promql}"
    );
    // Routes that do not read the points still answer meanwhile.
    assert_eq!(request("GET", &format!("{base}/api/v1/gpus")).status, 200);

    lock.rollback().expect("release the lock");
    assert_eq!(
        request("GET", &telemetry).status,
        200,
        "the cancelled connections serve again"
    );
    let metrics = request("GET", &format!("{base}/metrics")).body;
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("api_db_statement_timeouts_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok());
    assert_eq!(counted, Some(3.0), "{metrics}");
    api.scan_for_panics();
}

/// `s` with NUL characters, percent-encoded for a query string or a path segment.
fn encoded(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn a_nul_in_any_path_or_query_parameter_is_a_400_or_404_never_a_500() {
    let f = Fixture::start();
    let telemetry = format!("/api/v1/gpus/{GPU_A}/telemetry");
    let mut cases: Vec<(String, u16)> = vec![
        // Path segments: no such GPU or host can exist.
        ("/api/v1/gpus/%00/telemetry".into(), 404),
        (format!("/api/v1/gpus/{GPU_A}%00/telemetry"), 404),
        (format!("/api/v1/gpus/{GPU_A}%00/telemetry?step=1m"), 404),
        ("/api/v1/hosts/host-a%00/gpus".into(), 404),
    ];
    // Every query parameter of every REST route that reads one.
    for (path, names) in [
        (
            telemetry.as_str(),
            &[
                "metric",
                "start_time",
                "end_time",
                "step",
                "agg",
                "limit",
                "offset",
                "cursor",
            ][..],
        ),
        (
            "/api/v1/gpus",
            &["hostname", "model", "namespace", "pod"][..],
        ),
        (
            "/api/v1/hosts/host-a/gpus",
            &["model", "namespace", "pod"][..],
        ),
        ("/api/v1/latest", &["metric", "hostname"][..]),
        ("/api/v1/stats", &["x"][..]),
        ("/api/v1/pipeline", &["x"][..]),
        ("/api/v1/hosts", &["x"][..]),
    ] {
        for name in names {
            cases.push((format!("{path}?{name}={}", encoded("a\0b")), 400));
            cases.push((format!("{path}?{}=1", encoded("a\0")), 400));
        }
    }
    cases.push((format!("{telemetry}?metric={UTIL}&metric=%00"), 400));
    for (path, status) in &cases {
        let reply = f.get(path);
        assert_eq!(reply.status, *status, "{path}: {}", reply.body);
        assert_eq!(reply.content_type, "application/problem+json", "{path}");
        if *status == 400 {
            assert!(reply.body.contains("NUL"), "{path}: {}", reply.body);
        }
    }
    // The exports read the window through another path: still a 404.
    for accept in ["text/csv", "application/x-ndjson"] {
        let reply = ureq::get(&format!("{}/api/v1/gpus/%00/telemetry", f.base))
            .set("Accept", accept)
            .call();
        assert!(
            matches!(reply, Err(ureq::Error::Status(404, _))),
            "{accept}: {reply:?}"
        );
    }

    // The Prometheus API: raw in any parameter, and escaped inside PromQL strings.
    let prometheus: Vec<String> = [
        ("query", "up\0"),
        ("query", &format!("{UTIL}{{gpu=\"\\x00\"}}")),
        ("query", &format!("{UTIL}{{gpu=~\"a\\u0000\"}}")),
        ("query", "{__name__=\"\\x00\"}"),
        ("query", &format!("{UTIL}{{gpu!=\"\\x00\"}}")),
        ("time", "1\0"),
        ("timeout", "\0"),
    ]
    .iter()
    .map(|(name, value)| format!("/prometheus/api/v1/query?{name}={}", encoded(value)))
    .chain([
        format!(
            "/prometheus/api/v1/series?match[]={}",
            encoded("{__name__=\"a\\x00\"}")
        ),
        format!(
            "/prometheus/api/v1/label/gpu/values?match[]={}",
            encoded(&format!("{UTIL}{{Hostname=\"\\x00\"}}"))
        ),
        "/prometheus/api/v1/label/%00/values".to_string(),
        format!(
            "/prometheus/api/v1/query_range?query={}&start=0&end=60&step=15",
            encoded(&format!("rate({UTIL}{{gpu=\"\\x00\"}}[5m])"))
        ),
        format!(
            "/prometheus/api/v1/labels?match[]={}",
            encoded("{a=\"\0\"}")
        ),
    ])
    .collect();
    for path in &prometheus {
        let reply = f.get(path);
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        assert_eq!(reply.json()["errorType"], "bad_data", "{path}");
    }
    f.api.scan_for_panics();
}

#[test]
fn with_the_database_down_every_request_answers_503_within_one_db_timeout() {
    let f = Fixture::start();
    let timeout = Duration::from_millis(1000);
    let (api, base) = start_api_with(
        &f.pg,
        &[("API_DB_TIMEOUT_MS", "1000"), ("API_DB_POOL_SIZE", "2")],
    );
    assert_eq!(request("GET", &format!("{base}/api/v1/gpus")).status, 200);
    f.pg.stop();

    // More clients than connections, arriving at every moment: each waits for a permit, then
    // for the pool, and both waits must fit in the one timeout.
    let routes = [
        "/api/v1/gpus".to_string(),
        format!("/api/v1/gpus/{GPU_A}/telemetry"),
        "/api/v1/stats".to_string(),
        format!("/prometheus/api/v1/query?query={UTIL}"),
    ];
    let started = Instant::now();
    let answers: Vec<(u16, Duration, String)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (base, routes) = (&base, &routes);
                scope.spawn(move || {
                    let agent = agent();
                    let mut out = Vec::new();
                    // Staggered starts, so permits change hands at every moment.
                    std::thread::sleep(Duration::from_millis(t * 120));
                    let mut i = t as usize;
                    while started.elapsed() < Duration::from_secs(4) {
                        let route = &routes[i % routes.len()];
                        i += 1;
                        let asked = Instant::now();
                        let (status, _) = get(&agent, &format!("{base}{route}"));
                        out.push((status, asked.elapsed(), route.clone()));
                    }
                    out
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("a client thread"))
            .collect()
    });
    let slowest = answers
        .iter()
        .max_by_key(|(_, elapsed, _)| *elapsed)
        .expect("answers");
    eprintln!(
        "{} requests with the database down; slowest {:?} ({})",
        answers.len(),
        slowest.1,
        slowest.2
    );
    for (status, _, route) in &answers {
        assert_eq!(*status, 503, "{route}");
    }
    // One timeout, plus room for a loaded machine; two timeouts (the bug) would not fit.
    assert!(
        slowest.1 < timeout + Duration::from_millis(450),
        "slowest 503 took {:?} ({}), more than one --db-timeout-ms of {timeout:?}",
        slowest.1,
        slowest.2
    );
    api.scan_for_panics();
}
