//! The store's error type: what went wrong reaching or using PostgreSQL.

use std::path::PathBuf;

/// An error of the store crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection string is malformed or asks for something we do not support.
    #[error("invalid connection string: {0}")]
    Config(String),

    /// The `sslrootcert` file cannot serve as the trusted roots.
    #[error("sslrootcert {}: {problem}", path.display())]
    RootCert { path: PathBuf, problem: String },

    /// The TLS client could not be set up.
    #[error("TLS setup failed: {0}")]
    Tls(String),

    /// Opening a connection failed. `tls` says what the `sslmode` demanded of the server (so a
    /// rejected certificate reads with its policy); the source chain says what failed.
    #[error("cannot connect to PostgreSQL ({tls})")]
    Connect {
        tls: String,
        #[source]
        source: postgres::Error,
    },

    /// Series ids could not be settled for a batch.
    #[error("series: {0}")]
    Series(String),

    /// Stored bytes that cannot be what the store wrote (a damaged compacted chunk).
    #[error("corrupt compacted chunk: {0}")]
    Corrupt(String),

    /// A setting of the store is out of range (a retention, an interval).
    #[error("{0}")]
    Setting(String),

    /// A statement on an open connection failed.
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
}

/// The store's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
