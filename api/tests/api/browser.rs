//! The `/docs` page in a real browser (headless Chromium, Debian package `chromium`): the page
//! loads its scripts from the API itself, fetches the spec, and renders the endpoints.
//!
//! Skipped, with a message saying so, only when no Chromium is installed.

use crate::chromium::{browser_or_skip, load, Output};
use crate::harness::*;

#[test]
fn the_docs_page_renders_every_endpoint_in_a_browser() {
    let Some(browser) = browser_or_skip("the_docs_page_renders_every_endpoint_in_a_browser") else {
        return;
    };
    let f = Fixture::start();
    let dom = load(&browser, &format!("{}/docs", f.base), 5000, Output::Dom).dom;
    assert!(
        dom.contains("GPU telemetry API"),
        "the spec's title is rendered:\n{dom}"
    );
    for path in [
        "/api/v1/gpus/{id}/telemetry",
        "/api/v1/gpus",
        "/api/v1/stats",
        "/health",
        "/metrics",
    ] {
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "{path} is not rendered:\n{dom}"
        );
    }
    // The page's assets came from the API (and nothing else: the machine has no internet).
    let metrics = f.get("/metrics").body;
    assert!(
        metrics.contains("api_http_requests_total{route=\"/docs\",method=\"GET\",status=\"200\"}")
    );
    assert!(
        metrics.contains(
            "api_http_requests_total{route=\"/openapi.json\",method=\"GET\",status=\"200\"} 1"
        ),
        "the page fetched the spec:\n{metrics}"
    );
}
