//! Consumer groups: rebalancing when members leave or expire, redelivery of what was not
//! committed, and generation fencing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::wait_until;

use crate::harness::{pinned, tempdir, Broker};

const PARTITIONS: u32 = 6;
const PER_PARTITION: u64 = 5;

fn partitions(v: &Value) -> Vec<u64> {
    v["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p.as_u64().expect("partition"))
        .collect()
}

/// Fetches through the member until nothing more arrives; returns (partition, n) pairs.
fn drain(b: &Broker, group: &str, member: &str) -> Vec<(u64, u64)> {
    let mut got = Vec::new();
    loop {
        let r = b.get(&format!(
            "/v1/groups/{group}/members/{member}/messages?max=7&wait_ms=0"
        ));
        assert_eq!(r.status, 200, "{}", r.text());
        let lines = r.lines();
        if lines.is_empty() {
            return got;
        }
        got.extend(lines.iter().map(|l| {
            (
                l["partition"].as_u64().expect("p"),
                l["value"]["n"].as_u64().expect("n"),
            )
        }));
    }
}

fn commit(
    b: &Broker,
    group: &str,
    member: &str,
    generation: u64,
    offsets: Value,
) -> crate::harness::Resp {
    b.post_json(
        &format!("/v1/groups/{group}/offsets"),
        &json!({"member_id": member, "generation": generation, "topic": "gt", "offsets": offsets}),
    )
}

#[test]
fn three_members_one_leaves_one_expires_their_partitions_move_and_uncommitted_messages_come_again()
{
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("gt", PARTITIONS).status, 201);
    for p in 0..PARTITIONS {
        let lines: Vec<String> = (0..PER_PARTITION)
            .map(|i| pinned(p, u64::from(p) * 100 + i))
            .collect();
        b.produce("gt", "", &lines);
    }
    let a = b.join("g", "gt", 10_000);
    let leaver = b.join("g", "gt", 60_000);
    let sleeper = b.join("g", "gt", 3_000);
    let (a_id, l_id, s_id) = (
        a["member_id"].as_str().expect("id").to_string(),
        leaver["member_id"].as_str().expect("id").to_string(),
        sleeper["member_id"].as_str().expect("id").to_string(),
    );
    let generation = sleeper["generation"].as_u64().expect("generation");
    let a_now = b.heartbeat("g", &a_id).json();
    let l_now = b.heartbeat("g", &l_id).json();
    let (a_parts, l_parts, s_parts) =
        (partitions(&a_now), partitions(&l_now), partitions(&sleeper));
    assert_eq!(
        (a_parts.len(), l_parts.len(), s_parts.len()),
        (2, 2, 2),
        "balanced"
    );

    // Everyone reads everything of theirs; the leaver commits only 2 of each partition,
    // the sleeper commits nothing.
    assert_eq!(drain(&b, "g", &s_id).len(), 2 * PER_PARTITION as usize);
    assert_eq!(drain(&b, "g", &l_id).len(), 2 * PER_PARTITION as usize);
    let a_first = drain(&b, "g", &a_id);
    assert_eq!(a_first.len(), 2 * PER_PARTITION as usize);
    // The sleeper's last sign of life: it must not expire before the commits below, which
    // carry this generation.
    assert_eq!(b.heartbeat("g", &s_id).status, 200);
    let l_offsets: BTreeMap<String, u64> = l_parts.iter().map(|p| (p.to_string(), 2)).collect();
    assert_eq!(
        commit(&b, "g", &l_id, generation, json!(l_offsets)).status,
        200
    );
    let a_offsets: BTreeMap<String, u64> = a_parts
        .iter()
        .map(|p| (p.to_string(), PER_PARTITION))
        .collect();
    assert_eq!(
        commit(&b, "g", &a_id, generation, json!(a_offsets)).status,
        200
    );

    // The leaver leaves; the sleeper stops heart-beating while `a` keeps going.
    let r = b.send(
        "DELETE",
        &format!("/v1/groups/g/members/{l_id}"),
        "application/json",
        b"",
    );
    assert_eq!(r.status, 204);
    let beating = AtomicBool::new(true);
    std::thread::scope(|s| {
        s.spawn(|| {
            while beating.load(Ordering::SeqCst) {
                assert_eq!(b.heartbeat("g", &a_id).status, 200);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        wait_until(Duration::from_secs(10), "a to own every partition", || {
            partitions(&b.heartbeat("g", &a_id).json()).len() == PARTITIONS as usize
        });
        let now = b.heartbeat("g", &a_id).json();
        assert!(now["generation"].as_u64().expect("generation") >= generation + 2);
        assert_eq!(b.heartbeat("g", &s_id).status, 404, "the sleeper expired");

        let again = drain(&b, "g", &a_id);
        let mut expected: Vec<(u64, u64)> = Vec::new();
        for &p in &l_parts {
            expected.extend((2..PER_PARTITION).map(|i| (p, p * 100 + i)));
        }
        for &p in &s_parts {
            expected.extend((0..PER_PARTITION).map(|i| (p, p * 100 + i)));
        }
        let mut got = again.clone();
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected, "redelivered exactly what was not committed");
        beating.store(false, Ordering::SeqCst);
    });

    let described = b.get("/v1/groups/g").json();
    assert_eq!(described["members"].as_array().map(Vec::len), Some(1));
    let lag_of = |p: u64| {
        described["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .find(|x| x["partition"] == p)
            .map(|x| x["lag"].as_u64().expect("lag"))
    };
    assert_eq!(lag_of(l_parts[0]), Some(PER_PARTITION - 2));
    assert_eq!(lag_of(a_parts[0]), Some(0));
    b.stop();
}

#[test]
fn a_commit_with_a_stale_generation_or_a_foreign_partition_is_refused() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("gt", 4).status, 201);
    let first = b.join("fence", "gt", 30_000);
    let id = first["member_id"].as_str().expect("id").to_string();
    let old = first["generation"].as_u64().expect("generation");
    let second = b.join("fence", "gt", 30_000);
    let r = commit(&b, "fence", &id, old, json!({"0": 1}));
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("stale generation"), "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));

    let now = b.heartbeat("fence", &id).json();
    let mine = partitions(&now);
    let theirs = partitions(
        &b.heartbeat("fence", second["member_id"].as_str().expect("id"))
            .json(),
    );
    let generation = now["generation"].as_u64().expect("generation");
    let r = commit(
        &b,
        "fence",
        &id,
        generation,
        json!({ mine[0].to_string(): 3 }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = commit(
        &b,
        "fence",
        &id,
        generation,
        json!({ theirs[0].to_string(): 3 }),
    );
    assert_eq!(r.status, 409, "not assigned: {}", r.text());
    let r = commit(&b, "fence", "nobody", generation, json!({"0": 1}));
    assert_eq!(r.status, 404);
    let offsets = b.get("/v1/groups/fence/offsets?topic=gt").json();
    assert_eq!(offsets["offsets"], json!({ mine[0].to_string(): 3 }));
    b.stop();
}

#[test]
fn committing_ahead_moves_the_member_fetch_position_and_committing_behind_does_not_rewind() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("seek", 1).status, 201);
    let lines: Vec<String> = (0..10).map(|i| pinned(0, i)).collect();
    b.produce("seek", "", &lines);
    let joined = b
        .post_json("/v1/groups/seekers/members", &json!({"topic": "seek"}))
        .json();
    let id = joined["member_id"].as_str().expect("id").to_string();
    let generation = joined["generation"].as_u64().expect("generation");
    let commit = |offset: u64| {
        b.post_json(
            "/v1/groups/seekers/offsets",
            &json!({"member_id": id, "generation": generation, "topic": "seek", "offsets": {"0": offset}}),
        )
        .status
    };
    let fetch = || -> Vec<u64> {
        b.get(&format!("/v1/groups/seekers/members/{id}/messages?max=3"))
            .lines()
            .iter()
            .map(|l| l["offset"].as_u64().expect("offset"))
            .collect()
    };
    assert_eq!(commit(6), 200);
    assert_eq!(fetch(), [6, 7, 8]);
    assert_eq!(commit(2), 200);
    assert_eq!(fetch(), [9], "a lower commit does not rewind");
    b.stop();
}
