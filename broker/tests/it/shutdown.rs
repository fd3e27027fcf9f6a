//! SIGTERM: parked long-polls answer at once, the process syncs and exits 0; and the
//! operations endpoints.

use std::time::{Duration, Instant};

use testkit::wait_until;

use crate::harness::{tempdir, Broker};

#[test]
fn sigterm_answers_parked_polls_and_exits_zero() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("bye", 1).status, 201);
    std::thread::scope(|s| {
        let fetch = s.spawn(|| {
            let r = b.get("/v1/topics/bye/partitions/0/messages?offset=0&wait_ms=30000");
            (r.status, r.body.len(), Instant::now())
        });
        wait_until(Duration::from_secs(10), "the fetch to park", || {
            b.metric("broker_long_polls_parked") == Some(1.0)
        });
        let signalled = Instant::now();
        // SAFETY: kill(2) on our own child's pid with a valid signal.
        unsafe {
            libc::kill(b.child.pid() as libc::pid_t, libc::SIGTERM);
        }
        let (status, len, answered) = fetch.join().expect("fetch thread");
        assert_eq!((status, len), (200, 0), "answered empty");
        assert!(answered.duration_since(signalled) < Duration::from_secs(5));
    });
    assert_eq!(b.stop(), Some(0));
}

#[test]
fn ops_endpoints_answer_and_metrics_have_help_lines() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.get("/healthz").status, 200);
    assert_eq!(b.get("/readyz").status, 200);
    assert_eq!(b.put_topic("m", 1).status, 201);
    b.produce("m", "", &[crate::harness::pinned(0, 1)]);
    let metrics = b.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    let text = metrics.text();
    for name in [
        "broker_messages_in_total",
        "broker_bytes_in_total",
        "broker_request_duration_seconds",
        "broker_log_end_offset",
    ] {
        assert!(
            text.contains(&format!("# HELP {name}")),
            "no HELP for {name}"
        );
    }
    assert!(
        text.contains("broker_messages_in_total{topic=\"m\"} 1"),
        "{text}"
    );
    b.stop();
}
