//! Consumer offsets and dead letters: the bookkeeping a consumer keeps beside the data.
//!
//! `consumer_offsets` holds, per (group, topic, partition), the next broker offset to
//! consume. A consumer locks its partitions' rows ([`lock`]) at the start of the transaction
//! that writes a batch and stores the new offsets ([`store`]) in the same transaction, so the
//! rows and the offsets commit together: that, and checking the locked offset is where the
//! batch starts, is what makes the collector exactly once (see `clients::collector::sink`).
//! `dead_letters` keeps the messages that could not become points, with the reason.

use std::collections::BTreeMap;

use postgres::{Client, Transaction};

use crate::error::Result;

/// A broker message that could not be stored as a point.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub partition: u32,
    /// The message's offset, -1 when the broker's answer was too damaged to tell.
    pub offset: i64,
    pub key: Option<String>,
    pub payload: String,
    pub reason: String,
}

/// The committed next offset of one partition (0 when none is stored yet).
pub fn stored(client: &mut Client, group: &str, topic: &str, partition: u32) -> Result<i64> {
    let row = client.query_opt(
        "SELECT next_offset FROM consumer_offsets
         WHERE group_name = $1 AND topic = $2 AND partition = $3",
        &[&group, &topic, &(partition as i32)],
    )?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// Makes sure each partition has an offsets row, locks them in partition order, and returns
/// what they hold.
pub fn lock(
    tx: &mut Transaction<'_>,
    group: &str,
    topic: &str,
    partitions: &[u32],
) -> Result<BTreeMap<u32, i64>> {
    let partitions: Vec<i32> = partitions.iter().map(|p| *p as i32).collect();
    // A concurrent first insert makes this wait for the other transaction, and the SELECT
    // below then sees its committed offset: the guard holds from the very first batch.
    tx.execute(
        "INSERT INTO consumer_offsets (group_name, topic, partition, next_offset)
         SELECT $1, $2, p, 0 FROM unnest($3::int4[]) AS p ORDER BY p
         ON CONFLICT DO NOTHING",
        &[&group, &topic, &partitions],
    )?;
    let rows = tx.query(
        "SELECT partition, next_offset FROM consumer_offsets
         WHERE group_name = $1 AND topic = $2 AND partition = ANY($3)
         ORDER BY partition FOR UPDATE",
        &[&group, &topic, &partitions],
    )?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, i64>(1)))
        .collect())
}

/// Sets the next offsets of locked partitions.
pub fn store(
    tx: &mut Transaction<'_>,
    group: &str,
    topic: &str,
    offsets: &BTreeMap<u32, i64>,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let parts: Vec<i32> = offsets.keys().map(|p| *p as i32).collect();
    let nexts: Vec<i64> = offsets.values().copied().collect();
    tx.execute(
        "UPDATE consumer_offsets c SET next_offset = u.next, updated_at = now()
         FROM unnest($3::int4[], $4::int8[]) AS u(p, next)
         WHERE c.group_name = $1 AND c.topic = $2 AND c.partition = u.p",
        &[&group, &topic, &parts, &nexts],
    )?;
    Ok(())
}

/// Inserts dead letters; returns how many.
pub fn insert_dead_letters(
    tx: &mut Transaction<'_>,
    topic: &str,
    dead: &[&DeadLetter],
) -> Result<u64> {
    if dead.is_empty() {
        return Ok(0);
    }
    let parts: Vec<i32> = dead.iter().map(|d| d.partition as i32).collect();
    let offsets: Vec<i64> = dead.iter().map(|d| d.offset).collect();
    let keys: Vec<Option<&str>> = dead.iter().map(|d| d.key.as_deref()).collect();
    let payloads: Vec<&str> = dead.iter().map(|d| d.payload.as_str()).collect();
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    let n = tx.execute(
        "INSERT INTO dead_letters (topic, partition, \"offset\", key, payload, reason)
         SELECT $1, * FROM unnest($2::int4[], $3::int8[], $4::text[], $5::text[], $6::text[])",
        &[&topic, &parts, &offsets, &keys, &payloads, &reasons],
    )?;
    Ok(n)
}
