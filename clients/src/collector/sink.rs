//! The PostgreSQL side of the collector: one transaction per batch holding the rows (binary
//! COPY), the dead letters, the `gpus` and `metric_totals` upserts, and the next offsets.
//!
//! Exactly once rests on the offsets: each partition's `consumer_offsets` row is locked
//! (`FOR UPDATE`) first and must hold exactly the offset the batch starts from; otherwise the
//! partition's chunks are left out (someone else — a stale or a new owner — wrote that range)
//! and reported back, so the fetcher re-reads the offset. Two collectors can therefore never
//! both write one range, whatever the broker's group thinks at that moment.
//!
//! Locks are always taken in one order — offsets by partition, then `gpus` by UUID, then
//! `metric_totals` by metric — so concurrent collectors wait for each other but never
//! deadlock; the hot `metric_totals` rows are locked last, just before commit.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Utc};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{NoTls, Transaction};
use r2d2_postgres::PostgresConnectionManager;

use super::chunk::{Chunk, Row};
use crate::error::Result;

pub type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// The columns the COPY fills, in order, with their types.
const COPY_SQL: &str =
    "COPY telemetry (gpu_uuid, ts, metric, value, source_ts, hostname, container, pod, \
     namespace, labels, src_partition, src_offset) FROM STDIN (FORMAT binary)";
const COPY_TYPES: [Type; 12] = [
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::FLOAT8,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::INT4,
    Type::INT8,
];

/// Writes batches for one (group, topic).
pub struct Sink {
    pool: Pool,
    group: String,
    topic: String,
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

/// JSON text sent as `jsonb` without parsing it again (binary jsonb = version 1 + the text).
#[derive(Debug)]
struct JsonbText<'a>(&'a str);

impl ToSql for JsonbText<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }

    to_sql_checked!();
}

impl Sink {
    pub fn new(pool: Pool, group: &str, topic: &str) -> Sink {
        Sink {
            pool,
            group: group.to_string(),
            topic: topic.to_string(),
        }
    }

    /// The committed next offset of `partition` (0 when none is stored yet).
    pub fn stored_offset(&self, partition: u32) -> Result<i64> {
        let mut conn = self.pool.get()?;
        let row = conn.query_opt(
            "SELECT next_offset FROM consumer_offsets WHERE group_name = $1 AND topic = $2 AND partition = $3",
            &[&self.group, &self.topic, &(partition as i32)],
        )?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    /// Writes `chunks` (consecutive per partition, in offset order) in one transaction.
    pub fn write(&self, chunks: &[Chunk]) -> Result<Written> {
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction()?;
        let ranges = ranges(chunks);
        let stored = self.lock_offsets(&mut tx, ranges.keys().map(|p| *p as i32).collect())?;
        let mut written = Written::default();
        for (p, (expect, next)) in &ranges {
            if stored.get(p) == Some(expect) {
                written.offsets.insert(*p, *next);
            } else {
                written.mismatched.insert(*p);
            }
        }
        let accepted: Vec<&Chunk> = chunks
            .iter()
            .filter(|c| written.offsets.contains_key(&c.partition))
            .collect();
        written.rows = copy_rows(&mut tx, &accepted)?;
        written.dead = self.insert_dead_letters(&mut tx, &accepted)?;
        upsert_gpus(&mut tx, &accepted)?;
        upsert_metric_totals(&mut tx, &accepted)?;
        self.store_offsets(&mut tx, &written.offsets)?;
        tx.commit()?;
        Ok(written)
    }

    /// Makes sure each partition has an offsets row, locks them in partition order, and
    /// returns what they hold.
    fn lock_offsets(
        &self,
        tx: &mut Transaction<'_>,
        partitions: Vec<i32>,
    ) -> Result<BTreeMap<u32, i64>> {
        // A concurrent first insert makes this wait for the other transaction, and the SELECT
        // below then sees its committed offset: the guard holds from the very first batch.
        tx.execute(
            "INSERT INTO consumer_offsets (group_name, topic, partition, next_offset)
             SELECT $1, $2, p, 0 FROM unnest($3::int4[]) AS p ORDER BY p
             ON CONFLICT DO NOTHING",
            &[&self.group, &self.topic, &partitions],
        )?;
        let rows = tx.query(
            "SELECT partition, next_offset FROM consumer_offsets
             WHERE group_name = $1 AND topic = $2 AND partition = ANY($3)
             ORDER BY partition FOR UPDATE",
            &[&self.group, &self.topic, &partitions],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, i64>(1)))
            .collect())
    }

    fn store_offsets(&self, tx: &mut Transaction<'_>, offsets: &BTreeMap<u32, i64>) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let parts: Vec<i32> = offsets.keys().map(|p| *p as i32).collect();
        let nexts: Vec<i64> = offsets.values().copied().collect();
        tx.execute(
            "UPDATE consumer_offsets c SET next_offset = u.next, updated_at = now()
             FROM unnest($3::int4[], $4::int8[]) AS u(p, next)
             WHERE c.group_name = $1 AND c.topic = $2 AND c.partition = u.p",
            &[&self.group, &self.topic, &parts, &nexts],
        )?;
        Ok(())
    }

    fn insert_dead_letters(&self, tx: &mut Transaction<'_>, chunks: &[&Chunk]) -> Result<u64> {
        let dead: Vec<(i32, &super::chunk::DeadLetter)> = chunks
            .iter()
            .flat_map(|c| c.dead.iter().map(move |d| (c.partition as i32, d)))
            .collect();
        if dead.is_empty() {
            return Ok(0);
        }
        for (p, d) in &dead {
            tracing::warn!(partition = p, offset = d.offset, reason = %d.reason, "dead letter");
        }
        let parts: Vec<i32> = dead.iter().map(|(p, _)| *p).collect();
        let offsets: Vec<i64> = dead.iter().map(|(_, d)| d.offset).collect();
        let keys: Vec<Option<&str>> = dead.iter().map(|(_, d)| d.key.as_deref()).collect();
        let payloads: Vec<&str> = dead.iter().map(|(_, d)| d.payload.as_str()).collect();
        let reasons: Vec<&str> = dead.iter().map(|(_, d)| d.reason.as_str()).collect();
        let n = tx.execute(
            "INSERT INTO dead_letters (topic, partition, \"offset\", key, payload, reason)
             SELECT $1, * FROM unnest($2::int4[], $3::int8[], $4::text[], $5::text[], $6::text[])",
            &[&self.topic, &parts, &offsets, &keys, &payloads, &reasons],
        )?;
        Ok(n)
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

/// Binary COPY of the chunks' rows into `telemetry` (public so the benchmark's reference
/// measures PostgreSQL's COPY of the very same rows, the same way).
pub fn copy_rows(tx: &mut Transaction<'_>, chunks: &[&Chunk]) -> Result<u64> {
    if chunks.iter().all(|c| c.rows.is_empty()) {
        return Ok(0);
    }
    let writer = tx.copy_in(COPY_SQL)?;
    let mut writer = BinaryCopyInWriter::new(writer, &COPY_TYPES);
    for chunk in chunks {
        let partition = chunk.partition as i32;
        for r in &chunk.rows {
            writer.write(&[
                &r.gpu_uuid,
                &r.ts,
                &r.metric,
                &r.value,
                &r.source_ts,
                &r.hostname,
                &r.container,
                &r.pod,
                &r.namespace,
                &JsonbText(&r.labels),
                &partition,
                &r.offset,
            ])?;
        }
    }
    Ok(writer.finish()?)
}

/// First/last seen per GPU, attributes from its latest row in the batch.
fn upsert_gpus(tx: &mut Transaction<'_>, chunks: &[&Chunk]) -> Result<()> {
    let mut gpus: BTreeMap<&str, (&Row, DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    for r in chunks.iter().flat_map(|c| &c.rows) {
        gpus.entry(&r.gpu_uuid)
            .and_modify(|(latest, first, last)| {
                *first = (*first).min(r.ts);
                if r.ts >= *last {
                    *last = r.ts;
                    *latest = r;
                }
            })
            .or_insert((r, r.ts, r.ts));
    }
    if gpus.is_empty() {
        return Ok(());
    }
    let uuids: Vec<&str> = gpus.keys().copied().collect();
    let hosts: Vec<&str> = gpus.values().map(|g| g.0.hostname.as_str()).collect();
    let indexes: Vec<i32> = gpus.values().map(|g| g.0.gpu_index).collect();
    let devices: Vec<&str> = gpus.values().map(|g| g.0.device.as_str()).collect();
    let models: Vec<&str> = gpus.values().map(|g| g.0.model.as_str()).collect();
    let firsts: Vec<DateTime<Utc>> = gpus.values().map(|g| g.1).collect();
    let lasts: Vec<DateTime<Utc>> = gpus.values().map(|g| g.2).collect();
    tx.execute(
        "INSERT INTO gpus (gpu_uuid, hostname, gpu_index, device, model, first_seen, last_seen)
         SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::text[],
                              $6::timestamptz[], $7::timestamptz[])
         ON CONFLICT (gpu_uuid) DO UPDATE SET
             hostname = EXCLUDED.hostname, gpu_index = EXCLUDED.gpu_index,
             device = EXCLUDED.device, model = EXCLUDED.model,
             first_seen = LEAST(gpus.first_seen, EXCLUDED.first_seen),
             last_seen = GREATEST(gpus.last_seen, EXCLUDED.last_seen)",
        &[&uuids, &hosts, &indexes, &devices, &models, &firsts, &lasts],
    )?;
    Ok(())
}

/// Adds the batch's points per metric; rows are locked in metric order (arrays are sorted).
fn upsert_metric_totals(tx: &mut Transaction<'_>, chunks: &[&Chunk]) -> Result<()> {
    let mut totals: BTreeMap<&str, (i64, DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    for r in chunks.iter().flat_map(|c| &c.rows) {
        let t = totals.entry(&r.metric).or_insert((0, r.ts, r.ts));
        t.0 += 1;
        t.1 = t.1.min(r.ts);
        t.2 = t.2.max(r.ts);
    }
    if totals.is_empty() {
        return Ok(());
    }
    let metrics: Vec<&str> = totals.keys().copied().collect();
    let points: Vec<i64> = totals.values().map(|t| t.0).collect();
    let firsts: Vec<DateTime<Utc>> = totals.values().map(|t| t.1).collect();
    let lasts: Vec<DateTime<Utc>> = totals.values().map(|t| t.2).collect();
    tx.execute(
        "INSERT INTO metric_totals (metric, points, first_ts, last_ts)
         SELECT * FROM unnest($1::text[], $2::int8[], $3::timestamptz[], $4::timestamptz[])
         ON CONFLICT (metric) DO UPDATE SET
             points = metric_totals.points + EXCLUDED.points,
             first_ts = LEAST(metric_totals.first_ts, EXCLUDED.first_ts),
             last_ts = GREATEST(metric_totals.last_ts, EXCLUDED.last_ts)",
        &[&metrics, &points, &firsts, &lasts],
    )?;
    Ok(())
}
