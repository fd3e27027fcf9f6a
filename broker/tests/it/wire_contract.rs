//! The broker speaks the shapes of the shared wire contract (`broker-wire`): produce lines
//! written with its `ProduceLine`, fetch lines read with its `FetchLine`, the `Broker-*`
//! header names, and problem bodies whose extension fields parse into its `Problem`. The
//! broker encodes and parses these by hand on its hot paths, so this is what keeps both
//! sides on one contract.

use broker_wire::ndjson::{FetchLine, ProduceLine};
use broker_wire::{header, media, Problem};
use serde_json::json;

use crate::harness::{tempdir, Broker};

fn produce_line(key: Option<&str>, partition: Option<u32>, value: &serde_json::Value) -> String {
    serde_json::to_string(&ProduceLine {
        key,
        partition,
        value,
    })
    .expect("a produce line serializes")
}

#[test]
fn produce_and_fetch_lines_have_the_shared_shapes() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("shapes", 2).status, 201);
    let key = "GPU-\"quoted\"";
    let keyed_partition = broker_wire::partition_for_key(key.as_bytes(), 2);
    let values = [json!({"a": [1, 2.5]}), json!("text"), json!(null)];
    let lines: Vec<String> = values
        .iter()
        .map(|v| produce_line(Some(key), None, v))
        .chain([produce_line(None, Some(1 - keyed_partition), &json!(7))])
        .collect();
    b.produce("shapes", "", &lines);

    let fetched = b.get(&format!(
        "/v1/topics/shapes/partitions/{keyed_partition}/messages?offset=1&max=10"
    ));
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert_eq!(fetched.header("content-type"), Some(media::NDJSON));
    assert_eq!(fetched.header_u64(header::NEXT_OFFSET), 3);
    assert_eq!(fetched.header_u64(header::LOG_END_OFFSET), 3);
    let text = fetched.text();
    let got: Vec<FetchLine<'_>> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(got.len(), 2);
    for (line, (offset, value)) in got.iter().zip([(1, &values[1]), (2, &values[2])]) {
        assert_eq!(line.partition, Some(keyed_partition));
        assert_eq!(line.offset, offset);
        assert!(line.timestamp > 0);
        assert_eq!(line.key.as_deref(), Some(key));
        let stored: serde_json::Value = serde_json::from_str(line.value.get()).unwrap();
        assert_eq!(&stored, value);
    }

    let pinned = b.get(&format!(
        "/v1/topics/shapes/partitions/{}/messages?offset=0",
        1 - keyed_partition
    ));
    let text = pinned.text();
    let line: FetchLine<'_> = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!((line.key, line.value.get()), (None, "7"));
}

#[test]
fn a_416_problem_carries_the_log_bounds_as_fields_of_the_shared_problem() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("bounds", 1).status, 201);
    let lines: Vec<String> = (0..3)
        .map(|n| produce_line(None, Some(0), &json!({ "n": n })))
        .collect();
    b.produce("bounds", "", &lines);

    let r = b.get("/v1/topics/bounds/partitions/0/messages?offset=9");
    assert_eq!(r.status, 416, "{}", r.text());
    assert_eq!(r.header("content-type"), Some(media::PROBLEM));
    let problem: Problem = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(problem.status, 416);
    assert_eq!(problem.kind, "about:blank");
    assert_eq!(problem.log_bounds(), Some((0, 3)));

    let bad_name = b.put_topic("a.b$c", 1);
    let problem: Problem = serde_json::from_slice(&bad_name.body).unwrap();
    assert_eq!(problem.status, 400);
    assert_eq!(problem.log_bounds(), None);
    let expected = broker_wire::validate_name("topic", "a.b$c").unwrap_err();
    assert_eq!(problem.detail, expected.to_string());
}

#[test]
fn every_problem_the_broker_answers_parses_into_the_shared_problem() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &["--token", "s3cret"]);
    assert_eq!(b.put_topic("routes", 1).status, 201);
    let anonymous = ureq::AgentBuilder::new().build();
    let cases = [
        (b.get("/v2/nothing"), 404, "Not Found"),
        (b.get("/v1/topics/routes/partitions"), 404, "Not Found"),
        (
            b.send("POST", "/v1/topics/routes", "application/json", b""),
            405,
            "Method Not Allowed",
        ),
        (b.get("/v1/topics/absent"), 404, "Not Found"),
        // Refused by the serving layer before routing: the same fields.
        (
            crate::harness::call(anonymous.get(&format!("{}/v1/topics", b.url)), None),
            401,
            "Unauthorized",
        ),
    ];
    for (r, status, title) in &cases {
        assert_eq!(r.status, *status, "{}", r.text());
        assert_eq!(r.header("content-type"), Some(media::PROBLEM));
        let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let mut fields: Vec<&str> = json
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, ["detail", "status", "title", "type"], "{json}");
        let problem: Problem = serde_json::from_value(json).unwrap();
        assert_eq!(
            (
                problem.kind.as_str(),
                problem.title.as_str(),
                problem.status
            ),
            ("about:blank", *title, *status)
        );
        assert!(!problem.detail.is_empty());
    }
    let wrong_method = &cases[2].0;
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD, PUT, DELETE"));
    let problem: Problem = serde_json::from_slice(&wrong_method.body).unwrap();
    assert_eq!(
        problem.detail,
        "method POST is not allowed here; allowed: GET, HEAD, PUT, DELETE"
    );
    let problem: Problem = serde_json::from_slice(&cases[0].0.body).unwrap();
    assert_eq!(problem.detail, "no resource at /v2/nothing");
    b.stop();
}
