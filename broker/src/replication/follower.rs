//! A follower's copy of one partition: the task that keeps it equal to the leader's.
//!
//! One task per partition this broker follows, started when the metadata names another
//! broker its leader at an epoch and aborted when that changes (the partition's `Role` owns
//! it). It first makes this copy a prefix of the leader's log — the truncation by leader
//! epoch of Kafka's KIP-279 — then fetches from its own log end, appends what comes verbatim
//! and publishes the leader's high watermark, until it is aborted.
//!
//! Truncation: the copy's latest epoch `e` is sent to the leader, which answers the largest
//! epoch `e' ≤ e` in its log and where it ends. Everything past that end, or past the end of
//! `e'` in this copy when `e' < e`, was written by a leader whose batches the current leader
//! never took, so was never acknowledged (an acknowledged batch is on every in-sync replica,
//! and the leader was one): it is cut. A leader whose log holds no epoch `≤ e` shares no
//! history with this copy, which is cut to its start.
//!
//! A copy whose whole log lies below the leader's log start (it was away, or wiped, while
//! the leader's retention deleted old segments) gets 416 for its end: it is emptied to start
//! where the leader's log starts (`PartitionLog::reset_to`), then fetches from there.

use std::sync::Arc;
use std::time::Duration;

use broker_meta::NodeId;

use super::peer::{PeerError, Peers};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::partition::Partition;

/// How long a follower's fetch waits at the leader for new data.
const FETCH_WAIT: Duration = Duration::from_millis(500);
/// The pause after a failed request before the next (the leader may be restarting).
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// The pause after the leader refused for now (421, 409, 503: it has not applied the
/// metadata that makes it leader at this epoch yet — milliseconds, during a failover, while
/// its acknowledgements wait for this follower).
const REFUSED_PAUSE: Duration = Duration::from_millis(20);

/// Follows `leader` (at `epoch`) for `part` until aborted or the broker shuts down (a task
/// still retrying while the runtime winds down would find its timers gone).
pub async fn run(
    broker: Arc<Broker>,
    peers: Peers,
    part: Arc<Partition>,
    leader: NodeId,
    epoch: u32,
) {
    let mut stop = broker.shutdown.clone();
    tokio::select! {
        () = follow(&broker, peers, part, leader, epoch) => {}
        () = crate::http::stopped(&mut stop) => {}
    }
}

async fn follow(
    broker: &Arc<Broker>,
    peers: Peers,
    part: Arc<Partition>,
    leader: NodeId,
    epoch: u32,
) {
    let topic = part.topic.to_string();
    // The first failure of a streak is a warning; the rest (a leader restarting refuses
    // every request for a while) are debug.
    let mut failing = false;
    loop {
        if stopping(broker) {
            return;
        }
        let Some(url) = broker
            .cluster
            .as_ref()
            .and_then(|c| c.read(|m| crate::cluster::url_of(m, leader)))
        else {
            pause(broker, RETRY_PAUSE).await;
            continue;
        };
        if let Err(e) = agree_with_leader(broker, &peers, &part, &url, epoch).await {
            if !std::mem::replace(&mut failing, true) {
                tracing::warn!(topic = %topic, partition = part.id, leader, error = %e, "replica: cannot reach the leader's log");
            }
            pause(broker, e.pause()).await;
            continue;
        }
        match copy(broker, &peers, &part, &url, epoch, &mut failing).await {
            // Out of the leader's log: behind its start (its retention deleted what comes
            // next), or the copy diverged after all (or the leader lost data).
            Err(Failure::Peer(PeerError::OutOfRange { url, leader_start })) => {
                match start_over(broker, &part, leader_start, epoch) {
                    Ok(true) => continue,
                    Ok(false) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(topic = %topic, partition = part.id, %url, "replica: offset out of the leader's log; truncating again");
                        }
                    }
                    Err(e) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(topic = %topic, partition = part.id, error = %e, "replica: cannot start over at the leader's log start");
                        }
                    }
                }
                pause(broker, RETRY_PAUSE).await;
            }
            // The topic was deleted under the task (its role ends with it too).
            Err(Failure::Local(BrokerError::UnknownTopic(_))) => return,
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(topic = %topic, partition = part.id, leader, error = %e, "replica: fetch failed");
                }
                pause(broker, e.pause()).await;
            }
            Ok(()) => return,
        }
    }
}

/// Waits `how_long` before the next try — unless the broker is stopping. A step that ran
/// on a blocking thread (`may_block`) can return while the runtime is shutting down, after
/// `run` last looked at the shutdown signal; a timer created then panics. So every wait and
/// every request (which has a timeout) looks at the signal first, and never waits once it
/// is set: the loops then return to `run`, which ends the task.
async fn pause(broker: &Broker, how_long: Duration) {
    if !stopping(broker) {
        tokio::time::sleep(how_long).await;
    }
}

fn stopping(broker: &Broker) -> bool {
    *broker.shutdown.borrow()
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error(transparent)]
    Local(#[from] BrokerError),
}

impl Failure {
    /// How long to wait before trying again.
    fn pause(&self) -> Duration {
        match self {
            Failure::Peer(PeerError::Status { status, .. })
                if matches!(status.as_u16(), 409 | 421 | 503) =>
            {
                REFUSED_PAUSE
            }
            _ => RETRY_PAUSE,
        }
    }
}

/// Cuts this copy to where it agrees with the leader's log (see the module doc).
async fn agree_with_leader(
    broker: &Broker,
    peers: &Peers,
    part: &Partition,
    url: &str,
    epoch: u32,
) -> std::result::Result<(), Failure> {
    let Some(latest) = part.latest_epoch()? else {
        return Ok(());
    };
    if stopping(broker) {
        return Ok(());
    }
    let answer = peers
        .epoch_end(url, &part.topic, part.id, latest, epoch)
        .await?;
    let (start, end) = part.log_bounds()?;
    let target = match answer.epoch {
        None => start,
        Some(epoch) => {
            let mut target = answer.end_offset.min(end);
            if epoch < latest {
                if let Some((_, own_end)) = part.end_offset_for_epoch(epoch)? {
                    target = target.min(own_end);
                }
            }
            target.max(start)
        }
    };
    if target < end {
        tracing::warn!(topic = %part.topic, partition = part.id, from = end, to = target,
            "replica: cutting the tail the leader does not have (never acknowledged)");
        part.truncate_to(target, broker.config.producer_idle_ms, epoch)?;
    }
    Ok(())
}

/// When this copy's whole log lies below `leader_start`, the leader's retention deleted
/// what would follow it: nothing it holds joins on to what the leader can send, so it is
/// emptied to start at `leader_start` (`true`). The records it drops are below the leader's
/// log start, so no broker serves them any more anyway.
fn start_over(
    broker: &Broker,
    part: &Partition,
    leader_start: Option<u64>,
    epoch: u32,
) -> std::result::Result<bool, BrokerError> {
    let (_, end) = part.log_bounds()?;
    match leader_start {
        Some(start) if start > end => {
            tracing::warn!(topic = %part.topic, partition = part.id, end, start,
                "replica: the leader's log starts past this copy's end; starting over there");
            part.reset_to(start, broker.config.producer_idle_ms, epoch)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Fetches and appends until a request fails (the caller decides what next); returns only
/// on failure or when the broker is stopping — the task is aborted from outside when the
/// leadership changes.
async fn copy(
    broker: &Broker,
    peers: &Peers,
    part: &Partition,
    url: &str,
    epoch: u32,
    failing: &mut bool,
) -> std::result::Result<(), Failure> {
    loop {
        // The append below may have run as the broker began stopping (see `pause`).
        if stopping(broker) {
            return Ok(());
        }
        let (_, offset) = part.log_bounds()?;
        let fetched = peers
            .fetch(url, &part.topic, part.id, offset, epoch, FETCH_WAIT)
            .await?;
        if !fetched.batches.is_empty() {
            part.append_replica(&fetched.batches, epoch)?;
        }
        part.publish_high_watermark(fetched.high_watermark);
        *failing = false;
    }
}
