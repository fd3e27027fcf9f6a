//! `--tls-cert` / `--tls-key`: HTTPS on the broker's listener, with a throwaway CA made here.

use std::net::TcpStream;
use std::time::Duration;

use testkit::https::{client_trusting, request as https};
use testkit::tls::TestCa;
use testkit::wait_until;

use crate::harness::{pinned, spawn, tempdir};
use crate::raw;

#[test]
fn over_tls_clients_that_trust_the_ca_are_served_and_others_refused() {
    let dir = tempdir();
    let ca = TestCa::new("broker test CA");
    let (cert, key) = ca.server_cert(&["localhost", "127.0.0.1"]);
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert).expect("write the certificate");
    std::fs::write(&key_path, key).expect("write the key");
    let data = dir.path().join("data");
    let (mut child, url) = spawn(
        &data,
        &[
            "--partitions",
            "1",
            "--header-read-timeout-ms",
            "500",
            "--token",
            "s3cret",
        ],
        |cmd| {
            cmd.env("BROKER_TLS_CERT", &cert_path)
                .env("BROKER_TLS_KEY", &key_path);
        },
    );
    assert!(url.starts_with("https://"), "{url}");
    let trusted = client_trusting(&ca.cert_pem);
    wait_until(
        Duration::from_secs(20),
        "the broker to be ready over TLS",
        || https(&trusted, &url, "GET", "/readyz", "", b"").is_ok_and(|a| raw::status(&a) == 200),
    );

    // A produce and a fetch over TLS, with the token.
    let auth = "Authorization: Bearer s3cret\r\nContent-Type: application/x-ndjson\r\n";
    let produced = https(
        &trusted,
        &url,
        "POST",
        "/v1/topics/secure/messages",
        auth,
        pinned(0, 42).as_bytes(),
    )
    .expect("produce over TLS");
    assert_eq!(raw::status(&produced), 200, "{produced}");
    let fetched = https(
        &trusted,
        &url,
        "GET",
        "/v1/topics/secure/partitions/0/messages?offset=0",
        auth,
        b"",
    )
    .expect("fetch over TLS");
    assert_eq!(raw::status(&fetched), 200, "{fetched}");
    assert!(fetched.contains(r#""n":42"#), "{fetched}");
    let refused =
        https(&trusted, &url, "GET", "/v1/topics", "", b"").expect("TLS without the token");
    assert_eq!(raw::status(&refused), 401, "{refused}");

    // A client that trusts another CA refuses the broker's certificate.
    let stranger = client_trusting(&TestCa::new("unrelated CA").cert_pem);
    let error = https(&stranger, &url, "GET", "/healthz", "", b"").expect_err("an unknown issuer");
    assert!(
        error.contains("UnknownIssuer") || error.contains("issuer"),
        "{error}"
    );

    // Plain HTTP gets no HTTP answer.
    let mut plain = raw::connect(&url);
    let answer = raw::exchange(&mut plain, "GET", "/healthz", "", b"");
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP was answered");

    // A connection that never starts its handshake is closed at the header-read timeout.
    let mut silent: TcpStream = raw::connect(&url);
    let took = raw::time_until_closed(&mut silent);
    assert!(
        took < Duration::from_secs(3),
        "a silent TLS socket stayed {took:?}"
    );

    let status = child.terminate(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    child.scan_for_panics();
}
