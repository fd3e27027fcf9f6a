//! The compact store on a real PostgreSQL: partitions ahead of time, retention while ingest
//! goes on, rollups equal to the raw aggregates, exact stats, and the upgrade from `0001`.

use std::borrow::Cow;

use chrono::{DateTime, Duration, DurationRound, Utc};
use postgres::Client;
use store::maintenance::{self, Policy};
use store::partitions::{POINTS, ROLLUP_1H, ROLLUP_1M};
use store::point::{Labels, Point};
use store::write::{Record, Window, Writer};
use testkit::Postgres;

fn fresh(pg: &Postgres, name: &str) -> Client {
    pg.create_database(name);
    let mut client = pg.connect_to(name);
    store::schema::migrate(&mut client).expect("migrate");
    client
}

fn point(gpu: usize, metric: &str, ts: DateTime<Utc>, value: f64) -> Point<'static> {
    Point {
        ts,
        source_ts: Some(ts - Duration::seconds(1)),
        metric: Cow::Owned(metric.to_string()),
        gpu_uuid: Cow::Owned(format!("GPU-{gpu:04x}")),
        gpu_index: (gpu % 8) as i32,
        device: Cow::Owned(format!("nvidia{}", gpu % 8)),
        model: Cow::Borrowed("NVIDIA H100 80GB HBM3"),
        hostname: Cow::Owned(format!("host-{}", gpu / 8)),
        container: None,
        pod: gpu.is_multiple_of(2).then_some(Cow::Borrowed("trainer-0")),
        namespace: None,
        value,
        labels: Labels(vec![(
            Cow::Borrowed("DCGM_FI_DRIVER_VERSION"),
            Cow::Borrowed("535.129.03"),
        )]),
    }
}

/// Writes `points` as one batch, the way the collector does (offsets from `first_offset`).
fn write(
    client: &mut Client,
    writer: &Writer,
    first_offset: i64,
    points: Vec<Point<'static>>,
) -> u64 {
    let records: Vec<Record> = points
        .into_iter()
        .enumerate()
        .map(|(i, point)| Record {
            partition: 0,
            offset: first_offset + i as i64,
            point,
        })
        .collect();
    let refs: Vec<&Record> = records.iter().collect();
    let (n, rejected) = writer.write_batch(client, &refs).expect("write");
    assert!(rejected.is_empty(), "{rejected:?}");
    n
}

fn count(client: &mut Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).expect(sql).get(0)
}

fn stats_points(client: &mut Client) -> i64 {
    let rows = client
        .query(store::read::METRIC_TOTALS_SQL, &[])
        .expect("totals");
    store::read::Totals::from_rows(&rows)
        .expect("totals")
        .points
}

fn partitions(client: &mut Client, table: store::partitions::Table) -> Vec<String> {
    table
        .list(client)
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect()
}

#[test]
fn partitions_exist_ahead_of_time_for_every_table() {
    let pg = Postgres::start();
    let mut client = fresh(&pg, "ahead");
    let report = maintenance::run_once(&mut client, &Policy::default()).expect("maintenance");
    assert!(report.ran);
    let today = Utc::now().date_naive();
    for ahead in 0..=2 {
        let day = today + Duration::days(ahead);
        for table in [POINTS, ROLLUP_1M] {
            let name = table.partition_of(day).name;
            assert!(
                partitions(&mut client, table).contains(&name),
                "{name} missing"
            );
        }
        let hourly = ROLLUP_1H.partition_of(day).name;
        assert!(partitions(&mut client, ROLLUP_1H).contains(&hourly));
    }
    // A second round creates nothing new, and two sessions never both run one.
    let again = maintenance::run_once(&mut client, &Policy::default()).expect("again");
    assert_eq!(again.created, 0);
    let mut holder = pg.connect_to("ahead");
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&0x6d61_696e_7461_696e_i64])
        .expect("lock");
    let skipped = maintenance::run_once(&mut client, &Policy::default()).expect("skipped");
    assert!(
        !skipped.ran,
        "a round runs only while no other session holds the lock"
    );
}

#[test]
fn retention_drops_old_partitions_while_ingest_goes_on_and_stats_stay_exact() {
    let pg = Postgres::start();
    let mut client = fresh(&pg, "retention");
    let now = Utc::now();
    // Old data is written with no retention (as an older collector would have).
    let keep_all = Writer::new(Window::default());
    let old_days = [45, 40, 31];
    let mut offset = 0;
    for days in old_days {
        let ts = now - Duration::days(days);
        let batch: Vec<_> = (0..16)
            .map(|g| point(g, "DCGM_FI_DEV_GPU_TEMP", ts, 40.0))
            .collect();
        offset += write(&mut client, &keep_all, offset, batch) as i64;
    }
    let recent_before = {
        let batch: Vec<_> = (0..16)
            .map(|g| point(g, "DCGM_FI_DEV_GPU_TEMP", now, 50.0))
            .collect();
        write(&mut client, &keep_all, offset, batch) as i64
    };
    offset += recent_before;
    assert_eq!(stats_points(&mut client), 64);

    // Ingest keeps writing on another connection while retention runs.
    let url = pg.connection_string_for("retention");
    let ingest = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let writer = Writer::new(Window {
            retention: Some(Duration::days(30)),
            ..Window::default()
        });
        let mut written = 0;
        for round in 0..40 {
            let ts = Utc::now();
            let batch: Vec<_> = (0..16)
                .map(|g| point(g, "DCGM_FI_DEV_POWER_USAGE", ts, f64::from(round)))
                .collect();
            written += write(&mut client, &writer, offset + written as i64, batch);
        }
        written
    });
    let policy = Policy {
        points: Some(Duration::days(30)),
        ..Policy::default()
    };
    let report = maintenance::run_once(&mut client, &policy).expect("retention");
    let written_meanwhile = ingest.join().expect("ingest thread") as i64;

    let dropped: Vec<String> = old_days
        .iter()
        .map(|d| {
            POINTS
                .partition_of((now - Duration::days(*d)).date_naive())
                .name
        })
        .collect();
    for name in &dropped {
        assert!(
            report.dropped.contains(name),
            "{name} not dropped: {report:?}"
        );
        let gone: bool = client
            .query_one("SELECT to_regclass($1) IS NULL", &[name])
            .expect("regclass")
            .get(0);
        assert!(gone, "{name} still exists");
    }
    let stored = count(&mut client, "SELECT count(*) FROM points");
    assert_eq!(
        stored,
        recent_before + written_meanwhile,
        "only the old days went"
    );
    assert_eq!(
        stats_points(&mut client),
        stored,
        "stats are exact after retention"
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM metric_day_totals WHERE day < current_date - 30"
        ),
        0
    );
}

#[test]
fn points_older_than_the_retention_are_refused_with_the_reason() {
    let pg = Postgres::start();
    let mut client = fresh(&pg, "refused");
    let writer = Writer::new(Window {
        retention: Some(Duration::days(30)),
        ..Window::default()
    });
    let now = Utc::now();
    let records: Vec<Record> = [now - Duration::days(31), now, now + Duration::days(30)]
        .into_iter()
        .enumerate()
        .map(|(i, ts)| Record {
            partition: 0,
            offset: i as i64,
            point: point(0, "M", ts, 1.0),
        })
        .collect();
    let refs: Vec<&Record> = records.iter().collect();
    let prepared = writer.prepare(&mut client, &refs).expect("prepare");
    let reasons: Vec<(usize, &str)> = prepared
        .rejected
        .iter()
        .map(|(i, r)| (*i, r.as_str()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].1.contains("older than the retention"),
        "{reasons:?}"
    );
    assert!(reasons[1].1.contains("in the future"), "{reasons:?}");
    assert_eq!(prepared.rows(&refs, |_| true).len(), 1);
}

#[test]
fn rollups_equal_the_aggregates_of_the_raw_points() {
    let pg = Postgres::start();
    let mut client = fresh(&pg, "rollups");
    let writer = Writer::new(Window::default());
    let start = (Utc::now() - Duration::hours(3))
        .duration_trunc(Duration::hours(1))
        .expect("trunc");
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut offset = 0;
    for _batch in 0..30 {
        let points: Vec<Point<'static>> = (0..200)
            .map(|_| {
                let gpu = (next() % 6) as usize;
                let metric =
                    ["DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE"][(next() % 2) as usize];
                // Whole seconds over ~2.5 hours: many equal times inside a series.
                let ts = start + Duration::seconds((next() % 9000) as i64);
                let value = (next() % 10_000) as f64 / 7.0;
                point(gpu, metric, ts, value)
            })
            .collect();
        offset += write(&mut client, &writer, offset, points) as i64;
    }
    for (table, unit) in [("rollup_1m", "minute"), ("rollup_1h", "hour")] {
        let raw = format!(
            "SELECT series_id, date_trunc('{unit}', ts, 'UTC') AS bucket, count(*)::int4 AS count,
                    sum(value) AS sum, min(value) AS min, max(value) AS max,
                    min(ts) AS first_ts, (array_agg(value ORDER BY ts, src_offset))[1] AS first_value,
                    max(ts) AS last_ts,
                    (array_agg(value ORDER BY ts DESC, src_offset DESC))[1] AS last_value
             FROM points GROUP BY 1, 2"
        );
        let differing = format!(
            "SELECT count(*) FROM ({raw}) r FULL JOIN {table} t USING (series_id, bucket)
             WHERE t.count IS DISTINCT FROM r.count
                OR abs(t.sum - r.sum) > 1e-9 * greatest(abs(r.sum), 1)
                OR t.min IS DISTINCT FROM r.min OR t.max IS DISTINCT FROM r.max
                OR t.first_ts IS DISTINCT FROM r.first_ts
                OR t.first_value IS DISTINCT FROM r.first_value
                OR t.last_ts IS DISTINCT FROM r.last_ts
                OR t.last_value IS DISTINCT FROM r.last_value"
        );
        assert_eq!(
            count(&mut client, &differing),
            0,
            "{table} differs from the raw points"
        );
        let rows = count(&mut client, &format!("SELECT count(*) FROM {table}"));
        assert!(rows > 1, "{table} has rows");
    }
    assert_eq!(count(&mut client, "SELECT sum(count) FROM rollup_1h"), 6000);
    assert_eq!(stats_points(&mut client), 6000);
}

/// What the `0001` collector wrote: a wide row per point, its GPU, and per-metric totals.
fn write_0001(client: &mut Client, points: &[(i64, Point<'static>)]) {
    let mut tx = client.transaction().expect("begin");
    for (offset, p) in points {
        let labels = serde_json::to_value(&p.labels).expect("labels");
        tx.execute(
            "INSERT INTO telemetry (gpu_uuid, ts, metric, value, source_ts, hostname, container,
                                    pod, namespace, labels, src_partition, src_offset)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 3, $11)",
            &[
                &p.gpu_uuid.as_ref(),
                &p.ts,
                &p.metric.as_ref(),
                &p.value,
                &p.source_ts,
                &p.hostname.as_ref(),
                &p.container.as_deref(),
                &p.pod.as_deref(),
                &p.namespace.as_deref(),
                &labels,
                offset,
            ],
        )
        .expect("insert 0001 row");
        tx.execute(
            "INSERT INTO gpus VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (gpu_uuid) DO UPDATE SET last_seen = GREATEST(gpus.last_seen, EXCLUDED.last_seen)",
            &[
                &p.gpu_uuid.as_ref(),
                &p.hostname.as_ref(),
                &p.gpu_index,
                &p.device.as_ref(),
                &p.model.as_ref(),
                &p.ts,
            ],
        )
        .expect("insert 0001 gpu");
        tx.execute(
            "INSERT INTO metric_totals VALUES ($1, 1, $2, $2) ON CONFLICT (metric) DO UPDATE SET
                 points = metric_totals.points + 1,
                 first_ts = LEAST(metric_totals.first_ts, EXCLUDED.first_ts),
                 last_ts = GREATEST(metric_totals.last_ts, EXCLUDED.last_ts)",
            &[&p.metric.as_ref(), &p.ts],
        )
        .expect("insert 0001 totals");
    }
    tx.commit().expect("commit");
}

/// Every point as text, in one order: what must survive the upgrade.
fn every_point(client: &mut Client) -> Vec<String> {
    client
        .query(
            "SELECT concat_ws('|', gpu_uuid, ts, metric, value, source_ts, hostname, container,
                              pod, namespace, labels::text, src_partition, src_offset)
             FROM telemetry ORDER BY src_offset",
            &[],
        )
        .expect("every point")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn a_0001_database_upgrades_in_place_with_every_point_and_exact_stats() {
    let pg = Postgres::start();
    pg.create_database("upgrade");
    let mut client = pg.connect_to("upgrade");
    assert_eq!(store::schema::migrate_to(&mut client, 1).expect("0001"), 1);
    let now = Utc::now()
        .duration_trunc(Duration::seconds(1))
        .expect("trunc");
    let points: Vec<(i64, Point<'static>)> = (0..3000)
        .map(|i| {
            let metric = [
                "DCGM_FI_DEV_GPU_TEMP",
                "DCGM_FI_DEV_GPU_UTIL",
                "DCGM_FI_DEV_POWER_USAGE",
            ][i % 3];
            let ts = now - Duration::hours(30) + Duration::seconds(i as i64 * 30);
            (i as i64, point(i % 24, metric, ts, i as f64 / 3.0))
        })
        .collect();
    write_0001(&mut client, &points);
    let before = every_point(&mut client);
    let stats_before = stats_0001(&mut client);
    assert_eq!(before.len(), 3000);

    // The new collector starts: migrations, then maintenance rounds until the move is done.
    assert_eq!(
        store::schema::migrate(&mut client).expect("upgrade"),
        store::schema::MIGRATIONS.len() - 1
    );
    assert_eq!(
        every_point(&mut client),
        before,
        "the view shows every point during the move"
    );
    assert_eq!(
        stats_points(&mut client),
        3000,
        "stats exact before the move"
    );
    let mut rounds = 0;
    loop {
        // Compaction off here: this test reads every point back through the row-form view.
        let policy = Policy {
            compact_after: None,
            ..Policy::default()
        };
        let report = maintenance::run_once(&mut client, &policy).expect("round");
        rounds += 1;
        if report.legacy_done {
            break;
        }
        assert!(rounds < 10, "the move does not finish");
    }
    assert_eq!(
        every_point(&mut client),
        before,
        "every point kept, values unchanged"
    );
    assert_eq!(count(&mut client, "SELECT count(*) FROM points"), 3000);
    let gone: bool = client
        .query_one("SELECT to_regclass('legacy_telemetry') IS NULL", &[])
        .expect("regclass")
        .get(0);
    assert!(gone, "the emptied legacy table is dropped");
    let rows = client
        .query(store::read::METRIC_TOTALS_SQL, &[])
        .expect("totals");
    let totals = store::read::Totals::from_rows(&rows).expect("totals");
    assert_eq!(
        totals.points_per_metric, stats_before,
        "per-metric stats unchanged"
    );
    assert_eq!(count(&mut client, "SELECT sum(count) FROM rollup_1m"), 3000);
    // Each moved series' latest point is in `latest`: the newest of the 3000 (i = 2999,
    // metric index 2999 % 3 = 2, a value of 2999 / 3).
    let newest: f64 = client
        .query_one(
            "SELECT l.value FROM latest l JOIN series s USING (series_id)
             ORDER BY l.ts DESC LIMIT 1",
            &[],
        )
        .expect("latest")
        .get(0);
    assert_eq!(newest, 2999.0 / 3.0);
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM latest"),
        count(&mut client, "SELECT count(*) FROM series"),
        "a latest point for every series"
    );
    assert_eq!(count(&mut client, "SELECT count(*) FROM series"), 24);
}

fn stats_0001(client: &mut Client) -> std::collections::BTreeMap<String, i64> {
    client
        .query("SELECT metric, points FROM metric_totals", &[])
        .expect("0001 totals")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Every point as (series, ts µs, value bits, offset, source ts µs), sorted.
type Flat = Vec<(i32, i64, u64, i64, Option<i64>)>;

fn narrow_points(client: &mut Client) -> Flat {
    let mut out: Flat = client
        .query(
            "SELECT series_id, ts, value, src_offset, source_ts FROM points",
            &[],
        )
        .expect("points")
        .iter()
        .map(|r| {
            let ts: DateTime<Utc> = r.get(1);
            let source: Option<DateTime<Utc>> = r.get(4);
            (
                r.get(0),
                ts.timestamp_micros(),
                r.get::<_, f64>(2).to_bits(),
                r.get(3),
                source.map(|t| t.timestamp_micros()),
            )
        })
        .collect();
    out.sort();
    out
}

fn compacted_points(client: &mut Client) -> Flat {
    let mut out: Flat = Vec::new();
    for r in client
        .query("SELECT series_id, data FROM points_compact", &[])
        .expect("chunks")
    {
        let series: i32 = r.get(0);
        let data: Vec<u8> = r.get(1);
        for p in store::codec::decode(&data).expect("decode") {
            out.push((series, p.ts, p.value.to_bits(), p.src_offset, p.source_ts));
        }
    }
    out.sort();
    out
}

#[test]
fn a_day_of_points_compacts_into_chunks_of_a_few_bytes_a_point_and_retention_drops_them() {
    let pg = Postgres::start();
    let mut client = fresh(&pg, "compact");
    let writer = Writer::new(Window::default());
    let day = (Utc::now() - Duration::days(3))
        .duration_trunc(Duration::days(1))
        .expect("trunc");
    let mut offset = 0;
    for tick in 0..400i64 {
        let ts = day + Duration::seconds(tick * 15) + Duration::microseconds(tick * 37 % 500);
        let batch: Vec<_> = (0..20)
            .map(|g| {
                point(
                    g,
                    "DCGM_FI_DEV_GPU_TEMP",
                    ts,
                    (40 + (tick + g as i64) % 9) as f64,
                )
            })
            .collect();
        offset += write(&mut client, &writer, offset, batch) as i64;
    }
    // And today's points, which stay in row form.
    let today: Vec<_> = (0..20)
        .map(|g| point(g, "DCGM_FI_DEV_GPU_TEMP", Utc::now(), 1.0))
        .collect();
    write(&mut client, &writer, offset, today);
    let before = narrow_points(&mut client);
    let stats_before = stats_points(&mut client);

    let compacted = store::compact::compact_older_than(&mut client, Utc::now() - Duration::days(1))
        .expect("compact");
    let name = POINTS.partition_of(day.date_naive()).name;
    assert_eq!(compacted, vec![name.clone()]);
    let gone: bool = client
        .query_one("SELECT to_regclass($1) IS NULL", &[&name])
        .expect("regclass")
        .get(0);
    assert!(gone, "the compacted narrow partition is dropped");
    let mut after = narrow_points(&mut client);
    assert_eq!(after.len(), 20, "today's points stay in row form");
    after.extend(compacted_points(&mut client));
    after.sort();
    assert_eq!(after, before, "every point, bit for bit");
    assert_eq!(stats_points(&mut client), stats_before);
    let bytes_per_point: f64 = client
        .query_one(
            "SELECT sum(octet_length(data))::float8 / sum(count) FROM points_compact",
            &[],
        )
        .expect("size")
        .get(0);
    assert!(bytes_per_point <= 8.0, "{bytes_per_point} bytes a point");

    // A late point for the compacted day lands in a recreated partition and is compacted
    // into one more chunk.
    let late = vec![point(
        0,
        "DCGM_FI_DEV_GPU_TEMP",
        day + Duration::hours(5),
        99.0,
    )];
    writer.forget_partitions();
    write(&mut client, &writer, 1_000_000, late);
    store::compact::compact_older_than(&mut client, Utc::now() - Duration::days(1))
        .expect("compact again");
    assert_eq!(compacted_points(&mut client).len(), 8001);

    // Retention takes the compacted day, chunks and totals together.
    let policy = Policy {
        points: Some(Duration::days(2)),
        ..Policy::default()
    };
    let report = maintenance::run_once(&mut client, &policy).expect("retention");
    let compact_name = store::partitions::POINTS_COMPACT
        .partition_of(day.date_naive())
        .name;
    assert!(report.dropped.contains(&compact_name), "{report:?}");
    assert_eq!(count(&mut client, "SELECT count(*) FROM points_compact"), 0);
    assert_eq!(
        stats_points(&mut client),
        20,
        "only today's points are counted"
    );
}
