//! Connections to PostgreSQL: the connection string, its `sslmode`, and TLS.
//!
//! This module owns turning a libpq-style connection string — URL
//! (`postgres://user:password@host:port/dbname?key=value&...`) or `key=value key=value ...` —
//! into a [`postgres::Config`] and the TLS connector that goes with it, and opening a
//! [`client`] or an r2d2 [`manager`] from them. What is done on a connection lives elsewhere.
//!
//! # `sslmode`, as libpq means it
//!
//! | `sslmode` | TLS | what is checked of the server's certificate |
//! | --- | --- | --- |
//! | `disable` | never | nothing |
//! | `prefer` (the default) | if the server offers it, else plaintext | nothing; with `sslrootcert`, the chain (as `verify-ca`) |
//! | `require` | always | nothing; with `sslrootcert`, the chain (as `verify-ca`) |
//! | `verify-ca` | always | the chain, up to a trusted root; not the host name |
//! | `verify-full` | always | the chain, and that the certificate names the host (DNS name or IP address) |
//!
//! `prefer` and `require` without `sslrootcert` encrypt against eavesdroppers but accept any
//! certificate, so they do not stop an active man in the middle. That `sslrootcert` turns
//! `prefer` and `require` into `verify-ca` is libpq's rule, kept for compatibility. Certificates
//! are never checked for revocation (libpq checks only with `sslcrl`, which we do not take).
//! One difference from libpq: under `prefer`, a TLS handshake that fails (with `sslrootcert`, a
//! rejected certificate) is an error; libpq would retry in plaintext.
//!
//! **Trusted roots.** The PEM file named by `sslrootcert` (one or more CA certificates; a
//! provider's bundle, such as Amazon RDS's `global-bundle.pem`, works as it is). Without
//! `sslrootcert`, `verify-ca` and `verify-full` trust the Mozilla root program's CAs, compiled
//! into the binary (the `webpki-roots` crate): not the operating system's store, and not
//! `~/.postgresql/root.crt`, where libpq would look (and fail without it). That fits services
//! whose server certificates chain to a public CA (Azure Database for PostgreSQL); services
//! with a private CA (Amazon RDS, Cloud SQL) need their CA file as `sslrootcert`.
//! `sslrootcert=system` names the built-in roots explicitly and, as in libpq, requires
//! `verify-full` (and makes it the default).
//!
//! **The host name** checked by `verify-full` is `host`. With `hostaddr` as well, the TCP
//! connection goes to `hostaddr` while the certificate must still name `host` (libpq's rule).
//!
//! # How it is done
//!
//! rust-postgres knows `sslmode` only as `disable`, `prefer` and `require` and knows no
//! `sslrootcert`, so we take `sslmode`, `sslrootcert`, `sslcert` and `sslkey` out of the string,
//! hand the rest unchanged to [`postgres::Config`]'s `FromStr`, and set its `ssl_mode`
//! ourselves: whether TLS is off, optional or mandatory (`verify-*` are `require` there). What
//! is checked of the certificate is the connector's job: a rustls verifier built for the
//! `sslmode` and roots. Client certificates (`sslcert`, `sslkey`) are not supported, and are
//! refused rather than ignored.
//!
//! The TLS stack is rustls with the ring crypto provider: no OpenSSL, no aws-lc-rs, so building
//! needs neither system TLS headers nor cmake, and the binaries link no system TLS library.
//!
//! **When a certificate is rejected**, rust-postgres reports "error performing TLS handshake"
//! with the reason in its source chain ("invalid peer certificate: UnknownIssuer",
//! "...certificate not valid for name ..."). [`client`] wraps it in [`Error::Connect`], which
//! names the `sslmode` and the roots. r2d2 keeps only the top line of a failed connection's
//! error, so every rejection is also logged (`warn`) with the reason, the `sslmode` and the
//! roots.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use pipeline_common::trust;
use r2d2_postgres::PostgresConnectionManager;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::Error;

/// The TLS connector every connection uses (also for `sslmode=disable`, where it is never
/// invoked).
pub type Tls = tokio_postgres_rustls::MakeRustlsConnect;

/// An r2d2 pool of plain clients, built without connecting (connections open on first use).
pub type Pool = r2d2::Pool<PostgresConnectionManager<Tls>>;

/// A parsed connection string: the postgres config (with `ssl_mode` set) and the connector.
pub fn parse(connection_string: &str) -> Result<(postgres::Config, Tls), Error> {
    let parsed = Parsed::new(connection_string)?;
    Ok((parsed.config, parsed.tls))
}

/// The r2d2 connection manager for `connection_string`. Nothing connects until the pool asks.
pub fn manager(connection_string: &str) -> Result<PostgresConnectionManager<Tls>, Error> {
    let parsed = Parsed::new(connection_string)?;
    Ok(PostgresConnectionManager::new(parsed.config, parsed.tls))
}

/// One client (for tests, migrations, tools).
pub fn client(connection_string: &str) -> Result<postgres::Client, Error> {
    let parsed = Parsed::new(connection_string)?;
    parsed
        .config
        .connect(parsed.tls)
        .map_err(|source| Error::Connect {
            tls: parsed.policy.to_string(),
            source,
        })
}

/// libpq's `sslmode`, except `allow` (plaintext first, TLS if refused), which rust-postgres
/// cannot do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// The value as written in a connection string.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What rust-postgres is told: whether TLS is off, optional or mandatory. What is checked of
    /// the certificate is the verifier's business, not rust-postgres's.
    fn transport(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
            }
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(value: &str) -> Result<SslMode, Error> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(Error::Config(format!(
                "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            ))),
        }
    }
}

/// A connection string taken apart: what rust-postgres needs, and the certificate policy kept
/// for error messages.
struct Parsed {
    config: postgres::Config,
    tls: Tls,
    policy: Arc<ServerCertPolicy>,
}

impl Parsed {
    fn new(connection_string: &str) -> Result<Parsed, Error> {
        let (rest, params) = split_tls_params(connection_string)?;
        let policy = Arc::new(ServerCertPolicy::new(&params)?);
        let mut config = postgres::Config::from_str(&rest).map_err(|e| {
            // Its top line is always "invalid connection string"; the source says why.
            let why =
                std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
            Error::Config(why)
        })?;
        config.ssl_mode(policy.ssl_mode.transport());
        let tls = Tls::new(client_config(Arc::clone(&policy))?);
        Ok(Parsed {
            config,
            tls,
            policy,
        })
    }
}

/// The TLS parameters found in a connection string, as written there.
#[derive(Debug, Default, PartialEq)]
struct TlsParams {
    ssl_mode: Option<String>,
    root_cert: Option<String>,
    /// `sslcert` or `sslkey`, if either was given: refused, since we have no client certificates.
    client_cert: Option<&'static str>,
}

impl TlsParams {
    /// Whether `key` is one of ours rather than rust-postgres's.
    fn owns(key: &str) -> bool {
        matches!(key, "sslmode" | "sslrootcert" | "sslcert" | "sslkey")
    }

    fn set(&mut self, key: &str, value: String) {
        match key {
            "sslmode" => self.ssl_mode = Some(value),
            "sslrootcert" => self.root_cert = Some(value),
            "sslcert" => self.client_cert = Some("sslcert"),
            "sslkey" => self.client_cert = Some("sslkey"),
            _ => {}
        }
    }
}

/// Splits `connection_string` into the string rust-postgres parses and our TLS parameters.
///
/// Only our parameters are taken out; everything else, malformed parts included, is passed on
/// byte for byte, so rust-postgres parses (and reports) it as it would have.
fn split_tls_params(connection_string: &str) -> Result<(String, TlsParams), Error> {
    let url_rest = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| connection_string.strip_prefix(scheme));
    match url_rest {
        Some(rest) => split_url(connection_string, connection_string.len() - rest.len()),
        None => Ok(split_key_value(connection_string)),
    }
}

/// The URL form: our parameters are taken out of the query string.
fn split_url(url: &str, authority_start: usize) -> Result<(String, TlsParams), Error> {
    let mut params = TlsParams::default();
    // Find the query as tokio-postgres does: the credentials run to the first `@`, so a `?` in
    // a password does not start the query.
    let after_credentials = url[authority_start..]
        .find('@')
        .map_or(authority_start, |at| authority_start + at + 1);
    let Some(query_start) = url[after_credentials..]
        .find('?')
        .map(|at| after_credentials + at)
    else {
        return Ok((url.to_owned(), params));
    };
    let mut kept = Vec::new();
    for pair in url[query_start + 1..].split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            let key = percent_decode(key)?;
            if TlsParams::owns(&key) {
                params.set(&key, percent_decode(value)?.into_owned());
                continue;
            }
        }
        kept.push(pair);
    }
    let mut rest = url[..query_start].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok((rest, params))
}

fn percent_decode(text: &str) -> Result<Cow<'_, str>, Error> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|e| Error::Config(format!("{text:?} is not UTF-8 once percent-decoded: {e}")))
}

/// The `key=value` form. The grammar is tokio-postgres's: a keyword runs to whitespace or `=`;
/// a value is bare (to whitespace) or single-quoted; `\` escapes the next character in both.
/// At the first thing that does not parse, the rest is passed on untouched for rust-postgres to
/// report.
fn split_key_value(text: &str) -> (String, TlsParams) {
    let mut params = TlsParams::default();
    let mut kept = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let Some((key, value, len)) = key_value_param(rest) else {
            kept.push(rest);
            break;
        };
        if TlsParams::owns(key) {
            params.set(key, value);
        } else {
            kept.push(&rest[..len]);
        }
        rest = rest[len..].trim_start();
    }
    (kept.join(" "), params)
}

/// The parameter at the start of `text`: its keyword, its unescaped value, and how many bytes
/// it spans. `None` if it does not parse.
fn key_value_param(text: &str) -> Option<(&str, String, usize)> {
    let key_len = text
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(text.len());
    if key_len == 0 {
        return None;
    }
    let value_text = text[key_len..].trim_start().strip_prefix('=')?.trim_start();
    let value_start = text.len() - value_text.len();
    let (value, value_len) = key_value_value(value_text)?;
    Some((&text[..key_len], value, value_start + value_len))
}

/// The value at the start of `text`, unescaped, and how many bytes it spans.
fn key_value_value(text: &str) -> Option<(String, usize)> {
    let quoted = text.starts_with('\'');
    let mut value = String::new();
    let mut chars = text.char_indices().skip(usize::from(quoted));
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            '\'' if quoted => return Some((value, at + 1)),
            c if !quoted && c.is_whitespace() => return (!value.is_empty()).then_some((value, at)),
            c => value.push(c),
        }
    }
    // An unterminated quote, or an empty bare value: rust-postgres will say so.
    (!quoted && !value.is_empty()).then_some((value, text.len()))
}

/// Where the trusted root certificates come from.
#[derive(Clone, Debug)]
enum RootSource {
    File(PathBuf),
    BuiltIn,
}

impl fmt::Display for RootSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootSource::File(path) => write!(f, "the CA file {}", path.display()),
            RootSource::BuiltIn => f.write_str("the built-in Mozilla roots"),
        }
    }
}

/// The roots a certificate chain must lead to.
struct TrustAnchors {
    roots: Arc<RootCertStore>,
    source: RootSource,
}

impl TrustAnchors {
    fn built_in() -> TrustAnchors {
        TrustAnchors {
            roots: Arc::new(RootCertStore::from_iter(
                webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
            )),
            source: RootSource::BuiltIn,
        }
    }

    /// Every CA certificate in the PEM file at `path` (read as every CA file of the pipeline
    /// is: `pipeline_common::trust`).
    fn from_file(path: &Path) -> Result<TrustAnchors, Error> {
        let roots = trust::load_roots(path).map_err(|e| match e {
            trust::TrustError::CaFile { problem, .. } => Error::RootCert {
                path: path.to_owned(),
                problem,
            },
            other => Error::Tls(other.to_string()),
        })?;
        Ok(TrustAnchors {
            roots: Arc::new(roots),
            source: RootSource::File(path.to_owned()),
        })
    }
}

/// What the client demands of the server's certificate: the `sslmode`, resolved against the
/// roots it was given. This is the rustls verifier every connection of a connection string uses.
struct ServerCertPolicy {
    ssl_mode: SslMode,
    /// `None`: any certificate is accepted (`prefer`, `require` without `sslrootcert`).
    trust: Option<TrustAnchors>,
    check_host_name: bool,
    /// The handshake's signatures are verified with these even when the certificate is
    /// accepted unchecked: the server must still hold the key of the certificate it shows.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertPolicy {
    fn new(params: &TlsParams) -> Result<ServerCertPolicy, Error> {
        if let Some(key) = params.client_cert {
            return Err(Error::Config(format!(
                "{key}: client certificates are not supported (authenticate with a password)"
            )));
        }
        let system_roots = params.root_cert.as_deref() == Some("system");
        let ssl_mode = match &params.ssl_mode {
            Some(value) => value.parse()?,
            // libpq: sslrootcert=system changes the default to verify-full.
            None if system_roots => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if system_roots && ssl_mode != SslMode::VerifyFull {
            return Err(Error::Config(format!(
                "sslrootcert=system requires sslmode=verify-full, not {ssl_mode}"
            )));
        }
        let trust = match (ssl_mode, params.root_cert.as_deref()) {
            // libpq does not read sslrootcert when TLS is off; neither do we.
            (SslMode::Disable, _) => None,
            (_, Some("system")) => Some(TrustAnchors::built_in()),
            (_, Some(path)) => Some(TrustAnchors::from_file(Path::new(path))?),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => Some(TrustAnchors::built_in()),
            (SslMode::Prefer | SslMode::Require, None) => None,
        };
        Ok(ServerCertPolicy {
            ssl_mode,
            trust,
            check_host_name: ssl_mode == SslMode::VerifyFull,
            algorithms: crypto_provider().signature_verification_algorithms,
        })
    }

    /// The chain and (for `verify-full`) the name checks, without the logging.
    fn check(
        &self,
        trust: &TrustAnchors,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let certificate = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &certificate,
            &trust.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if self.check_host_name {
            verify_server_name(&certificate, server_name)?;
        }
        Ok(())
    }
}

impl fmt::Display for ServerCertPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sslmode={}", self.ssl_mode)?;
        match (&self.trust, self.ssl_mode) {
            (_, SslMode::Disable) => f.write_str(", no TLS"),
            (None, _) => f.write_str(", server certificate not checked"),
            (Some(trust), _) => {
                write!(f, ", server certificate checked against {}", trust.source)?;
                if self.check_host_name {
                    f.write_str(" and for the host name")?;
                }
                Ok(())
            }
        }
    }
}

// rustls wants Debug of a verifier; the derived one would print every root certificate.
impl fmt::Debug for ServerCertPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCertPolicy")
            .field("ssl_mode", &self.ssl_mode)
            .field("roots", &self.trust.as_ref().map(|t| &t.source))
            .field("check_host_name", &self.check_host_name)
            .finish()
    }
}

impl ServerCertVerifier for ServerCertPolicy {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(trust) = &self.trust else {
            return Ok(ServerCertVerified::assertion());
        };
        match self.check(trust, end_entity, intermediates, server_name, now) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(error) => {
                tracing::warn!(
                    %error,
                    sslmode = %self.ssl_mode,
                    roots = %trust.source,
                    host = %server_name.to_str(),
                    "PostgreSQL server certificate rejected"
                );
                Err(error)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// ring, named explicitly rather than taken from rustls' process-wide default: that default
/// exists only if exactly one provider is compiled in or one was installed at start-up.
fn crypto_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn client_config(policy: Arc<ServerCertPolicy>) -> Result<ClientConfig, Error> {
    let mut config = ClientConfig::builder_with_provider(Arc::new(crypto_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        // "dangerous" is rustls' name for any verifier of one's own; ours does rustls' own
        // chain and name checks, leaving out only what the sslmode says to leave out.
        .dangerous()
        .with_custom_certificate_verifier(policy)
        .with_no_client_auth();
    // PostgreSQL 17's direct TLS negotiation (`sslnegotiation=direct`) requires this ALPN
    // protocol; older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error(connection_string: &str) -> String {
        match parse(connection_string) {
            Ok(_) => panic!("{connection_string:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn test_ca_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("self-signed").pem()
    }

    #[test]
    fn each_sslmode_tells_rust_postgres_whether_tls_is_off_optional_or_mandatory() {
        use postgres::config::SslMode as Transport;
        for (mode, transport) in [
            ("disable", Transport::Disable),
            ("prefer", Transport::Prefer),
            ("require", Transport::Require),
            ("verify-ca", Transport::Require),
            ("verify-full", Transport::Require),
        ] {
            let (config, _) = parse(&format!("host=db sslmode={mode}")).expect(mode);
            assert_eq!(config.get_ssl_mode(), transport, "sslmode={mode}");
        }
    }

    #[test]
    fn sslmode_defaults_to_prefer_as_in_libpq() {
        let parsed = Parsed::new("host=db").expect("parse");
        assert_eq!(parsed.policy.ssl_mode, SslMode::Prefer);
        assert!(parsed.policy.trust.is_none());
        assert_eq!(
            parsed.config.get_ssl_mode(),
            postgres::config::SslMode::Prefer
        );
    }

    #[test]
    fn an_unknown_sslmode_is_refused_naming_it_and_the_choices() {
        let message = config_error("host=db sslmode=verify_full");
        assert!(message.contains("\"verify_full\""), "{message}");
        assert!(message.contains("verify-full"), "{message}");
        let message = config_error("postgres://u@db/x?sslmode=allow");
        assert!(message.contains("\"allow\""), "{message}");
    }

    #[test]
    fn a_missing_sslrootcert_file_is_refused_naming_the_path() {
        let path = "/nonexistent/dir/root.crt";
        let message = config_error(&format!("host=db sslmode=verify-full sslrootcert={path}"));
        assert!(message.contains(path), "{message}");
        assert!(message.contains("cannot read"), "{message}");
    }

    #[test]
    fn an_sslrootcert_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let message = config_error(&format!(
            "host=db sslmode=verify-ca sslrootcert={}",
            path.display()
        ));
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("no PEM certificate"), "{message}");
    }

    #[test]
    fn sslrootcert_makes_require_check_the_chain_as_libpq_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, test_ca_pem()).expect("write");
        let parsed = Parsed::new(&format!(
            "host=db sslmode=require sslrootcert={}",
            path.display()
        ))
        .expect("parse");
        assert!(parsed.policy.trust.is_some());
        assert!(!parsed.policy.check_host_name);
        let described = parsed.policy.to_string();
        assert!(described.contains("sslmode=require"), "{described}");
        assert!(
            described.contains(&path.display().to_string()),
            "{described}"
        );
    }

    #[test]
    fn verify_without_sslrootcert_trusts_the_built_in_roots() {
        let parsed = Parsed::new("host=db sslmode=verify-full").expect("parse");
        let trust = parsed.policy.trust.as_ref().expect("roots");
        assert!(matches!(trust.source, RootSource::BuiltIn));
        assert!(!trust.roots.is_empty());
        assert!(parsed.policy.check_host_name);
    }

    #[test]
    fn sslrootcert_system_means_verify_full_and_refuses_weaker_modes() {
        let parsed = Parsed::new("host=db sslrootcert=system").expect("parse");
        assert_eq!(parsed.policy.ssl_mode, SslMode::VerifyFull);
        let message = config_error("host=db sslmode=verify-ca sslrootcert=system");
        assert!(
            message.contains("requires sslmode=verify-full"),
            "{message}"
        );
    }

    #[test]
    fn client_certificates_are_refused_rather_than_ignored() {
        let message = config_error("host=db sslmode=require sslcert=/c.pem");
        assert!(message.contains("sslcert"), "{message}");
        let message = config_error("postgres://u@db/x?sslkey=%2Fk.pem");
        assert!(message.contains("sslkey"), "{message}");
    }

    #[test]
    fn the_url_form_loses_only_the_tls_parameters() {
        let (rest, params) = split_tls_params(
            "postgres://u:p@db:6432/telemetry?application_name=api&sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fmy%20ca.pem&connect_timeout=3",
        )
        .expect("split");
        assert_eq!(
            rest,
            "postgres://u:p@db:6432/telemetry?application_name=api&connect_timeout=3"
        );
        assert_eq!(params.ssl_mode.as_deref(), Some("verify-full"));
        assert_eq!(params.root_cert.as_deref(), Some("/etc/my ca.pem"));

        let (rest, _) =
            split_tls_params("postgresql://db/telemetry?sslmode=require").expect("split");
        assert_eq!(rest, "postgresql://db/telemetry");
        // A `?` in the password is not the start of the query (tokio-postgres reads it so too).
        let (rest, params) =
            split_tls_params("postgres://u:p?w@db/x?sslmode=disable").expect("split");
        assert_eq!(rest, "postgres://u:p?w@db/x");
        assert_eq!(params.ssl_mode.as_deref(), Some("disable"));
    }

    #[test]
    fn the_key_value_form_loses_only_the_tls_parameters() {
        let (rest, params) = split_tls_params(
            r"host=db password='it\'s sslmode=x' sslmode = require  sslrootcert='/etc/my ca.pem' dbname=telemetry",
        )
        .expect("split");
        assert_eq!(rest, r"host=db password='it\'s sslmode=x' dbname=telemetry");
        assert_eq!(params.ssl_mode.as_deref(), Some("require"));
        assert_eq!(params.root_cert.as_deref(), Some("/etc/my ca.pem"));
    }

    #[test]
    fn both_forms_give_the_same_config() {
        for connection_string in [
            "postgres://postgres:secret@127.0.0.1:6432/telemetry?sslmode=require",
            "host=127.0.0.1 port=6432 user=postgres password=secret dbname=telemetry sslmode=require",
        ] {
            let (config, _) = parse(connection_string).expect(connection_string);
            assert_eq!(
                config.get_hosts(),
                [postgres::config::Host::Tcp("127.0.0.1".into())]
            );
            assert_eq!(config.get_ports(), [6432]);
            assert_eq!(config.get_user(), Some("postgres"));
            assert_eq!(config.get_password(), Some(&b"secret"[..]));
            assert_eq!(config.get_dbname(), Some("telemetry"));
            assert_eq!(config.get_ssl_mode(), postgres::config::SslMode::Require);
        }
    }

    #[test]
    fn what_rust_postgres_rejects_is_reported_with_its_reason() {
        let message = config_error("host=db colour=blue");
        assert!(message.contains("unknown option `colour`"), "{message}");
        let message = config_error("host=db password='unterminated");
        assert!(message.contains("unterminated"), "{message}");
    }
}
