//! The plans of the API's own SQL (the constants in `store::read`, not copies), at a volume
//! where the planner's choices are the ones production sees: a GPU's window finds the GPU's
//! series by `gpu_uuid` and reads their points through `points_series_idx`, narrowed to the
//! window by the `ts` BRIN index (both in one bitmap), never by a sequential scan of a points
//! partition; a bounded window reads only the partitions of its days; the GPU list, the
//! stats and the "is it known" check never touch the points at all.
//!
//! Checked for both custom and generic plans, since the API reuses prepared statements
//! (PostgreSQL switches to a generic plan after five runs); a generic plan prunes partitions
//! when the executor starts, which EXPLAIN shows too. A window is always sorted (the points
//! of several series are merged by time), so unlike the `0001` plan there is a Sort node.

use chrono::{DateTime, NaiveDate, Utc};
use store::partitions::POINTS;
use testkit::Postgres;

use crate::harness::*;

/// A fleet the size of the sample data's: 247 GPUs x 10 metrics.
const GPUS: i64 = 247;
const METRICS: i64 = 10;
/// Three daily partitions; the harness's `at(0)` falls on the middle one.
const DAYS: [&str; 3] = ["2025-07-17", "2025-07-18", "2025-07-19"];
/// One point per series every 15 minutes: 711,360 points, ~240,000 a partition.
const STEP_SECONDS: i64 = 900;

fn plan(
    client: &mut postgres::Client,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> String {
    client
        .query(&format!("EXPLAIN {sql}"), params)
        .expect("explain")
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
}

/// The series and points of the fleet, in time order as a collector writes them, into
/// partitions made the store's way; then `gpus` and the day totals, and a VACUUM ANALYZE
/// (what autovacuum does to a filled partition: statistics, and the BRIN summaries without
/// which a BRIN scan returns every block).
fn seed_fleet(client: &mut postgres::Client) {
    for d in DAYS {
        POINTS.ensure(client, day(d)).expect("create a partition");
    }
    client
        .batch_execute(&format!(
            "INSERT INTO series (gpu_uuid, metric, hostname, labels)
             SELECT 'GPU-' || g, 'DCGM_FI_METRIC_' || m, 'host-' || (g / 8),
                    '{{\"DCGM_FI_DRIVER_VERSION\": \"535.129.03\"}}'
             FROM generate_series(0, {GPUS} - 1) AS g, generate_series(0, {METRICS} - 1) AS m
             ORDER BY g, m;"
        ))
        .expect("seed series");
    let per_day = 86_400 / STEP_SECONDS;
    for d in DAYS {
        client
            .batch_execute(&format!(
                "INSERT INTO points (ts, value, src_offset, source_ts, series_id, src_partition)
                 SELECT timestamptz '{d} 00:00:00+00' + t * interval '{STEP_SECONDS} seconds',
                        (t % 100)::float8, t * {series} + s.series_id, NULL, s.series_id, 0
                 FROM generate_series(0, {per_day} - 1) AS t, series s
                 ORDER BY t, s.series_id;",
                series = GPUS * METRICS,
            ))
            .expect("seed points");
    }
    client
        .batch_execute(
            "INSERT INTO gpus (gpu_uuid, hostname, gpu_index, device, model, first_seen, last_seen)
             SELECT s.gpu_uuid, min(s.hostname), 0, 'nvidia0', 'NVIDIA H100 80GB HBM3',
                    min(p.ts), max(p.ts)
             FROM points p JOIN series s USING (series_id) GROUP BY s.gpu_uuid;
             INSERT INTO metric_day_totals (metric, day, points, first_ts, last_ts)
             SELECT s.metric, (p.ts AT TIME ZONE 'UTC')::date, count(*), min(p.ts), max(p.ts)
             FROM points p JOIN series s USING (series_id) GROUP BY 1, 2;",
        )
        .expect("seed gpus and totals");
    client.batch_execute("VACUUM ANALYZE").expect("vacuum");
}

/// The name of the index attached to `parent_index` on `partition` (PostgreSQL names the
/// partitions' indexes itself).
fn partition_index(client: &mut postgres::Client, parent_index: &str, partition: &str) -> String {
    client
        .query_one(
            "SELECT c.relname::text FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_index x ON x.indexrelid = c.oid
             WHERE i.inhparent = $1::text::regclass AND x.indrelid = $2::text::regclass",
            &[&parent_index, &partition],
        )
        .expect("the partition's index")
        .get(0)
}

/// One window to explain: its statement, its bounds, and the partitions it must read.
struct Case {
    what: &'static str,
    sql: &'static str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    metric: Option<&'static str>,
    days: &'static [&'static str],
}

#[test]
fn a_window_reads_its_gpus_series_in_its_partitions_and_the_totals_never_read_points() {
    let pg = Postgres::start();
    let mut client = pg.connect();
    store::schema::migrate(&mut client).expect("migrate");
    seed_fleet(&mut client);

    let partitions: Vec<String> = DAYS
        .iter()
        .map(|d| POINTS.partition_of(day(d)).name)
        .collect();
    let cases = [
        Case {
            what: "an hour",
            sql: store::read::WINDOW_SQL,
            start: Some(at(0)),
            end: Some(at(3600)),
            metric: None,
            days: &["2025-07-18"],
        },
        Case {
            what: "an hour of one metric",
            sql: store::read::WINDOW_METRIC_SQL,
            start: Some(at(0)),
            end: Some(at(3600)),
            metric: Some("DCGM_FI_METRIC_3"),
            days: &["2025-07-18"],
        },
        Case {
            what: "from a time on",
            sql: store::read::WINDOW_SQL,
            start: Some(at(0)),
            end: None,
            metric: None,
            days: &["2025-07-18", "2025-07-19"],
        },
        Case {
            what: "everything",
            sql: store::read::WINDOW_SQL,
            start: None,
            end: None,
            metric: None,
            days: &DAYS,
        },
    ];
    let (limit, offset) = (101i64, 0i64);
    let (no_cursor_ts, no_cursor_offset) = (None::<chrono::DateTime<chrono::Utc>>, None::<i64>);
    for mode in ["auto", "force_custom_plan", "force_generic_plan"] {
        client
            .batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .expect("set mode");
        for case in &cases {
            let p = match case.metric {
                None => plan(
                    &mut client,
                    case.sql,
                    &[
                        &"GPU-7",
                        &case.start,
                        &case.end,
                        &limit,
                        &offset,
                        &no_cursor_ts,
                        &no_cursor_offset,
                    ],
                ),
                Some(metric) => plan(
                    &mut client,
                    case.sql,
                    &[
                        &"GPU-7",
                        &case.start,
                        &case.end,
                        &limit,
                        &offset,
                        &no_cursor_ts,
                        &no_cursor_offset,
                        &vec![metric],
                    ],
                ),
            };
            let what = format!("{} ({mode}):\n{p}", case.what);
            assert!(
                !p.contains("Seq Scan on points"),
                "a points partition is scanned whole: {what}"
            );
            assert!(
                p.lines()
                    .any(|l| l.contains("gpu_uuid = ") && !l.contains("Recheck")),
                "the GPU's series are found by gpu_uuid: {what}"
            );
            for (d, partition) in DAYS.iter().zip(&partitions) {
                if !case.days.contains(d) {
                    assert!(
                        !p.contains(partition.as_str()),
                        "{partition} is not pruned: {what}"
                    );
                    continue;
                }
                let series_idx = partition_index(&mut client, "points_series_idx", partition);
                assert!(
                    p.contains(&format!("Bitmap Index Scan on {series_idx}"))
                        || p.contains(&format!("Index Scan using {series_idx}")),
                    "{partition} is read through its series index: {what}"
                );
                // One series (a metric) may be read by a plain index scan when the planner
                // finds it cheaper; a whole GPU's series are narrowed by time.
                if case.start.is_some() && case.end.is_some() && case.metric.is_none() {
                    let brin = partition_index(&mut client, "points_ts_brin", partition);
                    assert!(
                        p.contains("BitmapAnd")
                            && p.contains(&format!("Bitmap Index Scan on {brin}")),
                        "{partition}: the series index is narrowed by the ts BRIN: {what}"
                    );
                }
            }
        }
    }
    client
        .batch_execute("RESET plan_cache_mode")
        .expect("reset mode");

    let none = None::<&str>;
    let metrics: Option<Vec<&str>> = Some(vec!["DCGM_FI_METRIC_3"]);
    let no_hosts = None::<Vec<&str>>;
    for (sql, p) in [
        (
            store::read::GPUS_SQL,
            plan(
                &mut client,
                store::read::GPUS_SQL,
                &[&none, &none, &none, &none],
            ),
        ),
        (
            store::read::GPUS_SQL,
            plan(
                &mut client,
                store::read::GPUS_SQL,
                &[&Some("host-1"), &none, &none, &Some("pod-1")],
            ),
        ),
        (
            store::read::HOSTS_SQL,
            plan(&mut client, store::read::HOSTS_SQL, &[]),
        ),
        (
            store::read::LATEST_SQL,
            plan(&mut client, store::read::LATEST_SQL, &[&metrics, &no_hosts]),
        ),
        (
            store::read::METRIC_TOTALS_SQL,
            plan(&mut client, store::read::METRIC_TOTALS_SQL, &[]),
        ),
        (
            store::read::GPU_COUNTS_SQL,
            plan(&mut client, store::read::GPU_COUNTS_SQL, &[]),
        ),
        (
            store::read::KNOWN_SQL,
            plan(&mut client, store::read::KNOWN_SQL, &[&"GPU-7"]),
        ),
    ] {
        assert!(
            !p.contains(" on points") && !p.contains("telemetry"),
            "{sql} reads points:\n{p}"
        );
    }
}
