//! When targets are scraped, and by whom: a grid of slots in wall-clock time, and a bounded
//! pool of worker threads.
//!
//! A target's scrapes fall on its own grid: `k × interval + phase`, in milliseconds since the
//! epoch, with a phase in `[0, interval)` from a hash of its URL (so a thousand targets do not
//! all start at once, and every streamer of a group puts a given target on the same grid). The
//! slot's time is the scrape's idempotent seq: two streamers scraping the same slot of a target
//! during a handover produce the same (producer, seq), and the broker keeps the first.
//!
//! The scheduler (the scrape mode's main thread) hands each due slot to the pool, which has
//! `--scrape-concurrency` workers. A target still being scraped when its next slot comes loses
//! that slot (counted in `streamer_scrape_missed_total`): a target never has two scrapes at
//! once, and a slow target costs one worker, not the schedule of the others.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use metrics::{counter, gauge};

use super::spool::Spool;
use super::Targets;
use crate::scrape::{target_host, ShapeCache, Skipped};
use broker_client::fnv1a64;

/// Scrapes answers larger than this are cut and fail (dcgm-exporter's are tens of KiB).
const MAX_BODY: u64 = 64 << 20;

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The first slot of `url` at or after `at_ms`.
pub fn slot_at_or_after(url: &str, interval_ms: u64, at_ms: u64) -> u64 {
    let interval = interval_ms.max(1);
    let phase = fnv1a64(url.as_bytes()) % interval;
    if at_ms <= phase {
        return phase;
    }
    let k = (at_ms - phase).div_ceil(interval);
    k * interval + phase
}

/// One slot of one target to scrape.
pub struct Job {
    pub url: String,
    pub slot_ms: u64,
    /// Set while the target is being scraped; the worker clears it.
    pub busy: Arc<AtomicBool>,
    /// The target's shape cache (its scrapes never run at once, so the lock is never waited
    /// for).
    pub shape: Arc<Mutex<ShapeCache>>,
}

/// What the workers share.
pub struct Workers<'a> {
    pub agent: ureq::Agent,
    pub spool: &'a Spool,
    pub targets: &'a Targets,
}

impl Workers<'_> {
    /// Takes jobs until the channel closes.
    pub fn run(&self, jobs: &Mutex<mpsc::Receiver<Job>>) {
        loop {
            let job = match jobs.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => return,
            };
            let Ok(job) = job else { return };
            self.scrape(&job);
            job.busy.store(false, Ordering::SeqCst);
        }
    }

    /// One scrape: fetch, map, encode, spool.
    fn scrape(&self, job: &Job) {
        let started = Instant::now();
        let at = Utc::now();
        let host = target_host(&job.url).unwrap_or_default();
        let text = match self.fetch(&job.url) {
            Ok(text) => text,
            Err(reason) => return self.record(job, at, started.elapsed(), Err(reason)),
        };
        let mut body = Vec::new();
        let encoded = match job.shape.lock() {
            Ok(mut shape) => shape.encode(&text, at, &host, &mut body),
            // A worker panicked inside the cache: start it again.
            Err(poisoned) => {
                let mut shape = poisoned.into_inner();
                *shape = ShapeCache::default();
                shape.encode(&text, at, &host, &mut body)
            }
        };
        let encoded = match encoded {
            Ok(encoded) => encoded,
            Err(e) => return self.record(job, at, started.elapsed(), Err(e)),
        };
        if !encoded.cached {
            counter!("streamer_scrape_parsed_total").increment(1);
        }
        let took = started.elapsed();
        if !body.is_empty() {
            match self
                .spool
                .lane_of(&job.url)
                .push(&job.url, job.slot_ms, &body)
            {
                Ok(0) => {}
                Ok(dropped) => {
                    counter!("streamer_scrape_spool_dropped_total").increment(dropped);
                    tracing::warn!(
                        dropped,
                        "the spool is full: its oldest scrapes were dropped"
                    );
                }
                Err(e) => {
                    counter!("streamer_scrape_spool_dropped_total").increment(1);
                    tracing::error!(target = %job.url, error = %e, "cannot spool a scrape: dropped");
                }
            }
        }
        self.record(job, at, took, Ok(encoded.skipped));
    }

    /// GETs the target; the body as text, or why not.
    fn fetch(&self, url: &str) -> Result<String, String> {
        let response = self
            .agent
            .get(url)
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

    /// The scrape's outcome in the metrics, the target's state and the log.
    fn record(
        &self,
        job: &Job,
        at: chrono::DateTime<Utc>,
        took: Duration,
        outcome: Result<Skipped, String>,
    ) {
        let url = job.url.clone();
        let took = took.as_secs_f64();
        let up = outcome.is_ok();
        gauge!("streamer_scrape_duration_seconds", "target" => url.clone()).set(took);
        match &outcome {
            Ok(skipped) => {
                for (reason, n) in skipped.by_reason() {
                    if n > 0 {
                        counter!("streamer_scrape_samples_skipped_total", "target" => url.clone(), "reason" => reason)
                            .increment(n);
                    }
                }
            }
            Err(reason) => {
                counter!("streamer_scrape_failures_total", "target" => url.clone(), "stage" => "scrape")
                    .increment(1);
                tracing::warn!(target = %job.url, error = %reason, "scrape failed");
            }
        }
        // A target removed meanwhile keeps its 0 (set when it was removed).
        let present = self.targets.update(&job.url, |t| {
            t.health = if up { "up" } else { "down" };
            t.last_scrape = Some(at);
            t.last_scrape_duration_seconds = took;
            match &outcome {
                Ok(skipped) => {
                    t.last_samples_skipped = skipped.total();
                    t.last_error = None;
                }
                Err(reason) => t.last_error = Some(reason.clone()),
            }
        });
        if present {
            gauge!("streamer_scrape_up", "target" => url).set(if up { 1.0 } else { 0.0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slot_at_or_after;

    #[test]
    fn a_targets_slots_are_on_its_own_grid() {
        let url = "http://node-7:9400/metrics";
        let first = slot_at_or_after(url, 15_000, 1_700_000_000_000);
        assert!((1_700_000_000_000..1_700_000_015_000).contains(&first));
        // The same slot from anywhere inside the interval before it, the next one after it.
        assert_eq!(slot_at_or_after(url, 15_000, first - 14_999), first);
        assert_eq!(slot_at_or_after(url, 15_000, first), first);
        assert_eq!(slot_at_or_after(url, 15_000, first + 1), first + 15_000);
        // Targets are spread over the interval.
        let phases: std::collections::BTreeSet<u64> = (0..100)
            .map(|i| slot_at_or_after(&format!("http://n{i}:9400/metrics"), 15_000, 0))
            .collect();
        assert!(phases.len() > 90);
    }
}
