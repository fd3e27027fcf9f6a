//! Each endpoint against known points: contents, time order, inclusive bounds, paging.

use std::collections::HashSet;

use serde_json::Value;

use crate::harness::*;

fn points(page: &Value) -> Vec<Value> {
    page["points"].as_array().expect("points").clone()
}

fn times(points: &[Value]) -> Vec<String> {
    points
        .iter()
        .map(|p| p["ts"].as_str().expect("ts").to_string())
        .collect()
}

fn telemetry_path(gpu: &str, query: &str) -> String {
    format!("/api/v1/gpus/{gpu}/telemetry?{query}")
}

#[test]
fn every_endpoint_answers_from_the_seeded_database() {
    let f = Fixture::start();

    let health = f.get("/health");
    assert_eq!(
        (health.status, health.json()),
        (200, serde_json::json!({"status": "ok", "database": "ok"}))
    );

    let gpus = f.get("/api/v1/gpus").json();
    assert_eq!(gpus["count"], 3);
    let order: Vec<&str> = gpus["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(order, [GPU_A, GPU_B, GPU_C], "by hostname, then index");
    let a = &gpus["gpus"][0];
    assert_eq!(
        (
            a["hostname"].as_str(),
            a["gpu_index"].as_i64(),
            a["device"].as_str()
        ),
        (Some("host-a"), Some(0), Some("nvidia0"))
    );
    assert_eq!(a["first_seen"], iso(at(0)));
    assert_eq!(a["last_seen"], iso(at(49)));

    let stats = f.get("/api/v1/stats").json();
    assert_eq!(stats["points"], TOTAL_POINTS);
    assert_eq!(
        (
            stats["gpus"].as_i64(),
            stats["hosts"].as_i64(),
            stats["metrics"].as_i64()
        ),
        (Some(3), Some(2), Some(2))
    );
    assert_eq!(
        stats["points_per_metric"],
        serde_json::json!({UTIL: 56, TEMP: 50})
    );
    assert_eq!(stats["first_ts"], iso(at(0)));
    assert_eq!(stats["last_ts"], iso(at(240)));

    assert_eq!(f.get("/healthz").status, 200);
    assert_eq!(f.get("/readyz").body, "ready\n");
    let docs = f.get("/docs");
    assert_eq!(docs.status, 200);
    assert!(docs.content_type.starts_with("text/html") && docs.body.contains("swagger-ui"));
    let bundle = f.get("/docs/swagger-ui-bundle.js");
    assert!(
        bundle.status == 200 && bundle.body.len() > 100_000,
        "the Swagger UI bundle is served"
    );
    let spec = f.get("/openapi.json");
    assert_eq!(spec.content_type, "application/json");
    assert_eq!(spec.body, api::openapi::spec_json());

    let metrics = f.get("/metrics");
    assert!(metrics.content_type.starts_with("text/plain"));
    for needle in [
        "# HELP api_http_requests_total ",
        "# TYPE api_http_request_duration_seconds histogram",
        "api_http_requests_total{route=\"/api/v1/stats\",method=\"GET\",status=\"200\"} 1",
        "# HELP api_db_pool_connections ",
    ] {
        assert!(
            metrics.body.contains(needle),
            "/metrics lacks {needle:?}:\n{}",
            metrics.body
        );
    }

    promtool_accepts(&metrics.body);

    let head = request("HEAD", &format!("{}/api/v1/gpus", f.base));
    assert_eq!(
        (head.status, head.body.as_str()),
        (200, ""),
        "HEAD is GET without the body"
    );
    f.api.scan_for_panics();
}

#[test]
fn a_window_is_ordered_by_time_with_both_bounds_inclusive() {
    let f = Fixture::start();

    // Everything: 101 points in (ts, arrival) order, although inserted in reverse.
    let all = points(&f.get(&telemetry_path(GPU_A, "limit=1000")).json());
    assert_eq!(all.len(), GPU_A_POINTS);
    let ts = times(&all);
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "ordered by ts");
    let tie: Vec<f64> = all
        .iter()
        .filter(|p| p["ts"] == iso(at(10)))
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!(
        tie,
        [10.0, 1010.0, 10.5],
        "a tie on ts is broken by arrival order"
    );

    // [5 s, 9 s]: the points exactly at both bounds are in, their neighbours out.
    let query = format!("start_time={}&end_time={}", iso(at(5)), iso(at(9)));
    let page = f.get(&telemetry_path(GPU_A, &query)).json();
    let window = points(&page);
    assert_eq!(window.len(), 10, "5 seconds x 2 metrics");
    assert_eq!(window.first().unwrap()["ts"], iso(at(5)));
    assert_eq!(window.last().unwrap()["ts"], iso(at(9)));
    assert_eq!(page["start_time"], iso(at(5)));
    assert_eq!(
        (
            page["paging"]["has_more"].as_bool(),
            page["paging"]["next"].is_null()
        ),
        (Some(false), true)
    );

    // The same window written with a +02:00 offset (encoded and bare `+`) is the same window.
    let local = |s: i64| {
        (at(s) + chrono::Duration::hours(2))
            .format("%Y-%m-%dT%H:%M:%S+02:00")
            .to_string()
    };
    for plus in ["%2B", "+"] {
        let q = format!(
            "start_time={}&end_time={}",
            local(5).replace('+', plus),
            local(9).replace('+', plus)
        );
        assert_eq!(
            points(&f.get(&telemetry_path(GPU_A, &q)).json()),
            window,
            "offset written as {plus}"
        );
    }

    // A window of one instant holds just that instant's points.
    let q = format!("start_time={0}&end_time={0}", iso(at(10)));
    assert_eq!(points(&f.get(&telemetry_path(GPU_A, &q)).json()).len(), 3);

    // The metric filter.
    let q = format!("metric={TEMP}&{query}");
    let temps = points(&f.get(&telemetry_path(GPU_A, &q)).json());
    assert_eq!(temps.len(), 5);
    assert!(temps.iter().all(|p| p["metric"] == TEMP));

    // A point's fields.
    let b = points(&f.get(&telemetry_path(GPU_B, "limit=1")).json());
    assert_eq!(b[0]["pod"], "trainer-0");
    assert!(b[0]["source_ts"].is_null());
    assert_eq!(b[0]["labels"]["DCGM_FI_DRIVER_VERSION"], "535.129.03");
    assert_eq!(
        points(&f.get(&telemetry_path(GPU_A, "limit=1")).json())[0]["source_ts"],
        iso(at(0) - chrono::Duration::milliseconds(250))
    );
}

#[test]
fn paging_through_a_window_returns_every_point_once() {
    let f = Fixture::start();
    let all = points(&f.get(&telemetry_path(GPU_A, "limit=1000")).json());

    let default = f.get(&telemetry_path(GPU_A, "")).json();
    assert_eq!(default["paging"]["limit"], 100, "default limit");
    assert_eq!(points(&default).len(), 100);
    assert_eq!(default["paging"]["has_more"], true);

    // Follow `next` with a page size that does not divide the window.
    let mut walked: Vec<Value> = Vec::new();
    let mut next = Some(telemetry_path(
        GPU_A,
        &format!("start_time={}&limit=7", iso(at(0))),
    ));
    let mut pages = 0;
    while let Some(path) = next {
        let page = f.get(&path).json();
        assert_eq!(
            page["paging"]["offset"].as_u64(),
            Some(0),
            "next pages by cursor"
        );
        walked.extend(points(&page));
        next = page["paging"]["next"].as_str().map(str::to_string);
        pages += 1;
        assert!(pages <= 20, "paging does not end");
    }
    assert_eq!(pages, GPU_A_POINTS.div_ceil(7));
    assert_eq!(walked, all, "every point once, in order");
    let distinct: HashSet<String> = walked
        .iter()
        .map(|p| format!("{}/{}/{}", p["ts"], p["metric"], p["value"]))
        .collect();
    assert_eq!(distinct.len(), GPU_A_POINTS);

    // Past the end: an empty last page.
    let beyond = f.get(&telemetry_path(GPU_A, "offset=500")).json();
    assert_eq!(
        (
            points(&beyond).len(),
            beyond["paging"]["has_more"].as_bool()
        ),
        (0, Some(false))
    );

    // A known GPU with nothing in the window: an empty page, not an error.
    let q = format!("start_time={}", iso(at(0)));
    let empty = f.get(&telemetry_path(GPU_C, &q));
    assert_eq!(empty.status, 200);
    assert_eq!(points(&empty.json()).len(), 0);
}

/// `promtool check metrics` (Debian package `prometheus`) accepts the exposition; skipped, with a
/// message, where promtool is not installed.
fn promtool_accepts(exposition: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        // CI installs promtool and sets REQUIRE_TOOLS, so there a missing promtool fails.
        assert!(
            std::env::var_os("REQUIRE_TOOLS").is_none(),
            "promtool not installed (apt-get install -y prometheus)"
        );
        eprintln!("SKIPPED promtool check: promtool not installed (apt-get install -y prometheus)");
        return;
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(exposition.as_bytes())
            .expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
