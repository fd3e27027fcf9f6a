//! The data path end to end: CSV → streamer(s) → broker → collector(s) → PostgreSQL, with the
//! real binaries, exactly once under crashes and scaling (issue 4).
//!
//! Every scenario ends the same way: wait until the collectors' offsets in PostgreSQL cover
//! every message in the broker's log, then count. Once the offsets cover the log, no more rows
//! can arrive, so an exact count at that moment is exact for good (a late duplicate would have
//! had to be written before its offset was).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{bin_path, free_port, http_get, sample_csv, wait_until, Child, Postgres};

const TOPIC: &str = "telemetry";
/// Short sessions so a SIGKILLed member's partitions move within seconds.
const SESSION_MS: &str = "3000";

/// A broker on a fixed port and data directory, so it can be killed and started again.
pub(crate) struct Broker {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    pub(crate) fn start() -> Broker {
        let mut broker = Broker {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        broker.restart();
        broker
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn restart(&mut self) {
        let mut cmd = Command::new(bin_path("broker"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(["--session-timeout-ms", SESSION_MS]);
        self.child = Some(Child::spawn("broker", cmd));
        let ready = format!("{}/readyz", self.url());
        wait_until(Duration::from_secs(20), "broker ready", || {
            matches!(http_get(&ready), Some((200, _)))
        });
    }

    pub(crate) fn kill9(&mut self) {
        if let Some(c) = self.child.as_mut() {
            c.kill9();
        }
    }

    /// Sum of the log end offsets of the topic's partitions: every message it holds.
    pub(crate) fn log_end_total(&self) -> i64 {
        let Some((200, body)) = http_get(&format!("{}/v1/topics/{TOPIC}", self.url())) else {
            return -1;
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["partitions"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| p["log_end_offset"].as_i64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(-1)
    }
}

pub(crate) fn streamer(broker: &Broker, csv: &Path, group: &str, extra: &[&str]) -> Child {
    let mut cmd = Command::new(bin_path("streamer"));
    cmd.args([
        "--broker",
        &broker.url(),
        "--topic",
        TOPIC,
        "--group",
        group,
    ])
    .arg("--csv")
    .arg(csv)
    .args(extra)
    // By environment, so a test can still pass --metrics-listen.
    .env("STREAMER_METRICS_LISTEN", "127.0.0.1:0")
    .env("RUST_LOG", "info")
    .env("LOG_FORMAT", "json");
    Child::spawn("streamer", cmd)
}

pub(crate) fn collector(broker: &Broker, pg: &Postgres, extra: &[&str]) -> Child {
    let mut cmd = Command::new(bin_path("collector"));
    cmd.args(["--broker", &broker.url(), "--topic", TOPIC])
        .args(extra)
        .env("COLLECTOR_METRICS_LISTEN", "127.0.0.1:0")
        .env("DATABASE_URL", pg.url())
        .env("RUST_LOG", "info");
    Child::spawn("collector", cmd)
}

pub(crate) fn count(pg: &Postgres, sql: &str) -> i64 {
    match postgres::Client::connect(&pg.connection_string(), postgres::NoTls) {
        Ok(mut c) => c
            .query_one(sql, &[])
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(-1),
        Err(_) => -1,
    }
}

fn rows(pg: &Postgres) -> i64 {
    count(pg, "SELECT count(*) FROM telemetry")
}

/// Waits until the collectors have stored offsets for every message in the broker's log and
/// the log holds `expected` messages.
fn wait_caught_up(pg: &Postgres, broker: &Broker, expected: i64, timeout: Duration) {
    wait_until(
        timeout,
        &format!("{expected} messages produced and stored"),
        || {
            let end = broker.log_end_total();
            end == expected
                && count(
                    pg,
                    "SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets",
                ) == end
        },
    );
}

/// Waits for a one-shot streamer to finish and checks it exited 0.
pub(crate) fn wait_exit_ok(child: &mut Child, timeout: Duration) {
    let status = child.wait_timeout(timeout);
    child.scan_for_panics();
    assert!(
        status.is_some_and(|s| s.success()),
        "streamer did not exit 0 in time: {status:?}\n{}",
        tail(&child.log())
    );
}

fn stop(children: &mut [Child]) {
    for c in children.iter_mut() {
        if c.is_running() {
            let status = c.terminate(Duration::from_secs(15));
            assert!(
                status.is_some_and(|s| s.success()),
                "did not stop cleanly on SIGTERM: {status:?}\n{}",
                tail(&c.log())
            );
        }
        c.scan_for_panics();
    }
}

pub(crate) fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The exactly-once checks every scenario ends with.
fn assert_exactly_once(pg: &Postgres, expected: i64) {
    assert_eq!(rows(pg), expected, "row count");
    let dup = count(
        pg,
        "SELECT count(*) FROM (SELECT 1 FROM telemetry GROUP BY src_partition, src_offset HAVING count(*) > 1) d",
    );
    assert_eq!(dup, 0, "a broker message written twice");
    let totals = count(
        pg,
        "SELECT COALESCE(sum(points), 0)::bigint FROM metric_day_totals",
    );
    assert_eq!(totals, expected, "the day totals agree with the rows");
    for rollup in ["rollup_1m", "rollup_1h"] {
        let counted = count(
            pg,
            &format!("SELECT COALESCE(sum(count), 0)::bigint FROM {rollup}"),
        );
        assert_eq!(counted, expected, "{rollup} counts every row once");
    }
}

/// A CSV in the sample's shape: `hosts` hosts × 8 GPUs, rows interleaved like a real export,
/// each carrying its 0-based row number as `seq` in labels_raw. Lines listed in `bad` (1-based
/// file lines, the header is line 1) get a non-numeric value instead.
pub(crate) fn generate_csv(path: &Path, rows: usize, hosts: usize, bad: &[usize]) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create csv"));
    writeln!(
        out,
        "timestamp,metric_name,gpu_id,device,uuid,modelName,Hostname,container,pod,namespace,value,labels_raw"
    )
    .unwrap();
    let metrics = [
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
    ];
    for seq in 0..rows {
        let gpu = seq % 8;
        let host = (seq / 8) % hosts;
        let metric = metrics[(seq / (8 * hosts)) % metrics.len()];
        let value = if bad.contains(&(seq + 2)) {
            "n/a".to_string()
        } else {
            format!("{}", seq % 100)
        };
        writeln!(
            out,
            "\"2025-07-18T20:42:34Z\",\"{metric}\",\"{gpu}\",\"nvidia{gpu}\",\"GPU-{host:08x}-0000-4000-8000-{gpu:012x}\",\"NVIDIA H100 80GB HBM3\",\"gen-host-{host:03}\",\"\",\"\",\"\",\"{value}\",\"seq=\"\"{seq}\"\",Hostname=\"\"gen-host-{host:03}\"\"\""
        )
        .unwrap();
    }
}

fn csv_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn sample_by_two_streamers_into_three_collectors_arrives_once_and_in_order() {
    let pg = Postgres::start();
    let broker = Broker::start();
    let mut collectors: Vec<Child> = (0..3).map(|_| collector(&broker, &pg, &[])).collect();
    let csv = sample_csv();
    let mut streamers: Vec<Child> = (0..2)
        .map(|_| streamer(&broker, &csv, "sample", &[]))
        .collect();
    for s in &mut streamers {
        wait_exit_ok(s, Duration::from_secs(45));
    }
    wait_caught_up(&pg, &broker, 2470, Duration::from_secs(30));

    assert_exactly_once(&pg, 2470);
    assert_eq!(
        count(&pg, "SELECT count(DISTINCT gpu_uuid) FROM telemetry"),
        247
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM gpus"), 247);
    assert_eq!(
        count(&pg, "SELECT count(DISTINCT hostname) FROM telemetry"),
        31
    );
    // One GPU's points live in one partition, in processing order.
    let split = count(
        &pg,
        "SELECT count(*) FROM (SELECT gpu_uuid FROM telemetry GROUP BY gpu_uuid HAVING count(DISTINCT src_partition) > 1) s",
    );
    assert_eq!(split, 0, "a GPU's points spread over partitions");
    let backwards = count(
        &pg,
        "SELECT count(*) FROM (SELECT ts < lag(ts) OVER (PARTITION BY gpu_uuid ORDER BY src_offset) AS back
                              FROM telemetry) o WHERE back",
    );
    assert_eq!(backwards, 0, "a GPU's points out of processing order");
    let first_last = count(
        &pg,
        "SELECT count(*) FROM gpus WHERE first_seen > last_seen",
    );
    assert_eq!(first_last, 0);
    // Both streamers' acknowledged rows add up to the file: nothing was appended twice.
    let produced: u64 = streamers.iter().map(|s| produced_in_log(&s.log())).sum();
    assert_eq!(produced, 2470, "rows_produced over both streamers");
    stop(&mut collectors);
}

/// A streamer's JSON log events with the given message.
pub(crate) fn events(log: &str, message: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["message"] == message)
        .collect()
}

/// The `rows_produced` of a streamer's final log event.
pub(crate) fn produced_in_log(log: &str) -> u64 {
    events(log, "streamer finished")
        .last()
        .and_then(|e| e["rows_produced"].as_u64())
        .unwrap_or(0)
}

#[test]
fn crashes_of_collectors_the_broker_and_the_database_lose_and_double_nothing() {
    const N: i64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let csv = csv_in(&dir, "200k.csv");
    generate_csv(&csv, N as usize, 40, &[]);
    let pg = Postgres::start();
    let mut broker = Broker::start();
    let opts = ["--batch-size", "1000"];
    let mut collectors: Vec<Child> = (0..3).map(|_| collector(&broker, &pg, &opts)).collect();
    let mut streamers: Vec<Child> = (0..2)
        .map(|_| streamer(&broker, &csv, "crashy", &opts))
        .collect();
    let started = Instant::now();

    wait_until(Duration::from_secs(40), "20k rows stored", || {
        rows(&pg) >= 20_000
    });
    collectors[0].kill9();
    collectors[0] = collector(&broker, &pg, &opts);

    wait_until(Duration::from_secs(40), "60k rows stored", || {
        rows(&pg) >= 60_000
    });
    assert!(
        streamers.iter_mut().all(|s| s.is_running()),
        "the broker must die mid-stream"
    );
    broker.kill9();
    broker.restart();

    wait_until(Duration::from_secs(40), "100k rows stored", || {
        rows(&pg) >= 100_000
    });
    collectors[1].kill9();
    collectors[1] = collector(&broker, &pg, &opts);

    // PostgreSQL down for two seconds (the fault's length, not a wait): the collectors keep
    // their batches and retry.
    wait_until(Duration::from_secs(40), "130k rows stored", || {
        rows(&pg) >= 130_000
    });
    pg.stop();
    std::thread::sleep(Duration::from_secs(2));
    pg.start_again();

    for s in &mut streamers {
        wait_exit_ok(s, Duration::from_secs(60));
    }
    wait_caught_up(&pg, &broker, N, Duration::from_secs(40));
    eprintln!("200k rows with 4 faults in {:?}", started.elapsed());

    assert_exactly_once(&pg, N);
    let seqs = count(
        &pg,
        "SELECT count(DISTINCT (labels->>'seq')::int)::bigint FROM telemetry",
    );
    assert_eq!(seqs, N, "every generated row exactly once");
    assert!(
        collectors.iter().any(|c| {
            // A transaction that failed, or (when the outage fell while a collector waited
            // for a connection) its pool failing to reconnect.
            let log = c.log();
            log.contains("batch transaction failed, retrying")
                || log.contains("error connecting to server")
        }),
        "the database outage did not reach a collector"
    );
    let range = count(
        &pg,
        "SELECT (max((labels->>'seq')::int) - min((labels->>'seq')::int))::bigint FROM telemetry",
    );
    assert_eq!(range, N - 1);
    stop(&mut collectors);
}

#[test]
fn streamers_and_collectors_join_and_leave_mid_run_and_the_count_stays_exact() {
    const N: i64 = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let csv = csv_in(&dir, "scale.csv");
    generate_csv(&csv, N as usize, 32, &[]);
    let pg = Postgres::start();
    let broker = Broker::start();
    let paced = ["--rate", "2500"];
    let mut collectors: Vec<Child> = (0..3).map(|_| collector(&broker, &pg, &[])).collect();
    let mut streamers: Vec<Child> = (0..2)
        .map(|_| streamer(&broker, &csv, "elastic", &paced))
        .collect();

    wait_until(Duration::from_secs(30), "5k rows stored", || {
        rows(&pg) >= 5_000
    });
    streamers.push(streamer(&broker, &csv, "elastic", &paced));
    collectors.push(collector(&broker, &pg, &[]));
    // The streamers' broker group is their input's (clients::streamer::input).
    let streamer_group = clients::streamer::input::Input::identify(&csv)
        .and_then(|input| input.progress_group("elastic"))
        .expect("the input's progress group");
    wait_until(
        Duration::from_secs(30),
        "the new members to take a share",
        || {
            group_members(&broker, &streamer_group) == 3
                && group_members(&broker, "collectors") == 4
        },
    );

    wait_until(Duration::from_secs(30), "15k rows stored", || {
        rows(&pg) >= 15_000
    });
    let mut leaving_streamer = streamers.remove(0);
    let mut leaving_collector = collectors.remove(0);
    stop(std::slice::from_mut(&mut leaving_streamer));
    stop(std::slice::from_mut(&mut leaving_collector));

    for s in &mut streamers {
        wait_exit_ok(s, Duration::from_secs(60));
    }
    wait_caught_up(&pg, &broker, N, Duration::from_secs(30));
    assert_exactly_once(&pg, N);
    let seqs = count(
        &pg,
        "SELECT count(DISTINCT (labels->>'seq')::int)::bigint FROM telemetry",
    );
    assert_eq!(seqs, N);
    stop(&mut collectors);
}

fn group_members(broker: &Broker, group: &str) -> usize {
    http_get(&format!("{}/v1/groups/{group}", broker.url()))
        .filter(|(s, _)| *s == 200)
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|v| v["members"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn bad_rows_are_reported_by_line_and_the_good_ones_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let csv = csv_in(&dir, "bad.csv");
    let bad_lines = [2, 57, 300, 1001];
    generate_csv(&csv, 1000, 10, &bad_lines);
    // Two more lines: a row with a bad UUID and a short row.
    let mut f = std::fs::OpenOptions::new().append(true).open(&csv).unwrap();
    writeln!(f, "\"2025-07-18T20:42:34Z\",\"M\",\"0\",\"nvidia0\",\"not-a-uuid\",\"H100\",\"gen-host-000\",\"\",\"\",\"\",\"1\",\"\"").unwrap();
    writeln!(f, "\"2025-07-18T20:42:34Z\",\"M\"").unwrap();
    drop(f);
    let pg = Postgres::start();
    let broker = Broker::start();
    let mut collectors = vec![collector(&broker, &pg, &[])];
    // NDJSON produce here; the other scenarios use the default binary batches.
    let mut s = streamer(&broker, &csv, "bad", &["--produce-format", "ndjson"]);
    wait_exit_ok(&mut s, Duration::from_secs(30));

    // A message that is no telemetry point, produced straight to the topic: dead-lettered.
    let client = broker_client::BrokerClient::new(broker_client::ClientConfig::new(broker.url()));
    let mut body = Vec::new();
    broker_client::push_record(
        &mut body,
        "GPU-dead",
        &serde_json::json!({"not": "a point"}),
    )
    .unwrap();
    client
        .produce(TOPIC, &body, None)
        .expect("produce a bad message");

    wait_caught_up(&pg, &broker, 1000 - 4 + 1, Duration::from_secs(30));
    assert_eq!(rows(&pg), 1000 - 4);
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM dead_letters WHERE reason LIKE 'not a telemetry point%'"
        ),
        1
    );
    let reported: Vec<(u64, String)> = events(&s.log(), "skipping bad row")
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap_or(0),
                e["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut expected: Vec<(u64, &str)> = bad_lines
        .iter()
        .map(|l| (*l as u64, "value \"n/a\" is not a finite number"))
        .collect();
    expected.push((1002, "is not a GPU UUID"));
    expected.push((1003, "missing field"));
    assert_eq!(reported.len(), expected.len(), "{reported:?}");
    for ((line, reason), (want_line, want)) in reported.iter().zip(&expected) {
        assert_eq!(line, want_line, "{reported:?}");
        assert!(reason.contains(want), "line {line}: {reason}");
    }
    stop(&mut collectors);
}

/// `/metrics` of a client: every named metric has HELP and TYPE lines (what promtool
/// requires) and a sample, non-zero for those in `nonzero`.
fn scrape(port: u16, nonzero: &[&str], present: &[&str]) {
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(http_get(&format!("{url}/healthz")).map(|r| r.0), Some(200));
    assert_eq!(http_get(&format!("{url}/readyz")).map(|r| r.0), Some(200));
    let (status, text) = http_get(&format!("{url}/metrics")).expect("metrics answer");
    assert_eq!(status, 200);
    for name in nonzero.iter().chain(present) {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}:\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}:\n{text}"
        );
        let mut samples = text.lines().filter(|l| l.starts_with(name));
        if nonzero.contains(name) {
            assert!(
                samples.any(|l| !l.ends_with(" 0")),
                "no non-zero {name}:\n{text}"
            );
        } else {
            assert!(samples.next().is_some(), "no sample of {name}:\n{text}");
        }
    }
}

#[test]
fn a_looping_streamer_sends_every_row_once_per_pass_with_fresh_times() {
    let dir = tempfile::tempdir().unwrap();
    let csv = csv_in(&dir, "loop.csv");
    generate_csv(&csv, 1000, 10, &[]);
    let pg = Postgres::start();
    let broker = Broker::start();
    let collector_port = free_port();
    let collector_listen = format!("127.0.0.1:{collector_port}");
    let mut collectors = vec![collector(
        &broker,
        &pg,
        &["--metrics-listen", &collector_listen],
    )];
    let streamer_port = free_port();
    let streamer_listen = format!("127.0.0.1:{streamer_port}");
    let mut looping = streamer(
        &broker,
        &csv,
        "looper",
        &["--loop", "--metrics-listen", &streamer_listen],
    );
    wait_until(Duration::from_secs(30), "three passes stored", || {
        rows(&pg) >= 3000
    });
    scrape(
        streamer_port,
        &[
            "streamer_rows_read_total",
            "streamer_rows_produced_total",
            "streamer_batch_seconds",
        ],
        &["streamer_shards_owned"],
    );
    let status = looping.terminate(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    looping.scan_for_panics();
    let produced = broker.log_end_total();
    wait_caught_up(&pg, &broker, produced, Duration::from_secs(30));
    assert_exactly_once(&pg, produced);
    scrape(
        collector_port,
        &["collector_rows_written_total", "collector_batch_seconds"],
        &["collector_lag_messages", "collector_partitions_owned"],
    );

    // Every row once per pass: per row, the counts differ by at most one (the pass cut short
    // by SIGTERM), and every copy of a row has its own processing time.
    assert_eq!(
        count(
            &pg,
            "SELECT count(DISTINCT labels->>'seq')::bigint FROM telemetry"
        ),
        1000
    );
    let spread = count(
        &pg,
        "SELECT (max(n) - min(n))::bigint FROM (SELECT count(*) AS n FROM telemetry GROUP BY labels->>'seq') c",
    );
    assert!(spread <= 1, "passes uneven by {spread}");
    let stale = count(
        &pg,
        "SELECT count(*) FROM (SELECT 1 FROM telemetry GROUP BY labels->>'seq', ts HAVING count(*) > 1) d",
    );
    assert_eq!(stale, 0, "a looped row kept an old time");
    stop(&mut collectors);
}
