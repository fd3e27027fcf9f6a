//! What a streamer streams: a CSV file ([`super::run`], shared by shards, one-shot or
//! `--loop`) or live scrapes of dcgm-exporters ([`super::scrape::run`], shared by slots, until
//! stopped). The binary builds one [`Source`] from its flags and dispatches on it once: the
//! ops server's routes, the start-up log line and the run. Everything else — reading,
//! sharing, batching, exactly-once — is each source's own.

use std::sync::Arc;

use pipeline_common::ops::{JsonRoute, Readiness};

use super::scrape::{self, ScrapeConfig, Targets};
use super::StreamerConfig;
use crate::error::Result;
use broker_client::BrokerClient;

/// The streamer's input.
pub enum Source {
    Csv(StreamerConfig),
    Scrape {
        config: ScrapeConfig,
        /// The scraped targets' state, also served as `GET /targets`.
        targets: Arc<Targets>,
    },
}

impl Source {
    pub fn scrape(config: ScrapeConfig) -> Source {
        Source::Scrape {
            config,
            targets: Arc::new(Targets::default()),
        }
    }

    /// The JSON routes the source adds to the ops server.
    pub fn routes(&self) -> Vec<JsonRoute> {
        match self {
            Source::Csv(_) => Vec::new(),
            Source::Scrape { targets, .. } => {
                let listing = Arc::clone(targets);
                vec![("/targets", Arc::new(move || listing.to_json()))]
            }
        }
    }

    /// What is being streamed, for the start-up log line.
    pub fn describe(&self) -> String {
        match self {
            Source::Csv(config) => {
                format!("csv {} (group {})", config.csv.display(), config.group)
            }
            Source::Scrape { config, .. } => format!(
                "scrape of {} target(s){}{} every {:?}{}",
                config.targets.len(),
                config
                    .targets_file
                    .as_ref()
                    .map_or(String::new(), |f| format!(" + file {}", f.path.display())),
                if config.dns.is_empty() {
                    String::new()
                } else {
                    format!(" + dns {}", config.dns.join(","))
                },
                config.interval,
                if config.share {
                    format!(" (shared by group {})", config.group)
                } else {
                    " (not shared)".into()
                },
            ),
        }
    }

    /// Streams until done (a one-shot CSV run) or shutdown.
    pub fn run(&self, client: BrokerClient, readiness: &Readiness) -> Result<()> {
        match self {
            Source::Csv(config) => super::run(config, client, readiness),
            Source::Scrape { config, targets } => scrape::run(config, client, readiness, targets),
        }
    }
}
