//! Compaction: a day of narrow points, once it is over, rewritten as one dense chunk per
//! series (and broker partition) in `points_compact` ([`crate::codec`], a few bytes a point
//! instead of ~76).
//!
//! One day partition is compacted in one transaction: a cursor reads its points in (series,
//! partition, time, offset) order, each series' points are encoded and COPYed into the day's
//! `points_compact` partition, and the points partition is then detached and dropped. Readers
//! see either the narrow rows or the chunks, never both and never neither. A point that
//! arrives for the day while it is being compacted would be lost with the dropped partition,
//! so the partition's row count is compared with what the cursor read once its lock is held:
//! if it grew, the round
//! gives up (and retries later). A point that arrives after the day was compacted goes into a
//! recreated narrow partition, compacted in its turn into one more chunk: a series may have
//! several chunks a day.
//!
//! Rollups and day totals are not touched: they describe the same points.

use chrono::{DateTime, Utc};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, Transaction};

use crate::codec::{self, ChunkPoint};
use crate::error::Result;
use crate::partitions::{Partition, POINTS, POINTS_COMPACT};

/// Rows fetched from the cursor at a time (bounded memory whatever the day's size).
const FETCH_ROWS: i64 = 50_000;

/// How long compaction waits for the points table's lock before trying again next round.
const DETACH_LOCK_TIMEOUT: &str = "2s";

const COPY_CHUNKS_SQL: &str = "COPY points_compact (series_id, day, src_partition, count, \
     first_ts, last_ts, data) FROM STDIN (FORMAT binary)";
const COPY_CHUNKS_TYPES: [Type; 7] = [
    Type::INT4,
    Type::TIMESTAMPTZ,
    Type::INT2,
    Type::INT4,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::BYTEA,
];

/// Compacts every points partition that ended before `before`; returns their names.
pub fn compact_older_than(client: &mut Client, before: DateTime<Utc>) -> Result<Vec<String>> {
    let before_day = before.date_naive();
    let mut done = Vec::new();
    for p in POINTS.list(client)? {
        if p.end > before_day {
            break;
        }
        if compact_partition(client, &p)? {
            done.push(p.name);
        }
    }
    Ok(done)
}

/// Compacts one points partition; `Ok(false)` when it must be tried again later.
pub fn compact_partition(client: &mut Client, partition: &Partition) -> Result<bool> {
    POINTS_COMPACT.ensure(client, partition.start)?;
    let day = partition
        .start
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let started = std::time::Instant::now();
    let mut tx = client.transaction()?;
    tx.batch_execute(&format!(
        "DECLARE points_to_compact NO SCROLL CURSOR FOR
         SELECT series_id, src_partition, ts, value, src_offset, source_ts FROM {}
         ORDER BY series_id, src_partition, ts, src_offset",
        partition.name
    ))?;
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut open: Option<Chunk> = None;
    let mut encoded = 0i64;
    loop {
        let rows = tx.query(&format!("FETCH {FETCH_ROWS} FROM points_to_compact"), &[])?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let key: (i32, i16) = (row.try_get(0)?, row.try_get(1)?);
            let ts: DateTime<Utc> = row.try_get(2)?;
            let source_ts: Option<DateTime<Utc>> = row.try_get(5)?;
            let point = ChunkPoint {
                ts: ts.timestamp_micros(),
                value: row.try_get(3)?,
                src_offset: row.try_get(4)?,
                source_ts: source_ts.map(|t| t.timestamp_micros()),
            };
            match open.as_mut() {
                Some(c) if (c.series_id, c.src_partition) == key => c.points.push(point),
                _ => {
                    chunks.extend(open.take());
                    open = Some(Chunk {
                        series_id: key.0,
                        src_partition: key.1,
                        points: vec![point],
                    });
                }
            }
            encoded += 1;
        }
        // Finished series are written as the cursor moves on; the open one waits for more.
        copy_chunks(&mut tx, day, &chunks)?;
        chunks.clear();
    }
    chunks.extend(open.take());
    copy_chunks(&mut tx, day, &chunks)?;
    tx.batch_execute(&format!(
        "CLOSE points_to_compact; SET LOCAL lock_timeout = '{DETACH_LOCK_TIMEOUT}';"
    ))?;
    match detach_and_drop_checked(&mut tx, partition, encoded) {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        Err(e) if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            tracing::info!(partition = %partition.name, "points table busy; compacting next round");
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit()?;
    tracing::info!(partition = %partition.name, points = encoded,
        seconds = started.elapsed().as_secs_f64(), "compacted a day of points");
    Ok(true)
}

/// Takes the parent's lock with the detach, then checks the partition holds exactly the
/// `read` rows the cursor saw (points are only ever inserted, so the same count is the same
/// rows); only then drops the partition.
fn detach_and_drop_checked(
    tx: &mut Transaction<'_>,
    partition: &Partition,
    read: i64,
) -> std::result::Result<bool, postgres::Error> {
    tx.batch_execute(&format!(
        "ALTER TABLE points DETACH PARTITION {}",
        partition.name
    ))?;
    let now: i64 = tx
        .query_one(&format!("SELECT count(*) FROM {}", partition.name), &[])?
        .get(0);
    if now != read {
        tracing::info!(partition = %partition.name, read, now,
            "points arrived while compacting; compacting next round");
        return Ok(false);
    }
    tx.batch_execute(&format!("DROP TABLE {}", partition.name))?;
    Ok(true)
}

/// One series' points of the day, from one broker partition.
struct Chunk {
    series_id: i32,
    src_partition: i16,
    points: Vec<ChunkPoint>,
}

fn copy_chunks(tx: &mut Transaction<'_>, day: DateTime<Utc>, chunks: &[Chunk]) -> Result<()> {
    if chunks.is_empty() {
        return Ok(());
    }
    let writer = tx.copy_in(COPY_CHUNKS_SQL)?;
    let mut writer = BinaryCopyInWriter::new(writer, &COPY_CHUNKS_TYPES);
    for c in chunks {
        let micros = |us: i64| DateTime::from_timestamp_micros(us).unwrap_or_default();
        let first = c.points.first().map_or(day, |p| micros(p.ts));
        let last = c.points.last().map_or(day, |p| micros(p.ts));
        let count = i32::try_from(c.points.len()).unwrap_or(i32::MAX);
        let data = codec::encode(&c.points);
        writer.write(&[
            &c.series_id,
            &day,
            &c.src_partition,
            &count,
            &first,
            &last,
            &data,
        ])?;
    }
    writer.finish()?;
    Ok(())
}
