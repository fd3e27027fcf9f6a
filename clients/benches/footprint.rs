//! Bytes per point on disk, tables and their indexes, the compact store (0002) next to the
//! wide 0001 `telemetry` table, both loaded with the same points in the same run, and the
//! compact store's points again once every loaded day is compacted into `points_compact`.
//!
//! `cargo bench -p clients --bench footprint` (`FOOTPRINT_POINTS`, default 10,000,000; a few
//! minutes at that size) loads the points into two databases of a throwaway PostgreSQL
//! (testkit): one migrated to the latest schema, one built by migration 0001 alone. Then
//! VACUUM ANALYZE, what autovacuum does to a filled table, and `pg_table_size`,
//! `pg_indexes_size` and `pg_total_relation_size` summed over each table's partitions,
//! divided by the point count. Then `store::compact::compact_older_than` rewrites every
//! loaded day as chunks (the maintenance round's work once the days are over), VACUUM ANALYZE
//! again, and the same sums over `points_compact`'s partitions (table, TOAST, indexes).
//!
//! The points are shaped like the sample export (`data-sample/`): its 2,470 series (247 GPUs ×
//! 10 metrics, with their real ~300 bytes of labels) read through the streamer's CSV mapping,
//! one point per series every 15 s, arriving tick by tick, so consecutive rows belong to
//! different series as in real ingest (what makes or breaks an index's page fill). The start
//! is the sample's hour, so 10M points (~17 hours) cross midnight into a second daily
//! partition. Fast bulk SQL does the loading (`INSERT … SELECT … FROM generate_series`, an
//! hour of ticks per statement, straight into the day's partition), not the collector: the
//! layout on disk is the same, the load takes minutes instead of an hour.
//!
//! The values and times decide what a compacted point costs (the codec stores each as what
//! changed from what the previous ones predict), so they move like real ones ([`Walk`]): each
//! series starts at its value in the sample and takes a seeded random step every tick in its
//! metric's unit; `source_ts` is on the 15 s grid (the sample's are whole seconds) and `ts`,
//! the pipeline's processing time, a random 0–1 ms after it. Both databases get the same.
//!
//! The rollups are written once per hour chunk from that chunk's points, in ingest order. The
//! collector instead merges them batch by batch (each update a new row version that VACUUM
//! turns into reusable space), so their figure is the packed size, a lower bound.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use clients::telemetry::CsvRows;
use postgres::Client;
use store::partitions::{Table, POINTS, POINTS_COMPACT, ROLLUP_1H, ROLLUP_1M, TABLES};
use store::write::{Record, Window, Writer};
use testkit::{sample_csv, Postgres};

/// Seconds between two points of a series (a scrape interval).
const INTERVAL_SECONDS: i64 = 15;
/// Ticks per load statement: one hour, so rollup buckets never straddle two statements.
const TICKS_PER_CHUNK: i64 = 3600 / INTERVAL_SECONDS;
/// Broker partitions the GPUs are spread over (where a point came from: `src_partition`).
const BROKER_PARTITIONS: u32 = 16;

fn points_wanted() -> i64 {
    std::env::var("FOOTPRINT_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10_000_000)
}

/// The first tick: the hour of the sample's own timestamps.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 7, 18, 20, 0, 0)
        .single()
        .expect("valid time")
}

/// One record per series of the sample, in the file's order (the order of a scrape), taken
/// at [`start`]; a GPU's points come from one broker partition, as the streamer keys them.
fn sample_series() -> Vec<Record> {
    let mut rows = CsvRows::open(&sample_csv()).expect("open the sample CSV");
    let mut gpus: Vec<String> = Vec::new();
    let mut records = Vec::new();
    while let Some(row) = rows.next_record().expect("read the sample CSV") {
        let point = row
            .point(start())
            .expect("the sample's rows are good")
            .into_owned();
        let gpu = match gpus.iter().position(|g| *g == point.gpu_uuid) {
            Some(i) => i,
            None => {
                gpus.push(point.gpu_uuid.to_string());
                gpus.len() - 1
            }
        };
        records.push(Record {
            partition: gpu as u32 % BROKER_PARTITIONS,
            offset: records.len() as i64,
            point,
        });
    }
    records
}

/// How a metric's value moves from one tick to the next: steps drawn uniformly from
/// `-step..=step` units of `1 / scale`, the value kept within `[min, max]` units.
#[derive(Clone, Copy)]
struct Motion {
    scale: f64,
    step: i64,
    min: i64,
    max: i64,
}

impl Motion {
    /// By metric name, in the units DCGM reports (and the sample shows): whole percents,
    /// degrees and MiB, watts with three decimals; clocks and anything else hold still.
    fn of(metric: &str) -> Motion {
        let whole = |step, min, max| Motion {
            scale: 1.0,
            step,
            min,
            max,
        };
        if metric.contains("POWER") {
            Motion {
                scale: 1000.0,
                step: 5_000,
                min: 0,
                max: 1_000_000,
            }
        } else if metric.contains("UTIL") {
            whole(2, 0, 100)
        } else if metric.contains("TEMP") {
            whole(1, 0, 110)
        } else if metric.contains("FB_") {
            whole(16, 0, 1 << 20)
        } else {
            whole(0, i64::MIN, i64::MAX)
        }
    }
}

/// Most a point's `ts` (processing time) lags its `source_ts` (the scrape's), in µs.
const PROCESSING_DELAY_US: i64 = 1_000;

/// One line for the output: how [`Walk`] makes the values and times.
const VALUES_DESCRIBED: &str = "values: each series starts at its sample value, then a seeded \
     random step per tick: *UTIL* ±0–2 % in [0, 100], *TEMP* ±0–1 °C, *FB_* ±0–16 MiB, \
     *POWER* ±0–5 W in steps of 0.001 W, clocks unchanged; source_ts on the 15 s grid, \
     ts 0–1 ms (uniform, µs) after it";

/// The values of the load, tick by tick: a random walk per series from its sample value; and
/// each point's processing delay. The same seed gives the same points to both databases.
struct Walk {
    motions: Vec<Motion>,
    /// Each series' current value in units of `1 / scale`.
    units: Vec<i64>,
    rng: fastrand::Rng,
}

impl Walk {
    fn new(series: &[Record]) -> Walk {
        let motions: Vec<Motion> = series.iter().map(|r| Motion::of(&r.point.metric)).collect();
        let units = series
            .iter()
            .zip(&motions)
            .map(|(r, m)| (r.point.value * m.scale).round() as i64)
            .collect();
        Walk {
            motions,
            units,
            rng: fastrand::Rng::with_seed(0x666f_6f74),
        }
    }

    /// The next `ticks` ticks' values and delays (µs from `source_ts` to `ts`), tick by
    /// tick, every series in each.
    fn next_ticks(&mut self, ticks: i64) -> (Vec<f64>, Vec<i64>) {
        let n = ticks as usize * self.units.len();
        let (mut values, mut delays) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..ticks {
            for (u, m) in self.units.iter_mut().zip(&self.motions) {
                values.push(*u as f64 / m.scale);
                delays.push(self.rng.i64(0..PROCESSING_DELAY_US));
                if m.step > 0 {
                    *u = (*u + self.rng.i64(-m.step..=m.step)).clamp(m.min, m.max);
                }
            }
        }
        (values, delays)
    }
}

/// The load's shape: `points` split into ticks of `series` points, the last one maybe partial.
#[derive(Clone, Copy)]
struct Shape {
    points: i64,
    series: i64,
}

impl Shape {
    fn ticks(&self) -> i64 {
        (self.points + self.series - 1) / self.series
    }

    /// Hour-long runs of ticks `[first, end)`, each with the day it falls in.
    fn chunks(&self) -> impl Iterator<Item = (i64, i64, NaiveDate)> {
        let ticks = self.ticks();
        (0..ticks)
            .step_by(TICKS_PER_CHUNK as usize)
            .map(move |first| {
                let at = start() + chrono::Duration::seconds(first * INTERVAL_SECONDS);
                (first, (first + TICKS_PER_CHUNK).min(ticks), at.date_naive())
            })
    }

    fn days(&self) -> Vec<NaiveDate> {
        let mut days: Vec<NaiveDate> = self.chunks().map(|c| c.2).collect();
        days.dedup();
        days
    }
}

/// The compact store, the collector's way for what is small (series resolved and partitions
/// made by the store's own code), bulk SQL for the points and their rollups.
fn load_compact(client: &mut Client, series: &[Record], shape: Shape) -> Duration {
    store::schema::migrate(client).expect("migrate");
    let started = Instant::now();
    let writer = Writer::new(Window::default());
    let records: Vec<&Record> = series.iter().collect();
    let prepared = writer.prepare(client, &records).expect("resolve series");
    let ids: Vec<i32> = prepared
        .rows(&records, |_| true)
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(ids.len(), series.len(), "every series resolved");
    let partitions: Vec<i16> = series.iter().map(|r| r.partition as i16).collect();
    for day in shape.days() {
        for table in TABLES {
            table.ensure(client, day).expect("create a partition");
        }
    }
    // Point p of the load is tick p / series, series p % series: its arrival order, which is
    // also its broker offset.
    let mut walk = Walk::new(series);
    for (first, end, day) in shape.chunks() {
        let partition = POINTS.partition_of(day).name;
        let (values, delays) = walk.next_ticks(end - first);
        client
            .execute(
                format!(
                    "INSERT INTO {partition}
                         (ts, value, src_offset, source_ts, series_id, src_partition)
                     SELECT $1::timestamptz + make_interval(secs => tick * {INTERVAL_SECONDS})
                                + ($9::int8[])[(tick - $2::int8) * $6::int8 + s + 1]
                                  * interval '1 microsecond',
                            ($8::float8[])[(tick - $2::int8) * $6::int8 + s + 1],
                            tick * $6::int8 + s,
                            $1::timestamptz + make_interval(secs => tick * {INTERVAL_SECONDS}),
                            ($4::int4[])[s + 1], ($5::int2[])[s + 1]
                     FROM generate_series($2::int8, $3::int8 - 1) AS tick
                     CROSS JOIN LATERAL
                         generate_series(0, least($6::int8 - 1, $7::int8 - 1 - tick * $6::int8)::int4) AS s"
                )
                .as_str(),
                &[
                    &start(),
                    &first,
                    &end,
                    &ids,
                    &partitions,
                    &shape.series,
                    &shape.points,
                    &values,
                    &delays,
                ],
            )
            .unwrap_or_else(|e| panic!("load the points of {day}: {e:?}"));
        let from = start() + chrono::Duration::seconds(first * INTERVAL_SECONDS);
        let to = start() + chrono::Duration::seconds(end * INTERVAL_SECONDS);
        for (table, unit) in [(ROLLUP_1M, "minute"), (ROLLUP_1H, "hour")] {
            client
                .execute(
                    format!(
                        "INSERT INTO {rollup} (series_id, bucket, count, sum, min, max,
                                               first_ts, first_value, last_ts, last_value)
                         SELECT series_id, date_trunc('{unit}', ts, 'UTC') AS bucket,
                                count(*), sum(value), min(value), max(value),
                                min(ts), (array_agg(value ORDER BY ts))[1],
                                max(ts), (array_agg(value ORDER BY ts DESC))[1]
                         FROM {partition} WHERE ts >= $1 AND ts < $2
                         GROUP BY 1, 2 ORDER BY 2, 1",
                        rollup = table.name
                    )
                    .as_str(),
                    &[&from, &to],
                )
                .unwrap_or_else(|e| panic!("roll up {partition} into {}: {e:?}", table.name));
        }
    }
    started.elapsed()
}

/// The 0001 table: the same points as wide rows, every attribute and the labels repeated.
fn load_0001(client: &mut Client, series: &[Record], shape: Shape) -> Duration {
    store::schema::migrate_to(client, 1).expect("migrate to 0001");
    let started = Instant::now();
    let text = |f: fn(&Record) -> &str| series.iter().map(f).collect::<Vec<&str>>();
    let optional = |f: fn(&Record) -> Option<&str>| series.iter().map(f).collect::<Vec<_>>();
    let labels: Vec<String> = series.iter().map(|r| r.point.labels.to_json()).collect();
    let partitions: Vec<i32> = series.iter().map(|r| r.partition as i32).collect();
    client
        .batch_execute(
            "CREATE TEMPORARY TABLE sample_series (
                 n int PRIMARY KEY, gpu_uuid text, metric text, hostname text, container text,
                 pod text, namespace text, labels jsonb, src_partition int)",
        )
        .expect("create the series table");
    client
        .execute(
            "INSERT INTO sample_series
             SELECT n::int - 1, g, m, h, c, p, ns, l::jsonb, sp
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::int4[])
                  WITH ORDINALITY AS u(g, m, h, c, p, ns, l, sp, n)",
            &[
                &text(|r| &r.point.gpu_uuid),
                &text(|r| &r.point.metric),
                &text(|r| &r.point.hostname),
                &optional(|r| r.point.container.as_deref()),
                &optional(|r| r.point.pod.as_deref()),
                &optional(|r| r.point.namespace.as_deref()),
                &labels,
                &partitions,
            ],
        )
        .expect("fill the series table");
    let mut walk = Walk::new(series);
    for (first, end, day) in shape.chunks() {
        let (values, delays) = walk.next_ticks(end - first);
        // The lateral subquery is ordered, so the plan is a nested loop over the ticks and the
        // rows go in tick by tick, series interleaved, like the compact load.
        client
            .execute(
                format!(
                    "INSERT INTO telemetry (gpu_uuid, ts, metric, value, source_ts, hostname,
                                            container, pod, namespace, labels, src_partition,
                                            src_offset)
                     SELECT s.gpu_uuid, $1::timestamptz + make_interval(secs => tick * {INTERVAL_SECONDS})
                                + ($7::int8[])[(tick - $2::int8) * $4::int8 + s.n + 1]
                                  * interval '1 microsecond',
                            s.metric, ($6::float8[])[(tick - $2::int8) * $4::int8 + s.n + 1],
                            $1::timestamptz + make_interval(secs => tick * {INTERVAL_SECONDS}),
                            s.hostname, s.container, s.pod, s.namespace, s.labels,
                            s.src_partition, tick * $4::int8 + s.n
                     FROM generate_series($2::int8, $3::int8 - 1) AS tick
                     CROSS JOIN LATERAL (
                         SELECT * FROM sample_series
                         WHERE sample_series.n < $5::int8 - tick * $4::int8 ORDER BY sample_series.n
                     ) AS s"
                )
                .as_str(),
                &[
                    &start(),
                    &first,
                    &end,
                    &shape.series,
                    &shape.points,
                    &values,
                    &delays,
                ],
            )
            .unwrap_or_else(|e| panic!("load the 0001 rows of {day}: {e:?}"));
    }
    client
        .batch_execute("DROP TABLE sample_series")
        .expect("drop the series table");
    started.elapsed()
}

/// Bytes on disk of some relations, summed.
#[derive(Default, Clone, Copy)]
struct Size {
    rows: i64,
    /// Heap, TOAST, free space and visibility maps.
    table: i64,
    indexes: i64,
    total: i64,
}

impl Size {
    fn of(client: &mut Client, relations: &[String]) -> Size {
        let mut size = Size::default();
        for relation in relations {
            // Names are ours (a table or one of its partitions), never input.
            let row = client
                .query_one(
                    format!(
                        "SELECT (SELECT count(*) FROM {relation}), pg_table_size($1::text::regclass),
                                pg_indexes_size($1::text::regclass), pg_total_relation_size($1::text::regclass)"
                    )
                    .as_str(),
                    &[relation],
                )
                .unwrap_or_else(|e| panic!("size of {relation}: {e}"));
            size.rows += row.get::<_, i64>(0);
            size.table += row.get::<_, i64>(1);
            size.indexes += row.get::<_, i64>(2);
            size.total += row.get::<_, i64>(3);
        }
        size
    }

    fn partitions_of(client: &mut Client, table: Table) -> (usize, Size) {
        let names: Vec<String> = table
            .list(client)
            .expect("list partitions")
            .into_iter()
            .map(|p| p.name)
            .collect();
        (names.len(), Size::of(client, &names))
    }

    fn plus(self, other: Size) -> Size {
        Size {
            rows: self.rows + other.rows,
            table: self.table + other.table,
            indexes: self.indexes + other.indexes,
            total: self.total + other.total,
        }
    }
}

fn vacuum_analyze(client: &mut Client) -> Duration {
    let started = Instant::now();
    client
        .batch_execute("VACUUM ANALYZE")
        .expect("vacuum analyze");
    started.elapsed()
}

/// ANALYZE's correlation of the offsets with the physical row order in the tables named like
/// `tables`: 1.0 when the rows went in in arrival order (tick by tick), which the sizes
/// depend on.
fn in_order(client: &mut Client, tables: &str) -> f64 {
    client
        .query_one(
            format!(
                "SELECT min(correlation)::float8 FROM pg_stats
                 WHERE attname = 'src_offset' AND tablename LIKE '{tables}'"
            )
            .as_str(),
            &[],
        )
        .ok()
        .and_then(|r| r.get::<_, Option<f64>>(0))
        .unwrap_or(f64::NAN)
}

fn main() {
    let series = sample_series();
    let shape = Shape {
        points: points_wanted(),
        series: series.len() as i64,
    };
    let last = start() + chrono::Duration::seconds((shape.ticks() - 1) * INTERVAL_SECONDS);
    println!(
        "footprint bench: {} points = {} ticks × {} series of the sample, {INTERVAL_SECONDS} s \
         apart, {} → {}",
        shape.points,
        shape.ticks(),
        shape.series,
        start().format("%Y-%m-%d %H:%M"),
        last.format("%Y-%m-%d %H:%M UTC"),
    );
    let pg = Postgres::start();
    pg.create_database("compact");
    pg.create_database("v0001");
    let mut compact = pg.connect_to("compact");
    let mut wide = pg.connect_to("v0001");

    let load_compact_time = load_compact(&mut compact, &series, shape);
    let vacuum_compact_time = vacuum_analyze(&mut compact);
    let load_wide_time = load_0001(&mut wide, &series, shape);
    let vacuum_wide_time = vacuum_analyze(&mut wide);

    let telemetry = Size::of(&mut wide, &["telemetry".to_string()]);
    let (point_partitions, points) = Size::partitions_of(&mut compact, POINTS);
    let (minute_partitions, minutes) = Size::partitions_of(&mut compact, ROLLUP_1M);
    let (hour_partitions, hours) = Size::partitions_of(&mut compact, ROLLUP_1H);
    let series_size = Size::of(&mut compact, &["series".to_string()]);
    assert_eq!(telemetry.rows, shape.points, "every 0001 row loaded");
    assert_eq!(points.rows, shape.points, "every point loaded");
    let rolled_up: (i64, i64) = compact
        .query_one(
            "SELECT (SELECT sum(count) FROM rollup_1m)::int8,
                    (SELECT sum(count) FROM rollup_1h)::int8",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .expect("rollup counts");
    assert_eq!(
        rolled_up,
        (shape.points, shape.points),
        "every point rolled up"
    );
    let everything = points.plus(minutes).plus(hours).plus(series_size);

    // Read before compaction drops the points partitions.
    let points_in_order = in_order(&mut compact, "points\\_p%");

    // Every loaded day compacted, as the maintenance round does once a day is over: `before`
    // is a day past the end of the last loaded day.
    let last_day = *shape.days().last().expect("at least one day");
    let before = (last_day + chrono::Duration::days(2))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let compaction_started = Instant::now();
    let compacted = store::compact::compact_older_than(&mut compact, before).expect("compact");
    let compaction_time = compaction_started.elapsed();
    assert_eq!(
        compacted.len(),
        point_partitions,
        "every loaded day compacted"
    );
    let vacuum_chunks_time = vacuum_analyze(&mut compact);
    let (chunk_partitions, chunks) = Size::partitions_of(&mut compact, POINTS_COMPACT);
    // The codec's bytes, and what PostgreSQL keeps of them (less if it compressed them).
    let (chunked, data_bytes, stored_bytes): (i64, i64, i64) = compact
        .query_one(
            "SELECT sum(count)::int8, sum(octet_length(data))::int8,
                    sum(pg_column_size(data))::int8
             FROM points_compact",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .expect("chunk totals");
    // `data` is meant to be stored as it is (STORAGE EXTERNAL, 0002_compact.sql): what each
    // partition's column really has ('x' would mean compressed like any bytea).
    let storage: Vec<String> = compact
        .query(
            "SELECT DISTINCT a.attstorage::text FROM pg_inherits i
             JOIN pg_attribute a ON a.attrelid = i.inhrelid AND a.attname = 'data'
             WHERE i.inhparent = 'points_compact'::regclass ORDER BY 1",
            &[],
        )
        .expect("storage of data")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(chunked, shape.points, "every point in a chunk");
    assert!(
        POINTS.list(&mut compact).expect("list").is_empty(),
        "no narrow partition left"
    );
    let everything_compacted = chunks.plus(minutes).plus(hours).plus(series_size);

    let per_point = |bytes: i64| bytes as f64 / shape.points as f64;
    println!();
    println!(
        "{:<42} {:>10} {:>11} {:>11} {:>11} {:>10}",
        "relation (+ its indexes)", "rows", "table B/pt", "index B/pt", "total B/pt", "total MiB"
    );
    let line = |what: &str, rows: String, s: Size| {
        println!(
            "{what:<42} {rows:>10} {:>11.1} {:>11.1} {:>11.1} {:>10.1}",
            per_point(s.table),
            per_point(s.indexes),
            per_point(s.total),
            s.total as f64 / 1048576.0
        )
    };
    let partitions = |table: &str, n: usize| {
        format!(
            "0002 {table} ({n} partition{})",
            if n == 1 { "" } else { "s" }
        )
    };
    line("0001 telemetry", telemetry.rows.to_string(), telemetry);
    line(
        &partitions("points", point_partitions),
        points.rows.to_string(),
        points,
    );
    line(
        &partitions("rollup_1m", minute_partitions),
        minutes.rows.to_string(),
        minutes,
    );
    line(
        &partitions("rollup_1h", hour_partitions),
        hours.rows.to_string(),
        hours,
    );
    line("0002 series", series_size.rows.to_string(), series_size);
    line("0002 all of the above", String::new(), everything);
    line(
        "0002 points_compact (after compaction)",
        chunks.rows.to_string(),
        chunks,
    );
    line(
        "0002 compacted, with rollups and series",
        String::new(),
        everything_compacted,
    );
    println!();
    println!(
        "0001 ÷ 0002 points: {:.1}×; 0001 ÷ 0002 with rollups and series: {:.1}×",
        telemetry.total as f64 / points.total as f64,
        telemetry.total as f64 / everything.total as f64
    );
    println!(
        "0002 points ÷ points_compact: {:.1}×; 0001 ÷ 0002 compacted with rollups and series: \
         {:.1}×",
        points.total as f64 / chunks.total as f64,
        telemetry.total as f64 / everything_compacted.total as f64
    );
    println!(
        "points_compact ({chunk_partitions} partition{}) data: encoded {:.2} B/pt, as stored \
         {:.2} B/pt ({:.0} points a chunk; attstorage of its partitions' data: {})",
        if chunk_partitions == 1 { "" } else { "s" },
        per_point(data_bytes),
        per_point(stored_bytes),
        chunked as f64 / chunks.rows.max(1) as f64,
        storage.join(", ")
    );
    println!("{VALUES_DESCRIBED}");
    println!(
        "rows in arrival order (correlation of src_offset with the row order, 1.00 = exactly): \
         0001 {:.2}, 0002 {:.2}",
        in_order(&mut wide, "telemetry"),
        points_in_order
    );
    println!(
        "load + VACUUM ANALYZE: 0002 {:.0} s + {:.0} s, 0001 {:.0} s + {:.0} s; \
         compaction + VACUUM ANALYZE: {:.0} s + {:.0} s",
        load_compact_time.as_secs_f64(),
        vacuum_compact_time.as_secs_f64(),
        load_wide_time.as_secs_f64(),
        vacuum_wide_time.as_secs_f64(),
        compaction_time.as_secs_f64(),
        vacuum_chunks_time.as_secs_f64()
    );
}
