//! The broker's HTTP load benchmark (`cargo bench -p broker --bench http`).
//!
//! A load generator produces ~400-byte telemetry messages in batches of 1,000 over several
//! keep-alive connections (a raw HTTP/1.1 client on std `TcpStream`, so the client costs
//! little of the shared CPU), then consumes them all back. It prints messages/s, MB/s and
//! produce latency p50/p99 for:
//!
//! - binary batches, `--fsync interval`;
//! - NDJSON, `--fsync interval`;
//! - NDJSON, `--fsync always` with 64 concurrent producers (group commit);
//!
//! next to two references measured in the same run on the same machine, as ratios: a bare
//! hyper server receiving the same request bodies over the same client, and a plain
//! sequential file write of the same bytes.
//!
//! Sizes can be scaled with `BENCH_SCALE` (default 1.0); `BENCH_DIR` picks the data directory;
//! `BENCH_ONLY=binary,ndjson,always` runs only the named broker modes (references always run).

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::{encode_batch, telemetry, Conn};

mod support;

const MESSAGES_PER_BATCH: usize = 1000;
const PARTITIONS: u32 = 8;
const CONNECTIONS: usize = 4;

fn main() {
    let scale: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let batches = |n: f64| ((n * scale) as usize).max(CONNECTIONS);
    let root = std::env::var("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let workload = Workload::new();
    println!(
        "broker HTTP bench: {} B/message, {MESSAGES_PER_BATCH} messages/batch ({} KiB binary, {} KiB NDJSON), {PARTITIONS} partitions",
        workload.value_len,
        workload.binary[0].len() / 1024,
        workload.ndjson[0].len() / 1024
    );

    let file = plain_file_write(&root, &workload.binary[0], batches(2000.0));
    println!(
        "reference  plain sequential file write: {:>8.0} MB/s (page cache, same bytes)",
        file
    );
    let hyper_binary = bare_hyper(&workload.binary, batches(5000.0));
    hyper_binary.print("reference  bare hyper, binary bodies ");
    let hyper_ndjson = bare_hyper(&workload.ndjson, batches(2000.0));
    hyper_ndjson.print("reference  bare hyper, NDJSON bodies ");

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    if wanted("binary") {
        let binary = broker_run(&root, &workload, Mode::Binary, batches(5000.0));
        binary.print(&hyper_binary, file);
    }
    if wanted("ndjson") {
        let ndjson = broker_run(&root, &workload, Mode::Ndjson, batches(2000.0));
        ndjson.print(&hyper_ndjson, file);
    }
    if wanted("always") {
        let always = broker_run(&root, &workload, Mode::Always64, batches(1280.0));
        always.print(&hyper_ndjson, file);
    }

    println!("goals (2 cores): binary >= 1,000,000 msg/s, NDJSON >= 400,000 msg/s, always+64 >= 100,000 msg/s");
}

/// Pre-built request bodies: a few distinct batches per content type, per partition.
struct Workload {
    value_len: usize,
    /// One binary batch per partition (the partition goes in the query string).
    binary: Vec<Vec<u8>>,
    /// One NDJSON body per partition, each line pinned to that partition.
    ndjson: Vec<Vec<u8>>,
}

impl Workload {
    fn new() -> Workload {
        let values: Vec<(String, String)> =
            (0..MESSAGES_PER_BATCH).map(|i| telemetry(i, "")).collect();
        let value_len = values.iter().map(|(_, v)| v.len()).sum::<usize>() / values.len();
        let binary = (0..PARTITIONS).map(|_| encode_batch(&values)).collect();
        let ndjson = (0..PARTITIONS)
            .map(|p| {
                let mut body = Vec::new();
                for (k, v) in &values {
                    body.extend_from_slice(
                        format!("{{\"partition\":{p},\"key\":\"{k}\",\"value\":{v}}}\n").as_bytes(),
                    );
                }
                body
            })
            .collect();
        Workload {
            value_len,
            binary,
            ndjson,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Binary,
    Ndjson,
    Always64,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Binary => "binary, --fsync interval, 4 conns      ",
            Mode::Ndjson => "NDJSON, --fsync interval, 4 conns      ",
            Mode::Always64 => "NDJSON, --fsync always, 64 producers   ",
        }
    }
}

/// Throughput and latency of one produce phase.
struct Produced {
    messages: usize,
    bytes: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Produced {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
    fn mbps(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6
    }
    fn percentile(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        l.get(((l.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    }
    fn print(&self, label: &str) {
        println!(
            "{label}: {:>10.0} msg/s {:>7.0} MB/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
            self.rate(),
            self.mbps(),
            ms(self.percentile(0.5)),
            ms(self.percentile(0.99))
        );
    }
}

struct BrokerResult {
    mode: Mode,
    produced: Produced,
    consumed: usize,
    consume_elapsed: Duration,
    consume_bytes: usize,
    /// Log syncs the broker made during the run.
    fsyncs: f64,
}

impl BrokerResult {
    fn print(&self, hyper: &Produced, file_mbps: f64) {
        let consume_rate = self.consumed as f64 / self.consume_elapsed.as_secs_f64();
        println!(
            "broker     {} produce {:>10.0} msg/s {:>7.0} MB/s  p50 {:>6.2} ms  p99 {:>6.2} ms | {:.2}x bare hyper, {:.2}x file write",
            self.mode.name(),
            self.produced.rate(),
            self.produced.mbps(),
            ms(self.produced.percentile(0.5)),
            ms(self.produced.percentile(0.99)),
            self.produced.rate() / hyper.rate(),
            self.produced.mbps() / file_mbps,
        );
        println!(
            "broker     {} produced and consumed (concurrently) {:>10.0} msg/s {:>7.0} MB/s fetched",
            self.mode.name(),
            consume_rate,
            self.consume_bytes as f64 / self.consume_elapsed.as_secs_f64() / 1e6,
        );
        if self.mode == Mode::Always64 {
            println!(
                "broker     {} group commit: {} log syncs for {} produce requests",
                self.mode.name(),
                self.fsyncs,
                self.produced.latencies.len()
            );
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Starts the broker, produces `batches` batches, consumes them back, stops it.
fn broker_run(root: &Path, workload: &Workload, mode: Mode, batches: usize) -> BrokerResult {
    let dir = root.join(format!("broker-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let fsync = if mode == Mode::Always64 {
        "always"
    } else {
        "interval"
    };
    let mut child = start_broker(&dir, fsync);
    let addr = wait_for_address(&dir.join("broker.log"));
    let mut conn = Conn::connect(addr);
    let create = format!("{{\"partitions\":{PARTITIONS}}}");
    let (status, _, _) = conn.call("PUT", "/v1/topics/bench", &[], create.as_bytes());
    assert!(status == 201 || status == 200, "create topic: {status}");
    if mode == Mode::Binary {
        long_poll_wakeups(addr);
    }

    let connections = if mode == Mode::Always64 {
        64
    } else {
        CONNECTIONS
    };
    let (bodies, content_type) = match mode {
        Mode::Binary => (&workload.binary, "application/vnd.broker.batch"),
        _ => (&workload.ndjson, "application/x-ndjson"),
    };
    let per_conn = batches.div_ceil(connections);
    let mut expected = vec![0u64; PARTITIONS as usize];
    for c in 0..connections {
        expected[c % PARTITIONS as usize] += (per_conn * MESSAGES_PER_BATCH) as u64;
    }
    // Consumers tail the partitions (long-poll) while the producers run: the end-to-end
    // rate is messages over the time until the last one was consumed.
    let started = Instant::now();
    let (produced, (consumed, consume_bytes)) = std::thread::scope(|s| {
        let consumer = s.spawn(|| consume(addr, mode == Mode::Binary, &expected));
        let produced = load(addr, connections, per_conn * connections, |conn_idx, _| {
            let p = conn_idx % PARTITIONS as usize;
            let path = match mode {
                Mode::Binary => format!("/v1/topics/bench/messages?partition={p}"),
                _ => "/v1/topics/bench/messages".to_string(),
            };
            (path, content_type, &bodies[p][..])
        });
        (produced, consumer.join().expect("consumer"))
    });
    let consume_elapsed = started.elapsed();
    assert_eq!(
        consumed, produced.messages,
        "every produced message consumed"
    );
    let (_, _, metrics) = conn.call("GET", "/metrics", &[], b"");
    let fsyncs = sample(&metrics, "broker_fsync_duration_seconds_count");
    // SAFETY: kill(2) on our own child's pid with a valid signal.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    BrokerResult {
        mode,
        produced,
        consumed,
        consume_elapsed,
        consume_bytes,
        fsyncs,
    }
}

/// The value of the first sample line starting with `name` in a Prometheus text body.
fn sample(metrics: &[u8], name: &str) -> f64 {
    String::from_utf8_lossy(metrics)
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn start_broker(dir: &Path, fsync: &str) -> Child {
    std::fs::create_dir_all(dir).expect("bench dir");
    let log = std::fs::File::create(dir.join("broker.log")).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(["--listen", "127.0.0.1:0", "--fsync", fsync, "--data-dir"])
        .arg(dir.join("data"))
        .env("RUST_LOG", "warn,broker=info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .expect("start broker")
}

fn wait_for_address(log: &Path) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("ready") {
            if let Some(addr) = text
                .split("listening on http://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .and_then(|a| a.parse().ok())
            {
                return addr;
            }
        }
        assert!(Instant::now() < deadline, "broker did not start: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long a parked fetch takes to answer once a produce is sent (on the idle broker).
fn long_poll_wakeups(addr: SocketAddr) {
    let mut conn = Conn::connect(addr);
    let (status, _, _) = conn.call("PUT", "/v1/topics/wake", &[], b"{\"partitions\":1}");
    assert!(status == 201 || status == 200);
    let mut waits = Vec::new();
    for offset in 0..50u64 {
        let (tx, rx) = std::sync::mpsc::channel();
        let poller = std::thread::spawn(move || {
            let mut conn = Conn::connect(addr);
            let path =
                format!("/v1/topics/wake/partitions/0/messages?offset={offset}&wait_ms=5000");
            let (status, _, body) = conn.call("GET", &path, &[], b"");
            let answered = Instant::now();
            assert!(
                status == 200 && !body.is_empty(),
                "the poll got the message"
            );
            tx.send(answered).expect("send");
        });
        // Give the poll time to park (the bench has no parked-poll probe; a late park only
        // makes the figure smaller, never larger).
        std::thread::sleep(Duration::from_millis(20));
        let sent = Instant::now();
        let (status, _, _) = conn.call(
            "POST",
            "/v1/topics/wake/messages",
            &[("Content-Type", "application/x-ndjson")],
            b"{\"partition\":0,\"value\":1}",
        );
        assert_eq!(status, 200);
        let answered = rx.recv().expect("poll answer");
        poller.join().expect("poller");
        waits.push(answered.saturating_duration_since(sent));
    }
    waits.sort_unstable();
    println!(
        "broker     long-poll wake-up (produce sent -> parked fetch answered): p50 {:.2} ms, max {:.2} ms over {} polls",
        ms(waits[waits.len() / 2]),
        ms(waits[waits.len() - 1]),
        waits.len()
    );
}

/// Sends `batches` requests spread over `connections` keep-alive connections.
fn load<'a>(
    addr: SocketAddr,
    connections: usize,
    batches: usize,
    request: impl Fn(usize, usize) -> (String, &'a str, &'a [u8]) + Sync,
) -> Produced {
    let per_conn = batches.div_ceil(connections);
    let started = Instant::now();
    let results: Vec<(usize, Vec<Duration>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..connections)
            .map(|c| {
                let request = &request;
                s.spawn(move || {
                    let mut conn = Conn::connect(addr);
                    let mut latencies = Vec::with_capacity(per_conn);
                    let mut bytes = 0;
                    for i in 0..per_conn {
                        let (path, content_type, body) = request(c, i);
                        let t = Instant::now();
                        let (status, _, answer) =
                            conn.call("POST", &path, &[("Content-Type", content_type)], body);
                        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                        latencies.push(t.elapsed());
                        bytes += body.len();
                    }
                    (bytes, latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("load thread"))
            .collect()
    });
    let elapsed = started.elapsed();
    let bytes = results.iter().map(|(b, _)| b).sum();
    let latencies: Vec<Duration> = results.into_iter().flat_map(|(_, l)| l).collect();
    Produced {
        messages: latencies.len() * MESSAGES_PER_BATCH,
        bytes,
        elapsed,
        latencies,
    }
}

/// Tails every partition from 0 until it holds `expected[p]` messages, one thread per
/// partition, long-polling when caught up.
fn consume(addr: SocketAddr, binary: bool, expected: &[u64]) -> (usize, usize) {
    let results: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PARTITIONS)
            .map(|p| {
                let want = expected[p as usize];
                s.spawn(move || {
                    let mut conn = Conn::connect(addr);
                    let mut offset = 0u64;
                    let (mut messages, mut bytes) = (0usize, 0usize);
                    loop {
                        if offset >= want {
                            return (messages, bytes);
                        }
                        let path = format!(
                            "/v1/topics/bench/partitions/{p}/messages?offset={offset}&max=10000&wait_ms=1000"
                        );
                        let accept: &[(&str, &str)] = if binary {
                            &[("Accept", "application/vnd.broker.batch")]
                        } else {
                            &[]
                        };
                        let (status, headers, body) = conn.call("GET", &path, accept, b"");
                        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                        let next = header_u64(&headers, "broker-next-offset");
                        if !binary {
                            // A consumer parses lines; at least find them.
                            let lines = body.iter().filter(|&&b| b == b'\n').count();
                            assert_eq!(lines as u64, next - offset);
                        }
                        messages += (next - offset) as usize;
                        bytes += body.len();
                        offset = next;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("consume thread"))
            .collect()
    });
    (
        results.iter().map(|r| r.0).sum(),
        results.iter().map(|r| r.1).sum(),
    )
}

fn header_u64(headers: &str, name: &str) -> u64 {
    headers
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {name} in {headers}"))
}

/// Writes `count` copies of `body` sequentially to a file; MB/s.
fn plain_file_write(root: &Path, body: &[u8], count: usize) -> f64 {
    let path = root.join(format!("broker-bench-file-{}", std::process::id()));
    let started = Instant::now();
    {
        let mut f = std::fs::File::create(&path).expect("create");
        for _ in 0..count {
            f.write_all(body).expect("write");
        }
    }
    let elapsed = started.elapsed();
    let _ = std::fs::remove_file(&path);
    (body.len() * count) as f64 / elapsed.as_secs_f64() / 1e6
}

/// A bare hyper server (2 worker threads, like the broker on this machine) that reads each
/// body whole and answers a small JSON, driven by the same client and connection count.
fn bare_hyper(bodies: &[Vec<u8>], batches: usize) -> Produced {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let body = req.into_body().collect().await.map(|c| c.to_bytes());
                    let len = body.map(|b| b.len()).unwrap_or(0);
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(format!(
                        "{{\"received\":{len}}}"
                    )))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let bodies = Arc::new(bodies.to_vec());
    let result = load(addr, CONNECTIONS, batches, |c, _| {
        (
            "/ingest".to_string(),
            "application/octet-stream",
            &bodies[c % bodies.len()][..],
        )
    });
    runtime.shutdown_background();
    result
}
