//! Idempotent produce: a retry with the same producer and seq appends nothing, before and
//! after a restart (the producer state comes back from the log).

use crate::harness::{line, tempdir, Broker};

fn ends(b: &Broker, topic: &str) -> Vec<u64> {
    b.get(&format!("/v1/topics/{topic}")).json()["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["log_end_offset"].as_u64().expect("end"))
        .collect()
}

#[test]
fn a_retried_produce_appends_nothing_before_and_after_a_restart() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("idem", 4).status, 201);
    let batch: Vec<String> = (0..20)
        .map(|i| line(&format!("GPU-{}", i % 5), i))
        .collect();
    let first = b.produce("idem", "?producer=streamer-1:a&seq=1", &batch);
    assert_eq!(first.header("broker-duplicate"), None);
    let after_first = ends(&b, "idem");

    let retry = b.produce("idem", "?producer=streamer-1:a&seq=1", &batch);
    assert_eq!(retry.header("broker-duplicate"), Some("true"));
    assert_eq!(retry.json(), first.json(), "the original offsets");
    assert_eq!(ends(&b, "idem"), after_first, "nothing appended");

    let next = b.produce("idem", "?producer=streamer-1:a&seq=2", &batch[..3]);
    assert_eq!(next.header("broker-duplicate"), None);
    let after_second = ends(&b, "idem");
    assert!(after_second.iter().sum::<u64>() == after_first.iter().sum::<u64>() + 3);

    // Kill -9: no clean shutdown, the state must come back from the batch headers.
    let mut b = b;
    b.child.kill9();
    let b = Broker::start(dir.path(), &[]);
    let retry = b.produce("idem", "?producer=streamer-1:a&seq=1", &batch);
    assert_eq!(retry.header("broker-duplicate"), Some("true"));
    assert_eq!(retry.json(), first.json());
    let retry = b.produce("idem", "?producer=streamer-1:a&seq=2", &batch[..3]);
    assert_eq!(retry.json(), next.json());
    assert_eq!(
        ends(&b, "idem"),
        after_second,
        "nothing appended after the restart"
    );

    // Messages with neither key nor partition: the retry lands where the original did.
    let keyless = vec![
        r#"{"value":{"k":1}}"#.to_string(),
        r#"{"value":{"k":2}}"#.to_string(),
    ];
    let original = b.produce("idem", "?producer=keyless&seq=1", &keyless);
    let before = ends(&b, "idem");
    for _ in 0..3 {
        let retry = b.produce("idem", "?producer=keyless&seq=1", &keyless);
        assert_eq!(retry.json(), original.json());
        assert_eq!(retry.header("broker-duplicate"), Some("true"));
    }
    assert_eq!(ends(&b, "idem"), before);

    // Another producer with the same seq is independent.
    let other = b.produce("idem", "?producer=streamer-2&seq=1", &batch[..1]);
    assert_eq!(other.header("broker-duplicate"), None);
    b.stop();
}

#[test]
fn an_old_seq_or_a_changed_retry_is_refused_with_409() {
    let dir = tempdir();
    let b = Broker::start(dir.path(), &[]);
    assert_eq!(b.put_topic("win", 1).status, 201);
    for seq in 1..=12 {
        b.produce(
            "win",
            &format!("?producer=p&seq={seq}"),
            &[line("GPU-1", seq)],
        );
    }
    // Within the remembered window: a duplicate; older: refused.
    let recent = b.produce("win", "?producer=p&seq=8", &[line("GPU-1", 8)]);
    assert_eq!(recent.header("broker-duplicate"), Some("true"));
    let old = b.produce_raw("win", "?producer=p&seq=2", &[line("GPU-1", 2)]);
    assert_eq!(old.status, 409, "{}", old.text());
    let changed = b.produce_raw(
        "win",
        "?producer=p&seq=12",
        &[line("GPU-1", 1), line("GPU-1", 2)],
    );
    assert_eq!(changed.status, 409, "{}", changed.text());
    let half = b.produce_raw("win", "?producer=p", &[line("GPU-1", 1)]);
    assert_eq!(half.status, 400, "{}", half.text());
    let bad_id = b.produce_raw("win", "?producer=a/b&seq=1", &[line("GPU-1", 1)]);
    assert_eq!(bad_id.status, 400, "{}", bad_id.text());
    assert_eq!(b.fetch_all("win", 0, 0).len(), 12);
    b.stop();
}
