//! Each error case: its status, its problem+json body, and a message that names what is wrong
//! — and never anything internal.

use crate::harness::*;

/// Words that would mean SQL, driver or panic text leaked into a response.
const INTERNALS: [&str; 8] = [
    "SELECT",
    "points_series_idx",
    "series_key",
    "metric_day_totals",
    "postgres",
    "panicked",
    "src/",
    "db error",
];

fn assert_nothing_internal(body: &str) {
    for word in INTERNALS {
        assert!(!body.contains(word), "{word:?} leaked into {body}");
    }
}

#[test]
fn each_bad_request_is_answered_with_what_is_wrong() {
    let f = Fixture::start();
    let path = |q: &str| format!("/api/v1/gpus/{GPU_A}/telemetry?{q}");
    let cases: [(&str, &str); 15] = [
        ("start_time=yesterday", "start_time: not a time: give RFC 3339"),
        ("end_time=2025-07-18T25:00:00Z", "end_time: not a time"),
        ("start_time=2025-07-19T00:00:00Z&end_time=2025-07-18T00:00:00Z", "start_time: must not be after end_time"),
        ("limit=0", "limit: must be an integer between 1 and 1000, got \"0\""),
        ("limit=1001", "limit: must be an integer between 1 and 1000, got \"1001\""),
        ("limit=lots", "limit: must be an integer between 1 and 1000"),
        ("offset=-5", "offset: must be an integer of 0 or more, got \"-5\""),
        ("colour=red", "colour: unknown query parameter (accepted: start_time, end_time, metric, step, agg, limit, offset, cursor)"),
        ("limit=5&limit=6", "limit: given more than once"),
        ("step=1s&start_time=2025-07-01T00:00:00Z&end_time=2025-07-18T00:00:00Z", "step: 1s over this window makes 1468801 buckets per metric, more than the 11000 allowed: raise step to at least 134s"),
        ("step=fast", "step: must be a duration"),
        ("step=1m&agg=median", "agg: must be one of avg, min, max, sum, count, first, last"),
        ("cursor=not-a-cursor", "cursor: not a cursor of this API"),
        ("metric=", "metric: must not be empty"),
        ("step=1m&cursor=1.1", "cursor: not used with step"),
    ];
    for (query, expected) in cases {
        let reply = f.get(&path(query));
        let detail = reply.problem_detail(400);
        assert!(
            detail.starts_with(expected),
            "{query}: {detail:?} should start with {expected:?}"
        );
        assert_nothing_internal(&reply.body);
    }

    for path in ["/api/v1/hosts?host=a", "/api/v1/stats?metric=x"] {
        let detail = f.get(path).problem_detail(400);
        assert!(
            detail.ends_with(": unknown query parameter (this endpoint takes none)"),
            "{detail}"
        );
    }
    for (path, expected) in [
        (
            "/api/v1/gpus?host=a",
            "host: unknown query parameter (accepted: hostname, model, namespace, pod)",
        ),
        ("/api/v1/gpus?hostname=", "hostname: must not be empty"),
        ("/api/v1/gpus?pod=a&pod=b", "pod: given more than once"),
        (
            "/api/v1/hosts/h/gpus?hostname=x",
            "hostname: unknown query parameter (accepted: model, namespace, pod)",
        ),
        (
            "/api/v1/latest?gpu=x",
            "gpu: unknown query parameter (accepted: metric, hostname)",
        ),
    ] {
        assert_eq!(f.get(path).problem_detail(400), expected);
    }
    assert_eq!(
        f.get("/api/v1/hosts/no-such-host/gpus").problem_detail(404),
        "no host named \"no-such-host\""
    );

    let unknown = f.get("/api/v1/gpus/GPU-does-not-exist/telemetry");
    assert_eq!(
        unknown.problem_detail(404),
        "no GPU with id \"GPU-does-not-exist\""
    );
    // An unknown GPU is 404 also when parameters narrow the window.
    assert_eq!(
        f.get("/api/v1/gpus/nope/telemetry?metric=DCGM_FI_DEV_GPU_UTIL&offset=3")
            .status,
        404
    );

    // A hostile id is just an unknown GPU: parameters are bound, never spliced into SQL.
    let injection = f.get("/api/v1/gpus/x'%20OR%20'1'='1/telemetry");
    assert_eq!(injection.status, 404);
    assert_nothing_internal(&injection.body);
    f.api.scan_for_panics();
}

#[test]
fn wrong_methods_and_unknown_paths_are_problems_too() {
    let f = Fixture::start();
    for (method, path) in [
        ("POST", "/api/v1/gpus"),
        ("DELETE", "/api/v1/stats"),
        ("PUT", &format!("/api/v1/gpus/{GPU_A}/telemetry")),
    ] {
        let reply = request(method, &format!("{}{path}", f.base));
        let detail = reply.problem_detail(405);
        assert_eq!(reply.allow.as_deref(), Some("GET, HEAD"), "{method} {path}");
        assert!(detail.contains(method), "{detail}");
    }
    for path in [
        "/api/v1/gpu",
        "/api/v1/gpus/",
        "/api/v2/stats",
        "/docs/nothing.js",
    ] {
        let reply = f.get(path);
        assert_eq!(reply.problem_detail(404), format!("no resource at {path}"));
    }
}
