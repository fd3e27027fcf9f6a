//! Recovery at start-up: a torn tail is cut (and counted in the metrics) without losing the
//! intact messages before it; retention moves the log start and fetches below it get 416
//! with the valid range.

use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use testkit::wait_until;

use crate::harness::{pinned, tempdir, Broker};

#[test]
fn a_torn_tail_is_cut_at_restart_counted_and_the_intact_messages_stay() {
    let dir = tempdir();
    let mut b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("torn", 1).status, 201);
    let lines: Vec<String> = (0..30).map(|i| pinned(0, i)).collect();
    b.produce("torn", "", &lines);
    b.child.kill9();

    // A write cut short: bytes of a half-written batch right after the last intact one.
    let segment = dir.path().join("topics/torn/0/00000000000000000000.log");
    let bytes = std::fs::read(&segment).expect("segment");
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open segment");
    file.seek(SeekFrom::Start(end as u64)).expect("seek");
    let mut torn = vec![0u8; 40];
    torn[0] = 30; // base offset 30
    torn[8..12].copy_from_slice(&4000u32.to_le_bytes()); // claims 4000 bytes
    torn[12..16].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    torn[16] = 1;
    file.write_all(&torn).expect("write torn bytes");
    file.sync_all().expect("sync");
    drop(file);

    let b = Broker::start(dir.path(), &[]);
    let stored = b.fetch_all("torn", 0, 0);
    assert_eq!(stored.len(), 30, "every intact message is still there");
    let cut = b
        .metric("broker_recovery_bytes_truncated_total{topic=\"torn\",partition=\"0\"}")
        .expect("recovery metric");
    assert!(cut > 0.0, "the torn bytes were counted");
    let r = b.produce("torn", "", &[pinned(0, 30)]);
    assert_eq!(
        r.json()["results"][0]["offset"],
        30,
        "appends continue where it was cut"
    );
    b.stop();
}

#[test]
fn retention_moves_the_log_start_and_older_offsets_answer_416_with_the_range() {
    let dir = tempdir();
    let b = Broker::start(
        dir.path(),
        &["--segment-bytes", "65536", "--retention-bytes", "131072"],
    );
    assert_eq!(b.put_topic("old", 1).status, 201);
    let pad = "x".repeat(200);
    let lines: Vec<String> = (0..200)
        .map(|i| serde_json::json!({"partition": 0, "value": {"n": i, "pad": pad}}).to_string())
        .collect();
    for _ in 0..20 {
        b.produce("old", "", &lines);
    }
    wait_until(
        Duration::from_secs(15),
        "retention to delete old segments",
        || {
            b.get("/v1/topics/old").json()["partitions"][0]["log_start_offset"]
                .as_u64()
                .unwrap_or(0)
                > 0
        },
    );
    let start = b.get("/v1/topics/old").json()["partitions"][0]["log_start_offset"]
        .as_u64()
        .expect("start");
    let r = b.get("/v1/topics/old/partitions/0/messages?offset=0");
    assert_eq!(r.status, 416, "{}", r.text());
    assert_eq!(r.json()["log_start_offset"], start);
    assert_eq!(r.json()["log_end_offset"], 4000);
    let kept = b.fetch_all("old", 0, start);
    assert_eq!(kept.len() as u64, 4000 - start);
    assert!(
        b.metric("broker_retention_segments_deleted_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    b.stop();
}
