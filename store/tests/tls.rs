//! TLS to PostgreSQL, against a real server: each `sslmode` does what libpq's does.
//!
//! Every test makes its own certificate authority and server certificate (for `localhost` and
//! `127.0.0.1`) and starts a throwaway PostgreSQL that serves it. That server accepts plaintext
//! TCP only to [`Postgres::PLAINTEXT_DATABASE`]; everything else must be TLS.

use std::path::PathBuf;

use store::connect;
use testkit::tls::TestCa;
use testkit::Postgres;

/// A TLS PostgreSQL with the CA file that verifies it, and an unrelated CA's file.
struct TlsServer {
    pg: Postgres,
    ca_file: PathBuf,
    unrelated_ca_file: PathBuf,
    _files: tempfile::TempDir,
}

impl TlsServer {
    fn start() -> TlsServer {
        let ca = TestCa::new("store test CA");
        let (cert_pem, key_pem) = ca.server_cert(&["localhost", "127.0.0.1"]);
        let pg = Postgres::start_with_tls(&cert_pem, &key_pem);
        let files = tempfile::tempdir().expect("tempdir");
        TlsServer {
            ca_file: ca.write(files.path(), "ca.pem"),
            unrelated_ca_file: TestCa::new("unrelated CA").write(files.path(), "other-ca.pem"),
            pg,
            _files: files,
        }
    }

    /// `key=value` form for database `telemetry` on 127.0.0.1, plus `extra`.
    fn key_value(&self, extra: &str) -> String {
        format!("{} {extra}", self.pg.connection_string())
    }
}

/// Whether this session's traffic is encrypted, as the server sees it.
fn is_encrypted(client: &mut postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("query pg_stat_ssl")
        .get(0)
}

/// An error and its sources, one line, as a log would print it.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn connect_error(connection_string: &str) -> String {
    match connect::client(connection_string) {
        Ok(_) => panic!("connected with {connection_string:?}"),
        Err(e) => chain(&e),
    }
}

#[test]
fn verify_full_with_the_right_ca_gives_an_encrypted_session() {
    let server = TlsServer::start();
    // The URL form, to an IP address the certificate names.
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        server.pg.url(),
        server.ca_file.display()
    );
    let mut client = connect::client(&url).expect("connect with verify-full");
    assert!(is_encrypted(&mut client));
}

#[test]
fn verify_full_with_an_unrelated_ca_fails_saying_the_issuer_is_unknown() {
    let server = TlsServer::start();
    let message = connect_error(&server.key_value(&format!(
        "sslmode=verify-full sslrootcert={}",
        server.unrelated_ca_file.display()
    )));
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(message.contains("sslmode=verify-full"), "{message}");
    assert!(
        message.contains(&server.unrelated_ca_file.display().to_string()),
        "{message}"
    );
}

#[test]
fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let server = TlsServer::start();
    // TCP goes to hostaddr; the certificate must name host (libpq's rule).
    let at = |host: &str, mode: &str| {
        format!(
            "host={host} hostaddr=127.0.0.1 port={} user=postgres password=postgres \
             dbname=telemetry sslmode={mode} sslrootcert={}",
            server.pg.port(),
            server.ca_file.display()
        )
    };

    let message = connect_error(&at("db.example.invalid", "verify-full"));
    assert!(message.contains("not valid for name"), "{message}");
    assert!(message.contains("db.example.invalid"), "{message}");

    let mut client = connect::client(&at("db.example.invalid", "verify-ca"))
        .expect("verify-ca does not check the host name");
    assert!(is_encrypted(&mut client));

    let mut client = connect::client(&at("localhost", "verify-full"))
        .expect("verify-full to a DNS name the certificate has");
    assert!(is_encrypted(&mut client));
}

#[test]
fn require_without_a_root_certificate_encrypts_without_checking_it() {
    let server = TlsServer::start();
    let mut client =
        connect::client(&server.key_value("sslmode=require")).expect("connect with require");
    assert!(is_encrypted(&mut client));
}

#[test]
fn require_with_a_root_certificate_checks_the_chain_as_libpq_does() {
    let server = TlsServer::start();
    let message = connect_error(&server.key_value(&format!(
        "sslmode=require sslrootcert={}",
        server.unrelated_ca_file.display()
    )));
    assert!(message.contains("UnknownIssuer"), "{message}");

    let mut client = connect::client(&server.key_value(&format!(
        "sslmode=require sslrootcert={}",
        server.ca_file.display()
    )))
    .expect("require with the right CA");
    assert!(is_encrypted(&mut client));
}

#[test]
fn disable_gives_a_plaintext_session_where_the_server_allows_one() {
    let server = TlsServer::start();
    let plaintext = format!(
        "{} sslmode=disable",
        server
            .pg
            .connection_string_for(Postgres::PLAINTEXT_DATABASE)
    );
    let mut client = connect::client(&plaintext).expect("connect with disable");
    assert!(!is_encrypted(&mut client));
}

#[test]
fn a_plaintext_connection_is_refused_where_the_server_requires_tls() {
    let server = TlsServer::start();
    let message = connect_error(&server.key_value("sslmode=disable"));
    assert!(message.contains("no encryption"), "{message}");
}

#[test]
fn prefer_gets_tls_when_the_server_offers_it() {
    let server = TlsServer::start();
    let mut explicit =
        connect::client(&server.key_value("sslmode=prefer")).expect("connect with prefer");
    assert!(is_encrypted(&mut explicit));
    // No sslmode at all is prefer, as in libpq.
    let mut default = connect::client(&server.pg.url()).expect("connect without sslmode");
    assert!(is_encrypted(&mut default));
}

#[test]
fn the_pool_opens_verified_encrypted_connections() {
    let server = TlsServer::start();
    let manager = connect::manager(&format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        server.pg.url(),
        server.ca_file.display()
    ))
    .expect("manager");
    let pool: connect::Pool = r2d2::Pool::builder()
        .max_size(2)
        .build(manager)
        .expect("pool");
    let mut client = pool.get().expect("a pooled connection");
    assert!(is_encrypted(&mut client));
}
