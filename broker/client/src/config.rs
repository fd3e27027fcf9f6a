//! How to reach the broker: its URL, the Bearer token, the CA file for an `https://` broker,
//! timeouts and the retry policy.
//!
//! Plain data with builder methods; [`crate::BrokerClient::new`] turns it into an agent.

use std::time::Duration;

use pipeline_common::trust::CaFile;

use crate::retry::RetryPolicy;

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// e.g. `http://127.0.0.1:9090` (no trailing slash needed).
    pub base_url: String,
    /// Sent as `Authorization: Bearer <token>` when set (`BROKER_TOKEN`).
    pub token: Option<String>,
    /// For an `https://` broker: trust only the CAs of this PEM bundle (`--ca-file`). `None`:
    /// the Mozilla roots compiled into the binary (webpki-roots), as `ureq` does by default.
    pub ca_file: Option<CaFile>,
    pub connect_timeout: Duration,
    /// Whole-request timeout; a long poll adds its `wait_ms` to it.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            token: None,
            ca_file: None,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
        }
    }

    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    pub fn ca_file(mut self, ca_file: Option<CaFile>) -> Self {
        self.ca_file = ca_file;
        self
    }
}
