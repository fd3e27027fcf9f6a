//! HTTPS on both sides of the tests of TLS, with certificates the test made (see
//! [`crate::tls::TestCa`]):
//!
//! - [`HttpsBroker`], the real `broker` binary serving HTTPS (and, when asked, requiring a
//!   token from a file): the server of the tests of the broker's TLS *clients* (the client
//!   library, the streamer and collector, the API's call to the broker). The broker's own
//!   listener is tested in the broker's tests.
//! - [`client_trusting`], [`agent_trusting`] and [`request`], clients for the tests of TLS
//!   listeners (the broker's and the API's): rustls trusting only a given CA; `request` sends
//!   one request per connection and answers the raw text, the agent is `ureq`'s.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::{bin_path, wait_until, Child};

/// The real `broker` binary on `127.0.0.1`, port chosen by the broker, serving HTTPS with a
/// certificate the test made. Stopped (SIGTERM, then SIGKILL) when dropped.
pub struct HttpsBroker {
    /// `https://127.0.0.1:{port}`, as the broker's log announced it.
    pub url: String,
    pub child: Child,
    // The certificate, key, token file and data directory, for as long as the broker runs.
    _files: tempfile::TempDir,
}

impl HttpsBroker {
    /// Starts the broker with `cert_pem` (leaf first) and `key_pem` given by environment
    /// (`BROKER_TLS_CERT`, `BROKER_TLS_KEY`), with `token` when given in a file
    /// (`BROKER_TOKEN_FILE`), and `extra` flags; returns once it listens. Whether it is also
    /// ready is for the test to wait on: only a client trusting the certificate can ask.
    pub fn start(cert_pem: &str, key_pem: &str, token: Option<&str>, extra: &[&str]) -> Self {
        let files = tempfile::Builder::new()
            .prefix("testkit-https-broker-")
            .tempdir()
            .expect("tempdir");
        let write = |name: &str, text: &str| {
            let path = files.path().join(name);
            std::fs::write(&path, text).expect("write a broker file");
            path
        };
        let mut command = std::process::Command::new(bin_path("broker"));
        command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(files.path().join("data"))
            // Small segments: every active segment is preallocated whole.
            .args(["--segment-bytes", "1048576"])
            .args(extra)
            .env("BROKER_TLS_CERT", write("cert.pem", cert_pem))
            .env("BROKER_TLS_KEY", write("key.pem", key_pem))
            // The serving module reports refused handshakes at debug level: see
            // [`HttpsBroker::refused_handshakes`].
            .env("RUST_LOG", "info,pipeline_common::serve=debug")
            .env("NO_COLOR", "1")
            .env_remove("BROKER_TOKEN");
        if let Some(token) = token {
            command.env("BROKER_TOKEN_FILE", write("token", &format!("{token}\n")));
        }
        let mut child = Child::spawn("https-broker", command);
        let mut url = None;
        wait_until(Duration::from_secs(20), "the broker to listen", || {
            assert!(child.is_running(), "the broker exited:\n{}", child.log());
            url = listening_url(&child.log());
            url.is_some()
        });
        HttpsBroker {
            url: url.unwrap_or_default(),
            child,
            _files: files,
        }
    }

    /// Waits until the broker answers `/readyz` with 200 to a client trusting `ca_pem`.
    pub fn wait_ready(&self, ca_pem: &str) {
        let agent = agent_trusting(ca_pem);
        let readyz = format!("{}/readyz", self.url);
        wait_until(Duration::from_secs(20), "the broker to be ready", || {
            agent.get(&readyz).call().is_ok()
        });
    }

    /// TLS handshakes the broker saw fail so far (its log's debug line for each).
    pub fn refused_handshakes(&self) -> usize {
        self.child.log().matches("TLS handshake failed").count()
    }
}

/// The `https://host:port` of the broker's "listening on https://host:port/" log line.
fn listening_url(log: &str) -> Option<String> {
    let start = log.find("listening on https://")? + "listening on ".len();
    let rest = &log[start..];
    let end = rest["https://".len()..].find('/')? + "https://".len();
    Some(rest[..end].to_string())
}

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

/// A `ureq` agent that trusts only the certificates in `ca_pem` (10 s timeout).
pub fn agent_trusting(ca_pem: &str) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .tls_config(client_trusting(ca_pem))
        .timeout(Duration::from_secs(10))
        .build()
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
