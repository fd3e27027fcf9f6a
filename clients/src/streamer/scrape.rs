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
//!
//! With `--scrape-targets-file` the targets are the flags' and the file's (a union), and the
//! file is read again every [`targets_file::POLL`]: a target new in the file gets its thread,
//! one gone from it is stopped (its thread ends after the scrape or produce it is in, its entry
//! leaves `/targets` and its `streamer_scrape_up` is set to 0), the others run on untouched.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use metrics::{counter, gauge};
use pipeline_common::ops::Readiness;
use serde::Serialize;

use crate::client::{push_record, BrokerClient, Idempotence};
use crate::error::{Error, Result};
use crate::scrape::{map_exposition, producer_id, target_host, Skipped};
use crate::streamer::targets_file::{self, TargetsFile, Watcher};

/// The scrape mode's settings (its documented flags).
#[derive(Debug, Clone)]
pub struct ScrapeConfig {
    pub topic: String,
    /// The targets' URLs (dcgm-exporter's `http://node:9400/metrics`) of the `--scrape` flags.
    pub targets: Vec<String>,
    /// `--scrape-targets-file`: more targets, from a file re-read while running.
    pub targets_file: Option<TargetsFile>,
    pub interval: Duration,
    /// For each scrape's HTTP request as a whole.
    pub timeout: Duration,
    /// Partitions to create the topic with when it does not exist yet.
    pub partitions: u32,
}

impl ScrapeConfig {
    /// The targets at the start: the flags' then the file's, each once.
    pub fn initial_targets(&self) -> Vec<String> {
        union(
            &self.targets,
            self.targets_file.as_ref().map_or(&[], |f| &f.urls),
        )
    }
}

/// `a` then the URLs of `b` not in `a`.
fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut all = a.to_vec();
    for url in b {
        if !all.contains(url) {
            all.push(url.clone());
        }
    }
    all
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
        let targets = Targets::default();
        for url in urls {
            targets.add(url);
        }
        targets
    }

    /// A target not scraped yet, unless it is there.
    fn add(&self, url: &str) {
        if let Ok(mut targets) = self.0.lock() {
            if !targets.iter().any(|t| t.url == url) {
                targets.push(TargetState {
                    url: url.to_string(),
                    health: "unknown",
                    last_scrape: None,
                    last_scrape_duration_seconds: 0.0,
                    last_samples_stored: 0,
                    last_samples_skipped: 0,
                    last_error: None,
                });
            }
        }
    }

    fn remove(&self, url: &str) {
        if let Ok(mut targets) = self.0.lock() {
            targets.retain(|t| t.url != url);
        }
    }

    /// Every target's state, in the order of the flags, then of the file.
    pub fn snapshot(&self) -> Vec<TargetState> {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// `{"targets":[…]}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "targets": self.snapshot() }).to_string()
    }

    fn update(&self, url: &str, f: impl FnOnce(&mut TargetState)) {
        if let Ok(mut targets) = self.0.lock() {
            if let Some(t) = targets.iter_mut().find(|t| t.url == url) {
                f(t);
            }
        }
    }
}

/// Checks the targets' URLs: each needs a host (for samples without `Hostname`) and the
/// `http://` or `https://` scheme; no URL may be given twice (one producer id each). None at
/// all is an error unless `file` (a targets file, which may name none for now).
pub fn check_targets(urls: &[String], file: bool) -> std::result::Result<(), String> {
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
    if urls.is_empty() && !file {
        return Err("no --scrape target".into());
    }
    Ok(())
}

/// Scrapes every target until `client`'s shutdown flag is set (SIGTERM, SIGINT), following
/// the targets file's changes.
pub fn run(
    config: &ScrapeConfig,
    client: BrokerClient,
    readiness: &Readiness,
    targets: &Targets,
) -> Result<()> {
    check_targets(&config.targets, config.targets_file.is_some()).map_err(|reason| {
        Error::Decode {
            url: String::new(),
            reason,
        }
    })?;
    match super::data_partitions(&client, &config.topic, config.partitions) {
        Err(Error::Interrupted) => return Ok(()),
        other => other?,
    };
    let agent = ureq::AgentBuilder::new()
        .timeout(config.timeout)
        .user_agent(concat!("streamer/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut watcher = config.targets_file.as_ref().map(Watcher::new);
    readiness.set(true);
    std::thread::scope(|scope| {
        // The targets being scraped, and those told to stop whose threads may not have ended.
        let mut running: Vec<Running<'_>> = Vec::new();
        let mut stopping: Vec<Running<'_>> = Vec::new();
        let mut started = 0usize;
        loop {
            stopping.retain(|r| !r.handle.is_finished());
            let wanted = union(&config.targets, watcher.as_ref().map_or(&[], |w| w.urls()));
            let (keep, gone): (Vec<_>, Vec<_>) =
                running.drain(..).partition(|r| wanted.contains(&r.url));
            running = keep;
            for r in gone {
                tracing::info!(target = %r.url, "no longer a target: stopping its scrapes");
                r.stop.store(true, Ordering::SeqCst);
                targets.remove(&r.url);
                gauge!("streamer_scrape_up", "target" => r.url.clone()).set(0.0);
                stopping.push(r);
            }
            for url in &wanted {
                // A target back in the file before its old thread ended starts once it has
                // (one thread per producer id).
                if running.iter().chain(&stopping).any(|r| &r.url == url) {
                    continue;
                }
                let stop = Arc::new(AtomicBool::new(false));
                let target = Target {
                    url: url.clone(),
                    host: target_host(url).unwrap_or_default(),
                    producer: producer_id(url),
                    stop: Arc::clone(&stop),
                    config,
                    client: &client,
                    agent: &agent,
                    targets,
                };
                targets.add(url);
                match std::thread::Builder::new()
                    .name(format!("scrape-{started}"))
                    .spawn_scoped(scope, move || target.run())
                {
                    Ok(handle) => {
                        started += 1;
                        running.push(Running {
                            url: url.clone(),
                            stop,
                            handle,
                        });
                    }
                    // Tried again at the next look at the file.
                    Err(e) => {
                        targets.remove(url);
                        tracing::error!(target = %url, error = %e, "cannot start a scrape thread");
                        if watcher.is_none() {
                            client.shutdown_flag().trigger();
                            return Err(Error::Decode {
                                url: url.clone(),
                                reason: format!("cannot start a scrape thread: {e}"),
                            });
                        }
                    }
                }
            }
            let Some(watcher) = watcher.as_mut() else {
                // No file: the targets are fixed; the threads end at shutdown.
                return Ok(());
            };
            let next = Instant::now() + targets_file::POLL;
            while Instant::now() < next {
                if client.shutdown_flag().is_set() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            watcher.poll();
        }
    })?;
    readiness.set(false);
    Ok(())
}

/// A target's running thread.
struct Running<'scope> {
    url: String,
    stop: Arc<AtomicBool>,
    handle: std::thread::ScopedJoinHandle<'scope, ()>,
}

/// One target's scraping thread.
struct Target<'a> {
    url: String,
    host: String,
    producer: String,
    /// Set when the target left the targets file.
    stop: Arc<AtomicBool>,
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
    /// The streamer is shutting down or the target was removed.
    fn shutdown(&self) -> bool {
        self.client.shutdown_flag().is_set() || self.stopped()
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn run(&self) {
        tracing::info!(target = %self.url, producer = %self.producer, "scraping");
        gauge!("streamer_scrape_up", "target" => self.url.to_string()).set(0.0);
        let mut last_seq = 0u64;
        let mut next = Instant::now();
        loop {
            if !self.sleep_until(next) {
                break;
            }
            let started = Instant::now();
            let at = Utc::now();
            let mut took = Duration::ZERO;
            let outcome = self.scrape_and_produce(at, started, &mut took, &mut last_seq);
            if matches!(outcome, Outcome::Shutdown) {
                break;
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
        if self.stopped() {
            // After the last scrape's `record`, which a removed target skips: down for good.
            gauge!("streamer_scrape_up", "target" => self.url.clone()).set(0.0);
            tracing::info!(target = %self.url, "stopped scraping");
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
            .get(&self.url)
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
        if self.stopped() {
            // Removed from the targets meanwhile: its metrics and state are no more.
            return;
        }
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
        self.targets.update(&self.url, |t| {
            t.health = if up { "up" } else { "down" };
            t.last_scrape = Some(at);
            t.last_scrape_duration_seconds = took;
            t.last_samples_stored = stored;
            t.last_samples_skipped = skipped.total();
            t.last_error = error;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::{check_targets, ScrapeConfig, Targets};
    use crate::streamer::targets_file::TargetsFile;

    #[test]
    fn the_flags_and_the_file_are_a_union() {
        let flags = vec![
            "http://a:1/metrics".to_string(),
            "http://b:1/metrics".into(),
        ];
        let config = ScrapeConfig {
            topic: "t".into(),
            targets: flags.clone(),
            targets_file: Some(TargetsFile {
                path: PathBuf::from("t.json"),
                text: Vec::new(),
                urls: vec!["http://b:1/metrics".into(), "http://c:1/metrics".into()],
            }),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            partitions: 1,
        };
        assert_eq!(
            config.initial_targets(),
            [
                "http://a:1/metrics",
                "http://b:1/metrics",
                "http://c:1/metrics"
            ]
        );
        // No target at all: an error without a file, waiting for the file's with one.
        assert!(check_targets(&[], false).is_err());
        assert!(check_targets(&[], true).is_ok());
        assert!(check_targets(&flags, false).is_ok());
    }

    #[test]
    fn targets_come_and_go_by_url() {
        let targets = Targets::new(&["http://a:1/metrics".to_string()]);
        targets.add("http://b:1/metrics");
        targets.add("http://a:1/metrics");
        targets.update("http://b:1/metrics", |t| t.health = "up");
        targets.remove("http://a:1/metrics");
        let now = targets.snapshot();
        assert_eq!(now.len(), 1);
        assert_eq!(
            (now[0].url.as_str(), now[0].health),
            ("http://b:1/metrics", "up")
        );
    }
}
