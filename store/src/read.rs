//! The read side: every query the API runs, and the decoding of what they return.
//!
//! The API prepares these statements once per connection and runs them with its own pool;
//! what a statement returns is read back with the helpers here, so the shape of the rows is
//! decided in one place. None of them scans all points: the GPU list reads `gpus`, the stats
//! read the day totals, a window reads one GPU's series and, within the window's partitions,
//! their points (`points_series_idx` narrowed by the `ts` BRIN index) and, for days already
//! compacted, their chunks, which [`merge_window`] decodes and merges in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use postgres::types::{FromSql, Type};
use postgres::Row;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::codec::{self, ChunkPoint};
use crate::error::Result;

/// The window statement, for all of a GPU's series or (with the two filters) one metric's.
macro_rules! window_sql {
    ($series_filter:literal, $ids_filter:literal) => {
        concat!(
            "SELECT p.ts, s.metric, p.value, p.source_ts, s.hostname, NULLIF(s.container, ''),
       NULLIF(s.pod, ''), NULLIF(s.namespace, ''), s.labels, p.src_offset,
       EXISTS (SELECT 1 FROM points_compact c
               WHERE c.series_id = ANY (ARRAY(SELECT series_id FROM series WHERE gpu_uuid = $1",
            $ids_filter,
            "))
                 AND c.last_ts >= coalesce($2::timestamptz, '-infinity')
                 AND c.first_ts <= coalesce($3::timestamptz, 'infinity'))
FROM series s JOIN points p ON p.series_id = s.series_id
WHERE s.gpu_uuid = $1",
            $series_filter,
            "
  AND p.series_id = ANY (ARRAY(SELECT series_id FROM series WHERE gpu_uuid = $1",
            $ids_filter,
            "))
  AND p.ts >= coalesce($2::timestamptz, '-infinity')
  AND p.ts <= coalesce($3::timestamptz, 'infinity')
  AND date_bin('10 minutes', p.ts AT TIME ZONE 'UTC', '2000-01-01')
      >= date_bin('10 minutes', coalesce($2::timestamptz, '-infinity') AT TIME ZONE 'UTC', '2000-01-01')
  AND date_bin('10 minutes', p.ts AT TIME ZONE 'UTC', '2000-01-01')
      <= date_bin('10 minutes', coalesce($3::timestamptz, 'infinity') AT TIME ZONE 'UTC', '2000-01-01')
  AND ($6::timestamptz IS NULL OR (p.ts, p.src_offset) > ($6, $7::int8))
ORDER BY p.ts, p.src_offset
LIMIT $4 OFFSET $5"
        )
    };
}

/// One GPU's points in an inclusive window, in a stable total order (time, then arrival),
/// after the cursor `($6, $7)` (time, offset; NULL for none), skipping `$5` and returning at
/// most `$4`. A missing bound is ±infinity. With a cursor, `$2` is the cursor's time (or the
/// window's start if later), so that only the partitions and bins from there on are read. The GPU's series
/// ids are looked up first (`ARRAY(…)`, one small index scan) so that each partition is read
/// with one bitmap scan of `points_series_idx` for all of them; the 10-minute bins repeat the
/// window in the index's own terms, so that scan reads only the window's posting lists.
///
/// The last column says whether the window also reaches compacted chunks (computed once, as an
/// init plan): when it does not — every window within the last day — the rows are the page,
/// and a page costs one round trip.
pub const WINDOW_SQL: &str = window_sql!("", "");

/// [`WINDOW_SQL`] for some metrics (`$8`, an array).
pub const WINDOW_METRIC_SQL: &str = window_sql!(
    " AND s.metric = ANY ($8::text[])",
    " AND metric = ANY ($8::text[])"
);

/// The compacted chunks of one GPU (`$1`) that overlap a window (`$2`..`$3`, NULL for
/// ±infinity), of some metrics (`$4`, an array) or all (NULL). Small: a row per series and day.
pub const WINDOW_CHUNKS_SQL: &str = "\
SELECT s.metric, s.hostname, NULLIF(s.container, ''), NULLIF(s.pod, ''),
       NULLIF(s.namespace, ''), s.labels, c.data
FROM series s JOIN points_compact c ON c.series_id = s.series_id
WHERE s.gpu_uuid = $1 AND ($4::text[] IS NULL OR s.metric = ANY ($4))
  AND c.last_ts >= coalesce($2::timestamptz, '-infinity')
  AND c.first_ts <= coalesce($3::timestamptz, 'infinity')";

/// Asked only when a window is empty: does the GPU (`$1`) exist?
pub const KNOWN_SQL: &str = "SELECT EXISTS (SELECT 1 FROM gpus WHERE gpu_uuid = $1)";

/// The GPU list from the small `gpus` table, filtered by hostname (`$1`), model (`$2`),
/// namespace (`$3`) and pod (`$4`), each NULL for any. A GPU matches a namespace or pod when
/// any of its series carries it (`series_key` is indexed by GPU first).
pub const GPUS_SQL: &str = "\
SELECT g.gpu_uuid, g.hostname, g.gpu_index, g.device, g.model, g.first_seen, g.last_seen
FROM gpus g
WHERE ($1::text IS NULL OR g.hostname = $1) AND ($2::text IS NULL OR g.model = $2)
  AND (($3::text IS NULL AND $4::text IS NULL)
       OR EXISTS (SELECT 1 FROM series s WHERE s.gpu_uuid = g.gpu_uuid
                  AND ($3::text IS NULL OR s.namespace = $3)
                  AND ($4::text IS NULL OR s.pod = $4)))
ORDER BY g.hostname, g.gpu_index, g.gpu_uuid";

/// Does a host (`$1`) have any GPU?
pub const HOST_KNOWN_SQL: &str = "SELECT EXISTS (SELECT 1 FROM gpus WHERE hostname = $1)";

/// Every host with its GPU count and first and last sighting, from `gpus`.
pub const HOSTS_SQL: &str = "\
SELECT hostname, count(*)::int8, min(first_seen), max(last_seen)
FROM gpus
GROUP BY hostname
ORDER BY hostname";

/// The latest value of each metric of each GPU, from `latest` (a row per series): metrics
/// `$1` and hosts `$2` (arrays, NULL for all). When a GPU's metric has several series (a pod
/// came and went), the newest point among them.
pub const LATEST_SQL: &str = "\
SELECT gpu_uuid, hostname, gpu_index, metric, ts, value
FROM (SELECT DISTINCT ON (g.gpu_uuid, s.metric)
             g.gpu_uuid, g.hostname, g.gpu_index, s.metric, l.ts, l.value
      FROM series s
      JOIN latest l ON l.series_id = s.series_id
      JOIN gpus g ON g.gpu_uuid = s.gpu_uuid
      WHERE ($1::text[] IS NULL OR s.metric = ANY ($1))
        AND ($2::text[] IS NULL OR g.hostname = ANY ($2))
      ORDER BY g.gpu_uuid, s.metric, l.ts DESC) t
ORDER BY hostname, gpu_index, gpu_uuid, metric";

/// The collectors' committed offsets, per group, topic and partition.
pub const CONSUMER_OFFSETS_SQL: &str = "\
SELECT group_name, topic, partition, next_offset, updated_at
FROM consumer_offsets
ORDER BY group_name, topic, partition";

/// How many messages were dead-lettered, and when the last one was.
pub const DEAD_LETTERS_SQL: &str = "SELECT count(*), max(received_at) FROM dead_letters";

/// Exact per-metric totals: the day totals (kept by the collector, cut by retention) plus
/// what a `0001` database holds that is not moved yet.
pub const METRIC_TOTALS_SQL: &str = "\
SELECT metric, sum(points)::int8, min(first_ts), max(last_ts)
FROM (SELECT metric, points, first_ts, last_ts FROM metric_day_totals
      UNION ALL
      SELECT metric, points, first_ts, last_ts FROM legacy_metric_totals WHERE points > 0) t
GROUP BY metric
ORDER BY metric";

/// GPU and host counts, from `gpus`.
pub const GPU_COUNTS_SQL: &str = "SELECT count(*), count(DISTINCT hostname) FROM gpus";

/// A stored point as a window returns it, borrowing the row's text; serialised as the API's
/// `Point` (the API describes that shape in its OpenAPI spec).
#[derive(Debug, Clone, Serialize)]
pub struct StoredPoint<'r> {
    #[serde(with = "crate::time::rfc3339_micros")]
    pub ts: DateTime<Utc>,
    pub metric: &'r str,
    pub value: f64,
    #[serde(with = "crate::time::rfc3339_micros_opt")]
    pub source_ts: Option<DateTime<Utc>>,
    pub hostname: &'r str,
    pub container: Option<&'r str>,
    pub pod: Option<&'r str>,
    pub namespace: Option<&'r str>,
    pub labels: &'r RawValue,
    /// The broker offset: with `ts`, the point's place in the window's order (a cursor).
    #[serde(skip)]
    pub src_offset: i64,
}

impl<'r> StoredPoint<'r> {
    /// A row of [`WINDOW_SQL`] or [`WINDOW_METRIC_SQL`].
    pub fn from_row(row: &'r Row) -> Result<StoredPoint<'r>> {
        Ok(StoredPoint {
            ts: row.try_get(0)?,
            metric: row.try_get(1)?,
            value: row.try_get(2)?,
            source_ts: row.try_get(3)?,
            hostname: row.try_get(4)?,
            container: row.try_get(5)?,
            pod: row.try_get(6)?,
            namespace: row.try_get(7)?,
            labels: row.try_get::<_, RawJson>(8)?.0,
            src_offset: row.try_get(9)?,
        })
    }
}

/// Decodes the `data` of [`WINDOW_CHUNKS_SQL`] rows, in row order.
pub fn decode_chunks(rows: &[Row]) -> Result<Vec<Vec<ChunkPoint>>> {
    rows.iter()
        .map(|row| codec::decode(row.try_get::<_, &[u8]>(6)?))
        .collect()
}

/// Where a page starts: after this (time, offset) in the window's order.
pub type Cursor = (DateTime<Utc>, i64);

/// One page of a window that has compacted chunks: the window's row-form points (`narrow`,
/// rows of [`WINDOW_SQL`] from the first after `after`, at least `offset + take` of them) and
/// the points of its chunks, merged in (time, offset) order; points up to `after` and then
/// `offset` more skipped, at most `take` returned.
pub fn merge_window<'r>(
    narrow: &'r [Row],
    chunk_rows: &'r [Row],
    chunks: &'r [Vec<ChunkPoint>],
    window: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    after: Option<Cursor>,
    offset: usize,
    take: usize,
) -> Result<Vec<StoredPoint<'r>>> {
    let (start, end) = window;
    let inside =
        |ts: &DateTime<Utc>| start.is_none_or(|s| *ts >= s) && end.is_none_or(|e| *ts <= e);
    let mut all: Vec<(DateTime<Utc>, i64, StoredPoint<'r>)> = Vec::new();
    for row in narrow {
        all.push((
            row.try_get(0)?,
            row.try_get(9)?,
            StoredPoint::from_row(row)?,
        ));
    }
    for (row, points) in chunk_rows.iter().zip(chunks) {
        let labels = row.try_get::<_, RawJson>(5)?.0;
        for p in points {
            let Some(ts) = DateTime::from_timestamp_micros(p.ts).filter(inside) else {
                continue;
            };
            if after.is_some_and(|a| (ts, p.src_offset) <= a) {
                continue;
            }
            let point = StoredPoint {
                ts,
                metric: row.try_get(0)?,
                value: p.value,
                source_ts: p.source_ts.and_then(DateTime::from_timestamp_micros),
                hostname: row.try_get(1)?,
                container: row.try_get(2)?,
                pod: row.try_get(3)?,
                namespace: row.try_get(4)?,
                labels,
                src_offset: p.src_offset,
            };
            all.push((ts, p.src_offset, point));
        }
    }
    all.sort_by_key(|a| (a.0, a.1));
    Ok(all
        .into_iter()
        .skip(offset)
        .take(take)
        .map(|(_, _, p)| p)
        .collect())
}

/// Exact totals over everything stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub points: i64,
    pub first_ts: Option<DateTime<Utc>>,
    pub last_ts: Option<DateTime<Utc>>,
    pub points_per_metric: BTreeMap<String, i64>,
}

impl Totals {
    /// Sums the rows of [`METRIC_TOTALS_SQL`].
    pub fn from_rows(rows: &[Row]) -> Result<Totals> {
        let mut totals = Totals::default();
        for row in rows {
            let metric: String = row.try_get(0)?;
            let count: i64 = row.try_get(1)?;
            let first: DateTime<Utc> = row.try_get(2)?;
            let last: DateTime<Utc> = row.try_get(3)?;
            totals.points += count;
            totals.first_ts = Some(totals.first_ts.map_or(first, |t| t.min(first)));
            totals.last_ts = Some(totals.last_ts.map_or(last, |t| t.max(last)));
            totals.points_per_metric.insert(metric, count);
        }
        Ok(totals)
    }
}

/// A `jsonb` (or `json`) column as raw JSON text borrowed from the row: validated, but not
/// rebuilt into a tree and serialised again, since the API only passes it through.
pub struct RawJson<'a>(pub &'a RawValue);

impl<'a> FromSql<'a> for RawJson<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        // jsonb's binary form is a version byte (1) and then the JSON text.
        let text = match (ty, raw.split_first()) {
            (&Type::JSONB, Some((1, rest))) => rest,
            (&Type::JSONB, _) => return Err("unsupported jsonb format version".into()),
            _ => raw,
        };
        Ok(RawJson(serde_json::from_str(std::str::from_utf8(text)?)?))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSONB | Type::JSON)
    }
}
