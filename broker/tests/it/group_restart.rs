//! Group membership across broker restarts (a cluster of one): members keep their ids,
//! generation and partitions through `kill -9` and SIGTERM restarts without rejoining, and a
//! member that died during the restart expires after its session timeout as usual.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::wait_until;

use crate::harness::{pinned, tempdir, Broker, Resp};

const PARTITIONS: u32 = 4;

fn partitions(v: &Value) -> Vec<u64> {
    let mut p: Vec<u64> = v["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p.as_u64().expect("partition"))
        .collect();
    p.sort_unstable();
    p
}

fn commit(b: &Broker, member: &str, generation: u64, offsets: Value) -> Resp {
    b.post_json(
        "/v1/groups/g/offsets",
        &json!({"member_id": member, "generation": generation, "topic": "gt", "offsets": offsets}),
    )
}

fn id(v: &Value) -> String {
    v["member_id"].as_str().expect("member id").to_string()
}

/// Starts a broker with one message in each partition of `gt`.
fn broker_with_messages(dir: &std::path::Path) -> Broker {
    let b = Broker::start(dir, &[]);
    assert_eq!(b.put_topic("gt", PARTITIONS).status, 201);
    let lines: Vec<String> = (0..PARTITIONS).map(|p| pinned(p, u64::from(p))).collect();
    assert_eq!(b.produce("gt", "", &lines).status, 200);
    b
}

#[test]
fn a_member_keeps_its_id_generation_and_partitions_across_kill_9_and_sigterm_restarts() {
    let dir = tempdir();
    let mut b = broker_with_messages(dir.path());
    let joined = b.join("g", "gt", 60_000);
    let (member, generation) = (id(&joined), joined["generation"].as_u64().expect("gen"));
    assert_eq!(partitions(&joined), [0, 1, 2, 3]);

    b.child.kill9();
    let b = Broker::start(dir.path(), &[]);
    let beat = b.heartbeat("g", &member);
    assert_eq!(beat.status, 200, "heartbeat after kill -9: {}", beat.text());
    let beat = beat.json();
    assert_eq!(beat["generation"], generation, "no rebalance happened");
    assert_eq!(partitions(&beat), [0, 1, 2, 3]);
    // The group fetch works with the old id: every partition's message, from the start.
    let r = b.get(&format!(
        "/v1/groups/g/members/{member}/messages?max=100&wait_ms=0"
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.lines().len(), PARTITIONS as usize);
    let r = commit(&b, &member, generation, json!({"0": 1, "1": 1}));
    assert_eq!(r.status, 200, "commit after kill -9: {}", r.text());

    assert_eq!(b.stop(), Some(0));
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(
        b.heartbeat("g", &member).status,
        200,
        "heartbeat after SIGTERM"
    );
    let r = commit(&b, &member, generation, json!({"2": 1, "3": 1}));
    assert_eq!(r.status, 200, "commit after SIGTERM: {}", r.text());
    let offsets = b.get("/v1/groups/g/offsets?topic=gt").json();
    assert_eq!(offsets["offsets"], json!({"0": 1, "1": 1, "2": 1, "3": 1}));
    assert_eq!(b.stop(), Some(0));
}

#[test]
fn a_member_that_died_during_a_restart_expires_after_its_session_and_its_partitions_move() {
    let dir = tempdir();
    let mut b = broker_with_messages(dir.path());
    let survivor = id(&b.join("g", "gt", 60_000));
    let dead = b.join("g", "gt", 3_000);
    let dead_parts = partitions(&dead);
    assert_eq!(dead_parts.len(), 2, "{dead}");

    b.child.kill9();
    // Before the start: sessions restored at recovery count from a moment after this one.
    let restarted = std::time::Instant::now();
    let b = Broker::start(dir.path(), &[]);
    // Right after the restart both members are still there, the dead one included.
    let group = b.get("/v1/groups/g").json();
    assert_eq!(
        group["members"].as_array().expect("members").len(),
        2,
        "{group}"
    );
    let generation = group["generation"].as_u64().expect("generation");

    wait_until(Duration::from_secs(20), "the dead member to expire", || {
        let beat = b.heartbeat("g", &survivor);
        assert_eq!(beat.status, 200, "the survivor stays: {}", beat.text());
        partitions(&beat.json()).len() == PARTITIONS as usize
    });
    assert!(
        restarted.elapsed() >= Duration::from_millis(3_000),
        "expired after its session timeout, not before"
    );
    let beat = b.heartbeat("g", &survivor).json();
    assert!(beat["generation"].as_u64().expect("gen") > generation);
    assert_eq!(
        b.heartbeat("g", &id(&dead)).status,
        404,
        "the dead member is gone"
    );
    // The survivor now owns (and may commit) the dead member's partitions.
    let offsets: serde_json::Map<String, Value> = dead_parts
        .iter()
        .map(|p| (p.to_string(), json!(1)))
        .collect();
    let r = commit(
        &b,
        &survivor,
        beat["generation"].as_u64().expect("gen"),
        Value::Object(offsets),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b.stop(), Some(0));
}
