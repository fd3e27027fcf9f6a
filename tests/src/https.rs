//! A stand-in HTTPS server for the tests of TLS *clients* (the broker client, the API's call
//! to the broker): rustls on a std listener, presenting a certificate the test made (see
//! [`crate::tls::TestCa`]) and answering one route with a fixed JSON body. It stands in only
//! for the handshake and one answer; the broker's and the API's own TLS listeners are tested
//! with them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConnection, StreamOwned};

/// An HTTPS server on 127.0.0.1 until the test process ends.
pub struct HttpsStandIn {
    pub port: u16,
    connections: Arc<AtomicUsize>,
}

impl HttpsStandIn {
    /// Serves `GET {path}` with `body` (200, JSON) and anything else with a 404, presenting
    /// `cert_pem` (the server certificate, then any intermediates) and its `key_pem`.
    pub fn start(cert_pem: &str, key_pem: &str, path: &str, body: &str) -> HttpsStandIn {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("server certificate");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("server key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let request_line = format!("GET {path} ");
        let body = body.to_string();
        // One connection at a time is plenty for a client test.
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let conn = ServerConnection::new(Arc::clone(&config)).expect("TLS session");
                // A refused handshake ends in an error here: that connection is simply over.
                let _ = answer(StreamOwned::new(conn, tcp), &request_line, &body);
            }
        });
        HttpsStandIn { port, connections }
    }

    /// Connections accepted so far (each client attempt is one: the answers close them).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request head (the handshake happens on the first read) and answers it.
fn answer(
    mut stream: StreamOwned<ServerConnection, TcpStream>,
    request_line: &str,
    body: &str,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let (status, body) = if head.starts_with(request_line.as_bytes()) {
        ("200 OK", body)
    } else {
        ("404 Not Found", r#"{"detail":"no such route"}"#)
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.conn.send_close_notify();
    stream.flush()
}
