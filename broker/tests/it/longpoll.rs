//! Long-poll: a parked fetch returns promptly after a produce, and empty at `wait_ms`.

use std::time::{Duration, Instant};

use testkit::wait_until;

use crate::harness::{pinned, tempdir, Broker};

#[test]
fn parked_fetch_returns_promptly_after_a_produce() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("lp", 2).status, 201);
    b.produce("lp", "", &[pinned(1, 0)]);
    std::thread::scope(|s| {
        let fetch = s.spawn(|| {
            let r = b.get("/v1/topics/lp/partitions/1/messages?offset=1&wait_ms=20000");
            (r, Instant::now())
        });
        wait_until(Duration::from_secs(10), "the fetch to park", || {
            b.metric("broker_long_polls_parked") == Some(1.0)
        });
        b.produce("lp", "", &[pinned(1, 1)]);
        let acked = Instant::now();
        let (r, returned) = fetch.join().expect("fetch thread");
        assert_eq!(r.status, 200);
        let lines = r.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["value"]["n"], 1);
        assert_eq!(r.header_u64("broker-next-offset"), 2);
        let woke = returned.saturating_duration_since(acked);
        // Well under 10 ms on an idle machine; the bound is loose for a loaded CI box.
        assert!(woke < Duration::from_millis(500), "woke after {woke:?}");
    });
    b.stop();
}

#[test]
fn parked_fetch_answers_empty_at_wait_ms() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("lp", 1).status, 201);
    let started = Instant::now();
    let r = b.get("/v1/topics/lp/partitions/0/messages?offset=0&wait_ms=300");
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header_u64("broker-next-offset"), 0);
    assert!(
        took >= Duration::from_millis(300),
        "returned after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "returned after {took:?}");
    b.stop();
}

#[test]
fn group_member_fetch_parks_across_its_partitions_and_wakes_on_any() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("lpg", 3).status, 201);
    let joined = b.post_json("/v1/groups/g/members", &serde_json::json!({"topic": "lpg"}));
    let member = joined.json()["member_id"].as_str().expect("id").to_string();
    std::thread::scope(|s| {
        let fetch = s.spawn(|| {
            b.get(&format!(
                "/v1/groups/g/members/{member}/messages?wait_ms=20000"
            ))
        });
        wait_until(Duration::from_secs(10), "the group fetch to park", || {
            b.metric("broker_long_polls_parked") == Some(1.0)
        });
        b.produce("lpg", "", &[pinned(2, 7)]);
        let r = fetch.join().expect("fetch thread");
        assert_eq!(r.status, 200);
        assert_eq!(r.lines()[0]["value"]["n"], 7);
        assert_eq!(r.lines()[0]["partition"], 2);
    });
    b.stop();
}
