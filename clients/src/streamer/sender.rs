//! The streamer's sender thread: produces complete batch cells in order and commits shard
//! progress, while the scan thread reads and encodes the next rows.
//!
//! One sender per scan, so a shard's cells still go to the broker one at a time and in order
//! (the exactly-once scheme in [`super::shards`] relies on that). Progress is committed for
//! all shards in one request, after at most [`COMMIT_EVERY_CELLS`] acknowledged cells or
//! [`COMMIT_EVERY`]: fewer commits than one per cell, and still at most a handful of
//! acknowledged-but-uncommitted cells, well inside the broker's memory of the last 8 seqs per
//! producer and partition, so a successor resending them gets duplicates, never new appends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, histogram};

use super::shards::Progress;
use crate::error::Error;
use broker_client::{BrokerClient, Error as ClientError, GroupMember, Idempotence};

/// Commit after this many acknowledged cells…
pub const COMMIT_EVERY_CELLS: usize = 4;
/// …or when the oldest uncommitted acknowledgement is this old.
pub const COMMIT_EVERY: Duration = Duration::from_millis(200);

/// Work for the sender, in the order the scan completed it.
pub enum Outgoing {
    /// One complete cell: its NDJSON body, seq, and the shard's progress once it is in.
    Cell {
        shard: u32,
        producer: String,
        seq: u64,
        payload: Payload,
        after: Progress,
    },
    /// Only progress (a shard finished its pass, or cells with nothing but bad rows).
    Progress {
        shard: u32,
        after: Progress,
        now: bool,
    },
}

/// A cell's messages as they go on the wire.
pub enum Payload {
    /// One NDJSON request (the broker splits it by partition).
    Ndjson(Vec<u8>),
    /// One record batch per partition, each its own request under the cell's seq.
    Batches(Vec<(u32, Vec<u8>)>),
}

/// How the sender stopped.
pub enum SendEnd {
    /// Everything it was given is in the broker and committed.
    Done,
    /// A commit was refused: the shards moved.
    Rebalanced,
    Shutdown,
    Failed(Error),
}

pub struct Sender<'a> {
    pub client: BrokerClient,
    pub member: &'a GroupMember,
    pub topic: String,
    pub group: String,
    pub produced: Arc<AtomicU64>,
    pending: BTreeMap<u32, u64>,
    cells_since_commit: usize,
    oldest_pending: Option<Instant>,
}

impl<'a> Sender<'a> {
    pub fn new(
        client: BrokerClient,
        member: &'a GroupMember,
        topic: &str,
        group: &str,
        produced: Arc<AtomicU64>,
    ) -> Self {
        Sender {
            client,
            member,
            topic: topic.to_string(),
            group: group.to_string(),
            produced,
            pending: BTreeMap::new(),
            cells_since_commit: 0,
            oldest_pending: None,
        }
    }

    /// Sends until the scan hangs up (`Done` after a last commit), `cancel` is set (stop
    /// after committing what is acknowledged), or a refusal/failure ends it.
    pub fn run(mut self, work: Receiver<Outgoing>, cancel: &AtomicBool) -> SendEnd {
        loop {
            let item = match work.recv_timeout(COMMIT_EVERY) {
                Ok(item) => item,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(end) = self.commit_if_due(true) {
                        return end;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if cancel.load(Ordering::SeqCst) {
                break;
            }
            let end = match item {
                Outgoing::Cell {
                    shard,
                    producer,
                    seq,
                    payload,
                    after,
                } => self
                    .send(shard, &producer, seq, &payload, after)
                    .or_else(|| self.commit_if_due(false)),
                Outgoing::Progress { shard, after, now } => {
                    self.pending.insert(shard, after.encode());
                    self.oldest_pending.get_or_insert_with(Instant::now);
                    self.commit_if_due(now)
                }
            };
            if let Some(end) = end {
                return end;
            }
        }
        self.commit_if_due(true).unwrap_or(SendEnd::Done)
    }

    /// Produces one cell under its shard's idempotent identity; `None` when acknowledged.
    fn send(
        &mut self,
        shard: u32,
        producer: &str,
        seq: u64,
        payload: &Payload,
        after: Progress,
    ) -> Option<SendEnd> {
        let started = Instant::now();
        let id = Idempotence { producer, seq };
        match payload {
            Payload::Ndjson(body) => {
                let result = self
                    .client
                    .produce(&self.topic, body, Some(id))
                    .map(|ack| (ack.results.len() as u64, ack.duplicate));
                if let Some(end) = self.account(shard, producer, seq, result) {
                    return Some(end);
                }
            }
            Payload::Batches(parts) => {
                // A retry after a crash half-way resends every part: the parts the broker has
                // answer as duplicates, the others append.
                for (partition, batch) in parts {
                    let result = self
                        .client
                        .produce_batch(&self.topic, *partition, batch, Some(id))
                        .map(|ack| (u64::from(ack.record_count), ack.duplicate));
                    if let Some(end) = self.account(shard, producer, seq, result) {
                        return Some(end);
                    }
                }
            }
        }
        histogram!("streamer_batch_seconds").record(started.elapsed().as_secs_f64());
        self.pending.insert(shard, after.encode());
        self.cells_since_commit += 1;
        self.oldest_pending.get_or_insert_with(Instant::now);
        None
    }

    /// Counts one produce answer; `Some(end)` when it ends the sending.
    fn account(
        &mut self,
        shard: u32,
        producer: &str,
        seq: u64,
        result: Result<(u64, bool), ClientError>,
    ) -> Option<SendEnd> {
        match result {
            Ok((n, true)) => {
                counter!("streamer_rows_deduplicated_total").increment(n);
            }
            Ok((n, false)) => {
                counter!("streamer_rows_produced_total").increment(n);
                self.produced.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) if e.status() == Some(409) && e.to_string().contains("this retry has") => {
                return Some(SendEnd::Failed(Error::BatchMismatch {
                    shard,
                    group: self.group.clone(),
                    detail: e.to_string(),
                }));
            }
            // Older than the seqs the broker remembers: a later cell of this shard was
            // appended, so this one was too (a shard's cells go one at a time, in order).
            Err(e) if e.status() == Some(409) => {
                tracing::warn!(producer, seq, error = %e, "treating a refused old seq as already appended");
            }
            Err(ClientError::Interrupted) => return Some(SendEnd::Shutdown),
            Err(e) => return Some(SendEnd::Failed(e.into())),
        }
        None
    }

    /// Commits the pending progress when enough has gathered (or `force`).
    fn commit_if_due(&mut self, force: bool) -> Option<SendEnd> {
        if self.pending.is_empty() {
            return None;
        }
        let due = self.cells_since_commit >= COMMIT_EVERY_CELLS
            || self
                .oldest_pending
                .is_some_and(|t| t.elapsed() >= COMMIT_EVERY);
        if !force && !due {
            return None;
        }
        let result = self.member.commit(&self.pending);
        self.pending.clear();
        self.cells_since_commit = 0;
        self.oldest_pending = None;
        match result {
            Ok(()) => None,
            Err(e) if matches!(e.status(), Some(404 | 409)) => {
                tracing::info!(error = %e, "progress commit refused: shards moved");
                Some(SendEnd::Rebalanced)
            }
            Err(ClientError::Interrupted) => Some(SendEnd::Shutdown),
            Err(e) => Some(SendEnd::Failed(e.into())),
        }
    }
}
