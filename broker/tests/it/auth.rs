//! `--token`: bearer auth on everything but the ops endpoints.

use crate::harness::{call, pinned, tempdir, Broker};

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
