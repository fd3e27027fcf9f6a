//! The statements of the API's Prometheus-compatible query side (`/prometheus`).
//!
//! A PromQL selector becomes: the matching series rows ([`series_sql`], the metric name and
//! the label equalities that map to `series` columns filtered here, the rest by the API on
//! the small series set); then, for those series ids, either their samples in the window the
//! expression needs ([`POINTS_SQL`] for row-form days, [`CHUNKS_SQL`] for compacted ones), or,
//! for a range query whose steps fall on whole minutes, one value per series and step taken
//! from `rollup_1m` ([`step_values_sql`]), optionally already aggregated per step and group,
//! so that a long range over thousands of GPUs never brings their raw points to the API.

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

/// The per-step values of an instant selector, from `rollup_1m`, as Prometheus picks them:
/// at each step `t` (`$2`, `$2 + $4` seconds, … ≤ `$3`; `$2` and `$4` whole minutes) the
/// latest sample in `[t - 5m, t]` of each series in `$1`. A minute row `b` holds the latest
/// sample for the steps in `(b, min(b + 5m, next row)]` — except a step on the next row's
/// own minute when that row has a sample exactly then — and for `t = b` when its first sample
/// is at `b` itself. Each row turns into the few steps it serves: one pass over the rollup.
const STEP_VALUES_CTE: &str = "\
WITH r AS (
  SELECT series_id, bucket, first_ts, first_value, last_value,
         lead(bucket) OVER w AS next_bucket, lead(first_ts) OVER w AS next_first_ts
  FROM rollup_1m
  WHERE series_id = ANY($1)
    AND bucket >= $2::timestamptz - interval '5 minutes' AND bucket <= $3::timestamptz
  WINDOW w AS (PARTITION BY series_id ORDER BY bucket)
), v AS (
  SELECT series_id, bucket AS t, first_value AS value
  FROM r
  WHERE first_ts = bucket AND bucket >= $2::timestamptz
    AND mod(extract(epoch FROM bucket - $2::timestamptz)::int8, $4::int8) = 0
  UNION ALL
  SELECT r.series_id, t, r.last_value
  FROM r CROSS JOIN LATERAL generate_series(
      $2::timestamptz + make_interval(secs => $4::int8 *
          greatest(floor(extract(epoch FROM r.bucket - $2::timestamptz) / $4::int8) + 1, 0)),
      least(r.bucket + interval '5 minutes', coalesce(r.next_bucket, 'infinity'), $3::timestamptz),
      make_interval(secs => $4::int8)) AS t
  WHERE r.next_bucket IS NULL OR t <> r.next_bucket OR r.next_first_ts <> r.next_bucket
)";

/// An aggregation [`step_values_sql`] can compute per step and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepAggregate {
    Sum,
    Avg,
    Min,
    Max,
    Count,
}

impl StepAggregate {
    fn sql(self) -> &'static str {
        match self {
            StepAggregate::Sum => "sum(v.value)",
            StepAggregate::Avg => "avg(v.value)",
            StepAggregate::Min => "min(v.value)",
            StepAggregate::Max => "max(v.value)",
            StepAggregate::Count => "count(*)::float8",
        }
    }
}

/// The per-step values of series `$1` (int4[]) from `$2` to `$3` every `$4` seconds (see
/// [`STEP_VALUES_CTE`]). Without an aggregate: rows (series id, step time, value). With one:
/// rows (the `group` columns as text, …, step time, value), one per group and step.
pub fn step_values_sql(aggregate: Option<(StepAggregate, &[SeriesColumn])>) -> String {
    match aggregate {
        None => format!("{STEP_VALUES_CTE}\nSELECT series_id, t, value FROM v"),
        Some((op, group)) => {
            let columns: Vec<String> = group.iter().map(|c| format!("s.{}", c.sql())).collect();
            let mut select = columns.join(", ");
            let mut group_by = columns.join(", ");
            if !columns.is_empty() {
                select.push_str(", ");
                group_by.push_str(", ");
            }
            format!(
                "{STEP_VALUES_CTE}\nSELECT {select}v.t, {}\nFROM v JOIN series s ON s.series_id = v.series_id\nGROUP BY {group_by}v.t",
                op.sql()
            )
        }
    }
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
    fn grouped_step_values_group_by_their_columns_and_step() {
        let sql = step_values_sql(Some((StepAggregate::Avg, &[SeriesColumn::Hostname])));
        assert!(sql.ends_with("GROUP BY s.hostname, v.t"), "{sql}");
        let sql = step_values_sql(Some((StepAggregate::Count, &[])));
        assert!(sql.ends_with("GROUP BY v.t"), "{sql}");
    }
}
