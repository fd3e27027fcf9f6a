//! The whole pipeline over TLS with a credential on every hop (issue 13, item 7): the real
//! `broker`, `streamer`, `collector` and `api`, and PostgreSQL, all serving certificates of one
//! throwaway CA made by the test (`testkit::tls::TestCa`).
//!
//! Hops: streamer → broker and collector → broker (`https://`, `--ca-file`, the broker's token),
//! collector → PostgreSQL and api → PostgreSQL (`sslmode=verify-full`, password), client → api
//! (HTTPS, the API's token), api → broker (`--broker-ca-file`, the broker's token, for the lag
//! of `/api/v1/pipeline`). Also the refusals a misconfigured hop must give at once and clearly:
//! a streamer trusting another CA, a collector without the broker's token, a client without the
//! API's token, an API trusting another CA (its page says the broker is unreachable). Each
//! listener's own TLS is tested with its binary; here, that they fit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testkit::https::{agent_trusting, HttpsBroker};
use testkit::tls::TestCa;
use testkit::{bin_path, free_port, sample_csv, wait_until, Child, Postgres};

use crate::pipeline::{produced_in_log, tail, wait_exit_ok};

const TOPIC: &str = "telemetry";
const BROKER_TOKEN: &str = "broker-e2e-s3cret";
const API_TOKEN: &str = "api-e2e-s3cret";

/// The test's CA and the files every process is given: the CA bundle and a server
/// certificate with its key per listener.
struct Trust {
    ca: TestCa,
    dir: tempfile::TempDir,
}

impl Trust {
    fn new() -> Trust {
        Trust {
            ca: TestCa::new("pipeline e2e CA"),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The CA bundle the clients trust.
    fn ca_file(&self) -> PathBuf {
        self.ca.write(self.dir.path(), "ca.pem")
    }

    /// A certificate and key for `localhost` and `127.0.0.1`, as PEM.
    fn server_cert(&self) -> (String, String) {
        self.ca.server_cert(&["localhost", "127.0.0.1"])
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }
}

/// The `DATABASE_URL` of `pg` over TLS verified against `ca_file` (certificate and host name).
fn verified_database_url(pg: &Postgres, ca_file: &Path) -> String {
    format!(
        "postgres://postgres:postgres@localhost:{}/telemetry?sslmode=verify-full&sslrootcert={}",
        pg.port(),
        ca_file.display()
    )
}

/// A streamer or collector of `broker` trusting `ca_file`, with `token` when given.
fn client(
    binary: &str,
    broker: &HttpsBroker,
    ca_file: &Path,
    token: Option<&str>,
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new(bin_path(binary));
    cmd.args(["--broker", &broker.url, "--topic", TOPIC])
        .arg("--ca-file")
        .arg(ca_file)
        .args(extra)
        .env("STREAMER_METRICS_LISTEN", "127.0.0.1:0")
        .env("COLLECTOR_METRICS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .env_remove("BROKER_TOKEN");
    if let Some(token) = token {
        cmd.env("BROKER_TOKEN", token);
    }
    cmd
}

/// The api on a free port, asking `broker` for end offsets trusting `ca_file`, with the
/// broker's token; and its port.
fn api(broker: &HttpsBroker, ca_file: &Path, database_url: &str) -> (Command, u16) {
    let port = free_port();
    let mut cmd = Command::new(bin_path("api"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--broker-url", &broker.url])
        .arg("--broker-ca-file")
        .arg(ca_file)
        .env("BROKER_TOKEN", BROKER_TOKEN)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "info")
        .env_remove("API_TOKEN");
    (cmd, port)
}

/// One HTTPS answer: status and body (error statuses included), `None` when nothing answered.
fn get(agent: &ureq::Agent, url: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut request = agent.get(url);
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    match request.call() {
        Ok(r) => Some((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(status, r)) => Some((status, r.into_string().unwrap_or_default())),
        Err(_) => None,
    }
}

/// Each partition's log end offset at the broker (empty while the topic does not exist).
fn log_ends(agent: &ureq::Agent, broker: &HttpsBroker) -> Vec<(i64, i64)> {
    let url = format!("{}/v1/topics/{TOPIC}", broker.url);
    let Some((200, body)) = get(agent, &url, Some(BROKER_TOKEN)) else {
        return Vec::new();
    };
    let topic: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    topic["partitions"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p["partition"].as_i64().unwrap_or(-1),
                        p["log_end_offset"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One number from PostgreSQL over verified TLS; -1 while it cannot be asked.
fn count(database_url: &str, sql: &str) -> i64 {
    store::connect::client(database_url)
        .ok()
        .and_then(|mut c| c.query_one(sql, &[]).ok())
        .map(|row| row.get::<_, i64>(0))
        .unwrap_or(-1)
}

#[test]
fn over_tls_with_tokens_on_every_hop_the_sample_arrives_once_and_the_api_shows_the_brokers_lag() {
    const ROWS: i64 = 2470;
    let trust = Trust::new();
    let ca_file = trust.ca_file();
    let agent = agent_trusting(&trust.ca.cert_pem);

    let (cert, key) = trust.server_cert();
    let pg = Postgres::start_with_tls(&cert, &key);
    let database_url = verified_database_url(&pg, &ca_file);
    let (cert, key) = trust.server_cert();
    let broker = HttpsBroker::start(&cert, &key, Some(BROKER_TOKEN), &[]);
    broker.wait_ready(&trust.ca.cert_pem);

    let mut collector = client("collector", &broker, &ca_file, Some(BROKER_TOKEN), &[]);
    collector.env("DATABASE_URL", &database_url);
    let mut collector = Child::spawn("collector", collector);
    let mut streamer = client(
        "streamer",
        &broker,
        &ca_file,
        Some(BROKER_TOKEN),
        &["--group", "tls"],
    );
    streamer.arg("--csv").arg(sample_csv());
    let mut streamer = Child::spawn("streamer", streamer);

    let (cert, key) = trust.server_cert();
    let (mut api, api_port) = api(&broker, &ca_file, &database_url);
    api.env("API_TLS_CERT", trust.write("api.crt", &cert))
        .env("API_TLS_KEY", trust.write("api.key", &key))
        .env("API_TOKEN_FILE", trust.write("api-token", API_TOKEN));
    let api = Child::spawn("api", api);
    let api_url = format!("https://127.0.0.1:{api_port}");

    // Every row of the file produced once (the streamer's own count), and the collector's
    // offsets in PostgreSQL covering the whole log: no row can arrive after this.
    wait_exit_ok(&mut streamer, Duration::from_secs(60));
    assert_eq!(produced_in_log(&streamer.log()) as i64, ROWS);
    wait_until(Duration::from_secs(60), "every message stored", || {
        let end: i64 = log_ends(&agent, &broker).iter().map(|(_, end)| end).sum();
        end == ROWS
            && count(
                &database_url,
                "SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets",
            ) == end
    });
    assert_eq!(count(&database_url, "SELECT count(*) FROM telemetry"), ROWS);
    assert_eq!(
        count(
            &database_url,
            "SELECT count(*) FROM (SELECT 1 FROM telemetry GROUP BY src_partition, src_offset HAVING count(*) > 1) d"
        ),
        0,
        "a broker message stored twice"
    );
    assert_eq!(
        count(
            &database_url,
            "SELECT count(DISTINCT gpu_uuid) FROM telemetry"
        ),
        247
    );

    // The API over HTTPS: the probes are open, the data needs the API's token.
    wait_until(Duration::from_secs(30), "the api to be ready", || {
        get(&agent, &format!("{api_url}/readyz"), None).is_some_and(|(s, _)| s == 200)
    });
    let pipeline_url = format!("{api_url}/api/v1/pipeline");
    for token in [None, Some("wrong"), Some(BROKER_TOKEN)] {
        let (status, body) = get(&agent, &pipeline_url, token).expect("an answer over HTTPS");
        assert_eq!(status, 401, "{token:?}: {body}");
    }
    let (status, body) =
        get(&agent, &pipeline_url, Some(API_TOKEN)).expect("the pipeline over HTTPS");
    assert_eq!(status, 200, "{body}");
    let pipeline: serde_json::Value = serde_json::from_str(&body).expect("pipeline JSON");
    assert_eq!(pipeline["points_total"], ROWS, "{pipeline}");
    // The end offsets come from the broker, asked over TLS with its token: without that hop
    // they would be null and the broker "unreachable".
    assert_eq!(pipeline["broker"], "reachable", "{pipeline}");
    let ends = log_ends(&agent, &broker);
    let consumers = pipeline["consumers"].as_array().expect("consumers");
    assert_eq!(consumers.len(), ends.len(), "{pipeline}");
    for (partition, end) in ends {
        let consumer = consumers
            .iter()
            .find(|c| c["partition"] == partition)
            .unwrap_or_else(|| panic!("no progress for partition {partition}: {pipeline}"));
        assert_eq!(consumer["end_offset"], end, "{consumer}");
        assert_eq!(consumer["lag"], 0, "{consumer}");
    }

    let status = collector.terminate(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "the collector did not stop cleanly: {status:?}\n{}",
        tail(&collector.log())
    );
    for child in [&collector, &streamer, &api, &broker.child] {
        child.scan_for_panics();
    }
}

/// Runs `command` as `name` and waits for it to stop by itself (a refusal must not be retried
/// for long); returns its exit code and log.
fn refused(name: &str, command: Command) -> (Option<i32>, String) {
    let mut child = Child::spawn(name, command);
    let status = child.wait_timeout(Duration::from_secs(10));
    child.scan_for_panics();
    let log = child.log();
    let status = status.unwrap_or_else(|| panic!("{name} still runs after 10 s:\n{}", tail(&log)));
    (status.code(), log)
}

#[test]
fn a_streamer_trusting_another_ca_and_a_collector_without_the_token_stop_at_once_and_say_why() {
    let trust = Trust::new();
    let ca_file = trust.ca_file();
    let (cert, key) = trust.server_cert();
    let broker = HttpsBroker::start(&cert, &key, Some(BROKER_TOKEN), &[]);
    broker.wait_ready(&trust.ca.cert_pem);
    let agent = agent_trusting(&trust.ca.cert_pem);
    let other_ca = TestCa::new("another CA").write(trust.dir.path(), "other-ca.pem");

    // Right token, wrong CA: the broker's certificate is refused and nothing is produced.
    let mut streamer = client(
        "streamer",
        &broker,
        &other_ca,
        Some(BROKER_TOKEN),
        &["--group", "tls"],
    );
    streamer.arg("--csv").arg(sample_csv());
    let (code, log) = refused("streamer", streamer);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}:\n{log}");
    assert!(log.contains("TLS to the broker refused"), "{log}");
    assert!(log.contains("UnknownIssuer"), "{log}");
    wait_until(
        Duration::from_secs(10),
        "the broker to see the streamer refuse its certificate",
        || broker.refused_handshakes() >= 1,
    );
    assert!(
        log_ends(&agent, &broker).is_empty(),
        "something was produced"
    );

    // Right CA, no token: the broker answers 401 and the collector stops saying so.
    let pg = Postgres::start();
    let mut collector = client("collector", &broker, &ca_file, None, &[]);
    collector.env("DATABASE_URL", pg.url());
    let (code, log) = refused("collector", collector);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}:\n{log}");
    assert!(log.contains("401"), "{log}");
    assert!(log.to_lowercase().contains("token"), "{log}");
}

#[test]
fn an_api_trusting_another_ca_shows_the_broker_unreachable_and_no_lag() {
    let trust = Trust::new();
    let (cert, key) = trust.server_cert();
    let broker = HttpsBroker::start(&cert, &key, Some(BROKER_TOKEN), &["--partitions", "1"]);
    broker.wait_ready(&trust.ca.cert_pem);
    // The topic exists: only the certificate can keep the API from its end offsets.
    let created = agent_trusting(&trust.ca.cert_pem)
        .put(&format!("{}/v1/topics/{TOPIC}", broker.url))
        .set("Authorization", &format!("Bearer {BROKER_TOKEN}"))
        .set("Content-Type", "application/json")
        .send_string(r#"{"partitions":1}"#)
        .expect("create the topic");
    assert_eq!(created.status(), 201);
    let pg = Postgres::start();
    let mut db = pg.connect();
    store::schema::migrate(&mut db).expect("migrate");
    db.execute(
        "INSERT INTO consumer_offsets (group_name, topic, partition, next_offset) VALUES ('collectors', $1, 0, 0)",
        &[&TOPIC],
    )
    .expect("a consumer's progress");

    let other_ca = TestCa::new("another CA").write(trust.dir.path(), "other-ca.pem");
    let (api, port) = api(&broker, &other_ca, &pg.url());
    let api = Child::spawn("api", api);
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(30), "the api to be ready", || {
        testkit::http_get(&format!("{base}/readyz")).is_some_and(|(s, _)| s == 200)
    });
    let (status, body) =
        testkit::http_get(&format!("{base}/api/v1/pipeline")).expect("the pipeline");
    assert_eq!(status, 200, "{body}");
    let pipeline: serde_json::Value = serde_json::from_str(&body).expect("pipeline JSON");
    assert_eq!(pipeline["broker"], "unreachable", "{pipeline}");
    assert_eq!(
        pipeline["consumers"][0]["end_offset"],
        serde_json::Value::Null
    );
    assert_eq!(pipeline["consumers"][0]["lag"], serde_json::Value::Null);
    // The broker logs the refusal once it has read the API's alert: a moment after the answer.
    wait_until(
        Duration::from_secs(10),
        "the broker to see the API refuse its certificate",
        || broker.refused_handshakes() >= 1,
    );
    api.scan_for_panics();
}
