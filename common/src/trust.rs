//! Which HTTPS servers the pipeline's HTTP clients trust: the streamer's and collector's
//! broker client, and the API's call to the broker (`--ca-file` / `BROKER_CA_FILE`).
//!
//! Owns reading a PEM CA bundle ([`load_roots`], also for PostgreSQL's `sslrootcert`) and
//! turning it into a rustls client configuration ([`CaFile`]: ring provider, TLS 1.2 and 1.3,
//! no client certificate), with the clear error when the file cannot be read or holds no
//! usable CA certificate. Only the bundle's CAs are trusted then, not the
//! built-in ones besides. Without a CA file the clients keep `ureq`'s default: the Mozilla root
//! program's CAs compiled into the binary (the `webpki-roots` crate), not the operating
//! system's store. The HTTP agents themselves are their owners'; TLS to PostgreSQL is
//! `store::connect`'s (it follows libpq's `sslmode` rules and only borrows the file reading).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("CA file {}: {problem}", path.display())]
    CaFile { path: PathBuf, problem: String },
    /// rustls refused the configuration (not expected with the ring provider's defaults).
    #[error("TLS client setup failed: {0}")]
    Setup(String),
}

/// A CA bundle read and ready: the rustls configuration of clients that trust exactly its CAs.
#[derive(Clone)]
pub struct CaFile {
    path: PathBuf,
    config: Arc<ClientConfig>,
}

impl CaFile {
    /// Reads the CA bundle at `path` (see [`load_roots`]) into a client configuration.
    pub fn load(path: &Path) -> Result<CaFile, TrustError> {
        let roots = load_roots(path)?;
        // ring, named rather than taken from rustls' process-wide default, which exists only
        // when exactly one provider is compiled in or one was installed at start-up.
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| TrustError::Setup(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(CaFile {
            path: path.to_owned(),
            config: Arc::new(config),
        })
    }

    /// For a `clap` `value_parser`: a bad CA file is refused with the other flag errors, before
    /// anything starts.
    pub fn parse_flag(raw: &str) -> Result<CaFile, String> {
        CaFile::load(Path::new(raw)).map_err(|e| e.to_string())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rustls configuration (for `ureq::AgentBuilder::tls_config`).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }
}

/// Every CA certificate of the PEM file at `path`, as rustls roots (also PostgreSQL's
/// `sslrootcert`, read by `store::connect`). As OpenSSL does, a bundle is used even if some of
/// its certificates cannot serve as roots (a warning says how many); a file with none is
/// refused.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TrustError> {
    let problem = |problem: String| TrustError::CaFile {
        path: path.to_owned(),
        problem,
    };
    let pem = std::fs::read(path).map_err(|e| problem(format!("cannot read it: {e}")))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(format!("not a PEM file: {e}")))?;
    let found = certificates.len();
    let mut roots = RootCertStore::empty();
    let (usable, unusable) = roots.add_parsable_certificates(certificates);
    if usable == 0 {
        return Err(problem(if found == 0 {
            "no PEM certificate in it".to_owned()
        } else {
            format!("none of its {found} certificates can serve as a CA")
        }));
    }
    if unusable > 0 {
        tracing::warn!(ca_file = %path.display(), usable, unusable,
            "some certificates of the CA file cannot serve as a CA and are ignored");
    }
    Ok(roots)
}

// The derived Debug would print every root certificate.
impl fmt::Debug for CaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaFile").field("path", &self.path).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(content: Option<&[u8]>) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        if let Some(content) = content {
            std::fs::write(&path, content).expect("write");
        }
        match CaFile::load(&path) {
            Ok(_) => panic!("{content:?} was accepted"),
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains(&path.display().to_string()), "{text}");
                text
            }
        }
    }

    #[test]
    fn a_missing_ca_file_is_refused_naming_the_path() {
        assert!(refusal(None).contains("cannot read it"));
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        assert!(refusal(Some(b"not a certificate\n")).contains("no PEM certificate"));
        let key = rcgen::KeyPair::generate().expect("key");
        // A PEM file, but a key, not a certificate.
        assert!(refusal(Some(key.serialize_pem().as_bytes())).contains("no PEM certificate"));
    }

    #[test]
    fn a_certificate_that_cannot_be_a_ca_is_refused() {
        let garbage = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        assert!(refusal(Some(garbage.as_bytes())).contains("none of its 1 certificates"));
    }

    #[test]
    fn a_ca_bundle_loads_and_names_its_file() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).expect("self-signed").pem();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, pem).expect("write");
        let ca = CaFile::parse_flag(path.to_str().expect("utf-8")).expect("loads");
        assert_eq!(ca.path(), path);
        assert!(format!("{ca:?}").contains("ca.pem"));
    }
}
