//! The broker client against the real broker binary (`cargo build --bins` first): idempotent
//! produce, both produce and fetch encodings, long polls, group membership and rebalances,
//! and retrying across a broker restart.

use std::process::Command;
use std::time::{Duration, Instant};

use broker_client::Error;
use broker_client::{
    encode_batch, partition_for_key, push_record, BrokerClient, ClientConfig, Encoding,
    GroupMember, Idempotence,
};
use testkit::{bin_path, free_port, http_get, wait_until, Child};

struct Broker {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

fn spawn_broker(port: u16, dir: &std::path::Path) -> Child {
    let mut cmd = Command::new(bin_path("broker"));
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--session-timeout-ms", "2000"]);
    let child = Child::spawn("broker", cmd);
    let ready = format!("http://127.0.0.1:{port}/readyz");
    wait_until(Duration::from_secs(20), "broker ready", || {
        matches!(http_get(&ready), Some((200, _)))
    });
    child
}

impl Broker {
    fn start() -> Broker {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = spawn_broker(port, dir.path());
        Broker { port, dir, child }
    }

    fn client(&self) -> BrokerClient {
        BrokerClient::new(ClientConfig::new(format!("http://127.0.0.1:{}", self.port)))
    }
}

fn ndjson(messages: &[(&str, serde_json::Value)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in messages {
        push_record(&mut body, key, value).unwrap();
    }
    body
}

fn id(seq: u64) -> Option<Idempotence<'static>> {
    Some(Idempotence {
        producer: "test-producer",
        seq,
    })
}

#[test]
fn a_repeated_seq_answers_the_original_offsets_and_appends_nothing() {
    let broker = Broker::start();
    let client = broker.client();
    client.create_topic("t", 1).unwrap();
    let body = ndjson(&[
        ("GPU-1", 1.into()),
        ("GPU-1", 2.into()),
        ("GPU-1", 3.into()),
    ]);
    let first = client.produce("t", &body, id(1)).unwrap();
    assert!(!first.duplicate);
    let again = client.produce("t", &body, id(1)).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.results, first.results);
    assert_eq!(client.topic("t").unwrap().partitions[0].log_end_offset, 3);

    // The streamer tells "another batch size" from "too old" by this wording: pin it.
    let shorter = ndjson(&[("GPU-1", 1.into())]);
    let err = client.produce("t", &shorter, id(1)).unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(err.to_string().contains("this retry has"), "{err}");

    for seq in 2..=12 {
        client.produce("t", &shorter, id(seq)).unwrap();
    }
    let err = client.produce("t", &body, id(1)).unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(!err.to_string().contains("this retry has"), "{err}");
}

#[test]
fn keys_land_where_the_client_computes_and_both_fetch_encodings_agree() {
    let broker = Broker::start();
    let client = broker.client();
    client.create_topic("t", 4).unwrap();
    let keys = ["GPU-a", "GPU-b", "GPU-c", "GPU-d", "GPU-e"];
    let body = ndjson(
        &keys
            .iter()
            .map(|k| (*k, serde_json::json!({"k": k})))
            .collect::<Vec<_>>(),
    );
    let ack = client.produce("t", &body, None).unwrap();
    for (key, result) in keys.iter().zip(&ack.results) {
        assert_eq!(
            result.partition,
            partition_for_key(key.as_bytes(), 4),
            "{key}"
        );
    }

    let p = partition_for_key(b"GPU-a", 4);
    let batch = encode_batch([
        (&b"GPU-a"[..], &br#"{"n":1}"#[..]),
        (&b"GPU-a"[..], &br#"{"n":2}"#[..]),
    ]);
    let ack = client.produce_batch("t", p, &batch, id(7)).unwrap();
    assert_eq!(ack.record_count, 2);
    assert!(
        client
            .produce_batch("t", p, &batch, id(7))
            .unwrap()
            .duplicate
    );

    let read = |encoding| {
        let f = client
            .fetch("t", p, 0, 100, Duration::ZERO, encoding)
            .unwrap();
        let m = f.messages();
        assert!(m.complete);
        m.items
            .into_iter()
            .map(|i| {
                let m = i.unwrap();
                (m.offset, m.key.unwrap().into_owned(), m.value.to_string())
            })
            .collect::<Vec<_>>()
    };
    let ndjson_view = read(Encoding::Ndjson);
    assert_eq!(ndjson_view, read(Encoding::Batches));
    let values: Vec<&str> = ndjson_view.iter().map(|m| m.2.as_str()).collect();
    let mut expected: Vec<String> = keys
        .iter()
        .filter(|k| partition_for_key(k.as_bytes(), 4) == p)
        .map(|k| format!(r#"{{"k":"{k}"}}"#))
        .collect();
    let batch_base = expected.len() as u64;
    expected.extend([r#"{"n":1}"#.to_string(), r#"{"n":2}"#.to_string()]);
    assert_eq!(values, expected);

    // From the middle of a batch: the records before the offset are skipped.
    let f = client
        .fetch(
            "t",
            p,
            batch_base + 1,
            100,
            Duration::ZERO,
            Encoding::Batches,
        )
        .unwrap();
    let offsets: Vec<u64> = f
        .messages()
        .items
        .iter()
        .map(|m| m.as_ref().unwrap().offset)
        .collect();
    assert_eq!(offsets, vec![batch_base + 1]);
}

#[test]
fn a_long_poll_answers_as_soon_as_a_message_arrives() {
    let broker = Broker::start();
    let client = broker.client();
    client.create_topic("t", 1).unwrap();
    let producer = broker.client();
    let started = Instant::now();
    let handle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        producer
            .produce("t", &ndjson(&[("k", 1.into())]), None)
            .unwrap();
    });
    let fetched = client
        .fetch("t", 0, 0, 10, Duration::from_secs(10), Encoding::Batches)
        .unwrap();
    handle.join().unwrap();
    assert_eq!(fetched.messages().items.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fetched.next_offset, 1);
}

#[test]
fn members_see_rebalances_and_a_stale_commit_is_refused() {
    let broker = Broker::start();
    broker.client().create_topic("t", 4).unwrap();
    let a = GroupMember::join(broker.client(), "g", "t", None).unwrap();
    assert_eq!(a.membership().partitions, vec![0, 1, 2, 3]);
    let epoch = a.epoch();
    let b = GroupMember::join(broker.client(), "g", "t", None).unwrap();
    wait_until(Duration::from_secs(5), "a to see the rebalance", || {
        a.epoch() != epoch && a.membership().partitions.len() == 2
    });
    let theirs = b.membership().partitions[0];
    assert!(!a.owns(theirs));
    let stale = a.commit(&[(theirs, 5)].into_iter().collect());
    assert_eq!(stale.unwrap_err().status(), Some(409));
    let mine = a.membership().partitions[0];
    a.commit(&[(mine, 5)].into_iter().collect()).unwrap();
    assert_eq!(a.committed().unwrap().get(&mine), Some(&5));

    b.leave();
    wait_until(
        Duration::from_secs(5),
        "a to get every partition back",
        || a.membership().partitions.len() == 4,
    );
}

#[test]
fn a_produce_waits_for_a_restarting_broker_and_is_appended_once() {
    let mut broker = Broker::start();
    let client = broker.client();
    client.create_topic("t", 1).unwrap();
    broker.child.kill9();
    let handle = std::thread::spawn(move || {
        client.produce("t", &ndjson(&[("k", 1.into()), ("k", 2.into())]), id(1))
    });
    std::thread::sleep(Duration::from_millis(500));
    broker.child = spawn_broker(broker.port, broker.dir.path());
    let ack = handle.join().unwrap().expect("produce after the restart");
    assert_eq!(ack.results.len(), 2);
    assert_eq!(
        broker.client().topic("t").unwrap().partitions[0].log_end_offset,
        2
    );
}

#[test]
fn a_fetch_past_the_log_is_out_of_range_with_the_bounds_the_problem_carries() {
    let broker = Broker::start();
    let client = broker.client();
    client.create_topic("bounds", 1).unwrap();
    let body = ndjson(&[
        ("GPU-1", 1.into()),
        ("GPU-1", 2.into()),
        ("GPU-1", 3.into()),
    ]);
    client.produce("bounds", &body, None).unwrap();
    for encoding in [Encoding::Ndjson, Encoding::Batches] {
        let err = client
            .fetch("bounds", 0, 9, 10, Duration::ZERO, encoding)
            .unwrap_err();
        match err {
            Error::OffsetOutOfRange {
                partition,
                offset,
                log_start,
                log_end,
                ..
            } => assert_eq!((partition, offset, log_start, log_end), (0, 9, 0, 3)),
            other => panic!("{encoding:?}: {other:?}"),
        }
    }
}

#[test]
fn names_the_broker_would_refuse_are_refused_before_sending() {
    let broker = Broker::start();
    let client = broker.client();
    let bad_topic = client.create_topic("a/b", 1).unwrap_err();
    assert!(
        matches!(&bad_topic, Error::InvalidName(e) if e.what == "topic"),
        "{bad_topic:?}"
    );
    assert!(!bad_topic.is_retryable());
    let bad_group = client.join("..", "t", None).unwrap_err();
    assert!(
        matches!(&bad_group, Error::InvalidName(e) if e.what == "group"),
        "{bad_group:?}"
    );
    let bad_producer = Idempotence {
        producer: "no spaces",
        seq: 1,
    };
    client.create_topic("t", 1).unwrap();
    let body = ndjson(&[("GPU-1", 1.into())]);
    let err = client.produce("t", &body, Some(bad_producer)).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidName(e) if e.what == "producer"),
        "{err:?}"
    );
    assert_eq!(client.topic("t").unwrap().partitions[0].log_end_offset, 0);
}
