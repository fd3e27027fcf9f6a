//! The `/docs` page in a real browser (headless Chromium, Debian package `chromium`): the page
//! loads its scripts from the API itself, fetches the spec, and renders the endpoints.
//!
//! Skipped, with a message saying so, only when no Chromium is installed.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| {
            ["/usr/bin", "/usr/local/bin", "/snap/bin"].map(|dir| PathBuf::from(dir).join(name))
        })
        .find(|path| path.exists())
}

/// Runs Chromium with `--dump-dom` and returns the rendered DOM, killing it after a deadline.
fn dump_dom(browser: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let out_dir = tempfile::tempdir().expect("out dir");
    let out_path = out_dir.path().join("dom.html");
    let out = std::fs::File::create(&out_path).expect("dom file");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(&out_path).expect("read the DOM")
}

#[test]
fn the_docs_page_renders_every_endpoint_in_a_browser() {
    let Some(browser) = chromium() else {
        // CI installs Chromium and sets REQUIRE_TOOLS, so there a missing browser fails.
        assert!(
            std::env::var_os("REQUIRE_TOOLS").is_none(),
            "no Chromium found (apt-get install -y chromium)"
        );
        eprintln!("SKIPPED the_docs_page_renders_every_endpoint_in_a_browser: no Chromium found (apt-get install -y chromium)");
        return;
    };
    let f = Fixture::start();
    let dom = dump_dom(&browser, &format!("{}/docs", f.base));
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
