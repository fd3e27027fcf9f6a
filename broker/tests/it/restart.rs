//! Restarts: a clean stop keeps topics, committed offsets and group members; `kill -9` while
//! producing loses no acknowledged message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use testkit::wait_until;

use crate::harness::{pinned, tempdir, Broker};

#[test]
fn a_restart_keeps_topics_messages_and_committed_offsets() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("keep", 3).status, 201);
    b.produce("keep", "", &[pinned(0, 1), pinned(2, 2), pinned(2, 3)]);
    let joined = b.post_json("/v1/groups/keepers/members", &json!({"topic": "keep"}));
    let joined = joined.json();
    let member = joined["member_id"].as_str().expect("id").to_string();
    let r = b.post_json(
        "/v1/groups/keepers/offsets",
        &json!({"member_id": member, "generation": joined["generation"], "topic": "keep", "offsets": {"2": 1}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b.stop(), Some(0), "SIGTERM exits 0");

    let b = Broker::start(dir.path(), &[]);
    let topic = b.get("/v1/topics/keep").json();
    assert_eq!(topic["partitions"].as_array().map(Vec::len), Some(3));
    assert_eq!(topic["partitions"][2]["log_end_offset"], 2);
    assert_eq!(
        b.put_topic("keep", 3).status,
        200,
        "still exists with 3 partitions"
    );
    assert_eq!(
        b.get("/v1/groups/keepers/offsets?topic=keep").json()["offsets"],
        json!({"2": 1})
    );
    let r = b.send(
        "POST",
        &format!("/v1/groups/keepers/members/{member}/heartbeat"),
        "application/json",
        b"",
    );
    assert_eq!(r.status, 200, "the member survives a restart: {}", r.text());
    // Its fetch resumes from the committed offsets (delivered positions are not kept).
    let r = b.get(&format!(
        "/v1/groups/keepers/members/{member}/messages?max=100"
    ));
    let mut got: Vec<(u64, u64)> = r
        .lines()
        .iter()
        .map(|l| {
            (
                l["partition"].as_u64().expect("p"),
                l["offset"].as_u64().expect("o"),
            )
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, [(0, 0), (2, 1)]);
    b.stop();
}

#[test]
fn kill_9_while_producing_then_restart_every_acknowledged_message_is_there() {
    let dir = tempdir();
    let mut b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("crash", 4).status, 201);
    let acked: Mutex<Vec<(u64, u64, u64)>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let (b, acked, stop) = (&b, &acked, &stop);
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let lines: Vec<String> = (0..50)
                        .map(|i| pinned(((n + i) % 4) as u32, t * 1_000_000 + n + i))
                        .collect();
                    let r = b.produce_raw("crash", "", &lines);
                    if r.status != 200 {
                        return; // the broker died under us: this one was not acknowledged
                    }
                    let results = r.json()["results"].as_array().expect("results").clone();
                    let mut acked = acked.lock().expect("lock");
                    for (i, res) in results.iter().enumerate() {
                        acked.push((
                            res["partition"].as_u64().expect("p"),
                            res["offset"].as_u64().expect("o"),
                            t * 1_000_000 + n + i as u64,
                        ));
                    }
                    n += 50;
                }
            });
        }
        wait_until(
            Duration::from_secs(30),
            "some acknowledged produces",
            || acked.lock().expect("lock").len() >= 3_000,
        );
        // The producer threads still borrow the broker, so signal the pid directly.
        // SAFETY: kill(2) on the pid of a child we spawned, with a valid signal.
        unsafe {
            libc::kill(b.child.pid() as libc::pid_t, libc::SIGKILL);
        }
        stop.store(true, Ordering::SeqCst);
    });
    b.child.kill9();
    let acked = acked.into_inner().expect("lock");
    let b = Broker::start(dir.path(), &[]);
    for p in 0..4u64 {
        let stored = b.fetch_all("crash", p as u32, 0);
        for &(_, offset, n) in acked.iter().filter(|(ap, _, _)| *ap == p) {
            let msg = stored
                .get(offset as usize)
                .unwrap_or_else(|| panic!("acknowledged p{p}@{offset} is gone"));
            assert_eq!(msg["value"]["n"], n, "p{p}@{offset} holds another message");
        }
    }
    b.stop();
}
