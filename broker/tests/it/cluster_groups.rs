//! Consumer groups in a three-broker cluster: a group's calls are served by its coordinator
//! (named in the metadata at the first join), the other brokers answer 421 naming it, and the
//! client library follows. When the coordinator is killed, the metadata names another and the
//! member, whose heartbeats now reach a broker that does not know it, rejoins there; the
//! group's committed offsets, replicated through the metadata, are still there.

use std::time::Duration;

use broker_client::{BrokerClient, ClientConfig, GroupMember, RetryPolicy};
use testkit::wait_until;

use crate::cluster::{Cluster, TOKEN};

const TOPIC: &str = "grouped";
const GROUP: &str = "collectors";

fn client_of(urls: &str) -> BrokerClient {
    let mut config = ClientConfig::new(urls).token(Some(TOKEN.to_string()));
    config.retry = RetryPolicy {
        give_up_after: Some(Duration::from_secs(30)),
        ..RetryPolicy::default()
    };
    BrokerClient::new(config)
}

/// The group's coordinator as `/v1/cluster`'s members name it, read from a 421 (or the
/// broker itself, when it answers).
fn coordinator(cluster: &Cluster) -> Option<String> {
    cluster.live().find_map(|b| {
        let r = b.get(&format!("/v1/groups/{GROUP}"));
        match r.status {
            200 => Some(b.url.clone()),
            421 => r.json()["leader_url"].as_str().map(str::to_string),
            _ => None,
        }
    })
}

#[test]
fn a_group_lives_at_its_coordinator_and_moves_when_it_dies() {
    let mut cluster = Cluster::start();
    let urls: Vec<String> = cluster.live().map(|b| b.url.clone()).collect();
    let client = client_of(&urls.join(","));
    assert!(client.create_topic(TOPIC, 3).expect("create"));

    let member = GroupMember::join(client.clone(), GROUP, TOPIC, Some(Duration::from_secs(3)))
        .expect("join through any broker");
    let first = member.membership();
    assert_eq!(first.partitions.len(), 3, "{first:?}");
    let coordinator_url = coordinator(&cluster).expect("a coordinator");

    // Only the coordinator knows the group; the others point at it.
    for b in cluster.live() {
        let r = b.get(&format!("/v1/groups/{GROUP}"));
        if b.url == coordinator_url {
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.json()["members"].as_array().map(Vec::len), Some(1));
        } else {
            assert_eq!(r.status, 421, "{}", r.text());
            assert_eq!(r.json()["leader_url"], coordinator_url.as_str());
        }
    }
    // Commits and committed offsets go through the client to the coordinator.
    member
        .commit(&[(0u32, 0u64)].into_iter().collect())
        .expect("commit at the coordinator");
    assert_eq!(member.committed().expect("committed").get(&0), Some(&0));

    // Kill the coordinator: the metadata names another, and the member rejoins there.
    let at = cluster
        .brokers
        .iter()
        .position(|b| b.as_ref().is_some_and(|b| b.url == coordinator_url))
        .expect("the coordinator's index");
    let mut dead = cluster.brokers[at].take().expect("the coordinator");
    dead.child.kill9();
    wait_until(
        Duration::from_secs(30),
        "another coordinator with the member rejoined there",
        || {
            let Some(now) = coordinator(&cluster) else {
                return false;
            };
            if now == coordinator_url {
                return false;
            }
            let r = cluster.at(&now).get(&format!("/v1/groups/{GROUP}"));
            r.status == 200 && r.json()["members"].as_array().map(Vec::len) == Some(1)
        },
    );
    let view = member
        .refresh()
        .expect("a heartbeat at the new coordinator");
    assert_ne!(view.member_id, first.member_id, "rejoined under a new id");
    assert_eq!(view.partitions.len(), 3, "{view:?}");
    // The committed offsets were replicated: the new coordinator answers them.
    let committed = member
        .committed()
        .expect("committed at the new coordinator");
    assert_eq!(committed.get(&0), Some(&0), "{committed:?}");
    member.leave();
}
