//! The database goes away and comes back: the API answers 503 with a short reason meanwhile,
//! and serves again by itself, without a restart.

use std::time::{Duration, Instant};

use testkit::wait_until;

use crate::harness::*;

#[test]
fn the_api_survives_a_database_restart() {
    let mut f = Fixture::start();
    assert_eq!(
        f.get("/api/v1/gpus").status,
        200,
        "pool warm before the outage"
    );
    let pid = f.api.pid();

    f.pg.stop();
    let started = Instant::now();
    let down = f.get("/api/v1/gpus");
    assert_eq!(
        down.problem_detail(503),
        "the database is unreachable; retry later"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "503 comes after the short pool timeout"
    );
    assert_eq!(
        f.get(&format!("/api/v1/gpus/{GPU_A}/telemetry")).status,
        503
    );
    let health = f.get("/health");
    assert_eq!(
        (health.status, health.json()["database"].as_str()),
        (503, Some("unreachable"))
    );
    assert_eq!(f.get("/readyz").status, 503);
    assert_eq!(
        f.get("/healthz").status,
        200,
        "alive while the database is down"
    );

    f.pg.start_again();
    wait_until(Duration::from_secs(30), "the API to serve again", || {
        f.get("/api/v1/gpus").status == 200
    });
    let page = f
        .get(&format!("/api/v1/gpus/{GPU_A}/telemetry?limit=3"))
        .json();
    assert_eq!(page["points"].as_array().map(Vec::len), Some(3));
    assert_eq!(f.get("/health").status, 200);
    assert_eq!(f.api.pid(), pid);
    assert!(f.api.is_running(), "the same process served throughout");
    f.api.scan_for_panics();
    assert!(
        f.get("/metrics").body.contains("api_db_unavailable_total"),
        "outage counted"
    );
}

#[test]
fn the_api_starts_while_the_database_is_down_and_stops_cleanly_on_sigterm() {
    let f = Fixture::start();
    f.pg.stop();
    let (mut api, base) = start_api(&f.pg);
    assert_eq!(request("GET", &format!("{base}/api/v1/stats")).status, 503);
    f.pg.start_again();
    wait_until(
        Duration::from_secs(30),
        "the API to reach the database",
        || request("GET", &format!("{base}/api/v1/stats")).status == 200,
    );
    let status = api
        .terminate(Duration::from_secs(15))
        .expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        api.log().contains("all connections closed"),
        "drained: {}",
        api.log()
    );
    api.scan_for_panics();
}
