//! The crate's one error enum: what can go wrong while setting a server up (its token, its
//! certificate). Serving itself never fails: a failed connection is logged and closed.

use std::path::PathBuf;

/// A setting of the serving module that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token file cannot be read.
    #[error("cannot read the token file {path}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The token (given directly or in its file) is empty or not visible ASCII.
    #[error("the bearer token {0} must be non-empty visible ASCII (no spaces)")]
    BadToken(&'static str),

    /// A certificate or key file cannot be read or holds no usable PEM object.
    #[error("cannot load {what} from {path}: {reason}")]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// Only one of the certificate and the key is given.
    #[error("TLS needs both a certificate and a key")]
    TlsPair,

    /// rustls refuses the certificate chain and key (e.g. they do not match).
    #[error("the TLS certificate and key cannot be used")]
    Tls(#[source] rustls::Error),
}
