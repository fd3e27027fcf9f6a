//! The Prometheus-compatible API (`/prometheus`) against a real Prometheus 2.42 holding the
//! same samples: a deterministic set of GPUs, gauges and a counter with a reset, gaps longer
//! than the lookback, a day already compacted — loaded into PostgreSQL through the store's
//! writer and into Prometheus through `promtool tsdb create-blocks-from openmetrics`. A table
//! of PromQL expressions is asked of both, instant and range; the answers must agree (same
//! series, same times, values to 1e-9 relative). `promtool query` must read our API.
//!
//! Prometheus and promtool are external tools: missing, the tests say SKIPPED, or fail when
//! `REQUIRE_TOOLS` is set (as CI sets it).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use store::write::{Record, Window, Writer};
use store::{Labels, Point};
use testkit::{wait_until, Child, Postgres};

use crate::harness::start_api;

const TEMP: &str = "DCGM_FI_DEV_GPU_TEMP";
const POWER: &str = "DCGM_FI_DEV_POWER_USAGE";
const ENERGY: &str = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION";

/// The first sample: 21:00 on a fixed past day, so the data spans midnight and the first
/// day can be compacted.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 7, 17, 21, 0, 0)
        .single()
        .expect("valid time")
}

fn at(seconds: i64) -> DateTime<Utc> {
    start() + chrono::Duration::seconds(seconds)
}

/// Six hours of samples.
const SPAN: i64 = 6 * 3600;

/// One GPU of the data set.
struct Gpu {
    index: i32,
    host: &'static str,
    uuid: String,
    model: &'static str,
    pod: Option<&'static str>,
}

fn gpus() -> Vec<Gpu> {
    let layout: [(i32, &str, &str, Option<&str>); 5] = [
        (0, "host-a", "NVIDIA H100 80GB HBM3", None),
        (1, "host-a", "NVIDIA H100 80GB HBM3", None),
        (2, "host-a", "NVIDIA H100 80GB HBM3", None),
        (0, "host-b", "NVIDIA A100-SXM4-40GB", Some("trainer-0")),
        (1, "host-b", "NVIDIA A100-SXM4-40GB", None),
    ];
    layout
        .iter()
        .enumerate()
        .map(|(n, &(index, host, model, pod))| Gpu {
            index,
            host,
            uuid: format!("GPU-{n:08x}-1111-2222-3333-44445555666{n}"),
            model,
            pod,
        })
        .collect()
}

/// One sample: metric, GPU number, seconds after [`start`], value.
type Sample = (&'static str, usize, i64, f64);

/// The samples: temperature every 15 s, power every 30 s (7 s later), an energy counter
/// every 15 s with a reset on GPU 1; GPU 2 silent for 20 minutes from 23:00; GPU 4's
/// temperature stops at 01:30, GPU 3's pauses from 02:00 to 02:20. Values carry a per-GPU fraction so no two series tie.
fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    let gap = (2 * 3600)..(2 * 3600 + 1200);
    for g in 0..5usize {
        let gf = g as f64;
        let mut energy = 1000.0 * gf;
        for i in 0..(SPAN / 15) {
            let s = i * 15;
            if g == 2 && gap.contains(&s) {
                continue;
            }
            let ii = i as f64;
            // GPU 3's temperature pauses right after 02:00:00: exactly 5 minutes later, the
            // sample at 02:00:00 is still in the lookback (Prometheus 2.x's is inclusive).
            let paused = g == 3 && s > 5 * 3600 && s < 5 * 3600 + 1200;
            let stopped = g == 4 && s >= 4 * 3600 + 1800;
            if !(paused || stopped) {
                let temp = 40.0 + ((g as i64 * 7 + i * 13) % 37) as f64 + 0.25 * (i % 4) as f64;
                out.push((TEMP, g, s, temp + gf / 1000.0));
            }
            if i % 2 == 0 {
                let power = 100.0 + gf * 10.0 + ((i * 31 + g as i64 * 17) % 113) as f64 * 1.5;
                out.push((POWER, g, s + 7, power + gf / 1000.0));
            }
            energy += 200.0 + ((i * (g as i64 + 1)) % 50) as f64 + ii / 1000.0;
            if g == 1 && i == 700 {
                energy = 17.0;
            }
            out.push((ENERGY, g, s, energy));
        }
    }
    out
}

/// The labels a series has in Prometheus: exactly what the API's mapping must produce.
fn prometheus_labels(metric: &str, gpu: &Gpu) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = [
        ("__name__", metric.to_string()),
        ("DCGM_FI_DRIVER_VERSION", "535.129.03".to_string()),
        ("Hostname", gpu.host.to_string()),
        ("UUID", gpu.uuid.clone()),
        ("device", format!("nvidia{}", gpu.index)),
        ("gpu", gpu.index.to_string()),
        ("instance", format!("{}:9400", gpu.host)),
        ("job", "dcgm".to_string()),
        ("modelName", gpu.model.to_string()),
        (
            "pci_bus_id",
            format!("00000000:{:02X}:00.0", 0x18 + gpu.index),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(pod) = gpu.pod {
        for name in ["container", "pod", "namespace"] {
            labels.insert(name.to_string(), pod.to_string());
        }
    }
    labels
}

/// Loads the samples through the collector's writer (series, points, rollups, `gpus`), then
/// compacts the first day.
fn load_store(client: &mut postgres::Client) {
    let gpus = gpus();
    let records: Vec<Record> = samples()
        .into_iter()
        .enumerate()
        .map(|(n, (metric, g, s, value))| {
            let gpu = &gpus[g];
            let pod = gpu.pod.map(Cow::Borrowed);
            // The stored labels are the CSV's, which repeat some columns (as dcgm-exporter's do).
            let labels: Vec<(Cow<'static, str>, Cow<'static, str>)> =
                prometheus_labels(metric, gpu)
                    .into_iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "container" | "pod" | "namespace"))
                    .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
                    .collect();
            Record {
                partition: g as u32,
                offset: n as i64,
                point: Point {
                    ts: at(s),
                    source_ts: Some(at(s)),
                    metric: Cow::Borrowed(metric),
                    gpu_uuid: Cow::Owned(gpu.uuid.clone()),
                    gpu_index: gpu.index,
                    device: Cow::Owned(format!("nvidia{}", gpu.index)),
                    model: Cow::Borrowed(gpu.model),
                    hostname: Cow::Borrowed(gpu.host),
                    container: pod.clone(),
                    pod: pod.clone(),
                    namespace: pod,
                    value,
                    labels: Labels(labels),
                },
            }
        })
        .collect();
    let writer = Writer::new(Window::default());
    for batch in records.chunks(4000) {
        let batch: Vec<&Record> = batch.iter().collect();
        let (_, rejected) = writer.write_batch(client, &batch).expect("write a batch");
        assert!(rejected.is_empty(), "{rejected:?}");
    }
    let midnight = Utc
        .with_ymd_and_hms(2025, 7, 18, 0, 0, 0)
        .single()
        .expect("valid time");
    let compacted = store::compact::compact_older_than(client, midnight).expect("compact");
    assert!(!compacted.is_empty(), "the first day is compacted");
}

/// The same samples as OpenMetrics text, for `promtool tsdb create-blocks-from openmetrics`.
fn openmetrics() -> String {
    let gpus = gpus();
    let mut by_series: BTreeMap<(&str, usize), Vec<(i64, f64)>> = BTreeMap::new();
    for (metric, g, s, v) in samples() {
        by_series.entry((metric, g)).or_default().push((s, v));
    }
    let mut text = String::new();
    let mut family = "";
    for ((metric, g), points) in &by_series {
        if *metric != family {
            family = metric;
            let _ = writeln!(text, "# TYPE {metric} gauge");
        }
        let labels: Vec<String> = prometheus_labels(metric, &gpus[*g])
            .into_iter()
            .filter(|(k, _)| k != "__name__")
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        let labels = labels.join(",");
        for (s, v) in points {
            let _ = writeln!(text, "{metric}{{{labels}}} {v} {}", at(*s).timestamp());
        }
    }
    text.push_str("# EOF\n");
    text
}

/// Prometheus and promtool, or `None` (SKIPPED) when either is missing and not required.
fn tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        ["/usr/bin", "/usr/local/bin", "/bin"]
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|p| p.exists())
    };
    match (find("prometheus"), find("promtool")) {
        (Some(prometheus), Some(promtool)) => Some((prometheus, promtool)),
        _ => {
            assert!(
                std::env::var_os("REQUIRE_TOOLS").is_none(),
                "prometheus and promtool are required (apt-get install -y prometheus)"
            );
            eprintln!(
                "SKIPPED {test}: prometheus or promtool not found (apt-get install -y prometheus)"
            );
            None
        }
    }
}

/// A Prometheus serving the samples from TSDB blocks, and its base URL.
struct PrometheusServer {
    _child: Child,
    _dir: tempfile::TempDir,
    base: String,
}

fn start_prometheus(prometheus: &Path, promtool: &Path) -> PrometheusServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("samples.om");
    std::fs::write(&input, openmetrics()).expect("write the OpenMetrics file");
    let data = dir.path().join("data");
    let output = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .expect("run promtool");
    assert!(
        output.status.success(),
        "promtool create-blocks-from: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
    )
    .expect("write the config");
    let port = testkit::free_port();
    let mut command = Command::new(prometheus);
    command
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let child = Child::spawn("prometheus", command);
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(60), "Prometheus to be ready", || {
        testkit::http_get(&format!("{base}/-/ready")).is_some_and(|(s, _)| s == 200)
    });
    PrometheusServer {
        _child: child,
        _dir: dir,
        base,
    }
}

/// PostgreSQL with the samples, and the API over it.
struct Store {
    _pg: Postgres,
    _api: Child,
    base: String,
}

fn start_store() -> Store {
    let pg = Postgres::start();
    let mut client = pg.connect();
    store::schema::migrate(&mut client).expect("migrate");
    load_store(&mut client);
    let (api, base) = start_api(&pg);
    Store {
        _pg: pg,
        _api: api,
        base: format!("{base}/prometheus"),
    }
}

/// `GET base/api/v1/endpoint?params`: (status, JSON).
fn get(base: &str, endpoint: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let mut request = agent.get(&format!("{base}/api/v1/{endpoint}"));
    for (k, v) in params {
        request = request.query(k, v);
    }
    answer(request.call())
}

fn post(base: &str, endpoint: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    answer(
        agent
            .post(&format!("{base}/api/v1/{endpoint}"))
            .send_form(params),
    )
}

fn answer(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let body = response.into_string().expect("body");
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, json)
}

/// An answer reduced to what must agree: result type and, per label set, its points.
#[derive(Debug, PartialEq)]
struct Normal {
    result_type: String,
    series: BTreeMap<String, Vec<(f64, String)>>,
}

fn point(p: &Value) -> (f64, String) {
    (
        p[0].as_f64().expect("a time"),
        p[1].as_str().expect("a value").to_string(),
    )
}

fn normalize(answer: &Value) -> Result<Normal, String> {
    if answer["status"] != "success" {
        return Err(format!("not a success: {answer}"));
    }
    let data = &answer["data"];
    let result_type = data["resultType"].as_str().unwrap_or_default().to_string();
    let mut series = BTreeMap::new();
    let metric_key = |m: &Value| -> String {
        let labels: BTreeMap<String, String> = m
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        format!("{labels:?}")
    };
    match result_type.as_str() {
        "scalar" => {
            series.insert(String::new(), vec![point(&data["result"])]);
        }
        "vector" => {
            for item in data["result"].as_array().into_iter().flatten() {
                let key = metric_key(&item["metric"]);
                if series
                    .insert(key.clone(), vec![point(&item["value"])])
                    .is_some()
                {
                    return Err(format!("duplicate series {key}"));
                }
            }
        }
        "matrix" => {
            for item in data["result"].as_array().into_iter().flatten() {
                let points = item["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(point)
                    .collect();
                let key = metric_key(&item["metric"]);
                if series.insert(key.clone(), points).is_some() {
                    return Err(format!("duplicate series {key}"));
                }
            }
        }
        other => return Err(format!("unexpected result type {other:?}")),
    }
    Ok(Normal {
        result_type,
        series,
    })
}

fn same_value(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_nan() && y.is_nan() => true,
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
        _ => false,
    }
}

/// The differences between our answer and Prometheus's, as readable lines.
fn differences(ours: &Normal, theirs: &Normal) -> Vec<String> {
    let mut out = Vec::new();
    if ours.result_type != theirs.result_type {
        out.push(format!(
            "result type: ours {} theirs {}",
            ours.result_type, theirs.result_type
        ));
    }
    for key in theirs.series.keys() {
        if !ours.series.contains_key(key) {
            out.push(format!("missing series {key}"));
        }
    }
    for (key, points) in &ours.series {
        let Some(expected) = theirs.series.get(key) else {
            out.push(format!("extra series {key}"));
            continue;
        };
        if points.len() != expected.len() {
            out.push(format!(
                "{key}: {} points, Prometheus has {}",
                points.len(),
                expected.len()
            ));
        }
        let mut shown = 0;
        for (p, e) in points.iter().zip(expected) {
            if p.0 != e.0 || !same_value(&p.1, &e.1) {
                if shown < 3 {
                    out.push(format!("{key}: ours {p:?}, Prometheus {e:?}"));
                }
                shown += 1;
            }
        }
        if shown > 3 {
            out.push(format!("{key}: … {} differing points in all", shown));
        }
    }
    out
}

/// The expressions asked of both; `true` marks those only an instant query takes (range
/// vectors). Grow the table freely.
const EXPRESSIONS: &[(&str, bool)] = &[
    ("DCGM_FI_DEV_GPU_TEMP", false),
    ("DCGM_FI_DEV_GPU_TEMP{Hostname=\"host-a\"}", false),
    ("DCGM_FI_DEV_GPU_TEMP{gpu!=\"0\"}", false),
    ("DCGM_FI_DEV_GPU_TEMP{UUID=~\".*[13]\"}", false),
    ("DCGM_FI_DEV_POWER_USAGE{modelName!~\".*A100.*\"}", false),
    ("DCGM_FI_DEV_POWER_USAGE{pod=\"\"}", false),
    (
        "{__name__=~\"DCGM_FI_DEV_(GPU_TEMP|POWER_USAGE)\", gpu=\"1\"}",
        false,
    ),
    ("rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[5m])", false),
    ("irate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[2m])", false),
    ("increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[10m])", false),
    ("delta(DCGM_FI_DEV_GPU_TEMP[10m])", false),
    ("avg_over_time(DCGM_FI_DEV_GPU_TEMP[7m])", false),
    ("min_over_time(DCGM_FI_DEV_POWER_USAGE[15m])", false),
    ("max_over_time(DCGM_FI_DEV_POWER_USAGE[15m])", false),
    ("sum_over_time(DCGM_FI_DEV_GPU_TEMP[3m])", false),
    ("count_over_time(DCGM_FI_DEV_GPU_TEMP[10m])", false),
    ("last_over_time(DCGM_FI_DEV_GPU_TEMP[10m])", false),
    (
        "quantile_over_time(0.9, DCGM_FI_DEV_POWER_USAGE[20m])",
        false,
    ),
    ("sum(DCGM_FI_DEV_POWER_USAGE)", false),
    ("avg by (Hostname) (DCGM_FI_DEV_GPU_TEMP)", false),
    ("max by (Hostname, modelName) (DCGM_FI_DEV_GPU_TEMP)", false),
    ("min by (pod) (DCGM_FI_DEV_GPU_TEMP)", false),
    ("count by (Hostname) (DCGM_FI_DEV_GPU_TEMP)", false),
    // Groups of one series, and no grouping with an offset: the grouped minutes of the
    // rollups, and the steps they leave to the API (gaps, ends, samples on the minute).
    ("sum by (UUID) (DCGM_FI_DEV_GPU_TEMP)", false),
    ("max(DCGM_FI_DEV_POWER_USAGE offset 3m)", false),
    (
        "sum without (gpu, UUID, device, pci_bus_id) (DCGM_FI_DEV_GPU_TEMP)",
        false,
    ),
    ("count by (Hostname) (DCGM_FI_DEV_GPU_TEMP > 60)", false),
    ("topk(2, DCGM_FI_DEV_POWER_USAGE)", false),
    ("bottomk by (Hostname) (1, DCGM_FI_DEV_GPU_TEMP)", false),
    ("quantile(0.5, DCGM_FI_DEV_GPU_TEMP)", false),
    ("stddev by (Hostname) (DCGM_FI_DEV_POWER_USAGE)", false),
    ("DCGM_FI_DEV_GPU_TEMP > 60", false),
    ("DCGM_FI_DEV_GPU_TEMP > bool 60", false),
    ("60 < DCGM_FI_DEV_GPU_TEMP", false),
    ("DCGM_FI_DEV_GPU_TEMP * 100", false),
    ("100 - DCGM_FI_DEV_GPU_TEMP", false),
    ("-DCGM_FI_DEV_GPU_TEMP", false),
    ("(1 + 2) * 3", false),
    ("DCGM_FI_DEV_GPU_TEMP offset 10m", false),
    (
        "rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[5m] offset 1h)",
        false,
    ),
    (
        "sum by (Hostname) (rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[5m]))",
        false,
    ),
    ("DCGM_FI_DEV_POWER_USAGE / DCGM_FI_DEV_GPU_TEMP", false),
    ("abs(-DCGM_FI_DEV_GPU_TEMP)", false),
    ("DCGM_FI_DEV_GPU_TEMP[2m]", true),
];

/// Instant query times: in the compacted day, in GPU 2's gap, just after it, across
/// midnight, on sample times, after GPU 4's temperature stopped.
fn instant_times() -> Vec<String> {
    [
        3600,
        2 * 3600 + 600,
        2 * 3600 + 1207,
        3 * 3600,
        3 * 3600 + 30,
        4 * 3600 + 1785 + 299,
        4 * 3600 + 1785 + 300,
        4 * 3600 + 1785 + 301,
        5 * 3600 + 300,
        5 * 3600 + 42,
    ]
    .iter()
    .map(|&s| at(s).to_rfc3339())
    .collect()
}

/// Range queries: (start, end, step). Whole minutes (read from the rollups) and not.
fn ranges() -> Vec<(String, String, String)> {
    vec![
        (
            at(1800).timestamp().to_string(),
            at(5 * 3600).timestamp().to_string(),
            "60".into(),
        ),
        (at(0).to_rfc3339(), at(SPAN).to_rfc3339(), "5m".into()),
        // Every 2 minutes, past the last samples (a dashboard's "now").
        (
            at(3600 - 240).timestamp().to_string(),
            at(SPAN + 600).timestamp().to_string(),
            "120".into(),
        ),
        (
            at(2 * 3600 - 607).timestamp().to_string(),
            at(4 * 3600 + 2100).timestamp().to_string(),
            "45s".into(),
        ),
        (
            (at(3 * 3600).timestamp() as f64 - 0.5).to_string(),
            at(3 * 3600 + 1200).timestamp().to_string(),
            "15".into(),
        ),
    ]
}

#[test]
fn promql_answers_equal_prometheus_on_the_same_samples() {
    let Some((prometheus, promtool)) = tools("promql_answers_equal_prometheus_on_the_same_samples")
    else {
        return;
    };
    let ours = start_store();
    let theirs = start_prometheus(&prometheus, &promtool);

    let mut report = Vec::new();
    let mut compared = 0;
    let mut points = 0;
    let mut compare = |what: String, endpoint: &str, params: Vec<(&str, &str)>| {
        let (status_theirs, answer_theirs) = get(&theirs.base, endpoint, &params);
        let (status_ours, answer_ours) = get(&ours.base, endpoint, &params);
        compared += 1;
        if status_theirs != status_ours {
            report.push(format!(
                "{what}: status ours {status_ours} {answer_ours}, Prometheus {status_theirs} {answer_theirs}"
            ));
            return;
        }
        match (normalize(&answer_ours), normalize(&answer_theirs)) {
            (Ok(a), Ok(b)) => {
                points += b.series.values().map(Vec::len).sum::<usize>();
                let diff = differences(&a, &b);
                if !diff.is_empty() {
                    report.push(format!("{what}:\n    {}", diff.join("\n    ")));
                }
            }
            (a, b) => report.push(format!("{what}: ours {a:?}, Prometheus {b:?}")),
        }
    };
    for &(expr, instant_only) in EXPRESSIONS {
        for time in instant_times() {
            compare(
                format!("instant {expr} @ {time}"),
                "query",
                vec![("query", expr), ("time", &time)],
            );
        }
        if instant_only {
            continue;
        }
        for (start, end, step) in ranges() {
            compare(
                format!("range {expr} {start}..{end} step {step}"),
                "query_range",
                vec![
                    ("query", expr),
                    ("start", &start),
                    ("end", &end),
                    ("step", &step),
                ],
            );
        }
    }
    assert!(
        report.is_empty(),
        "{} of {compared} answers differ from Prometheus:\n{}",
        report.len(),
        report.join("\n")
    );
    eprintln!("{compared} answers, {points} points, equal to Prometheus's");
    assert!(
        points > 50_000,
        "the answers are not empty: {points} points"
    );
}

/// Runs `promtool query …` against `base`; its output lines, sorted.
fn promtool_query(promtool: &Path, args: &[&str]) -> Vec<String> {
    let output = Command::new(promtool)
        .arg("query")
        .args(args)
        .output()
        .expect("run promtool query");
    assert!(
        output.status.success(),
        "promtool query {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines.sort();
    lines
}

#[test]
fn promtool_queries_our_api_as_it_queries_prometheus() {
    let Some((prometheus, promtool)) = tools("promtool_queries_our_api_as_it_queries_prometheus")
    else {
        return;
    };
    let ours = start_store();
    let theirs = start_prometheus(&prometheus, &promtool);
    let time = at(3 * 3600).to_rfc3339();
    let selector = "DCGM_FI_DEV_GPU_TEMP{Hostname=\"host-a\"}";
    let instant = |base: &str| {
        promtool_query(
            &promtool,
            &["instant", &format!("--time={time}"), base, selector],
        )
    };
    let from_us = instant(&ours.base);
    assert_eq!(from_us.len(), 3, "three GPUs on host-a: {from_us:#?}");
    for line in &from_us {
        assert!(
            line.starts_with("DCGM_FI_DEV_GPU_TEMP{") && line.contains("Hostname=\"host-a\""),
            "{line}"
        );
        assert!(line.contains(" => ") && line.contains(" @["), "{line}");
    }
    assert_eq!(from_us, instant(&theirs.base));

    let (start, end) = (at(3600).to_rfc3339(), at(3600 + 600).to_rfc3339());
    let expr = "max by (Hostname) (DCGM_FI_DEV_GPU_TEMP)";
    let range = |base: &str| {
        promtool_query(
            &promtool,
            &[
                "range",
                &format!("--start={start}"),
                &format!("--end={end}"),
                "--step=1m",
                base,
                expr,
            ],
        )
    };
    let from_us = range(&ours.base);
    let headers: Vec<&String> = from_us.iter().filter(|l| l.contains("=>")).collect();
    assert_eq!(headers.len(), 2, "a series per host: {from_us:#?}");
    assert_eq!(from_us.len(), 2 + 2 * 11, "11 steps per host: {from_us:#?}");
    assert_eq!(from_us, range(&theirs.base));
}

#[test]
fn errors_metadata_and_forms_answer_as_prometheus_does() {
    let ours = start_store();
    let base = ours.base.as_str();
    let time = at(3600).timestamp().to_string();
    let error = |(status, body): (u16, Value), code: u16, kind: &str| -> String {
        assert_eq!(status, code, "{body}");
        assert_eq!(body["status"], "error", "{body}");
        assert_eq!(body["errorType"], kind, "{body}");
        body["error"].as_str().expect("error text").to_string()
    };

    error(get(base, "query", &[("query", "sum(")]), 400, "bad_data");
    let text = error(
        get(
            base,
            "query",
            &[("query", "histogram_quantile(0.9, DCGM_FI_DEV_GPU_TEMP)")],
        ),
        400,
        "bad_data",
    );
    assert!(
        text.contains("unsupported: function histogram_quantile"),
        "{text}"
    );
    let text = error(
        get(
            base,
            "query",
            &[("query", "DCGM_FI_DEV_GPU_TEMP and DCGM_FI_DEV_POWER_USAGE")],
        ),
        400,
        "bad_data",
    );
    assert!(text.contains("unsupported"), "{text}");
    let text = error(
        get(
            base,
            "query_range",
            &[
                ("query", "up"),
                ("start", "0"),
                ("end", "86400"),
                ("step", "1"),
            ],
        ),
        400,
        "bad_data",
    );
    assert_eq!(text, "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)");
    let text = error(
        get(base, "query", &[("query", "up"), ("time", "yesterday")]),
        400,
        "bad_data",
    );
    assert!(text.contains("invalid parameter \"time\""), "{text}");
    error(
        get(
            base,
            "query_range",
            &[
                ("query", "up"),
                ("start", "10"),
                ("end", "0"),
                ("step", "1"),
            ],
        ),
        400,
        "bad_data",
    );
    error(
        get(
            base,
            "query_range",
            &[
                ("query", "up"),
                ("start", "0"),
                ("end", "10"),
                ("step", "0"),
            ],
        ),
        400,
        "bad_data",
    );
    error(
        get(
            base,
            "query_range",
            &[
                ("query", "DCGM_FI_DEV_GPU_TEMP[5m]"),
                ("start", "0"),
                ("end", "10"),
                ("step", "1"),
            ],
        ),
        400,
        "bad_data",
    );
    error(
        get(base, "query", &[("query", "up"), ("timeout", "soon")]),
        400,
        "bad_data",
    );
    error(get(base, "nope", &[]), 404, "not_found");
    error(get(base, "series", &[]), 400, "bad_data");

    // POST form = GET.
    let params = [
        ("query", "sum by (Hostname) (DCGM_FI_DEV_GPU_TEMP)"),
        ("time", time.as_str()),
    ];
    let (status, by_post) = post(base, "query", &params);
    assert_eq!(status, 200, "{by_post}");
    let (_, by_get) = get(base, "query", &params);
    assert_eq!(by_post, by_get);
    assert_eq!(by_get["data"]["resultType"], "vector");
    assert_eq!(by_get["data"]["result"].as_array().map(Vec::len), Some(2));

    // A scalar.
    let (_, scalar) = get(
        base,
        "query",
        &[("query", "1 + 2"), ("time", "1500000000.5")],
    );
    assert_eq!(
        scalar["data"],
        serde_json::json!({"resultType": "scalar", "result": [1500000000.5, "3"]})
    );

    // Series, labels, label values, metadata.
    let (status, series) = get(
        base,
        "series",
        &[("match[]", "DCGM_FI_DEV_GPU_TEMP{Hostname=\"host-b\"}")],
    );
    assert_eq!(status, 200, "{series}");
    let gpus = gpus();
    let expected: Vec<Value> = gpus[3..]
        .iter()
        .map(|g| serde_json::to_value(prometheus_labels(TEMP, g)).expect("labels"))
        .collect();
    let mut got = series["data"].as_array().cloned().unwrap_or_default();
    got.sort_by_key(|v| v["UUID"].as_str().map(str::to_string));
    assert_eq!(got, expected);

    let (_, labels) = get(base, "labels", &[]);
    for name in [
        "__name__",
        "Hostname",
        "UUID",
        "gpu",
        "modelName",
        "pci_bus_id",
        "pod",
    ] {
        assert!(
            labels["data"]
                .as_array()
                .is_some_and(|a| a.contains(&Value::from(name))),
            "{name} in {labels}"
        );
    }
    let (_, hosts) = get(base, "label/Hostname/values", &[]);
    assert_eq!(hosts["data"], serde_json::json!(["host-a", "host-b"]));
    let (_, names) = get(base, "label/__name__/values", &[]);
    assert_eq!(names["data"], serde_json::json!([TEMP, POWER, ENERGY]));
    let (_, pods) = get(
        base,
        "label/pod/values",
        &[("match[]", "DCGM_FI_DEV_POWER_USAGE")],
    );
    assert_eq!(pods["data"], serde_json::json!(["trainer-0"]));
    let (status, metadata) = get(base, "metadata", &[]);
    assert_eq!(status, 200);
    assert!(metadata["data"][TEMP].is_array(), "{metadata}");
}
