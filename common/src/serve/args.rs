//! The serving flags of a binary, declared once for all: [`serve_args!`] defines a clap
//! `Args` struct whose environment variables carry the binary's prefix (`BROKER_`, `API_`),
//! and [`ServeFlags::settings`] turns its values into [`Settings`].

use std::path::PathBuf;
use std::time::Duration;

use super::{Limits, Settings, Token, RESERVED_CONNECTIONS};
use crate::Error;

/// The values of the serving flags, whichever binary declared them.
#[derive(Clone, Debug)]
pub struct ServeFlags {
    pub max_connections: usize,
    pub header_read_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl ServeFlags {
    /// The settings these flags describe (reads the token file and the TLS files), with
    /// `public` the paths answered without the token and `grace` the drain's grace period.
    pub fn settings(&self, public: fn(&str) -> bool, grace: Duration) -> Result<Settings, Error> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(super::tls::acceptor(cert, key)?),
            (None, None) => None,
            _ => return Err(Error::TlsPair),
        };
        Ok(Settings {
            limits: Limits {
                max_connections: self.max_connections.max(1),
                reserved_connections: RESERVED_CONNECTIONS,
                header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
                idle_timeout: Duration::from_millis(self.idle_timeout_ms.max(1)),
            },
            tls,
            token: Token::resolve(self.token.as_deref(), self.token_file.as_deref())?,
            public,
            grace,
        })
    }
}

/// Declares `$name`, a clap `Args` struct with the serving flags, their environment variables
/// prefixed with `$prefix`: `--max-connections`, `--header-read-timeout-ms`,
/// `--idle-timeout-ms`, `--token`, `--token-file`, `--tls-cert`, `--tls-key`. Flatten it into
/// the binary's flags and call `.flags().settings(..)`.
#[macro_export]
macro_rules! serve_args {
    ($(#[$meta:meta])* $vis:vis struct $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, clap::Args)]
        $vis struct $name {
            /// Most connections served at once; at the cap, connections without a request in
            /// flight are closed to make room, and a small reserve answers only /healthz,
            /// /readyz and /metrics.
            #[arg(long, env = concat!($prefix, "_MAX_CONNECTIONS"),
                default_value_t = $crate::serve::DEFAULT_MAX_CONNECTIONS)]
            pub max_connections: usize,

            /// Time a connection has to deliver a request head (a new one: from accept, TLS
            /// handshake included; a keep-alive one: from the head's first byte).
            #[arg(long, env = concat!($prefix, "_HEADER_READ_TIMEOUT_MS"),
                default_value_t = $crate::serve::DEFAULT_HEADER_READ_TIMEOUT_MS)]
            pub header_read_timeout_ms: u64,

            /// A keep-alive connection with no new request for this long is closed.
            #[arg(long, env = concat!($prefix, "_IDLE_TIMEOUT_MS"),
                default_value_t = $crate::serve::DEFAULT_IDLE_TIMEOUT_MS)]
            pub idle_timeout_ms: u64,

            /// When set, every request but the public paths needs
            /// `Authorization: Bearer <token>` (checked before the body is read).
            #[arg(long, env = concat!($prefix, "_TOKEN"), hide_env_values = true)]
            pub token: Option<String>,

            /// A file holding the token (so it does not show in `ps`); surrounding whitespace
            /// is ignored.
            #[arg(long, env = concat!($prefix, "_TOKEN_FILE"), conflicts_with = "token")]
            pub token_file: Option<std::path::PathBuf>,

            /// PEM certificate chain (leaf first): serve HTTPS instead of HTTP.
            #[arg(long, env = concat!($prefix, "_TLS_CERT"), requires = "tls_key")]
            pub tls_cert: Option<std::path::PathBuf>,

            /// PEM private key of --tls-cert.
            #[arg(long, env = concat!($prefix, "_TLS_KEY"), requires = "tls_cert")]
            pub tls_key: Option<std::path::PathBuf>,
        }

        impl $name {
            /// The values, to be turned into settings.
            pub fn flags(&self) -> $crate::serve::args::ServeFlags {
                $crate::serve::args::ServeFlags {
                    max_connections: self.max_connections,
                    header_read_timeout_ms: self.header_read_timeout_ms,
                    idle_timeout_ms: self.idle_timeout_ms,
                    token: self.token.clone(),
                    token_file: self.token_file.clone(),
                    tls_cert: self.tls_cert.clone(),
                    tls_key: self.tls_key.clone(),
                }
            }
        }
    };
}
