//! Data replication in a three-broker cluster (replication factor 3), end to end and under
//! faults: every acknowledged message reaches every replica, byte for byte on disk; a leader
//! killed with `kill -9` or frozen with SIGSTOP past the node timeout is replaced by an
//! in-sync replica with a higher leader epoch, no acknowledged message is lost, and on its
//! return the old leader truncates what it alone held, catches up and rejoins the ISR (also
//! one back, with a tail lost, before it was declared down: it leads again only at a new
//! epoch), and once in sync leads its preferred partitions again; after every broker is
//! killed, two of three serve again without the third; a
//! replica whose data directory is wiped rebuilds its copies from its peers, starting over at
//! their log starts when their retention deleted what it lacks; with fewer
//! in-sync replicas than `--min-insync-replicas` a produce answers 503 and nothing of it is
//! ever read.
//!
//! Each test ends with the same check ([`check_exactly_once`]): read from the partitions'
//! leaders, every acknowledged message is there once, at the offset its acknowledgement
//! named, each key's values in the order they were produced, and nothing that was never sent.
//! Producers are idempotent `broker-client`s given all three URLs (they follow 421s to new
//! leaders and retry with the same producer and seq). Copies on disk are read with
//! `broker-log` from a copy of a stopped broker's partition directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use broker_client::{
    encode_batch, partition_for_key, push_record, BatchAck, BrokerClient, ClientConfig, Encoding,
    Idempotence, RetryPolicy, BATCHES,
};
use broker_log::{FsyncPolicy, LogConfig, PartitionLog};
use serde_json::Value;

use crate::cluster::{Cluster, TOKEN};
use crate::harness::{pinned, tempdir, Broker};

/// A client given all three brokers' URLs (a dead one is passed over; a frozen one costs a
/// request timeout, kept short), retrying for up to 30 s.
pub(crate) fn client_of(cluster: &Cluster) -> BrokerClient {
    let urls: Vec<String> = (0..3).map(|id| cluster.url(id)).collect();
    let mut config = ClientConfig::new(urls.join(",")).token(Some(TOKEN.to_string()));
    config.request_timeout = Duration::from_secs(5);
    config.retry = RetryPolicy {
        give_up_after: Some(Duration::from_secs(30)),
        ..RetryPolicy::default()
    };
    BrokerClient::new(config)
}

/// Polls `check` until it answers `Ok`, panicking after `timeout` with `what` and the last
/// reason it gave; answers how long it took.
pub(crate) fn settle(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<(), String>,
) -> Duration {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return start.elapsed(),
            Err(why) if start.elapsed() >= timeout => {
                panic!("timed out after {timeout:?} waiting for {what}: {why}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `GET /v1/topics/{topic}` at `b`: its description of each partition, in partition order.
pub(crate) fn describe(b: &Broker, topic: &str) -> Result<Vec<Value>, String> {
    let r = b.get(&format!("/v1/topics/{topic}"));
    if r.status != 200 {
        return Err(format!(
            "{} answered {} to describe {topic}: {}",
            b.url,
            r.status,
            r.text()
        ));
    }
    Ok(r.json()["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// A numeric field of a partition's description; panics naming it when it is absent.
pub(crate) fn field(p: &Value, name: &str) -> u64 {
    p[name]
        .as_u64()
        .unwrap_or_else(|| panic!("a partition description without a numeric {name:?}: {p}"))
}

/// `Ok` once all of `brokers` describe the same leader and epoch for each partition, an ISR of
/// all three brokers, and a copy as long as the leader's (`replica_end_offset`), with the
/// leader's high watermark at its end; else everything that is not so yet.
pub(crate) fn in_sync(brokers: &[&Broker], topic: &str) -> Result<(), String> {
    let mut views = Vec::new();
    for b in brokers {
        views.push((b.url.as_str(), describe(b, topic)?));
    }
    let mut lagging = Vec::new();
    for (i, p) in views[0].1.iter().enumerate() {
        let Some(leader) = p["leader"].as_str() else {
            lagging.push(format!("partition {i} has no leader: {p}"));
            continue;
        };
        let Some((_, at_leader)) = views.iter().find(|(url, _)| *url == leader) else {
            lagging.push(format!("partition {i}: its leader {leader} is not running"));
            continue;
        };
        let end = field(&at_leader[i], "replica_end_offset");
        let hw = field(&at_leader[i], "high_watermark");
        if hw != end {
            lagging.push(format!(
                "partition {i}: high watermark {hw} at the leader {leader}, its copy ends at {end}"
            ));
        }
        for (url, view) in &views {
            let q = &view[i];
            if (&q["leader"], &q["leader_epoch"]) != (&p["leader"], &p["leader_epoch"]) {
                lagging.push(format!(
                    "partition {i}: {url} says leader {} epoch {}, {} says {leader} epoch {}",
                    q["leader"], q["leader_epoch"], views[0].0, p["leader_epoch"]
                ));
            }
            let copy = field(q, "replica_end_offset");
            if copy != end {
                lagging.push(format!(
                    "partition {i}: {url}'s copy ends at {copy}, the leader's at {end}"
                ));
            }
            if q["isr"].as_array().map(Vec::len) != Some(3) {
                lagging.push(format!(
                    "partition {i}: {url} describes the ISR {}",
                    q["isr"]
                ));
            }
        }
    }
    if lagging.is_empty() {
        Ok(())
    } else {
        Err(lagging.join("; "))
    }
}

/// `Ok` once every partition's leader counts broker `id`, back after a fault, in its ISR (as
/// it describes the partition); panics at once if a leader counts it while its copy ends below
/// that leader's high watermark (an ISR member holds everything acknowledged).
pub(crate) fn in_every_isr(cluster: &Cluster, id: usize, topic: &str) -> Result<(), String> {
    let back = cluster.broker(id);
    // The leaders first: `back`'s copy only grows after (a truncation never cuts below the
    // high watermark), so reading it second cannot make it look shorter than it was.
    let (mut counted, mut missing) = (Vec::new(), Vec::new());
    for leader in cluster.live().filter(|b| b.url != back.url) {
        for p in describe(leader, topic)? {
            if p["leader"] != leader.url.as_str() {
                continue;
            }
            let partition = field(&p, "partition") as usize;
            if p["isr"]
                .as_array()
                .is_some_and(|isr| isr.contains(&Value::from(id)))
            {
                counted.push((leader.url.clone(), partition, field(&p, "high_watermark")));
            } else {
                missing.push(format!(
                    "partition {partition}: ISR {} at {}",
                    p["isr"], leader.url
                ));
            }
        }
    }
    let own = describe(back, topic)?;
    for (leader, partition, hw) in counted {
        let end = field(&own[partition], "replica_end_offset");
        assert!(
            end >= hw,
            "broker {id} is in the ISR of partition {partition} (says its leader {leader}) with \
             its copy ending at {end}, below the leader's high watermark {hw}"
        );
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("broker {id} missing from: {}", missing.join("; ")))
    }
}

/// Waits (up to 30 s) until every running broker's copy of `topic` is in sync ([`in_sync`]).
pub(crate) fn all_in_sync(cluster: &Cluster, topic: &str) {
    let all: Vec<&Broker> = cluster.live().collect();
    settle(Duration::from_secs(30), "every copy in sync", || {
        in_sync(&all, topic)
    });
}

/// The end of a test that produced `sent` to `topic`: every copy in sync, every acknowledged
/// message read once ([`check_exactly_once`]), then the brokers stopped and their copies
/// compared on disk ([`stop_and_compare_copies`]).
fn settle_and_check(
    cluster: &mut Cluster,
    client: &BrokerClient,
    topic: &str,
    partitions: u32,
    sent: &Sent,
) {
    all_in_sync(cluster, topic);
    let read = read_all(client, topic, partitions);
    assert_eq!(check_exactly_once(&read, sent), sent.acked_count());
    stop_and_compare_copies(cluster, topic, &read);
}

/// `Ok` once broker `id`, back after a fault, is in every ISR ([`in_every_isr`], checked on
/// the way) and in sync ([`in_sync`] over the running brokers: only while nothing is produced).
fn rejoined(cluster: &Cluster, id: usize, topic: &str) -> Result<(), String> {
    in_every_isr(cluster, id, topic)?;
    let all: Vec<&Broker> = cluster.live().collect();
    in_sync(&all, topic)
}

/// `Ok` once each of `brokers` describes, for every partition that `before` shows led by
/// `gone`, a leader other than `gone` with a higher leader epoch.
pub(crate) fn moved_from(
    brokers: &[&Broker],
    topic: &str,
    before: &[Value],
    gone: usize,
) -> Result<(), String> {
    let mut pending = Vec::new();
    for b in brokers {
        for (old, now) in before.iter().zip(describe(b, topic)?) {
            if old["leader_id"].as_u64() != Some(gone as u64) {
                continue;
            }
            let moved = now["leader_id"].as_u64().is_some_and(|l| l != gone as u64)
                && field(&now, "leader_epoch") > field(old, "leader_epoch");
            if !moved {
                pending.push(format!(
                    "{} describes partition {} as led by {} in epoch {} (before: {gone} in epoch {})",
                    b.url, old["partition"], now["leader_id"], now["leader_epoch"], old["leader_epoch"]
                ));
            }
        }
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(pending.join("; "))
    }
}

/// Creates `topic` through the client and waits until every broker describes it in sync,
/// each partition on all three; answers the description.
pub(crate) fn created(
    cluster: &Cluster,
    client: &BrokerClient,
    topic: &str,
    partitions: u32,
) -> Vec<Value> {
    assert!(client
        .create_topic(topic, partitions)
        .expect("create the topic"));
    let all: Vec<&Broker> = cluster.live().collect();
    settle(
        Duration::from_secs(20),
        "a new topic in sync everywhere",
        || in_sync(&all, topic),
    );
    let description = describe(all[0], topic).expect("describe");
    for p in &description {
        assert_eq!(p["replicas"].as_array().map(Vec::len), Some(3), "{p}");
    }
    description
}

/// The node id of the leader of `partition` in a description.
fn leader_of(description: &[Value], partition: usize) -> usize {
    field(&description[partition], "leader_id") as usize
}

/// A key the broker's hash sends to `partition` of `partitions`.
fn key_for(prefix: &str, partition: u32, partitions: u32) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|k| partition_for_key(k.as_bytes(), partitions) == partition)
        .unwrap_or_default()
}

/// What the producers sent, by key: the values acknowledged, with the partition and offset
/// their acknowledgement named, and those sent without one (they may be stored, once).
#[derive(Default)]
pub(crate) struct Sent {
    pub(crate) acked: BTreeMap<String, BTreeMap<u64, (u32, u64)>>,
    pub(crate) unacked: BTreeMap<String, Vec<u64>>,
    /// When each acknowledgement came, and for which partition.
    acked_at: Vec<(Instant, u32)>,
    /// The first errors the producers got.
    pub(crate) errors: Vec<String>,
}

impl Sent {
    fn ack(&mut self, key: &str, n: u64, partition: u32, offset: u64) {
        self.acked
            .entry(key.to_string())
            .or_default()
            .insert(n, (partition, offset));
        self.acked_at.push((Instant::now(), partition));
    }

    fn note(&mut self, key: &str, n: u64, partition: u32, result: broker_client::Result<BatchAck>) {
        match result {
            Ok(ack) => self.ack(key, n, partition, ack.base_offset),
            Err(e) => {
                self.unacked.entry(key.to_string()).or_default().push(n);
                if self.errors.len() < 10 {
                    self.errors.push(format!("{key}={n}: {e}"));
                }
            }
        }
    }

    pub(crate) fn acked_count(&self) -> usize {
        self.acked.values().map(BTreeMap::len).sum()
    }

    /// `Ok` once every partition of `partitions` had `at_least` acknowledgements after `since`.
    pub(crate) fn acked_since(
        &self,
        since: Instant,
        partitions: u32,
        at_least: usize,
    ) -> Result<(), String> {
        let short: Vec<String> = (0..partitions)
            .filter_map(|p| {
                let n = self
                    .acked_at
                    .iter()
                    .filter(|(t, q)| *q == p && *t > since)
                    .count();
                (n < at_least).then(|| format!("partition {p}: {n}"))
            })
            .collect();
        if short.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "acknowledgements per partition: {}; the producers' first errors: {:?}",
                short.join(", "),
                self.errors
            ))
        }
    }
}

/// Produces value `{"n":n}` under `key` as an idempotent binary batch of its own.
fn produce_one(
    client: &BrokerClient,
    topic: &str,
    partitions: u32,
    (key, n): (&str, u64),
    id: Idempotence<'_>,
    sent: &Mutex<Sent>,
) {
    let partition = partition_for_key(key.as_bytes(), partitions);
    let value = format!("{{\"n\":{n}}}");
    let batch = encode_batch([(key.as_bytes(), value.as_bytes())]);
    let result = client.produce_batch(topic, partition, &batch, Some(id));
    sent.lock().expect("sent").note(key, n, partition, result);
}

/// One idempotent producer sending one message at a time under the keys `GPU-0`…`GPU-7` in
/// turn, each key's values 0, 1, 2…, recording what was acknowledged.
pub(crate) struct Sequential<'a> {
    client: &'a BrokerClient,
    topic: &'a str,
    partitions: u32,
    name: &'a str,
    seq: u64,
    sent: Mutex<Sent>,
}

impl<'a> Sequential<'a> {
    pub(crate) fn new(
        client: &'a BrokerClient,
        topic: &'a str,
        partitions: u32,
        name: &'a str,
    ) -> Self {
        Sequential {
            client,
            topic,
            partitions,
            name,
            seq: 0,
            sent: Mutex::new(Sent::default()),
        }
    }

    /// Sends the next `count` messages.
    pub(crate) fn produce(&mut self, count: u64) {
        for _ in 0..count {
            let seq = self.seq;
            let key = format!("GPU-{}", seq % 8);
            let id = Idempotence {
                producer: self.name,
                seq,
            };
            let (topic, partitions) = (self.topic, self.partitions);
            produce_one(
                self.client,
                topic,
                partitions,
                (&key, seq / 8),
                id,
                &self.sent,
            );
            self.seq += 1;
        }
    }

    /// What was sent, every message of it acknowledged (else the test fails, naming the
    /// first errors).
    pub(crate) fn acknowledged_all(self) -> Sent {
        let sent = self.sent.into_inner().expect("sent");
        assert!(
            sent.unacked.is_empty(),
            "produces failed: {:?}",
            sent.errors
        );
        sent
    }
}

/// Producer `t` until `stop`: its keys `k{t}-0`…`k{t}-4` in turn, each key's values 0, 1,
/// 2…, each message an idempotent batch (producer `p{t}`, seq counting up), one at a time.
pub(crate) fn producer(
    client: &BrokerClient,
    topic: &str,
    partitions: u32,
    t: usize,
    stop: &AtomicBool,
    sent: &Mutex<Sent>,
) {
    let name = format!("p{t}");
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("k{t}-{}", seq % 5);
        let id = Idempotence {
            producer: &name,
            seq,
        };
        produce_one(client, topic, partitions, (&key, seq / 5), id, sent);
        seq += 1;
    }
}

/// `Ok` once `sent` holds `count` acknowledged messages.
fn at_least(sent: &Sent, count: usize) -> Result<(), String> {
    match sent.acked_count() {
        n if n >= count => Ok(()),
        n => Err(format!("{n} so far; first errors: {:?}", sent.errors)),
    }
}

/// Sets the flag when dropped: producer threads stop when the test panics too.
pub(crate) struct StopOnDrop<'a>(pub(crate) &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Sends SIGCONT when dropped: a frozen broker resumes when the test panics too (so that
/// requests parked on it end).
pub(crate) struct ContOnDrop<'a>(pub(crate) &'a Broker);

impl Drop for ContOnDrop<'_> {
    fn drop(&mut self) {
        self.0.signal(libc::SIGCONT);
    }
}

/// One message as read: `(offset, key, n)`.
pub(crate) type Read = (u64, String, u64);

/// Every partition of `topic`, read from its leader through `client` (up to the high
/// watermark).
pub(crate) fn read_all(client: &BrokerClient, topic: &str, partitions: u32) -> Vec<Vec<Read>> {
    (0..partitions)
        .map(|p| {
            let mut out = Vec::new();
            let mut offset = 0;
            loop {
                let f = client
                    .fetch(topic, p, offset, 10_000, Duration::ZERO, Encoding::Ndjson)
                    .unwrap_or_else(|e| panic!("fetch of partition {p} at {offset}: {e}"));
                for m in f.messages().items {
                    let m = m.unwrap_or_else(|bad| panic!("partition {p}: a bad line {bad:?}"));
                    let value: Value = serde_json::from_str(m.value).expect("a JSON value");
                    let key = m.key.map(|k| k.into_owned()).unwrap_or_default();
                    out.push((m.offset, key, value["n"].as_u64().expect("n")));
                }
                if f.next_offset == offset || f.next_offset >= f.log_end_offset {
                    break out;
                }
                offset = f.next_offset;
            }
        })
        .collect()
}

/// Checks what was read (`read[p]`: partition `p`) against `sent`: each acknowledged message
/// at the partition and offset its acknowledgement named; each key's values strictly rising
/// (in order, none twice); every message read was sent, to the partition of its key. Answers
/// how many messages were read.
pub(crate) fn check_exactly_once(read: &[Vec<Read>], sent: &Sent) -> usize {
    let partitions = read.len() as u32;
    let mut problems = Vec::new();
    let mut by_key: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut at: BTreeMap<(u32, u64), (&str, u64)> = BTreeMap::new();
    for (p, messages) in read.iter().enumerate() {
        for (offset, key, n) in messages {
            at.insert((p as u32, *offset), (key, *n));
            by_key.entry(key).or_default().push(*n);
            let acked = sent.acked.get(key).is_some_and(|a| a.contains_key(n));
            let unacked = sent.unacked.get(key).is_some_and(|u| u.contains(n));
            if !acked && !unacked {
                problems.push(format!(
                    "partition {p} offset {offset}: {key}={n} was never sent"
                ));
            }
            if partition_for_key(key.as_bytes(), partitions) != p as u32 {
                problems.push(format!(
                    "partition {p} offset {offset}: {key} belongs elsewhere"
                ));
            }
        }
    }
    for (key, ns) in &by_key {
        if let Some(w) = ns.windows(2).find(|w| w[0] >= w[1]) {
            problems.push(format!(
                "{key}: {} read after {} (doubled or out of order)",
                w[1], w[0]
            ));
        }
    }
    for (key, acked) in &sent.acked {
        for (n, (p, offset)) in acked {
            match at.get(&(*p, *offset)) {
                Some((k, m)) if k == key && m == n => {}
                other => problems.push(format!(
                    "acknowledged {key}={n} at partition {p} offset {offset}; read there: {other:?}"
                )),
            }
        }
    }
    let total: usize = read.iter().map(Vec::len).sum();
    assert_no_problems(
        &problems,
        &format!(
            "in the {total} messages read against the {} acknowledged",
            sent.acked_count()
        ),
    );
    total
}

/// Fails with the count and the first 30 of `problems`, if any.
pub(crate) fn assert_no_problems(problems: &[String], what: &str) {
    assert!(
        problems.is_empty(),
        "{} problems {what} (first 30):\n{}",
        problems.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Broker `id`'s copy of `topic`/`partition` on disk (the broker stopped), read from a copy of
/// the partition's directory: its batches' bytes and its messages.
fn on_disk(cluster: &Cluster, id: usize, topic: &str, partition: usize) -> (Vec<u8>, Vec<Read>) {
    let dir = cluster
        .dir(id)
        .join("topics")
        .join(topic)
        .join(partition.to_string());
    let copy = tempdir();
    copy_dir(&dir, copy.path());
    let config = LogConfig {
        segment_bytes: 1 << 20,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(copy.path(), config)
        .unwrap_or_else(|e| panic!("broker {id}'s copy of partition {partition}: {e}"));
    let (mut messages, mut offset) = (Vec::new(), log.start_offset());
    while offset < log.end_offset() {
        let records = log.read(offset, 10_000, 8 << 20).expect("read a copy");
        for r in &records {
            let value: Value = serde_json::from_slice(&r.value).expect("a JSON value");
            let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            messages.push((r.offset, key, value["n"].as_u64().expect("n")));
        }
        offset = records.last().map_or(log.end_offset(), |r| r.offset + 1);
    }
    let bytes = log
        .read_encoded(log.start_offset(), usize::MAX)
        .expect("read a copy");
    (bytes, messages)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a directory");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy a file");
        }
    }
}

/// Stops every broker (SIGTERM, exit 0), then checks that the three copies of each partition
/// on disk are the same bytes and hold exactly the messages `read` from its leader.
pub(crate) fn stop_and_compare_copies(cluster: &mut Cluster, topic: &str, read: &[Vec<Read>]) {
    for b in cluster.brokers.iter_mut().filter_map(Option::take) {
        assert_eq!(b.stop(), Some(0));
    }
    for (p, messages) in read.iter().enumerate() {
        let (leader_bytes, _) = on_disk(cluster, 0, topic, p);
        for id in 0..3 {
            let (bytes, on_disk_messages) = on_disk(cluster, id, topic, p);
            assert!(
                &on_disk_messages == messages,
                "broker {id}'s copy of partition {p} on disk holds {} messages, its leader served \
                 {}; the first difference (on disk, served): {:?}",
                on_disk_messages.len(),
                messages.len(),
                on_disk_messages
                    .iter()
                    .map(Some)
                    .chain(std::iter::repeat(None))
                    .zip(messages.iter().map(Some).chain(std::iter::repeat(None)))
                    .find(|(a, b)| a != b)
            );
            assert!(
                bytes == leader_bytes,
                "broker {id}'s copy of partition {p} is not byte for byte broker 0's ({} and {} bytes)",
                bytes.len(),
                leader_bytes.len()
            );
        }
    }
}

#[test]
fn every_acknowledged_message_reaches_every_replica() {
    const TOPIC: &str = "replicated";
    let mut cluster = Cluster::start();
    let client = client_of(&cluster);
    created(&cluster, &client, TOPIC, 3);

    // 300 messages: 12 keys, each request 5 consecutive values of one key (one partition, so
    // one leader), idempotent.
    let mut sent = Sent::default();
    for seq in 0..60u64 {
        let key = format!("GPU-{}", seq % 12);
        let first = seq / 12 * 5;
        let mut body = Vec::new();
        for n in first..first + 5 {
            push_record(&mut body, &key, &serde_json::json!({ "n": n })).expect("encode");
        }
        let id = Idempotence {
            producer: "one",
            seq,
        };
        let ack = client
            .produce(TOPIC, &body, Some(id))
            .unwrap_or_else(|e| panic!("produce {seq}: {e}"));
        assert_eq!(ack.results.len(), 5, "{ack:?}");
        for (n, r) in (first..).zip(&ack.results) {
            sent.ack(&key, n, r.partition, r.offset);
        }
    }

    let all: Vec<&Broker> = cluster.live().collect();
    let took = settle(
        Duration::from_secs(20),
        "every copy to hold every message",
        || in_sync(&all, TOPIC),
    );
    println!("every replica in sync {took:?} after the last acknowledgement");
    let read = read_all(&client, TOPIC, 3);
    assert_eq!(check_exactly_once(&read, &sent), 300);
    // Each copy ends where the leader's does: at the partition's message count.
    for b in &all {
        for (p, d) in describe(b, TOPIC).expect("describe").iter().enumerate() {
            assert_eq!(
                field(d, "replica_end_offset"),
                read[p].len() as u64,
                "{}: {d}",
                b.url
            );
        }
    }
    stop_and_compare_copies(&mut cluster, TOPIC, &read);
}

#[test]
fn a_killed_leader_is_replaced_and_loses_no_acknowledged_message() {
    const TOPIC: &str = "killed";
    const PARTITIONS: u32 = 6;
    let mut cluster = Cluster::start();
    let client = client_of(&cluster);
    let before = created(&cluster, &client, TOPIC, PARTITIONS);
    let victim = leader_of(&before, 0);

    let sent = Mutex::new(Sent::default());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        for t in 0..4 {
            let (client, stop, sent) = (&client, &stop, &sent);
            s.spawn(move || producer(client, TOPIC, PARTITIONS, t, stop, sent));
        }
        settle(Duration::from_secs(30), "200 acknowledged messages", || {
            at_least(&sent.lock().expect("sent"), 200)
        });

        cluster.kill9(victim);
        let survivors: Vec<&Broker> = cluster.live().collect();
        let took = settle(
            Duration::from_secs(15),
            "the survivors to elect new leaders for the partitions of the killed broker",
            || moved_from(&survivors, TOPIC, &before, victim),
        );
        println!("kill -9 of broker {victim}: its partitions had new leaders after {took:?}");

        // The producers go on, on every partition, the killed broker's included.
        let elected = Instant::now();
        settle(
            Duration::from_secs(30),
            "acknowledgements after the failover",
            || {
                sent.lock()
                    .expect("sent")
                    .acked_since(elected, PARTITIONS, 20)
            },
        );
        stop.store(true, Ordering::Relaxed);
    });
    let sent = sent.into_inner().expect("sent");
    let read = read_all(&client, TOPIC, PARTITIONS);
    let total = check_exactly_once(&read, &sent);
    println!(
        "{total} messages read, {} acknowledged, {} not acknowledged; first errors: {:?}",
        sent.acked_count(),
        sent.unacked.values().map(Vec::len).sum::<usize>(),
        sent.errors
    );

    // Back on its port and data directory: it truncates what it alone held, catches up and
    // rejoins every ISR, and the data is still exactly what was acknowledged.
    cluster.restart(victim);
    let took = settle(
        Duration::from_secs(30),
        "the restarted broker in sync",
        || rejoined(&cluster, victim, TOPIC),
    );
    println!("broker {victim} back in every ISR {took:?} after its restart");
    // What a consumer read before stays, at the same offsets (past it, only messages sent
    // without an acknowledgement may have become readable).
    let again = read_all(&client, TOPIC, PARTITIONS);
    for (p, (before, after)) in read.iter().zip(&again).enumerate() {
        assert!(
            after.starts_with(before),
            "partition {p} changed when broker {victim} came back: {} messages read before, {} \
             after, first difference at {:?}",
            before.len(),
            after.len(),
            before.iter().zip(after).find(|(a, b)| a != b)
        );
    }
    check_exactly_once(&again, &sent);
    stop_and_compare_copies(&mut cluster, TOPIC, &again);
}

/// A leader killed and back before anyone declared it down (a node timeout longer than its
/// restart) may have lost the tail its kernel had not synced — a power loss with
/// `--fsync interval`, done here by cutting its logs on disk while it is down. It must not
/// lead again at the epoch it led: its followers would cut acknowledged messages to its
/// shorter log. Its registration as a new run moves its leaderships on, so every
/// acknowledged message survives and the copies converge.
#[test]
fn a_leader_restarted_within_the_node_timeout_with_a_lost_tail_loses_nothing_acknowledged() {
    const TOPIC: &str = "lost-tail";
    const PARTITIONS: u32 = 3;
    let slow_to_declare = |_| ["--node-timeout-ms", "15000"].map(String::from).to_vec();
    let mut cluster = Cluster::start_with(slow_to_declare);
    let client = client_of(&cluster);
    let before = created(&cluster, &client, TOPIC, PARTITIONS);
    let victim = leader_of(&before, 0);
    let led: Vec<usize> = (0..before.len())
        .filter(|&p| leader_of(&before, p) == victim)
        .collect();

    let mut producer = Sequential::new(&client, TOPIC, PARTITIONS, "t");
    producer.produce(150);
    cluster.kill9(victim);
    // What a power loss takes: the last batches of every log it led, acknowledged (they are
    // on the followers) but gone from its disk.
    let mut cut = Vec::new();
    for &p in &led {
        let dir = cluster
            .dir(victim)
            .join("topics")
            .join(TOPIC)
            .join(p.to_string());
        let config = LogConfig {
            fsync: FsyncPolicy::Always,
            ..LogConfig::default()
        };
        let mut log = PartitionLog::open(&dir, config).expect("open the killed leader's log");
        let end = log.end_offset();
        let new_end = log
            .truncate_to(end.saturating_sub(10))
            .expect("cut its tail");
        cut.push((p, end, new_end));
    }
    println!("broker {victim}'s logs cut (partition, end, new end): {cut:?}");
    assert!(cut.iter().any(|&(_, end, new_end)| new_end < end));
    cluster.restart(victim);
    let now = describe(cluster.broker(victim), TOPIC).expect("describe");
    for &p in &led {
        assert!(
            field(&now[p], "leader_epoch") > field(&before[p], "leader_epoch"),
            "partition {p} is led at a new epoch after its leader's restart: {}",
            now[p]
        );
    }
    producer.produce(50);
    let sent = producer.acknowledged_all();
    settle_and_check(&mut cluster, &client, TOPIC, PARTITIONS, &sent);
}

/// Every broker killed at once, and one of them never comes back: the metadata still has it
/// in every ISR, and each returning broker's registration hands its partitions on towards
/// it. Once it is declared down, the partitions have no live ISR member; a broker that left
/// their ISRs only by restarting leads them, the other rejoins, and nothing acknowledged is
/// lost (kill -9 loses no write the kernel had).
#[test]
fn after_every_broker_is_killed_two_of_three_serve_again() {
    const TOPIC: &str = "all-killed";
    const PARTITIONS: u32 = 3;
    let mut cluster = Cluster::start();
    let client = client_of(&cluster);
    created(&cluster, &client, TOPIC, PARTITIONS);
    let mut producer = Sequential::new(&client, TOPIC, PARTITIONS, "a");
    producer.produce(90);
    for id in 0..3 {
        cluster.kill9(id);
    }
    cluster.restart_together(&[0, 1]);
    let survivors: Vec<&Broker> = cluster.live().collect();
    let took = settle(
        Duration::from_secs(30),
        "every partition led, with both survivors in sync",
        || {
            for b in &survivors {
                for p in describe(b, TOPIC)? {
                    let isr = p["isr"].as_array().map(Vec::len);
                    if p["leader_id"].as_u64().is_none_or(|l| l == 2) || isr != Some(2) {
                        return Err(format!("{}: {p}", b.url));
                    }
                }
            }
            Ok(())
        },
    );
    println!("two of three brokers serve every partition {took:?} after their restart");
    producer.produce(60);
    let sent = producer.acknowledged_all();
    let read = read_all(&client, TOPIC, PARTITIONS);
    assert_eq!(check_exactly_once(&read, &sent), sent.acked_count());
}

/// After a failover the partitions of a killed leader stay with other brokers until it is
/// back in sync; then, `--leader-rebalance-ms` later, each partition is led by its preferred
/// replica again (leadership spreads back), with nothing acknowledged lost on the way.
#[test]
fn leadership_returns_to_the_preferred_replicas_once_back_in_sync() {
    const TOPIC: &str = "preferred";
    const PARTITIONS: u32 = 3;
    let quick = |_| ["--leader-rebalance-ms", "1000"].map(String::from).to_vec();
    let mut cluster = Cluster::start_with(quick);
    let client = client_of(&cluster);
    let before = created(&cluster, &client, TOPIC, PARTITIONS);
    let preferred: Vec<usize> = (0..before.len()).map(|p| leader_of(&before, p)).collect();
    let victim = preferred[0];
    let mut producer = Sequential::new(&client, TOPIC, PARTITIONS, "p");
    producer.produce(60);
    cluster.kill9(victim);
    let survivors: Vec<&Broker> = cluster.live().collect();
    settle(Duration::from_secs(15), "new leaders", || {
        moved_from(&survivors, TOPIC, &before, victim)
    });
    producer.produce(60);
    cluster.restart(victim);
    let took = settle(
        Duration::from_secs(30),
        "every partition led by its preferred replica",
        || {
            let now = describe(cluster.broker(victim), TOPIC)?;
            let leaders: Vec<usize> = (0..now.len()).map(|p| leader_of(&now, p)).collect();
            if leaders == preferred {
                Ok(())
            } else {
                Err(format!("leaders {leaders:?}, preferred {preferred:?}"))
            }
        },
    );
    println!("broker {victim} led its preferred partitions again {took:?} after its restart");
    let now = describe(cluster.broker(victim), TOPIC).expect("describe");
    assert!(field(&now[0], "leader_epoch") > field(&before[0], "leader_epoch"));
    producer.produce(60);
    let sent = producer.acknowledged_all();
    settle_and_check(&mut cluster, &client, TOPIC, PARTITIONS, &sent);
}

#[test]
fn a_frozen_leader_is_fenced_and_rejoins() {
    const TOPIC: &str = "frozen";
    const PARTITIONS: u32 = 3;
    let mut cluster = Cluster::start();
    let client = client_of(&cluster);
    let before = created(&cluster, &client, TOPIC, PARTITIONS);
    let frozen_id = leader_of(&before, 0);
    let raw_key = key_for("raw", 0, PARTITIONS);

    let sent = Mutex::new(Sent::default());
    let stop = AtomicBool::new(false);
    let raw = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        for t in 0..3 {
            let (client, stop, sent) = (&client, &stop, &sent);
            s.spawn(move || producer(client, TOPIC, PARTITIONS, t, stop, sent));
        }
        settle(Duration::from_secs(30), "100 acknowledged messages", || {
            at_least(&sent.lock().expect("sent"), 100)
        });

        // SIGSTOP: the process neither answers nor learns anything until SIGCONT.
        let frozen = cluster.broker(frozen_id);
        frozen.signal(libc::SIGSTOP);
        let _thaw = ContOnDrop(frozen);
        // A produce straight to the frozen leader, read by it only once it resumes.
        let raw_batch = encode_batch([(raw_key.as_bytes(), &b"{\"n\":0}"[..])]);
        let raw = s.spawn(move || {
            frozen.produce_body(
                TOPIC,
                "?partition=0&producer=raw&seq=0",
                BATCHES,
                &raw_batch,
            )
        });

        let survivors: Vec<&Broker> = cluster.live().filter(|b| b.url != frozen.url).collect();
        let took = settle(
            Duration::from_secs(15),
            "the survivors to elect new leaders for the partitions of the frozen broker",
            || moved_from(&survivors, TOPIC, &before, frozen_id),
        );
        println!("SIGSTOP of broker {frozen_id}: its partitions had new leaders after {took:?}");
        let elected = Instant::now();
        settle(
            Duration::from_secs(30),
            "acknowledgements while it is frozen",
            || {
                sent.lock()
                    .expect("sent")
                    .acked_since(elected, PARTITIONS, 10)
            },
        );

        frozen.signal(libc::SIGCONT);
        let resumed = Instant::now();
        let took = settle(
            Duration::from_secs(15),
            "the resumed broker to describe the new leaders",
            || moved_from(&[frozen], TOPIC, &before, frozen_id),
        );
        println!("after SIGCONT broker {frozen_id} knew it no longer leads after {took:?}");
        // While the producers go on: back in every ISR, acknowledgements on every partition.
        let took = settle(
            Duration::from_secs(30),
            "the resumed broker back in every ISR",
            || in_every_isr(&cluster, frozen_id, TOPIC),
        );
        println!("broker {frozen_id} back in every ISR {took:?} after SIGCONT");
        settle(
            Duration::from_secs(30),
            "acknowledgements after it resumed",
            || {
                sent.lock()
                    .expect("sent")
                    .acked_since(resumed, PARTITIONS, 10)
            },
        );
        stop.store(true, Ordering::Relaxed);
        raw.join().expect("the raw produce")
    });

    // The producers stopped: every copy alike.
    settle(
        Duration::from_secs(30),
        "every copy in sync after the producers stopped",
        || rejoined(&cluster, frozen_id, TOPIC),
    );
    // The raw produce counts as acknowledged only if it was answered 200.
    let mut sent = sent.into_inner().expect("sent");
    println!(
        "the produce sent to the frozen leader was answered {}: {}",
        raw.status,
        raw.text()
    );
    if raw.status == 200 {
        sent.ack(
            &raw_key,
            0,
            0,
            raw.json()["base_offset"].as_u64().expect("base_offset"),
        );
    } else {
        sent.unacked.entry(raw_key.clone()).or_default().push(0);
    }
    let read = read_all(&client, TOPIC, PARTITIONS);
    let total = check_exactly_once(&read, &sent);
    println!(
        "{total} messages read, {} acknowledged; first errors: {:?}",
        sent.acked_count(),
        sent.errors
    );

    // The old leader refuses a produce for partition 0, naming the new leader — unless the
    // leadership came back to it since (another broker declared down in turn: on a loaded
    // machine a health probe can time out), which its own description then says.
    let now = describe(cluster.broker(frozen_id), TOPIC).expect("describe");
    if now[0]["leader_id"] == frozen_id as u64 {
        println!(
            "partition 0 is led by broker {frozen_id} again: {:?}",
            now[0]
        );
        stop_and_compare_copies(&mut cluster, TOPIC, &read);
        return;
    }
    let r = cluster.broker(frozen_id).produce_body(
        TOPIC,
        "?partition=0",
        BATCHES,
        &encode_batch([(raw_key.as_bytes(), &b"{\"n\":1}"[..])]),
    );
    assert_eq!(
        r.status,
        421,
        "the old leader took a produce for partition 0: {}",
        r.text()
    );
    assert_eq!(r.json()["leader_id"], now[0]["leader_id"], "{}", r.text());
    stop_and_compare_copies(&mut cluster, TOPIC, &read);
}

#[test]
fn a_wiped_replica_rebuilds_from_its_peers() {
    const TOPIC: &str = "wiped";
    // Two partitions over three brokers: one broker leads neither.
    const PARTITIONS: u32 = 2;
    let mut cluster = Cluster::start();
    let client = client_of(&cluster);
    let before = created(&cluster, &client, TOPIC, PARTITIONS);
    let leaders: Vec<usize> = (0..before.len()).map(|p| leader_of(&before, p)).collect();
    let wiped = (0..3)
        .find(|id| !leaders.contains(id))
        .expect("a broker leading nothing");

    let mut producer = Sequential::new(&client, TOPIC, PARTITIONS, "w");
    producer.produce(200);
    all_in_sync(&cluster, TOPIC);

    // Its partition data gone; `meta/` (the Raft log, vote and snapshots) kept: a broker that
    // lost its Raft vote could vote twice in a term, a different failure, not this test's.
    let b = cluster.brokers[wiped].take().expect("the broker to wipe");
    assert_eq!(b.stop(), Some(0));
    let data = cluster.dir(wiped);
    std::fs::remove_dir_all(data.join("topics")).expect("wipe the topics directory");
    assert!(data.join("meta").is_dir(), "the Raft state is in meta/");
    // More messages while it is down (the two others in sync, once it is out of the ISR).
    producer.produce(100);
    cluster.restart(wiped);
    let took = settle(
        Duration::from_secs(30),
        "the wiped broker rebuilt and in sync",
        || rejoined(&cluster, wiped, TOPIC),
    );
    println!("broker {wiped} rebuilt its copies in {took:?}");
    producer.produce(100);
    let sent = producer.acknowledged_all();

    // Stop the leader of a partition the wiped broker follows next in line (it is then the
    // likely new leader), and read what the rebuilt broker serves.
    let now = describe(cluster.broker(wiped), TOPIC).expect("describe");
    let next_in_line = |p: &Value| {
        let replicas: Vec<u64> = p["replicas"]
            .as_array()
            .expect("replicas")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        let at = replicas
            .iter()
            .position(|r| Some(*r) == p["leader_id"].as_u64())
            .unwrap_or(0);
        replicas[(at + 1) % replicas.len()] == wiped as u64
    };
    let partition = now.iter().position(next_in_line).unwrap_or(0);
    let stopped = leader_of(&now, partition);
    let b = cluster.brokers[stopped].take().expect("the leader to stop");
    assert_eq!(b.stop(), Some(0));
    let survivors: Vec<&Broker> = cluster.live().collect();
    settle(
        Duration::from_secs(15),
        "new leaders after the leader stopped",
        || moved_from(&survivors, TOPIC, &now, stopped),
    );
    let read = read_all(&client, TOPIC, PARTITIONS);
    assert_eq!(check_exactly_once(&read, &sent), sent.acked_count());
    // `read` came from the leaders: where the rebuilt broker leads, from it.
    let led = describe(cluster.broker(wiped), TOPIC).expect("describe");
    let rebuilt_leads: Vec<usize> = (0..led.len())
        .filter(|&p| leader_of(&led, p) == wiped)
        .collect();
    for &p in &rebuilt_leads {
        let served: Vec<Read> = cluster
            .broker(wiped)
            .fetch_all(TOPIC, p as u32, 0)
            .iter()
            .map(|m| {
                let key = m["key"].as_str().expect("a key").to_string();
                (
                    m["offset"].as_u64().expect("offset"),
                    key,
                    m["value"]["n"].as_u64().expect("n"),
                )
            })
            .collect();
        assert_eq!(
            served, read[p],
            "partition {p} as the rebuilt broker serves it"
        );
    }
    println!("the rebuilt broker {wiped} leads partitions {rebuilt_leads:?} after broker {stopped} stopped");

    // The rebuilt copies are the others' byte for byte (the stopped leader's included: nothing
    // was produced after it stopped).
    stop_and_compare_copies(&mut cluster, TOPIC, &read);
}

/// Like [`a_wiped_replica_rebuilds_from_its_peers`], but while the replica is down its
/// leaders' retention deletes their first segments: its fetch from 0 is out of their logs, so
/// it starts its copies over at their log starts and is back in every ISR, holding what they
/// hold from there.
#[test]
fn a_replica_wiped_behind_its_leaders_retention_starts_over_at_their_log_start() {
    const TOPIC: &str = "retained";
    const PARTITIONS: u32 = 2;
    let small = |_| {
        ["--segment-bytes", "4096", "--retention-bytes", "8192"]
            .map(String::from)
            .to_vec()
    };
    let mut cluster = Cluster::start_with(small);
    let client = client_of(&cluster);
    let before = created(&cluster, &client, TOPIC, PARTITIONS);
    let leaders: Vec<usize> = (0..before.len()).map(|p| leader_of(&before, p)).collect();
    let wiped = (0..3)
        .find(|id| !leaders.contains(id))
        .expect("a broker leading nothing");
    let mut producer = Sequential::new(&client, TOPIC, PARTITIONS, "r");
    producer.produce(100);

    let b = cluster.brokers[wiped].take().expect("the broker to wipe");
    assert_eq!(b.stop(), Some(0));
    std::fs::remove_dir_all(cluster.dir(wiped).join("topics")).expect("wipe topics/");
    producer.produce(700);
    let starts = |b: &Broker| -> Result<Vec<u64>, String> {
        Ok(describe(b, TOPIC)?
            .iter()
            .map(|p| field(p, "log_start_offset"))
            .collect())
    };
    settle(
        Duration::from_secs(20),
        "retention past offset 0 at every leader",
        || {
            let mut behind = Vec::new();
            for (p, &leader) in leaders.iter().enumerate() {
                let start = starts(cluster.broker(leader))?[p];
                if start == 0 {
                    behind.push(format!("partition {p}'s leader {leader} starts at 0"));
                }
            }
            if behind.is_empty() {
                Ok(())
            } else {
                Err(behind.join("; "))
            }
        },
    );
    cluster.restart(wiped);
    let took = settle(
        Duration::from_secs(30),
        "the wiped broker back in every ISR",
        || rejoined(&cluster, wiped, TOPIC),
    );
    println!("broker {wiped} started its copies over in {took:?}");
    producer.produce(50);
    producer.acknowledged_all();
    let rebuilt_starts = starts(cluster.broker(wiped)).expect("describe");
    assert!(
        rebuilt_starts.iter().all(|&s| s > 0),
        "the rebuilt copies start past 0: {rebuilt_starts:?}"
    );

    // On disk: from where both hold it, the rebuilt copy is its leader's, to the same end.
    all_in_sync(&cluster, TOPIC);
    for b in cluster.brokers.iter_mut().filter_map(Option::take) {
        assert_eq!(b.stop(), Some(0));
    }
    for (p, &leader) in leaders.iter().enumerate() {
        let (_, at_leader) = on_disk(&cluster, leader, TOPIC, p);
        let (_, rebuilt) = on_disk(&cluster, wiped, TOPIC, p);
        let first = |copy: &[Read]| copy.first().map_or(u64::MAX, |m| m.0);
        let from = first(&at_leader).max(first(&rebuilt));
        let tail =
            |copy: &[Read]| -> Vec<Read> { copy.iter().filter(|m| m.0 >= from).cloned().collect() };
        assert!(!tail(&rebuilt).is_empty(), "partition {p}: an empty copy");
        assert_eq!(
            tail(&rebuilt),
            tail(&at_leader),
            "partition {p} from offset {from}"
        );
    }
}

#[test]
fn produce_is_refused_below_min_insync_replicas() {
    const TOPIC: &str = "guarded";
    let mut cluster = Cluster::start_with(|_| vec!["--min-insync-replicas".into(), "3".into()]);
    let client = client_of(&cluster);
    let before = created(&cluster, &client, TOPIC, 3);
    let leader = leader_of(&before, 0);
    let follower = (0..3).find(|&id| id != leader).expect("a follower");

    // All three in sync: acknowledged.
    let mut acked = vec![0];
    cluster.broker(leader).produce(TOPIC, "", &[pinned(0, 0)]);

    cluster.kill9(follower);
    // Until the leader drops the dead follower from the ISR, a produce cannot reach every ISR
    // member; after, the ISR is below the minimum: never 200 from now on, 503 once it shrank.
    let (mut refused, mut unknown) = (Vec::new(), Vec::new());
    let mut n = 0;
    let took = settle(
        Duration::from_secs(30),
        "a produce answered 503 with 2 of 3 in sync",
        || {
            n += 1;
            let r = cluster
                .broker(leader)
                .produce_raw(TOPIC, "", &[pinned(0, n)]);
            assert_ne!(
                r.status, 200,
                "produce {n} acknowledged with broker {follower} dead"
            );
            if r.status == 503 && r.text().contains("the batch was appended") {
                // Appended while the ISR was whole, refused when it shrank before the batch
                // was acknowledged: on the remaining replicas, so it may be read (as in Kafka).
                unknown.push(n);
                Err(format!(
                    "produce {n} refused after its append: {}",
                    r.text()
                ))
            } else if r.status == 503 {
                refused.push(n);
                Ok(())
            } else {
                unknown.push(n);
                Err(format!("produce {n} answered {}: {}", r.status, r.text()))
            }
        },
    );
    println!("503 {took:?} after kill -9 of follower {follower} (answers before: {unknown:?})");
    // It stays so, for NDJSON and binary batches, idempotent or not.
    for seq in 0..3u64 {
        n += 1;
        let r = cluster.broker(leader).produce_raw(
            TOPIC,
            &format!("?producer=g&seq={seq}"),
            &[pinned(0, n)],
        );
        assert_eq!(r.status, 503, "{}", r.text());
        refused.push(n);
        n += 1;
        let batch = encode_batch([(&b"k"[..], format!("{{\"n\":{n}}}").as_bytes())]);
        let r = cluster
            .broker(leader)
            .produce_body(TOPIC, "?partition=0", BATCHES, &batch);
        assert_eq!(r.status, 503, "{}", r.text());
        refused.push(n);
    }

    let readable = |cluster: &Cluster| -> Vec<u64> {
        cluster
            .broker(leader)
            .fetch_all(TOPIC, 0, 0)
            .iter()
            .map(|m| m["value"]["n"].as_u64().expect("n"))
            .collect()
    };
    let read = readable(&cluster);
    assert_eq!(read.first(), Some(&0), "{read:?}");
    assert!(
        read[1..].iter().all(|n| unknown.contains(n)),
        "only produces appended before the ISR shrank may be read: {read:?}, refused {refused:?}"
    );

    // The follower back: in sync again, produce acknowledged again.
    cluster.restart(follower);
    settle(Duration::from_secs(30), "the follower back in sync", || {
        rejoined(&cluster, follower, TOPIC)
    });
    n += 1;
    cluster.broker(leader).produce(TOPIC, "", &[pinned(0, n)]);
    acked.push(n);

    // What a consumer reads: every acknowledged message, nothing refused, nothing twice.
    let read = readable(&cluster);
    for n in &acked {
        assert!(read.contains(n), "acknowledged {n} not read: {read:?}");
    }
    for n in &refused {
        assert!(
            !read.contains(n),
            "{n} was answered 503 but is read: {read:?}"
        );
    }
    assert!(
        read.windows(2).all(|w| w[0] < w[1]),
        "doubled or out of order: {read:?}"
    );
    for b in cluster.brokers.iter_mut().filter_map(Option::take) {
        assert_eq!(b.stop(), Some(0));
    }
}
