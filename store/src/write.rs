//! The write side: a batch of points into the compact store.
//!
//! Two steps. [`Writer::prepare`] runs before the caller's transaction, each statement on its
//! own: it maps every point to its series id (a cache, then one statement for the series not
//! seen before), creates the partitions the points fall into, and sets aside the points the
//! store will not hold (older than the retention, or too far in the future) with the reason.
//! Series rows so committed are harmless if the batch then fails: a series without points.
//! [`Writer::write`] then runs inside the caller's transaction — the collector's, which also
//! holds the consumer offsets (`crate::offsets`) — and writes, in this lock order: the points
//! (binary COPY), the per-minute and per-hour rollups (merged, rows in (series, bucket)
//! order), the `gpus` rows (by UUID), and the per-metric day totals (by metric and day; the
//! hottest rows, locked last, just before the commit).
//!
//! Rollups are merged incrementally, so they are exactly the aggregates of the stored points:
//! count, sum, min, max, and the first and last value by time. Points of a series arrive in
//! broker-offset order (a series belongs to one GPU, a GPU to one broker partition), so on
//! equal times the earlier arrival stays first and the later one becomes last.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{Json, Type};
use postgres::{Client, Transaction};

use crate::aggregate::Partial;
use crate::error::{Error, Result};
use crate::partitions::{Table, TABLES};
use crate::point::{Labels, Point};

/// A point and where it came from in the broker.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: u32,
    pub offset: i64,
    pub point: Point<'static>,
}

/// Which points the store accepts, by time.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Points older than this are not stored (retention would drop them); `None` keeps all.
    pub retention: Option<Duration>,
    /// Points further ahead than this are not stored (a clock gone wrong would otherwise
    /// create partitions years ahead).
    pub future: Duration,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            retention: None,
            future: Duration::days(7),
        }
    }
}

/// What [`Writer::prepare`] found out about a batch.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The series id of each record, `None` for a rejected one.
    series: Vec<Option<i32>>,
    /// Rejected records: index in the batch and why.
    pub rejected: Vec<(usize, String)>,
}

impl Prepared {
    /// The accepted records that `keep` selects, with their series ids: what
    /// [`Writer::write`] takes. `records` is the slice given to [`Writer::prepare`].
    pub fn rows<'r>(
        &self,
        records: &[&'r Record],
        keep: impl Fn(&Record) -> bool,
    ) -> Vec<(i32, &'r Record)> {
        records
            .iter()
            .zip(&self.series)
            .filter_map(|(r, id)| id.filter(|_| keep(r)).map(|id| (id, *r)))
            .collect()
    }
}

/// Series ids, partitions known to exist, and the time window: what a collector keeps
/// between batches. Shared by its writer threads.
pub struct Writer {
    window: Window,
    series: Mutex<SeriesCache>,
    partitions: Mutex<HashSet<(Table, NaiveDate)>>,
}

/// How many series ids a writer remembers before it starts afresh (~100 bytes each).
const SERIES_CACHE_MAX: usize = 1_000_000;

#[derive(Default)]
struct SeriesCache {
    /// Hash of the series key → the keys with that hash and their ids.
    by_hash: HashMap<u64, Vec<(SeriesKey, i32)>>,
    len: usize,
}

/// What identifies a series: GPU, metric, attributes and labels (in their order; the same
/// labels in another order map to the same id through the database).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeriesKey {
    /// As [`series_fields`] gives them.
    fields: [String; 6],
    labels: Vec<(String, String)>,
}

/// A point's series columns, in the order of `series_key`: GPU, metric, hostname, container,
/// pod, namespace (absent ones as '', as the table stores them).
fn series_fields<'a>(p: &'a Point<'_>) -> [&'a str; 6] {
    let optional = |t: &'a Option<std::borrow::Cow<'_, str>>| t.as_deref().unwrap_or_default();
    [
        &p.gpu_uuid,
        &p.metric,
        &p.hostname,
        optional(&p.container),
        optional(&p.pod),
        optional(&p.namespace),
    ]
}

impl SeriesKey {
    fn of(p: &Point<'_>) -> SeriesKey {
        SeriesKey {
            fields: series_fields(p).map(str::to_string),
            labels: p
                .labels
                .0
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Whether `p` belongs to this series, without copying `p`'s strings.
    fn matches(&self, p: &Point<'_>) -> bool {
        self.fields == series_fields(p)
            && self.labels.len() == p.labels.0.len()
            && self
                .labels
                .iter()
                .zip(&p.labels.0)
                .all(|((k, v), (pk, pv))| k == pk && v == pv)
    }
}

/// Whether two points belong to one series.
fn same_series(a: &Point<'_>, b: &Point<'_>) -> bool {
    series_fields(a) == series_fields(b) && a.labels == b.labels
}

/// The hash of `p`'s series key.
fn series_hash(p: &Point<'_>) -> u64 {
    let mut h = DefaultHasher::new();
    series_fields(p).hash(&mut h);
    for (k, v) in &p.labels.0 {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

impl SeriesCache {
    fn get(&self, hash: u64, p: &Point<'_>) -> Option<i32> {
        self.by_hash
            .get(&hash)?
            .iter()
            .find(|(k, _)| k.matches(p))
            .map(|(_, id)| *id)
    }

    fn insert(&mut self, hash: u64, key: SeriesKey, id: i32) {
        if self.len >= SERIES_CACHE_MAX {
            self.by_hash.clear();
            self.len = 0;
        }
        self.by_hash.entry(hash).or_default().push((key, id));
        self.len += 1;
    }
}

/// Finds or creates series: one row per distinct key of the input, answered with its id.
/// A series another session is creating at this moment is not visible to this statement's
/// snapshot and comes back NULL; the caller asks again for those.
const RESOLVE_SERIES_SQL: &str = "
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::jsonb[]) WITH ORDINALITY AS i(g, m, h, c, p, n, l, ord)
), created AS (
    INSERT INTO series (gpu_uuid, metric, hostname, container, pod, namespace, labels)
    SELECT g, m, h, c, p, n, l FROM input ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING series_id, gpu_uuid, metric, hostname, container, pod, namespace, labels
)
SELECT i.ord, coalesce(c.series_id, s.series_id)
FROM input i
LEFT JOIN created c
    ON (c.gpu_uuid, c.metric, c.hostname, c.container, c.pod, c.namespace, c.labels)
     = (i.g, i.m, i.h, i.c, i.p, i.n, i.l)
LEFT JOIN series s
    ON (s.gpu_uuid, s.metric, s.hostname, s.container, s.pod, s.namespace, s.labels)
     = (i.g, i.m, i.h, i.c, i.p, i.n, i.l)";

/// The columns the COPY fills, in order, with their types.
const COPY_POINTS_SQL: &str = "COPY points (ts, value, src_offset, source_ts, series_id, \
     src_partition) FROM STDIN (FORMAT binary)";
const COPY_POINTS_TYPES: [Type; 6] = [
    Type::TIMESTAMPTZ,
    Type::FLOAT8,
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::INT4,
    Type::INT2,
];

/// How a rollup row absorbs new aggregates of the same bucket (in `SET`, `r` is the row as
/// it was, so the first/last choices compare against the old times).
pub(crate) const ROLLUP_MERGE: &str = "
ON CONFLICT (series_id, bucket) DO UPDATE SET
    count = r.count + EXCLUDED.count,
    sum = r.sum + EXCLUDED.sum,
    min = LEAST(r.min, EXCLUDED.min),
    max = GREATEST(r.max, EXCLUDED.max),
    first_ts = LEAST(r.first_ts, EXCLUDED.first_ts),
    first_value = CASE WHEN EXCLUDED.first_ts < r.first_ts
                       THEN EXCLUDED.first_value ELSE r.first_value END,
    last_ts = GREATEST(r.last_ts, EXCLUDED.last_ts),
    last_value = CASE WHEN EXCLUDED.last_ts >= r.last_ts
                      THEN EXCLUDED.last_value ELSE r.last_value END";

/// Rollup columns, in the order every insert into a rollup table lists them.
pub(crate) const ROLLUP_COLUMNS: &str =
    "(series_id, bucket, count, sum, min, max, first_ts, first_value, last_ts, last_value)";

/// How a day-totals row absorbs a batch's counts.
pub(crate) const DAY_TOTALS_MERGE: &str = "
ON CONFLICT (metric, day) DO UPDATE SET
    points = t.points + EXCLUDED.points,
    first_ts = LEAST(t.first_ts, EXCLUDED.first_ts),
    last_ts = GREATEST(t.last_ts, EXCLUDED.last_ts)";

/// The two rollup resolutions, with their tables.
const ROLLUPS: [(&str, i64); 2] = [("rollup_1m", 60), ("rollup_1h", 3600)];

impl Writer {
    pub fn new(window: Window) -> Writer {
        Writer {
            window,
            series: Mutex::new(SeriesCache::default()),
            partitions: Mutex::new(HashSet::new()),
        }
    }

    pub fn window(&self) -> Window {
        self.window
    }

    /// Forgets which partitions exist (after a failed write: retention may have dropped one).
    pub fn forget_partitions(&self) {
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Resolves series ids, creates partitions and sets aside what the store will not hold;
    /// each statement commits on its own (call it outside the batch's transaction).
    pub fn prepare(&self, client: &mut Client, records: &[&Record]) -> Result<Prepared> {
        let now = Utc::now();
        let oldest = self.window.retention.map(|r| now - r);
        let newest = now + self.window.future;
        let mut prepared = Prepared {
            series: vec![None; records.len()],
            rejected: Vec::new(),
        };
        let mut accepted = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let ts = r.point.ts;
            if let Some(reason) = self.outside(ts, oldest, newest) {
                prepared.rejected.push((i, reason));
            } else {
                accepted.push(i);
            }
        }
        self.resolve_series(client, records, &accepted, &mut prepared.series)?;
        let days: HashSet<NaiveDate> = accepted
            .iter()
            .map(|i| records[*i].point.ts.date_naive())
            .collect();
        self.ensure_partitions(client, days)?;
        Ok(prepared)
    }

    fn outside(
        &self,
        ts: DateTime<Utc>,
        oldest: Option<DateTime<Utc>>,
        newest: DateTime<Utc>,
    ) -> Option<String> {
        if let (Some(oldest), Some(retention)) = (oldest, self.window.retention) {
            if ts < oldest {
                return Some(format!(
                    "ts {} is older than the retention ({} days): it would be dropped at once",
                    crate::time::format_ts(&ts),
                    retention.num_days()
                ));
            }
        }
        (ts > newest).then(|| {
            format!(
                "ts {} is more than {} days in the future",
                crate::time::format_ts(&ts),
                self.window.future.num_days()
            )
        })
    }

    /// Fills `ids[i]` for every accepted record: from the cache, else from the database.
    fn resolve_series(
        &self,
        client: &mut Client,
        records: &[&Record],
        accepted: &[usize],
        ids: &mut [Option<i32>],
    ) -> Result<()> {
        let mut missing: Vec<(u64, usize)> = Vec::new();
        {
            let cache = self.series.lock().unwrap_or_else(|e| e.into_inner());
            for &i in accepted {
                let hash = series_hash(&records[i].point);
                match cache.get(hash, &records[i].point) {
                    Some(id) => ids[i] = Some(id),
                    None => missing.push((hash, i)),
                }
            }
        }
        // One representative record per distinct key.
        let mut distinct: Vec<(u64, usize)> = Vec::new();
        let mut representatives: HashMap<u64, Vec<usize>> = HashMap::new();
        for (hash, i) in &missing {
            let p = &records[*i].point;
            let same_hash = representatives.entry(*hash).or_default();
            if !same_hash.iter().any(|j| same_series(&records[*j].point, p)) {
                same_hash.push(*i);
                distinct.push((*hash, *i));
            }
        }
        let mut found: Vec<(u64, SeriesKey, i32)> = Vec::new();
        for _attempt in 0..5 {
            if distinct.is_empty() {
                break;
            }
            let points: Vec<&Point<'static>> =
                distinct.iter().map(|(_, i)| &records[*i].point).collect();
            let answer = resolve_in_database(client, &points)?;
            let mut still = Vec::new();
            for (n, (hash, i)) in distinct.into_iter().enumerate() {
                match answer.get(n).copied().flatten() {
                    Some(id) => found.push((hash, SeriesKey::of(&records[i].point), id)),
                    None => still.push((hash, i)),
                }
            }
            distinct = still;
        }
        if !distinct.is_empty() {
            return Err(Error::Series(format!(
                "{} series could not be created or found",
                distinct.len()
            )));
        }
        // Looked up by hash, like the shared cache (which may be cleared when full meanwhile).
        let mut resolved = SeriesCache::default();
        for (hash, key, id) in &found {
            resolved.insert(*hash, key.clone(), *id);
        }
        for (hash, i) in missing {
            ids[i] = resolved.get(hash, &records[i].point);
        }
        let mut cache = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for (hash, key, id) in found {
            cache.insert(hash, key, id);
        }
        Ok(())
    }

    /// Creates the partitions of every table for `days` unless known to exist.
    fn ensure_partitions(&self, client: &mut Client, days: HashSet<NaiveDate>) -> Result<()> {
        for day in days {
            for table in TABLES {
                let start = table.start_of(day);
                let known = self
                    .partitions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&(table, start));
                if !known {
                    table.ensure(client, day)?;
                    self.partitions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert((table, start));
                }
            }
        }
        Ok(())
    }

    /// Prepares `records` and writes the accepted ones in a transaction of their own; returns
    /// how many points were written and the rejected records with why. For tools and tests:
    /// the collector writes inside the transaction that also holds its offsets.
    pub fn write_batch(
        &self,
        client: &mut Client,
        records: &[&Record],
    ) -> Result<(u64, Vec<(usize, String)>)> {
        let prepared = self.prepare(client, records)?;
        let mut tx = client.transaction()?;
        let written = self.write(&mut tx, &prepared.rows(records, |_| true))?;
        tx.commit()?;
        Ok((written, prepared.rejected))
    }

    /// Writes prepared rows in `tx`: points, rollups, GPUs, day totals. Returns how many
    /// points were written.
    pub fn write(&self, tx: &mut Transaction<'_>, rows: &[(i32, &Record)]) -> Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let written = copy_points(tx, rows)?;
        for (table, seconds) in ROLLUPS {
            merge_rollups(tx, table, &aggregate(rows, seconds))?;
        }
        upsert_gpus(tx, rows)?;
        upsert_latest(tx, rows)?;
        add_day_totals(tx, rows)?;
        Ok(written)
    }
}

fn resolve_in_database(
    client: &mut Client,
    points: &[&Point<'static>],
) -> Result<Vec<Option<i32>>> {
    let column = |c: usize| -> Vec<&str> { points.iter().map(|p| series_fields(p)[c]).collect() };
    let [gpus, metrics, hosts, containers, pods, namespaces] = [0, 1, 2, 3, 4, 5].map(column);
    let labels: Vec<Json<&Labels<'static>>> = points.iter().map(|p| Json(&p.labels)).collect();
    let rows = client.query(
        RESOLVE_SERIES_SQL,
        &[
            &gpus,
            &metrics,
            &hosts,
            &containers,
            &pods,
            &namespaces,
            &labels,
        ],
    )?;
    let mut ids = vec![None; points.len()];
    for row in rows {
        let ord: i64 = row.get(0);
        if let Some(slot) = usize::try_from(ord - 1).ok().and_then(|i| ids.get_mut(i)) {
            *slot = row.get(1);
        }
    }
    Ok(ids)
}

/// Binary COPY of the rows into `points` (public so a benchmark can measure PostgreSQL's own
/// COPY of the very same rows, the same way).
pub fn copy_points(tx: &mut Transaction<'_>, rows: &[(i32, &Record)]) -> Result<u64> {
    let writer = tx.copy_in(COPY_POINTS_SQL)?;
    let mut writer = BinaryCopyInWriter::new(writer, &COPY_POINTS_TYPES);
    for (series, r) in rows {
        let partition = i16::try_from(r.partition)
            .map_err(|_| Error::Series(format!("broker partition {} > 32767", r.partition)))?;
        writer.write(&[
            &r.point.ts,
            &r.point.value,
            &r.offset,
            &r.point.source_ts,
            series,
            &partition,
        ])?;
    }
    Ok(writer.finish()?)
}

/// The rows' aggregates per (series, bucket of `seconds`), in key order (the lock order).
/// Rows are in arrival order, so folding them in keeps ties on time in arrival order (the
/// earlier one first, the later one last), as `Partial::merge` does.
fn aggregate(rows: &[(i32, &Record)], seconds: i64) -> BTreeMap<(i32, DateTime<Utc>), Partial> {
    let step = Duration::seconds(seconds);
    let mut out: BTreeMap<(i32, DateTime<Utc>), Partial> = BTreeMap::new();
    for (series, r) in rows {
        let point = Partial::of(r.point.ts, r.point.value);
        let bucket = r.point.ts.duration_trunc(step).unwrap_or(r.point.ts);
        out.entry((*series, bucket))
            .and_modify(|a| a.merge(&point))
            .or_insert(point);
    }
    out
}

fn merge_rollups(
    tx: &mut Transaction<'_>,
    table: &str,
    aggregates: &BTreeMap<(i32, DateTime<Utc>), Partial>,
) -> Result<()> {
    let series: Vec<i32> = aggregates.keys().map(|k| k.0).collect();
    let buckets: Vec<DateTime<Utc>> = aggregates.keys().map(|k| k.1).collect();
    // A batch holds far fewer than 2^31 points of one bucket.
    let counts: Vec<i32> = aggregates
        .values()
        .map(|a| i32::try_from(a.count).unwrap_or(i32::MAX))
        .collect();
    let sums: Vec<f64> = aggregates.values().map(|a| a.sum).collect();
    let mins: Vec<f64> = aggregates.values().map(|a| a.min).collect();
    let maxs: Vec<f64> = aggregates.values().map(|a| a.max).collect();
    let first_ts: Vec<DateTime<Utc>> = aggregates.values().map(|a| a.first.0).collect();
    let firsts: Vec<f64> = aggregates.values().map(|a| a.first.1).collect();
    let last_ts: Vec<DateTime<Utc>> = aggregates.values().map(|a| a.last.0).collect();
    let lasts: Vec<f64> = aggregates.values().map(|a| a.last.1).collect();
    // `table` is one of ROLLUPS, never input.
    let sql = format!(
        "INSERT INTO {table} AS r {ROLLUP_COLUMNS}
         SELECT * FROM unnest($1::int4[], $2::timestamptz[], $3::int4[], $4::float8[],
                              $5::float8[], $6::float8[], $7::timestamptz[], $8::float8[],
                              $9::timestamptz[], $10::float8[])
         {ROLLUP_MERGE}"
    );
    tx.execute(
        sql.as_str(),
        &[
            &series, &buckets, &counts, &sums, &mins, &maxs, &first_ts, &firsts, &last_ts, &lasts,
        ],
    )?;
    Ok(())
}

/// First/last seen per GPU, attributes from its latest point in the batch.
fn upsert_gpus(tx: &mut Transaction<'_>, rows: &[(i32, &Record)]) -> Result<()> {
    let mut gpus: BTreeMap<&str, (&Point<'static>, DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    for (_, r) in rows {
        let p = &r.point;
        gpus.entry(&p.gpu_uuid)
            .and_modify(|(latest, first, last)| {
                *first = (*first).min(p.ts);
                if p.ts >= *last {
                    *last = p.ts;
                    *latest = p;
                }
            })
            .or_insert((p, p.ts, p.ts));
    }
    let uuids: Vec<&str> = gpus.keys().copied().collect();
    let hosts: Vec<&str> = gpus.values().map(|g| g.0.hostname.as_ref()).collect();
    let indexes: Vec<i32> = gpus.values().map(|g| g.0.gpu_index).collect();
    let devices: Vec<&str> = gpus.values().map(|g| g.0.device.as_ref()).collect();
    let models: Vec<&str> = gpus.values().map(|g| g.0.model.as_ref()).collect();
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

/// The latest point of each series in the batch replaces the stored one unless that one is
/// newer (a late point does not go back in time; a tie on time keeps the later arrival, as
/// the rollups' `last` does). Rows locked in series order.
fn upsert_latest(tx: &mut Transaction<'_>, rows: &[(i32, &Record)]) -> Result<()> {
    let mut latest: BTreeMap<i32, (DateTime<Utc>, f64)> = BTreeMap::new();
    for (series, r) in rows {
        let point = (r.point.ts, r.point.value);
        latest
            .entry(*series)
            .and_modify(|l| {
                if point.0 >= l.0 {
                    *l = point;
                }
            })
            .or_insert(point);
    }
    let series: Vec<i32> = latest.keys().copied().collect();
    let times: Vec<DateTime<Utc>> = latest.values().map(|l| l.0).collect();
    let values: Vec<f64> = latest.values().map(|l| l.1).collect();
    tx.execute(
        "INSERT INTO latest AS l (series_id, ts, value)
         SELECT * FROM unnest($1::int4[], $2::timestamptz[], $3::float8[])
         ON CONFLICT (series_id) DO UPDATE SET ts = EXCLUDED.ts, value = EXCLUDED.value
         WHERE EXCLUDED.ts >= l.ts",
        &[&series, &times, &values],
    )?;
    Ok(())
}

/// Points, first and last time of one metric's day in a batch.
type DayTotal = (i64, DateTime<Utc>, DateTime<Utc>);

/// Adds the batch's points per (metric, UTC day); rows locked in key order (arrays sorted).
fn add_day_totals(tx: &mut Transaction<'_>, rows: &[(i32, &Record)]) -> Result<()> {
    let mut totals: BTreeMap<(&str, NaiveDate), DayTotal> = BTreeMap::new();
    for (_, r) in rows {
        let ts = r.point.ts;
        let t = totals
            .entry((&r.point.metric, ts.date_naive()))
            .or_insert((0, ts, ts));
        t.0 += 1;
        t.1 = t.1.min(ts);
        t.2 = t.2.max(ts);
    }
    let metrics: Vec<&str> = totals.keys().map(|k| k.0).collect();
    let days: Vec<NaiveDate> = totals.keys().map(|k| k.1).collect();
    let points: Vec<i64> = totals.values().map(|t| t.0).collect();
    let firsts: Vec<DateTime<Utc>> = totals.values().map(|t| t.1).collect();
    let lasts: Vec<DateTime<Utc>> = totals.values().map(|t| t.2).collect();
    tx.execute(
        format!(
            "INSERT INTO metric_day_totals AS t (metric, day, points, first_ts, last_ts)
             SELECT * FROM unnest($1::text[], $2::date[], $3::int8[], $4::timestamptz[],
                                  $5::timestamptz[])
             {DAY_TOTALS_MERGE}"
        )
        .as_str(),
        &[&metrics, &days, &points, &firsts, &lasts],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn point(ts: i64, value: f64) -> Point<'static> {
        Point {
            ts: DateTime::from_timestamp(ts, 0).unwrap(),
            source_ts: None,
            metric: Cow::Borrowed("M"),
            gpu_uuid: Cow::Borrowed("GPU-1"),
            gpu_index: 0,
            device: Cow::Borrowed("nvidia0"),
            model: Cow::Borrowed("H100"),
            hostname: Cow::Borrowed("h"),
            container: None,
            pod: Some(Cow::Borrowed("p")),
            namespace: None,
            value,
            labels: Labels(vec![(Cow::Borrowed("a"), Cow::Borrowed("b"))]),
        }
    }

    #[test]
    fn aggregates_keep_first_and_last_by_time_ties_by_arrival() {
        let records: Vec<Record> = [(130, 5.0), (60, 1.0), (60, 2.0), (119, 7.0), (119, 3.0)]
            .iter()
            .enumerate()
            .map(|(i, (ts, v))| Record {
                partition: 0,
                offset: i as i64,
                point: point(*ts, *v),
            })
            .collect();
        let rows: Vec<(i32, &Record)> = records.iter().map(|r| (1, r)).collect();
        let minutes = aggregate(&rows, 60);
        let at = |s| DateTime::from_timestamp(s, 0).unwrap();
        let m1 = minutes[&(1, at(60))];
        assert_eq!((m1.count, m1.sum, m1.min, m1.max), (4, 13.0, 1.0, 7.0));
        assert_eq!(
            m1.first,
            (at(60), 1.0),
            "equal times: the earlier arrival is first"
        );
        assert_eq!(
            m1.last,
            (at(119), 3.0),
            "equal times: the later arrival is last"
        );
        assert_eq!(minutes[&(1, at(120))].count, 1);
        let hours = aggregate(&rows, 3600);
        assert_eq!(hours.len(), 1);
        assert_eq!(hours[&(1, at(0))].count, 5);
    }

    #[test]
    fn a_series_key_matches_its_point_and_no_other() {
        let p = point(0, 1.0);
        let key = SeriesKey::of(&p);
        assert!(key.matches(&p));
        let mut other = p.clone();
        other.pod = None;
        assert!(!key.matches(&other));
        let mut relabelled = p.clone();
        relabelled.labels.0[0].1 = Cow::Borrowed("c");
        assert!(!key.matches(&relabelled));
        assert_ne!(series_hash(&p), series_hash(&relabelled));
    }
}
