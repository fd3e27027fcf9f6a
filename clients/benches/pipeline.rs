//! Whole-pipeline benchmark: generated CSV rows → streamer → broker → collector →
//! PostgreSQL, next to PostgreSQL's own binary COPY of the same rows into the same schema,
//! measured in the same run on the same machine, reported as a ratio (goal ≥ 0.7).
//!
//! `cargo build --release --bins && cargo bench -p clients --bench pipeline`
//! (`BENCH_ROWS`, default 1,000,000; `BENCH_COLLECTORS`, default 1; `BENCH_STREAMERS`,
//! default 1; `BENCH_STREAMER_BATCH`, default 5000; `BENCH_COLLECTOR_BATCH`, default 20000:
//! the `--batch-size` of each; the collector runs its default 2 writers).
//!
//! Also printed: the streamer's rate into the broker, the sink stage alone (a second collector
//! group draining the full topic into another database) and the CPU seconds of each process,
//! so a low ratio can be told apart from a busy machine.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use clients::collector::chunk::{row_of, Chunk};
use clients::collector::sink::copy_rows;
use clients::telemetry::CsvRows;
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

/// The same rows as the collector would write them, prepared up front so that only
/// PostgreSQL's COPY is timed.
fn prepared_rows(csv: &Path) -> Vec<Chunk> {
    let mut rows = CsvRows::open(csv).expect("open csv");
    let mut chunks = Vec::new();
    let mut offset = 0i64;
    loop {
        let mut chunk = Chunk {
            partition: 0,
            epoch: 0,
            expect: offset,
            next: offset,
            log_end: 0,
            rows: Vec::with_capacity(REFERENCE_TX_ROWS),
            dead: Vec::new(),
        };
        while chunk.rows.len() < REFERENCE_TX_ROWS {
            let Some(row) = rows.next_record().expect("read csv") else {
                break;
            };
            let point = row.point(Utc::now()).expect("generated rows are good");
            let json = serde_json::to_string(&point).expect("encode");
            chunk.rows.push(row_of(offset, &json).expect("decode"));
            offset += 1;
        }
        if chunk.rows.is_empty() {
            return chunks;
        }
        chunks.push(chunk);
    }
}

/// Rows per transaction of the reference COPY.
const REFERENCE_TX_ROWS: usize = 50_000;

/// PostgreSQL's own binary COPY of the same rows into a fresh copy of the same schema, in
/// transactions of [`REFERENCE_TX_ROWS`].
fn reference_copy(pg: &Postgres, db: &str, chunks: &[Chunk]) -> Duration {
    pg.create_database(db);
    let mut client = pg.connect_to(db);
    clients::schema::migrate(&mut client).expect("migrate reference");
    client.batch_execute("CHECKPOINT").expect("checkpoint");
    let started = Instant::now();
    let mut copied = 0;
    for chunk in chunks {
        let mut tx = client.transaction().expect("tx");
        copied += copy_rows(&mut tx, &[chunk]).expect("copy");
        tx.commit().expect("commit");
    }
    let elapsed = started.elapsed();
    assert_eq!(
        copied as usize,
        chunks.iter().map(|c| c.rows.len()).sum::<usize>()
    );
    elapsed
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn stored(pg: &Postgres) -> i64 {
    stored_in(pg, "telemetry")
}

fn stored_in(pg: &Postgres, db: &str) -> i64 {
    let Ok(mut c) = postgres::Client::connect(&pg.connection_string_for(db), postgres::NoTls)
    else {
        return -1;
    };
    c.query_one(
        "SELECT COALESCE(sum(next_offset), 0)::bigint FROM consumer_offsets",
        &[],
    )
    .map(|r| r.get(0))
    .unwrap_or(-1)
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
    println!("pipeline bench: {n} rows ({:.0} MiB CSV), {streamers} streamer(s), {collectors} collector(s)", size as f64 / 1048576.0);

    let pg = Postgres::start();
    let prepared = prepared_rows(&csv);
    let ref_before = reference_copy(&pg, "reference_before", &prepared);
    let mut c = pg.connect();
    clients::schema::migrate(&mut c).expect("migrate");
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
    wait_until(Duration::from_secs(900), "every row stored", || {
        if produced_at.is_none() && streamer_children.iter_mut().all(|s| !s.is_running()) {
            produced_at = Some(started.elapsed());
        }
        for (_, pid, seconds) in cpu.iter_mut() {
            *seconds = cpu_seconds(*pid).max(*seconds);
        }
        std::thread::sleep(Duration::from_millis(50));
        stored(&pg) >= n as i64
    });
    let elapsed = started.elapsed();
    let rows: i64 = c
        .query_one("SELECT count(*) FROM telemetry", &[])
        .map(|r| r.get(0))
        .unwrap_or(-1);
    assert_eq!(rows, n as i64, "exactly once");
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
    wait_until(Duration::from_secs(900), "the topic drained", || {
        std::thread::sleep(Duration::from_millis(50));
        stored_in(&pg, "drain") >= n as i64
    });
    let drain_time = drain_started.elapsed();
    drain.scan_for_panics();
    drop(drain);

    // The reference again after the pipeline, on the same (now warmer, busier) machine;
    // the faster of the two runs is the one compared against.
    let ref_after = reference_copy(&pg, "reference_after", &prepared);
    let ref_time = ref_before.min(ref_after);
    let ref_rate = n as f64 / ref_time.as_secs_f64();
    println!(
        "reference: PostgreSQL binary COPY of the same rows ({REFERENCE_TX_ROWS} per transaction): \
         {:.2} s before, {:.2} s after the pipeline; best {ref_rate:.0} rows/s",
        ref_before.as_secs_f64(),
        ref_after.as_secs_f64()
    );
    let rate = n as f64 / elapsed.as_secs_f64();
    if let Some(p) = produced_at {
        println!(
            "streamer(s) done producing after {:.2} s ({:.0} rows/s into the broker)",
            p.as_secs_f64(),
            n as f64 / p.as_secs_f64()
        );
    }
    println!(
        "pipeline: CSV → streamer → broker → collector → PostgreSQL: {:.2} s, {rate:.0} rows/s",
        elapsed.as_secs_f64()
    );
    let drain_rate = n as f64 / drain_time.as_secs_f64();
    println!(
        "sink stage alone: one collector draining the topic into PostgreSQL: {:.2} s, {drain_rate:.0} rows/s (ratio {:.2})",
        drain_time.as_secs_f64(),
        drain_rate / ref_rate
    );
    for (name, _, seconds) in &cpu {
        println!("  cpu {name}: {seconds:.2} s");
    }
    println!(
        "ratio pipeline / PostgreSQL binary COPY: {:.2} (goal ≥ 0.70)",
        rate / ref_rate
    );
    for child in children.iter_mut().chain(streamer_children.iter_mut()) {
        child.scan_for_panics();
    }
}
