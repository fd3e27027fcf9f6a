//! The `/v1/raft/*` handler as the broker will mount it: its routes, methods and refusals,
//! over real HTTP to a real one-node cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use broker_meta::server::serve;
use broker_meta::{Applied, ApplyResult, Command, MetaConfig, MetaNode, Metadata};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;

async fn call(url: &str, method: Method, path: &str, body: &str) -> (StatusCode, Bytes) {
    let client = broker_meta::network::http_client(Duration::from_secs(5));
    let req = Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_methods_and_bad_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = MetaConfig::new(0, url.clone(), BTreeMap::new(), dir.path().join("meta"));
    let node = MetaNode::start(config).await.unwrap();
    let _server = serve(listener, node.clone()).unwrap();
    assert!(node.initialize().await.unwrap());
    let mut watch = node.watch();
    let registered = watch.wait_for(|m| m.members.contains_key(&0));
    tokio::time::timeout(Duration::from_secs(30), registered)
        .await
        .unwrap()
        .unwrap();

    // A proposal over HTTP answers the leader's apply result.
    let command = serde_json::to_string(&Command::AssignCoordinator { group: "g".into() }).unwrap();
    let (status, body) = call(&url, Method::POST, "/v1/raft/propose", &command).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Result<ApplyResult, serde_json::Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        answer.unwrap(),
        ApplyResult::Applied(Applied::Coordinator { node: 0 })
    );

    // The applied metadata, as this node has it.
    let (status, body) = call(&url, Method::GET, "/v1/raft/metadata", "").await;
    assert_eq!(status, StatusCode::OK);
    let m: Metadata = serde_json::from_slice(&body).unwrap();
    assert_eq!(m, node.metadata());
    assert_eq!(m.groups.get("g"), Some(&0));

    for path in [
        "/v1/raft/append",
        "/v1/raft/vote",
        "/v1/raft/snapshot",
        "/v1/raft/propose",
    ] {
        let (status, _) = call(&url, Method::POST, path, "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        let (status, _) = call(&url, Method::GET, path, "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    let (status, _) = call(&url, Method::POST, "/v1/raft/nothing", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Refused requests changed nothing.
    assert_eq!(node.metadata(), m);
    node.shutdown().await.unwrap();
}
