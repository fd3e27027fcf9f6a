//! The broker client over `https://` against the real `broker` binary serving HTTPS
//! (`testkit::https::HttpsBroker`), with a throwaway CA and server certificates made by the
//! test (`testkit::tls`). Checks that the client verifies the broker against the CA file and
//! sends its token over TLS, and that it refuses, at once and without retrying, a broker whose
//! certificate another CA signed, names another host, or that only the built-in roots would
//! have to vouch for. The broker's own listener is tested with the broker.

use std::process::Command;
use std::time::{Duration, Instant};

use broker_client::Error;
use broker_client::{push_record, BrokerClient, ClientConfig, RetryPolicy};
use pipeline_common::trust::CaFile;
use testkit::https::HttpsBroker;
use testkit::tls::TestCa;
use testkit::{bin_path, wait_until};

/// The token the brokers of these tests require.
const TOKEN: &str = "tls-client-s3cret";

/// A broker serving a certificate `signer` signed for `names`, requiring [`TOKEN`].
fn broker(signer: &TestCa, names: &[&str]) -> HttpsBroker {
    let (cert, key) = signer.server_cert(names);
    HttpsBroker::start(&cert, &key, Some(TOKEN), &["--partitions", "1"])
}

/// A client of `broker` trusting `ca` (or the built-in roots) and sending `token`, retrying
/// transport failures for long enough that a refusal that were retried would show.
fn client(
    broker: &HttpsBroker,
    ca: Option<&TestCa>,
    token: Option<&str>,
) -> (BrokerClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = ca.map(|ca| CaFile::load(&ca.write(dir.path(), "ca.pem")).expect("CA file"));
    let mut config = ClientConfig::new(broker.url.clone())
        .ca_file(ca_file)
        .token(token.map(str::to_string));
    config.retry = RetryPolicy {
        give_up_after: Some(Duration::from_secs(5)),
        ..RetryPolicy::default()
    };
    (BrokerClient::new(config), dir)
}

/// The client's answer to `GET /v1/topics/t`, which must be a TLS refusal made in one
/// attempt: its reason.
fn refusal(broker: &HttpsBroker, client: &BrokerClient) -> String {
    let started = Instant::now();
    let reason = match client.topic("t") {
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
    };
    // The client has returned: every attempt it made has reached the broker by now.
    wait_until(
        Duration::from_secs(10),
        "the broker to log the refused handshake",
        || broker.refused_handshakes() >= 1,
    );
    assert_eq!(broker.refused_handshakes(), 1, "the refusal was retried");
    reason
}

#[test]
fn a_broker_whose_certificate_the_ca_file_signed_is_trusted_and_gets_the_token() {
    let ca = TestCa::new("broker test CA");
    let broker = broker(&ca, &["127.0.0.1", "localhost"]);
    broker.wait_ready(&ca.cert_pem);
    let (anonymous, _dir) = client(&broker, Some(&ca), None);
    let (client, _dir) = client(&broker, Some(&ca), Some(TOKEN));
    assert!(client
        .create_topic("t", 1)
        .expect("create a topic over https"));
    let mut body = Vec::new();
    for n in 0..7 {
        push_record(&mut body, "gpu", &serde_json::json!({ "n": n })).expect("encode");
    }
    let ack = client
        .produce("t", &body, None)
        .expect("produce over https");
    assert_eq!(ack.results.len(), 7);
    let topic = client.topic("t").expect("topic over https");
    assert_eq!(topic.topic, "t");
    assert_eq!(topic.partitions[0].log_end_offset, 7);

    // Over the same verified TLS, the broker still wants its token: a 401, not retried.
    match anonymous.topic("t") {
        Err(e @ Error::Status { status: 401, .. }) => assert!(!e.is_retryable()),
        other => panic!("expected a 401 without the token, got {other:?}"),
    }
    assert_eq!(broker.refused_handshakes(), 0);
}

#[test]
fn a_broker_whose_certificate_another_ca_signed_is_refused_without_retrying() {
    let trusted = TestCa::new("the CA the client trusts");
    let other = TestCa::new("another CA");
    let broker = broker(&other, &["127.0.0.1"]);
    broker.wait_ready(&other.cert_pem);
    let (client, _dir) = client(&broker, Some(&trusted), Some(TOKEN));
    let reason = refusal(&broker, &client);
    assert!(reason.contains("UnknownIssuer"), "{reason}");
}

#[test]
fn a_certificate_for_another_host_is_refused() {
    let ca = TestCa::new("broker test CA");
    // Signed by the CA the client trusts, for a name that is not the URL's 127.0.0.1.
    let broker = broker(&ca, &["broker.example"]);
    let (client, _dir) = client(&broker, Some(&ca), Some(TOKEN));
    let reason = refusal(&broker, &client);
    assert!(reason.contains("not valid for name"), "{reason}");
}

#[test]
fn without_a_ca_file_only_the_built_in_roots_are_trusted() {
    // A private CA is in no root program: without --ca-file, its broker is refused.
    let ca = TestCa::new("private CA");
    let broker = broker(&ca, &["127.0.0.1"]);
    broker.wait_ready(&ca.cert_pem);
    let (client, _dir) = client(&broker, None, Some(TOKEN));
    let reason = refusal(&broker, &client);
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
