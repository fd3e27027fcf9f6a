//! Step aggregation: one value per metric per time bucket of one GPU, from the cheapest
//! source that answers exactly.
//!
//! Buckets are `[k·step, (k+1)·step)` counted from the Unix epoch, so the same step always
//! gives the same edges whatever the window. A bucket is whole: a window is widened to the
//! buckets it touches ([`Buckets`]). The source is chosen by the step ([`Source::for_step`]):
//! a step that is a whole number of hours reads `rollup_1h`, of minutes `rollup_1m` (each
//! bucket is then a union of whole rollup rows, so the answer is the same as from the points),
//! and any other step reads the points, plus the compacted chunks of days already compacted,
//! which are decoded and folded in here.
//!
//! Every source yields [`Partial`] aggregates per (metric, bucket) — count, sum, min, max,
//! first and last by time — which merge associatively; [`Agg`] picks the answer from them.
//! The API owns the parameters and the JSON; this module owns the statements and the arithmetic.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use postgres::Row;

use crate::codec::ChunkPoint;
use crate::error::Result;

/// The most buckets one series may have in an answer (as Prometheus limits a range query).
pub const MAX_BUCKETS: i64 = 11_000;

/// What a bucket's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    First,
    Last,
}

impl Agg {
    pub const ALL: [Agg; 7] = [
        Agg::Avg,
        Agg::Min,
        Agg::Max,
        Agg::Sum,
        Agg::Count,
        Agg::First,
        Agg::Last,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Sum => "sum",
            Agg::Count => "count",
            Agg::First => "first",
            Agg::Last => "last",
        }
    }

    pub fn from_name(name: &str) -> Option<Agg> {
        Agg::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The bucket's value.
    pub fn of(self, p: &Partial) -> f64 {
        match self {
            Agg::Avg => p.sum / p.count as f64,
            Agg::Min => p.min,
            Agg::Max => p.max,
            Agg::Sum => p.sum,
            Agg::Count => p.count as f64,
            Agg::First => p.first.1,
            Agg::Last => p.last.1,
        }
    }
}

/// Where a step's buckets are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Points,
    Rollup1m,
    Rollup1h,
}

impl Source {
    /// The coarsest source whose rows fit whole into buckets of `step_seconds`.
    pub fn for_step(step_seconds: i64) -> Source {
        match step_seconds {
            s if s % 3600 == 0 => Source::Rollup1h,
            s if s % 60 == 0 => Source::Rollup1m,
            _ => Source::Points,
        }
    }

    /// The statement for this source: `$1` the GPU, `$2` metrics (array, NULL for all),
    /// `$3`..`$4` the half-open range of whole buckets, `$5` the step in seconds.
    pub fn sql(self) -> &'static str {
        match self {
            Source::Points => BUCKETS_POINTS_SQL,
            Source::Rollup1m => BUCKETS_1M_SQL,
            Source::Rollup1h => BUCKETS_1H_SQL,
        }
    }
}

/// The whole buckets of `step` seconds a window touches: `[start, end)`, both multiples of
/// the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub step_seconds: i64,
}

impl Buckets {
    /// The buckets of the inclusive window `[start, end]`; `None` when a bound is out of the
    /// representable range.
    pub fn covering(
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step_seconds: i64,
    ) -> Option<Buckets> {
        let step = step_seconds.checked_mul(1_000_000)?;
        let first = start
            .timestamp_micros()
            .div_euclid(step)
            .checked_mul(step)?;
        let last = end.timestamp_micros().div_euclid(step).checked_mul(step)?;
        Some(Buckets {
            start: DateTime::from_timestamp_micros(first)?,
            end: DateTime::from_timestamp_micros(last.checked_add(step)?)?,
            step_seconds,
        })
    }

    /// How many buckets the range holds.
    pub fn count(&self) -> i64 {
        (self.end - self.start).num_seconds() / self.step_seconds
    }

    fn bucket_of(&self, ts_micros: i64) -> i64 {
        let step = self.step_seconds * 1_000_000;
        ts_micros.div_euclid(step) * step
    }
}

/// The aggregate of some points: count, sum, min, max, and the first and last by time
/// (ties: the earlier arrival is first, the later one last). The one aggregate type of the
/// store: the collector folds a batch into it for the rollups (`crate::write`), and reads
/// fold rollup rows, points and chunks into it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Partial {
    pub count: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub first: (DateTime<Utc>, f64),
    pub last: (DateTime<Utc>, f64),
}

impl Partial {
    /// The aggregate of one point.
    pub fn of(ts: DateTime<Utc>, value: f64) -> Partial {
        Partial {
            count: 1,
            sum: value,
            min: value,
            max: value,
            first: (ts, value),
            last: (ts, value),
        }
    }

    /// Folds `other` in.
    pub fn merge(&mut self, other: &Partial) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.first.0 < self.first.0 {
            self.first = other.first;
        }
        if other.last.0 >= self.last.0 {
            self.last = other.last;
        }
    }
}

/// The partial aggregates of a window, by metric and bucket start.
pub type BucketMap = BTreeMap<(String, DateTime<Utc>), Partial>;

/// The per-bucket statement over one source's rows. `$5` is a step in whole seconds.
macro_rules! buckets_sql {
    ($from:literal, $time:literal, $count:literal, $sum:literal, $min:literal, $max:literal,
     $first_ts:literal, $first:literal, $first_order:literal,
     $last_ts:literal, $last:literal, $last_order:literal, $extra:literal) => {
        concat!(
            "SELECT s.metric, date_bin(make_interval(secs => $5), ", $time,
            ", TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
       ", $count, "::int8, ", $sum, ", ", $min, ", ", $max, ",
       min(", $first_ts, "), (array_agg(", $first, " ORDER BY ", $first_order, "))[1],
       max(", $last_ts, "), (array_agg(", $last, " ORDER BY ", $last_order, "))[1]
FROM series s JOIN ", $from, " ON x.series_id = s.series_id
WHERE s.gpu_uuid = $1 AND ($2::text[] IS NULL OR s.metric = ANY ($2))
  AND x.series_id = ANY (ARRAY(SELECT series_id FROM series
                               WHERE gpu_uuid = $1 AND ($2::text[] IS NULL OR metric = ANY ($2))))
  AND ", $time, " >= $3 AND ", $time, " < $4", $extra, "
GROUP BY 1, 2"
        )
    };
}

/// Buckets from the points in row form (days not yet compacted). The 10-minute bins repeat
/// the range in `points_series_idx`'s own terms, as the window statement does.
pub const BUCKETS_POINTS_SQL: &str = buckets_sql!(
    "points x",
    "x.ts",
    "count(*)",
    "sum(x.value)",
    "min(x.value)",
    "max(x.value)",
    "x.ts",
    "x.value",
    "x.ts, x.src_offset",
    "x.ts",
    "x.value",
    "x.ts DESC, x.src_offset DESC",
    "
  AND date_bin('10 minutes', x.ts AT TIME ZONE 'UTC', '2000-01-01')
      >= date_bin('10 minutes', $3::timestamptz AT TIME ZONE 'UTC', '2000-01-01')
  AND date_bin('10 minutes', x.ts AT TIME ZONE 'UTC', '2000-01-01')
      <= date_bin('10 minutes', $4::timestamptz AT TIME ZONE 'UTC', '2000-01-01')"
);

/// The per-bucket statement over a rollup table (same columns for every rollup).
macro_rules! rollup_buckets_sql {
    ($table:literal) => {
        buckets_sql!(
            $table,
            "x.bucket",
            "sum(x.count)",
            "sum(x.sum)",
            "min(x.min)",
            "max(x.max)",
            "x.first_ts",
            "x.first_value",
            "x.first_ts",
            "x.last_ts",
            "x.last_value",
            "x.last_ts DESC",
            ""
        )
    };
}

/// Buckets from the per-minute rollup.
pub const BUCKETS_1M_SQL: &str = rollup_buckets_sql!("rollup_1m x");

/// Buckets from the per-hour rollup.
pub const BUCKETS_1H_SQL: &str = rollup_buckets_sql!("rollup_1h x");

/// The compacted chunks to fold in for the points source: `$1` the GPU, `$2` metrics (array,
/// NULL for all), overlapping `[$3, $4)`.
pub const BUCKETS_CHUNKS_SQL: &str = "\
SELECT s.metric, c.data
FROM series s JOIN points_compact c ON c.series_id = s.series_id
WHERE s.gpu_uuid = $1 AND ($2::text[] IS NULL OR s.metric = ANY ($2))
  AND c.last_ts >= $3 AND c.first_ts < $4";

/// Reads rows of [`Source::sql`] into `buckets`.
pub fn add_rows(buckets: &mut BucketMap, rows: &[Row]) -> Result<()> {
    for row in rows {
        let partial = Partial {
            count: row.try_get(2)?,
            sum: row.try_get(3)?,
            min: row.try_get(4)?,
            max: row.try_get(5)?,
            first: (row.try_get(6)?, row.try_get(7)?),
            last: (row.try_get(8)?, row.try_get(9)?),
        };
        merge_into(buckets, row.try_get(0)?, row.try_get(1)?, &partial);
    }
    Ok(())
}

/// Folds the points of decoded chunks (rows of [`BUCKETS_CHUNKS_SQL`]) that fall in `range`
/// into `buckets`. Points are folded in (time, offset) order, so ties keep arrival order.
pub fn add_chunks(buckets: &mut BucketMap, rows: &[Row], range: &Buckets) -> Result<()> {
    let (start, end) = (range.start.timestamp_micros(), range.end.timestamp_micros());
    for row in rows {
        let metric: String = row.try_get(0)?;
        let mut points: Vec<ChunkPoint> = crate::codec::decode(row.try_get::<_, &[u8]>(1)?)?;
        points.retain(|p| p.ts >= start && p.ts < end);
        points.sort_by_key(|p| (p.ts, p.src_offset));
        let mut current: Option<(i64, Partial)> = None;
        for p in points {
            let Some(ts) = DateTime::from_timestamp_micros(p.ts) else {
                continue;
            };
            let bucket = range.bucket_of(p.ts);
            match &mut current {
                Some((b, partial)) if *b == bucket => partial.merge(&Partial::of(ts, p.value)),
                _ => {
                    if let Some((b, partial)) = current.take() {
                        flush(buckets, &metric, b, &partial);
                    }
                    current = Some((bucket, Partial::of(ts, p.value)));
                }
            }
        }
        if let Some((b, partial)) = current {
            flush(buckets, &metric, b, &partial);
        }
    }
    Ok(())
}

fn flush(buckets: &mut BucketMap, metric: &str, bucket_micros: i64, partial: &Partial) {
    if let Some(bucket) = DateTime::from_timestamp_micros(bucket_micros) {
        merge_into(buckets, metric.to_string(), bucket, partial);
    }
}

fn merge_into(buckets: &mut BucketMap, metric: String, bucket: DateTime<Utc>, partial: &Partial) {
    buckets
        .entry((metric, bucket))
        .and_modify(|p| p.merge(partial))
        .or_insert(*partial);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn buckets_are_whole_multiples_of_the_step_from_the_epoch() {
        let b = Buckets::covering(t(125), t(185), 60).unwrap();
        assert_eq!((b.start, b.end, b.count()), (t(120), t(240), 2));
        let b = Buckets::covering(t(120), t(120), 60).unwrap();
        assert_eq!((b.start, b.end, b.count()), (t(120), t(180), 1));
        let b = Buckets::covering(t(-1), t(0), 15).unwrap();
        assert_eq!((b.start, b.end), (t(-15), t(15)));
    }

    #[test]
    fn the_source_is_the_coarsest_that_fits_whole() {
        assert_eq!(Source::for_step(15), Source::Points);
        assert_eq!(Source::for_step(90), Source::Points);
        assert_eq!(Source::for_step(120), Source::Rollup1m);
        assert_eq!(Source::for_step(7200), Source::Rollup1h);
    }

    #[test]
    fn partials_merge_into_the_same_answer_as_one_pass() {
        let points = [(1, 5.0), (2, -1.0), (2, 7.0), (9, 3.0)];
        let mut one = Partial::of(t(points[0].0), points[0].1);
        for (s, v) in &points[1..] {
            one.merge(&Partial::of(t(*s), *v));
        }
        let mut a = Partial::of(t(1), 5.0);
        a.merge(&Partial::of(t(2), -1.0));
        let mut b = Partial::of(t(2), 7.0);
        b.merge(&Partial::of(t(9), 3.0));
        a.merge(&b);
        assert_eq!(a, one);
        let answers: Vec<f64> = Agg::ALL.iter().map(|g| g.of(&a)).collect();
        assert_eq!(answers, vec![3.5, -1.0, 7.0, 14.0, 4.0, 5.0, 3.0]);
        // a tie on time: the first arrival is first, the later one last
        let mut tie = Partial::of(t(2), 1.0);
        tie.merge(&Partial::of(t(2), 2.0));
        assert_eq!((tie.first.1, tie.last.1), (1.0, 2.0));
    }
}
