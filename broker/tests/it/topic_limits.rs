//! What topics may cost: a refused produce creates nothing, topics are capped, deleted, not
//! created on first use when `--auto-create-topics false`, and an idle or barely used topic
//! reserves neither a segment of disk per partition nor a descriptor per file.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{line, pinned, tempdir, Broker};

fn topic_exists(b: &Broker, topic: &str) -> bool {
    let r = b.get(&format!("/v1/topics/{topic}"));
    assert!(matches!(r.status, 200 | 404), "{}", r.text());
    r.status == 200
}

/// Bytes of disk really allocated under `dir` (preallocated blocks count, holes do not).
fn allocated_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("list") {
        let entry = entry.expect("entry");
        let meta = entry.metadata().expect("stat");
        total += meta.blocks() * 512;
        if meta.is_dir() {
            total += allocated_bytes(&entry.path());
        }
    }
    total
}

fn open_descriptors(b: &Broker) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", b.child.pid()))
        .expect("list descriptors")
        .count()
}

#[test]
fn a_refused_produce_creates_no_topic() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    let refused = [
        (
            "typo1",
            "",
            "application/x-ndjson",
            b"{\"value\":\n".to_vec(),
        ),
        (
            "typo2",
            "",
            "application/vnd.broker.batch",
            b"no ?partition".to_vec(),
        ),
        (
            "typo3",
            "?partition=0",
            "application/vnd.broker.batch",
            vec![7u8; 80],
        ),
        (
            "typo4",
            "",
            "application/x-ndjson",
            pinned(999, 1).into_bytes(),
        ),
    ];
    for (topic, query, content_type, body) in &refused {
        let r = b.produce_body(topic, query, content_type, body);
        assert_eq!(r.status, 400, "{topic}: {}", r.text());
    }
    for topic in ["typo1", "typo2", "typo3", "typo4"] {
        assert!(!topic_exists(&b, topic), "{topic} was created");
        assert!(!dir.path().join("topics").join(topic).exists());
    }
    assert_eq!(b.get("/v1/topics").json()["topics"], json!([]));
    // A good produce still creates its topic.
    b.produce("fine", "", &[line("GPU-1", 1)]);
    assert!(topic_exists(&b, "fine"));
}

#[test]
fn without_auto_create_only_an_explicit_put_creates_topics() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &["--auto-create-topics", "false"]);
    let produce = b.produce_raw("nope", "", &[line("GPU-1", 1)]);
    assert_eq!(produce.status, 404, "{}", produce.text());
    assert!(
        produce.text().contains("PUT /v1/topics/nope"),
        "{}",
        produce.text()
    );
    let join = b.post_json("/v1/groups/g/members", &json!({"topic": "nope"}));
    assert_eq!(join.status, 404, "{}", join.text());
    assert!(!topic_exists(&b, "nope"));
    assert_eq!(b.put_topic("yes", 2).status, 201);
    b.produce("yes", "", &[line("GPU-1", 1)]);
}

#[test]
fn the_topic_cap_refuses_one_more_with_507_until_one_is_deleted() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &["--max-topics", "3"]);
    for t in ["a", "b", "c"] {
        assert_eq!(b.put_topic(t, 1).status, 201);
    }
    let over = b.put_topic("d", 1);
    assert_eq!(over.status, 507, "{}", over.text());
    assert_eq!(
        over.header("content-type"),
        Some("application/problem+json")
    );
    assert!(over.text().contains("--max-topics"), "{}", over.text());
    let auto = b.produce_raw("e", "", &[line("GPU-1", 1)]);
    assert_eq!(auto.status, 507, "{}", auto.text());
    // Existing topics keep working; deleting one makes room.
    b.produce("a", "", &[line("GPU-1", 1)]);
    assert_eq!(
        b.request("DELETE", "/v1/topics/b")
            .call()
            .map(|r| r.status())
            .ok(),
        Some(204)
    );
    assert_eq!(b.put_topic("d", 1).status, 201);
}

#[test]
fn deleting_a_topic_removes_its_files_offsets_and_wakes_fetches_with_404() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("doomed", 2).status, 201);
    b.produce("doomed", "", &[pinned(0, 1), pinned(1, 2)]);
    let member = b
        .post_json("/v1/groups/g/members", &json!({"topic": "doomed"}))
        .json();
    let commit = b.post_json(
        "/v1/groups/g/offsets",
        &json!({"member_id": member["member_id"], "generation": member["generation"],
                "topic": "doomed", "offsets": {"0": 1}}),
    );
    assert_eq!(commit.status, 200, "{}", commit.text());
    assert!(std::fs::read_to_string(dir.path().join("groups/g.json"))
        .expect("group file")
        .contains("doomed"));

    // A fetch parked at the end of partition 0 is answered 404 as soon as the topic goes.
    let url = format!(
        "{}/v1/topics/doomed/partitions/0/messages?offset=1&wait_ms=20000",
        b.url
    );
    let parked = std::thread::spawn(move || {
        let started = Instant::now();
        let r = crate::harness::call(ureq::get(&url), None);
        (r, started.elapsed())
    });
    testkit::wait_until(Duration::from_secs(10), "the fetch to park", || {
        b.metric("broker_long_polls_parked") == Some(1.0)
    });
    let deleted = crate::harness::call(b.request("DELETE", "/v1/topics/doomed"), None);
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    let (fetch, waited) = parked.join().expect("fetch thread");
    assert_eq!(fetch.status, 404, "{}", fetch.text());
    assert_eq!(
        fetch.header("content-type"),
        Some("application/problem+json")
    );
    assert!(
        waited < Duration::from_secs(10),
        "woken by the delete, not the timeout"
    );

    let topics = dir.path().join("topics");
    assert!(
        std::fs::read_dir(&topics).expect("list").next().is_none(),
        "files left"
    );
    assert!(!std::fs::read_to_string(dir.path().join("groups/g.json"))
        .expect("group file")
        .contains("doomed"));
    assert_eq!(b.get("/v1/topics/doomed").status, 404);
    let again = crate::harness::call(b.request("DELETE", "/v1/topics/doomed"), None);
    assert_eq!(again.status, 404);
    // The name can be used again, from offset 0, with no offsets carried over.
    assert_eq!(b.put_topic("doomed", 1).status, 201);
    b.produce("doomed", "", &[pinned(0, 9)]);
    assert_eq!(b.fetch_all("doomed", 0, 0).len(), 1);
    let offsets = b.get("/v1/groups/g/offsets?topic=doomed").json();
    assert_eq!(offsets["offsets"], json!({}));
}

#[test]
fn a_thousand_used_topics_reserve_megabytes_not_a_terabyte_and_restart_quickly() {
    const TOPICS: usize = 1_000;
    let dir = tempdir();
    // Production segment size: before, each partition preallocated 64 MiB and kept two
    // descriptors, so 1,000 topics of 16 partitions meant 1,000 GiB and 32,000 descriptors.
    let flags = ["--segment-bytes", "67108864", "--partitions", "16"];
    let b = Broker::start(dir.path(), &flags);
    let baseline_fds = open_descriptors(&b);
    for i in 0..TOPICS {
        // One message each, as a typo would send: one partition of each topic gets a log.
        b.produce(&format!("typo-{i}"), "", &[line("GPU-1", i as u64)]);
    }
    assert_eq!(
        b.get("/v1/topics").json()["topics"]
            .as_array()
            .map(Vec::len),
        Some(TOPICS)
    );
    let disk = allocated_bytes(dir.path());
    assert!(disk < 4 << 30, "{TOPICS} topics reserve {} MiB", disk >> 20);
    let fds = open_descriptors(&b);
    assert!(
        fds <= baseline_fds + TOPICS + 50,
        "{fds} descriptors open (baseline {baseline_fds}): one per partition with data at most"
    );
    let mut b = b;
    b.child.kill9();

    let started = Instant::now();
    let b = Broker::start(dir.path(), &flags);
    let restart = started.elapsed();
    assert!(
        restart < Duration::from_secs(60),
        "restart took {restart:?}"
    );
    let fds_after = open_descriptors(&b);
    assert!(
        fds_after <= baseline_fds + TOPICS + 50,
        "{fds_after} descriptors after the restart"
    );
    let first = b.get("/v1/topics/typo-0").json();
    let total: u64 = first["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["log_end_offset"].as_u64().expect("end"))
        .sum();
    assert_eq!(total, 1, "the message survived the restart");
    eprintln!(
        "{TOPICS} topics: {} MiB allocated, {fds} descriptors (baseline {baseline_fds}), restart {restart:?}",
        disk >> 20
    );
}
