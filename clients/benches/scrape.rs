//! One streamer scraping a fleet of fake dcgm-exporters on loopback into a real broker (issue
//! 12): 1,000 targets × 8 GPUs × 20 fields (160 samples a scrape) by default.
//!
//! `cargo bench -p clients --bench scrape` (after `cargo build --release --bins`; `make bench`
//! does both). Two phases, each with a fresh broker and the release `streamer` binary, its
//! targets in a `file_sd` file, its spool on disk (`--spool-dir`, the deployed path):
//!
//! 1. **The interval** (`SCRAPE_BENCH_INTERVAL`, default 15 s, for
//!    `SCRAPE_BENCH_INTERVALS` intervals after one to settle, default 2): does every target
//!    get one scrape per slot of its grid, and how late after the slot's time is the request
//!    (p50, p99, max)? Plus the streamer's missed slots and its CPU time per 1,000 samples.
//! 2. **Capacity**: the same targets every 250 ms (far more than one streamer can do), for
//!    `SCRAPE_BENCH_CAPACITY_SECONDS` (default 15): samples/s scraped and produced (the
//!    broker's log growth) and CPU time per 1,000 samples.
//!
//! References measured in the same run: the fake exporter's serving rate (requests/s and
//! samples/s a plain client gets from it, the ceiling the fleet puts on any scraper) and a bare
//! parse + map + NDJSON encoding of the same text in this process on one thread.
//!
//! CPU time is the streamer process's user + system time from `/proc/<pid>/stat` (what
//! getrusage reports for it), read before and after each window.
//!
//! `SCRAPE_BENCH_PARSE_ONLY=1` runs the bare parse + map + encode reference alone, then the
//! same texts mapped and encoded from their shape caches (each for
//! `SCRAPE_BENCH_PARSE_SECONDS`, default 3), and stops: no fleet, broker or streamer, so the
//! bench binary can be profiled (`perf record -g`) on those paths.
//!
//! The capacity window starts once every target's first scrape has been parsed (its shape
//! built: `streamer_scrape_parsed_total` ≥ the targets) and 3 s more: the steady state, which
//! the line reports with the scrapes parsed inside the window.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker_client::push_record;
use chrono::Utc;
use clients::scrape::{map_exposition, ShapeCache};
use clients::streamer::scrape::pool::{now_ms, slot_at_or_after};
use support::cpu_seconds;
use testkit::{bin_path, free_port, http_get, wait_until, Child};

const GPUS: usize = 8;
/// 20 of dcgm-exporter's default counters, with their types.
const FIELDS: [(&str, &str); 20] = [
    ("DCGM_FI_DEV_SM_CLOCK", "gauge"),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge"),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge"),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge"),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge"),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter"),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter"),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge"),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge"),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge"),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge"),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge"),
    ("DCGM_FI_DEV_FB_FREE", "gauge"),
    ("DCGM_FI_DEV_FB_USED", "gauge"),
    ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter"),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge"),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge"),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge"),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge"),
    ("DCGM_FI_PROF_PCIE_TX_BYTES", "counter"),
];
const SAMPLES_PER_SCRAPE: usize = GPUS * FIELDS.len();

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// What dcgm-exporter serves for node `n`.
fn exposition(n: usize) -> String {
    let mut text = String::new();
    for (f, (field, kind)) in FIELDS.iter().enumerate() {
        text.push_str(&format!("# HELP {field} {field}.\n# TYPE {field} {kind}\n"));
        for gpu in 0..GPUS {
            text.push_str(&format!(
                "{field}{{gpu=\"{gpu}\",UUID=\"GPU-{n:08x}-0000-4000-8000-{gpu:012x}\",\
                 pci_bus_id=\"00000000:{:02X}:00.0\",device=\"nvidia{gpu}\",\
                 modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"node-{n}\",\
                 DCGM_FI_DRIVER_VERSION=\"550.54.15\",container=\"\",namespace=\"\",pod=\"\"}} {}\n",
                gpu * 8 + 7,
                (n * 31 + gpu * 7 + f) % 1000
            ));
        }
    }
    text
}

/// The fake fleet: `/metrics/N` serves node N's text. Records the time of every request.
struct Fleet {
    port: u16,
    served: Arc<Mutex<Vec<(usize, u64)>>>,
    requests: Arc<AtomicU64>,
}

fn serve(targets: usize, threads: usize) -> Fleet {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let bodies: Arc<Vec<String>> = Arc::new((0..targets).map(exposition).collect());
    let served = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(AtomicU64::new(0));
    for _ in 0..threads {
        let listener = listener.try_clone().expect("clone listener");
        let (bodies, served, requests) = (
            Arc::clone(&bodies),
            Arc::clone(&served),
            Arc::clone(&requests),
        );
        std::thread::spawn(move || {
            let mut request = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                request.clear();
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&request);
                let path = line.split_whitespace().nth(1).unwrap_or("/");
                let index: Option<usize> = path
                    .strip_prefix("/metrics/")
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n < bodies.len());
                let Some(index) = index else {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                };
                requests.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut s) = served.lock() {
                    s.push((index, now_ms()));
                }
                let body = &bodies[index];
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_bytes());
            }
        });
    }
    Fleet {
        port,
        served,
        requests,
    }
}

impl Fleet {
    fn url(&self, n: usize) -> String {
        format!("http://127.0.0.1:{}/metrics/{n}", self.port)
    }
}

struct Broker {
    url: String,
    _dir: tempfile::TempDir,
    _child: Child,
}

fn broker() -> Broker {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut cmd = Command::new(bin_path("broker"));
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn");
    let child = Child::spawn("broker", cmd);
    let url = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(30), "broker ready", || {
        matches!(http_get(&format!("{url}/readyz")), Some((200, _)))
    });
    Broker {
        url,
        _dir: dir,
        _child: child,
    }
}

/// Messages in the broker's topic (-1 before it exists).
fn log_end(broker: &Broker) -> i64 {
    let Some((200, body)) = http_get(&format!("{}/v1/topics/telemetry", broker.url)) else {
        return -1;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["partitions"].as_array().map_or(-1, |ps| {
        ps.iter()
            .map(|p| p["log_end_offset"].as_i64().unwrap_or(0))
            .sum()
    })
}

/// A metric of the streamer's `/metrics`, summed over its series.
fn metric_sum(port: u16, name: &str) -> f64 {
    let Some((_, body)) = http_get(&format!("http://127.0.0.1:{port}/metrics")) else {
        return 0.0;
    };
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn streamer(
    broker: &Broker,
    targets_file: &Path,
    spool: &Path,
    interval: &str,
    port: u16,
) -> Child {
    let mut cmd = Command::new(bin_path("streamer"));
    cmd.args(["--broker", &broker.url])
        .arg("--scrape-targets-file")
        .arg(targets_file)
        .args(["--scrape-interval", interval, "--scrape-timeout", "10s"])
        .arg("--spool-dir")
        .arg(spool)
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .env_remove("CSV_PATH")
        .env_remove("STREAMER_SCRAPE")
        .env("RUST_LOG", "warn");
    Child::spawn("streamer", cmd)
}

/// The reference: parse, map and encode the fleet's texts on this thread; samples/s.
fn bare_parse_rate(targets: usize, seconds: u64) -> f64 {
    let texts: Vec<String> = (0..targets.min(100)).map(exposition).collect();
    let started = Instant::now();
    let mut samples = 0usize;
    let mut bytes = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        for (n, text) in texts.iter().enumerate() {
            let mapped = map_exposition(text, Utc::now(), &format!("node-{n}"));
            let mut body = Vec::with_capacity(mapped.points.len() * 600);
            for p in &mapped.points {
                push_record(&mut body, &p.gpu_uuid, p).expect("encode");
            }
            samples += mapped.points.len();
            bytes += body.len();
        }
    }
    std::hint::black_box(bytes);
    samples as f64 / started.elapsed().as_secs_f64()
}

/// The same texts through each target's shape cache (warmed by one parse each): samples/s on
/// this thread for map + encode without the parser.
fn shape_rate(targets: usize, seconds: u64) -> f64 {
    let texts: Vec<String> = (0..targets.min(100)).map(exposition).collect();
    let hosts: Vec<String> = (0..texts.len()).map(|n| format!("node-{n}")).collect();
    let mut caches: Vec<ShapeCache> = texts.iter().map(|_| ShapeCache::default()).collect();
    let mut body = Vec::new();
    for ((cache, text), host) in caches.iter_mut().zip(&texts).zip(&hosts) {
        cache
            .encode(text, Utc::now(), host, &mut body)
            .expect("encode");
        body.clear();
    }
    let started = Instant::now();
    let mut samples = 0usize;
    let mut bytes = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        for ((cache, text), host) in caches.iter_mut().zip(&texts).zip(&hosts) {
            let encoded = cache
                .encode(text, Utc::now(), host, &mut body)
                .expect("encode");
            assert!(encoded.cached, "the shape serves the same text");
            samples += encoded.points;
            bytes += body.len();
            body.clear();
        }
    }
    std::hint::black_box(bytes);
    samples as f64 / started.elapsed().as_secs_f64()
}

/// The reference: how fast a plain client on 8 threads gets scrapes from the fleet.
fn serving_rate(fleet: &Fleet, targets: usize) -> f64 {
    let started = Instant::now();
    let done = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let done = &done;
            s.spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                let mut n = t;
                while started.elapsed() < Duration::from_secs(3) {
                    if let Ok(r) = agent.get(&fleet.url(n % targets)).call() {
                        let _ = r.into_string();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 8;
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let targets = env_or("SCRAPE_BENCH_TARGETS", 1000) as usize;
    let interval_s = env_or("SCRAPE_BENCH_INTERVAL", 15);
    let intervals = env_or("SCRAPE_BENCH_INTERVALS", 2);
    let capacity_s = env_or("SCRAPE_BENCH_CAPACITY_SECONDS", 15);
    println!(
        "scrape bench: {targets} targets x {GPUS} GPUs x {} fields = {} samples a round",
        FIELDS.len(),
        targets * SAMPLES_PER_SCRAPE
    );
    if std::env::var_os("SCRAPE_BENCH_PARSE_ONLY").is_some() {
        let seconds = env_or("SCRAPE_BENCH_PARSE_SECONDS", 3);
        println!(
            "bare parse+map+encode on 1 thread: {:.0} samples/s; map+encode from the shape cache: {:.0} samples/s",
            bare_parse_rate(targets, seconds),
            shape_rate(targets, seconds)
        );
        return;
    }
    let fleet = serve(targets, 8);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("targets.json");
    // One group per target: file_sd's __metrics_path__ sets each target's path.
    let host = format!("127.0.0.1:{}", fleet.port);
    let groups: Vec<serde_json::Value> = (0..targets)
        .map(|n| {
            serde_json::json!({"targets": [host], "labels": {"__metrics_path__": format!("/metrics/{n}")}})
        })
        .collect();
    std::fs::write(&file, serde_json::to_vec(&groups).expect("json")).expect("write targets");

    let parse_rate = bare_parse_rate(targets, 3);
    let cached_rate = shape_rate(targets, 3);
    let serve_rate = serving_rate(&fleet, targets);
    println!(
        "reference: bare parse+map+encode on 1 thread: {parse_rate:.0} samples/s (from the shape cache: \
         {cached_rate:.0}); \
         the fake fleet serves {serve_rate:.0} scrapes/s to 8 plain clients ({:.0} samples/s)",
        serve_rate * SAMPLES_PER_SCRAPE as f64
    );

    // Phase 1: the interval.
    let interval_ms = interval_s * 1000;
    {
        let broker = broker();
        let spool = dir.path().join("spool-1");
        let port = free_port();
        let mut child = streamer(&broker, &file, &spool, &format!("{interval_s}s"), port);
        let pid = child.pid();
        // Settle: one whole interval (every target scraped once), then measure.
        std::thread::sleep(Duration::from_millis(interval_ms + 2000));
        let (cpu0, end0, missed0) = (
            cpu_seconds(pid),
            log_end(&broker),
            metric_sum(port, "streamer_scrape_missed_total"),
        );
        let from = now_ms();
        std::thread::sleep(Duration::from_millis(interval_ms * intervals));
        let to = now_ms();
        // What was scraped in the window has reached the broker shortly after.
        std::thread::sleep(Duration::from_secs(2));
        let (cpu1, end1, missed1) = (
            cpu_seconds(pid),
            log_end(&broker),
            metric_sum(port, "streamer_scrape_missed_total"),
        );
        let served: Vec<(usize, u64)> = fleet
            .served
            .lock()
            .map(|s| {
                s.iter()
                    .copied()
                    .filter(|(_, t)| (from..to).contains(t))
                    .collect()
            })
            .unwrap_or_default();
        let mut per_target: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        let mut late: Vec<u64> = Vec::with_capacity(served.len());
        for (n, at) in &served {
            let url = fleet.url(*n);
            let slot = slot_at_or_after(&url, interval_ms, at + 1 - interval_ms);
            late.push(at - slot);
            per_target.entry(*n).or_default().push(slot);
        }
        late.sort_unstable();
        let expected = targets as u64 * intervals;
        let once_per_slot = per_target.values().all(|slots| {
            let mut s = slots.clone();
            s.dedup();
            s.len() == slots.len()
        });
        let scraped = served.len() as u64;
        let samples = (end1 - end0).max(0) as f64;
        println!(
            "interval {interval_s}s over {intervals} intervals: {scraped} scrapes of {expected} slots \
             ({} targets scraped, each slot at most once: {once_per_slot}), {} slots missed; \
             request after its slot's time: p50 {} ms, p99 {} ms, max {} ms; keeps the interval: {}",
            per_target.len(),
            missed1 - missed0,
            percentile(&late, 0.5),
            percentile(&late, 0.99),
            late.last().copied().unwrap_or(0),
            scraped + (targets as u64) >= expected
                && per_target.len() == targets
                && missed1 == missed0
                && late.last().copied().unwrap_or(0) < interval_ms
        );
        println!(
            "  produced {samples:.0} samples ({:.0}/s), streamer CPU {:.2} s = {:.3} ms per 1,000 samples",
            samples / ((to - from) as f64 / 1000.0),
            cpu1 - cpu0,
            (cpu1 - cpu0) * 1000.0 / samples.max(1.0) * 1000.0
        );
        child.terminate(Duration::from_secs(30));
    }

    // Phase 2: capacity.
    {
        let broker = broker();
        let spool = dir.path().join("spool-2");
        let port = free_port();
        let mut child = streamer(&broker, &file, &spool, "250ms", port);
        let pid = child.pid();
        wait_until(
            Duration::from_secs(60),
            "the first scrapes produced",
            || log_end(&broker) > 0,
        );
        // Steady state: every target's text parsed once (its shape built), then 3 s more.
        wait_until(
            Duration::from_secs(120),
            "every target's first scrape parsed",
            || metric_sum(port, "streamer_scrape_parsed_total") >= targets as f64,
        );
        std::thread::sleep(Duration::from_secs(3));
        let (cpu0, end0, req0, parsed0, t0) = (
            cpu_seconds(pid),
            log_end(&broker),
            fleet.requests.load(Ordering::Relaxed),
            metric_sum(port, "streamer_scrape_parsed_total"),
            Instant::now(),
        );
        std::thread::sleep(Duration::from_secs(capacity_s));
        let (cpu1, end1, req1, parsed1, took) = (
            cpu_seconds(pid),
            log_end(&broker),
            fleet.requests.load(Ordering::Relaxed),
            metric_sum(port, "streamer_scrape_parsed_total"),
            t0.elapsed().as_secs_f64(),
        );
        let produced = (end1 - end0).max(0) as f64;
        let scraped = (req1 - req0) as f64 * SAMPLES_PER_SCRAPE as f64;
        let spooled = metric_sum(port, "streamer_scrape_spool_entries");
        println!(
            "capacity (every target every 250 ms, {capacity_s} s): scraped {:.0} samples/s, \
             produced {:.0} samples/s ({:.2}x the bare parse, goal 200,000/s: {}), \
             {spooled:.0} scrapes waiting in the spool at the end, {:.0} of {:.0} scrapes parsed (the others served by \
             their target's shape); streamer CPU {:.2} s = {:.3} ms per 1,000 samples",
            scraped / took,
            produced / took,
            produced / took / parse_rate,
            if produced / took >= 200_000.0 { "met" } else { "not met" },
            parsed1 - parsed0,
            (req1 - req0) as f64,
            cpu1 - cpu0,
            (cpu1 - cpu0) * 1000.0 / produced.max(1.0) * 1000.0
        );
        child.terminate(Duration::from_secs(30));
    }
}
