//! Moving the points of a `0001` database into the compact store, in small batches.
//!
//! Migration `0002` renames the old `telemetry` table to `legacy_telemetry` (instant) and its
//! totals to `legacy_metric_totals`; the `telemetry` view shows both old and new points
//! meanwhile. [`move_batch`] then moves up to N rows per transaction: it deletes them from
//! the legacy table and inserts their series, points, rollups, latest values and day totals, and subtracts
//! them from the legacy totals, all in one transaction, so a crash at any moment loses or
//! doubles nothing and `/api/v1/stats` stays exact throughout. The collector's maintenance
//! task runs it (never the ingest path); on a big table it takes a while, and ingest goes
//! on meanwhile. When the legacy table is empty, [`finish`] drops it.
//!
//! Points older than the retention are deleted without being moved: retention would drop
//! them at once.

use chrono::{DateTime, NaiveDate, Utc};
use postgres::Client;

use crate::error::Result;
use crate::partitions::TABLES;
use crate::write::{DAY_TOTALS_MERGE, ROLLUP_COLUMNS, ROLLUP_MERGE};

/// Whether a legacy table is still there.
pub fn pending(client: &mut Client) -> Result<bool> {
    Ok(client
        .query_one("SELECT to_regclass('legacy_telemetry') IS NOT NULL", &[])?
        .get(0))
}

/// Creates the partitions every legacy point newer than `oldest` falls into (one scan of
/// the legacy table).
pub fn prepare_partitions(client: &mut Client, oldest: Option<DateTime<Utc>>) -> Result<usize> {
    let rows = client.query(
        "SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM legacy_telemetry
         WHERE ts >= coalesce($1::timestamptz, '-infinity')",
        &[&oldest],
    )?;
    let mut created = 0;
    for row in rows {
        let day: NaiveDate = row.get(0);
        for table in TABLES {
            created += usize::from(table.ensure(client, day)?);
        }
    }
    Ok(created)
}

/// The legacy rows of one batch, joined to their series.
const BATCH_WITH_SERIES: &str = "
    legacy_batch b JOIN series s
      ON (s.gpu_uuid, s.metric, s.hostname, s.container, s.pod, s.namespace, s.labels)
       = (b.gpu_uuid, b.metric, b.hostname, coalesce(b.container, ''), coalesce(b.pod, ''),
          coalesce(b.namespace, ''), b.labels)
    WHERE b.ts >= $1";

/// Moves up to `max_rows` legacy points; returns how many rows left the legacy table (0 when
/// it is empty). Call [`prepare_partitions`] first.
pub fn move_batch(
    client: &mut Client,
    max_rows: i64,
    oldest: Option<DateTime<Utc>>,
) -> Result<u64> {
    let oldest = oldest.unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut tx = client.transaction()?;
    tx.batch_execute("CREATE TEMP TABLE legacy_batch (LIKE legacy_telemetry) ON COMMIT DROP")?;
    let moved = tx.execute(
        "WITH moved AS (
             DELETE FROM legacy_telemetry
             WHERE ctid = ANY (ARRAY(SELECT ctid FROM legacy_telemetry LIMIT $1))
             RETURNING *)
         INSERT INTO legacy_batch SELECT * FROM moved",
        &[&max_rows],
    )?;
    if moved == 0 {
        return Ok(0);
    }
    tx.execute(
        "INSERT INTO series (gpu_uuid, metric, hostname, container, pod, namespace, labels)
         SELECT DISTINCT gpu_uuid, metric, hostname, coalesce(container, ''),
                coalesce(pod, ''), coalesce(namespace, ''), labels
         FROM legacy_batch WHERE ts >= $1
         ORDER BY 1, 2, 3, 4, 5, 6, 7
         ON CONFLICT DO NOTHING",
        &[&oldest],
    )?;
    tx.execute(
        format!(
            "INSERT INTO points (ts, value, src_offset, source_ts, series_id, src_partition)
             SELECT b.ts, b.value, b.src_offset, b.source_ts, s.series_id,
                    b.src_partition::smallint
             FROM {BATCH_WITH_SERIES}"
        )
        .as_str(),
        &[&oldest],
    )?;
    for (table, unit) in [("rollup_1m", "minute"), ("rollup_1h", "hour")] {
        tx.execute(
            format!(
                "INSERT INTO {table} AS r {ROLLUP_COLUMNS}
                 SELECT s.series_id, date_trunc('{unit}', b.ts, 'UTC'), count(*)::int4,
                        sum(b.value), min(b.value), max(b.value),
                        min(b.ts), (array_agg(b.value ORDER BY b.ts, b.src_offset))[1],
                        max(b.ts),
                        (array_agg(b.value ORDER BY b.ts DESC, b.src_offset DESC))[1]
                 FROM {BATCH_WITH_SERIES}
                 GROUP BY 1, 2 ORDER BY 1, 2
                 {ROLLUP_MERGE}"
            )
            .as_str(),
            &[&oldest],
        )?;
    }
    // The series' latest points, unless the collector already stored newer ones.
    tx.execute(
        format!(
            "INSERT INTO latest AS l (series_id, ts, value)
             SELECT DISTINCT ON (s.series_id) s.series_id, b.ts, b.value
             FROM {BATCH_WITH_SERIES}
             ORDER BY s.series_id, b.ts DESC, b.src_offset DESC
             ON CONFLICT (series_id) DO UPDATE SET ts = EXCLUDED.ts, value = EXCLUDED.value
             WHERE EXCLUDED.ts >= l.ts"
        )
        .as_str(),
        &[&oldest],
    )?;
    tx.execute(
        format!(
            "INSERT INTO metric_day_totals AS t (metric, day, points, first_ts, last_ts)
             SELECT metric, (ts AT TIME ZONE 'UTC')::date, count(*), min(ts), max(ts)
             FROM legacy_batch WHERE ts >= $1
             GROUP BY 1, 2 ORDER BY 1, 2
             {DAY_TOTALS_MERGE}"
        )
        .as_str(),
        &[&oldest],
    )?;
    tx.execute(
        "UPDATE legacy_metric_totals t SET points = t.points - c.n
         FROM (SELECT metric, count(*) AS n FROM legacy_batch GROUP BY metric) c
         WHERE t.metric = c.metric",
        &[],
    )?;
    tx.commit()?;
    Ok(moved)
}

/// Drops the emptied legacy table; the `telemetry` view then shows the compact store only.
pub fn finish(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction()?;
    let empty: bool = tx
        .query_one("SELECT NOT EXISTS (SELECT 1 FROM legacy_telemetry)", &[])?
        .get(0);
    if !empty {
        return Ok(());
    }
    tx.batch_execute(
        "CREATE OR REPLACE VIEW telemetry AS
         SELECT s.gpu_uuid, p.ts, s.metric, p.value, p.source_ts, s.hostname,
                NULLIF(s.container, '') AS container, NULLIF(s.pod, '') AS pod,
                NULLIF(s.namespace, '') AS namespace, s.labels,
                p.src_partition::integer AS src_partition, p.src_offset
         FROM points p JOIN series s USING (series_id);
         DROP TABLE legacy_telemetry;
         DELETE FROM legacy_metric_totals WHERE points = 0;",
    )?;
    tx.commit()?;
    tracing::info!("every 0001 point is in the compact store; dropped legacy_telemetry");
    Ok(())
}
