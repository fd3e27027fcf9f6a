//! An HTTPS client for the tests of TLS listeners: rustls trusting only a given CA (a
//! [`crate::tls::TestCa`]), one request per connection, the answer as text.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A client configuration that trusts only the certificates in `ca_pem`.
pub fn client_trusting(ca_pem: &str) -> Arc<rustls::ClientConfig> {
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

/// Sends one request (`Connection: close`, `extra` header lines each ending in `\r\n`) to
/// `https://host:port` verifying the certificate for `localhost`, and returns the whole
/// answer, or the connection or TLS error as text (a refused certificate fails the handshake).
pub fn request(
    config: &Arc<rustls::ClientConfig>,
    base_url: &str,
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> Result<String, String> {
    let addr = base_url.trim_start_matches("https://");
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let session =
        rustls::ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(session, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| e.to_string())?;
    }
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    tls.write_all(body).map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // The server closes after answering; an unclean close after the answer is fine here.
    let _ = tls.read_to_end(&mut answer);
    Ok(String::from_utf8_lossy(&answer).into_owned())
}
