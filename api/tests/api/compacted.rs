//! Days of points compacted into chunks read back through the API exactly as before: same
//! points, same order (ties by arrival), same pages.

use serde_json::Value;

use crate::harness::*;

/// Every page of a window, following `paging.next` from `first`.
fn all_pages(f: &Fixture, first: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(path) = next {
        let reply = f.get(&path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        let page = reply.json();
        next = page["paging"]["next"].as_str().map(str::to_string);
        pages.push(page);
        assert!(pages.len() < 200, "paging does not end");
    }
    pages
}

#[test]
fn compacted_days_read_back_exactly_as_before_compaction() {
    let f = Fixture::start();
    let windows = [
        format!("/api/v1/gpus/{GPU_A}/telemetry?limit=7"),
        format!("/api/v1/gpus/{GPU_A}/telemetry?limit=3&metric={UTIL}"),
        format!(
            "/api/v1/gpus/{GPU_A}/telemetry?limit=5&start_time={}&end_time={}",
            iso(at(8)),
            iso(at(12))
        ),
        format!("/api/v1/gpus/{GPU_A}/telemetry?limit=4&offset=90"),
        format!("/api/v1/gpus/{GPU_B}/telemetry"),
    ];
    let before: Vec<Vec<Value>> = windows.iter().map(|w| all_pages(&f, w)).collect();
    let points: usize = before[0]
        .iter()
        .map(|p| p["points"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(points, GPU_A_POINTS, "the whole window before compaction");

    let mut client = f.pg.connect();
    let compacted =
        store::compact::compact_older_than(&mut client, chrono::Utc::now()).expect("compact");
    assert!(!compacted.is_empty(), "the seeded day is compacted");
    let narrow: i64 = client
        .query_one("SELECT count(*) FROM points", &[])
        .expect("count")
        .get(0);
    assert_eq!(narrow, 0, "no point is left in row form");

    let after: Vec<Vec<Value>> = windows.iter().map(|w| all_pages(&f, w)).collect();
    for ((window, b), a) in windows.iter().zip(&before).zip(&after) {
        assert_eq!(a, b, "{window} reads the same after compaction");
    }
    let stats = f.get("/api/v1/stats").json();
    assert_eq!(stats["points"].as_i64(), Some(TOTAL_POINTS));
}
