//! The collector's fetch side: one thread that long-polls the member's partitions round
//! robin, from the offsets stored in PostgreSQL, and hands decoded chunks to the writer.
//!
//! Owns a cursor per assigned partition (where to fetch next, and which database offset the
//! next chunk follows). Cursors are created from the database on assignment and dropped on
//! revocation or when the writer reports that the database moved under them (another
//! collector wrote that range): the database, not the broker, says where to resume.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;

use metrics::{counter, gauge};

use super::chunk::{decode, Chunk};
use super::sink::Sink;
use crate::error::{Error, Result};
use broker_client::{BrokerClient, Encoding, Error as ClientError, GroupMember, RetryPolicy};

/// Long-poll this long when a whole round of partitions came back empty.
const IDLE_WAIT: Duration = Duration::from_millis(250);

struct Cursor {
    position: u64,
    expect: i64,
    epoch: u64,
    /// Whole record batches (cheapest for the broker and for us) unless a damaged batch
    /// answer made no progress, then NDJSON, where every message is read on its own.
    encoding: Encoding,
}

pub struct Fetcher<'a> {
    client: BrokerClient,
    member: &'a GroupMember,
    sink: &'a Sink,
    topic: String,
    max: u32,
    /// One channel per writer; partition `p` goes to `out[p % out.len()]`.
    out: Vec<SyncSender<Chunk>>,
    resync: Receiver<u32>,
    cursors: BTreeMap<u32, Cursor>,
    next_epoch: u64,
    turn: usize,
    idle: usize,
}

impl<'a> Fetcher<'a> {
    pub fn new(
        client: BrokerClient,
        member: &'a GroupMember,
        sink: &'a Sink,
        topic: &str,
        max: u32,
        out: Vec<SyncSender<Chunk>>,
        resync: Receiver<u32>,
    ) -> Self {
        Fetcher {
            client,
            member,
            sink,
            topic: topic.to_string(),
            max: max.clamp(1, 10_000),
            out,
            resync,
            cursors: BTreeMap::new(),
            next_epoch: 1,
            turn: 0,
            idle: 0,
        }
    }

    /// Fetches until shutdown (or the writer is gone); dropping `out` then tells the writer
    /// to flush and stop.
    pub fn run(mut self) -> Result<()> {
        let shutdown = self.client.shutdown_flag().clone();
        while !shutdown.is_set() {
            while let Ok(p) = self.resync.try_recv() {
                self.cursors.remove(&p);
            }
            // The database's offsets are where assigned partitions resume: without them
            // there is nothing to fetch, so wait for PostgreSQL here.
            let followed = RetryPolicy::default()
                .retrying(&shutdown, "reading the stored offsets")
                .when(|_: &Error| true)
                .run(|| self.follow_assignment());
            match followed {
                Err(e) if e.is_interrupted() => return Ok(()),
                other => other?,
            }
            if self.cursors.is_empty() {
                shutdown.sleep(Duration::from_millis(100));
                continue;
            }
            match self.fetch_one() {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) if e.is_interrupted() => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "fetch failed");
                    shutdown.sleep(Duration::from_millis(500));
                }
            }
        }
        Ok(())
    }

    /// Drops cursors of revoked partitions; opens cursors for new ones at the stored offset.
    fn follow_assignment(&mut self) -> Result<()> {
        let owned = self.member.membership().partitions;
        self.cursors.retain(|p, _| owned.binary_search(p).is_ok());
        gauge!("collector_partitions_owned").set(owned.len() as f64);
        for p in owned {
            if self.cursors.contains_key(&p) {
                continue;
            }
            let stored = self.sink.stored_offset(p)?;
            tracing::info!(
                partition = p,
                offset = stored,
                "resuming partition from the database's offset"
            );
            let epoch = self.next_epoch;
            self.next_epoch += 1;
            self.cursors.insert(
                p,
                Cursor {
                    position: stored.max(0) as u64,
                    expect: stored,
                    epoch,
                    encoding: Encoding::Batches,
                },
            );
        }
        Ok(())
    }

    /// One fetch from the next partition in turn; `Ok(false)` when the writer is gone.
    fn fetch_one(&mut self) -> Result<bool> {
        let parts: Vec<u32> = self.cursors.keys().copied().collect();
        let p = parts[self.turn % parts.len()];
        self.turn = self.turn.wrapping_add(1);
        let wait = if self.idle >= parts.len() {
            IDLE_WAIT
        } else {
            Duration::ZERO
        };
        let Some(cursor) = self.cursors.get_mut(&p) else {
            return Ok(true);
        };
        let fetched = match self.client.fetch(
            &self.topic,
            p,
            cursor.position,
            self.max,
            wait,
            cursor.encoding,
        ) {
            Ok(f) => f,
            Err(ClientError::OffsetOutOfRange {
                log_start, log_end, ..
            }) => {
                out_of_range(p, cursor, log_start, log_end);
                return Ok(true);
            }
            Err(e) => return Err(e.into()),
        };
        gauge!("collector_lag_messages", "partition" => p.to_string())
            .set(fetched.log_end_offset.saturating_sub(cursor.position) as f64);
        if fetched.is_empty() {
            self.idle += 1;
            return Ok(true);
        }
        self.idle = 0;
        let chunk = decode(&fetched, cursor.epoch, cursor.expect);
        if chunk.next as u64 == cursor.position {
            tracing::warn!(
                partition = p,
                offset = cursor.position,
                "unreadable batch answer; reading this partition as NDJSON"
            );
            cursor.encoding = Encoding::Ndjson;
            return Ok(true);
        }
        counter!("collector_messages_fetched_total")
            .increment((chunk.rows.len() + chunk.dead.len()) as u64);
        cursor.expect = chunk.next;
        cursor.position = chunk.next as u64;
        for piece in chunk.split(self.max as usize) {
            let writer = &self.out[p as usize % self.out.len()];
            if writer.send(piece).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The stored offset is outside the log: before its start, messages were deleted by
/// retention before anyone stored them (skip to the start: they are gone); past its end, the
/// broker lost messages it had acknowledged, so wait for the log to grow back.
fn out_of_range(p: u32, cursor: &mut Cursor, log_start: u64, log_end: u64) {
    if cursor.position < log_start {
        tracing::error!(
            partition = p,
            from = cursor.position,
            to = log_start,
            "offsets deleted by retention before they were stored; skipping to the log start"
        );
        cursor.position = log_start;
    } else {
        tracing::error!(
            partition = p,
            position = cursor.position,
            log_end,
            "stored offset is past the log end: the broker lost acknowledged messages"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}
