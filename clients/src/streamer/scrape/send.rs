//! The senders: [`SENDERS_PER_LANE`] threads per spool lane, producing the lane's scrapes
//! oldest first, each in one idempotent NDJSON request under the target's producer id and the
//! scrape's seq. A lane hands a target's scrapes out one at a time, in order
//! ([`Lane::take`](super::spool::Lane::take)), so its senders work on different targets at
//! once: a produce that waits for the broker holds one sender, not the lane.
//!
//! At shutdown each sender goes on while the broker takes its lane's scrapes at the first
//! attempt, and stops when the lane has nothing for it (and the workers have ended) or an
//! attempt fails.
//!
//! A produce is retried (the client's retry policy) until the broker acknowledges it, so a
//! broker that is down holds the lane's head while scraping goes on into the spool. The
//! answers: stored (points counted as stored), a duplicate (the broker had that seq — a resend
//! after a crash or a broker restart, or the same slot scraped by another streamer during a
//! handover: nothing appended), or 409 — a seq below the newest the broker has for the target
//! (a streamer that took the target over has produced a later slot first, or the clock was
//! stepped back): the scrape is dropped, counted as refused. A refused token (401, 403) keeps
//! the scrape and tries again every second (the spool's bound still applies). Any other
//! refusal (400, 413) is dropped and counted as a produce failure; it would never succeed.

use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge};

use super::spool::{Entry, Spool, LANES};

/// Sender threads per lane (produces in flight at once, per lane).
pub const SENDERS_PER_LANE: usize = 4;
use super::Targets;
use crate::scrape::producer_id;
use broker_client::{BrokerClient, Idempotence};

/// How a spooled scrape ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Stored(usize),
    Duplicate,
    Refused,
    Failed,
}

/// Runs one of the lane's senders until shutdown.
pub fn run_lane(
    lane: usize,
    spool: &Spool,
    client: &BrokerClient,
    (topic, partitions): (&str, u32),
    targets: &Targets,
) {
    // The topic with the configured partitions, rather than the broker's default for a topic
    // a produce creates.
    match crate::streamer::data_partitions(client, topic, partitions) {
        Ok(_) => {}
        Err(e) if e.is_interrupted() => return,
        Err(e) => tracing::warn!(topic, error = %e, "cannot create the topic: producing anyway"),
    }
    let lane_ref = spool.lane(lane);
    loop {
        let entry = match lane_ref.take(Duration::from_millis(100)) {
            Ok(Some(entry)) => entry,
            Ok(None) if spool.is_closed() => break,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(lane, error = %e, "cannot read the spool");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        match send(client, topic, &entry) {
            Attempt::Done(sent) => {
                lane_ref.ack(&entry);
                record(targets, &entry, sent);
            }
            Attempt::Keep => {
                // Not the scrape's fault (the token): it stays first in its target's line; the
                // spool's bound still applies while the operator fixes it.
                lane_ref.release(entry);
                if client.shutdown_flag().is_set() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            // Shutdown, and the broker did not take it at the first attempt: the scrape stays
            // spooled (on disk: for the next start).
            Attempt::Shutdown => {
                lane_ref.release(entry);
                break;
            }
        }
    }
}

/// How one attempt at a spooled scrape ended.
enum Attempt {
    Done(Sent),
    /// The broker refused our credentials (401, 403): keep the scrape and try again.
    Keep,
    Shutdown,
}

/// Produces one spooled scrape.
fn send(client: &BrokerClient, topic: &str, entry: &Entry) -> Attempt {
    let producer = producer_id(&entry.url);
    let idempotence = Idempotence {
        producer: &producer,
        seq: entry.seq,
    };
    match client.produce(topic, &entry.body, Some(idempotence)) {
        Ok(ack) if ack.duplicate => Attempt::Done(Sent::Duplicate),
        Ok(_) => Attempt::Done(Sent::Stored(entry.points())),
        Err(broker_client::Error::Interrupted) => Attempt::Shutdown,
        Err(e) if e.status() == Some(409) => {
            tracing::warn!(target = %entry.url, seq = entry.seq, error = %e,
                "the broker refused a spooled scrape: a later scrape of the target is in already");
            Attempt::Done(Sent::Refused)
        }
        Err(e) if matches!(e.status(), Some(401 | 403)) => {
            tracing::error!(error = %e, "the broker refuses our token (BROKER_TOKEN): scrapes wait in the spool");
            Attempt::Keep
        }
        Err(e) => {
            tracing::warn!(target = %entry.url, seq = entry.seq, error = %e,
                "the broker refused a scrape's points");
            Attempt::Done(Sent::Failed)
        }
    }
}

/// The outcome in the metrics and the target's state.
fn record(targets: &Targets, entry: &Entry, sent: Sent) {
    let url = entry.url.clone();
    match sent {
        Sent::Stored(points) => {
            counter!("streamer_scrape_samples_stored_total", "target" => url)
                .increment(points as u64);
        }
        Sent::Duplicate => {
            counter!("streamer_scrape_duplicates_total", "target" => url).increment(1);
        }
        Sent::Refused => {
            counter!("streamer_scrape_refused_total", "target" => url).increment(1);
        }
        Sent::Failed => {
            counter!("streamer_scrape_failures_total", "target" => url, "stage" => "produce")
                .increment(1);
        }
    }
    targets.sent(&entry.url, sent);
}

/// The spool's gauges, refreshed by the scheduler.
pub fn spool_gauges(spool: &Spool) {
    gauge!("streamer_scrape_spool_entries").set(spool.entries() as f64);
    gauge!("streamer_scrape_spool_bytes").set(spool.bytes() as f64);
}

/// Starts the senders of every lane in `scope`.
pub fn start<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    spool: &'env Spool,
    client: &'env BrokerClient,
    topic: &'env str,
    partitions: u32,
    targets: &'env Arc<Targets>,
) -> std::io::Result<()> {
    for lane in 0..LANES {
        for n in 0..SENDERS_PER_LANE {
            std::thread::Builder::new()
                .name(format!("spool-send-{lane}.{n}"))
                .spawn_scoped(scope, move || {
                    run_lane(lane, spool, client, (topic, partitions), targets)
                })?;
        }
    }
    Ok(())
}
