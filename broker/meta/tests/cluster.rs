//! Metadata clusters of real nodes: real HTTP on loopback ports, real files in temporary
//! directories. Every wait is on a condition with a generous deadline; nothing asserts timing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use broker_meta::server::{serve, Server};
use broker_meta::{Applied, ApplyResult, Command, MetaConfig, MetaNode, Metadata, NodeId};
use tempfile::TempDir;
use tokio::net::TcpListener;

/// How long any awaited condition may take before the test fails: many elections' worth.
const DEADLINE: Duration = Duration::from_secs(30);

struct Running {
    node: MetaNode,
    server: Server,
}

/// A cluster of `n` nodes on fixed loopback ports, each with its own directory.
struct Cluster {
    _root: TempDir,
    urls: BTreeMap<NodeId, String>,
    ports: BTreeMap<NodeId, u16>,
    dirs: BTreeMap<NodeId, PathBuf>,
    running: BTreeMap<NodeId, Running>,
    tune: fn(&mut MetaConfig),
}

impl Cluster {
    /// Starts `n` nodes (ids 0..n) and initializes the cluster.
    async fn start(n: u64, tune: fn(&mut MetaConfig)) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let mut listeners = BTreeMap::new();
        let mut urls = BTreeMap::new();
        let mut ports = BTreeMap::new();
        let mut dirs = BTreeMap::new();
        for id in 0..n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            urls.insert(id, format!("http://127.0.0.1:{port}"));
            ports.insert(id, port);
            dirs.insert(id, root.path().join(format!("node-{id}")).join("meta"));
            listeners.insert(id, l);
        }
        let mut c = Cluster {
            _root: root,
            urls,
            ports,
            dirs,
            running: BTreeMap::new(),
            tune,
        };
        for (id, l) in listeners {
            c.start_node(id, l).await;
        }
        let mut initialized = Vec::new();
        for (id, r) in &c.running {
            if r.node.initialize().await.unwrap() {
                initialized.push(*id);
            }
        }
        assert_eq!(initialized, vec![0], "the lowest id initializes, once");
        c
    }

    async fn start_node(&mut self, id: NodeId, listener: TcpListener) {
        let peers = if self.urls.len() == 1 {
            BTreeMap::new()
        } else {
            self.urls.clone()
        };
        let mut config = MetaConfig::new(id, self.urls[&id].clone(), peers, self.dirs[&id].clone());
        (self.tune)(&mut config);
        let node = MetaNode::start(config).await.unwrap();
        let server = serve(listener, node.clone()).unwrap();
        self.running.insert(id, Running { node, server });
    }

    /// Starts a stopped node again from its directory, on its port.
    async fn restart(&mut self, id: NodeId) {
        let addr = format!("127.0.0.1:{}", self.ports[&id]);
        // The stopped server's socket closes when its aborted task is dropped: retry the bind.
        let started = Instant::now();
        let listener = loop {
            match TcpListener::bind(&addr).await {
                Ok(l) => break l,
                Err(e) if started.elapsed() < DEADLINE => {
                    eprintln!("rebinding {addr}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("rebinding {addr}: {e}"),
            }
        };
        self.start_node(id, listener).await;
        // Initializing again is a no-op on a node with state (and on any but the lowest id).
        assert!(!self.node(id).initialize().await.unwrap());
    }

    async fn stop(&mut self, id: NodeId) {
        let r = self.running.remove(&id).expect("running");
        r.node.shutdown().await.unwrap();
        r.server.stop();
    }

    fn node(&self, id: NodeId) -> &MetaNode {
        &self.running[&id].node
    }

    /// Waits until every running node names the same leader, a running one; answers it.
    async fn leader(&self) -> NodeId {
        let started = Instant::now();
        loop {
            let seen: Vec<Option<NodeId>> = self
                .running
                .values()
                .map(|r| r.node.leader().map(|(id, _)| id))
                .collect();
            if let Some(Some(l)) = seen.first() {
                if seen.iter().all(|s| *s == Some(*l)) && self.running.contains_key(l) {
                    return *l;
                }
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no agreed leader within {DEADLINE:?}: {seen:?}"
            );
            // Wake on any node's Raft metrics changing.
            let mut waits: Vec<_> = self
                .running
                .values()
                .map(|r| r.node.raft().metrics())
                .collect();
            let changed = futures_any(
                waits
                    .iter_mut()
                    .map(|w| Box::pin(async move { w.changed().await.ok() })),
            );
            let _ = tokio::time::timeout(Duration::from_millis(500), changed).await;
        }
    }

    /// Waits until every running node's applied metadata satisfies `cond`; answers the
    /// metadata, which must then be the same on all of them.
    async fn converge(&self, what: &str, cond: impl Fn(&Metadata) -> bool) -> Metadata {
        let mut last = None;
        for (id, r) in &self.running {
            let m = wait_for(&r.node, &format!("{what} on node {id}"), &cond).await;
            last = Some(m);
        }
        let m = last.expect("a running node");
        // Once all have reached the condition, their copies agree (nothing else is proposed).
        for (id, r) in &self.running {
            let mine = wait_for(&r.node, &format!("node {id} to agree"), |x| *x == m).await;
            assert_eq!(mine, m);
        }
        m
    }
}

/// Waits on `node`'s metadata watch until `cond` holds.
async fn wait_for(node: &MetaNode, what: &str, cond: impl Fn(&Metadata) -> bool) -> Metadata {
    let mut rx = node.watch();
    let result = tokio::time::timeout(DEADLINE, rx.wait_for(|m| cond(m))).await;
    match result {
        Ok(Ok(m)) => m.clone(),
        Ok(Err(_)) => panic!("metadata watch closed waiting for {what}"),
        Err(_) => panic!(
            "no {what} within {DEADLINE:?}; metadata is {:?}",
            node.metadata()
        ),
    }
}

/// Resolves when the first of `futs` does.
async fn futures_any<F: std::future::Future + Unpin>(futs: impl Iterator<Item = F>) {
    let futs: Vec<F> = futs.collect();
    if futs.is_empty() {
        return;
    }
    let mut futs = futs;
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn create(name: &str, partitions: u32, rf: u32) -> Command {
    Command::CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: rf,
    }
}

fn defaults(_: &mut MetaConfig) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_fail_over_and_catch_up() {
    let mut c = Cluster::start(3, defaults).await;
    let leader = c.leader().await;
    c.converge("all three members", |m| m.members.len() == 3)
        .await;
    for (id, url) in &c.urls {
        assert_eq!(
            c.node(*id).leader().map(|(_, u)| u),
            Some(c.urls[&leader].clone())
        );
        assert_eq!(c.node(leader).metadata().members[id].url, *url);
    }

    // A command proposed through every node, followers included, applies on all three.
    for id in 0..3 {
        let r = c
            .node(id)
            .propose(create(&format!("t{id}"), 3, 3))
            .await
            .unwrap();
        assert_eq!(r, ApplyResult::Applied(Applied::Done), "through node {id}");
    }
    let m = c.converge("three topics", |m| m.topics.len() == 3).await;
    assert_eq!(m.topics["t1"].partitions[1].replicas, vec![1, 2, 0]);
    // A refusal is answered as such, through a follower too.
    let follower = (0..3).find(|id| *id != leader).unwrap();
    let r = c.node(follower).propose(create("t0", 1, 1)).await.unwrap();
    assert!(matches!(r, ApplyResult::Refused { .. }), "{r:?}");

    // The leader goes away: another is elected and commands keep applying.
    let old = leader;
    let lost = Instant::now();
    c.stop(old).await;
    let new = c.leader().await;
    assert_ne!(new, old);
    eprintln!(
        "new leader {new} agreed {:?} after the old one stopped",
        lost.elapsed()
    );
    let survivor = (0..3).find(|id| *id != old && *id != new).unwrap();
    let r = c
        .node(survivor)
        .propose(Command::NodeDown { node: old })
        .await
        .unwrap();
    assert_eq!(r, ApplyResult::Applied(Applied::Done));
    c.node(new)
        .propose(create("after-failover", 2, 2))
        .await
        .unwrap();
    let m = c
        .converge("the failover's commands", |m| {
            m.topics.contains_key("after-failover")
                && m.topics["t0"]
                    .partitions
                    .iter()
                    .all(|p| p.leader != Some(old) && !p.isr.contains(&old))
        })
        .await;
    assert!(m.topics["t0"]
        .partitions
        .iter()
        .all(|p| p.leader_epoch >= 1));

    // The old leader, restarted from its directory, catches up to the same metadata, plus
    // its registration as a new run (a new incarnation; it leads nothing it led before).
    let before = m.members[&old].incarnation;
    c.restart(old).await;
    let registered = c
        .converge("the restarted node's registration", |x| {
            x.members.get(&old).is_some_and(|r| r.incarnation != before)
        })
        .await;
    assert!(c.node(old).is_registered(&registered));
    for name in ["t0", "t1", "t2"] {
        assert_eq!(
            registered.topics[name], m.topics[name],
            "it led nothing of {name}"
        );
    }
    // `after-failover` was placed with it as a leader while it was down: that moved on, at a
    // new epoch.
    let placed = &m.topics["after-failover"].partitions[0];
    let now = &registered.topics["after-failover"].partitions[0];
    assert_eq!((placed.leader, placed.leader_epoch), (Some(old), 1));
    assert_eq!((now.leader, now.leader_epoch), (Some(1), 2));
    assert!(!now.isr.contains(&old));
    // And it takes part again: a command proposed through it applies everywhere.
    c.node(old)
        .propose(Command::AssignCoordinator { group: "g".into() })
        .await
        .unwrap();
    c.converge("the group's coordinator", |m| m.groups.contains_key("g"))
        .await;

    for id in 0..3 {
        c.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_one_works_alone() {
    let c = Cluster::start(1, defaults).await;
    assert_eq!(c.leader().await, 0);
    assert_eq!(c.node(0).leader(), Some((0, c.urls[&0].clone())));
    wait_for(c.node(0), "the node to register itself", |m| {
        m.members.contains_key(&0)
    })
    .await;
    let r = c.node(0).propose(create("solo", 2, 1)).await.unwrap();
    assert_eq!(r, ApplyResult::Applied(Applied::Done));
    let r = c.node(0).propose(create("too-wide", 1, 2)).await.unwrap();
    assert!(matches!(r, ApplyResult::Refused { .. }), "{r:?}");
    let m = c.node(0).metadata();
    assert_eq!(m.topics["solo"].partitions.len(), 2);
    assert!(!m.topics.contains_key("too-wide"));
    c.node(0).shutdown().await.unwrap();
}

/// Snapshots every few entries, keeping no log behind them.
fn snapshot_often(c: &mut MetaConfig) {
    c.snapshot_after_logs = 5;
    c.logs_kept_after_snapshot = 0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_catch_up_a_lagging_node_and_restarts_recover_from_disk() {
    let mut c = Cluster::start(3, snapshot_often).await;
    let leader = c.leader().await;
    c.converge("all three members", |m| m.members.len() == 3)
        .await;

    // A follower misses many commands while the leader snapshots and purges its log.
    let lagging = (0..3).find(|id| *id != leader).unwrap();
    let behind = c
        .node(lagging)
        .raft()
        .metrics()
        .borrow()
        .last_log_index
        .unwrap_or(0);
    c.stop(lagging).await;
    for i in 0..30 {
        c.node(leader)
            .propose(create(&format!("topic-{i}"), 1, 2))
            .await
            .unwrap();
    }
    let m = c.converge("thirty topics", |m| m.topics.len() == 30).await;
    let purged = c
        .node(leader)
        .raft()
        .wait(Some(DEADLINE))
        .metrics(
            |x| x.purged.is_some_and(|p| p.index > behind),
            "the leader to purge past the lagging node",
        )
        .await
        .unwrap()
        .purged;
    eprintln!("leader purged its log up to {purged:?}; the lagging node had {behind}");
    assert!(c.dirs[&leader].join("snapshot").exists());

    // The entries it lacks are gone from the leader's log: it can only catch up by snapshot.
    // (Its registration then moves on the leaderships it was placed in while it was down.)
    c.restart(lagging).await;
    let node = c.node(lagging);
    let caught_up = wait_for(node, "the lagging node to catch up", |x| {
        node.is_registered(x) && x.topics.keys().eq(m.topics.keys())
    })
    .await;
    assert!(caught_up
        .topics
        .values()
        .all(|t| t.partitions[0].leader != Some(lagging)));
    // Its metrics show the installed snapshot (they may trail the metadata watch a little).
    c.node(lagging)
        .raft()
        .wait(Some(DEADLINE))
        .metrics(
            |x| x.snapshot.is_some_and(|s| s.index > behind),
            "the lagging node to install a snapshot",
        )
        .await
        .unwrap();

    // Everything stops. One node restarted alone, with no quorum to hear from, has the
    // metadata back from its own snapshot and log.
    c.node(leader)
        .propose(Command::AssignCoordinator {
            group: "last".into(),
        })
        .await
        .unwrap();
    let m = c
        .converge("the last command", |m| m.groups.contains_key("last"))
        .await;
    for id in 0..3 {
        c.stop(id).await;
    }
    let alone = (0..3).find(|id| *id != leader).unwrap();
    c.restart(alone).await;
    assert_eq!(
        wait_for(c.node(alone), "recovery from disk", |x| *x == m).await,
        m
    );

    // With the others back, the cluster elects a leader and goes on.
    for id in (0..3).filter(|id| *id != alone) {
        c.restart(id).await;
    }
    c.leader().await;
    c.node(alone)
        .propose(create("after-restart", 1, 3))
        .await
        .unwrap();
    // (And every node's registration of its new run, which changes the metadata too.)
    let m2 = c
        .converge("a command after the full restart", |m| {
            m.topics.contains_key("after-restart")
                && c.running.values().all(|r| r.node.is_registered(m))
        })
        .await;
    assert_eq!(m2.topics.len(), 31);
    for id in 0..3 {
        c.stop(id).await;
    }
}
