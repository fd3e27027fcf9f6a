//! The plans of the API's own SQL (the constants in `api::db`, not copies): a GPU's window
//! is a range scan of `telemetry_gpu_ts_idx` that needs no sort, and the GPU list and the
//! stats never touch `telemetry`. Checked for both custom and generic plans, since the API
//! reuses prepared statements (PostgreSQL switches to a generic plan after five runs).

use chrono::{DateTime, Utc};
use testkit::Postgres;

use crate::harness::*;

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

#[test]
fn the_window_is_an_index_range_scan_and_the_totals_never_read_telemetry() {
    let pg = Postgres::start();
    let mut client = pg.connect();
    clients::schema::migrate(&mut client).expect("migrate");
    // 100,000 points: 20 GPUs x 5,000 seconds, enough for the planner to prefer the index.
    client
        .batch_execute(
            "INSERT INTO telemetry (gpu_uuid, ts, metric, value, hostname, src_partition, src_offset)
             SELECT 'GPU-' || (n % 20), timestamptz '2025-07-18 00:00:00+00' + (n / 20) * interval '1 second',
                    'DCGM_FI_DEV_GPU_UTIL', n % 100, 'host', 0, n
             FROM generate_series(0, 99999) AS n;
             ANALYZE telemetry;",
        )
        .expect("seed");
    let start: Option<DateTime<Utc>> = Some(at(0));
    let end: Option<DateTime<Utc>> = Some(at(3600));
    let none: Option<DateTime<Utc>> = None;
    let (limit, offset, metric) = (101i64, 0i64, UTIL.to_string());

    for mode in ["auto", "force_custom_plan", "force_generic_plan"] {
        client
            .batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .expect("set mode");
        let plans = [
            plan(
                &mut client,
                api::db::WINDOW_SQL,
                &[&"GPU-7", &start, &end, &limit, &offset],
            ),
            plan(
                &mut client,
                api::db::WINDOW_SQL,
                &[&"GPU-7", &none, &none, &limit, &offset],
            ),
            plan(
                &mut client,
                api::db::WINDOW_METRIC_SQL,
                &[&"GPU-7", &start, &end, &limit, &offset, &metric],
            ),
        ];
        for p in plans {
            assert!(
                p.contains("Index Scan using telemetry_gpu_ts_idx on telemetry"),
                "{mode}:\n{p}"
            );
            assert!(
                !p.contains("Sort") && !p.contains("Seq Scan"),
                "{mode}:\n{p}"
            );
            assert!(
                p.contains("Index Cond: ((gpu_uuid = "),
                "the GPU and both bounds are index conditions ({mode}):\n{p}"
            );
        }
    }
    for sql in [
        api::db::GPUS_SQL,
        api::db::METRIC_TOTALS_SQL,
        api::db::GPU_COUNTS_SQL,
    ] {
        let p = plan(&mut client, sql, &[]);
        assert!(!p.contains("telemetry"), "{sql} reads telemetry:\n{p}");
    }
}
