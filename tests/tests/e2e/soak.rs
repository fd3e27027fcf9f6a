//! The fault-injection soak: the whole pipeline under load while its parts are killed.
//!
//! Streamers loop over a generated CSV whose rows carry, per GPU, a sequence number (in the
//! value and in `labels_raw`). Every pass emits each GPU's sequence 1..=N again, in order, so
//! in the end each GPU's points, read back in broker-offset order, must be the sequence
//! 1..=N repeated, possibly cut short in the last pass — any duplicate shows as a repeated or
//! backwards step, any loss as a skipped one. The broker's logs are the record of what was
//! acknowledged; the database must hold each of those messages exactly once.
//!
//! Faults injected at random moments: SIGKILL of a broker (restart on the same port and data,
//! then wait until it is ready), of a collector and of a streamer; scale up and clean scale
//! down; PostgreSQL stopped for a few seconds; bursts of bad input at a broker and the API; an
//! expired partition planted in the store (40+ days old), which the collectors' retention must
//! drop while ingest goes on (maintenance runs every second here) — if it did not, its points
//! would show up as extra, duplicate rows in the final count.
//!
//! The broker runs alone or as a replicated cluster of three (`--peers`, replication factor
//! 3). A cluster adds three faults: SIGKILL of the broker leading the most partitions, waiting
//! until its partitions have new leaders before it comes back; a broker frozen (SIGSTOP) for
//! 3–5 s; and a rolling restart of all three brokers (SIGTERM, restart, wait until ready —
//! back in every ISR — then the next). The clients get every broker's URL and route by partition leader. In a cluster
//! the acknowledged ends are read at each partition's leader (only there is `log_end_offset`
//! the high watermark), once every partition has a leader, all three brokers are in every
//! ISR and the leader's high watermark has reached its log's end on every replica.
//!
//! `soak::short` (one broker) and `soak::short_cluster` (three) run in `make test` (about a
//! minute each); `soak::long` is `make soak` (`SOAK_SECONDS`, default 600; `SOAK_BROKERS`,
//! default 3).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{bin_path, fixed_port, free_port, http_get, wait_until, Child, Postgres};

const TOPIC: &str = "telemetry";
const HOSTS: usize = 24;
const GPUS_PER_HOST: usize = 4;
const METRICS: [&str; 4] = [
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_FB_USED",
];
/// How many kinds of fault `Soak::inject` knows with one broker.
const FAULT_KINDS: u32 = 8;
/// How many with a cluster: also the leader kill and the frozen broker.
const CLUSTER_FAULT_KINDS: u32 = 11;
/// How long a (re)started broker of a cluster may take to be ready: back in the ISR of every
/// partition it replicates, which means catching up with its leaders under load.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the partitions of a killed leader may take to get new leaders.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// The collectors' raw-point retention in the soak.
const RETENTION_DAYS: i64 = 30;
/// Rows per GPU per pass: each GPU's sequence runs 1..=SEQ_PER_GPU.
const SEQ_PER_GPU: usize = 40;

fn gpu_uuid(host: usize, gpu: usize) -> String {
    format!("GPU-{host:08x}-0000-4000-8000-{gpu:012x}")
}

/// Writes the generated CSV: HOSTS × GPUS_PER_HOST GPUs, SEQ_PER_GPU rows each, interleaved
/// like a real export (all GPUs at one timestamp, then the next).
fn write_csv(path: &Path) -> usize {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create csv"));
    writeln!(
        out,
        "timestamp,metric_name,gpu_id,device,uuid,modelName,Hostname,container,pod,namespace,value,labels_raw"
    )
    .expect("write");
    let mut rows = 0;
    for seq in 1..=SEQ_PER_GPU {
        for host in 0..HOSTS {
            for gpu in 0..GPUS_PER_HOST {
                let metric = METRICS[seq % METRICS.len()];
                let hostname = format!("soak-host-{host:03}");
                writeln!(
                    out,
                    "\"2025-07-18T20:42:{:02}Z\",\"{metric}\",\"{gpu}\",\"nvidia{gpu}\",\"{uuid}\",\"NVIDIA H100 80GB HBM3\",\"{hostname}\",\"\",\"\",\"\",\"{seq}\",\"seq=\"\"{seq}\"\",Hostname=\"\"{hostname}\"\"\"",
                    seq % 60,
                    uuid = gpu_uuid(host, gpu),
                )
                .expect("write");
                rows += 1;
            }
        }
    }
    out.flush().expect("flush");
    rows
}

/// `GET /v1/topics/{TOPIC}` at `broker`, when it answers 200 with JSON.
fn describe(broker: &str) -> Option<Value> {
    let (status, body) = http_get(&format!("{broker}/v1/topics/{TOPIC}"))?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

fn partitions(description: &Value) -> &[Value] {
    description["partitions"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// The ids in a partition's `isr` (or `replicas`), sorted.
fn ids(list: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = list
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// Like `wait_until`, but the panic of a timeout also carries `state()`: what the cluster
/// looked like then.
fn wait_or_explain(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
    state: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}; state:\n{}",
                state()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Soak {
    pg: Postgres,
    work: tempfile::TempDir,
    csv: PathBuf,
    /// Broker `i`'s port (its node id is `i` in a cluster); fixed across its restarts.
    broker_ports: Vec<u16>,
    brokers: Vec<Option<Child>>,
    streamers: Vec<Child>,
    collectors: Vec<Child>,
    api: Child,
    api_port: u16,
    rng: fastrand::Rng,
    faults: BTreeMap<&'static str, u32>,
    restarts: u32,
    /// Logs of processes already gone, scanned for panics at the end.
    finished_logs: Vec<(String, String)>,
    next_id: u32,
}

impl Soak {
    /// The pipeline with `brokers` brokers: 1 is a lone broker, more a cluster.
    fn start(brokers: usize, seed: u64) -> Soak {
        assert!(brokers >= 1, "a soak needs a broker");
        let pg = Postgres::start();
        let work = tempfile::tempdir().expect("tempdir");
        let csv = work.path().join("soak.csv");
        write_csv(&csv);
        let broker_ports = if brokers == 1 {
            vec![free_port()]
        } else {
            let mut ports = Vec::new();
            while ports.len() < brokers {
                let p = fixed_port(&ports);
                ports.push(p);
            }
            ports
        };
        let api_port = free_port();
        let api = Child::spawn("api", {
            let mut c = Command::new(bin_path("api"));
            c.args(["--listen", &format!("127.0.0.1:{api_port}")])
                .env("DATABASE_URL", pg.url());
            c
        });
        let mut soak = Soak {
            pg,
            work,
            csv,
            broker_ports,
            brokers: (0..brokers).map(|_| None).collect(),
            streamers: Vec::new(),
            collectors: Vec::new(),
            api,
            api_port,
            rng: fastrand::Rng::with_seed(seed),
            faults: BTreeMap::new(),
            restarts: 0,
            finished_logs: Vec::new(),
            next_id: 0,
        };
        // All of a cluster's brokers before waiting for any: one alone has no metadata leader.
        for i in 0..brokers {
            soak.spawn_broker(i);
        }
        for i in 0..brokers {
            soak.wait_broker_ready(i);
        }
        for _ in 0..3 {
            soak.start_collector();
        }
        for _ in 0..2 {
            soak.start_streamer();
        }
        soak
    }

    fn is_cluster(&self) -> bool {
        self.brokers.len() > 1
    }

    fn fault_kinds(&self) -> u32 {
        if self.is_cluster() {
            CLUSTER_FAULT_KINDS
        } else {
            FAULT_KINDS
        }
    }

    /// Broker `i`'s URL.
    fn url_of(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.broker_ports[i])
    }

    /// What the clients get: every broker's URL, comma-separated.
    fn broker_url(&self) -> String {
        (0..self.brokers.len())
            .map(|i| self.url_of(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A broker picked at random (no draw with one broker, so a lone broker's run is the
    /// same as before clusters).
    fn pick_broker(&mut self) -> usize {
        if self.is_cluster() {
            self.rng.usize(0..self.brokers.len())
        } else {
            0
        }
    }

    /// Starts broker `i` on its port and data dir (its node id `i` in a cluster).
    fn spawn_broker(&mut self, i: usize) {
        let mut c = Command::new(bin_path("broker"));
        c.args(["--listen", &format!("127.0.0.1:{}", self.broker_ports[i])])
            .arg("--data-dir")
            .arg(if self.is_cluster() {
                self.work.path().join(format!("broker-{i}"))
            } else {
                self.work.path().join("broker")
            })
            .args(["--partitions", "8", "--segment-bytes", "4194304"]);
        let name = if self.is_cluster() {
            let peers = (0..self.brokers.len())
                .map(|j| format!("{j}={}", self.url_of(j)))
                .collect::<Vec<_>>()
                .join(",");
            c.args(["--node-id", &i.to_string(), "--peers", &peers]);
            format!("broker-{i}")
        } else {
            "broker".to_string()
        };
        assert!(self.brokers[i].is_none(), "broker {i} is running already");
        self.brokers[i] = Some(Child::spawn(&name, c));
    }

    /// Waits until broker `i`'s `/readyz` answers 200 (in a cluster: back in every ISR).
    fn wait_broker_ready(&self, i: usize) {
        let ready = format!("{}/readyz", self.url_of(i));
        if !self.is_cluster() {
            wait_until(Duration::from_secs(30), "the broker to be ready", || {
                http_get(&ready).is_some_and(|(s, _)| s == 200)
            });
            return;
        }
        wait_or_explain(
            CLUSTER_READY_TIMEOUT,
            &format!("broker {i} to be ready"),
            || http_get(&ready).is_some_and(|(s, _)| s == 200),
            || {
                format!(
                    "broker {i} /readyz: {:?}\n{}",
                    http_get(&ready),
                    self.cluster_state()
                )
            },
        );
    }

    /// SIGKILL of broker `i`, its log kept for the panic scan.
    fn kill_broker(&mut self, i: usize) {
        if let Some(mut b) = self.brokers[i].take() {
            b.kill9();
            self.retire(b);
        }
    }

    /// Every live broker's view of the cluster and of the topic, one line per partition.
    fn cluster_state(&self) -> String {
        let mut out = String::new();
        for i in 0..self.brokers.len() {
            if self.brokers[i].is_none() {
                out.push_str(&format!("broker {i}: not running\n"));
                continue;
            }
            let url = self.url_of(i);
            let cluster = http_get(&format!("{url}/v1/cluster"))
                .map_or_else(|| "no answer".to_string(), |(s, b)| format!("{s} {b}"));
            out.push_str(&format!("broker {i} ({url}) /v1/cluster: {cluster}\n"));
            let Some(d) = describe(&url) else {
                out.push_str(&format!("broker {i}: no description of {TOPIC}\n"));
                continue;
            };
            for p in partitions(&d) {
                out.push_str(&format!(
                    "  p{} leader={} epoch={} replicas={} isr={} start={} end={} replica_end={} hw={}\n",
                    p["partition"],
                    p["leader_id"],
                    p["leader_epoch"],
                    p["replicas"],
                    p["isr"],
                    p["log_start_offset"],
                    p["log_end_offset"],
                    p["replica_end_offset"],
                    p["high_watermark"],
                ));
            }
        }
        out
    }

    /// The topic as the first live broker describes it.
    fn describe_anywhere(&self) -> Option<Value> {
        (0..self.brokers.len())
            .filter(|&i| self.brokers[i].is_some())
            .find_map(|i| describe(&self.url_of(i)))
    }

    fn start_collector(&mut self) {
        self.next_id += 1;
        let mut c = Command::new(bin_path("collector"));
        c.args([
            "--broker",
            &self.broker_url(),
            "--topic",
            TOPIC,
            "--batch-size",
            "500",
            "--retention",
            &format!("{RETENTION_DAYS}d"),
            "--maintenance-interval-s",
            "1",
        ])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env("DATABASE_URL", self.pg.url());
        let child = Child::spawn(&format!("collector-{}", self.next_id), c);
        wait_started(&child, "collector starting");
        self.collectors.push(child);
    }

    fn start_streamer(&mut self) {
        self.next_id += 1;
        let mut c = Command::new(bin_path("streamer"));
        c.args(["--broker", &self.broker_url(), "--topic", TOPIC, "--loop"])
            .arg("--csv")
            .arg(&self.csv)
            .args(["--batch-size", "200", "--rate", "3000"])
            .args(["--metrics-listen", "127.0.0.1:0"]);
        let child = Child::spawn(&format!("streamer-{}", self.next_id), c);
        wait_started(&child, "streamer starting");
        self.streamers.push(child);
    }

    fn retire(&mut self, child: Child) {
        child.scan_for_panics();
        self.finished_logs
            .push((child.log_path().display().to_string(), child.log()));
    }

    fn count(&mut self, fault: &'static str) {
        *self.faults.entry(fault).or_default() += 1;
    }

    /// Writes points of a made-up GPU into a partition older than the retention, through the
    /// store's own write path (as a collector with retention off would have).
    fn plant_expired_partition(&mut self) {
        use chrono::{Duration as Days, Utc};
        use std::borrow::Cow;
        use store::write::{Record, Window, Writer};
        let days = RETENTION_DAYS + 10 + self.rng.i64(0..20);
        let ts = Utc::now() - Days::days(days);
        let records: Vec<Record> = (0..50)
            .map(|i| Record {
                partition: 0,
                offset: i,
                point: store::Point {
                    ts: ts + Days::seconds(i),
                    source_ts: None,
                    metric: Cow::Borrowed(METRICS[0]),
                    gpu_uuid: Cow::Borrowed("GPU-e0e0e0e0-0000-0000-0000-000000000000"),
                    gpu_index: 0,
                    device: Cow::Borrowed("nvidia0"),
                    model: Cow::Borrowed("expired"),
                    hostname: Cow::Borrowed("expired-host"),
                    container: None,
                    pod: None,
                    namespace: None,
                    value: 1.0,
                    labels: store::Labels::default(),
                },
            })
            .collect();
        let refs: Vec<&Record> = records.iter().collect();
        let writer = Writer::new(Window::default());
        let mut db = self.pg.connect();
        // Between two maintenance rounds, as such a collector's batch would land: a round that
        // started in between would drop the new partition before the points reach it.
        let lock = store::maintenance::MAINTENANCE_LOCK_KEY;
        db.execute("SELECT pg_advisory_lock($1)", &[&lock])
            .expect("wait for the maintenance round");
        writer
            .write_batch(&mut db, &refs)
            .expect("write expired points");
        db.execute("SELECT pg_advisory_unlock($1)", &[&lock])
            .expect("let maintenance run");
    }

    /// Waits until retention has dropped every points partition older than the retention.
    fn wait_for_retention(&self) {
        let cutoff = (chrono::Utc::now() - chrono::Duration::days(RETENTION_DAYS)).date_naive();
        wait_until(
            Duration::from_secs(60),
            "retention to drop the expired partitions",
            || {
                let mut db = self.pg.connect();
                store::partitions::POINTS
                    .list(&mut db)
                    .is_ok_and(|ps| ps.iter().all(|p| p.end > cutoff))
            },
        );
    }

    /// Injects fault `kind` (0..FAULT_KINDS); returns what it was.
    fn inject(&mut self, kind: u32) -> &'static str {
        let fault = match kind {
            0 => {
                let i = self.pick_broker();
                self.kill_broker(i);
                self.spawn_broker(i);
                self.wait_broker_ready(i);
                self.restarts += 1;
                "broker-kill9"
            }
            1 if !self.collectors.is_empty() => {
                let i = self.rng.usize(0..self.collectors.len());
                let mut c = self.collectors.remove(i);
                c.kill9();
                self.retire(c);
                self.start_collector();
                self.restarts += 1;
                "collector-kill9"
            }
            2 if !self.streamers.is_empty() => {
                let i = self.rng.usize(0..self.streamers.len());
                let mut s = self.streamers.remove(i);
                s.kill9();
                self.retire(s);
                self.start_streamer();
                self.restarts += 1;
                "streamer-kill9"
            }
            3 if self.collectors.len() > 1 && self.streamers.len() > 1 => {
                let mut c = self.collectors.remove(0);
                let status = c.terminate(Duration::from_secs(30));
                assert!(
                    status.is_some_and(|s| s.success()),
                    "collector did not stop cleanly: {status:?}\n{}",
                    c.log()
                );
                self.retire(c);
                let mut s = self.streamers.remove(0);
                let status = s.terminate(Duration::from_secs(30));
                assert!(
                    status.is_some_and(|s| s.success()),
                    "streamer did not stop cleanly: {status:?}\n{}",
                    s.log()
                );
                self.retire(s);
                "scale-down"
            }
            4 => {
                self.pg.stop();
                std::thread::sleep(Duration::from_millis(self.rng.u64(2000..5000)));
                self.pg.start_again();
                "postgres-outage"
            }
            7 => {
                self.plant_expired_partition();
                "expired-partition"
            }
            6 if self.collectors.len() < 5 && self.streamers.len() < 4 => {
                self.start_collector();
                self.start_streamer();
                "scale-up"
            }
            8 if self.is_cluster() => {
                self.kill_busiest_leader();
                self.restarts += 1;
                "leader-kill9"
            }
            9 if self.is_cluster() => {
                let i = self.pick_broker();
                let pid = self.brokers[i].as_ref().expect("broker running").pid() as libc::pid_t;
                // SAFETY: kill(2) with the pid of a child we own (not reaped) and valid signals.
                unsafe {
                    libc::kill(pid, libc::SIGSTOP);
                }
                std::thread::sleep(Duration::from_millis(self.rng.u64(3000..5000)));
                // SAFETY: as above.
                unsafe {
                    libc::kill(pid, libc::SIGCONT);
                }
                self.wait_broker_ready(i);
                "broker-sigstop"
            }
            10 if self.is_cluster() => {
                // Every broker in turn, each waiting for the one before to be ready (back in
                // every ISR), as a StatefulSet's rolling update does.
                for i in 0..self.brokers.len() {
                    if let Some(mut b) = self.brokers[i].take() {
                        let status = b.terminate(Duration::from_secs(30));
                        assert!(
                            status.is_some_and(|s| s.success()),
                            "broker {i} did not stop cleanly: {status:?}\n{}",
                            b.log()
                        );
                        self.retire(b);
                    }
                    self.spawn_broker(i);
                    self.wait_broker_ready(i);
                    self.restarts += 1;
                }
                "rolling-restart"
            }
            _ => {
                let i = self.pick_broker();
                fuzz_burst(&self.url_of(i), self.api_port, &mut self.rng);
                "bad-input-burst"
            }
        };
        self.count(fault);
        fault
    }

    /// SIGKILL of the broker leading the most partitions while the streamers produce; waits
    /// until the controller has given its partitions new leaders (each that had another
    /// in-sync replica), then restarts it and waits until it is ready again.
    fn kill_busiest_leader(&mut self) {
        let before = self
            .describe_anywhere()
            .unwrap_or_else(|| panic!("no broker describes {TOPIC}:\n{}", self.cluster_state()));
        let mut led = vec![0usize; self.brokers.len()];
        for p in partitions(&before) {
            if let Some(id) = p["leader_id"].as_u64() {
                led[id as usize] += 1;
            }
        }
        let victim = (0..led.len()).max_by_key(|&i| led[i]).expect("brokers");
        let victim_id = victim as u64;
        // Partitions that can fail over: another broker was in sync when the leader died.
        let movable: Vec<i64> = partitions(&before)
            .iter()
            .filter(|p| p["leader_id"].as_u64() == Some(victim_id))
            .filter(|p| ids(&p["isr"]).iter().any(|&id| id != victim_id))
            .filter_map(|p| p["partition"].as_i64())
            .collect();
        self.kill_broker(victim);
        let killed = Instant::now();
        wait_or_explain(
            FAILOVER_TIMEOUT,
            &format!("new leaders for partitions {movable:?} of killed broker {victim}"),
            || {
                self.describe_anywhere().is_some_and(|d| {
                    partitions(&d).iter().all(|p| {
                        let leader = p["leader_id"].as_u64();
                        let moved = leader.is_some() && leader != Some(victim_id);
                        moved
                            || !p["partition"]
                                .as_i64()
                                .is_some_and(|n| movable.contains(&n))
                    })
                })
            },
            || {
                format!(
                    "before the kill of broker {victim} (leading {led:?} partitions by id): {before}\n{}",
                    self.cluster_state()
                )
            },
        );
        let failover = killed.elapsed();
        self.spawn_broker(victim);
        self.wait_broker_ready(victim);
        eprintln!(
            "        leader kill: broker {victim} led {} partitions; new leaders after {:.1}s, ready again after {:.1}s",
            led[victim],
            failover.as_secs_f64(),
            killed.elapsed().as_secs_f64()
        );
    }

    /// In a cluster, once nothing produces: waits until every broker describes every partition
    /// with the same leader and epoch, every replica in its ISR (with three brokers and
    /// replication factor 3: all three), and the leader's high watermark at the end of its log
    /// and of every replica's — so the ends read at the leaders are final.
    fn wait_settled(&self) {
        let replication = self.brokers.len().min(3);
        wait_or_explain(
            CLUSTER_READY_TIMEOUT,
            "every partition to have a leader, a full ISR and its high watermark at every replica's end",
            || {
                let views: Vec<Value> = match (0..self.brokers.len())
                    .map(|i| describe(&self.url_of(i)))
                    .collect::<Option<Vec<_>>>()
                {
                    Some(v) => v,
                    None => return false,
                };
                let first = partitions(&views[0]);
                !first.is_empty()
                    && first.iter().all(|p| {
                        let n = &p["partition"];
                        let Some(leader) = p["leader_id"].as_u64() else {
                            return false;
                        };
                        let at = |v: &Value| -> Option<Value> {
                            partitions(v).iter().find(|q| &q["partition"] == n).cloned()
                        };
                        let Some(lp) = at(&views[leader as usize]) else {
                            return false;
                        };
                        let hw = &lp["high_watermark"];
                        let replicas = ids(&lp["replicas"]);
                        replicas.len() == replication
                            && views.iter().all(|v| {
                                at(v).is_some_and(|q| {
                                    q["leader_id"].as_u64() == Some(leader)
                                        && q["leader_epoch"] == p["leader_epoch"]
                                        && ids(&q["isr"]) == replicas
                                })
                            })
                            && replicas.iter().all(|&r| {
                                at(&views[r as usize])
                                    .is_some_and(|q| &q["replica_end_offset"] == hw)
                            })
                            && lp["log_end_offset"] == *hw
                    })
            },
            || self.cluster_state(),
        );
    }

    /// Each partition's `(partition, log_start_offset, log_end_offset)`: read at the broker
    /// with one broker; in a cluster, at the partition's leader (found at any broker), which
    /// must agree that it leads.
    fn partition_ends(&self) -> Vec<(i32, i64, i64)> {
        if !self.is_cluster() {
            return self.lone_partition_ends();
        }
        let mut ends = Vec::new();
        wait_or_explain(
            Duration::from_secs(30),
            "each partition's ends at its leader",
            || match self.ends_at_leaders() {
                Some(e) => {
                    ends = e;
                    true
                }
                None => false,
            },
            || self.cluster_state(),
        );
        ends
    }

    fn ends_at_leaders(&self) -> Option<Vec<(i32, i64, i64)>> {
        let view = self.describe_anywhere()?;
        let mut at_leader: BTreeMap<String, Value> = BTreeMap::new();
        let mut ends = Vec::new();
        for p in partitions(&view) {
            let leader = p["leader"].as_str()?;
            if !at_leader.contains_key(leader) {
                at_leader.insert(leader.to_string(), describe(leader)?);
            }
            let lp = partitions(&at_leader[leader])
                .iter()
                .find(|q| q["partition"] == p["partition"])?;
            if lp["leader"].as_str() != Some(leader) {
                return None;
            }
            ends.push((
                lp["partition"].as_i64()? as i32,
                lp["log_start_offset"].as_i64()?,
                lp["log_end_offset"].as_i64()?,
            ));
        }
        (!ends.is_empty()).then_some(ends)
    }

    fn lone_partition_ends(&self) -> Vec<(i32, i64, i64)> {
        let (status, body) =
            http_get(&format!("{}/v1/topics/{TOPIC}", self.broker_url())).expect("broker answers");
        assert_eq!(status, 200, "topic metadata: {body}");
        let v: Value = serde_json::from_str(&body).expect("topic json");
        v["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .map(|p| {
                (
                    p["partition"].as_i64().unwrap_or(-1) as i32,
                    p["log_start_offset"].as_i64().unwrap_or(-1),
                    p["log_end_offset"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }

    /// Stops the streamers, waits until the collectors have stored every partition's end.
    fn drain(&mut self) {
        for mut s in std::mem::take(&mut self.streamers) {
            let status = s.terminate(Duration::from_secs(30));
            assert!(
                status.is_some_and(|s| s.success()),
                "streamer did not stop cleanly: {status:?}"
            );
            self.retire(s);
        }
        if self.is_cluster() {
            self.wait_settled();
        }
        let ends = self.partition_ends();
        let conn = self.pg.connection_string();
        wait_until(
            Duration::from_secs(120),
            "the collectors to drain every partition",
            || {
                let Ok(mut db) = postgres::Client::connect(&conn, postgres::NoTls) else {
                    return false;
                };
                ends.iter().all(|(p, _, end)| {
                    db.query_opt(
                    "SELECT next_offset FROM consumer_offsets WHERE topic = $1 AND partition = $2",
                    &[&TOPIC, p],
                )
                .ok()
                .flatten()
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(0)
                    >= *end
                })
            },
        );
    }

    /// The end-of-run checks; returns the summary line.
    fn verify(&mut self) -> Summary {
        if self.is_cluster() {
            self.wait_settled();
        }
        let ends = self.partition_ends();
        let acknowledged: i64 = ends.iter().map(|(_, start, end)| end - start).sum();
        let mut db = self.pg.connect();
        let stored: i64 = db
            .query_one("SELECT count(*) FROM telemetry", &[])
            .expect("count")
            .get(0);
        let duplicates: i64 = db
            .query_one(
                "SELECT count(*) FROM (SELECT 1 FROM telemetry GROUP BY src_partition, src_offset HAVING count(*) > 1) d",
                &[],
            )
            .expect("dups")
            .get(0);
        // Every offset of every partition present: per partition, distinct offsets == range.
        let mut missing = 0i64;
        for (p, start, end) in &ends {
            let row = db
                .query_one(
                    "SELECT count(DISTINCT src_offset) FROM telemetry WHERE src_partition = $1 AND src_offset >= $2 AND src_offset < $3",
                    &[p, start, end],
                )
                .expect("range count");
            missing += (end - start) - row.get::<_, i64>(0);
        }
        // Streamer side: each GPU's sequence, in broker order, is 1..=N repeated.
        let rows = db
            .query(
                "SELECT gpu_uuid, value FROM telemetry ORDER BY gpu_uuid, src_offset",
                &[],
            )
            .expect("sequences");
        let mut order_errors = 0u64;
        let mut expected: BTreeMap<String, usize> = BTreeMap::new();
        for row in rows {
            let gpu: String = row.get(0);
            let value = row.get::<_, f64>(1) as usize;
            let next = expected.entry(gpu.clone()).or_insert(1);
            if value != *next {
                if order_errors < 5 {
                    eprintln!("GPU {gpu}: expected seq {next}, found {value}");
                }
                order_errors += 1;
            }
            *next = if value >= SEQ_PER_GPU { 1 } else { value + 1 };
        }
        Summary {
            brokers: self.brokers.len(),
            acknowledged,
            stored,
            duplicates,
            missing,
            order_errors,
            faults: self.faults.values().sum(),
            restarts: self.restarts,
            by_kind: format!("{:?}", self.faults),
        }
    }

    fn scan_all_logs_for_panics(&mut self) {
        let mut live: Vec<&Child> = self
            .collectors
            .iter()
            .chain(self.streamers.iter())
            .collect();
        live.extend(self.brokers.iter().flatten());
        live.push(&self.api);
        for c in live {
            c.scan_for_panics();
        }
        for (path, log) in &self.finished_logs {
            assert!(!log.contains("panicked at"), "a process panicked ({path})");
        }
    }
}

impl Drop for Soak {
    /// After a failure (or always, with `SOAK_LOG_DIR`: into `$SOAK_LOG_DIR/<n>-brokers`),
    /// copies every process's whole log — retired ones included — to a directory that outlives
    /// the test, and says where.
    fn drop(&mut self) {
        let dir = match std::env::var_os("SOAK_LOG_DIR") {
            Some(d) => PathBuf::from(d).join(format!("{}-brokers", self.brokers.len())),
            None if std::thread::panicking() => std::env::temp_dir().join(format!(
                "soak-logs-{}-{}-brokers",
                std::process::id(),
                self.brokers.len()
            )),
            None => return,
        };
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        let live = self
            .brokers
            .iter()
            .flatten()
            .chain(&self.collectors)
            .chain(&self.streamers)
            .chain(std::iter::once(&self.api));
        for c in live {
            if let Some(name) = c.log_path().file_name() {
                let _ = std::fs::write(dir.join(name), c.log());
            }
        }
        for (n, (path, log)) in self.finished_logs.iter().enumerate() {
            let name = Path::new(path).file_name().map_or_else(
                || "process.log".into(),
                |f| f.to_string_lossy().into_owned(),
            );
            let _ = std::fs::write(dir.join(format!("retired-{n:03}-{name}")), log);
        }
        eprintln!("soak: process logs kept in {}", dir.display());
    }
}

/// Waits for a client's start-up line, which it logs once its signal handlers are installed:
/// a SIGTERM before that (while the process is still being exec'd) would kill it with the
/// default action, which says nothing about its shutdown path.
fn wait_started(child: &Child, line: &str) {
    wait_until(Duration::from_secs(30), line, || child.log().contains(line));
}

struct Summary {
    brokers: usize,
    acknowledged: i64,
    stored: i64,
    duplicates: i64,
    missing: i64,
    order_errors: u64,
    faults: u32,
    restarts: u32,
    by_kind: String,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "soak: brokers={} acknowledged={} stored={} duplicates={} missing={} out_of_order={} faults={} restarts={} {}",
            self.brokers,
            self.acknowledged,
            self.stored,
            self.duplicates,
            self.missing,
            self.order_errors,
            self.faults,
            self.restarts,
            self.by_kind
        )
    }
}

/// A burst of bad requests at the broker and the API. Each must get a 4xx (or a 503 from the
/// API while PostgreSQL is away), never a 5xx from a crash, and must append nothing.
fn fuzz_burst(broker: &str, api_port: u16, rng: &mut fastrand::Rng) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let big = vec![b'x'; 17 * 1024 * 1024];
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("/v1/topics/telemetry/messages", b"{not json\n".to_vec()),
        (
            "/v1/topics/telemetry/messages",
            b"{\"key\":\"k\",\"value\":1}\n{\"key\":".to_vec(),
        ),
        ("/v1/topics/telemetry/messages", big),
        (
            "/v1/topics/..%2Fetc/messages",
            b"{\"key\":\"k\",\"value\":1}\n".to_vec(),
        ),
        (
            "/v1/topics/telemetry/partitions/999/messages?offset=0",
            Vec::new(),
        ),
    ];
    for (path, body) in bodies {
        let url = format!("{broker}{path}");
        let result = if body.is_empty() {
            agent.get(&url).call()
        } else {
            agent
                .post(&url)
                .set("Content-Type", "application/x-ndjson")
                .send_bytes(&body)
        };
        let status = match result {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(_) => continue, // the connection may be cut on an oversized body
        };
        assert!(
            (400..500).contains(&status),
            "broker answered {status} to bad input at {path}"
        );
    }
    let offsets = [
        "offset=-5".to_string(),
        format!("offset={}", rng.u64(1u64 << 40..u64::MAX)),
        "offset=abc".to_string(),
    ];
    for q in offsets {
        let url = format!("{broker}/v1/topics/telemetry/partitions/0/messages?{q}");
        if let Some((status, _)) = http_get(&url) {
            assert!(
                (400..500).contains(&status),
                "broker answered {status} to {q}"
            );
        }
    }
    let api = format!("http://127.0.0.1:{api_port}");
    for q in [
        "/api/v1/gpus/GPU-x/telemetry?start_time=yesterday",
        "/api/v1/gpus/GPU-x/telemetry?limit=100000",
        "/api/v1/gpus/GPU-x/telemetry?start_time=2025-01-02T00:00:00Z&end_time=2025-01-01T00:00:00Z",
        "/api/v1/gpus/GPU-x/telemetry?offset=-1",
        "/api/v1/nothing-here",
    ] {
        if let Some((status, _)) = http_get(&format!("{api}{q}")) {
            assert!(
                (400..500).contains(&status) || status == 503,
                "api answered {status} to {q}"
            );
        }
    }
}

fn run_soak(brokers: usize, duration: Duration, min_faults: u32, seed: u64) {
    let mut soak = Soak::start(brokers, seed);
    let csv = soak.csv.clone();
    let api_url = format!("http://127.0.0.1:{}", soak.api_port);
    wait_until(
        Duration::from_secs(60),
        "the first points in PostgreSQL",
        || {
            soak.pg
                .connect()
                .query_one("SELECT count(*) FROM telemetry", &[])
                .map(|r| r.get::<_, i64>(0) > 0)
                .unwrap_or(false)
        },
    );
    let started = Instant::now();
    let mut injected = 0u32;
    let kinds = soak.fault_kinds();
    let mut first_round: Vec<u32> = (0..kinds).collect();
    soak.rng.shuffle(&mut first_round);
    while started.elapsed() < duration || injected < min_faults {
        let pause = Duration::from_millis(soak.rng.u64(500..3000));
        std::thread::sleep(pause);
        // The first FAULT_KINDS faults are one of each kind, in a random order, so even the
        // short run meets every kind; after that they are drawn at random.
        let kind = if (injected as usize) < first_round.len() {
            first_round[injected as usize]
        } else {
            soak.rng.u32(0..kinds)
        };
        let fault = soak.inject(kind);
        injected += 1;
        eprintln!(
            "[{:>5.1}s] fault {injected}: {fault}",
            started.elapsed().as_secs_f64()
        );
    }
    soak.drain();
    soak.wait_for_retention();
    let summary = soak.verify();
    println!("{summary}");
    let (status, body) = http_get(&format!("{api_url}/api/v1/stats")).expect("api answers");
    assert_eq!(status, 200, "api stats after the soak: {body}");
    let stats: Value = serde_json::from_str(&body).expect("stats JSON");
    assert_eq!(
        stats["points"].as_i64(),
        Some(summary.stored),
        "stats exact after retention: {body}"
    );
    soak.scan_all_logs_for_panics();
    assert!(
        summary.acknowledged > 0,
        "nothing was streamed ({})",
        csv.display()
    );
    assert_eq!(summary.duplicates, 0, "{summary}");
    assert_eq!(summary.missing, 0, "{summary}");
    assert_eq!(summary.stored, summary.acknowledged, "{summary}");
    assert_eq!(summary.order_errors, 0, "{summary}");
}

/// The short variant, part of `make test`: about a minute, a handful of faults.
#[test]
fn short() {
    let seconds = std::env::var("SOAK_SHORT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    run_soak(1, Duration::from_secs(seconds), 8, 7);
}

/// The short variant against a cluster of three brokers, part of `make test`: about a minute,
/// one fault of each kind at least (broker kills, a leader kill, a frozen broker and a
/// rolling restart included).
#[test]
fn short_cluster() {
    let seconds = std::env::var("SOAK_SHORT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    run_soak(3, Duration::from_secs(seconds), CLUSTER_FAULT_KINDS, 11);
}

/// `make soak`: `SOAK_SECONDS` (default 600) of faults, at least 30 of them, against
/// `SOAK_BROKERS` brokers (default 3: a cluster).
#[test]
#[ignore = "long: run with `make soak`"]
fn long() {
    let brokers = std::env::var("SOAK_BROKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seconds = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("soak seed {seed}, {brokers} broker(s)");
    run_soak(brokers, Duration::from_secs(seconds), 30, seed);
}
