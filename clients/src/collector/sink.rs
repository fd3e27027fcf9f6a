//! The PostgreSQL side of the collector: one transaction per batch holding the points (and
//! their series' rollups, GPUs and totals: `store::write`), the dead letters, and the next
//! offsets (`store::offsets`).
//!
//! Exactly once rests on the offsets: each partition's `consumer_offsets` row is locked
//! (`FOR UPDATE`) first and must hold exactly the offset the batch starts from; otherwise the
//! partition's chunks are left out (someone else — a stale or a new owner — wrote that range)
//! and reported back, so the fetcher re-reads the offset. Two collectors can therefore never
//! both write one range, whatever the broker's group thinks at that moment.
//!
//! Before the transaction, `store::write::Writer::prepare` maps points to series ids and
//! creates the partitions they need (each in its own short statement, harmless if the batch
//! then fails). Points the store will not hold (older than the retention, far in the future)
//! become dead letters with the reason, so they are visible, never silently gone.
//!
//! Locks are always taken in one order — offsets by partition, then the points' rollup rows
//! by series, `gpus` by UUID, and the day totals by metric — so concurrent collectors wait for
//! each other but never deadlock; the hot totals rows are locked last, just before commit.

use std::collections::{BTreeMap, BTreeSet};

use store::connect::Pool;
use store::offsets::{self, DeadLetter};
use store::write::{Record, Window, Writer};

use super::chunk::Chunk;
use crate::error::Result;

/// Writes batches for one (group, topic).
pub struct Sink {
    pool: Pool,
    group: String,
    topic: String,
    store: Writer,
}

/// What one [`Sink::write`] did.
#[derive(Debug, Default)]
pub struct Written {
    pub rows: u64,
    pub dead: u64,
    /// Committed next offset per partition.
    pub offsets: BTreeMap<u32, i64>,
    /// Partitions left out because the database's offset was not where the batch started.
    pub mismatched: BTreeSet<u32>,
}

impl Sink {
    pub fn new(pool: Pool, group: &str, topic: &str, window: Window) -> Sink {
        Sink {
            pool,
            group: group.to_string(),
            topic: topic.to_string(),
            store: Writer::new(window),
        }
    }

    /// The committed next offset of `partition` (0 when none is stored yet).
    pub fn stored_offset(&self, partition: u32) -> Result<i64> {
        let mut conn = self.pool.get()?;
        Ok(offsets::stored(
            &mut conn,
            &self.group,
            &self.topic,
            partition,
        )?)
    }

    /// Writes `chunks` (consecutive per partition, in offset order) in one transaction.
    pub fn write(&self, chunks: &[Chunk]) -> Result<Written> {
        let result = self.write_once(chunks);
        if result.is_err() {
            // Retention may have dropped a partition this writer thought existed.
            self.store.forget_partitions();
        }
        result
    }

    fn write_once(&self, chunks: &[Chunk]) -> Result<Written> {
        let mut conn = self.pool.get()?;
        let records: Vec<&Record> = chunks.iter().flat_map(|c| &c.rows).collect();
        let prepared = self.store.prepare(&mut conn, &records)?;
        let mut tx = conn.transaction()?;
        let ranges = ranges(chunks);
        let partitions: Vec<u32> = ranges.keys().copied().collect();
        let stored = offsets::lock(&mut tx, &self.group, &self.topic, &partitions)?;
        let mut written = Written::default();
        for (p, (expect, next)) in &ranges {
            if stored.get(p) == Some(expect) {
                written.offsets.insert(*p, *next);
            } else {
                written.mismatched.insert(*p);
            }
        }
        let accepted: BTreeSet<u32> = written.offsets.keys().copied().collect();
        let rows = prepared.rows(&records, |r| accepted.contains(&r.partition));
        let refused: Vec<DeadLetter> = prepared
            .rejected
            .iter()
            .map(|(i, reason)| (records[*i], reason))
            .filter(|(r, _)| accepted.contains(&r.partition))
            .map(|(r, reason)| dead_letter_of(r, reason))
            .collect();
        let dead: Vec<&DeadLetter> = chunks
            .iter()
            .filter(|c| accepted.contains(&c.partition))
            .flat_map(|c| &c.dead)
            .chain(&refused)
            .collect();
        for d in &dead {
            tracing::warn!(partition = d.partition, offset = d.offset, reason = %d.reason, "dead letter");
        }
        written.rows = self.store.write(&mut tx, &rows)?;
        written.dead = offsets::insert_dead_letters(&mut tx, &self.topic, &dead)?;
        offsets::store(&mut tx, &self.group, &self.topic, &written.offsets)?;
        tx.commit()?;
        Ok(written)
    }
}

/// A point the store refused, kept as a dead letter with its JSON.
fn dead_letter_of(record: &Record, reason: &str) -> DeadLetter {
    DeadLetter {
        partition: record.partition,
        offset: record.offset,
        key: Some(record.point.gpu_uuid.to_string()),
        payload: serde_json::to_string(&record.point).unwrap_or_default(),
        reason: reason.to_string(),
    }
}

/// Per partition: (the offset the batch starts from, the offset after it).
fn ranges(chunks: &[Chunk]) -> BTreeMap<u32, (i64, i64)> {
    let mut out: BTreeMap<u32, (i64, i64)> = BTreeMap::new();
    for c in chunks {
        out.entry(c.partition)
            .and_modify(|r| r.1 = c.next)
            .or_insert((c.expect, c.next));
    }
    out
}
