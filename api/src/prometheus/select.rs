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

/// Per series of `series` (in order), its value at each step, from `rollup_1m`.
pub fn step_values(
    conn: &mut Conn,
    series: &[SeriesRow],
    steps: SqlSteps,
) -> Result<Vec<Samples>, PromError> {
    let ids: Vec<i32> = series.iter().map(|s| s.id).collect();
    let mut found: Vec<Vec<(i64, f64)>> = vec![Vec::new(); series.len()];
    if ids.is_empty() {
        return Ok(found);
    }
    let index: HashMap<i32, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let sql = store::prom::step_values_sql(None);
    let rows = conn.query_dynamic(
        &sql,
        &[
            &ids,
            &sql_time(steps.start),
            &sql_time(steps.end),
            &steps.step_seconds,
        ],
    )?;
    for row in rows {
        let id: i32 = row.try_get(0)?;
        let t: DateTime<Utc> = row.try_get(1)?;
        if let Some(&i) = index.get(&id) {
            found[i].push((t.timestamp_millis(), row.try_get(2)?));
        }
    }
    for points in &mut found {
        points.sort_by_key(|p| p.0);
    }
    Ok(found)
}

/// Per group (its labels: the grouping columns' labels that are not empty), the aggregate
/// of `series` at each step, computed by PostgreSQL from `rollup_1m`.
pub fn grouped_step_values(
    conn: &mut Conn,
    series: &[SeriesRow],
    steps: SqlSteps,
    op: StepAggregate,
    group: &[SeriesColumn],
) -> Result<Vec<(Labels, Samples)>, PromError> {
    let ids: Vec<i32> = series.iter().map(|s| s.id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = store::prom::step_values_sql(Some((op, group)));
    let rows = conn.query_dynamic(
        &sql,
        &[
            &ids,
            &sql_time(steps.start),
            &sql_time(steps.end),
            &steps.step_seconds,
        ],
    )?;
    let mut groups: BTreeMap<LabelPairs, Samples> = BTreeMap::new();
    for row in rows {
        let mut labels = Vec::with_capacity(group.len());
        for (i, column) in group.iter().enumerate() {
            let value: String = row.try_get(i)?;
            if !value.is_empty() {
                labels.push((label_of_column(*column).to_string(), value));
            }
        }
        labels.sort();
        let t: DateTime<Utc> = row.try_get(group.len())?;
        let v: f64 = row.try_get(group.len() + 1)?;
        groups
            .entry(labels)
            .or_default()
            .push((t.timestamp_millis(), v));
    }
    Ok(groups
        .into_iter()
        .map(|(labels, mut points)| {
            points.sort_by_key(|p| p.0);
            (Arc::new(labels), points)
        })
        .collect())
}
