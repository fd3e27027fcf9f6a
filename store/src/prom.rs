//! The statements of the API's Prometheus-compatible query side (`/prometheus`).
//!
//! A PromQL selector becomes: the matching series rows ([`series_sql`], the metric name and
//! the label equalities that map to `series` columns filtered here, the rest by the API on
//! the small series set); then, for those series ids, either their samples in the window the
//! expression needs ([`POINTS_SQL`] for row-form days, [`CHUNKS_SQL`] for compacted ones), or,
//! for a range query whose steps fall on whole minutes, their minute rollups
//! ([`MINUTE_ROWS_SQL`]), or those already aggregated per group and minute
//! ([`group_minutes_sql`]), so that a long range over thousands of GPUs never brings their
//! raw points to the API.

/// Every metric name (the values of `__name__`): `series` is small next to the points.
pub const METRIC_NAMES_SQL: &str = "SELECT DISTINCT metric FROM series";

/// A `series` column a label equality can be filtered on in SQL (the label mapping makes the
/// column the label's only source, so the SQL filter is exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeriesColumn {
    Hostname,
    GpuUuid,
    Container,
    Pod,
    Namespace,
}

impl SeriesColumn {
    /// The column's name in `series` (a constant: never text from a request).
    pub fn sql(self) -> &'static str {
        match self {
            SeriesColumn::Hostname => "hostname",
            SeriesColumn::GpuUuid => "gpu_uuid",
            SeriesColumn::Container => "container",
            SeriesColumn::Pod => "pod",
            SeriesColumn::Namespace => "namespace",
        }
    }
}

/// The columns every series statement returns, in this order: series id, metric, GPU,
/// hostname, container, pod, namespace, the stored labels as JSON text, and the GPU's index,
/// device and model from `gpus` (NULL when the GPU has no row there).
const SERIES_COLUMNS: &str = "\
SELECT s.series_id, s.metric, s.gpu_uuid, s.hostname, s.container, s.pod, s.namespace,
       s.labels::text, g.gpu_index, g.device, g.model
FROM series s LEFT JOIN gpus g ON g.gpu_uuid = s.gpu_uuid
WHERE true";

/// The series statement: `$1` (text[]) restricts the metric when `by_metric`; then one
/// `$n` (text) per column in `equal`, in order; with `window`, the two last parameters
/// (timestamptz) keep only series with samples in that window, judged by whole hours of
/// `rollup_1h` (as Prometheus judges by whole blocks).
pub fn series_sql(by_metric: bool, equal: &[SeriesColumn], window: bool) -> String {
    let mut sql = String::from(SERIES_COLUMNS);
    let mut n = 0;
    if by_metric {
        n += 1;
        sql.push_str(&format!(" AND s.metric = ANY(${n})"));
    }
    for column in equal {
        n += 1;
        sql.push_str(&format!(" AND s.{} = ${n}", column.sql()));
    }
    if window {
        let (start, end) = (n + 1, n + 2);
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM rollup_1h r WHERE r.series_id = s.series_id \
             AND r.bucket >= date_trunc('hour', ${start}::timestamptz) AND r.bucket <= ${end}::timestamptz)"
        ));
    }
    sql
}

/// The row-form samples of series `$1` (int4[]) in the inclusive window `$2`..`$3`:
/// series id, time, value, broker offset (orders ties). Unordered: the API sorts each series
/// once it has merged in the compacted days. The 10-minute bins repeat the window in the
/// terms of `points_series_idx`, so each partition is read with one scan of it.
pub const POINTS_SQL: &str = "\
SELECT series_id, ts, value, src_offset
FROM points
WHERE series_id = ANY($1)
  AND ts >= $2 AND ts <= $3
  AND date_bin('10 minutes', ts AT TIME ZONE 'UTC', '2000-01-01')
      >= date_bin('10 minutes', $2::timestamptz AT TIME ZONE 'UTC', '2000-01-01')
  AND date_bin('10 minutes', ts AT TIME ZONE 'UTC', '2000-01-01')
      <= date_bin('10 minutes', $3::timestamptz AT TIME ZONE 'UTC', '2000-01-01')";

/// The compacted chunks of series `$1` (int4[]) that overlap the window `$2`..`$3`: series
/// id and the encoded points (`crate::codec::decode`). A chunk covers one UTC day, so the
/// `day` bounds prune the partitions.
pub const CHUNKS_SQL: &str = "\
SELECT series_id, data
FROM points_compact
WHERE series_id = ANY($1)
  AND day > $2::timestamptz - interval '1 day' AND day <= $3
  AND last_ts >= $2 AND first_ts <= $3";

/// The minute rows of series `$1` (int4[]) with buckets in `$2`..`$3`: series id, bucket,
/// whether the minute's first sample lies in the bucket's own millisecond (a step on that
/// minute then takes it), its value, and the minute's last value. Ordered per series by
/// bucket: the API picks each step's value (the latest sample in `[t - 5m, t]`) from them.
pub const MINUTE_ROWS_SQL: &str = "\
SELECT series_id, bucket, first_ts - bucket < interval '1 millisecond', first_value, last_value
FROM rollup_1m
WHERE series_id = ANY($1) AND bucket >= $2 AND bucket <= $3
ORDER BY series_id, bucket";

/// An aggregation [`group_minutes_sql`] can compute per step and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepAggregate {
    Sum,
    Avg,
    Min,
    Max,
    Count,
}

impl StepAggregate {
    /// The aggregate of a value column over the rows `filter` keeps (`sum` for `avg`: the
    /// API divides by the count; nothing for `count`, the counts are always returned).
    fn sql(self, column: &str, filter: &str) -> String {
        let f = match self {
            StepAggregate::Sum | StepAggregate::Avg => "sum",
            StepAggregate::Min => "min",
            StepAggregate::Max => "max",
            StepAggregate::Count => return "NULL::float8".into(),
        };
        format!("{f}({column}){filter}")
    }
}

/// Per group and minute, what the grouped steps need from `rollup_1m`. The groups are
/// slices of `$1` (int4[], series ids ordered by group): group `g` (1-based) is
/// `$1[$2[g] + 1 .. $2[g + 1]]` (`$2` int4[], one offset per group and a last one); the
/// minutes are `$3`..`$4`. Rows: group, bucket, how many of the group's series have a row
/// there, how many of those have a sample on the bucket's own millisecond, the aggregate of
/// their last values, the aggregate of those exact first values.
///
/// Why: at a whole-minute step `t`, a series whose minute `t - 1m` has a row and whose
/// sample at `t` does not exist takes that row's last value; one whose minute `t` starts
/// with a sample at `t` takes it. When every series of a group is in one of these cases
/// alike (the counts say so), the group's value at `t` is one of these aggregates: no window
/// function, no per-series step. Any other (group, step) — gaps, series starting or ending,
/// a mix — the API computes from [`MINUTE_ROWS_SQL`]. One small hash aggregate per group
/// (its rows come from one index scan) is several times cheaper than one aggregate over
/// every group and step.
///
/// With `stride`, `$5` (int8, seconds) is the step and `$6` the first step: only the buckets on a
/// step or just before one are read.
pub fn group_minutes_sql(op: StepAggregate, stride: bool) -> String {
    let exact = "first_ts - bucket < interval '1 millisecond'";
    let stride = match stride {
        true => {
            " AND (date_bin(make_interval(secs => $5::int8), bucket, $6) = bucket \
             OR date_bin(make_interval(secs => $5::int8), bucket + interval '1 minute', $6) \
                = bucket + interval '1 minute')"
        }
        false => "",
    };
    format!(
        "SELECT g, m.bucket, m.n, m.n_exact, m.last_agg, m.first_agg
FROM generate_series(1, cardinality($2::int4[]) - 1) AS g
CROSS JOIN LATERAL (
  SELECT bucket, count(*) AS n, count(*) FILTER (WHERE {exact}) AS n_exact,
         {} AS last_agg, {} AS first_agg
  FROM rollup_1m
  WHERE series_id = ANY(($1::int4[])[($2::int4[])[g] + 1 : ($2::int4[])[g + 1]])
    AND bucket >= $3 AND bucket <= $4{stride}
  GROUP BY bucket
) AS m",
        op.sql("last_value", ""),
        op.sql("first_value", &format!(" FILTER (WHERE {exact})")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_statements_number_their_parameters_in_order() {
        let sql = series_sql(true, &[SeriesColumn::Hostname, SeriesColumn::Pod], true);
        assert!(sql.contains("s.metric = ANY($1)"));
        assert!(sql.contains("s.hostname = $2"));
        assert!(sql.contains("s.pod = $3"));
        assert!(sql.contains("$4::timestamptz") && sql.contains("$5::timestamptz"));
        let sql = series_sql(false, &[SeriesColumn::GpuUuid], false);
        assert!(sql.contains("s.gpu_uuid = $1") && !sql.contains("$2"));
    }

    #[test]
    fn grouped_minutes_read_the_stride_only_when_asked() {
        let sql = group_minutes_sql(StepAggregate::Avg, false);
        assert!(
            sql.contains("sum(last_value)") && !sql.contains("$5"),
            "{sql}"
        );
        let sql = group_minutes_sql(StepAggregate::Max, true);
        assert!(
            sql.contains("max(first_value) FILTER") && sql.contains("secs => $5"),
            "{sql}"
        );
    }
}
