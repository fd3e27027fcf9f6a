//! A stored value can never add a line to an NDJSON answer: values are one-line JSON,
//! checked at produce for both content types, so neither the plain fetch nor the group fetch
//! (NDJSON only) can carry a record the broker did not write.

use serde_json::json;

use crate::harness::{batch, tempdir, Broker};

/// A value that, copied raw into a fetch line, ends the line and forges a second record.
const FORGERY: &[u8] =
    b"1}\n{\"partition\":0,\"offset\":999,\"timestamp\":0,\"key\":\"forged\",\"value\":1";

fn produce_batch(b: &Broker, values: &[&[u8]]) -> crate::harness::Resp {
    b.produce_body(
        "t",
        "?partition=0",
        "application/vnd.broker.batch",
        &batch(values),
    )
}

#[test]
fn a_value_that_would_forge_a_second_ndjson_line_is_refused_and_fetches_stay_one_line_per_record() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("t", 1).status, 201);
    let good: &[u8] = br#"{"temp":41.5}"#;
    assert_eq!(produce_batch(&b, &[good]).status, 200);

    let forged_in_a_field: &[u8] = br#"1,"offset":999"#;
    let pretty_json: &[u8] = b"{\"a\":\n1}";
    let carriage_return: &[u8] = b"{\"a\":\r1}";
    for bad in [
        FORGERY,
        forged_in_a_field,
        pretty_json,
        carriage_return,
        b"not json",
        b"\"\xff\"",
    ] {
        // Alone, and hidden after a good record: the whole batch is refused.
        for values in [vec![bad], vec![good, bad]] {
            let r = produce_batch(&b, &values);
            assert_eq!(
                r.status,
                400,
                "{:?} accepted: {}",
                String::from_utf8_lossy(bad),
                r.text()
            );
            assert_eq!(r.header("content-type"), Some("application/problem+json"));
        }
    }
    // NDJSON produce: a carriage return inside a line is refused too.
    let ndjson = b.produce_body(
        "t",
        "?partition=0",
        "application/x-ndjson",
        b"{\"partition\":0,\"value\":{\"a\":\r1}}\n",
    );
    assert_eq!(ndjson.status, 400, "{}", ndjson.text());
    // An empty value is allowed and reads back as null.
    assert_eq!(produce_batch(&b, &[b""]).status, 200);

    let plain = b.get("/v1/topics/t/partitions/0/messages?offset=0");
    assert_eq!(plain.status, 200);
    let lines = plain.lines();
    assert_eq!(lines.len(), 2, "{}", plain.text());
    assert_eq!(lines[0]["value"], json!({"temp": 41.5}));
    assert_eq!(lines[1]["value"], json!(null));
    assert!(lines.iter().all(|l| l["key"] == "GPU-bin"));

    let member = b
        .post_json("/v1/groups/g/members", &json!({"topic": "t"}))
        .json();
    let mid = member["member_id"].as_str().expect("member id");
    let group = b.get(&format!("/v1/groups/g/members/{mid}/messages?wait_ms=0"));
    assert_eq!(group.status, 200);
    assert_eq!(
        group.text(),
        plain.text(),
        "the group fetch writes the same lines"
    );
}
