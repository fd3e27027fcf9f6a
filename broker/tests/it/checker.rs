//! A Jepsen-style checker of the replicated cluster: three brokers, a topic of six partitions
//! on all three (replication factor 3), idempotent producers and consumers running the whole
//! time, and a nemesis injecting random faults one after another — `kill -9` of a random
//! broker, `kill -9` of the broker leading the most partitions, SIGSTOP of a random broker for
//! 2–5 s, a clean restart (SIGTERM) — each followed by its recovery (same port, same data
//! directory) and by the cluster healing (every broker back in every ISR) before the next.
//!
//! At the end, the producers stopped and every copy in sync, it shows that:
//!
//! 1. every acknowledged message is read exactly once, at the offset its acknowledgement
//!    named, each key's values in the order they were produced
//!    ([`check_exactly_once`]);
//! 2. nothing a consumer read was later lost: every (partition, offset, value) any consumer
//!    read during the run, faults and failovers included, is in the final log at that offset
//!    with that value (a consumer reads only up to the high watermark, so what it read was
//!    committed and must survive every failover);
//! 3. the three copies of each partition on disk are the same bytes
//!    ([`stop_and_compare_copies`]).
//!
//! Along the way it also fails on a failover that does not complete (the partitions of a
//! killed leader without a new leader within [`FAILOVER`]), a cluster that does not heal
//! within [`HEAL`], producers that get nothing acknowledged after the cluster healed, and an
//! ISR member whose copy is shorter than its leader's high watermark; and, after the data
//! checks, on a broker that panicked (its log says `panicked at`) or did not exit 0 on SIGTERM.
//! It prints one line per fault and a summary line (seed, seconds, faults by kind, messages
//! acknowledged, reads recorded, the result).
//!
//! Run it (about 40 s of faults by default, so it fits in `make test`):
//!
//! ```sh
//! cargo test -p broker --test it checker -- --nocapture
//! ```
//!
//! The long version is the same test given more time, no separate `#[ignore]`d test:
//!
//! ```sh
//! CHECKER_SECONDS=600 cargo test -p broker --test it checker -- --nocapture
//! ```
//!
//! The faults come from an RNG whose seed is printed at the start and in the summary;
//! `CHECKER_SEED=<seed>` replays the same sequence of faults, targets and pauses (the broker
//! that `kill9-leader` hits depends on where leadership has moved, and the producers' and
//! consumers' timing differs from run to run). When it fails, the logs of every broker
//! incarnation are kept and their directory printed with the seed (`CHECKER_KEEP_LOGS=1`
//! keeps them when it passes too).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use broker_client::{BrokerClient, Encoding, Error};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::harness::Broker;
use crate::replication::{
    assert_no_problems, check_exactly_once, client_of, created, describe, field, in_every_isr,
    in_sync, moved_from, producer, read_all, settle, stop_and_compare_copies, ContOnDrop, Read,
    Sent, StopOnDrop,
};

const TOPIC: &str = "checked";
const PARTITIONS: u32 = 6;
/// Producer threads: `producer` `t` writes keys `k{t}-0`…`k{t}-4`; with four of them every one
/// of the six partitions gets keys.
const PRODUCERS: usize = 4;
const CONSUMERS: usize = 3;
/// How long the partitions of a killed leader may stay without a new leader (the node timeout
/// is 2 s; the rest is slack for a loaded CI machine).
const FAILOVER: Duration = Duration::from_secs(30);
/// How long the cluster may take to heal after a fault's recovery.
const HEAL: Duration = Duration::from_secs(60);

/// The nemesis's faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// `kill -9` of a random broker, restarted 0–4 s later.
    Kill9,
    /// `kill -9` of the broker leading the most partitions; once its partitions have new
    /// leaders, restarted 0–2 s later.
    Kill9Leader,
    /// SIGSTOP of a random broker for 2–5 s, then SIGCONT.
    Pause,
    /// SIGTERM of a random broker (it must exit 0), started again at once.
    Restart,
}

impl Fault {
    const ALL: [Fault; 4] = [
        Fault::Kill9,
        Fault::Kill9Leader,
        Fault::Pause,
        Fault::Restart,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::Kill9 => "kill9",
            Fault::Kill9Leader => "kill9-leader",
            Fault::Pause => "sigstop",
            Fault::Restart => "restart",
        }
    }
}

/// The brokers' logs, every incarnation's: a broker's log goes with it when it is stopped or
/// killed, so each is copied here first, and read for panics. Removed when the test passes
/// (unless `CHECKER_KEEP_LOGS` is set); kept, its path and the seed printed, when it fails.
struct Logs {
    dir: PathBuf,
    seed: u64,
    /// Incarnations saved so far, per broker.
    saved: [u32; 3],
    /// The log file of each broker's running incarnation.
    current: [Option<PathBuf>; 3],
    /// A broker that panicked or did not exit 0 on SIGTERM: the test fails at the end, after
    /// the checks of the data (a panic while shutting down must not hide those).
    findings: Vec<String>,
}

impl Logs {
    fn new(seed: u64) -> Logs {
        let dir =
            std::env::temp_dir().join(format!("broker-checker-{seed}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Logs {
            dir,
            seed,
            saved: [0; 3],
            current: [None, None, None],
            findings: Vec::new(),
        }
    }

    /// Notes the log of broker `id`'s new incarnation.
    fn track(&mut self, cluster: &Cluster, id: usize) {
        self.current[id] = Some(cluster.broker(id).child.log_path().to_path_buf());
    }

    /// Copies the log of broker `id`'s incarnation (before it is dropped) and notes a panic
    /// in it.
    fn save(&mut self, id: usize) {
        if let Some(from) = self.current[id].take() {
            let name = format!("broker-{id}.{}.log", self.saved[id]);
            if let Err(e) = std::fs::copy(&from, self.dir.join(&name)) {
                eprintln!("cannot keep {}: {e}", from.display());
            }
            self.saved[id] += 1;
            let log = std::fs::read_to_string(&from).unwrap_or_default();
            if let Some(at) = log.find("panicked at") {
                // The panic's location and message, and the first frame in the broker's code.
                let what: Vec<&str> = log[at..].lines().take(2).collect();
                let frame = log[at..]
                    .lines()
                    .find(|l| l.trim_start().starts_with("at ./src/"))
                    .unwrap_or("")
                    .trim();
                self.findings.push(format!(
                    "broker {id} panicked ({name}): {} {frame}",
                    what.join(" ")
                ));
            }
        }
    }

    fn save_all(&mut self) {
        for id in 0..3 {
            self.save(id);
        }
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The running brokers' logs too (the cluster is dropped after this).
            self.save_all();
            for finding in &self.findings {
                eprintln!("  {finding}");
            }
            eprintln!(
                "checker FAILED: rerun with CHECKER_SEED={}; every broker incarnation's log \
                 (broker-<id>.<incarnation>.log) is in {}",
                self.seed,
                self.dir.display()
            );
        } else if std::env::var_os("CHECKER_KEEP_LOGS").is_some() {
            self.save_all();
            println!("the brokers' logs are in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Takes broker `id` out of the cluster: SIGTERM, expecting exit 0 (`clean`), or `kill -9`.
/// Keeps its log; a panic in it or another exit is a finding. Answers how long it took to go.
fn take_down(cluster: &mut Cluster, logs: &mut Logs, id: usize, clean: bool) -> Duration {
    let mut b = cluster.brokers[id]
        .take()
        .unwrap_or_else(|| panic!("broker {id} is not running"));
    let start = Instant::now();
    let status = if clean {
        Some(b.child.terminate(Duration::from_secs(20)))
    } else {
        b.child.kill9();
        None
    };
    let took = start.elapsed();
    logs.save(id);
    if let Some(status) = status {
        if status.and_then(|s| s.code()) != Some(0) {
            logs.findings.push(format!(
                "broker {id} after SIGTERM: {status:?} (None: still running after 20 s)"
            ));
        }
    }
    took
}

/// Starts broker `id` again on its port and data directory and waits for its `/readyz`.
fn bring_back(cluster: &mut Cluster, logs: &mut Logs, id: usize) {
    cluster.restart(id);
    logs.track(cluster, id);
}

/// `Ok` once the cluster has healed: all three brokers run, every one is in the ISR of every
/// partition (as its leader says, [`in_every_isr`]), and all three describe every partition
/// with a leader, the same leader and epoch, and an ISR of three.
fn healed(cluster: &Cluster) -> Result<(), String> {
    if cluster.live().count() < 3 {
        return Err("a broker is not running".into());
    }
    for id in 0..3 {
        in_every_isr(cluster, id, TOPIC)?;
    }
    let mut views = Vec::new();
    for b in cluster.live() {
        views.push((b.url.as_str(), describe(b, TOPIC)?));
    }
    let mut problems = Vec::new();
    for (i, p) in views[0].1.iter().enumerate() {
        if !p["leader"].is_string() {
            problems.push(format!("partition {i} has no leader at {}", views[0].0));
        }
        for (url, view) in &views {
            let q = &view[i];
            if (&q["leader"], &q["leader_epoch"]) != (&p["leader"], &p["leader_epoch"]) {
                problems.push(format!(
                    "partition {i}: {url} says leader {} epoch {}, {} says {} epoch {}",
                    q["leader"], q["leader_epoch"], views[0].0, p["leader"], p["leader_epoch"]
                ));
            }
            if q["isr"].as_array().map(Vec::len) != Some(3) {
                problems.push(format!("partition {i}: {url} says ISR {}", q["isr"]));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Injects `fault`, recovers from it (the broker back, ready) and answers what it did.
fn inject(cluster: &mut Cluster, logs: &mut Logs, rng: &mut fastrand::Rng, fault: Fault) -> String {
    match fault {
        Fault::Kill9 => {
            let id = rng.usize(..3);
            take_down(cluster, logs, id, false);
            let down = Duration::from_millis(rng.u64(0..4000));
            std::thread::sleep(down);
            bring_back(cluster, logs, id);
            format!("kill -9 of broker {id}, restarted {down:?} later")
        }
        Fault::Kill9Leader => {
            let before = describe(cluster.broker(0), TOPIC).expect("describe the topic");
            let mut led = [0usize; 3];
            for p in &before {
                led[field(p, "leader_id") as usize] += 1;
            }
            let id = (0..3).max_by_key(|&i| led[i]).unwrap_or(0);
            take_down(cluster, logs, id, false);
            let survivors: Vec<&Broker> = cluster.live().collect();
            let took = settle(
                FAILOVER,
                &format!("new leaders for the partitions of broker {id} after its kill -9"),
                || moved_from(&survivors, TOPIC, &before, id),
            );
            let down = Duration::from_millis(rng.u64(0..2000));
            std::thread::sleep(down);
            bring_back(cluster, logs, id);
            format!(
                "kill -9 of broker {id} (leading {} of {PARTITIONS} partitions), new leaders \
                 after {took:.1?}, restarted {down:?} later",
                led[id]
            )
        }
        Fault::Pause => {
            let id = rng.usize(..3);
            let pause = Duration::from_millis(rng.u64(2000..=5000));
            let b = cluster.broker(id);
            b.signal(libc::SIGSTOP);
            // SIGCONT when the pause ends, or when the test panics.
            let thaw = ContOnDrop(b);
            std::thread::sleep(pause);
            drop(thaw);
            format!("SIGSTOP of broker {id} for {pause:?}")
        }
        Fault::Restart => {
            let id = rng.usize(..3);
            let took = take_down(cluster, logs, id, true);
            bring_back(cluster, logs, id);
            format!("clean restart (SIGTERM) of broker {id}, exited after {took:.1?}")
        }
    }
}

/// The nemesis: faults chosen by `rng` until `until`, each recovered from and healed (and the
/// producers acknowledged again on every partition) before a pause and the next. Answers how
/// many of each kind it injected.
fn nemesis(
    cluster: &mut Cluster,
    logs: &mut Logs,
    rng: &mut fastrand::Rng,
    until: Instant,
    sent: &Mutex<Sent>,
) -> BTreeMap<Fault, usize> {
    let start = Instant::now();
    let mut faults = BTreeMap::new();
    while Instant::now() < until {
        let fault = Fault::ALL[rng.usize(..Fault::ALL.len())];
        let at = start.elapsed();
        let what = inject(cluster, logs, rng, fault);
        *faults.entry(fault).or_insert(0) += 1;
        let took = settle(HEAL, &format!("the cluster to heal after {what}"), || {
            healed(cluster)
        });
        let since = Instant::now();
        let acked = settle(
            HEAL,
            &format!("acknowledgements on every partition after {what}"),
            || sent.lock().expect("sent").acked_since(since, PARTITIONS, 1),
        );
        println!(
            "[{:>6.1}s] {what}; healed {took:.1?} after, acknowledgements on every partition \
             {acked:.1?} later",
            at.as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(rng.u64(500..2000)));
    }
    faults
}

/// What one consumer read during the run.
#[derive(Default)]
struct Consumed {
    /// Every (partition, offset) it read, with what it read there the first time.
    seen: BTreeMap<(u32, u64), (String, u64)>,
    /// Messages read, re-reads included.
    reads: usize,
    /// An offset read again with other contents: a violation.
    changed: Vec<String>,
    /// Fetches that failed after the client's retries, and the first few errors.
    errors: usize,
    first_errors: Vec<String>,
    /// Times it went back to offset 0 on every partition.
    rewinds: usize,
}

impl Consumed {
    fn record(&mut self, c: usize, p: u32, offset: u64, key: String, n: u64) {
        self.reads += 1;
        let first = self
            .seen
            .entry((p, offset))
            .or_insert_with(|| (key.clone(), n));
        if *first != (key.clone(), n) {
            self.changed.push(format!(
                "consumer {c} read partition {p} offset {offset} as {key}={n}, earlier as {}={}",
                first.0, first.1
            ));
        }
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_errors.len() < 5 {
            self.first_errors.push(e);
        }
    }
}

/// Consumer `c` until `stop`: reads every partition in turn from its position through its
/// own client (routed to the leader, following 421s; failed fetches are tried again on the
/// next round), recording everything it reads; now and then back to offset 0.
fn consumer(client: &BrokerClient, c: usize, seed: u64, stop: &AtomicBool) -> Consumed {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Consumed::default();
    let mut position = [0u64; PARTITIONS as usize];
    while !stop.load(Ordering::Relaxed) {
        if rng.usize(..40) == 0 {
            position = [0; PARTITIONS as usize];
            out.rewinds += 1;
        }
        for p in 0..PARTITIONS {
            let at = position[p as usize];
            let wait = Duration::from_millis(100);
            match client.fetch(TOPIC, p, at, 1000, wait, Encoding::Ndjson) {
                Ok(f) => {
                    for m in f.messages().items {
                        let m = m.unwrap_or_else(|bad| {
                            panic!("consumer {c}, partition {p}: a bad line {bad:?}")
                        });
                        let value: Value = serde_json::from_str(m.value).expect("a JSON value");
                        let key = m.key.map(|k| k.into_owned()).unwrap_or_default();
                        let n = value["n"].as_u64().expect("n");
                        assert!(
                            m.offset >= at,
                            "consumer {c}: a fetch of partition {p} at {at} answered offset {}",
                            m.offset
                        );
                        out.record(c, p, m.offset, key, n);
                    }
                    position[p as usize] = f.next_offset.max(at);
                }
                Err(e) => {
                    // A 416 (`Error::OffsetOutOfRange`) too: a deposed leader that does not
                    // know it yet may hold a shorter log; if the log really lost what this
                    // consumer read, the final check says so.
                    let out_of_range = matches!(e, Error::OffsetOutOfRange { .. });
                    out.error(format!("partition {p} at {at}: {e}"));
                    if !out_of_range {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        }
    }
    out
}

/// Check (2): every (partition, offset, value) a consumer read is in `log` (the final log, as
/// read from the leaders) at that offset with that value, and no consumer read an offset twice
/// with different contents. Answers how many distinct (partition, offset) were read.
fn check_reads_kept(consumed: &[Consumed], log: &[Vec<Read>]) -> usize {
    let mut at: BTreeMap<(u32, u64), (&str, u64)> = BTreeMap::new();
    for (p, messages) in log.iter().enumerate() {
        for (offset, key, n) in messages {
            at.insert((p as u32, *offset), (key.as_str(), *n));
        }
    }
    let mut problems = Vec::new();
    let mut distinct: BTreeMap<(u32, u64), ()> = BTreeMap::new();
    for (c, con) in consumed.iter().enumerate() {
        problems.extend(con.changed.iter().cloned());
        for ((p, offset), (key, n)) in &con.seen {
            distinct.insert((*p, *offset), ());
            match at.get(&(*p, *offset)) {
                Some((k, m)) if k == key && m == n => {}
                other => problems.push(format!(
                    "consumer {c} read {key}={n} at partition {p} offset {offset}; the final log \
                     holds there: {other:?}"
                )),
            }
        }
    }
    assert_no_problems(
        &problems,
        "with what consumers read: not in the final log as read",
    );
    distinct.len()
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text:?}: {e}")))
}

#[test]
fn checker_random_faults_lose_nothing_acknowledged_or_read() {
    let seconds = env_u64("CHECKER_SECONDS").unwrap_or(40);
    let seed = env_u64("CHECKER_SEED").unwrap_or_else(|| fastrand::u64(..));
    println!(
        "checker: seed {seed} (CHECKER_SEED={seed} replays its faults), {seconds} s of faults"
    );
    let mut rng = fastrand::Rng::with_seed(seed);

    let mut cluster = Cluster::start();
    // Dropped before the cluster: a failing run keeps the running brokers' logs too.
    let mut logs = Logs::new(seed);
    for id in 0..3 {
        logs.track(&cluster, id);
    }
    let client = client_of(&cluster);
    created(&cluster, &client, TOPIC, PARTITIONS);
    let consumer_clients: Vec<BrokerClient> = (0..CONSUMERS).map(|_| client_of(&cluster)).collect();
    let consumer_seeds: Vec<u64> = (0..CONSUMERS).map(|_| rng.u64(..)).collect();

    let started = Instant::now();
    let sent = Mutex::new(Sent::default());
    let (stop_producing, stop_consuming) = (AtomicBool::new(false), AtomicBool::new(false));
    let (faults, consumed) = std::thread::scope(|s| {
        let _stop = (StopOnDrop(&stop_producing), StopOnDrop(&stop_consuming));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|t| {
                let (client, stop, sent) = (&client, &stop_producing, &sent);
                s.spawn(move || producer(client, TOPIC, PARTITIONS, t, stop, sent))
            })
            .collect();
        let consumers: Vec<_> = consumer_clients
            .iter()
            .zip(&consumer_seeds)
            .enumerate()
            .map(|(c, (client, &seed))| {
                let stop = &stop_consuming;
                s.spawn(move || consumer(client, c, seed, stop))
            })
            .collect();
        settle(
            Duration::from_secs(30),
            "acknowledgements on every partition",
            || {
                sent.lock()
                    .expect("sent")
                    .acked_since(started, PARTITIONS, 1)
            },
        );

        // This thread is the nemesis.
        let until = Instant::now() + Duration::from_secs(seconds);
        let faults = nemesis(&mut cluster, &mut logs, &mut rng, until, &sent);

        stop_producing.store(true, Ordering::Relaxed);
        for p in producers {
            p.join().expect("a producer thread");
        }
        let took = settle(
            HEAL,
            "every copy in sync after the producers stopped",
            || {
                let all: Vec<&Broker> = cluster.live().collect();
                in_sync(&all, TOPIC)
            },
        );
        println!("every copy in sync {took:.1?} after the producers stopped");
        stop_consuming.store(true, Ordering::Relaxed);
        let consumed: Vec<Consumed> = consumers
            .into_iter()
            .map(|c| c.join().expect("a consumer thread"))
            .collect();
        (faults, consumed)
    });
    let seconds_run = started.elapsed().as_secs_f64();
    let sent = sent.into_inner().expect("sent");
    for (c, con) in consumed.iter().enumerate() {
        println!(
            "consumer {c}: {} messages read ({} offsets), {} rewinds to 0, {} failed fetches; \
             first: {:?}",
            con.reads,
            con.seen.len(),
            con.rewinds,
            con.errors,
            con.first_errors
        );
    }
    println!(
        "producers: {} acknowledged, {} not; first errors: {:?}",
        sent.acked_count(),
        sent.unacked.values().map(Vec::len).sum::<usize>(),
        sent.errors
    );

    let log = read_all(&client, TOPIC, PARTITIONS);
    let verdict = catch_unwind(AssertUnwindSafe(|| {
        let total = check_exactly_once(&log, &sent);
        let offsets = check_reads_kept(&consumed, &log);
        // Stopped here (SIGTERM, exit 0, no panic: else a finding) rather than by
        // `stop_and_compare_copies`, which then finds them stopped and compares their copies.
        for id in 0..3 {
            take_down(&mut cluster, &mut logs, id, true);
        }
        stop_and_compare_copies(&mut cluster, TOPIC, &log);
        (total, offsets)
    }));
    let faults = faults
        .iter()
        .map(|(f, n)| format!("{} {n}", f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let reads: usize = consumed.iter().map(|c| c.reads).sum();
    let result = match &verdict {
        Ok((total, offsets)) => format!(
            "data OK ({total} messages in the final log, {offsets} of their offsets read by \
             consumers, 3 identical copies)"
        ),
        Err(_) => "data VIOLATION (see the panic above)".to_string(),
    };
    let brokers = match logs.findings.len() {
        0 => "brokers OK (no panic, exit 0 on every SIGTERM)".to_string(),
        n => format!("brokers FAILED ({n} findings below)"),
    };
    println!(
        "checker summary: seed {seed}, {seconds_run:.0} s, faults: {}, {} acknowledged, {reads} \
         reads recorded, result: {result}, {brokers}",
        if faults.is_empty() { "none" } else { &faults },
        sent.acked_count()
    );
    for finding in &logs.findings {
        println!("  {finding}");
    }
    if let Err(panic) = verdict {
        resume_unwind(panic);
    }
    assert!(
        logs.findings.is_empty(),
        "the data checks passed, but:\n{}",
        logs.findings.join("\n")
    );
}
