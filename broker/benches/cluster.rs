//! The broker cluster benchmark (`cargo bench -p broker --bench cluster`).
//!
//! Runs the `broker` binary (release) as real processes on loopback and prints, in one run:
//!
//! 1. Throughput: ~400-byte telemetry messages in binary record batches of 1,000, produced
//!    over several keep-alive connections (a raw HTTP/1.1 client on std `TcpStream`, as in
//!    `http.rs`) to a topic of 6 partitions, then fetched back whole from the partitions'
//!    leaders. First a single broker (no `--peers`: the reference), then, back to back, a
//!    3-broker cluster with replication factor 3 and acks=all (a produce is answered once its
//!    batch is on every in-sync replica), each produce sent to its partition's leader.
//!    Messages/s and MB/s of produce and of consume, produce latency p50/p99, and the ratio
//!    cluster/single.
//! 2. Failover: in the same cluster, an idempotent producer (`?producer=…&seq=N`, one binary
//!    batch per request) produces to partition 0 of another topic without pause, following
//!    421s and leader changes by re-reading `GET /v1/topics/{t}` from a live broker. The
//!    leader of partition 0 is killed with SIGKILL; measured from the kill: until a live
//!    broker describes a new leader, and until the first produce acknowledged by the new
//!    leader. The killed broker is restarted on its port and data directory; the next kill
//!    waits until its `/readyz` answers 200 (back in the ISR) and partition 0's ISR is whole.
//!    At the end partition 0 is read back: every acknowledged seq must be there exactly once,
//!    at the offset it was acknowledged at, and no seq twice — else the bench exits non-zero.
//!
//! `BENCH_SCALE` (default 1.0) scales the throughput phase, `BENCH_KILLS` (default 10) is the
//! number of kills, `BENCH_DIR` the directory the data directories go under (default
//! `target/`). Each broker logs to `broker.log` in its directory; when the bench fails the
//! directories are kept and named.

use std::collections::BTreeMap;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use broker_log::record::{decode, encode, Decoded};
use broker_log::Record;
use serde_json::Value;
use support::{encode_batch, request, shown, telemetry, Conn};

mod support;

const MESSAGES_PER_BATCH: usize = 1000;
const PARTITIONS: u32 = 6;
/// Producer connections of the throughput phase (one per partition).
const CONNECTIONS: usize = 6;
const BROKERS: usize = 3;
const TOPIC: &str = "bench";
const FAILOVER_TOPIC: &str = "failover";
const FAILOVER_PARTITIONS: u32 = 3;
/// Messages per request of the failover producer: small, so that producing without pause
/// for the whole phase writes little, and every request is a fresh chance to see the leader.
const FAILOVER_BATCH: usize = 10;
const PRODUCER: &str = "bench-failover";
const BATCH_TYPE: &str = "application/vnd.broker.batch";
/// The broker's default `--node-timeout-ms` (the bench does not change it).
const NODE_TIMEOUT_MS: u64 = 2000;

/// The deadline of every wait for the cluster (start, leaders, failover, readiness).
const WAIT: Duration = Duration::from_secs(60);
/// The pause between two polls of a condition.
const POLL: Duration = Duration::from_millis(5);

fn main() {
    let ok = run();
    // Every broker process has been stopped or killed by now (the guards were dropped).
    std::process::exit(if ok { 0 } else { 1 });
}

fn run() -> bool {
    let scale: f64 = env_or("BENCH_SCALE", 1.0);
    let kills: usize = env_or("BENCH_KILLS", 10);
    let batches =
        (((1800.0 * scale) as usize).max(CONNECTIONS)).div_ceil(CONNECTIONS) * CONNECTIONS;
    let root = std::env::var("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| target_dir());
    std::fs::create_dir_all(&root).expect("bench root");
    let dir = BenchDir(Some(
        tempfile::Builder::new()
            .prefix("broker-cluster-bench-")
            .tempdir_in(&root)
            .expect("bench dir"),
    ));
    let workload = Workload::new();
    // The machine's load: other work on the same cores moves every figure below.
    let loadavg = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "machine: {} CPUs, load average {} at the start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    println!(
        "broker cluster bench: {} B/message, {MESSAGES_PER_BATCH} messages/batch ({} KiB binary), \
         {PARTITIONS} partitions, {CONNECTIONS} producer connections, {} batches per run; \
         cluster of {BROKERS}: replication factor 3, acks=all, min ISR 2",
        workload.value_len,
        workload.batch.len() / 1024,
        batches
    );

    let mut ports = Vec::new();
    while ports.len() < BROKERS + 1 {
        let p = testkit::fixed_port(&[]);
        if !ports.contains(&p) {
            ports.push(p);
        }
    }

    // (a) a single broker.
    let single = {
        let mut nodes = vec![Node::new(0, ports[BROKERS], dir.path().join("single"), "")];
        nodes[0].start();
        wait_ready(&nodes[0]);
        let result = throughput(&nodes, &workload, batches);
        nodes[0].stop();
        result
    };
    single.print("single broker (reference)       ");

    // (b) a 3-broker cluster, then failover in it.
    let peers = (0..BROKERS)
        .map(|i| format!("{i}=http://127.0.0.1:{}", ports[i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes: Vec<Node> = (0..BROKERS)
        .map(|i| Node::new(i, ports[i], dir.path().join(format!("node-{i}")), &peers))
        .collect();
    for n in &mut nodes {
        n.start();
    }
    for n in &nodes {
        wait_ready(n);
    }
    let cluster = throughput(&nodes, &workload, batches);
    cluster.print("3-broker cluster, RF 3, acks=all");
    println!(
        "cluster / single                : produce {:.2}x, consume {:.2}x (goal >= 0.50x)",
        cluster.produce_rate() / single.produce_rate(),
        cluster.consume_rate() / single.consume_rate(),
    );
    println!(
        "broker CPU per 1,000 messages    : single produce {:.2} ms, consume {:.2} ms; cluster \
         (all 3 brokers) produce {:.2} ms ({:.2}x), consume {:.2} ms ({:.2}x)",
        single.produce_cpu_per_k(),
        single.consume_cpu_per_k(),
        cluster.produce_cpu_per_k(),
        cluster.produce_cpu_per_k() / single.produce_cpu_per_k(),
        cluster.consume_cpu_per_k(),
        cluster.consume_cpu_per_k() / single.consume_cpu_per_k(),
    );
    // The failover phase gets a cluster without the throughput data: a restarted broker then
    // recovers and re-checks little, and the kills measure failover, not log recovery.
    let r = request(
        nodes[0].addr(),
        "DELETE",
        &format!("/v1/topics/{TOPIC}"),
        &[],
        b"",
    );
    assert!(
        matches!(&r, Ok(r) if r.status == 204),
        "delete {TOPIC}: {}",
        shown(&r)
    );

    let outcome = failover(&mut nodes, kills);
    for n in &mut nodes {
        n.stop();
    }
    println!("machine: load average {} at the end", loadavg());
    match outcome {
        Ok(()) => true,
        Err(why) => {
            let kept = dir.keep();
            println!("FAILED: {why}");
            println!(
                "broker logs: {}/node-*/broker.log (data directories kept)",
                kept.display()
            );
            false
        }
    }
}

/// The bench's data directories: removed when the bench succeeds, kept (and named) when it
/// fails or panics, for the brokers' logs.
struct BenchDir(Option<tempfile::TempDir>);

impl BenchDir {
    fn path(&self) -> &Path {
        self.0.as_ref().expect("bench dir").path()
    }

    fn keep(mut self) -> PathBuf {
        self.0.take().expect("bench dir").keep()
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.0.take() {
                eprintln!(
                    "bench failed; data directories and broker logs kept in {}",
                    dir.keep().display()
                );
            }
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `target/`: two levels above the broker binary (`target/release/broker`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_broker"))
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// The throughput phase's request body: one binary batch (the partition goes in the query).
struct Workload {
    value_len: usize,
    batch: Vec<u8>,
}

impl Workload {
    fn new() -> Workload {
        let values: Vec<(String, String)> =
            (0..MESSAGES_PER_BATCH).map(|i| telemetry(i, "")).collect();
        let value_len = values.iter().map(|(_, v)| v.len()).sum::<usize>() / values.len();
        Workload {
            value_len,
            batch: encode_batch(&values),
        }
    }
}

/// The failover producer's batch for `seq`: every value names its seq.
fn failover_batch(seq: u64) -> Vec<u8> {
    let values: Vec<(String, String)> = (0..FAILOVER_BATCH)
        .map(|i| telemetry(i, &format!(r#""seq":{seq},"i":{i},"#)))
        .collect();
    encode_batch(&values)
}

// ---------------------------------------------------------------------------------------------
// Broker processes

/// One broker process: its port, directory and flags; killed when dropped (also on panic).
struct Node {
    id: usize,
    port: u16,
    dir: PathBuf,
    /// `--peers`, empty for a single broker.
    peers: String,
    child: Option<Child>,
}

impl Node {
    fn new(id: usize, port: u16, dir: PathBuf, peers: &str) -> Node {
        Node {
            id,
            port,
            dir,
            peers: peers.to_string(),
            child: None,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    /// Starts the broker on its port and data directory (again, after a kill); its output is
    /// appended to its `broker.log`.
    fn start(&mut self) {
        assert!(self.child.is_none(), "broker {} runs already", self.id);
        std::fs::create_dir_all(&self.dir).expect("broker dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_broker"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(self.dir.join("data"));
        if !self.peers.is_empty() {
            cmd.args(["--node-id", &self.id.to_string(), "--peers", &self.peers]);
        }
        let child = cmd
            .env("RUST_LOG", "warn,broker=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("start broker");
        self.child = Some(child);
    }

    /// `kill -9`, and reaps the process.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, waiting for the exit (SIGKILL after 20 s).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid with a valid signal.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// CPU time (user + system) the running broker process has used so far.
    fn cpu_time(&self) -> Duration {
        let Some(child) = &self.child else {
            return Duration::ZERO;
        };
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        // After the parenthesised command name: field 3 (state) onwards; utime and stime are
        // fields 14 and 15, in clock ticks.
        let fields: Vec<u64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .map(|f| f.parse().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_secs_f64(ticks as f64 / hz as f64)
    }

    fn exited(&mut self) -> bool {
        match &mut self.child {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until the broker's `/readyz` answers 200.
fn wait_ready(node: &Node) {
    let deadline = Instant::now() + WAIT;
    loop {
        if matches!(request(node.addr(), "GET", "/readyz", &[], b""), Ok(r) if r.status == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "broker {} not ready within {WAIT:?}; log {}:\n{}",
            node.id,
            node.log().display(),
            node.log_tail()
        );
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput

struct Throughput {
    produced: usize,
    produce_bytes: usize,
    produce_elapsed: Duration,
    latencies: Vec<Duration>,
    consumed: usize,
    consume_bytes: usize,
    consume_elapsed: Duration,
    /// CPU time the broker processes used while producing and while consuming.
    produce_cpu: Duration,
    consume_cpu: Duration,
}

impl Throughput {
    fn produce_rate(&self) -> f64 {
        self.produced as f64 / self.produce_elapsed.as_secs_f64()
    }
    fn consume_rate(&self) -> f64 {
        self.consumed as f64 / self.consume_elapsed.as_secs_f64()
    }
    /// Broker CPU milliseconds per 1,000 messages produced.
    fn produce_cpu_per_k(&self) -> f64 {
        ms(self.produce_cpu) * 1000.0 / self.produced as f64
    }
    fn consume_cpu_per_k(&self) -> f64 {
        ms(self.consume_cpu) * 1000.0 / self.consumed as f64
    }
    fn print(&self, label: &str) {
        println!(
            "{label}: produce {:>9.0} msg/s {:>5.0} MB/s  p50 {:>7.2} ms  p99 {:>7.2} ms | consume {:>9.0} msg/s {:>5.0} MB/s",
            self.produce_rate(),
            self.produce_bytes as f64 / self.produce_elapsed.as_secs_f64() / 1e6,
            ms(percentile(&self.latencies, 0.5)),
            ms(percentile(&self.latencies, 0.99)),
            self.consume_rate(),
            self.consume_bytes as f64 / self.consume_elapsed.as_secs_f64() / 1e6,
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(latencies: &[Duration], q: f64) -> Duration {
    let mut l = latencies.to_vec();
    l.sort_unstable();
    l.get(((l.len() as f64 - 1.0) * q) as usize)
        .copied()
        .unwrap_or_default()
}

/// Creates the topic, produces `batches` batches to the partitions' leaders over
/// [`CONNECTIONS`] connections (connection `c` to partition `c % PARTITIONS`), then fetches
/// every partition back from its leader.
fn throughput(nodes: &[Node], workload: &Workload, batches: usize) -> Throughput {
    let create = format!("{{\"partitions\":{PARTITIONS}}}");
    let r = request(
        nodes[0].addr(),
        "PUT",
        &format!("/v1/topics/{TOPIC}"),
        &[],
        create.as_bytes(),
    );
    assert!(
        matches!(&r, Ok(r) if r.status == 201 || r.status == 200),
        "create {TOPIC}: {}",
        shown(&r)
    );
    let leaders = settled_leaders(nodes, TOPIC);
    // Every leader takes its partition (a 1-message batch each, retried on 503 while it
    // takes the leadership): the measured produces find them ready.
    let one = encode(
        0,
        &[Record {
            timestamp_ms: 0,
            key: None,
            value: b"{}",
        }],
        None,
    );
    for (p, &leader) in leaders.iter().enumerate() {
        let deadline = Instant::now() + WAIT;
        let path = format!("/v1/topics/{TOPIC}/messages?partition={p}");
        loop {
            let r = request(leader, "POST", &path, &[("Content-Type", BATCH_TYPE)], &one);
            match &r {
                Ok(a) if a.status == 200 => break,
                Ok(a) if a.status == 503 && Instant::now() < deadline => std::thread::sleep(POLL),
                _ => panic!("warm-up produce to partition {p}: {}", shown(&r)),
            }
        }
    }

    let per_conn = batches / CONNECTIONS;
    let cpu = || nodes.iter().map(Node::cpu_time).sum::<Duration>();
    let cpu_before = cpu();
    let started = Instant::now();
    let results: Vec<(usize, Vec<Duration>, usize, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let p = c % PARTITIONS as usize;
                let leader = leaders[p];
                s.spawn(move || {
                    let mut conn = Conn::open(leader).expect("connect to the leader");
                    let path = format!("/v1/topics/{TOPIC}/messages?partition={p}");
                    let mut latencies = Vec::with_capacity(per_conn);
                    let mut end = 0;
                    for _ in 0..per_conn {
                        let t = Instant::now();
                        let r = conn
                            .request(
                                "POST",
                                &path,
                                &[("Content-Type", BATCH_TYPE)],
                                &workload.batch,
                            )
                            .expect("produce");
                        latencies.push(t.elapsed());
                        assert_eq!(r.status, 200, "produce to partition {p}: {}", r.text());
                        let a = r.json();
                        end = a["base_offset"].as_u64().expect("base_offset")
                            + a["record_count"].as_u64().expect("record_count");
                    }
                    (p, latencies, per_conn * workload.batch.len(), end)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("producer"))
            .collect()
    });
    let produce_elapsed = started.elapsed();
    let cpu_produced = cpu();
    let mut ends = vec![0u64; PARTITIONS as usize];
    for (p, _, _, end) in &results {
        ends[*p] = ends[*p].max(*end);
    }
    let produce_bytes = results.iter().map(|r| r.2).sum();
    let latencies: Vec<Duration> = results.into_iter().flat_map(|r| r.1).collect();
    let produced = latencies.len() * MESSAGES_PER_BATCH;

    let started = Instant::now();
    let fetched: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PARTITIONS as usize)
            .map(|p| {
                let (leader, end) = (leaders[p], ends[p]);
                s.spawn(move || consume(leader, TOPIC, p, end))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("consumer"))
            .collect()
    });
    let consume_elapsed = started.elapsed();
    let cpu_consumed = cpu();
    let consumed = fetched.iter().map(|f| f.0).sum();
    assert_eq!(
        consumed as u64,
        ends.iter().sum::<u64>(),
        "every produced message fetched back"
    );
    Throughput {
        produced,
        produce_bytes,
        produce_elapsed,
        latencies,
        consumed,
        consume_bytes: fetched.iter().map(|f| f.1).sum(),
        consume_elapsed,
        produce_cpu: cpu_produced.saturating_sub(cpu_before),
        consume_cpu: cpu_consumed.saturating_sub(cpu_produced),
    }
}

/// Fetches partition `p` from offset 0 to `end` (binary batches); messages and bytes.
fn consume(leader: SocketAddr, topic: &str, p: usize, end: u64) -> (usize, usize) {
    let mut conn = Conn::open(leader).expect("connect to the leader");
    let (mut offset, mut bytes) = (0u64, 0usize);
    while offset < end {
        let path =
            format!("/v1/topics/{topic}/partitions/{p}/messages?offset={offset}&wait_ms=1000");
        let r = conn
            .request("GET", &path, &[("Accept", BATCH_TYPE)], b"")
            .expect("fetch");
        assert_eq!(r.status, 200, "fetch partition {p}: {}", r.text());
        let next = r
            .header_u64("broker-next-offset")
            .expect("Broker-Next-Offset");
        bytes += r.body.len();
        offset = next;
    }
    (offset as usize, bytes)
}

/// One partition as `GET /v1/topics/{t}` describes it.
#[derive(Clone, Debug, PartialEq)]
struct Described {
    leader_id: Option<u64>,
    leader: Option<String>,
    epoch: Option<u64>,
    isr: Vec<u64>,
    replicas: Vec<u64>,
}

impl std::fmt::Display for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "leader {:?} epoch {:?} replicas {:?} isr {:?}",
            self.leader_id, self.epoch, self.replicas, self.isr
        )
    }
}

/// The topic's partitions as the broker at `addr` describes them (`None`: no answer or not 200).
fn describe(addr: SocketAddr, topic: &str) -> Option<Vec<Described>> {
    let r = request(addr, "GET", &format!("/v1/topics/{topic}"), &[], b"").ok()?;
    if r.status != 200 {
        return None;
    }
    let ids = |v: &Value| -> Vec<u64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    let doc: Value = serde_json::from_slice(&r.body).ok()?;
    Some(
        doc["partitions"]
            .as_array()?
            .iter()
            .map(|p| Described {
                leader_id: p["leader_id"].as_u64(),
                leader: p["leader"].as_str().map(str::to_string),
                epoch: p["leader_epoch"].as_u64(),
                isr: ids(&p["isr"]),
                replicas: ids(&p["replicas"]),
            })
            .collect(),
    )
}

/// The address of each partition's leader, once every broker describes the topic alike with
/// a leader and a whole ISR for every partition (a single broker: itself).
fn settled_leaders(nodes: &[Node], topic: &str) -> Vec<SocketAddr> {
    if nodes.len() == 1 {
        return vec![nodes[0].addr(); PARTITIONS as usize];
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let views: Vec<_> = nodes.iter().map(|n| describe(n.addr(), topic)).collect();
        if let Some(Some(first)) = views.first() {
            let settled = views.iter().all(|v| v.as_ref() == Some(first))
                && first
                    .iter()
                    .all(|p| p.leader_id.is_some() && p.isr.len() == BROKERS);
            if settled {
                return first
                    .iter()
                    .map(|p| nodes[p.leader_id.expect("leader") as usize].addr())
                    .collect();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the brokers do not agree on {topic}'s leaders within {WAIT:?}: {views:?}"
        );
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// Failover

/// A produce the failover producer got a 200 for.
struct Ack {
    seq: u64,
    at: Instant,
    /// The node that answered it.
    node: usize,
    base_offset: u64,
}

/// What the failover producer saw besides its acknowledgements.
#[derive(Default, Debug)]
struct Seen {
    /// A connection refused, reset or closed (a request whose outcome is unknown: retried).
    connection_errors: u64,
    misdirected: u64,
    unavailable: u64,
    duplicates: u64,
    /// Any other answer, e.g. a 409 for a seq the broker took as stale.
    unexpected: Vec<String>,
    /// The seqs refused for good (409): never acknowledged.
    refused: Vec<u64>,
    /// The seq in flight (or about to be sent) when the producer stopped.
    unfinished: Option<u64>,
}

struct Shared {
    acks: Mutex<Vec<Ack>>,
    stop: AtomicBool,
}

/// Sets the stop flag when dropped, so a panicking main thread does not leave the producer
/// running (its scope would wait for it forever).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Produces seq 1, 2, … to partition 0 of [`FAILOVER_TOPIC`] until stopped, each seq until
/// acknowledged, at the leader it learns from 421s and `GET /v1/topics/{t}`.
fn produce_continuously(addrs: &[SocketAddr], shared: &Shared) -> Seen {
    let mut seen = Seen::default();
    let mut seq = 1u64;
    let mut leader: Option<usize> = None;
    let mut conn: Option<Conn> = None;
    let mut body = failover_batch(seq);
    let mut next_describe = 0;
    // Failed attempts since the last acknowledgement: the first retry goes at once, later
    // ones after a pause (a dead leader stays described until the controller moves it).
    let mut failures = 0u32;
    while !shared.stop.load(Ordering::SeqCst) {
        if failures > 1 {
            std::thread::sleep(POLL);
        }
        let Some(l) = leader else {
            // Ask the brokers in turn: the first that answers with a leader is believed.
            let at = next_describe % addrs.len();
            next_describe += 1;
            leader = describe(addrs[at], FAILOVER_TOPIC)
                .and_then(|parts| parts.first().and_then(|p| p.leader_id))
                .map(|id| id as usize);
            if leader.is_none() {
                failures += 1;
            }
            continue;
        };
        let c = match &mut conn {
            Some(c) => c,
            None => match Conn::open(addrs[l]) {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    seen.connection_errors += 1;
                    failures += 1;
                    leader = None;
                    continue;
                }
            },
        };
        let path = format!(
            "/v1/topics/{FAILOVER_TOPIC}/messages?partition=0&producer={PRODUCER}&seq={seq}"
        );
        match c.request("POST", &path, &[("Content-Type", BATCH_TYPE)], &body) {
            Err(_) => {
                seen.connection_errors += 1;
                failures += 1;
                conn = None;
                leader = None;
            }
            Ok(r) if r.status == 200 => {
                let base_offset = r.json()["base_offset"].as_u64().expect("base_offset");
                if r.header("broker-duplicate") == Some("true") {
                    seen.duplicates += 1;
                }
                shared.acks.lock().expect("acks").push(Ack {
                    seq,
                    at: Instant::now(),
                    node: l,
                    base_offset,
                });
                seq += 1;
                body = failover_batch(seq);
                failures = 0;
            }
            Ok(r) if r.status == 421 => {
                seen.misdirected += 1;
                let named = r.json()["leader_url"].as_str().and_then(|u| {
                    addrs
                        .iter()
                        .position(|a| u.trim_end_matches('/') == format!("http://{a}"))
                });
                failures += 1;
                leader = named;
                conn = None;
            }
            Ok(r) if r.status == 503 => {
                // Taking or leaving the leadership, or too few in-sync replicas: look again.
                seen.unavailable += 1;
                failures += 1;
                leader = None;
                conn = None;
            }
            Ok(r) => {
                seen.unexpected
                    .push(format!("seq {seq} at node {l}: {} {}", r.status, r.text()));
                if r.status == 409 {
                    // Refused for good: this seq is never acknowledged; go on with the next.
                    seen.refused.push(seq);
                    seq += 1;
                    body = failover_batch(seq);
                }
                failures += 1;
            }
        }
    }
    seen.unfinished = Some(seq);
    seen
}

/// One kill's measurements.
struct Kill {
    victim: usize,
    was_raft_leader: bool,
    epoch_before: Option<u64>,
    epoch_after: Option<u64>,
    new_leader: usize,
    described: Duration,
    acknowledged: Duration,
    /// From the restart until its `/readyz` answered 200.
    ready: Duration,
    /// Whether the other brokers described it in every ISR when its `/readyz` answered 200.
    in_isr_at_ready: bool,
    /// When it was not: the ISRs as it and as the others described them then.
    views_at_ready: Option<String>,
    /// From the restart until the other brokers describe it in every ISR.
    in_isr: Duration,
}

/// The failover phase (see the module doc); `Err` says what went wrong.
fn failover(nodes: &mut [Node], kills: usize) -> Result<(), String> {
    let create = format!("{{\"partitions\":{FAILOVER_PARTITIONS}}}");
    let r = request(
        nodes[0].addr(),
        "PUT",
        &format!("/v1/topics/{FAILOVER_TOPIC}"),
        &[],
        create.as_bytes(),
    );
    if !matches!(&r, Ok(r) if r.status == 201) {
        return Err(format!("create {FAILOVER_TOPIC}: {}", shown(&r)));
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(Node::addr).collect();
    let shared = Shared {
        acks: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    };
    println!(
        "failover: kill -9 of partition 0's leader while one idempotent producer produces to it \
         ({FAILOVER_BATCH}-message binary batches, no pause), {kills} kills, --node-timeout-ms {NODE_TIMEOUT_MS}"
    );
    let (outcome, seen) = std::thread::scope(|s| {
        let producer = s.spawn(|| produce_continuously(&addrs, &shared));
        let outcome = {
            let _stop = StopOnDrop(&shared.stop);
            kill_leaders(nodes, kills, &shared)
        };
        (outcome, producer.join().expect("the failover producer"))
    });
    let acks = std::mem::take(&mut *shared.acks.lock().expect("acks"));
    println!(
        "failover producer: {} seqs acknowledged ({} as duplicates of a retried request), \
         {} connection errors, {} answers 421, {} answers 503, {} other answers",
        acks.len(),
        seen.duplicates,
        seen.connection_errors,
        seen.misdirected,
        seen.unavailable,
        seen.unexpected.len()
    );
    for u in seen.unexpected.iter().take(10) {
        println!("  unexpected answer: {u}");
    }
    let kills_done = outcome?;
    print_kills(&kills_done);
    let checked = check_read_back(nodes, &acks, &seen);
    if !seen.unexpected.is_empty() {
        return Err(format!(
            "the producer got {} unexpected answers (first: {})",
            seen.unexpected.len(),
            seen.unexpected[0]
        ));
    }
    checked
}

fn print_kills(kills: &[Kill]) {
    for (i, k) in kills.iter().enumerate() {
        println!(
            "  kill {:>2}: node {}{} (epoch {:?}) -> node {} (epoch {:?}): new leader described after {:>7.1} ms, \
             first produce acknowledged by it after {:>7.1} ms; restarted: /readyz 200 after {:>7.1} ms, \
             back in the ISR after {:>7.1} ms{}",
            i + 1,
            k.victim,
            if k.was_raft_leader { " (also the Raft leader)" } else { "" },
            k.epoch_before,
            k.new_leader,
            k.epoch_after,
            ms(k.described),
            ms(k.acknowledged),
            ms(k.ready),
            ms(k.in_isr),
            if k.in_isr_at_ready {
                ""
            } else {
                " (/readyz said 200 before the ISR had it back)"
            },
        );
    }
    let stats = |f: fn(&Kill) -> Duration| {
        let d: Vec<Duration> = kills.iter().map(f).collect();
        (
            ms(percentile(&d, 0.5)),
            ms(d.iter().max().copied().unwrap_or_default()),
        )
    };
    let (d50, dmax) = stats(|k| k.described);
    let (a50, amax) = stats(|k| k.acknowledged);
    let (r50, rmax) = stats(|k| k.ready);
    let (i50, imax) = stats(|k| k.in_isr);
    println!(
        "failover over {} kills: kill -> a live broker describes a new leader  p50 {d50:>7.1} ms  max {dmax:>7.1} ms",
        kills.len()
    );
    println!(
        "failover over {} kills: kill -> first produce acked by the new leader p50 {a50:>7.1} ms  max {amax:>7.1} ms",
        kills.len()
    );
    println!(
        "failover over {} kills: restart -> /readyz 200                       p50 {r50:>7.1} ms  max {rmax:>7.1} ms",
        kills.len()
    );
    println!(
        "failover over {} kills: restart -> back in every ISR (others' view)   p50 {i50:>7.1} ms  max {imax:>7.1} ms",
        kills.len()
    );
    let early = kills.iter().filter(|k| !k.in_isr_at_ready).count();
    if early > 0 {
        println!(
            "WARNING: on {early} of {} restarts the broker's /readyz answered 200 while the other \
             brokers did not describe it in the ISR of every partition it replicates",
            kills.len()
        );
        if let Some(v) = kills.iter().find_map(|k| k.views_at_ready.as_ref()) {
            println!("  first such restart, at its /readyz 200: {v}");
        }
    }
}

/// Every partition of [`FAILOVER_TOPIC`] as each live broker other than `node` describes them.
fn all_partitions(nodes: &[Node], node: usize) -> Option<Vec<Vec<Described>>> {
    nodes
        .iter()
        .filter(|n| n.child.is_some() && n.id != node)
        .map(|n| describe(n.addr(), FAILOVER_TOPIC))
        .collect()
}

/// Whether every other live broker describes `node` in the ISR of every partition of
/// [`FAILOVER_TOPIC`] it replicates that has a leader.
fn in_isr_everywhere(nodes: &[Node], node: usize) -> bool {
    all_partitions(nodes, node).is_some_and(|views| {
        views.iter().flatten().all(|p| {
            p.leader_id.is_none()
                || !p.replicas.contains(&(node as u64))
                || p.isr.contains(&(node as u64))
        })
    })
}

/// Partition 0 of [`FAILOVER_TOPIC`] as every live broker describes it, when they agree.
fn agreed_partition0(nodes: &[Node]) -> Option<Described> {
    let views: Vec<Option<Described>> = nodes
        .iter()
        .filter(|n| n.child.is_some())
        .map(|n| describe(n.addr(), FAILOVER_TOPIC).and_then(|p| p.first().cloned()))
        .collect();
    let first = views.first()?.clone()?;
    views
        .iter()
        .all(|v| v.as_ref() == Some(&first))
        .then_some(first)
}

fn kill_leaders(nodes: &mut [Node], kills: usize, shared: &Shared) -> Result<Vec<Kill>, String> {
    let mut done = Vec::new();
    for k in 0..kills {
        // The same start for every kill: all brokers up, partition 0 led with a whole ISR,
        // and the producer getting acknowledgements.
        let since = Instant::now();
        let mut last = None;
        let before = wait_for(&format!("kill {}: a settled partition 0", k + 1), || {
            last = agreed_partition0(nodes);
            let acked = shared
                .acks
                .lock()
                .expect("acks")
                .last()
                .is_some_and(|a| a.at > since);
            last.clone()
                .filter(|p| p.leader_id.is_some() && p.isr.len() == BROKERS && acked)
        })
        .map_err(|e| format!("{e}; last seen: {last:?}"))?;
        let victim = before.leader_id.expect("a leader") as usize;
        let raft_leader = request(nodes[victim].addr(), "GET", "/v1/cluster", &[], b"")
            .ok()
            .and_then(|r| r.json()["raft_leader"].as_u64());

        let mut child = nodes[victim].child.take().expect("running");
        child.kill().expect("kill -9");
        let killed = Instant::now();
        let _ = child.wait();

        let mut described = None;
        let mut acknowledged = None;
        let mut last = None;
        wait_for(
            &format!("kill {}: failover from node {victim}", k + 1),
            || {
                if described.is_none() {
                    for n in nodes.iter().filter(|n| n.child.is_some()) {
                        let p0 =
                            describe(n.addr(), FAILOVER_TOPIC).and_then(|p| p.first().cloned());
                        if let Some(p) = p0
                            .as_ref()
                            .filter(|p| p.leader_id.is_some_and(|l| l != victim as u64))
                        {
                            described = Some((killed.elapsed(), p.clone()));
                        }
                        last = p0;
                    }
                }
                if acknowledged.is_none() {
                    let acks = shared.acks.lock().expect("acks");
                    acknowledged = acks
                        .iter()
                        .rev()
                        .take_while(|a| a.at > killed)
                        .filter(|a| a.node != victim)
                        .last()
                        .map(|a| (a.at - killed, a.node));
                }
                (described.is_some() && acknowledged.is_some()).then_some(())
            },
        )
        .map_err(|e| {
            format!(
                "{e}: new leader described: {:?}, produce acknowledged by another node: {:?}; \
                 partition 0 last described as {last:?}; killed node {victim}'s log: {}",
                described.as_ref().map(|d| d.0),
                acknowledged,
                nodes[victim].log().display()
            )
        })?;
        let (described, after) = described.expect("described");
        let (acknowledged, new_leader) = acknowledged.expect("acknowledged");

        let restarted = Instant::now();
        nodes[victim].start();
        let node = &mut nodes[victim];
        wait_for(
            &format!("kill {}: node {victim} ready again", k + 1),
            || {
                if node.exited() {
                    return Some(Err(format!(
                        "node {victim} exited after its restart:\n{}",
                        node.log_tail()
                    )));
                }
                let r = request(node.addr(), "GET", "/readyz", &[], b"");
                matches!(r, Ok(r) if r.status == 200).then_some(Ok(()))
            },
        )??;
        let ready = restarted.elapsed();
        // What `/readyz` promises, as the other brokers see it: the restarted broker is in
        // the ISR of every led partition it replicates.
        let in_isr_at_ready = in_isr_everywhere(nodes, victim);
        let views_at_ready = (!in_isr_at_ready).then(|| {
            let own = describe(nodes[victim].addr(), FAILOVER_TOPIC);
            let others = all_partitions(nodes, victim);
            let isrs = |v: &[Described]| v.iter().map(|p| p.isr.clone()).collect::<Vec<_>>();
            format!(
                "ISRs of {FAILOVER_TOPIC}'s partitions as node {victim} itself describes them: {:?}; \
                 as the others do: {:?}",
                own.as_deref().map(isrs),
                others.map(|o| o.iter().map(|v| isrs(v)).collect::<Vec<_>>())
            )
        });
        let mut last = None;
        wait_for(
            &format!("kill {}: node {victim} back in the ISR", k + 1),
            || {
                last = all_partitions(nodes, victim);
                in_isr_everywhere(nodes, victim).then_some(())
            },
        )
        .map_err(|e| format!("{e}; the other brokers describe {FAILOVER_TOPIC} as {last:?}"))?;
        done.push(Kill {
            victim,
            was_raft_leader: raft_leader == Some(victim as u64),
            epoch_before: before.epoch,
            epoch_after: after.epoch,
            new_leader,
            described,
            acknowledged,
            ready,
            in_isr_at_ready,
            views_at_ready,
            in_isr: restarted.elapsed(),
        });
    }
    Ok(done)
}

/// Polls `f` until it answers, for at most [`WAIT`].
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(t) = f() {
            return Ok(t);
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: not within {WAIT:?}"));
        }
        std::thread::sleep(POLL);
    }
}

/// Reads partition 0 back from its leader: every acknowledged seq exactly once, at its
/// acknowledged offset, with its own messages; no seq twice.
fn check_read_back(nodes: &[Node], acks: &[Ack], seen: &Seen) -> Result<(), String> {
    let p0 = wait_for("partition 0 led after the kills", || {
        agreed_partition0(nodes).filter(|p| p.leader_id.is_some())
    })?;
    let leader = nodes[p0.leader_id.expect("leader") as usize].addr();
    let producer_id = broker_wire::numeric_producer_id(PRODUCER);
    // seq → the base offsets of the batches that carry it.
    let mut found: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    let mut conn = Conn::open(leader).map_err(|e| format!("connect to the leader: {e}"))?;
    let mut offset = 0u64;
    let mut messages = 0u64;
    loop {
        let path = format!("/v1/topics/{FAILOVER_TOPIC}/partitions/0/messages?offset={offset}");
        let r = conn
            .request("GET", &path, &[("Accept", BATCH_TYPE)], b"")
            .map_err(|e| format!("read back: {e}"))?;
        if r.status != 200 {
            return Err(format!("read back at {offset}: {} {}", r.status, r.text()));
        }
        if r.body.is_empty() {
            break;
        }
        let mut rest = &r.body[..];
        while !rest.is_empty() {
            let batch = match decode(rest) {
                Decoded::Intact(b) => b,
                other => return Err(format!("read back at {offset}: a bad batch: {other:?}")),
            };
            rest = &rest[batch.bytes.len()..];
            let h = batch.header;
            if h.end_offset() <= offset {
                continue;
            }
            let Some(stamp) = h.producer().filter(|s| s.producer_id == producer_id) else {
                problems.push(format!(
                    "a batch at {} without the producer's stamp",
                    h.base_offset
                ));
                offset = h.end_offset();
                continue;
            };
            let tag = format!(r#"{{"seq":{},"#, stamp.seq);
            let ok = h.record_count as usize == FAILOVER_BATCH
                && batch
                    .records()
                    .all(|rec| rec.is_ok_and(|rec| rec.value.starts_with(tag.as_bytes())));
            if !ok {
                problems.push(format!(
                    "the batch of seq {} at {} does not hold that seq's {FAILOVER_BATCH} messages",
                    stamp.seq, h.base_offset
                ));
            }
            found.entry(stamp.seq).or_default().push(h.base_offset);
            messages += u64::from(h.record_count);
            offset = h.end_offset();
        }
    }
    let mut lost = Vec::new();
    let mut moved = Vec::new();
    for a in acks {
        match found.get(&a.seq).map(Vec::as_slice) {
            None | Some([]) => lost.push(a.seq),
            Some([at]) if *at == a.base_offset => {}
            Some([at]) => moved.push(format!(
                "seq {} acked at {} found at {at}",
                a.seq, a.base_offset
            )),
            Some(_) => {}
        }
    }
    let doubled: Vec<String> = found
        .iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(seq, at)| format!("seq {seq} at {at:?}"))
        .collect();
    let acked: std::collections::BTreeSet<u64> = acks.iter().map(|a| a.seq).collect();
    let unacked_found: Vec<u64> = found
        .keys()
        .filter(|s| !acked.contains(s))
        .copied()
        .collect();
    println!(
        "read back partition 0 from node {}: {messages} messages in {} batches to offset {offset}; \
         {} acknowledged seqs: {} missing, {} at another offset than acknowledged, {} seqs stored \
         more than once; unacknowledged seqs stored: {unacked_found:?} (in flight at the end: {:?})",
        p0.leader_id.unwrap_or_default(),
        found.values().map(Vec::len).sum::<usize>(),
        acks.len(),
        lost.len(),
        moved.len(),
        doubled.len(),
        seen.unfinished,
    );
    if !lost.is_empty() {
        problems.push(format!(
            "{} acknowledged seqs lost (first: {:?})",
            lost.len(),
            &lost[..lost.len().min(10)]
        ));
    }
    if !moved.is_empty() {
        problems.push(format!("{} seqs moved (first: {})", moved.len(), moved[0]));
    }
    if !doubled.is_empty() {
        problems.push(format!(
            "{} seqs stored more than once (first: {})",
            doubled.len(),
            doubled[0]
        ));
    }
    let strays: Vec<&u64> = unacked_found
        .iter()
        .filter(|s| Some(**s) != seen.unfinished)
        .collect();
    if !strays.is_empty() {
        problems.push(format!(
            "seqs stored that were never sent or refused: {strays:?}"
        ));
    }
    if problems.is_empty() {
        println!("read back: every acknowledged seq present exactly once: OK");
        Ok(())
    } else {
        Err(format!("read back: {}", problems.join("; ")))
    }
}
