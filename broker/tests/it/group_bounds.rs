//! What a client can make a group keep: every commit is checked whole (junk is refused and
//! never reaches `groups/<g>.json`), empty idle groups expire after `--group-ttl-ms`, and
//! idle idempotent producers are forgotten after `--producer-idle-ms`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::wait_until;

use crate::harness::{pinned, tempdir, Broker, Resp};

fn commit(b: &Broker, group: &str, body: &Value) -> Resp {
    b.post_json(&format!("/v1/groups/{group}/offsets"), body)
}

#[test]
fn each_junk_commit_is_refused_and_nothing_of_it_is_stored() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("t", 2).status, 201);
    assert_eq!(b.put_topic("other", 2).status, 201);
    b.produce("t", "", &[pinned(0, 1), pinned(0, 2), pinned(1, 3)]);
    let m = b.join("g", "t", 10_000);
    let (mid, gen) = (m["member_id"].clone(), m["generation"].clone());
    let ok = commit(
        &b,
        "g",
        &json!({"member_id": mid, "generation": gen, "topic": "t", "offsets": {"0": 2}}),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());

    let huge = "x".repeat(1 << 20);
    let junk: Vec<(&str, Value, u16)> = vec![
        (
            "empty offsets from a non-member",
            json!({"member_id": "g-9-deadbeef", "generation": gen, "topic": "../../etc/passwd", "offsets": {}}),
            400,
        ),
        (
            "empty offsets from a non-member, valid topic",
            json!({"member_id": "g-9-deadbeef", "generation": gen, "topic": "t", "offsets": {}}),
            404,
        ),
        (
            "empty offsets for a path-traversal topic",
            json!({"member_id": mid, "generation": gen, "topic": "../../etc/passwd", "offsets": {}}),
            400,
        ),
        (
            "empty offsets for another topic",
            json!({"member_id": mid, "generation": gen, "topic": "other", "offsets": {}}),
            400,
        ),
        (
            "a 1 MB member id",
            json!({"member_id": huge, "generation": gen, "topic": "t", "offsets": {"0": 1}}),
            400,
        ),
        (
            "a 1 MB topic",
            json!({"member_id": mid, "generation": gen, "topic": huge, "offsets": {"0": 1}}),
            400,
        ),
        (
            "a 1 MB partition key",
            json!({"member_id": mid, "generation": gen, "topic": "t", "offsets": {huge.clone(): 1}}),
            400,
        ),
        (
            "a NUL in the topic",
            json!({"member_id": mid, "generation": gen, "topic": "t\u{0}x", "offsets": {"0": 1}}),
            400,
        ),
        (
            "a NUL in the member id",
            json!({"member_id": "g-1\u{0}", "generation": gen, "topic": "t", "offsets": {}}),
            404,
        ),
        (
            "an unknown topic (not the one the member consumes)",
            json!({"member_id": mid, "generation": gen, "topic": "ghost", "offsets": {"0": 1}}),
            400,
        ),
        (
            "an out-of-range partition",
            json!({"member_id": mid, "generation": gen, "topic": "t", "offsets": {"99": 1}}),
            409,
        ),
        (
            "a stale generation",
            json!({"member_id": mid, "generation": 0, "topic": "t", "offsets": {"0": 1}}),
            409,
        ),
    ];
    for (what, body, status) in &junk {
        let r = commit(&b, "g", body);
        assert_eq!(
            r.status,
            *status,
            "{what}: {}",
            &r.text()[..r.text().len().min(300)]
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{what}"
        );
        assert!(
            r.body.len() < 4096,
            "{what}: the answer echoes the junk ({} bytes)",
            r.body.len()
        );
    }
    // An empty commit by the member for its own topic is fine and stores nothing new.
    let empty = commit(
        &b,
        "g",
        &json!({"member_id": mid, "generation": gen, "topic": "t", "offsets": {}}),
    );
    assert_eq!(empty.status, 200, "{}", empty.text());
    assert_eq!(empty.json()["offsets"], json!({"0": 2}));

    let file = std::fs::read(dir.path().join("groups/g.json")).expect("group file");
    let stored: Value = serde_json::from_slice(&file).expect("json");
    assert_eq!(
        stored["offsets"],
        json!({"t": {"0": 2}}),
        "only the good commit is stored"
    );
    let members: Vec<&String> = stored["membership"]["members"]
        .as_object()
        .expect("membership kept beside the offsets")
        .keys()
        .collect();
    assert_eq!(members, [&mid], "only the joined member is stored");
    let groups: Vec<_> = std::fs::read_dir(dir.path().join("groups"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(groups, ["g.json"], "no other file was written");
}

#[test]
fn an_empty_group_expires_after_its_ttl_with_its_file_and_a_live_one_stays() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &["--group-ttl-ms", "800"]);
    assert_eq!(b.put_topic("t", 1).status, 201);
    b.produce("t", "", &[pinned(0, 1)]);
    let idle = b.join("idle", "t", 100);
    let committed_at = Instant::now();
    let c = commit(
        &b,
        "idle",
        &json!({"member_id": idle["member_id"], "generation": idle["generation"], "topic": "t", "offsets": {"0": 1}}),
    );
    assert_eq!(c.status, 200, "{}", c.text());
    let live = b.join("live", "t", 10_000);
    let live_id = live["member_id"].as_str().expect("id").to_string();
    let file = dir.path().join("groups/idle.json");
    assert!(file.exists());

    // The idle group's member stops heartbeating; the live one keeps going.
    let started = Instant::now();
    wait_until(Duration::from_secs(20), "the idle group to expire", || {
        let beat = b.heartbeat("live", &live_id);
        assert_eq!(beat.status, 200, "{}", beat.text());
        b.get("/v1/groups/idle").status == 404
    });
    assert!(
        committed_at.elapsed() >= Duration::from_millis(800),
        "not before the TTL"
    );
    assert!(!file.exists(), "the offsets file is removed with the group");
    assert_eq!(b.get("/v1/groups/idle/offsets?topic=t").status, 404);
    // Well past the TTL: the group with a member is still there.
    while started.elapsed() < Duration::from_millis(2_000) {
        let beat = b.heartbeat("live", &live_id);
        assert_eq!(beat.status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(b.get("/v1/groups/live").status, 200);
}

#[test]
fn an_idle_producer_is_forgotten_after_its_window_and_an_active_one_keeps_exactly_once() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &["--producer-idle-ms", "1000"]);
    assert_eq!(b.put_topic("p", 1).status, 201);
    let msg = [pinned(0, 1)];
    let end = |b: &Broker| {
        b.get("/v1/topics/p").json()["partitions"][0]["log_end_offset"]
            .as_u64()
            .expect("end")
    };
    b.produce("p", "?producer=quiet&seq=1", &msg);
    let retry = b.produce("p", "?producer=quiet&seq=1", &msg);
    assert_eq!(
        retry.header("broker-duplicate"),
        Some("true"),
        "within the window"
    );

    // "busy" appends every ~200 ms for longer than the window; "quiet" appends nothing.
    let started = Instant::now();
    let mut seq = 0;
    while started.elapsed() < Duration::from_millis(1_600) {
        seq += 1;
        b.produce("p", &format!("?producer=busy&seq={seq}"), &msg);
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = end(&b);
    let busy = b.produce("p", &format!("?producer=busy&seq={seq}"), &msg);
    assert_eq!(
        busy.header("broker-duplicate"),
        Some("true"),
        "an active producer keeps exactly-once"
    );
    assert_eq!(end(&b), before);
    // The late retry of the idle producer is appended again, as documented.
    let late = b.produce("p", "?producer=quiet&seq=1", &msg);
    assert_eq!(late.header("broker-duplicate"), None);
    assert_eq!(end(&b), before + 1);
}
