//! The broker's side of a cluster (`--peers`): its member of the Raft-replicated metadata
//! (`broker-meta`), what the metadata decides for this broker, and keeping the local topics in
//! step with it.
//!
//! Owns: starting and stopping the [`MetaNode`]; cluster readiness (a Raft leader is known and
//! this broker's membership is applied); topic creation and deletion as metadata proposals;
//! which partitions this broker leads (a request for another answers 421 naming the leader);
//! and [`follow`], which creates the local copy of every topic this broker replicates and
//! removes the copy of every topic deleted from the metadata. The metadata's rules (placement,
//! leaders, ISR) are `broker-meta`'s; the local logs are `topics`'.
//!
//! Consumer groups: each group's calls are served by its coordinator (the metadata names one
//! on the first join; 421 naming it elsewhere). Its membership lives on that broker only; its
//! committed offsets also go through Raft, so a new coordinator answers them.
//! Data replication and leader failover are `replication`'s.

use std::collections::BTreeSet;
use std::sync::Arc;

use broker_meta::{ApplyResult, Command, MetaConfig, MetaNode, Metadata, NodeId, Refusal};
use serde::Serialize;

use crate::broker::{blocking, Broker};
use crate::config::ClusterConfig;
use crate::error::{BrokerError, Result};

/// How long a controlled shutdown waits for its partitions to get other leaders.
const HAND_OFF_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// How long a change the leader applied may take to be applied on this broker.
const APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// This broker's member of the cluster.
pub struct Cluster {
    pub node: MetaNode,
    pub id: NodeId,
    pub url: String,
    replication_factor: u32,
    /// `--min-insync-replicas`, `--replica-lag-ms`, `--node-timeout-ms`,
    /// `--leader-rebalance-ms` (`None`: 0).
    pub min_insync_replicas: u32,
    pub replica_lag: std::time::Duration,
    pub node_timeout: std::time::Duration,
    pub leader_rebalance: Option<std::time::Duration>,
    /// The client for replication's requests to the other brokers.
    pub peers: crate::replication::Peers,
    /// Set once the Raft leader's metadata had this broker in every ISR it belongs in
    /// (readiness after a start; `replication::controller` checks).
    pub caught_up: std::sync::atomic::AtomicBool,
    /// The applied metadata, read in place by request handlers (no copy per request).
    applied: tokio::sync::watch::Receiver<Metadata>,
}

/// `GET /v1/cluster`.
#[derive(Serialize)]
pub struct ClusterInfo {
    /// This broker's id.
    pub node_id: NodeId,
    pub url: String,
    /// The Raft leader of the metadata, as this broker knows it (`null` during an election).
    pub raft_leader: Option<NodeId>,
    pub raft_leader_url: Option<String>,
    /// The members whose registration is applied, by id.
    pub members: Vec<MemberInfo>,
}

#[derive(Serialize)]
pub struct MemberInfo {
    pub id: NodeId,
    pub url: String,
}

impl Cluster {
    /// Opens the Raft state under `<data-dir>/meta/`, starts the node and forms the cluster if
    /// this broker is the one to. `token`: the bearer token the brokers require, which the
    /// metadata RPCs then carry.
    pub async fn start(config: ClusterConfig, token: Option<&str>) -> Result<Cluster> {
        let mut meta = MetaConfig::new(
            config.node_id,
            config.advertised_url.clone(),
            config.peers,
            config.dir,
        );
        meta.token = token.map(str::to_string);
        let node = MetaNode::start(meta).await?;
        if node.initialize().await? {
            tracing::info!(node = config.node_id, "formed the metadata cluster");
        }
        tracing::info!(node = config.node_id, url = %config.advertised_url, "joined the metadata cluster");
        let rpc = broker_meta::network::Rpc::new(
            broker_meta::network::http_client(std::time::Duration::from_secs(1)),
            token,
        )?;
        Ok(Cluster {
            min_insync_replicas: config.min_insync_replicas,
            replica_lag: config.replica_lag,
            node_timeout: config.node_timeout,
            leader_rebalance: config.leader_rebalance,
            peers: crate::replication::Peers::new(rpc, config.node_id),
            caught_up: std::sync::atomic::AtomicBool::new(false),
            applied: node.watch(),
            node,
            id: config.node_id,
            url: config.advertised_url,
            replication_factor: config.replication_factor,
        })
    }

    /// Reads this broker's applied metadata in place (keep `f` short: it holds a read lock
    /// that applying the next command waits for).
    pub fn read<T>(&self, f: impl FnOnce(&Metadata) -> T) -> T {
        f(&self.applied.borrow())
    }

    /// Ready once a Raft leader is known, this broker's membership (with its URL) is applied
    /// here and it is in the ISR of every led partition it replicates; else why not.
    pub fn ready(&self) -> std::result::Result<(), &'static str> {
        if self.node.leader().is_none() {
            return Err("no metadata leader is known");
        }
        if !self.read(|m| self.is_registered(m)) {
            return Err("this broker's registration is not applied yet");
        }
        // Caught up with its leaders: back in the ISR of every partition it replicates that
        // has a leader. A rolling restart waits for this before it stops the next broker, so
        // no partition's ISR drops below its minimum. Judged once by the Raft leader's view
        // (this broker's own may be the one it had before it stopped), then by its own.
        if !self.caught_up.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("catching up: the metadata leader does not have it in every in-sync replica set yet");
        }
        if self.read(|m| lagging(m, self.id)) {
            return Err("catching up: not yet back in the in-sync replicas of every partition");
        }
        Ok(())
    }

    /// Whether this run of the broker is registered in `metadata`. Until it is, the
    /// metadata may still name it leader at the epoch it led before it stopped, with a log
    /// that may have lost its unsynced tail since: it leads nothing until then
    /// (`broker_meta::Command::Register` moves those leaderships on).
    pub fn is_registered(&self, metadata: &Metadata) -> bool {
        self.node.is_registered(metadata)
    }

    /// Whether this broker leads the metadata's Raft group (and so runs the controller).
    pub fn is_raft_leader(&self) -> bool {
        self.node.leader().is_some_and(|(id, _)| id == self.id)
    }

    pub fn info(&self) -> ClusterInfo {
        let leader = self.node.leader();
        ClusterInfo {
            node_id: self.id,
            url: self.url.clone(),
            raft_leader: leader.as_ref().map(|(id, _)| *id),
            raft_leader_url: leader.map(|(_, url)| url),
            members: self.read(|m| {
                m.members
                    .iter()
                    .map(|(&id, m)| MemberInfo {
                        id,
                        url: m.url.clone(),
                    })
                    .collect()
            }),
        }
    }

    /// The metadata's topic, or 404.
    pub fn topic(&self, name: &str) -> Result<broker_meta::Topic> {
        self.read(|m| m.topics.get(name).cloned())
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))
    }

    /// The topic's partition count in the metadata, if it is there.
    pub fn partition_count(&self, name: &str) -> Option<u32> {
        self.read(|m| m.topics.get(name).map(|t| t.partitions.len() as u32))
    }

    /// `Ok` when this broker leads every one of `partitions` of `topic`; else 421 naming the
    /// leader of the first it does not lead (404 for an unknown topic or partition).
    pub fn check_leads(
        &self,
        topic: &str,
        partitions: impl IntoIterator<Item = u32>,
    ) -> Result<()> {
        let metadata = self.applied.borrow();
        let t = metadata
            .topics
            .get(topic)
            .ok_or_else(|| BrokerError::UnknownTopic(topic.to_string()))?;
        for partition in partitions {
            let p = t.partitions.get(partition as usize).ok_or_else(|| {
                BrokerError::UnknownPartition {
                    topic: topic.to_string(),
                    partition: u64::from(partition),
                    count: t.partitions.len() as u32,
                }
            })?;
            if p.leader != Some(self.id) {
                return Err(BrokerError::NotLeader {
                    topic: topic.to_string(),
                    partition,
                    leader: p.leader,
                    url: p.leader.and_then(|l| url_of(&metadata, l)),
                });
            }
        }
        Ok(())
    }

    /// Creates the topic in the metadata (answers once applied): `Ok(true)` if this call
    /// created it, `Ok(false)` if it exists with that partition count, 409 with another.
    pub async fn create_topic(&self, name: &str, partitions: u32, max_topics: u32) -> Result<bool> {
        // The members to place replicas on, or `None` when the topic exists already.
        let members = self.read(|m| {
            if let Some(t) = m.topics.get(name) {
                return same_count(name, t, partitions).map(|()| None);
            }
            if m.topics.len() >= max_topics as usize {
                return Err(BrokerError::TooManyTopics { max: max_topics });
            }
            Ok(Some(u32::try_from(m.members.len()).unwrap_or(u32::MAX)))
        })?;
        let Some(members) = members else {
            return Ok(false);
        };
        let command = Command::CreateTopic {
            name: name.to_string(),
            partitions,
            replication_factor: self.replication_factor.min(members).max(1),
        };
        match self.node.propose(command).await? {
            ApplyResult::Applied(_) => {
                tracing::info!(topic = %name, partitions, "topic created in the cluster");
                self.applied_here(|m| m.topics.contains_key(name)).await?;
                Ok(true)
            }
            ApplyResult::Refused {
                reason: Refusal::TopicExists { .. },
            } => {
                self.applied_here(|m| m.topics.contains_key(name)).await?;
                let t = self.topic(name)?;
                same_count(name, &t, partitions).map(|()| false)
            }
            ApplyResult::Refused { reason } => Err(BrokerError::Refused(reason)),
        }
    }

    /// Deletes the topic from the metadata (answers once applied); 404 when it is not there.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let command = Command::DeleteTopic {
            name: name.to_string(),
        };
        match self.node.propose(command).await? {
            ApplyResult::Applied(_) => self.applied_here(|m| !m.topics.contains_key(name)).await,
            ApplyResult::Refused {
                reason: Refusal::UnknownTopic { .. },
            } => Err(BrokerError::UnknownTopic(name.to_string())),
            ApplyResult::Refused { reason } => Err(BrokerError::Refused(reason)),
        }
    }

    /// `Ok` when this broker coordinates `group`; else 421 naming its coordinator. A group
    /// without one gets one when `assign` (a join), else is unknown (404).
    pub async fn check_coordinates(&self, group: &str, assign: bool) -> Result<()> {
        crate::naming::validate_name("group", group)?;
        let mut coordinator = self.read(|m| m.groups.get(group).copied());
        if coordinator.is_none() && assign {
            let command = Command::AssignCoordinator {
                group: group.to_string(),
            };
            coordinator = match self.node.propose(command).await? {
                ApplyResult::Applied(broker_meta::Applied::Coordinator { node }) => Some(node),
                ApplyResult::Applied(_) => None,
                ApplyResult::Refused { reason } => return Err(BrokerError::Refused(reason)),
            };
            self.applied_here(|m| m.groups.contains_key(group)).await?;
        }
        match coordinator {
            Some(node) if node == self.id => Ok(()),
            Some(node) => Err(BrokerError::NotCoordinator {
                group: group.to_string(),
                coordinator: node,
                url: self.read(|m| url_of(m, node)),
            }),
            None => Err(BrokerError::UnknownGroup(group.to_string())),
        }
    }

    /// Commits a group's offsets through Raft (answers once the metadata leader applied them),
    /// so they outlive this coordinator.
    pub async fn commit_offsets(
        &self,
        group: &str,
        topic: &str,
        offsets: &std::collections::BTreeMap<u32, u64>,
    ) -> Result<()> {
        let command = Command::CommitOffsets {
            group: group.to_string(),
            topic: topic.to_string(),
            offsets: offsets.iter().map(|(p, o)| (*p, *o)).collect(),
        };
        match self.node.propose(command).await? {
            // Read-your-writes here: the offsets are answered from this broker's metadata.
            ApplyResult::Applied(_) => {
                self.applied_here(|m| {
                    let now = m.offsets.get(group).and_then(|t| t.get(topic));
                    offsets
                        .iter()
                        .all(|(p, o)| now.and_then(|n| n.get(p)) == Some(o))
                })
                .await
            }
            ApplyResult::Refused {
                reason: Refusal::UnknownTopic { topic },
            } => Err(BrokerError::UnknownTopic(topic)),
            ApplyResult::Refused { reason } => Err(BrokerError::Refused(reason)),
        }
    }

    /// A group's committed offsets for `topic` as the metadata holds them.
    pub fn committed(&self, group: &str, topic: &str) -> std::collections::BTreeMap<u32, u64> {
        self.read(|m| {
            m.offsets
                .get(group)
                .and_then(|topics| topics.get(topic))
                .cloned()
                .unwrap_or_default()
        })
    }

    /// Waits until this broker's copy of the metadata satisfies `done`: a proposal answered
    /// by the leader (forwarded from here) may not be applied here yet. Gives up (503) after
    /// [`APPLY_WAIT`], the leader having applied it.
    async fn applied_here(&self, done: impl Fn(&Metadata) -> bool) -> Result<()> {
        let mut watch = self.node.watch();
        let waited = tokio::time::timeout(APPLY_WAIT, watch.wait_for(|m| done(m))).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(BrokerError::Meta(broker_meta::MetaError::Timeout(
                APPLY_WAIT,
            ))),
        }
    }

    /// Whether this broker holds a copy of any of the topic's partitions.
    pub fn replicates(&self, topic: &broker_meta::Topic) -> bool {
        topic
            .partitions
            .iter()
            .any(|p| p.replicas.contains(&self.id))
    }

    /// A controlled shutdown: declares this broker down in the metadata (its partitions get
    /// new leaders from their other in-sync replicas, its groups other coordinators) and
    /// waits, briefly, until that is applied here. Best effort: without a majority it cannot,
    /// and the broker stops anyway. It rejoins the ISRs when it starts again.
    pub async fn hand_off(&self) {
        let leads = self.read(|m| {
            m.topics
                .values()
                .flat_map(|t| &t.partitions)
                .any(|p| p.leader == Some(self.id) || p.isr.contains(&self.id))
                || m.groups.values().any(|c| *c == self.id)
        });
        if !leads {
            return;
        }
        let command = Command::NodeDown { node: self.id };
        let handed = tokio::time::timeout(HAND_OFF_WAIT, async {
            self.node.propose(command).await?;
            self.applied_here(|m| {
                m.topics
                    .values()
                    .flat_map(|t| &t.partitions)
                    .all(|p| p.leader != Some(self.id))
            })
            .await
        })
        .await;
        match handed {
            Ok(Ok(())) => tracing::info!("handed this broker's partitions to other replicas"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not hand the partitions off"),
            Err(_) => {
                tracing::warn!(wait = ?HAND_OFF_WAIT, "handing the partitions off took too long")
            }
        }
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.node.shutdown().await {
            tracing::warn!(error = %e, "stopping the metadata node");
        }
    }
}

/// Whether `node` replicates a led partition whose ISR does not have it.
pub fn lagging(metadata: &Metadata, node: NodeId) -> bool {
    metadata
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .any(|p| p.leader.is_some() && p.replicas.contains(&node) && !p.isr.contains(&node))
}

/// A member's URL in the metadata.
pub fn url_of(metadata: &Metadata, node: NodeId) -> Option<String> {
    metadata.members.get(&node).map(|m| m.url.clone())
}

fn same_count(name: &str, topic: &broker_meta::Topic, partitions: u32) -> Result<()> {
    let existing = topic.partitions.len() as u32;
    if existing != partitions {
        return Err(BrokerError::PartitionCountMismatch {
            topic: name.to_string(),
            existing,
            requested: partitions,
        });
    }
    Ok(())
}

/// Makes the local copy of `name` match the metadata's topic: created with its partition count
/// when this broker replicates it (a copy with another count, left from a deleted topic of the
/// same name, is replaced). A partition's log files come into being on its first append, so
/// the partitions this broker does not replicate cost nothing. Blocking.
pub fn sync_topic(broker: &Broker, name: &str, topic: &broker_meta::Topic) -> Result<()> {
    let Some(cluster) = &broker.cluster else {
        return Ok(());
    };
    if !cluster.replicates(topic) {
        return Ok(());
    }
    let count = topic.partitions.len() as u32;
    if let Some(local) = broker.topics.get(name) {
        if local.partition_count() == count {
            return Ok(());
        }
        tracing::warn!(topic = %name, local = local.partition_count(), count, "replacing a stale local copy");
        remove_local(broker, name)?;
    }
    // Created here regardless of --max-topics: the cluster already decided the topic exists.
    broker.topics.create_unbounded(name, count).map(|_| ())
}

/// Removes the local copy of a topic and its groups' offsets (nothing to do without one).
fn remove_local(broker: &Broker, name: &str) -> Result<()> {
    match broker.topics.delete(name) {
        Ok(()) => broker.groups.forget_topic(name),
        Err(BrokerError::UnknownTopic(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes this broker's copy of a topic deleted from the metadata. Blocking.
pub fn drop_topic(broker: &Broker, name: &str) -> Result<()> {
    remove_local(broker, name)
}

/// Follows the metadata for as long as the broker runs: every topic this broker replicates
/// gets its local copy, and every topic that leaves the metadata loses it. Started once the
/// local logs are recovered.
pub async fn follow(broker: Arc<Broker>) {
    let Some(cluster) = &broker.cluster else {
        return;
    };
    let mut watch = cluster.node.watch();
    let mut stop = broker.shutdown.clone();
    // Only topics seen in the metadata and then gone are removed: a copy the metadata never
    // named (the node's metadata may still be catching up after a restart) is left alone.
    let mut known: BTreeSet<String> = BTreeSet::new();
    loop {
        let metadata = watch.borrow_and_update().clone();
        let gone: Vec<String> = known
            .iter()
            .filter(|t| !metadata.topics.contains_key(*t))
            .cloned()
            .collect();
        known = metadata.topics.keys().cloned().collect();
        let b = Arc::clone(&broker);
        let done = blocking(move || {
            for name in &gone {
                if let Err(e) = drop_topic(&b, name) {
                    tracing::error!(topic = %name, error = %e, "removing a deleted topic's copy");
                }
            }
            for (name, topic) in &metadata.topics {
                if let Err(e) = sync_topic(&b, name, topic) {
                    tracing::error!(topic = %name, error = %e, "creating a topic's local copy");
                }
            }
            crate::replication::reconcile(&b, &metadata);
            Ok(())
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "following the cluster metadata");
        }
        tokio::select! {
            changed = watch.changed() => if changed.is_err() { return },
            () = crate::http::stopped(&mut stop) => return,
        }
    }
}
