//! Whole-pipeline benchmark: generated CSV rows → streamer → broker → collector →
//! PostgreSQL, next to PostgreSQL's own work on the very same points, all measured in the
//! same run on the same machine and reported as ratios:
//!
//! - binary COPY into the compact schema's `points` (`store::write::copy_points`, series ids
//!   resolved beforehand by `Writer::prepare`): the ceiling the pipeline is held to
//!   (bar ≥ 0.7×, goal ≥ 0.9×);
//! - binary COPY of the same points as wide rows into a database built by migration 0001
//!   only: the ceiling the compact schema replaced (the narrower row should raise it);
//! - the store's whole write transaction (`Writer::write`: COPY, rollup merges, GPUs, day
//!   totals) in the same transactions, series resolved beforehand: what the collector asks
//!   of PostgreSQL, without the broker and the offsets — it tells a slow store from a slow
//!   pipeline. Its rollup merges cost one upsert per (series, bucket) a transaction touches:
//!   here each 50,000-point transaction holds 5 points of each of the 10,000 series;
//! - the same two (`Writer::write` and `copy_points` alone) in the shape of real ingest, a
//!   point per series per scrape: the generated CSV's 10,000 series × 100 ticks 15 s apart,
//!   each transaction one point of each series it holds (one tick of all series, or a slice
//!   of one). There every point is an upsert of its own into each rollup (a minute's 4
//!   ticks arrive in 4 transactions), as in real ingest.
//!
//! Each reference runs before and after the pipeline (the machine warms up and fills); the
//! faster run counts. Also printed: the streamer's rate into the broker, the sink stage alone
//! (a second collector group draining the full topic into another database) and the CPU
//! seconds of each process and of the PostgreSQL backends serving the collectors, so a low
//! ratio can be told apart from a busy machine.
//!
//! `cargo build --release --bins && cargo bench -p clients --bench pipeline`
//! (`BENCH_ROWS`, default 1,000,000; `BENCH_COLLECTORS`, default 1; `BENCH_STREAMERS`,
//! default 1; `BENCH_STREAMER_BATCH`, default 5000; `BENCH_COLLECTOR_BATCH`, default 20000:
//! the `--batch-size` of each; the collector runs its default 2 writers. The
//! one-point-per-series references: `BENCH_SERIES`, default and at most 10,000;
//! `BENCH_TICKS`, default 100; `BENCH_TICK_BATCH`, points per transaction, default and at
//! most `BENCH_SERIES`).

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use clients::telemetry::CsvRows;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{Json, Type};
use postgres::{Client, Transaction};
use serde_json::value::RawValue;
use store::write::{copy_points, Record, Window, Writer};
use support::cpu_seconds;
use testkit::{bin_path, free_port, http_get, wait_until, Child, Postgres};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const METRICS: [&str; 10] = [
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
];

/// Rows shaped like the sample export (same columns, the same nine labels): 125 hosts × 8 GPUs.
fn generate_csv(path: &Path, rows: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create csv"));
    writeln!(out, "timestamp,metric_name,gpu_id,device,uuid,modelName,Hostname,container,pod,namespace,value,labels_raw").unwrap();
    for i in 0..rows {
        let gpu = i % 8;
        let host = (i / 8) % 125;
        let metric = METRICS[(i / 1000) % METRICS.len()];
        let uuid = format!("GPU-{host:08x}-86f3-7a43-b711-{gpu:012x}");
        let hostname = format!("mtv5-dgx1-hgpu-{host:03}");
        writeln!(
            out,
            "\"2025-07-18T20:42:34Z\",\"{metric}\",\"{gpu}\",\"nvidia{gpu}\",\"{uuid}\",\"NVIDIA H100 80GB HBM3\",\"{hostname}\",\"\",\"\",\"\",\"{v}\",\"DCGM_FI_DRIVER_VERSION=\"\"535.129.03\"\",Hostname=\"\"{hostname}\"\",UUID=\"\"{uuid}\"\",__name__=\"\"{metric}\"\",device=\"\"nvidia{gpu}\"\",gpu=\"\"{gpu}\"\",instance=\"\"{hostname}:9400\"\",job=\"\"dgx_dcgm_exporter\"\",modelName=\"\"NVIDIA H100 80GB HBM3\"\"\"",
            v = i % 100
        )
        .unwrap();
    }
}

/// Points per transaction of the references (the collector's default batch is smaller).
const REFERENCE_TX_POINTS: usize = 50_000;

/// Distinct series of [`generate_csv`]'s rows: 1,000 GPUs × 10 metrics, row i and row
/// i + 10,000 are the same series.
const CSV_SERIES: usize = 10_000;

/// Seconds between two ticks of the one-point-per-series references (a scrape interval).
const TICK_SECONDS: i64 = 15;

/// The same points as the collector would decode them, in batches of
/// [`REFERENCE_TX_POINTS`], prepared up front so that only PostgreSQL's work is timed.
fn records_of(csv: &Path) -> Vec<Vec<Record>> {
    let mut rows = CsvRows::open(csv).expect("open csv");
    let mut batches = Vec::new();
    let mut batch = Vec::with_capacity(REFERENCE_TX_POINTS);
    let mut offset = 0i64;
    let taken = Utc::now();
    while let Some(row) = rows.next_record().expect("read csv") {
        let point = row.point(taken).expect("generated rows are good");
        batch.push(Record {
            partition: 0,
            offset,
            point: point.into_owned(),
        });
        offset += 1;
        if batch.len() == REFERENCE_TX_POINTS {
            batches.push(std::mem::replace(
                &mut batch,
                Vec::with_capacity(REFERENCE_TX_POINTS),
            ));
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// The realistic ingest shape: the first `series` series of [`generate_csv`], one point of
/// each per tick, `ticks` ticks [`TICK_SECONDS`] apart ending now, in batches of `batch`
/// points taken in arrival order (tick by tick). With `batch` ≤ `series` no batch holds two
/// points of a series. Values move by a step a tick (the rollups' min/max/last change).
fn one_point_per_series(dir: &Path, series: usize, ticks: usize, batch: usize) -> Vec<Vec<Record>> {
    assert!(
        (1..=CSV_SERIES).contains(&series),
        "BENCH_SERIES must be 1..={CSV_SERIES} (the generated CSV's distinct series)"
    );
    assert!(
        (1..=series).contains(&batch),
        "BENCH_TICK_BATCH must be 1..=BENCH_SERIES, so a batch holds a point per series at most"
    );
    let csv = dir.join("series.csv");
    generate_csv(&csv, series);
    let mut rows = CsvRows::open(&csv).expect("open series csv");
    let first = Utc::now() - chrono::Duration::seconds(ticks as i64 * TICK_SECONDS);
    let mut templates = Vec::with_capacity(series);
    while let Some(row) = rows.next_record().expect("read series csv") {
        templates.push(
            row.point(first)
                .expect("generated rows are good")
                .into_owned(),
        );
    }
    let mut batches = Vec::with_capacity((series * ticks).div_ceil(batch));
    let mut current = Vec::with_capacity(batch);
    let mut offset = 0i64;
    for tick in 0..ticks {
        let ts = first + chrono::Duration::seconds(tick as i64 * TICK_SECONDS);
        for template in &templates {
            let mut point = template.clone();
            point.ts = ts;
            point.source_ts = Some(ts);
            point.value = (template.value + tick as f64) % 100.0;
            current.push(Record {
                partition: 0,
                offset,
                point,
            });
            offset += 1;
            if current.len() == batch {
                batches.push(std::mem::replace(&mut current, Vec::with_capacity(batch)));
            }
        }
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Runs `write` once per batch, each in its own transaction, and returns the time taken by
/// all of them and the points they reported written.
fn timed_transactions<B>(
    client: &mut Client,
    batches: &[B],
    mut write: impl FnMut(&mut Transaction<'_>, &B) -> u64,
) -> (Duration, u64) {
    let started = Instant::now();
    let mut written = 0;
    for batch in batches {
        let mut tx = client.transaction().expect("begin");
        written += write(&mut tx, batch);
        tx.commit().expect("commit");
    }
    (started.elapsed(), written)
}

/// A fresh database in the compact schema with every batch's series resolved and partitions
/// created by `Writer::prepare`, as the collector does before its transaction (untimed),
/// each batch paired with its series ids.
fn prepared_compact<'r>(
    pg: &Postgres,
    db: &str,
    batches: &'r [Vec<Record>],
) -> (Client, Writer, Vec<Vec<(i32, &'r Record)>>) {
    pg.create_database(db);
    let mut client = pg.connect_to(db);
    store::schema::migrate(&mut client).expect("migrate");
    let writer = Writer::new(Window::default());
    let rows = batches
        .iter()
        .map(|batch| {
            let records: Vec<&Record> = batch.iter().collect();
            let prepared = writer.prepare(&mut client, &records).expect("prepare");
            assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
            prepared.rows(&records, |_| true)
        })
        .collect();
    client.batch_execute("CHECKPOINT").expect("checkpoint");
    (client, writer, rows)
}

/// PostgreSQL's own binary COPY of the points into `points`, the collector's statement
/// (`store::write::copy_points`) alone: the ceiling of the compact schema.
fn copy_into_compact(pg: &Postgres, db: &str, batches: &[Vec<Record>]) -> Duration {
    let (mut client, _, rows) = prepared_compact(pg, db, batches);
    let (elapsed, written) = timed_transactions(&mut client, &rows, |tx, rows| {
        copy_points(tx, rows).expect("copy points")
    });
    assert_eq!(written as usize, points_in(batches));
    elapsed
}

/// The store's whole write transaction (`Writer::write`: COPY, rollup merges, GPUs, day
/// totals) with the series already resolved, in the transactions of [`copy_into_compact`]:
/// what the rest of the collector's PostgreSQL work adds to the COPY.
fn store_write(pg: &Postgres, db: &str, batches: &[Vec<Record>]) -> Duration {
    let (mut client, writer, rows) = prepared_compact(pg, db, batches);
    let (elapsed, written) = timed_transactions(&mut client, &rows, |tx, rows| {
        writer.write(tx, rows).expect("write")
    });
    assert_eq!(written as usize, points_in(batches));
    elapsed
}

/// The columns of a 0001 `telemetry` row (0001_init.sql), in COPY order.
const WIDE_COPY_SQL: &str = "COPY telemetry (gpu_uuid, ts, metric, value, source_ts, hostname, \
     container, pod, namespace, labels, src_partition, src_offset) FROM STDIN (FORMAT binary)";
const WIDE_COPY_TYPES: [Type; 12] = [
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::FLOAT8,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::INT4,
    Type::INT8,
];

/// PostgreSQL's own binary COPY of the same points as wide rows into a database built by
/// migration 0001 only: the ceiling the compact schema replaces. The labels are encoded to
/// JSON before the clock starts, as the 0001 collector received them.
fn copy_into_0001(pg: &Postgres, db: &str, batches: &[Vec<Record>]) -> Duration {
    pg.create_database(db);
    let mut client = pg.connect_to(db);
    store::schema::migrate_to(&mut client, 1).expect("migrate to 0001");
    let wide: Vec<Vec<(&Record, Box<RawValue>)>> = batches
        .iter()
        .map(|batch| {
            batch
                .iter()
                .map(|r| {
                    let labels = RawValue::from_string(r.point.labels.to_json()).expect("json");
                    (r, labels)
                })
                .collect()
        })
        .collect();
    client.batch_execute("CHECKPOINT").expect("checkpoint");
    let (elapsed, written) = timed_transactions(&mut client, &wide, |tx, rows| {
        let copy = tx.copy_in(WIDE_COPY_SQL).expect("copy in");
        let mut writer = BinaryCopyInWriter::new(copy, &WIDE_COPY_TYPES);
        for (r, labels) in rows {
            let p = &r.point;
            let partition = r.partition as i32;
            writer
                .write(&[
                    &p.gpu_uuid,
                    &p.ts,
                    &p.metric,
                    &p.value,
                    &p.source_ts,
                    &p.hostname,
                    &p.container,
                    &p.pod,
                    &p.namespace,
                    &Json(labels.as_ref()),
                    &partition,
                    &r.offset,
                ])
                .expect("copy row");
        }
        writer.finish().expect("finish copy")
    });
    assert_eq!(written as usize, points_in(batches));
    elapsed
}

fn points_in(batches: &[Vec<Record>]) -> usize {
    batches.iter().map(Vec::len).sum()
}

/// Points the collectors have committed to `client`'s database (their offsets: cheap to
/// poll); -1 before the collector has created the table.
fn stored(client: &mut Client) -> i64 {
    client
        .query_one(
            "SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets",
            &[],
        )
        .map(|r| r.get(0))
        .unwrap_or(-1)
}

/// The PostgreSQL backends serving `client`'s database, but `client`'s own.
fn backend_pids(client: &mut Client) -> Vec<u32> {
    client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
             AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[],
        )
        .map(|rows| rows.iter().map(|r| r.get::<_, i32>(0) as u32).collect())
        .unwrap_or_default()
}

/// Each reference, timed once before and once after the pipeline, on its batches.
struct Reference<'b> {
    what: &'static str,
    run: fn(&Postgres, &str, &[Vec<Record>]) -> Duration,
    batches: &'b [Vec<Record>],
    before: Duration,
    after: Duration,
}

impl<'b> Reference<'b> {
    fn new(
        what: &'static str,
        run: fn(&Postgres, &str, &[Vec<Record>]) -> Duration,
        batches: &'b [Vec<Record>],
    ) -> Self {
        Reference {
            what,
            run,
            batches,
            before: Duration::ZERO,
            after: Duration::ZERO,
        }
    }

    /// Runs the reference into a database of its own, then drops it (the next one then
    /// finds the same free memory and disk).
    fn measure(&self, pg: &Postgres, db: &str) -> Duration {
        let elapsed = (self.run)(pg, db, self.batches);
        pg.connect_to("postgres")
            .batch_execute(&format!("DROP DATABASE \"{db}\" WITH (FORCE)"))
            .expect("drop the reference database");
        elapsed
    }

    fn best(&self) -> Duration {
        self.before.min(self.after)
    }

    /// Points per second of the faster run.
    fn rate(&self) -> f64 {
        points_in(self.batches) as f64 / self.best().as_secs_f64()
    }
}

fn main() {
    let n = env_or("BENCH_ROWS", 1_000_000);
    let collectors = env_or("BENCH_COLLECTORS", 1);
    let streamers = env_or("BENCH_STREAMERS", 1);
    let streamer_batch = env_or("BENCH_STREAMER_BATCH", 5000).to_string();
    let collector_batch = env_or("BENCH_COLLECTOR_BATCH", 20000).to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bench.csv");
    generate_csv(&csv, n);
    let size = std::fs::metadata(&csv).map(|m| m.len()).unwrap_or(0);
    println!(
        "pipeline bench: {n} points ({:.0} MiB CSV), {streamers} streamer(s), {collectors} collector(s)",
        size as f64 / 1048576.0
    );

    let series = env_or("BENCH_SERIES", CSV_SERIES);
    let ticks = env_or("BENCH_TICKS", 100);
    let tick_batch = env_or("BENCH_TICK_BATCH", series);

    let pg = Postgres::start();
    let batches = records_of(&csv);
    let per_series = one_point_per_series(dir.path(), series, ticks, tick_batch);
    let mut references = [
        Reference::new("COPY into 0002 points", copy_into_compact, &batches),
        Reference::new("COPY into 0001 telemetry", copy_into_0001, &batches),
        Reference::new("Writer::write into 0002", store_write, &batches),
        Reference::new(
            "COPY into 0002 points, 1 pt/series/tx",
            copy_into_compact,
            &per_series,
        ),
        Reference::new(
            "Writer::write into 0002, 1 pt/series/tx",
            store_write,
            &per_series,
        ),
    ];
    for (i, r) in references.iter_mut().enumerate() {
        r.before = r.measure(&pg, &format!("reference_{i}_before"));
    }
    let mut c = pg.connect();
    store::schema::migrate(&mut c).expect("migrate");
    c.batch_execute("CHECKPOINT").expect("checkpoint");

    let port = free_port();
    let data = dir.path().join("broker");
    let mut broker_cmd = Command::new(bin_path("broker"));
    broker_cmd
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data);
    let broker = Child::spawn("broker", broker_cmd);
    let url = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(20), "broker ready", || {
        matches!(http_get(&format!("{url}/readyz")), Some((200, _)))
    });

    let started = Instant::now();
    let mut children = vec![broker];
    for _ in 0..collectors {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_collector"));
        cmd.args([
            "--broker",
            &url,
            "--batch-size",
            &collector_batch,
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .env("DATABASE_URL", pg.url())
        .env("RUST_LOG", "warn");
        children.push(Child::spawn("collector", cmd));
    }
    let mut streamer_children = Vec::new();
    for _ in 0..streamers {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamer"));
        cmd.args([
            "--broker",
            &url,
            "--batch-size",
            &streamer_batch,
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--csv")
        .arg(&csv)
        .env("RUST_LOG", "warn");
        streamer_children.push(Child::spawn("streamer", cmd));
    }
    let mut produced_at = None;
    let mut cpu: Vec<(String, u32, f64)> = children
        .iter()
        .map(|c| ("broker/collector", c.pid()))
        .chain(streamer_children.iter().map(|c| ("streamer", c.pid())))
        .map(|(name, pid)| (name.to_string(), pid, 0.0))
        .collect();
    cpu[0].0 = "broker".into();
    for c in cpu.iter_mut().skip(1).take(collectors) {
        c.0 = "collector".into();
    }
    // CPU seconds of each PostgreSQL backend serving the collectors.
    let mut backends: HashMap<u32, f64> = HashMap::new();
    let mut poll = pg.connect();
    wait_until(Duration::from_secs(900), "every point stored", || {
        if produced_at.is_none() && streamer_children.iter_mut().all(|s| !s.is_running()) {
            produced_at = Some(started.elapsed());
        }
        for (_, pid, seconds) in cpu.iter_mut() {
            *seconds = cpu_seconds(*pid).max(*seconds);
        }
        for pid in backend_pids(&mut poll) {
            let seconds = backends.entry(pid).or_default();
            *seconds = cpu_seconds(pid).max(*seconds);
        }
        std::thread::sleep(Duration::from_millis(50));
        stored(&mut poll) >= n as i64
    });
    cpu.push((
        "postgres (the collectors' connections)".into(),
        0,
        backends.values().sum(),
    ));
    let elapsed = started.elapsed();
    let points: i64 = c
        .query_one("SELECT count(*) FROM points", &[])
        .map(|r| r.get(0))
        .unwrap_or(-1);
    assert_eq!(points, n as i64, "exactly once");
    // The sink stage alone: a fresh collector group drains the same topic, already in the
    // broker, into another database (the streamer is done, so it has the machine's CPUs).
    pg.create_database("drain");
    let drain_url = format!("postgres://postgres:postgres@127.0.0.1:{}/drain", pg.port());
    let drain_started = Instant::now();
    let mut drain_cmd = Command::new(env!("CARGO_BIN_EXE_collector"));
    drain_cmd
        .args([
            "--broker",
            &url,
            "--group",
            "drain",
            "--batch-size",
            &collector_batch,
        ])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &drain_url)
        .env("RUST_LOG", "warn");
    let drain = Child::spawn("collector", drain_cmd);
    let mut poll_drain = pg.connect_to("drain");
    wait_until(Duration::from_secs(900), "the topic drained", || {
        std::thread::sleep(Duration::from_millis(50));
        stored(&mut poll_drain) >= n as i64
    });
    let drain_time = drain_started.elapsed();
    drain.scan_for_panics();
    drop(drain);

    // The references again after the pipeline, on the same (now warmer, fuller) machine.
    for (i, r) in references.iter_mut().enumerate() {
        r.after = r.measure(&pg, &format!("reference_{i}_after"));
    }

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let pipeline = rate(elapsed);
    println!();
    println!(
        "{:<52} {:>14} {:>10} {:>11} {:>11}",
        "points through", "s before/after", "best s", "points/s", "pipeline ÷"
    );
    for r in &references {
        let runs = format!("{:.2}/{:.2}", r.before.as_secs_f64(), r.after.as_secs_f64());
        println!(
            "{:<52} {runs:>14} {:>10.2} {:>11.0} {:>10.2}×",
            format!("PostgreSQL {}", r.what),
            r.best().as_secs_f64(),
            r.rate(),
            pipeline / r.rate()
        );
    }
    if let Some(p) = produced_at {
        println!(
            "{:<52} {:>14} {:>10.2} {:>11.0}",
            "streamer(s) into the broker",
            "",
            p.as_secs_f64(),
            rate(p)
        );
    }
    println!(
        "{:<52} {:>14} {:>10.2} {:>11.0}",
        "sink stage alone (one collector draining the topic)",
        "",
        drain_time.as_secs_f64(),
        rate(drain_time)
    );
    println!(
        "{:<52} {:>14} {:>10.2} {:>11.0} {:>10.2}×",
        "pipeline CSV → streamer → broker → collector → PG",
        "",
        elapsed.as_secs_f64(),
        pipeline,
        1.0
    );
    println!();
    let [compact, wide, store_write, tick_copy, tick_write] = &references;
    println!(
        "pipeline ÷ COPY into 0002 points: {:.2}× (bar ≥ 0.70×, goal ≥ 0.90×); \
         sink stage alone ÷ the same: {:.2}×",
        pipeline / compact.rate(),
        rate(drain_time) / compact.rate()
    );
    println!(
        "COPY into 0002 points ÷ COPY into 0001 telemetry: {:.2}× (the narrower row's ceiling); \
         Writer::write ÷ COPY into 0002: {:.2}×",
        compact.rate() / wide.rate(),
        store_write.rate() / compact.rate()
    );
    println!(
        "one point per series per transaction ({} series × {ticks} ticks {TICK_SECONDS} s apart \
         = {} points, {tick_batch}-point transactions): Writer::write ÷ COPY into 0002: {:.2}× \
         (with 5 points per series, {REFERENCE_TX_POINTS}-point transactions: {:.2}×)",
        series,
        points_in(&per_series),
        tick_write.rate() / tick_copy.rate(),
        store_write.rate() / compact.rate()
    );
    for (name, _, seconds) in &cpu {
        println!("  cpu {name}: {seconds:.2} s");
    }
    for child in children.iter_mut().chain(streamer_children.iter_mut()) {
        child.scan_for_panics();
    }
}
