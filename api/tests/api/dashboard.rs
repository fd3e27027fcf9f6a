//! The dashboard at `/ui` in a real browser (headless Chromium, Debian package `chromium`),
//! against the real API over a seeded PostgreSQL: the fleet grid, a GPU's charts (a decoded
//! screenshot, not only the DOM), the pipeline's health, an empty fleet and the API's errors
//! shown in the page.
//!
//! Chromium runs with no proxy and no background networking; the page must load nothing
//! from anywhere but the API, and nothing may reach the console (the page reports its own
//! failures in the DOM; `--enable-logging=stderr` prints every console message as a
//! `CONSOLE` line, the browser's own "Failed to load resource" ones included).
//!
//! Skipped, with a message saying so, only when no Chromium is installed and REQUIRE_TOOLS is
//! not set.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use store::write::{Record, Window, Writer};
use store::{Labels, Point};

use crate::chromium::{browser_or_skip, load, Output};
use crate::harness::*;

const POWER: &str = "DCGM_FI_DEV_POWER_USAGE";
/// Two GPUs on `host-live` with the last 30 minutes of TEMP, POWER and UTIL, one point every
/// 15 s, so that relative windows (`-1h`) hold them.
const GPU_D: &str = "GPU-dddddddd-0000-0000-0000-000000000004";
const GPU_E: &str = "GPU-eeeeeeee-0000-0000-0000-000000000005";
const LIVE_HOST: &str = "host-live";
const LIVE_POINTS_PER_SERIES: i64 = 120;
/// The newest TEMP of GPU D and E (what the fleet view shows by default).
const LATEST_TEMP: [(&str, f64, &str); 2] = [(GPU_D, 61.0, "61°C"), (GPU_E, 47.0, "47°C")];
/// Every GPU the dashboard must show: the harness's three and the two live ones.
const ALL_GPUS: [&str; 5] = [GPU_A, GPU_B, GPU_C, GPU_D, GPU_E];

/// Text as the DOM serialiser writes it in a text node.
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

// ------------------------------------------------------------------------------------------
// Data

/// The live GPUs' recent points, written by the collector's write path, newest at `now`.
fn seed_live(client: &mut postgres::Client) -> DateTime<Utc> {
    let now = Utc::now();
    let mut records = Vec::new();
    let mut offset = 10_000;
    for (index, (gpu, latest_temp, _)) in LATEST_TEMP.iter().enumerate() {
        for i in 0..LIVE_POINTS_PER_SERIES {
            let ts = now - chrono::Duration::seconds(15 * (LIVE_POINTS_PER_SERIES - 1 - i));
            let x = i as f64 / 8.0 + index as f64;
            let last = i == LIVE_POINTS_PER_SERIES - 1;
            let temp = if last {
                *latest_temp
            } else {
                50.0 + 10.0 * x.sin()
            };
            for (metric, value) in [
                (TEMP, temp),
                (POWER, 250.0 + 80.0 * (x * 0.7).cos()),
                (UTIL, ((i * 7 + index as i64 * 13) % 100) as f64),
            ] {
                offset += 1;
                records.push(live_point(gpu, index as i32, ts, metric, value, offset));
            }
        }
    }
    let batch: Vec<&Record> = records.iter().collect();
    let writer = Writer::new(Window::default());
    let (written, rejected) = writer
        .write_batch(client, &batch)
        .expect("write the live points");
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(written, records.len() as u64);
    now
}

fn live_point(
    gpu: &str,
    index: i32,
    ts: DateTime<Utc>,
    metric: &str,
    value: f64,
    offset: i64,
) -> Record {
    Record {
        partition: 2,
        offset,
        point: Point {
            ts,
            source_ts: Some(ts),
            metric: Cow::Owned(metric.to_string()),
            gpu_uuid: Cow::Owned(gpu.to_string()),
            gpu_index: index,
            device: Cow::Owned(format!("nvidia{index}")),
            model: Cow::Borrowed("NVIDIA H100 80GB HBM3"),
            hostname: Cow::Borrowed(LIVE_HOST),
            container: None,
            pod: None,
            namespace: None,
            value,
            labels: Labels(vec![]),
        },
    }
}

/// Two partitions' committed offsets of a collector group, and one dead letter.
fn seed_pipeline(client: &mut postgres::Client) {
    let mut tx = client.transaction().expect("begin");
    store::offsets::lock(&mut tx, "collectors", "telemetry", &[0, 1]).expect("lock offsets");
    let offsets = BTreeMap::from([(0, 4_321), (1, 8_765)]);
    store::offsets::store(&mut tx, "collectors", "telemetry", &offsets).expect("store offsets");
    let dead = store::offsets::DeadLetter {
        partition: 1,
        offset: 77,
        key: None,
        payload: "not,a,point".into(),
        reason: "bad CSV row".into(),
    };
    store::offsets::insert_dead_letters(&mut tx, "telemetry", &[&dead]).expect("dead letter");
    tx.commit().expect("commit");
}

/// The harness's fixture plus the live GPUs (and, when asked, the pipeline's bookkeeping).
fn live_fixture(pipeline: bool) -> Fixture {
    let f = Fixture::start();
    let mut client = f.pg.connect();
    seed_live(&mut client);
    if pipeline {
        seed_pipeline(&mut client);
    }
    f
}

// ------------------------------------------------------------------------------------------
// Screenshots

/// With DASHBOARD_SCREENSHOT_DIR set, saves a screenshot of `url` there as `name`, for a
/// person to look at (`DASHBOARD_SCREENSHOT_DIR=/tmp cargo test -p api --test api dashboard`).
fn keep_screenshot(browser: &Path, url: &str, budget_ms: u32, name: &str) {
    if let Some(dir) = std::env::var_os("DASHBOARD_SCREENSHOT_DIR") {
        let shot = load(browser, url, budget_ms, Output::Screenshot);
        std::fs::write(PathBuf::from(dir).join(name), &shot.png).expect("save the screenshot");
    }
}

/// The pixels of a PNG as RGB triples, row-major, with the width.
fn decode_png(bytes: &[u8]) -> (Vec<[u8; 3]>, usize, usize) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("the PNG's pixels");
    let channels = info.color_type.samples();
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    (pixels, info.width as usize, info.height as usize)
}

/// In the rows `from_y..to_y`: how many pixels are clearly coloured (not white, grey or
/// black: the page's chrome and text are), and how many distinct colours there are.
fn colour_census(png: &[u8], from_y: usize, to_y: usize) -> (usize, usize) {
    let (pixels, width, height) = decode_png(png);
    let rows = from_y.min(height)..to_y.min(height);
    let mut chromatic = 0;
    let mut distinct = HashSet::new();
    for y in rows {
        for p in &pixels[y * width..(y + 1) * width] {
            distinct.insert(*p);
            let (max, min) = (p.iter().max().unwrap(), p.iter().min().unwrap());
            if max - min > 15 {
                chromatic += 1;
            }
        }
    }
    (chromatic, distinct.len())
}

// ------------------------------------------------------------------------------------------
// The tests

#[test]
fn the_fleet_view_shows_every_gpu_coloured_by_a_metric() {
    let Some(browser) = browser_or_skip("the_fleet_view_shows_every_gpu_coloured_by_a_metric")
    else {
        return;
    };
    let f = live_fixture(false);

    // The default view: the fleet, coloured by the GPU temperature.
    let page = load(&browser, &format!("{}/ui", f.base), 5000, Output::Dom);
    page.assert_no_errors();
    page.assert_no_api_errors();
    page.assert_same_origin(&f.base);
    assert!(page.dom.contains("data-view=\"fleet\""), "{}", page.dom);
    for host in ["host-a", "host-b", LIVE_HOST] {
        assert!(
            page.dom.contains(&format!("data-hostname=\"{host}\"")),
            "host {host} has no row:\n{}",
            page.dom
        );
    }
    for gpu in ALL_GPUS {
        let cell = page.element(&format!("data-uuid=\"{gpu}\""), "a");
        assert!(
            cell.contains(&format!("href=\"#/gpu/{gpu}\"")),
            "the cell of {gpu} does not link to its view: {cell}"
        );
    }
    assert!(page.dom.contains("5 GPUs"), "the summary counts them all");
    // The metric select offers every stored metric, the temperature chosen.
    let select = page.element("id=\"fleet-metric\"", "select");
    for metric in [TEMP, POWER, UTIL] {
        assert!(select.contains(&format!("value=\"{metric}\"")), "{select}");
    }
    // The live GPUs' cells show their newest temperature on a colour of the scale.
    for (gpu, value, shown) in LATEST_TEMP {
        let cell = page.element(&format!("data-uuid=\"{gpu}\""), "a");
        assert!(cell.contains(&format!("data-value=\"{value}\"")), "{cell}");
        assert!(cell.contains(shown), "{gpu} should show {shown}: {cell}");
        assert!(
            cell.contains("background: rgb("),
            "{gpu} is not coloured: {cell}"
        );
        assert!(!cell.contains("stale"), "{gpu}'s point is recent: {cell}");
    }
    // GPU C has no points, and GPU B no temperature: no value, no colour.
    for gpu in [GPU_B, GPU_C] {
        let cell = page.element(&format!("data-uuid=\"{gpu}\""), "a");
        assert!(cell.contains("class=\"cell nodata\""), "{cell}");
        assert!(!cell.contains("background:"), "{cell}");
    }
    // GPU A's temperature is from 2025-07-18: shown, but as stale.
    let cell = page.element(&format!("data-uuid=\"{GPU_A}\""), "a");
    assert!(cell.contains("stale") && cell.contains("1,049°C"), "{cell}");
    let legend = page.element("class=\"legend\"", "div");
    assert!(
        legend.contains("GPU_TEMP") && legend.contains("legend-bar"),
        "{legend}"
    );
    // The scale is the temperatures' usual 30-90 °C: the stale 1,049 °C does not stretch it.
    assert!(
        legend.contains(">30°C<") && legend.contains(">90°C<"),
        "{legend}"
    );

    keep_screenshot(
        &browser,
        &format!("{}/ui", f.base),
        5000,
        "dashboard-fleet.png",
    );

    // Another metric, chosen through the URL as the select does.
    let page = load(
        &browser,
        &format!("{}/ui#/?metric={UTIL}", f.base),
        5000,
        Output::Dom,
    );
    page.assert_no_errors();
    page.assert_no_api_errors();
    // GPU A's newest UTIL is 49 (second 49), GPU B's 54.
    for (gpu, shown) in [(GPU_A, "49%"), (GPU_B, "54%")] {
        let cell = page.element(&format!("data-uuid=\"{gpu}\""), "a");
        assert!(cell.contains(shown), "{gpu} should show {shown}: {cell}");
    }
    assert!(page.element("class=\"legend\"", "div").contains("GPU_UTIL"));

    // Every asset came from the API itself.
    let metrics = f.get("/metrics").body;
    assert!(
        metrics.contains("api_http_requests_total{route=\"/ui\",method=\"GET\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("api_http_requests_total{route=\"/ui\",method=\"GET\",status=\"404\"}"),
        "the page asked for an asset that is not embedded:\n{metrics}"
    );
}

#[test]
fn a_gpu_view_draws_a_chart_per_metric() {
    let Some(browser) = browser_or_skip("a_gpu_view_draws_a_chart_per_metric") else {
        return;
    };
    let f = live_fixture(false);
    let url = format!("{}/ui#/gpu/{GPU_D}", f.base);

    let page = load(&browser, &url, 5000, Output::Dom);
    page.assert_no_errors();
    page.assert_no_api_errors();
    page.assert_same_origin(&f.base);
    assert!(page.dom.contains("data-view=\"gpu\""), "{}", page.dom);
    // The GPU is described from the GPU list.
    let info = page.element("id=\"gpu-info\"", "p");
    assert!(info.contains(LIVE_HOST) && info.contains("GPU 0"), "{info}");
    // The defaults: temperature, power and utilisation, over the last hour, in 15 s steps.
    assert!(page.dom.contains("(auto: 15s)"), "{}", page.dom);
    let charts: Vec<&str> = page.dom.split("<figure class=\"chart").skip(1).collect();
    assert_eq!(
        charts.len(),
        3,
        "one chart per default metric:\n{}",
        page.dom
    );
    for (chart, metric) in charts.iter().zip([TEMP, POWER, UTIL]) {
        assert!(
            chart.contains(&format!("data-metric=\"{metric}\"")),
            "{metric}: {chart}"
        );
        assert!(
            chart.contains("class=\"uplot") && chart.contains("<canvas"),
            "{metric} has no uPlot canvas: {chart}"
        );
        assert!(
            !chart.contains("empty-chart"),
            "{metric} has no data: {chart}"
        );
    }
    let picker = page.element("id=\"gpu-metrics\"", "fieldset");
    assert_eq!(picker.matches("type=\"checkbox\"").count(), 3, "{picker}");

    // The charts are drawn: lots of coloured pixels (lines and fills) where they are.
    let shot = load(&browser, &url, 5000, Output::Screenshot);
    shot.assert_no_errors();
    if let Some(dir) = std::env::var_os("DASHBOARD_SCREENSHOT_DIR") {
        std::fs::write(PathBuf::from(dir).join("dashboard-gpu.png"), &shot.png).expect("save it");
    }
    let (chromatic, distinct) = colour_census(&shot.png, 250, 1100);
    assert!(
        chromatic > 50_000 && distinct > 100,
        "the chart area looks blank: {chromatic} coloured pixels, {distinct} colours"
    );

    // One metric over 6 hours in 1-minute steps, as chosen in the controls.
    let page = load(
        &browser,
        &format!("{url}?metrics={POWER}&range=6h&step=1m&agg=max"),
        5000,
        Output::Dom,
    );
    page.assert_no_errors();
    page.assert_no_api_errors();
    let charts: Vec<&str> = page.dom.split("<figure class=\"chart").skip(1).collect();
    assert_eq!(charts.len(), 1, "{}", page.dom);
    assert!(
        charts[0].contains(&format!("data-metric=\"{POWER}\"")) && charts[0].contains("<canvas")
    );
    assert!(charts[0].contains("max(POWER_USAGE)"), "{}", charts[0]);

    // A GPU without points in the window: a note, no chart, no error.
    let page = load(
        &browser,
        &format!("{}/ui#/gpu/{GPU_C}?metrics={TEMP}", f.base),
        5000,
        Output::Dom,
    );
    page.assert_no_errors();
    page.assert_no_api_errors();
    // (The census tells the two apart: the same page without a chart has next to no colour.)
    let blank = load(
        &browser,
        &format!("{}/ui#/gpu/{GPU_C}?metrics={TEMP}", f.base),
        5000,
        Output::Screenshot,
    );
    let (chromatic, _) = colour_census(&blank.png, 250, 1100);
    assert!(
        chromatic < 10_000,
        "a page without charts has {chromatic} coloured pixels"
    );
    assert!(
        page.dom.contains("empty-chart")
            && page
                .dom
                .contains(&format!("No {TEMP} points in the last 1h")),
        "{}",
        page.dom
    );
}

#[test]
fn the_pipeline_view_shows_ingest_lag_and_dead_letters() {
    let Some(browser) = browser_or_skip("the_pipeline_view_shows_ingest_lag_and_dead_letters")
    else {
        return;
    };
    let f = live_fixture(true);
    let pipeline = f.get("/api/v1/pipeline").json();
    let total = pipeline["points_total"].as_i64().expect("points_total");
    // 12 s of virtual time: three polls, 5 s apart, so the ingest rate is measured.
    let page = load(
        &browser,
        &format!("{}/ui#/pipeline", f.base),
        12_000,
        Output::Dom,
    );
    page.assert_no_errors();
    page.assert_no_api_errors();
    page.assert_same_origin(&f.base);
    assert!(page.dom.contains("data-view=\"pipeline\""), "{}", page.dom);
    let dom = &page.dom;
    let formatted_total = format_thousands(total);
    assert!(
        dom.contains(&formatted_total),
        "points_total {formatted_total}:\n{dom}"
    );
    // Nothing is being ingested: the rate is measured as 0.
    assert!(dom.contains("0 pts/s"), "{dom}");
    assert!(dom.contains("id=\"ingest-chart\""), "{dom}");
    // One row per partition of the group, with the committed offsets.
    let table = page.element("id=\"pipeline-consumers\"", "table");
    for (partition, offset) in [(0, "4,321"), (1, "8,765")] {
        assert!(
            table.contains(&format!("data-partition=\"{partition}\"")),
            "{table}"
        );
        assert!(table.contains(offset), "{table}");
    }
    assert!(table.contains("collectors") && table.contains("telemetry"));
    // This API has no broker to ask for end offsets: the lag is unknown, and the page says why.
    assert_eq!(pipeline["broker"], "not configured");
    assert!(dom.contains("broker not configured"), "{dom}");
    assert!(dom.contains("id=\"lag-note\""), "{dom}");
    // The dead letter, counted.
    assert!(dom.contains("Dead letters"), "{dom}");
    let dead = dom.split("Dead letters").nth(1).expect("the card");
    assert!(
        dead.starts_with("</div><div class=\"card-value\">1</div>"),
        "{dead}"
    );
    keep_screenshot(
        &browser,
        &format!("{}/ui#/pipeline", f.base),
        12_000,
        "dashboard-pipeline.png",
    );
    // And the points per metric.
    let per_metric = page.element("id=\"pipeline-metrics\"", "div");
    for metric in [TEMP, POWER, UTIL] {
        assert!(per_metric.contains(metric), "{per_metric}");
    }
}

#[test]
fn an_empty_fleet_and_api_errors_are_shown_in_the_page() {
    let Some(browser) = browser_or_skip("an_empty_fleet_and_api_errors_are_shown_in_the_page")
    else {
        return;
    };
    // A database with the schema and nothing else.
    let pg = testkit::Postgres::start();
    store::schema::migrate(&mut pg.connect()).expect("migrate");
    let (_api, base) = start_api(&pg);

    // An empty fleet is a state, not an error: a message, nothing on the console.
    let page = load(&browser, &format!("{base}/ui"), 5000, Output::Dom);
    page.assert_no_errors();
    page.assert_no_api_errors();
    assert!(
        page.dom.contains("No GPUs have reported telemetry yet."),
        "{}",
        page.dom
    );
    for view in ["#/pipeline", "#/gpu/GPU-nothing-yet"] {
        let page = load(&browser, &format!("{base}/ui{view}"), 5000, Output::Dom);
        page.assert_no_errors();
        page.assert_no_api_errors();
    }

    // An unknown GPU: the API's problem+json detail is shown in the page.
    let telemetry = "/api/v1/gpus/GPU-does-not-exist/telemetry?metric=DCGM_FI_DEV_GPU_TEMP&step=15s&agg=avg&start_time=-1h&end_time=now";
    let answer = request("GET", &format!("{base}{telemetry}"));
    assert!(answer.status >= 400, "{answer:?}");
    let detail = answer.problem_detail(answer.status);
    let page = load(
        &browser,
        &format!("{base}/ui#/gpu/GPU-does-not-exist?metrics={TEMP}"),
        5000,
        Output::Dom,
    );
    assert!(!page.dom.contains("data-js-error"), "{}", page.dom);
    let error = page.element("class=\"error api\"", "div");
    assert!(
        error.contains(&format!("data-status=\"{}\"", answer.status)),
        "{error}"
    );
    assert!(
        error.contains(&html_text(&detail)),
        "{detail} is not shown: {error}"
    );
    assert!(
        error.contains(&html_text(&format!("GET {telemetry}"))),
        "the failed call is named: {error}"
    );
    // The only console message is the browser's own note of the failed request.
    for line in &page.console {
        assert!(line.contains("Failed to load resource"), "{line}");
    }
}

/// 12345 -> "12,345", as the page formats counts.
fn format_thousands(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

// ------------------------------------------------------------------------------------------
// The Grafana dashboard's queries

/// The dashboard deploy/grafana ships (and the chart copies).
const GRAFANA_DASHBOARD: &str = include_str!("../../../deploy/grafana/dashboards/gpu-fleet.json");

/// Grafana's variables as Grafana substitutes them with "All" chosen and a 6-hour range.
fn grafana_substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "6h")
        .replace("$__interval", "15s")
        .replace("$Hostname", ".*")
        .replace("$gpu", ".*")
}

/// Every query of the dashboard: (where, expression with variables substituted, instant?).
fn grafana_queries() -> Vec<(String, String, bool)> {
    fn walk(panels: &[serde_json::Value], out: &mut Vec<(String, String, bool)>) {
        for panel in panels {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("every query has an expr");
                out.push((
                    format!("{:?} {}", panel["title"], target["refId"]),
                    grafana_substitute(expr),
                    target["instant"].as_bool() == Some(true),
                ));
            }
            if let Some(nested) = panel["panels"].as_array() {
                walk(nested, out);
            }
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(GRAFANA_DASHBOARD).expect("JSON");
    let mut out = Vec::new();
    walk(dashboard["panels"].as_array().expect("panels"), &mut out);
    out
}

fn prometheus_get(f: &Fixture, endpoint: &str, params: &[(&str, &str)]) -> serde_json::Value {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let reply = f.get(&format!("/prometheus/api/v1/{endpoint}?{query}"));
    assert_eq!(reply.status, 200, "{endpoint} {params:?}: {}", reply.body);
    let body = reply.json();
    assert_eq!(body["status"], "success", "{endpoint} {params:?}: {body}");
    body
}

#[test]
fn the_grafana_dashboard_queries_parse_and_run_on_the_api() {
    let queries = grafana_queries();
    assert!(queries.len() >= 20, "{queries:?}");
    // The API's own PromQL parser accepts every expression.
    for (at, expr, _) in &queries {
        if let Err(e) = promql_parser::parser::parse(expr) {
            panic!("{at}: {expr} does not parse: {e}");
        }
    }

    let f = live_fixture(false);
    let now = Utc::now().timestamp();
    let (start, end) = ((now - 3600).to_string(), now.to_string());
    for (at, expr, instant) in &queries {
        let body = if *instant {
            prometheus_get(&f, "query", &[("query", expr), ("time", &end)])
        } else {
            prometheus_get(
                &f,
                "query_range",
                &[
                    ("query", expr),
                    ("start", &start),
                    ("end", &end),
                    ("step", "60"),
                ],
            )
        };
        assert!(body["data"]["result"].is_array(), "{at}: {body}");
    }

    // What the panels show for the live GPUs: two GPUs report, on host-live.
    let gpus = prometheus_get(
        &f,
        "query",
        &[("query", "count(DCGM_FI_DEV_GPU_TEMP)"), ("time", &end)],
    );
    assert_eq!(gpus["data"]["result"][0]["value"][1], "2", "{gpus}");
    let hosts = prometheus_get(
        &f,
        "query",
        &[
            (
                "query",
                &grafana_substitute(
                    "avg by (Hostname) (DCGM_FI_DEV_GPU_TEMP{Hostname=~\"$Hostname\"})",
                ),
            ),
            ("time", &end),
        ],
    );
    assert_eq!(
        hosts["data"]["result"][0]["metric"]["Hostname"], LIVE_HOST,
        "{hosts}"
    );

    // The template variables: label_values(DCGM_FI_DEV_GPU_TEMP, Hostname) and the GPUs' UUIDs,
    // as Grafana asks for them (label values matching a selector, over the dashboard's range).
    let since = (now - 6 * 3600).to_string();
    let hostnames = prometheus_get(
        &f,
        "label/Hostname/values",
        &[
            ("match[]", "DCGM_FI_DEV_GPU_TEMP"),
            ("start", &since),
            ("end", &end),
        ],
    );
    assert_eq!(
        hostnames["data"],
        serde_json::json!([LIVE_HOST]),
        "{hostnames}"
    );
    let uuids = prometheus_get(
        &f,
        "label/UUID/values",
        &[
            ("match[]", "DCGM_FI_DEV_GPU_TEMP{Hostname=~\"host-live\"}"),
            ("start", &since),
            ("end", &end),
        ],
    );
    assert_eq!(uuids["data"], serde_json::json!([GPU_D, GPU_E]), "{uuids}");
}
