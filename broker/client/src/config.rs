//! How to reach the broker: its URL (or, for a cluster, a comma-separated list of bootstrap
//! URLs), the Bearer token, the CA file for an `https://` broker, timeouts and the retry policy.
//!
//! Plain data with builder methods; [`crate::BrokerClient::new`] turns it into an agent.

use std::time::Duration;

use pipeline_common::trust::CaFile;

use crate::retry::RetryPolicy;

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The bootstrap URLs, e.g. `http://127.0.0.1:9090` (no trailing slash), in the order they
    /// are tried: a request goes to the first that accepts a connection (`BROKER_URL` is
    /// `url[,url…]`). Never empty. Which broker serves a partition is learned from them
    /// (the crate's `route` module).
    pub bootstrap: Vec<String>,
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
    /// `urls`: one broker URL, or several separated by commas (blanks around them ignored).
    pub fn new(urls: impl Into<String>) -> Self {
        let urls: String = urls.into();
        let mut bootstrap: Vec<String> = urls
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if bootstrap.is_empty() {
            // Nothing usable: kept as given, so the first request names it in its error.
            bootstrap.push(urls.trim().to_string());
        }
        ClientConfig {
            bootstrap,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_url_is_a_comma_separated_list_of_bootstrap_urls() {
        assert_eq!(
            ClientConfig::new("http://a:1/").bootstrap,
            vec!["http://a:1".to_string()]
        );
        assert_eq!(
            ClientConfig::new(" http://a:1 , http://b:2/,,").bootstrap,
            vec!["http://a:1".to_string(), "http://b:2".to_string()]
        );
    }
}
