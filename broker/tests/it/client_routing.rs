//! The client library (`broker-client`) against a real three-broker cluster: given one
//! broker's URL it produces to and fetches from every partition at its leader, following the
//! 421 answers; an NDJSON produce reaches the one leader of its lines, and one spanning
//! leaders is split by leader, each share sent to its leader; a dead bootstrap URL before live
//! ones is passed over.

use std::collections::BTreeMap;
use std::time::Duration;

use broker_client::{encode_batch, BrokerClient, ClientConfig, Encoding, Idempotence, RetryPolicy};
use testkit::wait_until;

use crate::cluster::{fixed_port, placement, Cluster, TOKEN};

const TOPIC: &str = "routed";
const PARTITIONS: u32 = 6;

fn client_of(urls: &str) -> BrokerClient {
    let mut config = ClientConfig::new(urls).token(Some(TOKEN.to_string()));
    // A failure shows in seconds, not at the default deadline.
    config.retry = RetryPolicy {
        give_up_after: Some(Duration::from_secs(20)),
        ..RetryPolicy::default()
    };
    BrokerClient::new(config)
}

/// The values of a partition's messages, fetched by the client.
fn fetched(client: &BrokerClient, partition: u32) -> Vec<String> {
    let f = client
        .fetch(TOPIC, partition, 0, 100, Duration::ZERO, Encoding::Ndjson)
        .unwrap_or_else(|e| panic!("fetch of partition {partition}: {e}"));
    let messages = f.messages();
    assert!(messages.complete);
    messages
        .items
        .into_iter()
        .map(|m| m.expect("a message").value.to_string())
        .collect()
}

#[test]
fn a_client_given_one_broker_reaches_every_partition_at_its_leader() {
    let mut cluster = Cluster::start();
    let first = cluster.brokers[1].as_ref().expect("broker 1");
    let client = client_of(&first.url);

    assert!(client.create_topic(TOPIC, PARTITIONS).expect("create"));
    // Leaders serve a partition once they have applied the topic: wait for all to agree.
    let mut agreed = Vec::new();
    wait_until(
        Duration::from_secs(10),
        "every broker to describe the topic",
        || {
            let all: Vec<_> = cluster.live().map(|b| placement(b, TOPIC)).collect();
            agreed = all[0].clone().unwrap_or_default();
            all.iter().all(|p| p.is_some() && p == &all[0])
        },
    );
    let leader_of: Vec<String> = agreed
        .iter()
        .map(|p| p["leader"].as_str().expect("a leader").to_string())
        .collect();
    let mut distinct = leader_of.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        3,
        "leaders spread over the three: {agreed:?}"
    );

    // A binary batch to every partition (tried once: no producer id), and an idempotent one:
    // each lands at the partition's leader, whichever broker the client was given.
    for p in 0..PARTITIONS {
        let a = format!("{{\"p\":{p},\"n\":1}}");
        let b = format!("{{\"p\":{p},\"n\":2}}");
        let batch = encode_batch([(&b"k"[..], a.as_bytes()), (&b"k"[..], b.as_bytes())]);
        let ack = client
            .produce_batch(TOPIC, p, &batch, None)
            .unwrap_or_else(|e| panic!("produce to partition {p}: {e}"));
        assert_eq!((ack.base_offset, ack.record_count), (0, 2), "partition {p}");
        let c = format!("{{\"p\":{p},\"n\":3}}");
        let id = Idempotence {
            producer: "router",
            seq: u64::from(p),
        };
        let batch = encode_batch([(&b"k"[..], c.as_bytes())]);
        let ack = client
            .produce_batch(TOPIC, p, &batch, Some(id))
            .unwrap_or_else(|e| panic!("idempotent produce to partition {p}: {e}"));
        assert_eq!(
            (ack.base_offset, ack.duplicate),
            (2, false),
            "partition {p}"
        );
    }
    for p in 0..PARTITIONS {
        let values = fetched(&client, p);
        let want: Vec<String> = (1..=3)
            .map(|n| format!("{{\"p\":{p},\"n\":{n}}}"))
            .collect();
        assert_eq!(values, want, "partition {p}");
        // The data is at the leader: the client did not append anywhere else.
        let at_leader = cluster.at(&leader_of[p as usize]).fetch_all(TOPIC, p, 0);
        assert_eq!(at_leader.len(), 3, "partition {p} at its leader");
    }

    // NDJSON: lines all for partitions of one leader (not broker 1) go to that leader.
    let mut by_leader: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (p, l) in leader_of.iter().enumerate() {
        by_leader.entry(l.as_str()).or_default().push(p as u32);
    }
    let (other, theirs) = by_leader
        .iter()
        .find(|(l, _)| **l != first.url.as_str())
        .expect("a leader other than broker 1");
    let body: String = theirs
        .iter()
        .map(|p| format!("{{\"partition\":{p},\"value\":{{\"nd\":{p}}}}}\n"))
        .collect();
    let ack = client
        .produce(TOPIC, body.as_bytes(), None)
        .expect("an NDJSON produce to one leader");
    assert_eq!(ack.results.len(), theirs.len());
    for r in &ack.results {
        assert_eq!(r.offset, 3, "{r:?}");
        let at = cluster.at(other).fetch_all(TOPIC, r.partition, 3);
        assert_eq!(
            at.len(),
            1,
            "the line of partition {} at {other}",
            r.partition
        );
    }

    // NDJSON spanning leaders: split by the client, each leader's lines sent to it, the
    // results back in the body's order.
    let spanning: Vec<u32> = by_leader.values().map(|ps| ps[0]).collect();
    let body: String = spanning
        .iter()
        .map(|p| format!("{{\"partition\":{p},\"value\":{{\"span\":{p}}}}}\n"))
        .collect();
    let ack = client
        .produce(TOPIC, body.as_bytes(), None)
        .expect("an NDJSON produce spanning leaders");
    let partitions: Vec<u32> = ack.results.iter().map(|r| r.partition).collect();
    assert_eq!(partitions, spanning, "results in the body's line order");
    for (p, l) in leader_of.iter().enumerate() {
        let before = if theirs.contains(&(p as u32)) { 4 } else { 3 };
        let expected = before + usize::from(spanning.contains(&(p as u32)));
        let at_leader = cluster.at(l).fetch_all(TOPIC, p as u32, 0);
        assert_eq!(at_leader.len(), expected, "partition {p} at its leader");
        if spanning.contains(&(p as u32)) {
            let r = ack.results.iter().find(|r| r.partition == p as u32);
            assert_eq!(r.map(|r| r.offset), Some(before as u64), "partition {p}");
            assert_eq!(
                at_leader.last().map(|m| m["value"]["span"].clone()),
                Some(serde_json::json!(p))
            );
        }
    }

    // A dead URL first in the list: passed over, even for a produce tried once.
    let dead = format!("http://127.0.0.1:{}", fixed_port());
    let urls = format!(
        "{dead},{},{}",
        cluster.brokers[2].as_ref().expect("broker 2").url,
        first.url
    );
    let fallback = client_of(&urls);
    assert_eq!(fallback.topic(TOPIC).expect("describe").partitions.len(), 6);
    for p in 0..PARTITIONS {
        let v = format!("{{\"p\":{p},\"n\":9}}");
        let batch = encode_batch([(&b"k"[..], v.as_bytes())]);
        let ack = fallback
            .produce_batch(TOPIC, p, &batch, None)
            .unwrap_or_else(|e| panic!("produce to partition {p} past a dead URL: {e}"));
        assert_eq!(ack.record_count, 1);
        assert_eq!(
            fetched(&fallback, p).last().map(String::as_str),
            Some(v.as_str())
        );
    }

    for b in cluster.brokers.drain(..).flatten() {
        assert_eq!(b.stop(), Some(0));
    }
}
