//! `streamer --scrape`: a real broker and the real streamer binary scraping a tiny HTTP server
//! that serves the dcgm-exporter fixture (it stands in for dcgm-exporter, which is not under
//! test). The broker is SIGKILLed mid-run and started again on the same data: every scrape's
//! points are in its log exactly once, and a collector stores them in PostgreSQL once, with
//! their labels.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use store::point::Point;
use testkit::{bin_path, free_port, http_get, wait_until, Child, Postgres};

use crate::pipeline::{collector, count, tail, Broker};
use crate::scrape_fleet::{stop, Fleet};

const TOPIC: &str = "telemetry";
/// The fixture's samples that map onto points (the others: one without UUID, one NaN).
pub(crate) const POINTS_PER_SCRAPE: usize = 11;

/// The dcgm-exporter fixture the mapping's unit tests use too (one file).
pub(crate) fn fixture() -> String {
    include_str!("../../../clients/tests/fixtures/dcgm-exporter.prom").to_string()
}

/// One exporter (a [`Fleet`] of one, at `/metrics`) answering every request with its body.
struct Exporter {
    url: String,
    fleet: Fleet,
}

impl Exporter {
    /// Requests answered so far.
    fn scrapes(&self) -> usize {
        self.fleet.served(0).len()
    }
}

fn serve(body: String) -> Exporter {
    let fleet = Fleet::serve_with(move |_| body.clone());
    Exporter {
        url: format!("http://127.0.0.1:{}/metrics", fleet.port),
        fleet,
    }
}

fn scrape_streamer(broker: &Broker, target: &str, metrics_port: u16) -> Child {
    streamer_with(broker, &["--scrape", target], metrics_port)
}

fn streamer_with(broker: &Broker, targets: &[&str], metrics_port: u16) -> Child {
    let mut cmd = Command::new(bin_path("streamer"));
    cmd.args(["--broker", &broker.url(), "--topic", TOPIC])
        .args(targets)
        .args(["--scrape-interval", "250ms"])
        .args(["--scrape-timeout", "2s"])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .env_remove("CSV_PATH")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json");
    Child::spawn("streamer", cmd)
}

/// Every message of the topic, as points.
pub(crate) fn all_points(broker: &Broker) -> Vec<Point<'static>> {
    let (status, body) =
        http_get(&format!("{}/v1/topics/{TOPIC}", broker.url())).expect("topic metadata");
    assert_eq!(status, 200, "{body}");
    let meta: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut points = Vec::new();
    for partition in meta["partitions"].as_array().unwrap() {
        let p = partition["partition"].as_u64().unwrap();
        let end = partition["log_end_offset"].as_u64().unwrap();
        let mut offset = partition["log_start_offset"].as_u64().unwrap_or(0);
        while offset < end {
            let url = format!(
                "{}/v1/topics/{TOPIC}/partitions/{p}/messages?offset={offset}&max=10000",
                broker.url()
            );
            let (status, body) = http_get(&url).expect("fetch");
            assert_eq!(status, 200, "{body}");
            for line in body.lines() {
                let message: serde_json::Value = serde_json::from_str(line).unwrap();
                let value = message["value"].to_string();
                let point: Point<'_> = serde_json::from_str(&value).unwrap();
                points.push(point.into_owned());
                offset = message["offset"].as_u64().unwrap() + 1;
            }
        }
    }
    points
}

fn label<'p>(point: &'p Point<'_>, name: &str) -> Option<&'p str> {
    point
        .labels
        .0
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_ref())
}

#[test]
fn scraped_points_arrive_once_through_a_broker_crash() {
    let exporter = serve(fixture());
    let pg = Postgres::start();
    let mut broker = Broker::start();
    let mut collector = collector(&broker, &pg, &[]);
    let metrics_port = free_port();
    let mut streamer = scrape_streamer(&broker, &exporter.url, metrics_port);
    let at_least = |n: usize| move |b: &Broker| b.log_end_total() >= (n * POINTS_PER_SCRAPE) as i64;

    let three = at_least(3);
    wait_until(
        Duration::from_secs(30),
        "three scrapes in the broker",
        || three(&broker),
    );

    // /targets and /metrics tell the target's health.
    let targets = format!("http://127.0.0.1:{metrics_port}/targets");
    let (status, body) = http_get(&targets).expect("/targets answers");
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let target = &listed["targets"][0];
    assert_eq!(target["url"], exporter.url.as_str());
    assert_eq!(target["health"], "up", "{body}");
    assert_eq!(target["last_samples_stored"], POINTS_PER_SCRAPE, "{body}");
    assert_eq!(target["last_samples_skipped"], 2, "{body}");
    assert!(target["last_scrape"].is_string(), "{body}");
    assert!(target["last_error"].is_null(), "{body}");
    let (_, metrics) =
        http_get(&format!("http://127.0.0.1:{metrics_port}/metrics")).expect("/metrics");
    let up = format!("streamer_scrape_up{{target=\"{}\"}} 1", exporter.url);
    assert!(metrics.contains(&up), "{metrics}");
    for reason in ["no_uuid", "not_finite"] {
        let skipped = format!(
            "streamer_scrape_samples_skipped_total{{target=\"{}\",reason=\"{reason}\"}}",
            exporter.url
        );
        assert!(metrics.contains(&skipped), "{skipped} in {metrics}");
    }
    assert!(metrics.contains("streamer_scrape_samples_stored_total{target="));
    assert!(metrics.contains("streamer_scrape_duration_seconds{target="));

    // SIGKILL the broker mid-run (a produce may be in flight), keep it down for a few scrape
    // intervals, start it again on the same data.
    broker.kill9();
    let down_at = exporter.scrapes();
    std::thread::sleep(Duration::from_millis(800));
    broker.restart();
    let before = broker.log_end_total() as usize / POINTS_PER_SCRAPE;
    let more = at_least(before + 3);
    wait_until(
        Duration::from_secs(30),
        "three more scrapes after the restart",
        || more(&broker),
    );
    assert!(exporter.scrapes() > down_at);

    stop("streamer", &mut streamer);

    // Every scrape (one `ts`) is in the log whole and once.
    let points = all_points(&broker);
    let mut by_scrape: BTreeMap<_, Vec<&Point<'_>>> = BTreeMap::new();
    for p in &points {
        by_scrape.entry(p.ts).or_default().push(p);
    }
    assert!(by_scrape.len() >= 6, "{} scrapes", by_scrape.len());
    for (ts, scrape) in &by_scrape {
        assert_eq!(
            scrape.len(),
            POINTS_PER_SCRAPE,
            "scrape at {ts}: {scrape:#?}"
        );
        let distinct: BTreeSet<_> = scrape
            .iter()
            .map(|p| (&p.metric, &p.gpu_uuid, &p.labels.0))
            .collect();
        assert_eq!(distinct.len(), POINTS_PER_SCRAPE, "a point twice at {ts}");
    }
    assert_eq!(points.len(), by_scrape.len() * POINTS_PER_SCRAPE);

    // The mapping survived the trip: a MIG point and a pod's point with their labels.
    let mig = points
        .iter()
        .find(|p| p.metric == "DCGM_FI_PROF_GR_ENGINE_ACTIVE" && label(p, "GPU_I_ID") == Some("1"))
        .expect("a MIG point");
    assert_eq!(label(mig, "GPU_I_PROFILE"), Some("3g.40gb"));
    assert_eq!(label(mig, "__type__"), Some("gauge"));
    assert_eq!(mig.hostname, "dgx-a100-01");
    let xid = points
        .iter()
        .find(|p| p.metric == "DCGM_FI_DEV_XID_ERRORS" && p.gpu_index == 1)
        .expect("the pod's XID point");
    assert_eq!(xid.pod.as_deref(), Some("llm-train-7d9f-0"));
    assert_eq!(xid.value, 79.0);
    assert!(points.iter().all(|p| p.source_ts.is_none()));

    // In PostgreSQL: every point once, with its labels and type.
    let stored = points.len() as i64;
    wait_until(
        Duration::from_secs(60),
        "the collector stored every point",
        || count(&pg, "SELECT count(*) FROM telemetry") == stored,
    );
    let scrapes = by_scrape.len() as i64;
    let sql = [
        (
            "SELECT count(*) FROM (SELECT 1 FROM telemetry \
          GROUP BY gpu_uuid, metric, ts, labels HAVING count(*) > 1) d",
            0,
        ),
        (
            "SELECT count(*) FROM telemetry WHERE metric = 'DCGM_FI_PROF_GR_ENGINE_ACTIVE' \
          AND labels->>'GPU_I_ID' = '1' AND labels->>'GPU_I_PROFILE' = '3g.40gb' \
          AND labels->>'__type__' = 'gauge' AND labels->>'pci_bus_id' = '00000000:07:00.0' \
          AND labels->>'DCGM_FI_DRIVER_VERSION' = '535.129.03' AND hostname = 'dgx-a100-01'",
            scrapes,
        ),
        (
            "SELECT count(*) FROM telemetry WHERE pod = 'llm-train-7d9f-0' \
          AND container = 'trainer' AND namespace = 'ml-team'",
            3 * scrapes,
        ),
        (
            "SELECT count(*) FROM telemetry WHERE metric = 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION' \
          AND labels->>'__type__' = 'counter'",
            2 * scrapes,
        ),
        (
            "SELECT count(*) FROM telemetry WHERE labels ? 'UUID' OR labels ? 'gpu' \
          OR labels ? 'Hostname' OR labels ? 'modelName'",
            0,
        ),
    ];
    for (query, expected) in sql {
        assert_eq!(count(&pg, query), expected, "{query}");
    }
    let status = collector.terminate(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn an_unreachable_target_is_down_and_the_streamer_keeps_running() {
    let broker = Broker::start();
    let dead = format!("http://127.0.0.1:{}/metrics", free_port());
    let metrics_port = free_port();
    let mut streamer = scrape_streamer(&broker, &dead, metrics_port);
    let targets = format!("http://127.0.0.1:{metrics_port}/targets");
    wait_until(Duration::from_secs(20), "the target marked down", || {
        http_get(&targets).is_some_and(|(status, body)| {
            status == 200 && body.contains("\"health\":\"down\"") && body.contains("last_error")
        })
    });
    let (_, metrics) =
        http_get(&format!("http://127.0.0.1:{metrics_port}/metrics")).expect("/metrics");
    let failures = format!("streamer_scrape_failures_total{{target=\"{dead}\",stage=\"scrape\"}}");
    assert!(metrics.contains(&failures), "{metrics}");
    assert!(metrics.contains(&format!("streamer_scrape_up{{target=\"{dead}\"}} 0")));
    assert!(streamer.is_running(), "{}", tail(&streamer.log()));
    stop("streamer", &mut streamer);
}

/// Runs the streamer with `args` (and no CSV or scrape target from the environment): it must
/// refuse them as a usage error (exit 2); its stderr.
pub(crate) fn usage_error<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let output = Command::new(bin_path("streamer"))
        .args(args)
        .env_remove("CSV_PATH")
        .env_remove("STREAMER_SCRAPE")
        .output()
        .expect("run streamer");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn csv_and_scrape_together_are_a_usage_error() {
    let stderr = usage_error(&["--csv", "x.csv", "--scrape", "http://127.0.0.1:1/metrics"]);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    // Neither.
    usage_error::<&str>(&[]);
}

/// Writes the file whole (a rename), as a tool rewriting a `file_sd` file should.
fn write_targets(path: &std::path::Path, yaml: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_targets_file_rewritten_swaps_the_scraped_targets() {
    let first = serve(fixture());
    // The second exporter's samples tell their host apart.
    let second = serve(fixture().replace("dgx-a100-01", "dgx-b200-02"));
    let host_port = |url: &str| {
        url.trim_start_matches("http://")
            .trim_end_matches("/metrics")
            .to_string()
    };
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("targets.yml");
    write_targets(
        &file,
        &format!(
            "- targets: ['{}']\n  labels: {{job: dcgm}}\n",
            host_port(&first.url)
        ),
    );
    let metrics_port = free_port();
    let file_arg = file.display().to_string();
    let mut streamer = streamer_with(&broker, &["--scrape-targets-file", &file_arg], metrics_port);
    let from = |host: &str| {
        all_points(&broker)
            .iter()
            .filter(|p| p.hostname == host)
            .count()
    };
    // The topic exists once the first scrape is in.
    wait_until(Duration::from_secs(30), "a first scrape", || {
        broker.log_end_total() >= POINTS_PER_SCRAPE as i64
    });
    wait_until(
        Duration::from_secs(30),
        "the first target's points in the broker",
        || from("dgx-a100-01") >= POINTS_PER_SCRAPE,
    );
    assert_eq!(from("dgx-b200-02"), 0);

    write_targets(
        &file,
        &format!("- targets: ['{}']\n", host_port(&second.url)),
    );
    wait_until(
        Duration::from_secs(30),
        "the second target's points in the broker",
        || from("dgx-b200-02") >= POINTS_PER_SCRAPE,
    );
    let targets = format!("http://127.0.0.1:{metrics_port}/targets");
    wait_until(
        Duration::from_secs(10),
        "only the second target in /targets",
        || {
            http_get(&targets).is_some_and(|(status, body)| {
                status == 200 && body.contains(&second.url) && !body.contains(&first.url)
            })
        },
    );
    let first_up = format!("streamer_scrape_up{{target=\"{}\"}} 0", first.url);
    wait_until(
        Duration::from_secs(10),
        "the first target's streamer_scrape_up at 0",
        || {
            http_get(&format!("http://127.0.0.1:{metrics_port}/metrics"))
                .is_some_and(|(_, metrics)| metrics.contains(&first_up))
        },
    );

    // A broken rewrite is a warning and keeps the second target.
    write_targets(&file, "- targets: [unclosed\n");
    wait_until(
        Duration::from_secs(20),
        "a warning about the broken file",
        || {
            streamer
                .log()
                .contains("cannot read the scrape targets file")
        },
    );
    let scraped = second.scrapes();
    wait_until(
        Duration::from_secs(20),
        "the second target still scraped",
        || second.scrapes() >= scraped + 3,
    );
    let (_, body) = http_get(&targets).expect("/targets");
    assert!(body.contains(&second.url), "{body}");

    stop("streamer", &mut streamer);
}

#[test]
fn a_missing_or_broken_targets_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("targets.json");
    std::fs::write(&broken, "[{\"targets\": \"not a list\"}]").unwrap();
    let missing = dir.path().join("missing.yml");
    for file in [&broken, &missing] {
        let stderr = usage_error(&[
            std::ffi::OsStr::new("--scrape-targets-file"),
            file.as_os_str(),
        ]);
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    }
}
