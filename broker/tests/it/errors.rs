//! Bad input: every kind answered with the right status and a problem+json body, and the
//! broker keeps working afterwards.

use serde_json::json;

use crate::harness::{line, pinned, tempdir, Broker};

fn assert_problem(r: &crate::harness::Resp, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let detail = r.json()["detail"].as_str().unwrap_or("").to_string();
    assert!(
        detail.contains(needle),
        "detail {detail:?} lacks {needle:?}"
    );
}

#[test]
fn each_bad_input_gets_its_status_and_the_broker_still_works() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &["--max-body-bytes", "4096"]);
    assert_eq!(b.put_topic("ok", 2).status, 201);

    let bad_line = b.send(
        "POST",
        "/v1/topics/ok/messages",
        "application/x-ndjson",
        format!("{}\n{{\"key\":\"a\",\"value\":}}\n", line("GPU-1", 1)).as_bytes(),
    );
    assert_problem(&bad_line, 400, "line 2");
    let no_value = b.produce_raw("ok", "", &[r#"{"key":"a"}"#.to_string()]);
    assert_problem(&no_value, 400, "line 1");
    let big = vec![b'x'; 5000];
    assert_problem(
        &b.send(
            "POST",
            "/v1/topics/ok/messages",
            "application/x-ndjson",
            &big,
        ),
        413,
        "4096",
    );
    assert_problem(
        &b.get("/v1/topics/nope/partitions/0/messages?offset=0"),
        404,
        "unknown topic",
    );
    assert_problem(
        &b.get("/v1/topics/ok/partitions/9/messages?offset=0"),
        404,
        "no partition 9",
    );
    b.produce("ok", "", &[pinned(0, 1), pinned(0, 2)]);
    let range = b.get("/v1/topics/ok/partitions/0/messages?offset=7");
    assert_problem(&range, 416, "out of range");
    assert_eq!(range.json()["log_start_offset"], 0);
    assert_eq!(range.json()["log_end_offset"], 2);
    assert_problem(&b.put_topic("bad%2Fname", 1), 400, "invalid topic name");
    assert_problem(&b.put_topic("a%20b", 1), 400, "invalid topic name");
    assert_problem(
        &b.produce_raw(&"x".repeat(201), "", &[pinned(0, 1)]),
        400,
        "1 to 200",
    );
    assert_problem(
        &b.get("/v1/topics/ok/partitions/0/messages?offset=abc"),
        400,
        "offset",
    );
    assert_problem(
        &b.send("POST", "/v1/topics/ok/messages", "text/csv", b"a,b"),
        415,
        "text/csv",
    );
    assert_problem(
        &b.post_json("/v1/groups/g/members", &json!({"topik": "ok"})),
        400,
        "invalid JSON",
    );
    assert_problem(
        &b.send(
            "POST",
            "/v1/groups/g/members/m/heartbeat",
            "application/json",
            b"",
        ),
        404,
        "unknown group",
    );
    assert_problem(&b.get("/v1/groups/nobody"), 404, "unknown group");
    assert_problem(
        &b.get("/v1/groups/nobody/offsets?topic=ok"),
        404,
        "unknown group",
    );
    assert_problem(&b.get("/v1/groups/g/offsets"), 400, "topic");
    let wrong_method = b.send("POST", "/v1/topics/ok", "application/json", b"");
    assert_problem(&wrong_method, 405, "not allowed");
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD, PUT, DELETE"));
    assert_problem(&b.get("/v2/nothing"), 404, "/v2/nothing");

    // Still fine after all that.
    let r = b.produce("ok", "", &[pinned(0, 3)]);
    assert_eq!(r.json()["results"][0]["offset"], 2);
    assert_eq!(b.fetch_all("ok", 0, 0).len(), 3);
    b.stop();
}
