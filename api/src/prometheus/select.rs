//! From a PromQL selector to data: the series it matches (with their Prometheus labels, the
//! mapping `docs/prometheus.md` documents) and their samples, as the statements of
//! `store::prom` return them: raw samples of a window (row-form and compacted days merged),
//! per-step values from the minute rollups, or those values already aggregated per group.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::VectorSelector;
use store::prom::{SeriesColumn, StepAggregate};

use super::eval::Labels;
use super::functions::Aggregation;
use super::PromError;
use crate::db::Conn;

/// A series' samples: (milliseconds, value), in time order.
pub type Samples = Vec<(i64, f64)>;

/// A label set not yet shared, sorted by name.
type LabelPairs = Vec<(String, String)>;

/// A matched series: its id and labels.
pub struct SeriesRow {
    pub id: i32,
    pub labels: Labels,
}

/// The label a `series` column is the only source of.
pub fn column_of_label(name: &str) -> Option<SeriesColumn> {
    Some(match name {
        "Hostname" => SeriesColumn::Hostname,
        "UUID" => SeriesColumn::GpuUuid,
        "container" => SeriesColumn::Container,
        "pod" => SeriesColumn::Pod,
        "namespace" => SeriesColumn::Namespace,
        _ => return None,
    })
}

/// The label a `series` column feeds.
pub fn label_of_column(column: SeriesColumn) -> &'static str {
    match column {
        SeriesColumn::Hostname => "Hostname",
        SeriesColumn::GpuUuid => "UUID",
        SeriesColumn::Container => "container",
        SeriesColumn::Pod => "pod",
        SeriesColumn::Namespace => "namespace",
    }
}

/// Every matcher of a selector, its metric name as a `__name__` matcher included.
pub fn matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, PromError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(PromError::BadData(
            "unsupported: \"or\" between label matchers".into(),
        ));
    }
    let mut all: Vec<Matcher> = vs.matchers.matchers.clone();
    if let Some(name) = &vs.name {
        all.push(Matcher::new(MatchOp::Equal, "__name__", name));
    }
    // A PromQL string may escape a NUL (`"\x00"`); PostgreSQL text cannot hold one, so such
    // a value could only make the statement fail. Every selector comes through here.
    if let Some(m) = all.iter().find(|m| m.value.contains('\0')) {
        return Err(PromError::BadData(format!(
            "invalid matcher for label {:?}: a value must not contain a NUL character (U+0000)",
            m.name
        )));
    }
    Ok(all)
}

/// Every metric name.
pub fn metric_names(conn: &mut Conn) -> Result<Vec<String>, PromError> {
    let rows = conn.query(store::prom::METRIC_NAMES_SQL, &[])?;
    let mut names = rows
        .iter()
        .map(|row| row.try_get::<_, String>(0).map_err(PromError::from))
        .collect::<Result<Vec<_>, _>>()?;
    // Byte order, as Prometheus sorts (the database's collation may differ).
    names.sort_unstable();
    Ok(names)
}

/// A series' Prometheus labels, from its row of a `store::prom::series_sql` statement:
/// the stored labels (without `__name__`, `container`, `pod` and `namespace`), overridden
/// by the columns — `__name__`, `UUID`, `Hostname`, `gpu`, `device`, `modelName`, and
/// `container`, `pod`, `namespace` when not empty. Empty values are no label at all.
fn labels_of(row: &postgres::Row) -> Result<Labels, PromError> {
    let metric: String = row.try_get(1)?;
    let gpu_uuid: String = row.try_get(2)?;
    let hostname: String = row.try_get(3)?;
    let stored: String = row.try_get(7)?;
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&stored) {
        for (name, value) in map {
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            labels.insert(name, value);
        }
    }
    for name in ["__name__", "container", "pod", "namespace"] {
        labels.remove(name);
    }
    labels.insert("__name__".into(), metric);
    labels.insert("UUID".into(), gpu_uuid);
    labels.insert("Hostname".into(), hostname);
    for (index, name) in [(4, "container"), (5, "pod"), (6, "namespace")] {
        labels.insert(name.into(), row.try_get(index)?);
    }
    if let Some(gpu) = row.try_get::<_, Option<i32>>(8)? {
        labels.insert("gpu".into(), gpu.to_string());
    }
    if let Some(device) = row.try_get::<_, Option<String>>(9)? {
        labels.insert("device".into(), device);
    }
    if let Some(model) = row.try_get::<_, Option<String>>(10)? {
        labels.insert("modelName".into(), model);
    }
    Ok(Arc::new(
        labels.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
    ))
}

/// Whether `labels` satisfy every matcher (a missing label is the empty string).
fn satisfies(labels: &Labels, matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .all(|m| m.is_match(super::eval::label(labels, &m.name).unwrap_or("")))
}

/// A time in milliseconds as a SQL parameter, clamped to years 1..9999 (no sample lies
/// outside, and PostgreSQL's own range is narrower than the milliseconds').
pub fn sql_time(ms: i64) -> DateTime<Utc> {
    const MIN: i64 = -62_135_596_800_000; // 0001-01-01
    const MAX: i64 = 253_402_300_799_000; // 9999-12-31T23:59:59
    DateTime::from_timestamp_millis(ms.clamp(MIN, MAX)).unwrap_or_default()
}

/// The series matching `matchers`, optionally only those with samples in `window`. The
/// metric name and the equalities on column labels are filtered in SQL, the rest here.
pub fn select_series(
    conn: &mut Conn,
    matchers: &[Matcher],
    window: Option<(i64, i64)>,
) -> Result<Vec<SeriesRow>, PromError> {
    let name_matchers: Vec<&Matcher> = matchers.iter().filter(|m| m.name == "__name__").collect();
    let names: Option<Vec<String>> = if name_matchers.is_empty() {
        None
    } else if let Some(equal) = name_matchers.iter().find(|m| m.op == MatchOp::Equal) {
        Some(vec![equal.value.clone()])
    } else {
        let all = metric_names(conn)?;
        Some(
            all.into_iter()
                .filter(|n| name_matchers.iter().all(|m| m.is_match(n)))
                .collect(),
        )
    };
    if names.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let mut columns = Vec::new();
    let mut values: Vec<&str> = Vec::new();
    for m in matchers {
        if let (MatchOp::Equal, Some(column)) = (&m.op, column_of_label(&m.name)) {
            columns.push(column);
            values.push(&m.value);
        }
    }
    let sql = store::prom::series_sql(names.is_some(), &columns, window.is_some());
    let window = window.map(|(start, end)| (sql_time(start), sql_time(end)));
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::new();
    if let Some(names) = &names {
        params.push(names);
    }
    for value in &values {
        params.push(value);
    }
    if let Some((start, end)) = &window {
        params.push(start);
        params.push(end);
    }
    let rows = conn.query_dynamic(&sql, &params)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let labels = labels_of(row)?;
        if satisfies(&labels, matchers) {
            out.push(SeriesRow {
                id: row.try_get(0)?,
                labels,
            });
        }
    }
    Ok(out)
}

/// The label sets of the series matching any of `selectors` (every series when none),
/// deduplicated and sorted.
pub fn series_of_selectors(
    conn: &mut Conn,
    selectors: &[VectorSelector],
    window: Option<(i64, i64)>,
) -> Result<Vec<Labels>, PromError> {
    let mut all: Vec<Labels> = Vec::new();
    if selectors.is_empty() {
        all.extend(
            select_series(conn, &[], window)?
                .into_iter()
                .map(|s| s.labels),
        );
    }
    for vs in selectors {
        let matchers = matchers(vs)?;
        all.extend(
            select_series(conn, &matchers, window)?
                .into_iter()
                .map(|s| s.labels),
        );
    }
    all.sort();
    all.dedup();
    Ok(all)
}

/// The samples of `series` in `[mint, maxt]` (milliseconds), each series' in time order,
/// one per millisecond (the last to arrive), from the row-form points and the compacted
/// chunks; in the order of `series`.
pub fn raw_samples(
    conn: &mut Conn,
    series: &[SeriesRow],
    mint: i64,
    maxt: i64,
) -> Result<Vec<Samples>, PromError> {
    let ids: Vec<i32> = series.iter().map(|s| s.id).collect();
    if ids.is_empty() || maxt < mint {
        return Ok(vec![Vec::new(); series.len()]);
    }
    let start = sql_time(mint);
    // Stored times have microseconds; a sample belongs to its millisecond.
    let end = sql_time(maxt) + chrono::Duration::microseconds(999);
    let index: HashMap<i32, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    // (time in ms, broker offset, value) per series.
    let mut found: Vec<Vec<(i64, i64, f64)>> = vec![Vec::new(); series.len()];
    for row in conn.query(store::prom::POINTS_SQL, &[&ids, &start, &end])? {
        let id: i32 = row.try_get(0)?;
        let ts: DateTime<Utc> = row.try_get(1)?;
        if let Some(&i) = index.get(&id) {
            found[i].push((ts.timestamp_millis(), row.try_get(3)?, row.try_get(2)?));
        }
    }
    for row in conn.query(store::prom::CHUNKS_SQL, &[&ids, &start, &end])? {
        let id: i32 = row.try_get(0)?;
        let Some(&i) = index.get(&id) else { continue };
        for p in store::codec::decode(row.try_get::<_, &[u8]>(1)?)? {
            let ms = p.ts.div_euclid(1000);
            if (mint..=maxt).contains(&ms) {
                found[i].push((ms, p.src_offset, p.value));
            }
        }
    }
    Ok(found
        .into_iter()
        .map(|mut points| {
            points.sort_by_key(|p| (p.0, p.1));
            let mut samples: Vec<(i64, f64)> = Vec::with_capacity(points.len());
            for (t, _, v) in points {
                match samples.last_mut() {
                    Some(last) if last.0 == t => last.1 = v,
                    _ => samples.push((t, v)),
                }
            }
            samples
        })
        .collect())
}

/// The steps of a range query in SQL terms: first and last step (ms, already shifted by
/// the selector's offset) and the step in whole seconds.
#[derive(Debug, Clone, Copy)]
pub struct SqlSteps {
    pub start: i64,
    pub end: i64,
    pub step_seconds: i64,
}

/// A minute row of one series, as [`store::prom::MINUTE_ROWS_SQL`] returns it.
struct Minute {
    bucket: i64,
    exact: bool,
    first: f64,
    last: f64,
}

const MINUTE_MS: i64 = 60_000;

/// The value at the whole minute `t` of a series whose minute rows are `rows` (by bucket):
/// its sample exactly at `t` (the first of minute `t`), else the last sample of its newest
/// minute before `t` that starts no earlier than `t - 5m` — the latest sample in
/// `[t - 5m, t]`, as Prometheus 2.42's lookback takes it.
fn value_at(rows: &[Minute], t: i64) -> Option<f64> {
    let mut i = rows.partition_point(|m| m.bucket <= t);
    if i > 0 && rows[i - 1].bucket == t {
        if rows[i - 1].exact {
            return Some(rows[i - 1].first);
        }
        i -= 1;
    }
    (i > 0 && rows[i - 1].bucket >= t.saturating_sub(super::eval::LOOKBACK_MS))
        .then(|| rows[i - 1].last)
}

/// The minute rows of `ids` with buckets in `[from, to]` (ms), per id.
fn minute_rows(
    conn: &mut Conn,
    ids: &[i32],
    from: i64,
    to: i64,
) -> Result<HashMap<i32, Vec<Minute>>, PromError> {
    let mut out: HashMap<i32, Vec<Minute>> = HashMap::with_capacity(ids.len());
    let rows = conn.query(
        store::prom::MINUTE_ROWS_SQL,
        &[&ids, &sql_time(from), &sql_time(to)],
    )?;
    for row in rows {
        let bucket: DateTime<Utc> = row.try_get(1)?;
        out.entry(row.try_get(0)?).or_default().push(Minute {
            bucket: bucket.timestamp_millis(),
            exact: row.try_get(2)?,
            first: row.try_get(3)?,
            last: row.try_get(4)?,
        });
    }
    Ok(out)
}

impl SqlSteps {
    /// The steps, in order.
    fn times(&self) -> impl Iterator<Item = i64> {
        let step = (self.step_seconds * 1000).max(MINUTE_MS);
        let (start, end) = (self.start, self.end);
        (0..)
            .map(move |k: i64| start.saturating_add(k.saturating_mul(step)))
            .take_while(move |&t| t <= end)
    }
}

/// Per series of `series` (in order), its value at each step, from `rollup_1m`.
pub fn step_values(
    conn: &mut Conn,
    series: &[SeriesRow],
    steps: SqlSteps,
) -> Result<Vec<Samples>, PromError> {
    let ids: Vec<i32> = series.iter().map(|s| s.id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let from = steps.start.saturating_sub(super::eval::LOOKBACK_MS);
    let mut rows = minute_rows(conn, &ids, from, steps.end)?;
    Ok(ids
        .iter()
        .map(|id| {
            let rows = rows.remove(id).unwrap_or_default();
            steps
                .times()
                .filter_map(|t| value_at(&rows, t).map(|v| (t, v)))
                .collect()
        })
        .collect())
}

/// What one group has in one minute (a row of `store::prom::group_minutes_sql`).
#[derive(Clone, Copy, Default)]
struct GroupMinute {
    rows: i64,
    exact: i64,
    last: Option<f64>,
    first: Option<f64>,
}

/// The aggregate of `n` series from the SQL aggregate of their values.
fn finish(op: StepAggregate, agg: Option<f64>, n: i64) -> Option<f64> {
    match op {
        StepAggregate::Count => Some(n as f64),
        StepAggregate::Avg => agg.map(|sum| sum / n as f64),
        _ => agg,
    }
}

/// Prometheus's aggregation for `op`, for the steps computed here.
fn aggregation(op: StepAggregate) -> Aggregation {
    match op {
        StepAggregate::Sum => Aggregation::Sum,
        StepAggregate::Avg => Aggregation::Avg,
        StepAggregate::Min => Aggregation::Min,
        StepAggregate::Max => Aggregation::Max,
        StepAggregate::Count => Aggregation::Count,
    }
}

/// At most this many separate step ranges are fetched for the (group, step) pairs the
/// grouped minutes do not settle; beyond, one range covers them all.
const MAX_EXCEPTION_RANGES: usize = 16;

/// Per group (its labels: the grouping columns' labels that are not empty), the aggregate
/// of `series` at each step. PostgreSQL aggregates each group's minute rows
/// (`store::prom::group_minutes_sql`); a (group, step) where the group's series do not all
/// take their value the same way is computed here from the minute rows of its series.
pub fn grouped_step_values(
    conn: &mut Conn,
    series: &[SeriesRow],
    steps: SqlSteps,
    op: StepAggregate,
    group: &[SeriesColumn],
) -> Result<Vec<(Labels, Samples)>, PromError> {
    let mut groups: BTreeMap<LabelPairs, Vec<i32>> = BTreeMap::new();
    for s in series {
        let mut labels: LabelPairs = group
            .iter()
            .filter_map(|c| {
                let name = label_of_column(*c);
                super::eval::label(&s.labels, name).map(|v| (name.to_string(), v.to_string()))
            })
            .collect();
        labels.sort();
        labels.dedup();
        groups.entry(labels).or_default().push(s.id);
    }
    let groups: Vec<(LabelPairs, Vec<i32>)> = groups.into_iter().collect();
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<i32> = Vec::with_capacity(series.len());
    let mut offsets: Vec<i32> = vec![0];
    for (_, members) in &groups {
        ids.extend(members);
        offsets.push(i32::try_from(ids.len()).unwrap_or(i32::MAX));
    }
    // Minute k is `first + k` minutes: from the minute before the first step to the last.
    let first = steps.start.saturating_sub(MINUTE_MS);
    let minutes = usize::try_from((steps.end.saturating_sub(first)) / MINUTE_MS + 1).unwrap_or(0);
    let mut found = vec![vec![GroupMinute::default(); minutes]; groups.len()];
    let stride = steps.step_seconds > 60;
    let sql = store::prom::group_minutes_sql(op, stride);
    let (from, to, origin) = (sql_time(first), sql_time(steps.end), sql_time(steps.start));
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&ids, &offsets, &from, &to];
    if stride {
        params.push(&steps.step_seconds);
        params.push(&origin);
    }
    for row in conn.query_dynamic(&sql, &params)? {
        let g: i32 = row.try_get(0)?;
        let bucket: DateTime<Utc> = row.try_get(1)?;
        let k = (bucket.timestamp_millis() - first) / MINUTE_MS;
        let (Some(slot), Ok(k)) = (
            usize::try_from(g - 1).ok().and_then(|g| found.get_mut(g)),
            usize::try_from(k),
        ) else {
            continue;
        };
        if let Some(minute) = slot.get_mut(k) {
            *minute = GroupMinute {
                rows: row.try_get(2)?,
                exact: row.try_get(3)?,
                last: row.try_get(4)?,
                first: row.try_get(5)?,
            };
        }
    }
    let mut out: Vec<Samples> = vec![Vec::new(); groups.len()];
    // Per group, the steps the minutes do not settle.
    let mut exceptions: Vec<Vec<i64>> = vec![Vec::new(); groups.len()];
    for (g, (_, members)) in groups.iter().enumerate() {
        let size = members.len() as i64;
        for t in steps.times() {
            // Minutes outside what was read count as empty: the step is then computed below.
            let k = usize::try_from((t - first) / MINUTE_MS).unwrap_or(usize::MAX);
            let minute =
                |k: Option<usize>| k.and_then(|k| found[g].get(k)).copied().unwrap_or_default();
            let (prev, at) = (minute(k.checked_sub(1)), minute(Some(k)));
            let value = if at.exact == size {
                finish(op, at.first, size)
            } else if at.exact == 0 && prev.rows == size {
                finish(op, prev.last, size)
            } else {
                exceptions[g].push(t);
                continue;
            };
            if let Some(v) = value {
                out[g].push((t, v));
            }
        }
    }
    exact_exceptions(conn, &groups, &exceptions, steps, op, &mut out)?;
    Ok(groups
        .into_iter()
        .zip(out)
        .map(|((labels, _), mut points)| {
            points.sort_by_key(|p| p.0);
            (Arc::new(labels), points)
        })
        .collect())
}

/// Computes the (group, step) pairs in `exceptions` from the minute rows of the groups'
/// series, aggregating as Prometheus does, into `out`. Pairs sharing one range of steps are
/// fetched together (a range at the start or the end of the query is typically common to
/// every group: series starting, or the newest minute not written yet).
fn exact_exceptions(
    conn: &mut Conn,
    groups: &[(LabelPairs, Vec<i32>)],
    exceptions: &[Vec<i64>],
    steps: SqlSteps,
    op: StepAggregate,
    out: &mut [Samples],
) -> Result<(), PromError> {
    let step = (steps.step_seconds * 1000).max(MINUTE_MS);
    // (first step, last step) -> groups with exceptions exactly there.
    let mut ranges: BTreeMap<(i64, i64), Vec<usize>> = BTreeMap::new();
    for (g, times) in exceptions.iter().enumerate() {
        let mut i = 0;
        while i < times.len() {
            let mut j = i;
            while j + 1 < times.len() && times[j + 1] == times[j] + step {
                j += 1;
            }
            ranges.entry((times[i], times[j])).or_default().push(g);
            i = j + 1;
        }
    }
    if ranges.len() > MAX_EXCEPTION_RANGES {
        let lo = ranges.keys().map(|r| r.0).min().unwrap_or(steps.start);
        let hi = ranges.keys().map(|r| r.1).max().unwrap_or(steps.end);
        let mut all: Vec<usize> = ranges.into_values().flatten().collect();
        all.sort_unstable();
        all.dedup();
        ranges = BTreeMap::from([((lo, hi), all)]);
    }
    let aggregation = aggregation(op);
    for ((lo, hi), members) in ranges {
        let ids: Vec<i32> = members
            .iter()
            .flat_map(|&g| groups[g].1.iter().copied())
            .collect();
        let rows = minute_rows(conn, &ids, lo.saturating_sub(super::eval::LOOKBACK_MS), hi)?;
        for &g in &members {
            for &t in exceptions[g].iter().filter(|&&t| (lo..=hi).contains(&t)) {
                let mut acc = None;
                for id in &groups[g].1 {
                    let Some(v) = rows.get(id).and_then(|rows| value_at(rows, t)) else {
                        continue;
                    };
                    match &mut acc {
                        None => acc = Some(aggregation.start(v)),
                        Some(acc) => aggregation.add(acc, v),
                    }
                }
                if let Some(acc) = acc {
                    out[g].push((t, aggregation.finish(&acc)));
                }
            }
        }
    }
    Ok(())
}
