//! An idempotent NDJSON produce spanning several partitions is decided as a whole: refused
//! whole (nothing appended) when its seq is stale on any partition, completed (only the
//! missing partitions appended) when it retries a request stored in part, and never stored in
//! part by concurrent requests of the same producer.

use std::collections::BTreeMap;
use std::sync::Mutex;

use broker_wire::partition_for_key;

use crate::harness::{tempdir, Broker};

/// A key that the broker's key hash sends to `partition` of a `count`-partition topic.
fn key_for(partition: u32, count: u32) -> String {
    (0..)
        .map(|i| format!("GPU-{i}"))
        .find(|k| partition_for_key(k.as_bytes(), count) == partition)
        .unwrap_or_default()
}

/// One message keyed to land on `partition`, its value naming the request (`seq`) and its
/// place in it (`n`).
fn msg(partition: u32, count: u32, seq: u64, n: u64) -> String {
    serde_json::json!({
        "key": key_for(partition, count),
        "value": {"seq": seq, "n": n},
    })
    .to_string()
}

/// The `(seq, n)` of every message stored in `partition`.
fn stored(b: &Broker, topic: &str, partition: u32) -> Vec<(u64, u64)> {
    b.fetch_all(topic, partition, 0)
        .iter()
        .map(|m| {
            let v = &m["value"];
            (v["seq"].as_u64().expect("seq"), v["n"].as_u64().expect("n"))
        })
        .collect()
}

#[test]
fn a_seq_stale_on_one_partition_is_refused_whole_and_appends_nothing() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    let late = [msg(0, 3, 1, 0), msg(1, 3, 1, 1), msg(2, 3, 1, 2)];

    // seq 2 reaches partitions 1 and 2 first, then seq 1 spans 0, 1 and 2: partition 0 would
    // take seq 1 on its own, the others hold a later seq.
    assert_eq!(b.put_topic("first", 3).status, 201);
    b.produce(
        "first",
        "?producer=p&seq=2",
        &[msg(1, 3, 2, 0), msg(2, 3, 2, 1)],
    );
    let refused = b.produce_raw("first", "?producer=p&seq=1", &late);
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert!(stored(&b, "first", 0).is_empty(), "nothing of seq 1 stored");
    assert_eq!(stored(&b, "first", 1), [(2, 0)]);
    assert_eq!(stored(&b, "first", 2), [(2, 1)]);

    // seq 2 on partitions 0 and 1, then seq 1 on 0, 1 and 2: partition 2 stays empty.
    assert_eq!(b.put_topic("last", 3).status, 201);
    b.produce(
        "last",
        "?producer=p&seq=2",
        &[msg(0, 3, 2, 0), msg(1, 3, 2, 1)],
    );
    let refused = b.produce_raw("last", "?producer=p&seq=1", &late);
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert!(stored(&b, "last", 2).is_empty(), "nothing of seq 1 stored");
    assert_eq!(stored(&b, "last", 0), [(2, 0)]);
    assert_eq!(stored(&b, "last", 1), [(2, 1)]);

    // A retry whose message count changed on a later partition is refused whole too: the new
    // partition before it is not appended.
    assert_eq!(b.put_topic("changed", 3).status, 201);
    b.produce("changed", "?producer=p&seq=5", &[msg(1, 3, 5, 0)]);
    let changed = [msg(0, 3, 5, 0), msg(1, 3, 5, 1), msg(1, 3, 5, 2)];
    let refused = b.produce_raw("changed", "?producer=p&seq=5", &changed);
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert!(
        stored(&b, "changed", 0).is_empty(),
        "nothing of the retry stored"
    );
    assert_eq!(stored(&b, "changed", 1), [(5, 0)]);
    b.stop();
}

#[test]
fn a_retry_of_a_request_stored_in_part_appends_only_the_missing_partitions() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("retry", 3).status, 201);

    // The state a crash between a request's partitions leaves: seq 7 stored on partition 0
    // only.
    let part = b.produce("retry", "?producer=p&seq=7", &[msg(0, 3, 7, 0)]);
    let whole = [msg(0, 3, 7, 0), msg(1, 3, 7, 1)];
    let retry = b.produce("retry", "?producer=p&seq=7", &whole);
    assert_eq!(
        retry.header("broker-duplicate"),
        None,
        "partition 1 was appended"
    );
    let results = retry.json()["results"].clone();
    assert_eq!(
        results[0],
        part.json()["results"][0],
        "partition 0 answers its original offset"
    );
    assert_eq!(results[1], serde_json::json!({"partition": 1, "offset": 0}));
    assert_eq!(stored(&b, "retry", 0), [(7, 0)], "partition 0 not doubled");
    assert_eq!(stored(&b, "retry", 1), [(7, 1)]);

    // Now whole: a further retry is a duplicate everywhere, with the same offsets.
    let again = b.produce("retry", "?producer=p&seq=7", &whole);
    assert_eq!(again.header("broker-duplicate"), Some("true"));
    assert_eq!(again.json(), retry.json());
    assert_eq!(
        stored(&b, "retry", 0).len() + stored(&b, "retry", 1).len(),
        2
    );

    // A retry stored in part that a later seq overtook on a missing partition cannot be
    // completed: refused whole, the overtaken partition keeps only the later seq.
    b.produce("retry", "?producer=p&seq=8", &[msg(0, 3, 8, 0)]);
    b.produce("retry", "?producer=p&seq=9", &[msg(2, 3, 9, 0)]);
    let overtaken = b.produce_raw(
        "retry",
        "?producer=p&seq=8",
        &[msg(0, 3, 8, 0), msg(2, 3, 8, 1)],
    );
    assert_eq!(overtaken.status, 409, "{}", overtaken.text());
    assert_eq!(stored(&b, "retry", 2), [(9, 0)]);
    b.stop();
}

#[test]
fn concurrent_seqs_of_one_producer_are_each_stored_whole_or_not_at_all() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    let (parts, threads, per_thread, per_partition) = (6u32, 8u64, 40u64, 2u64);
    assert_eq!(b.put_topic("race", parts).status, 201);
    // seq → every status it was answered with.
    let answers: Mutex<BTreeMap<u64, Vec<u16>>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (b, answers) = (&b, &answers);
            s.spawn(move || {
                // Thread t sends seqs t+1, t+1+threads, …: the threads' requests interleave,
                // so later seqs often reach a partition before earlier ones.
                for i in 0..per_thread {
                    let seq = 1 + t + i * threads;
                    let lines: Vec<String> = (0..parts)
                        .flat_map(|p| {
                            (0..per_partition)
                                .map(move |k| msg(p, parts, seq, u64::from(p) * 10 + k))
                        })
                        .collect();
                    // Each request twice: the second races the others as a retry.
                    for _ in 0..2 {
                        let r =
                            b.produce_raw("race", &format!("?producer=fleet&seq={seq}"), &lines);
                        assert!(
                            r.status == 200 || r.status == 409,
                            "seq {seq}: {} {}",
                            r.status,
                            r.text()
                        );
                        let mut answers = answers.lock().unwrap_or_else(|e| e.into_inner());
                        answers.entry(seq).or_default().push(r.status);
                    }
                }
            });
        }
    });
    // seq → how many of its messages each partition holds.
    let mut held: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for p in 0..parts {
        for (seq, _) in stored(&b, "race", p) {
            held.entry(seq).or_insert_with(|| vec![0; parts as usize])[p as usize] += 1;
        }
    }
    let answers = answers.into_inner().unwrap_or_else(|e| e.into_inner());
    let (mut whole, mut none) = (0, 0);
    for (seq, statuses) in &answers {
        let accepted = statuses.contains(&200);
        match held.get(seq) {
            Some(counts) => {
                assert!(
                    counts.iter().all(|&c| c == per_partition),
                    "seq {seq} stored in part or twice: {counts:?} (answers {statuses:?})"
                );
                assert!(
                    accepted,
                    "seq {seq} stored but always refused: {statuses:?}"
                );
                whole += 1;
            }
            None => {
                assert!(!accepted, "seq {seq} accepted but not stored: {statuses:?}");
                none += 1;
            }
        }
    }
    assert_eq!(held.len(), whole, "only sent seqs are stored");
    assert!(whole > 0, "some seqs were stored ({none} refused)");
    eprintln!("{whole} seqs stored whole, {none} refused whole");
    b.stop();
}
