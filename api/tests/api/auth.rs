//! `--token` / `API_TOKEN_FILE` and `--tls-cert` / `--tls-key` on the real `api` binary: the
//! data needs the bearer token, the probes, metrics and docs do not; HTTPS with a throwaway CA.

use std::process::Command;
use std::time::Duration;

use testkit::https::{client_trusting, request as https};
use testkit::tls::TestCa;
use testkit::{wait_until, Child, Postgres};

use crate::harness::{request, start_api_with};

/// A PostgreSQL with the schema and no points, and a directory for the test's files.
fn empty_database() -> (Postgres, tempfile::TempDir) {
    let pg = Postgres::start();
    let mut client = pg.connect();
    store::schema::migrate(&mut client).expect("migrate");
    (pg, tempfile::tempdir().expect("tempdir"))
}

#[test]
fn with_a_token_the_data_needs_it_and_probes_metrics_and_docs_do_not() {
    let (pg, dir) = empty_database();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "api-s3cret\n").expect("write the token file");
    let token_file = token_file.to_str().expect("utf-8 path");
    let (mut api, base) = start_api_with(&pg, &[("API_TOKEN_FILE", token_file)]);

    let anonymous = request("GET", &format!("{base}/api/v1/gpus"));
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(anonymous.content_type, "application/problem+json");
    let agent = ureq::AgentBuilder::new().build();
    let with = |token: &str| match agent
        .get(&format!("{base}/api/v1/gpus"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
    {
        Ok(r) => (r.status(), r.header("www-authenticate").map(str::to_string)),
        Err(ureq::Error::Status(s, r)) => (s, r.header("www-authenticate").map(str::to_string)),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(with("wrong"), (401, Some("Bearer".to_string())));
    assert_eq!(with("api-s3cret").0, 200, "the token from the file");
    for open in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/health",
        "/openapi.json",
        "/docs",
        "/ui",
    ] {
        assert_eq!(
            request("GET", &format!("{base}{open}")).status,
            200,
            "{open}"
        );
    }
    assert_eq!(
        request("GET", &format!("{base}/prometheus/api/v1/labels")).status,
        401
    );
    api.scan_for_panics();
    api.kill9();
}

#[test]
fn over_tls_the_api_serves_clients_that_trust_its_ca_and_not_others() {
    let (pg, dir) = empty_database();
    let ca = TestCa::new("api listener CA");
    let (cert, key) = ca.server_cert(&["localhost", "127.0.0.1"]);
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert).expect("write the certificate");
    std::fs::write(&key_path, key).expect("write the key");
    let port = testkit::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--tls-cert", cert_path.to_str().expect("path")])
        .args(["--tls-key", key_path.to_str().expect("path")])
        .env("DATABASE_URL", pg.url());
    let mut api = Child::spawn("api-https", command);
    let base = format!("https://127.0.0.1:{port}");
    let trusted = client_trusting(&ca.cert_pem);
    wait_until(
        Duration::from_secs(30),
        "the api to answer over TLS",
        || {
            https(&trusted, &base, "GET", "/readyz", "", b"")
                .is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
        },
    );
    let gpus = https(&trusted, &base, "GET", "/api/v1/gpus", "", b"").expect("GET over TLS");
    assert!(gpus.starts_with("HTTP/1.1 200"), "{gpus}");
    assert!(gpus.contains(r#""gpus":[]"#), "{gpus}");

    let stranger = client_trusting(&TestCa::new("unrelated CA").cert_pem);
    let error = https(&stranger, &base, "GET", "/healthz", "", b"").expect_err("an unknown issuer");
    assert!(error.contains("UnknownIssuer"), "{error}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(testkit::http_get(&format!("http://127.0.0.1:{port}/healthz")).is_none());
    api.scan_for_panics();
    api.kill9();
}
