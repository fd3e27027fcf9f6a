//! `--token` / `--token-file`: bearer auth on everything but the ops endpoints, checked on
//! the request head.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::harness::{call, pinned, tempdir, Broker};
use crate::raw;

#[test]
fn a_token_guards_every_v1_route_but_not_health_ready_or_metrics() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &["--token", "s3cret"]);
    assert_eq!(
        b.put_topic("sec", 1).status,
        201,
        "the harness sends the token"
    );
    let anonymous = ureq::AgentBuilder::new().build();
    let url = |p: &str| format!("{}{p}", b.url);
    let none = call(anonymous.get(&url("/v1/topics")), None);
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        none.header("content-type"),
        Some("application/problem+json")
    );
    let wrong = call(
        anonymous
            .get(&url("/v1/topics"))
            .set("Authorization", "Bearer s3creT"),
        None,
    );
    assert_eq!(wrong.status, 401);
    let produce = call(
        anonymous
            .post(&url("/v1/topics/sec/messages"))
            .set("Authorization", "Bearer nope"),
        Some(pinned(0, 1).as_bytes()),
    );
    assert_eq!(produce.status, 401);
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(call(anonymous.get(&url(open)), None).status, 200, "{open}");
    }
    assert!(
        b.fetch_all("sec", 0, 0).is_empty(),
        "the refused produce appended nothing"
    );
    b.stop();
}

#[test]
fn an_unauthenticated_16_mib_post_is_refused_from_its_head_without_reading_the_body() {
    let dir = tempdir();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "from-a-file\n").expect("write the token file");
    let data = dir.path().join("data");
    let token_file = token_file.to_str().expect("utf-8 path");
    let b = Broker::start(&data, &["--token-file", token_file]);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", b.child.pid())).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("from-a-file"),
        "the token shows in ps"
    );

    // The head announces 16 MiB; not a byte of the body is sent. Reading it would wait forever.
    let mut s = raw::connect(&b.url);
    let started = Instant::now();
    s.write_all(
        format!(
            "POST /v1/topics/big/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            16 * 1024 * 1024
        )
        .as_bytes(),
    )
    .expect("send the head");
    let head = raw::read_head(&mut s);
    let took = started.elapsed();
    assert_eq!(raw::status(&head), 401, "{head}");
    assert!(took < Duration::from_millis(100), "refused after {took:?}");
    assert_eq!(raw::header(&head, "www-authenticate"), Some("Bearer"));
    assert_eq!(raw::header(&head, "connection"), Some("close"));
    // The connection is closed rather than drained.
    let closed_after = raw::time_until_closed(&mut s);
    assert!(
        closed_after < Duration::from_secs(2),
        "kept open {closed_after:?}"
    );

    // The token from the file is the one admitted.
    let anonymous = ureq::AgentBuilder::new().build();
    let put = |token: &str| {
        call(
            anonymous
                .put(&format!("{}/v1/topics/big", b.url))
                .set("Authorization", &format!("Bearer {token}"))
                .set("Content-Type", "application/json"),
            Some(br#"{"partitions":1}"#),
        )
        .status
    };
    assert_eq!(put("wrong"), 401);
    assert_eq!(put("from-a-file"), 201);
    b.stop();
}
