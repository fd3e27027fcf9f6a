//! `--tls-cert` / `--tls-key`: HTTPS on the broker's listener, with a throwaway CA made here.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use testkit::tls::TestCa;
use testkit::wait_until;

use crate::harness::{pinned, spawn, tempdir};
use crate::raw;

/// A client that trusts only `ca_pem`.
fn client_trusting(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("add the CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One request over TLS (verified as `localhost`): the whole answer, or the TLS error.
fn https(
    config: &Arc<rustls::ClientConfig>,
    url: &str,
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> Result<String, String> {
    let tcp = raw::connect(url);
    let name = ServerName::try_from("localhost").expect("server name");
    let session =
        rustls::ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(session, tcp);
    // The handshake runs with the first write; a refused certificate fails it.
    std::io::Write::write_all(&mut tls, b"").map_err(|e| e.to_string())?;
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| e.to_string())?;
    }
    let answer = raw::exchange(&mut tls, method, path, extra, body);
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

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
