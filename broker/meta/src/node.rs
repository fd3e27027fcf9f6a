//! [`MetaNode`]: one broker's member of the metadata cluster.
//!
//! Owns the node's life (start, initialize, shut down), the Raft timing it runs with
//! ([`MetaConfig`]), and how a proposal reaches the leader. Storage, transport and the
//! metadata rules are the other modules'.
//!
//! # Forming the cluster
//!
//! Every broker knows the same peer list (`--peers id=url,…`, this node included or not).
//! [`MetaNode::initialize`] on the peer with the lowest id makes all peers the voters of a new
//! cluster, once: on a node that already has Raft state it does nothing, so every broker can
//! call it on every start. A broker with no other peer is a cluster of one and elects itself.
//! Once a leader exists, each node registers in [`Metadata::members`] with its advertised URL
//! and a new incarnation: a `Register` proposal, retried in the background until it is
//! applied, on every start (a restarted node gives up what it led, see `Command::Register`).
//! Until every broker has, commands that depend on the members (topic placement,
//! coordinators) see fewer of them: wait on [`MetaNode::watch`] for the expected members
//! first.
//!
//! # Proposals
//!
//! [`MetaNode::propose`] works on any node: a follower forwards the command to the leader over
//! HTTP (`POST /v1/raft/propose`) and answers what the leader applied. During an election it
//! waits for a leader, up to [`MetaConfig::propose_timeout`]. A command is retried only when it
//! certainly did not reach a leader's log (the peer was unreachable, or answered that it is
//! not the leader); when an answer is lost after sending, the caller gets an error and the
//! command may or may not have been applied — read the metadata to know.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, SnapshotPolicy};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{MetaError, Result};
use crate::log_store::LogStore;
use crate::network::{self, Network, PostError, Rpc};
use crate::state::{ApplyResult, Command, Metadata, NodeId};
use crate::state_machine::StateMachine;
use crate::Raft;

/// How to start a node.
#[derive(Debug, Clone)]
pub struct MetaConfig {
    pub node_id: NodeId,
    /// The URL the other brokers reach this one at; its `/v1/raft/*` must reach [`crate::server::handle`].
    pub advertised_url: String,
    /// All the cluster's brokers, id → URL (this node's entry, if any, is replaced by
    /// `advertised_url`).
    pub peers: BTreeMap<NodeId, String>,
    /// The directory of this node's Raft log, vote and snapshot (e.g. `<data-dir>/meta`).
    pub dir: PathBuf,
    /// How often the leader heartbeats its followers.
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in this range starts an election.
    /// openraft adds a leader lease of the range's maximum first (a follower that heard a
    /// leader refuses to vote or campaign until the lease has passed, so a merely slow leader
    /// is not deposed): a lost leader is replaced after about `max + random(min..max)`.
    pub election_timeout: (Duration, Duration),
    /// A snapshot is taken after this many log entries since the last one, and the log is
    /// purged up to it (keeping `logs_kept_after_snapshot`).
    pub snapshot_after_logs: u64,
    pub logs_kept_after_snapshot: u64,
    /// How long a proposal may wait for a leader and its answer.
    pub propose_timeout: Duration,
    /// The bearer token the peers' `/v1/raft/*` require, sent with every RPC (`None`: none).
    pub token: Option<String>,
}

impl MetaConfig {
    /// The defaults: heartbeats every 250 ms, a lost leader replaced in about 1.5–2 s
    /// (a 1 s lease plus an election timeout of 0.5–1 s).
    pub fn new(
        node_id: NodeId,
        advertised_url: impl Into<String>,
        peers: BTreeMap<NodeId, String>,
        dir: PathBuf,
    ) -> Self {
        MetaConfig {
            node_id,
            advertised_url: advertised_url.into(),
            peers,
            dir,
            heartbeat: Duration::from_millis(250),
            election_timeout: (Duration::from_millis(500), Duration::from_millis(1000)),
            snapshot_after_logs: 1000,
            logs_kept_after_snapshot: 100,
            propose_timeout: Duration::from_secs(10),
            token: None,
        }
    }

    /// All voters, id → URL, this node included.
    fn voters(&self) -> BTreeMap<NodeId, String> {
        let mut v = self.peers.clone();
        v.insert(self.node_id, self.advertised_url.clone());
        v
    }
}

/// Parses a `--peers` list: `id=url` pairs separated by commas (empty: no peers).
pub fn parse_peers(list: &str) -> Result<BTreeMap<NodeId, String>> {
    let mut peers = BTreeMap::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, url) = item
            .split_once('=')
            .ok_or_else(|| MetaError::Peers(list.to_string()))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| MetaError::Peers(list.to_string()))?;
        let url = url.trim();
        if url.is_empty() || peers.insert(id, url.to_string()).is_some() {
            return Err(MetaError::Peers(list.to_string()));
        }
    }
    Ok(peers)
}

struct Inner {
    id: NodeId,
    url: String,
    voters: BTreeMap<NodeId, String>,
    /// This run of the node (see `Command::Register`): new at every start.
    incarnation: u64,
    raft: Raft,
    state_machine: StateMachine,
    rpc: Rpc,
    propose_timeout: Duration,
    stop: watch::Sender<bool>,
}

/// A running member of the metadata cluster; clones share it.
#[derive(Clone)]
pub struct MetaNode {
    inner: Arc<Inner>,
}

/// What a leader answers a forwarded proposal (the body of `POST /v1/raft/propose`'s answer).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum ForwardRefusal {
    /// It is not (or no longer) the leader: the command was not appended.
    NotLeader,
    /// Anything else, as text.
    Failed(String),
}

impl MetaNode {
    /// Opens the node's storage under `config.dir` and starts its Raft. Call
    /// [`MetaNode::initialize`] next (on every node: it is a no-op where it does not apply).
    pub async fn start(config: MetaConfig) -> Result<MetaNode> {
        let log = LogStore::open(&config.dir)?;
        let state_machine = StateMachine::open(&config.dir)?;
        let raft_config = openraft::Config {
            cluster_name: "broker-meta".into(),
            heartbeat_interval: millis(config.heartbeat),
            election_timeout_min: millis(config.election_timeout.0),
            election_timeout_max: millis(config.election_timeout.1),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_logs),
            max_in_snapshot_log_to_keep: config.logs_kept_after_snapshot,
            // Each snapshot chunk is one JSON request (bytes as numbers, up to 4 per byte):
            // 1 MiB chunks keep requests well under any sane body limit.
            snapshot_max_chunk_size: 1 << 20,
            // openraft's 200 ms default per chunk is tight on a loaded machine.
            install_snapshot_timeout: millis(config.election_timeout.1),
            ..Default::default()
        }
        .validate()
        .map_err(|e| MetaError::Raft(e.to_string()))?;
        let rpc = Rpc::new(
            network::http_client(config.election_timeout.0),
            config.token.as_deref(),
        )?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            Network::new(rpc.clone()),
            log,
            state_machine.clone(),
        )
        .await
        .map_err(|e| MetaError::Raft(e.to_string()))?;
        let (stop, _) = watch::channel(false);
        let node = MetaNode {
            inner: Arc::new(Inner {
                id: config.node_id,
                url: config.advertised_url.clone(),
                voters: config.voters(),
                incarnation: new_incarnation(),
                raft,
                state_machine,
                rpc,
                propose_timeout: config.propose_timeout,
                stop,
            }),
        };
        tokio::spawn(node.clone().register());
        Ok(node)
    }

    /// Forms the cluster if this node is the one to (the lowest id among the voters) and no
    /// cluster exists in its storage yet. Answers whether it did.
    pub async fn initialize(&self) -> Result<bool> {
        let lowest = self.inner.voters.keys().next().copied();
        if lowest != Some(self.inner.id) {
            return Ok(false);
        }
        let raft = &self.inner.raft;
        if raft
            .is_initialized()
            .await
            .map_err(|e| MetaError::Raft(e.to_string()))?
        {
            return Ok(false);
        }
        let members: BTreeMap<NodeId, BasicNode> = self
            .inner
            .voters
            .iter()
            .map(|(id, url)| (*id, BasicNode::new(url)))
            .collect();
        match raft.initialize(members).await {
            Ok(()) => Ok(true),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(MetaError::Raft(e.to_string())),
        }
    }

    /// Applies `command` through the leader (forwarding it there from a follower) and answers
    /// the result it had. See the module docs for retries.
    pub async fn propose(&self, command: Command) -> Result<ApplyResult> {
        let deadline = Instant::now() + self.inner.propose_timeout;
        loop {
            if *self.inner.stop.borrow() {
                return Err(MetaError::ShutDown);
            }
            match self.propose_here(command.clone()).await {
                Ok(r) => return Ok(r),
                Err(MetaError::NotLeader { url: Some(url), .. }) if url != self.inner.url => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let answer: std::result::Result<
                        std::result::Result<ApplyResult, ForwardRefusal>,
                        PostError,
                    > = network::post(&self.inner.rpc, &url, network::PROPOSE, &command, left)
                        .await;
                    match answer {
                        Ok(Ok(r)) => return Ok(r),
                        // The command was not appended there: ask again when the leader is known.
                        Ok(Err(ForwardRefusal::NotLeader)) | Err(PostError::Unreachable(_)) => {}
                        Ok(Err(ForwardRefusal::Failed(why))) => {
                            return Err(MetaError::Forward { url, why })
                        }
                        Err(e @ PostError::Failed(_)) => {
                            return Err(MetaError::Forward {
                                url,
                                why: e.to_string(),
                            })
                        }
                    }
                }
                Err(MetaError::NotLeader { .. }) => {}
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Err(MetaError::Timeout(self.inner.propose_timeout));
            }
            self.wait_for_change(deadline).await;
        }
    }

    /// Appends `command` if this node is the leader; `NotLeader` (naming the leader) if not.
    pub(crate) async fn propose_here(&self, command: Command) -> Result<ApplyResult> {
        // A leader cut off from its quorum would wait for the commit indefinitely.
        let timeout = self.inner.propose_timeout;
        let written = tokio::time::timeout(timeout, self.inner.raft.client_write(command))
            .await
            .map_err(|_| MetaError::Timeout(timeout))?;
        match written {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                let url = f
                    .leader_node
                    .map(|n| n.addr)
                    .or_else(|| f.leader_id.and_then(|id| self.url_of(id)));
                Err(MetaError::NotLeader {
                    leader: f.leader_id,
                    url,
                })
            }
            Err(RaftError::Fatal(e)) => {
                tracing::debug!(error = %e, "metadata raft stopped");
                Err(MetaError::ShutDown)
            }
            Err(e) => Err(MetaError::Raft(e.to_string())),
        }
    }

    /// Waits for Raft's state to change (a leader elected, for one), up to 200 ms or the
    /// deadline: the pause between two attempts of a proposal.
    async fn wait_for_change(&self, deadline: Instant) {
        let mut metrics = self.inner.raft.metrics();
        let until = deadline.min(Instant::now() + Duration::from_millis(200));
        let _ = tokio::time::timeout_at(until, metrics.changed()).await;
    }

    /// This node's applied copy of the metadata.
    pub fn metadata(&self) -> Metadata {
        self.inner.state_machine.metadata()
    }

    /// A receiver that sees every newly applied metadata (starting with the current one).
    pub fn watch(&self) -> watch::Receiver<Metadata> {
        self.inner.state_machine.subscribe()
    }

    /// The current leader and its URL, as this node knows it.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let id = self.inner.raft.metrics().borrow().current_leader?;
        Some((id, self.url_of(id)?))
    }

    fn url_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.inner.raft.metrics();
        let from_membership = metrics
            .borrow()
            .membership_config
            .nodes()
            .find(|(n, _)| **n == id)
            .map(|(_, b)| b.addr.clone());
        from_membership.or_else(|| self.inner.voters.get(&id).cloned())
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The voters this node was started with, this node included.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.inner.voters.keys().copied().collect()
    }

    /// The underlying openraft handle: metrics, snapshots, membership changes.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Stops the node's Raft (its storage stays as it is, ready for a restart).
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.stop.send_replace(true);
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| MetaError::Raft(e.to_string()))
    }

    /// Whether this run of the node is registered in `metadata` (its `Command::Register`
    /// applied there): until then it must lead nothing.
    pub fn is_registered(&self, metadata: &Metadata) -> bool {
        metadata
            .members
            .get(&self.inner.id)
            .is_some_and(|m| m.incarnation == self.inner.incarnation && m.url == self.inner.url)
    }

    /// Registers this run of the node (`Command::Register`: its advertised URL, a new
    /// incarnation, and the leaderships it held before given up) once a leader can apply it.
    async fn register(self) {
        let command = Command::Register {
            node: self.inner.id,
            url: self.inner.url.clone(),
            incarnation: self.inner.incarnation,
        };
        let mut stop = self.inner.stop.subscribe();
        loop {
            if self.is_registered(&self.metadata()) {
                return;
            }
            match self.propose(command.clone()).await {
                Ok(_) => return,
                Err(MetaError::ShutDown) => return,
                Err(e) => tracing::debug!(error = %e, "registering as a metadata member; retrying"),
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// A number no earlier run of this node used (with overwhelming likelihood): the clock's
/// nanoseconds mixed with the process id, never 0 (the incarnation of an `AddMember`).
fn new_incarnation() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 40)).max(1)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse() {
        let p = parse_peers("0=http://a:1, 2=http://c:3,1=http://b:2").unwrap();
        assert_eq!(p.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(p[&2], "http://c:3");
        assert!(parse_peers("").unwrap().is_empty());
        for bad in ["x=http://a", "1http://a", "1=", "1=a,1=b"] {
            assert!(parse_peers(bad).is_err(), "{bad}");
        }
    }
}
