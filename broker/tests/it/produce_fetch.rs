//! Produce and fetch round trips, in both content types.

use broker::naming::partition_for_key;
use broker_log::record::{decode, Decoded};

use crate::harness::{batch, line, tempdir, Broker};

#[test]
fn ndjson_round_trip_keeps_values_byte_for_byte_and_partitions_by_key_hash() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("t", 4).status, 201);
    assert_eq!(b.put_topic("t", 4).status, 200);
    assert_eq!(b.put_topic("t", 5).status, 409);
    // Odd spacing and number forms must come back exactly as sent.
    let odd = r#"{"key":"GPU-odd","value":{ "v" : 1.50e0, "s":"é\u00e9" }}"#.to_string();
    let mut lines: Vec<String> = (0..40)
        .map(|i| line(&format!("GPU-{}", i % 7), i))
        .collect();
    lines.push(odd);
    let r = b.produce("t", "", &lines);
    let results = r.json()["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), lines.len());
    for (i, res) in results.iter().enumerate() {
        let key = serde_json::from_str::<serde_json::Value>(&lines[i]).expect("line")["key"]
            .as_str()
            .expect("key")
            .to_string();
        assert_eq!(
            res["partition"].as_u64(),
            Some(u64::from(partition_for_key(key.as_bytes(), 4))),
            "line {i} went to the wrong partition"
        );
    }
    for p in 0..4u32 {
        let fetched = b.fetch_all("t", p, 0);
        let expected: Vec<(usize, u64)> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r["partition"].as_u64() == Some(u64::from(p)))
            .map(|(i, r)| (i, r["offset"].as_u64().expect("offset")))
            .collect();
        assert_eq!(fetched.len(), expected.len(), "partition {p}");
        for (msg, (i, offset)) in fetched.iter().zip(&expected) {
            assert_eq!(msg["offset"].as_u64(), Some(*offset));
            assert!(msg["timestamp"].as_i64().expect("timestamp") > 1_600_000_000_000);
            let sent: serde_json::Value = serde_json::from_str(&lines[*i]).expect("line");
            assert_eq!(msg["key"], sent["key"]);
            assert_eq!(msg["value"], sent["value"]);
        }
    }
    // Byte-for-byte: the raw fetch text holds the odd value exactly as produced.
    let p = partition_for_key(b"GPU-odd", 4);
    let raw = b.get(&format!(
        "/v1/topics/t/partitions/{p}/messages?offset=0&max=10000"
    ));
    assert!(
        raw.text()
            .contains(r#""value":{ "v" : 1.50e0, "s":"é\u00e9" }}"#),
        "value re-encoded: {}",
        raw.text()
    );
    assert_eq!(raw.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        raw.header_u64("broker-next-offset"),
        raw.header_u64("broker-log-end-offset")
    );
    let topic = b.get("/v1/topics/t").json();
    let ends: u64 = topic["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["log_end_offset"].as_u64().expect("end"))
        .sum();
    assert_eq!(ends, lines.len() as u64);
    assert!(topic["partitions"][0]["leader"]
        .as_str()
        .expect("leader")
        .starts_with("http://127.0.0.1:"));
    b.stop();
}

#[test]
fn binary_batches_round_trip_and_read_back_as_ndjson_and_as_batches() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("bin", 2).status, 201);
    let first = batch(&[br#"{"a":1}"#, br#"{"a":2}"#, br#"{"a":3}"#]);
    let r = b.send(
        "POST",
        "/v1/topics/bin/messages?partition=1",
        "application/vnd.broker.batch",
        &first,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"topic":"bin","partition":1,"base_offset":0,"record_count":3})
    );
    let second = batch(&[br#"{"a":4}"#]);
    let r = b.send(
        "POST",
        "/v1/topics/bin/messages?partition=1",
        "application/vnd.broker.batch",
        &second,
    );
    assert_eq!(r.json()["base_offset"].as_u64(), Some(3));

    let lines = b.fetch_all("bin", 1, 0);
    let values: Vec<i64> = lines
        .iter()
        .map(|l| l["value"]["a"].as_i64().expect("a"))
        .collect();
    assert_eq!(values, [1, 2, 3, 4]);
    assert_eq!(lines[0]["key"], "GPU-bin");

    let raw = crate::harness::call(
        b.request("GET", "/v1/topics/bin/partitions/1/messages?offset=1")
            .set("Accept", "application/vnd.broker.batch"),
        None,
    );
    assert_eq!(raw.status, 200);
    assert_eq!(
        raw.header("content-type"),
        Some("application/vnd.broker.batch")
    );
    assert_eq!(raw.header_u64("broker-next-offset"), 4);
    let mut pos = 0;
    let mut offsets = Vec::new();
    while pos < raw.body.len() {
        match decode(&raw.body[pos..]) {
            Decoded::Intact(batch) => {
                offsets.extend(batch.records().map(|r| r.expect("record").offset));
                pos += batch.bytes.len();
            }
            other => panic!("bad batch at {pos}: {other:?}"),
        }
    }
    // Whole batches: the one holding offset 1 starts at 0.
    assert_eq!(offsets, [0, 1, 2, 3]);

    // A damaged batch is refused and nothing is appended.
    let mut bad = batch(&[b"{}"]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let r = b.send(
        "POST",
        "/v1/topics/bin/messages?partition=1",
        "application/vnd.broker.batch",
        &bad,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = b.send(
        "POST",
        "/v1/topics/bin/messages",
        "application/vnd.broker.batch",
        &second,
    );
    assert_eq!(r.status, 400, "partition is required: {}", r.text());
    assert_eq!(b.fetch_all("bin", 1, 0).len(), 4);
    b.stop();
}

#[test]
fn a_v1_binary_batch_is_accepted_and_stored_as_v2_with_the_same_records() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("old", 1).status, 201);
    let values: [&[u8]; 2] = [br#"{"a":1}"#, br#"{"a":2}"#];
    let records: Vec<broker_log::Record<'_>> = values
        .iter()
        .map(|v| broker_log::Record {
            timestamp_ms: 0,
            key: Some(b"GPU-v1"),
            value: v,
        })
        .collect();
    let v1 = broker_log::record::encode_v1(0, &records, None);
    let r = b.send(
        "POST",
        "/v1/topics/old/messages?partition=0",
        "application/vnd.broker.batch",
        &v1,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["record_count"].as_u64(), Some(2));
    assert_eq!(
        b.send(
            "POST",
            "/v1/topics/old/messages?partition=0",
            "application/vnd.broker.batch",
            &batch(&[br#"{"a":3}"#]),
        )
        .status,
        200
    );

    let raw = crate::harness::call(
        b.request("GET", "/v1/topics/old/partitions/0/messages?offset=0")
            .set("Accept", "application/vnd.broker.batch"),
        None,
    );
    assert_eq!(raw.status, 200);
    let Decoded::Intact(first) = decode(&raw.body) else {
        panic!("stored batch does not decode");
    };
    assert_eq!(first.header.magic, broker_log::record::MAGIC);
    assert_eq!(
        first.header.leader_epoch, 0,
        "a cluster of one writes epoch 0"
    );
    assert_eq!(
        first.bytes[broker_log::record::HEADER_LEN..],
        v1[broker_log::record::HEADER_LEN_V1..],
        "the records are stored as sent"
    );
    let lines = b.fetch_all("old", 0, 0);
    let got: Vec<(i64, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["value"]["a"].as_i64().expect("a"),
                l["key"].as_str().unwrap_or("none"),
            )
        })
        .collect();
    assert_eq!(got, [(1, "GPU-v1"), (2, "GPU-v1"), (3, "GPU-bin")]);
    b.stop();
}

#[test]
fn fsync_always_group_commits_concurrent_producers_and_serves_what_it_acknowledged() {
    let dir = tempdir();
    // A slow disk (every sync takes 20 ms): concurrent produces must share syncs.
    let b = Broker::start_with_env(
        dir.path(),
        &["--fsync", "always"],
        &[("BROKER_FAILPOINT_SYNC_DELAY_MS", "20")],
    );
    assert_eq!(b.put_topic("dur", 1).status, 201);
    let (threads, each) = (16u64, 10u64);
    std::thread::scope(|s| {
        for t in 0..threads {
            let b = &b;
            s.spawn(move || {
                for i in 0..each {
                    b.produce("dur", "", &[crate::harness::pinned(0, t * 1000 + i)]);
                }
            });
        }
    });
    let requests = threads * each;
    assert_eq!(b.fetch_all("dur", 0, 0).len() as u64, requests);
    let syncs = b
        .metric("broker_fsync_duration_seconds_count")
        .expect("fsync metric");
    // Without group commit every request would sync on its own.
    assert!(
        syncs < (requests / 2) as f64,
        "{syncs} syncs for {requests} requests"
    );
    b.stop();
}
