//! `streamer --scrape URL`: live ingest from dcgm-exporter. Each target is scraped on its own
//! thread every `--scrape-interval` by a blocking HTTP client, the text mapped onto points
//! ([`crate::scrape`]) and produced to the topic in one idempotent NDJSON request per scrape.
//!
//! Exactly once per scrape: each target produces under its own producer id
//! ([`crate::scrape::producer_id`], from its URL) and each scrape under the seq of its time in
//! milliseconds since the epoch (at least one more than the target's previous seq). A produce
//! is retried with the same body and seq until the broker acknowledges it, so a broker that
//! dies and comes back answers the retry as a duplicate when it had stored the scrape, and
//! stores it once when it had not; a restarted streamer starts from the clock, past every seq
//! it used before (the broker refuses, 409, a seq below the newest it has for the producer:
//! a clock stepped back costs the scrapes until it has caught up, each logged and counted).
//!
//! While a produce is being retried the target is not scraped: the scrapes that fall into a
//! broker outage are not taken (no spool), and the next scrape after the outage is on the
//! interval's grid. A scrape that fails (refused, timed out, an HTTP error, not UTF-8) marks
//! the target down until the next one succeeds.

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use metrics::{counter, gauge};
use pipeline_common::ops::Readiness;
use serde::Serialize;

use crate::client::{push_record, BrokerClient, Idempotence};
use crate::error::{Error, Result};
use crate::scrape::{map_exposition, producer_id, target_host, Skipped};

/// The scrape mode's settings (its documented flags).
#[derive(Debug, Clone)]
pub struct ScrapeConfig {
    pub topic: String,
    /// The targets' URLs (dcgm-exporter's `http://node:9400/metrics`).
    pub targets: Vec<String>,
    pub interval: Duration,
    /// For each scrape's HTTP request as a whole.
    pub timeout: Duration,
    /// Partitions to create the topic with when it does not exist yet.
    pub partitions: u32,
}

/// Scrapes answers larger than this are cut and fail (dcgm-exporter's are tens of KiB).
const MAX_BODY: u64 = 64 << 20;

/// What a target looks like now, as `GET /targets` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetState {
    pub url: String,
    /// `up` after a scrape that succeeded, `down` after one that failed, `unknown` before the
    /// first.
    pub health: &'static str,
    /// When the last scrape started.
    pub last_scrape: Option<DateTime<Utc>>,
    /// How long the last scrape's request and mapping took, in seconds.
    pub last_scrape_duration_seconds: f64,
    /// Points of the last scrape acknowledged by the broker.
    pub last_samples_stored: u64,
    /// Samples of the last scrape that became no point.
    pub last_samples_skipped: u64,
    /// Why the last scrape or its produce failed; null after a success.
    pub last_error: Option<String>,
}

/// The state of every target, shared between the scraping threads and the ops server.
#[derive(Debug, Default)]
pub struct Targets(Mutex<Vec<TargetState>>);

impl Targets {
    pub fn new(urls: &[String]) -> Targets {
        Targets(Mutex::new(
            urls.iter()
                .map(|url| TargetState {
                    url: url.clone(),
                    health: "unknown",
                    last_scrape: None,
                    last_scrape_duration_seconds: 0.0,
                    last_samples_stored: 0,
                    last_samples_skipped: 0,
                    last_error: None,
                })
                .collect(),
        ))
    }

    /// Every target's state, in the order of the flags.
    pub fn snapshot(&self) -> Vec<TargetState> {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// `{"targets":[…]}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "targets": self.snapshot() }).to_string()
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut TargetState)) {
        if let Ok(mut targets) = self.0.lock() {
            if let Some(t) = targets.get_mut(index) {
                f(t);
            }
        }
    }
}

/// Checks the targets' URLs: each needs a host (for samples without `Hostname`) and the
/// `http://` or `https://` scheme; no URL may be given twice (one producer id each).
pub fn check_targets(urls: &[String]) -> std::result::Result<(), String> {
    for (i, url) in urls.iter().enumerate() {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("--scrape {url:?}: not an http:// or https:// URL"));
        }
        if target_host(url).is_none() {
            return Err(format!("--scrape {url:?}: no host in the URL"));
        }
        if urls[..i].contains(url) {
            return Err(format!("--scrape {url:?} is given twice"));
        }
    }
    if urls.is_empty() {
        return Err("no --scrape target".into());
    }
    Ok(())
}

/// Scrapes every target until `client`'s shutdown flag is set (SIGTERM, SIGINT).
pub fn run(
    config: &ScrapeConfig,
    client: BrokerClient,
    readiness: &Readiness,
    targets: &Targets,
) -> Result<()> {
    check_targets(&config.targets).map_err(|reason| Error::Decode {
        url: String::new(),
        reason,
    })?;
    match super::data_partitions(&client, &config.topic, config.partitions) {
        Err(Error::Interrupted) => return Ok(()),
        other => other?,
    };
    let agent = ureq::AgentBuilder::new()
        .timeout(config.timeout)
        .user_agent(concat!("streamer/", env!("CARGO_PKG_VERSION")))
        .build();
    readiness.set(true);
    std::thread::scope(|scope| {
        for (index, url) in config.targets.iter().enumerate() {
            let target = Target {
                index,
                url,
                host: target_host(url).unwrap_or_default(),
                producer: producer_id(url),
                config,
                client: &client,
                agent: &agent,
                targets,
            };
            std::thread::Builder::new()
                .name(format!("scrape-{index}"))
                .spawn_scoped(scope, move || target.run())
                .map_err(|e| Error::Decode {
                    url: url.clone(),
                    reason: format!("cannot start a scrape thread: {e}"),
                })?;
        }
        Ok::<(), Error>(())
    })?;
    readiness.set(false);
    Ok(())
}

/// One target's scraping thread.
struct Target<'a> {
    index: usize,
    url: &'a str,
    host: String,
    producer: String,
    config: &'a ScrapeConfig,
    client: &'a BrokerClient,
    agent: &'a ureq::Agent,
    targets: &'a Targets,
}

/// How one scrape ended.
enum Outcome {
    /// Scraped and acknowledged: points stored (0 for a duplicate), samples skipped.
    Stored {
        stored: u64,
        skipped: Skipped,
    },
    /// The target could not be scraped.
    ScrapeFailed(String),
    /// Scraped, but the broker refused the produce.
    ProduceFailed {
        error: String,
        skipped: Skipped,
    },
    Shutdown,
}

impl Target<'_> {
    fn shutdown(&self) -> bool {
        self.client.shutdown_flag().is_set()
    }

    fn run(&self) {
        tracing::info!(target = %self.url, producer = %self.producer, "scraping");
        gauge!("streamer_scrape_up", "target" => self.url.to_string()).set(0.0);
        let mut last_seq = 0u64;
        let mut next = Instant::now();
        loop {
            if !self.sleep_until(next) {
                return;
            }
            let started = Instant::now();
            let at = Utc::now();
            let mut took = Duration::ZERO;
            let outcome = self.scrape_and_produce(at, started, &mut took, &mut last_seq);
            if matches!(outcome, Outcome::Shutdown) {
                return;
            }
            self.record(at, took, outcome);
            // The next slot on the grid, skipping those missed while a scrape took long.
            next += self.config.interval;
            let now = Instant::now();
            if next < now {
                let behind = now - next;
                let missed = behind.as_nanos() / self.config.interval.as_nanos().max(1) + 1;
                next += self.config.interval * missed.min(u32::MAX as u128) as u32;
            }
        }
    }

    /// Sleeps until `until` in short steps; `false` when the streamer is shutting down.
    fn sleep_until(&self, until: Instant) -> bool {
        loop {
            if self.shutdown() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    /// One scrape and its produce; `took` is set to the scrape's duration (the request and the
    /// mapping, not the produce).
    fn scrape_and_produce(
        &self,
        at: DateTime<Utc>,
        started: Instant,
        took: &mut Duration,
        last_seq: &mut u64,
    ) -> Outcome {
        let fetched = self.fetch();
        *took = started.elapsed();
        let text = match fetched {
            Ok(text) => text,
            Err(reason) => return Outcome::ScrapeFailed(reason),
        };
        let mapped = map_exposition(&text, at, &self.host);
        *took = started.elapsed();
        if mapped.points.is_empty() {
            return Outcome::Stored {
                stored: 0,
                skipped: mapped.skipped,
            };
        }
        let mut body = Vec::with_capacity(mapped.points.len() * 600);
        for point in &mapped.points {
            if let Err(e) = push_record(&mut body, &point.gpu_uuid, point) {
                return Outcome::ProduceFailed {
                    error: e.to_string(),
                    skipped: mapped.skipped,
                };
            }
        }
        let seq = (at.timestamp_millis().max(0) as u64).max(*last_seq + 1);
        *last_seq = seq;
        let idempotence = Idempotence {
            producer: &self.producer,
            seq,
        };
        match self
            .client
            .produce(&self.config.topic, &body, Some(idempotence))
        {
            Ok(ack) => Outcome::Stored {
                stored: if ack.duplicate {
                    0
                } else {
                    mapped.points.len() as u64
                },
                skipped: mapped.skipped,
            },
            Err(Error::Interrupted) => Outcome::Shutdown,
            Err(e) => Outcome::ProduceFailed {
                error: e.to_string(),
                skipped: mapped.skipped,
            },
        }
    }

    /// GETs the target; the body as text, or why not.
    fn fetch(&self) -> std::result::Result<String, String> {
        let response = self
            .agent
            .get(self.url)
            .set("Accept", "text/plain;version=0.0.4")
            .call()
            .map_err(|e| match e {
                ureq::Error::Status(status, _) => format!("HTTP status {status}"),
                ureq::Error::Transport(t) => t.to_string(),
            })?;
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(MAX_BODY + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading the answer: {e}"))?;
        if bytes.len() as u64 > MAX_BODY {
            return Err(format!("the answer is larger than {MAX_BODY} bytes"));
        }
        String::from_utf8(bytes).map_err(|_| "the answer is not UTF-8".to_string())
    }

    /// The outcome in the metrics, the target's state and the log.
    fn record(&self, at: DateTime<Utc>, took: Duration, outcome: Outcome) {
        let url = self.url.to_string();
        let took = took.as_secs_f64();
        let (up, stored, skipped, error) = match outcome {
            Outcome::Stored { stored, skipped } => (true, stored, skipped, None),
            Outcome::ScrapeFailed(reason) => {
                counter!("streamer_scrape_failures_total", "target" => url.clone(), "stage" => "scrape")
                    .increment(1);
                tracing::warn!(target = %self.url, error = %reason, "scrape failed");
                (false, 0, Skipped::default(), Some(reason))
            }
            Outcome::ProduceFailed { error, skipped } => {
                counter!("streamer_scrape_failures_total", "target" => url.clone(), "stage" => "produce")
                    .increment(1);
                tracing::warn!(target = %self.url, %error, "the broker refused a scrape's points");
                (true, 0, skipped, Some(error))
            }
            Outcome::Shutdown => return,
        };
        gauge!("streamer_scrape_up", "target" => url.clone()).set(if up { 1.0 } else { 0.0 });
        gauge!("streamer_scrape_duration_seconds", "target" => url.clone()).set(took);
        counter!("streamer_scrape_samples_stored_total", "target" => url.clone()).increment(stored);
        for (reason, n) in skipped.by_reason() {
            if n > 0 {
                counter!("streamer_scrape_samples_skipped_total", "target" => url.clone(), "reason" => reason)
                    .increment(n);
            }
        }
        if skipped.total() > 0 {
            tracing::debug!(target = %self.url, skipped = ?skipped, "samples skipped");
        }
        self.targets.update(self.index, |t| {
            t.health = if up { "up" } else { "down" };
            t.last_scrape = Some(at);
            t.last_scrape_duration_seconds = took;
            t.last_samples_stored = stored;
            t.last_samples_skipped = skipped.total();
            t.last_error = error;
        });
    }
}
