//! A cluster of three brokers on loopback (`--peers`): they elect a metadata leader, agree on
//! topics, partition leaders, replicas and ISR, serve a partition only at its leader (421
//! naming it elsewhere), and keep creating topics after `kill -9` of the Raft leader. Bad
//! cluster flags stop the broker with a message naming them.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use testkit::{wait_until, Child};

use crate::harness::{pinned, tempdir, Broker};

pub(crate) const TOKEN: &str = "cluster-s3cret";

/// A fixed port for a cluster's broker (`testkit::fixed_port`).
pub(crate) fn fixed_port() -> u16 {
    testkit::fixed_port(&[])
}

/// Three brokers of one cluster (see [`Cluster::start`]); also used by the client's routing
/// tests.
pub(crate) struct Cluster {
    pub(crate) brokers: Vec<Option<Broker>>,
    dirs: Vec<tempfile::TempDir>,
    /// Each broker's flags (`--listen`, `--node-id`, `--peers`, the token, the test's extras),
    /// to start it again as it was: same port, same data directory.
    args: Vec<Vec<String>>,
}

impl Cluster {
    /// Three brokers, ids 0–2, sharing one peer list and one token (so the Raft RPCs must
    /// carry it); waits until every one is ready.
    pub(crate) fn start() -> Cluster {
        Self::start_with(|_| Vec::new())
    }

    /// [`Cluster::start`] with `extra(id)` added to broker `id`'s flags.
    pub(crate) fn start_with(extra: impl Fn(usize) -> Vec<String>) -> Cluster {
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 3 {
            let p = fixed_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{i}=http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let args: Vec<Vec<String>> = (0..3)
            .map(|i| {
                let listen = format!("127.0.0.1:{}", ports[i]);
                let id = i.to_string();
                let mut args: Vec<String> = [
                    "--listen",
                    &listen,
                    "--node-id",
                    &id,
                    "--peers",
                    &peers,
                    "--token",
                    TOKEN,
                ]
                .map(String::from)
                .to_vec();
                args.extend(extra(i));
                args
            })
            .collect();
        let mut cluster = Cluster {
            brokers: (0..3).map(|_| None).collect(),
            dirs: (0..3).map(|_| tempdir()).collect(),
            args,
        };
        for i in 0..3 {
            cluster.brokers[i] = Some(cluster.spawn(i));
        }
        for b in cluster.live() {
            b.wait_ready();
        }
        cluster
    }

    /// Broker `id` started (not yet ready) with its flags on its data directory.
    fn spawn(&self, id: usize) -> Broker {
        let args: Vec<&str> = self.args[id].iter().map(String::as_str).collect();
        Broker::start_unready(self.dirs[id].path(), &args, |_| {})
    }

    /// Starts broker `id` again, after it was stopped or killed, on its port and data
    /// directory with its flags; waits until it is ready.
    pub(crate) fn restart(&mut self, id: usize) -> &Broker {
        assert!(self.brokers[id].is_none(), "broker {id} still runs");
        let b = self.spawn(id);
        b.wait_ready();
        self.brokers[id].insert(b)
    }

    /// Starts brokers `ids` again together (one alone may have no Raft majority to become
    /// ready with), then waits until each is ready.
    pub(crate) fn restart_together(&mut self, ids: &[usize]) {
        for &id in ids {
            assert!(self.brokers[id].is_none(), "broker {id} still runs");
            let b = self.spawn(id);
            self.brokers[id] = Some(b);
        }
        for &id in ids {
            self.broker(id).wait_ready();
        }
    }

    /// `kill -9` of broker `id`.
    pub(crate) fn kill9(&mut self, id: usize) {
        let mut b = self.brokers[id].take().expect("a running broker");
        b.child.kill9();
    }

    /// The running broker `id`.
    pub(crate) fn broker(&self, id: usize) -> &Broker {
        self.brokers[id]
            .as_ref()
            .unwrap_or_else(|| panic!("broker {id} is not running"))
    }

    /// Broker `id`'s URL (its entry in `--peers`), running or not.
    pub(crate) fn url(&self, id: usize) -> String {
        let listen = self.args[id]
            .windows(2)
            .find(|w| w[0] == "--listen")
            .map(|w| w[1].as_str())
            .expect("a --listen flag");
        format!("http://{listen}")
    }

    /// Broker `id`'s data directory.
    pub(crate) fn dir(&self, id: usize) -> &std::path::Path {
        self.dirs[id].path()
    }

    pub(crate) fn live(&self) -> impl Iterator<Item = &Broker> {
        self.brokers.iter().flatten()
    }

    pub(crate) fn at(&self, url: &str) -> &Broker {
        self.live()
            .find(|b| b.url == url)
            .unwrap_or_else(|| panic!("no live broker at {url}"))
    }
}

/// The placement of every partition as one broker describes it (offsets left out: only the
/// leader's copy holds data).
pub(crate) fn placement(b: &Broker, topic: &str) -> Option<Vec<Value>> {
    let r = b.get(&format!("/v1/topics/{topic}"));
    if r.status != 200 {
        return None;
    }
    let parts = r.json()["partitions"].as_array()?.clone();
    Some(
        parts
            .into_iter()
            .map(|p| {
                serde_json::json!({
                    "partition": p["partition"], "leader": p["leader"], "leader_id": p["leader_id"],
                    "leader_epoch": p["leader_epoch"], "replicas": p["replicas"], "isr": p["isr"],
                })
            })
            .collect(),
    )
}

/// `(raft_leader, members)` of `/v1/cluster`.
fn cluster_view(b: &Broker) -> (Value, Value) {
    let c = b.get("/v1/cluster").json();
    (c["raft_leader"].clone(), c["members"].clone())
}

#[test]
fn three_brokers_agree_on_topics_route_by_leader_and_survive_the_raft_leader() {
    let mut cluster = Cluster::start();

    // Every broker sees the same Raft leader and all three members.
    wait_until(Duration::from_secs(20), "one view of the cluster", || {
        let views: Vec<_> = cluster.live().map(cluster_view).collect();
        views.iter().all(|v| v == &views[0])
            && views[0].0.is_u64()
            && views[0].1.as_array().map(Vec::len) == Some(3)
    });
    let members = cluster_view(cluster.live().next().expect("a broker")).1;
    for (i, b) in cluster.live().enumerate() {
        assert_eq!(members[i]["id"], i as u64);
        assert_eq!(members[i]["url"], b.url.as_str(), "{members}");
        assert_eq!(b.get("/v1/cluster").json()["node_id"], i as u64);
    }

    // A topic created through broker 2 is described alike by all three.
    let r = cluster.brokers[2].as_ref().expect("b2").put_topic("c", 3);
    assert_eq!(r.status, 201, "{}", r.text());
    let mut agreed = Vec::new();
    wait_until(
        Duration::from_secs(10),
        "every broker to describe c alike",
        || {
            let all: Vec<_> = cluster.live().map(|b| placement(b, "c")).collect();
            agreed = all[0].clone().unwrap_or_default();
            all.iter().all(|p| p.is_some() && p == &all[0])
        },
    );
    assert_eq!(agreed.len(), 3);
    for p in &agreed {
        let replicas = p["replicas"].as_array().expect("replicas");
        assert_eq!(
            replicas.len(),
            3,
            "replication factor 3 over 3 members: {p}"
        );
        assert_eq!(
            p["isr"], p["replicas"],
            "a new partition's ISR is its replicas"
        );
        assert_eq!(p["leader_id"], replicas[0], "the preferred replica leads");
        assert_eq!(p["leader_epoch"], 1);
        let leader = p["leader_id"].as_u64().expect("leader id") as usize;
        assert_eq!(p["leader"], members[leader]["url"], "{p}");
    }
    // Round-robin placement spreads the leaders over all three brokers.
    let mut leaders: Vec<u64> = agreed
        .iter()
        .filter_map(|p| p["leader_id"].as_u64())
        .collect();
    leaders.sort_unstable();
    leaders.dedup();
    assert_eq!(leaders.len(), 3, "{agreed:?}");

    // Partition 0 at its leader: produced and fetched back.
    let leader_url = agreed[0]["leader"]
        .as_str()
        .expect("leader url")
        .to_string();
    let leader = cluster.at(&leader_url);
    let r = leader.produce("c", "", &[pinned(0, 1), pinned(0, 2)]);
    assert_eq!(r.json()["results"][1]["offset"], 1);
    let got: Vec<u64> = leader
        .fetch_all("c", 0, 0)
        .iter()
        .filter_map(|l| l["value"]["n"].as_u64())
        .collect();
    assert_eq!(got, vec![1, 2]);

    // Elsewhere: 421 naming the leader, for produce and fetch, and nothing appended.
    let other = cluster
        .live()
        .find(|b| b.url != leader_url)
        .expect("a non-leader");
    for r in [
        other.produce_raw("c", "", &[pinned(0, 3)]),
        other.get("/v1/topics/c/partitions/0/messages?offset=0"),
    ] {
        assert_eq!(r.status, 421, "{}", r.text());
        let problem: broker_wire::Problem =
            serde_json::from_slice(&r.body).expect("a problem body");
        assert_eq!(problem.leader_url.as_deref(), Some(leader_url.as_str()));
        assert_eq!(
            problem.leader_id,
            agreed[0]["leader_id"].as_u64(),
            "{problem:?}"
        );
    }
    assert_eq!(leader.fetch_all("c", 0, 0).len(), 2);

    // Every broker holds its local copy of the topic (all three replicate a partition).
    for dir in &cluster.dirs {
        let meta = dir.path().join("topics/c/topic.json");
        wait_until(Duration::from_secs(10), "the local copy of c", || {
            meta.exists()
        });
    }

    // Created on first produce, through any broker: the default partition count, the same
    // placement everywhere; the produce is appended or refused with 421 (never half-done).
    let r = other.produce_raw("auto", "", &[pinned(0, 1)]);
    assert!(r.status == 200 || r.status == 421, "{}", r.text());
    wait_until(
        Duration::from_secs(10),
        "every broker to describe auto alike",
        || {
            let all: Vec<_> = cluster.live().map(|b| placement(b, "auto")).collect();
            all.iter().all(|p| p.is_some() && p == &all[0])
                && all[0].as_ref().map(Vec::len) == Some(16)
        },
    );

    // Deleted through one broker: gone from the metadata and from every broker's disk.
    let r = other.send("DELETE", "/v1/topics/auto", "application/json", b"");
    assert_eq!(r.status, 204, "{}", r.text());
    for (b, dir) in cluster.live().zip(&cluster.dirs) {
        let meta = dir.path().join("topics/auto");
        wait_until(Duration::from_secs(10), "auto to be gone", || {
            b.get("/v1/topics/auto").status == 404 && !meta.exists()
        });
    }

    // The Raft RPCs need the token like any other route.
    let r = crate::harness::call(
        ureq::post(&format!("{}/v1/raft/vote", other.url)),
        Some(b"{}"),
    );
    assert_eq!(r.status, 401, "{}", r.text());

    // kill -9 of the Raft leader: the two others elect another and still create topics.
    let old = cluster_view(other).0.as_u64().expect("a raft leader") as usize;
    let mut dead = cluster.brokers[old].take().expect("the leader broker");
    dead.child.kill9();
    let mut new_leader = None;
    wait_until(Duration::from_secs(20), "a new Raft leader", || {
        let views: Vec<_> = cluster.live().map(|b| cluster_view(b).0).collect();
        new_leader = views[0].as_u64();
        views.iter().all(|v| v == &views[0]) && new_leader.is_some_and(|l| l != old as u64)
    });
    for b in cluster.live() {
        wait_until(
            Duration::from_secs(20),
            "a topic created after the failover",
            || {
                let name = format!("after-{}", b.url.rsplit(':').next().unwrap_or("x"));
                let r = b.put_topic(&name, 2);
                assert!(
                    r.status == 201 || r.status == 503,
                    "{}: {}",
                    r.status,
                    r.text()
                );
                r.status == 201
            },
        );
    }
    for b in cluster.live() {
        wait_until(Duration::from_secs(10), "the new topics everywhere", || {
            b.get("/v1/topics").json()["topics"]
                .as_array()
                .is_some_and(|t| t.len() == 3)
        });
    }
    drop(dead);
    for b in cluster.brokers.drain(..).flatten() {
        assert_eq!(b.stop(), Some(0));
    }
}

/// Runs the broker with `args` and answers its exit code and log.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempdir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_broker"));
    cmd.arg("--data-dir").arg(dir.path()).args(args);
    let mut child = Child::spawn("broker", cmd);
    let status = child.wait_timeout(Duration::from_secs(20));
    (status.and_then(|s| s.code()), child.log())
}

#[test]
fn bad_cluster_flags_stop_the_broker_with_a_message() {
    let port = fixed_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let peers = format!("0=http://127.0.0.1:{port},1=http://127.0.0.1:1");
    for (args, says) in [
        (
            vec!["--listen", &listen, "--node-id", "2", "--peers", &peers],
            "does not name this broker's --node-id 2",
        ),
        (
            vec![
                "--listen",
                &listen,
                "--peers",
                "0=http://127.0.0.1:9,0=http://x:1",
            ],
            "invalid peer list",
        ),
        (
            vec!["--listen", &listen, "--peers", "0=https://127.0.0.1:9"],
            "not an http://host:port URL",
        ),
        (
            vec!["--listen", "127.0.0.1:0", "--peers", &peers],
            "cannot be 0",
        ),
    ] {
        let (code, log) = refused(&args);
        assert!(code.is_some_and(|c| c != 0), "{args:?} exited {code:?}");
        assert!(log.contains(says), "{args:?}: {log}");
    }
}
