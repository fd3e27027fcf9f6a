//! The broker client over `https://`: a throwaway CA and server certificates made by the test
//! (`testkit::tls`), and a one-route HTTPS server on rustls standing in for the broker's TLS
//! listener (`testkit::https`: only the handshake and `GET /v1/topics/{t}` matter here; the
//! broker's own TLS listener is tested with the broker). Checks that the client verifies the server against
//! the CA file, and that it refuses, at once and without retrying, a server whose certificate
//! another CA signed, names another host, or that only the built-in roots would have to vouch for.

use std::process::Command;
use std::time::{Duration, Instant};

use broker_client::Error;
use broker_client::{BrokerClient, ClientConfig, RetryPolicy};
use pipeline_common::trust::CaFile;
use testkit::bin_path;
use testkit::https::HttpsStandIn;
use testkit::tls::TestCa;

/// The answer the stand-in broker gives to `GET /v1/topics/t`.
const TOPIC: &str =
    r#"{"topic":"t","partitions":[{"partition":0,"log_start_offset":0,"log_end_offset":7}]}"#;

/// A client of `https://127.0.0.1:port` trusting `ca` (or the built-in roots), retrying
/// transport failures for long enough that a refusal that were retried would show.
fn client(port: u16, ca: Option<&TestCa>) -> (BrokerClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = ca.map(|ca| CaFile::load(&ca.write(dir.path(), "ca.pem")).expect("CA file"));
    let mut config = ClientConfig::new(format!("https://127.0.0.1:{port}")).ca_file(ca_file);
    config.retry = RetryPolicy {
        give_up_after: Some(Duration::from_secs(5)),
        ..RetryPolicy::default()
    };
    (BrokerClient::new(config), dir)
}

/// The client's answer to `GET /v1/topics/t`, which must be a TLS refusal, with its reason.
fn refusal(client: &BrokerClient) -> String {
    let started = Instant::now();
    match client.topic("t") {
        Err(e @ Error::Tls { .. }) => {
            assert!(!e.is_retryable());
            // Well under the 5 s the retry policy would spend on a retryable failure.
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
            e.to_string()
        }
        other => panic!("expected a TLS refusal, got {other:?}"),
    }
}

#[test]
fn a_broker_whose_certificate_the_ca_file_signed_is_trusted() {
    let ca = TestCa::new("broker test CA");
    let (cert, key) = ca.server_cert(&["127.0.0.1", "localhost"]);
    let server = HttpsStandIn::start(&cert, &key, "/v1/topics/t", TOPIC);
    let (client, _dir) = client(server.port, Some(&ca));
    let topic = client.topic("t").expect("topic over https");
    assert_eq!(topic.topic, "t");
    assert_eq!(topic.partitions[0].log_end_offset, 7);
}

#[test]
fn a_broker_whose_certificate_another_ca_signed_is_refused_without_retrying() {
    let trusted = TestCa::new("the CA the client trusts");
    let other = TestCa::new("another CA");
    let (cert, key) = other.server_cert(&["127.0.0.1"]);
    let server = HttpsStandIn::start(&cert, &key, "/v1/topics/t", TOPIC);
    let (client, _dir) = client(server.port, Some(&trusted));
    let reason = refusal(&client);
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    assert_eq!(server.connections(), 1, "the refusal was retried");
}

#[test]
fn a_certificate_for_another_host_is_refused() {
    let ca = TestCa::new("broker test CA");
    let (cert, key) = ca.server_cert(&["broker.example"]);
    let server = HttpsStandIn::start(&cert, &key, "/v1/topics/t", TOPIC);
    let (client, _dir) = client(server.port, Some(&ca));
    let reason = refusal(&client);
    assert!(reason.contains("not valid for name"), "{reason}");
}

#[test]
fn without_a_ca_file_only_the_built_in_roots_are_trusted() {
    // A private CA is in no root program: without --ca-file, its broker is refused.
    let ca = TestCa::new("private CA");
    let (cert, key) = ca.server_cert(&["127.0.0.1"]);
    let server = HttpsStandIn::start(&cert, &key, "/v1/topics/t", TOPIC);
    let (client, _dir) = client(server.port, None);
    let reason = refusal(&client);
    assert!(reason.contains("UnknownIssuer"), "{reason}");
}

#[test]
fn an_unusable_ca_file_stops_both_binaries_before_they_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello\n").expect("write");
    let missing = dir.path().join("missing.pem");
    for (binary, file, problem) in [
        ("streamer", &missing, "cannot read it"),
        ("collector", &not_pem, "no PEM certificate in it"),
    ] {
        let out = Command::new(bin_path(binary))
            .arg("--ca-file")
            .arg(file)
            .env_remove("BROKER_CA_FILE")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{binary}: {stderr}");
        assert!(
            stderr.contains(&file.display().to_string()),
            "{binary}: {stderr}"
        );
        assert!(stderr.contains(problem), "{binary}: {stderr}");
    }
    // The environment variable is the same flag.
    let out = Command::new(bin_path("collector"))
        .env("BROKER_CA_FILE", &missing)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read it"));
}
