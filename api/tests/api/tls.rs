//! The `api` binary over TLS to PostgreSQL: `sslmode=verify-full` with the server's CA serves,
//! with an unrelated CA it answers 503 and its log says why.

use std::process::Command;
use std::time::Duration;

use testkit::tls::TestCa;
use testkit::{wait_until, Child, Postgres};

/// Starts the API with `DATABASE_URL` and returns it with its base URL, once it listens.
fn start_api(database_url: &str) -> (Child, String) {
    let port = testkit::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--db-timeout-ms", "1000"])
        .env("DATABASE_URL", database_url);
    let api = Child::spawn("api-tls", command);
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(30), "the api to listen", || {
        testkit::http_get(&format!("{base}/healthz")).is_some()
    });
    (api, base)
}

#[test]
fn the_api_verifies_the_database_certificate_and_says_why_it_refuses_one() {
    let ca = TestCa::new("api test CA");
    let (cert, key) = ca.server_cert(&["localhost", "127.0.0.1"]);
    let pg = Postgres::start_with_tls(&cert, &key);
    let files = tempfile::tempdir().expect("tempdir");
    let right = ca.write(files.path(), "ca.pem");
    let wrong = TestCa::new("unrelated CA").write(files.path(), "other.pem");
    let url = |ca: &std::path::Path| {
        format!(
            "postgres://postgres:postgres@localhost:{}/telemetry?sslmode=verify-full&sslrootcert={}",
            pg.port(),
            ca.display()
        )
    };
    let mut client = store::connect::client(&url(&right)).expect("a verified TLS client");
    store::schema::migrate(&mut client).expect("migrate over TLS");

    let (_api, base) = start_api(&url(&right));
    let (status, body) = testkit::http_get(&format!("{base}/api/v1/stats")).expect("stats answer");
    assert_eq!(status, 200, "verified TLS serves: {body}");

    let (api, base) = start_api(&url(&wrong));
    let (status, body) = testkit::http_get(&format!("{base}/api/v1/stats")).expect("stats answer");
    assert_eq!(status, 503, "an unverifiable server is not used: {body}");
    wait_until(Duration::from_secs(10), "the log to say why", || {
        let log = api.log();
        log.contains("UnknownIssuer") && log.contains("verify-full")
    });
}
