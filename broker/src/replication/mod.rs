//! Data replication in a cluster: each partition's leader appends, its followers copy its log
//! byte for byte, and a produce is acknowledged once the batch is on every in-sync replica.
//!
//! This module owns each local copy's [`Role`] — leader at an epoch, follower of a leader at
//! an epoch, or offline — and keeps it equal to the metadata ([`reconcile`], called on every
//! metadata change). What the roles do lives in the submodules:
//! - `leader`: the leader's bookkeeping of its followers, the high watermark (HW), who
//!   leaves and rejoins the in-sync replicas (ISR);
//! - `follower`: the task that truncates a follower's copy by leader epoch and then fetches;
//! - `controller`: on the Raft leader, declaring silent brokers down so their partitions get
//!   new leaders, and moving leadership back to preferred replicas;
//! - `peer`: the HTTP requests between brokers.
//!
//! The produce path asks two things of this module: [`check_produce`] before appending (this
//! broker leads at the metadata's epoch with at least `--min-insync-replicas` in the ISR,
//! else 503) and [`await_replicated`] after (the HW passed the batch, else 503 and no
//! acknowledgement). A follower's fetch at the leader is [`serve_follower`]. Consumers read up
//! to the HW: the partition shows them that (`partition.rs`).
//!
//! What the metadata decides (placement, leaders, ISR membership, fencing by epoch) is
//! `broker-meta`'s; this module only proposes ISR changes and applies what is decided.

mod controller;
mod follower;
mod leader;
pub mod peer;

use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use broker_meta::{Command, Metadata, NodeId, PartitionMeta};
use tokio::task::JoinHandle;

pub use leader::LeaderState;
pub use peer::Peers;

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::partition::{Partition, Writer};

/// How often leaders look for laggards.
const LAG_CHECK: Duration = Duration::from_millis(250);

/// A copy's part in its partition's replication.
#[derive(Default)]
pub enum Role {
    /// Not replicated (a cluster of one), or the metadata has not placed it yet.
    #[default]
    Unassigned,
    /// This broker leads the partition at `LeaderState::epoch`.
    Leader(LeaderState),
    /// Another broker leads it; the task copies its log (aborted with the role).
    Follower {
        leader: NodeId,
        epoch: u32,
        task: AbortOnDrop,
    },
    /// The partition has no leader (no in-sync replica is alive), or the metadata names this
    /// broker leader from before this run registered (see `reconcile_partition`).
    Offline,
}

/// Aborts the task when dropped: a follower task lives exactly as long as its role.
pub struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn role(part: &Partition) -> MutexGuard<'_, Role> {
    // The role is replaced whole under the lock; a panic cannot leave it half-changed.
    part.role.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the cluster's background work: the controller and the leaders' lag checks.
pub fn spawn(broker: &Arc<Broker>) {
    let Some(cluster) = &broker.cluster else {
        return;
    };
    tokio::spawn(controller::run(Arc::clone(broker), cluster.peers.clone()));
    tokio::spawn(check_lag(Arc::clone(broker)));
}

/// Makes every local copy's role match the metadata. Cheap when nothing changed.
pub fn reconcile(broker: &Arc<Broker>, metadata: &Metadata) {
    let Some(cluster) = &broker.cluster else {
        return;
    };
    let registered = cluster.is_registered(metadata);
    for (name, topic) in &metadata.topics {
        let Some(local) = broker.topics.get(name) else {
            continue;
        };
        for (meta, part) in topic.partitions.iter().zip(&local.partitions) {
            if meta.replicas.contains(&cluster.id) {
                reconcile_partition(broker, cluster, part, meta, registered);
            }
        }
    }
}

fn reconcile_partition(
    broker: &Arc<Broker>,
    cluster: &crate::cluster::Cluster,
    part: &Arc<Partition>,
    meta: &PartitionMeta,
    registered: bool,
) {
    let me = cluster.id;
    let epoch = meta.leader_epoch;
    let mut role = role(part);
    // Named leader before this run registered: led by an earlier run, whose log may have
    // lost its unsynced tail since. The registration moves the leadership on (a new epoch,
    // maybe this broker's again); until then this copy is offline.
    let leader = meta.leader.filter(|&l| l != me || registered);
    match (&mut *role, leader) {
        (Role::Leader(state), Some(l)) if l == me && state.epoch == epoch => {
            state.set_isr(meta.isr.clone());
            if let Some(hw) = state.advance(part.local_end()) {
                part.publish_high_watermark(hw);
            }
            return;
        }
        (
            Role::Follower {
                leader, epoch: e, ..
            },
            Some(l),
        ) if *leader == l && *e == epoch => return,
        (Role::Offline, None) => return,
        _ => {}
    }
    *role = match leader {
        Some(l) if l == me => match lead(part, me, meta) {
            Ok(state) => {
                tracing::info!(topic = %part.topic, partition = part.id, epoch, "replica: leading");
                Role::Leader(state)
            }
            Err(e) => {
                tracing::error!(topic = %part.topic, partition = part.id, epoch, error = %e, "replica: cannot take the leadership");
                Role::Offline
            }
        },
        Some(leader) => {
            tracing::info!(topic = %part.topic, partition = part.id, leader, epoch, "replica: following");
            // From now on only this epoch's follower task writes (a produce decided as leader
            // and not yet appended is refused).
            if let Err(e) = part.set_writer(Writer::Follower(epoch)) {
                tracing::error!(topic = %part.topic, partition = part.id, error = %e, "replica: cannot follow");
                *role = Role::Offline;
                return;
            }
            let task = tokio::spawn(follower::run(
                Arc::clone(broker),
                cluster.peers.clone(),
                Arc::clone(part),
                leader,
                epoch,
            ));
            Role::Follower {
                leader,
                epoch,
                task: AbortOnDrop(task),
            }
        }
        None => {
            if let Err(e) = part.set_writer(Writer::Nobody) {
                tracing::warn!(topic = %part.topic, partition = part.id, error = %e, "replica: going offline");
            }
            Role::Offline
        }
    };
    drop(role);
    // Produces waiting on the old role look again.
    part.wake();
}

/// Takes the leadership of `part` at the metadata's epoch.
fn lead(part: &Partition, me: NodeId, meta: &PartitionMeta) -> Result<LeaderState> {
    part.set_writer(Writer::Leader(meta.leader_epoch))?;
    let (_, end) = part.log_bounds()?;
    let mut state = LeaderState::new(
        me,
        meta.leader_epoch,
        meta.replicas.clone(),
        meta.isr.clone(),
        part.visible_end(),
        end,
        Instant::now(),
    );
    if let Some(hw) = state.advance(part.local_end()) {
        part.publish_high_watermark(hw);
    }
    Ok(state)
}

/// Before a produce appends to `part`: this broker leads it at `epoch` (the metadata's,
/// checked by the caller) and the ISR has at least `--min-insync-replicas` members (capped by
/// the replica count). Answers the leader epoch to [`await_replicated`] on.
pub fn check_produce(broker: &Broker, part: &Partition) -> Result<u32> {
    let Some(cluster) = &broker.cluster else {
        return Ok(0);
    };
    let role = role(part);
    let Role::Leader(state) = &*role else {
        return Err(BrokerError::NotLeading {
            topic: part.topic.to_string(),
            partition: part.id,
        });
    };
    enough_in_sync(cluster, part, state, false)?;
    Ok(state.epoch)
}

/// 503 when the ISR has fewer members than `--min-insync-replicas` (capped by the replica
/// count): checked before a produce appends and again before it is acknowledged, since the
/// ISR may shrink while it waits (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND).
fn enough_in_sync(
    cluster: &crate::cluster::Cluster,
    part: &Partition,
    state: &LeaderState,
    appended: bool,
) -> Result<()> {
    let min = (cluster.min_insync_replicas as usize)
        .min(state.replica_count())
        .max(1);
    if state.isr().len() < min {
        return Err(BrokerError::NotEnoughReplicas {
            topic: part.topic.to_string(),
            partition: part.id,
            isr: state.isr().len(),
            min,
            appended,
        });
    }
    Ok(())
}

/// Waits until the HW of `part` reaches `end` while this broker still leads it at `epoch`
/// (`acks=all`); 503 when the leadership moves or `wait` passes first.
pub async fn await_replicated(
    broker: &Broker,
    part: &Partition,
    end: u64,
    epoch: u32,
    wait: Duration,
) -> Result<()> {
    let Some(cluster) = &broker.cluster else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut visible = part.subscribe();
    let mut local = part.subscribe_local();
    let not_replicated = |why| BrokerError::NotReplicated {
        topic: part.topic.to_string(),
        partition: part.id,
        why,
    };
    loop {
        visible.borrow_and_update();
        local.borrow_and_update();
        {
            let mut role = role(part);
            match &mut *role {
                Role::Leader(state) if state.epoch == epoch => {
                    // The leader's own end counts too (an ISR of the leader alone).
                    if let Some(hw) = state.advance(part.local_end()) {
                        part.publish_high_watermark(hw);
                    }
                    if part.visible_end() >= end {
                        // On every ISR member, but the ISR may have shrunk meanwhile.
                        return enough_in_sync(cluster, part, state, true);
                    }
                }
                _ => return Err(not_replicated("the leadership moved")),
            }
        }
        tokio::select! {
            _ = visible.changed() => {}
            _ = local.changed() => {}
            () = tokio::time::sleep_until(deadline) => return Err(not_replicated("timed out")),
        }
    }
}

/// What a follower's fetch tells the leader, and the HW to answer with. Records the
/// follower's end (its fetch offset), advances the HW, and proposes the follower back into
/// the ISR when it qualifies.
pub fn on_follower_fetch(
    broker: &Arc<Broker>,
    part: &Partition,
    node: NodeId,
    epoch: u32,
    offset: u64,
) -> Result<u64> {
    let mut role = role(part);
    let Role::Leader(state) = &mut *role else {
        return Err(BrokerError::NotLeading {
            topic: part.topic.to_string(),
            partition: part.id,
        });
    };
    if state.epoch != epoch {
        return Err(BrokerError::EpochMismatch {
            topic: part.topic.to_string(),
            partition: part.id,
            given: epoch,
            current: state.epoch,
        });
    }
    if !state.is_follower(node) {
        return Err(BrokerError::BadRequest(format!(
            "node {node} is not a follower of partition {} of topic {:?}",
            part.id, part.topic
        )));
    }
    let rejoin = state.on_fetch(node, offset, part.local_end(), Instant::now());
    if let Some(hw) = state.advance(part.local_end()) {
        part.publish_high_watermark(hw);
    }
    let hw = state.high_watermark();
    let (epoch, from) = (state.epoch, state.isr().to_vec());
    drop(role);
    if let Some(isr) = rejoin {
        tracing::info!(topic = %part.topic, partition = part.id, node, ?isr, "replica: caught up; proposing it back into the ISR");
        propose_isr(broker, part, (from, isr), epoch, true);
    }
    Ok(hw)
}

/// `Ok` when this broker leads `part` at `epoch` (a follower's request names the epoch it
/// follows): 409 for another epoch, 503 while no leadership is taken here.
pub fn check_leading(part: &Partition, epoch: u32) -> Result<()> {
    match &*role(part) {
        Role::Leader(state) if state.epoch == epoch => Ok(()),
        Role::Leader(state) => Err(BrokerError::EpochMismatch {
            topic: part.topic.to_string(),
            partition: part.id,
            given: epoch,
            current: state.epoch,
        }),
        Role::Unassigned | Role::Follower { .. } | Role::Offline => Err(BrokerError::NotLeading {
            topic: part.topic.to_string(),
            partition: part.id,
        }),
    }
}

/// The leader's current HW (`None`: not leading).
pub fn high_watermark(part: &Partition) -> Option<u64> {
    match &*role(part) {
        Role::Leader(state) => Some(state.high_watermark()),
        _ => None,
    }
}

/// Proposes the ISR change `(from, to)` at `epoch`; refused by the metadata if its ISR is no
/// longer `from` (the leader proposes again from the new one).
fn propose_isr(
    broker: &Arc<Broker>,
    part: &Partition,
    (from, isr): (Vec<NodeId>, Vec<NodeId>),
    epoch: u32,
    grow: bool,
) {
    let (topic, partition, from) = (part.topic.to_string(), part.id, Some(from));
    let command = if grow {
        Command::ExpandIsr {
            topic,
            partition,
            isr,
            leader_epoch: epoch,
            from,
        }
    } else {
        Command::ShrinkIsr {
            topic,
            partition,
            isr,
            leader_epoch: epoch,
            from,
        }
    };
    let broker = Arc::clone(broker);
    tokio::spawn(async move {
        let Some(cluster) = &broker.cluster else {
            return;
        };
        let mut stop = broker.shutdown.clone();
        // Not past shutdown: a proposal waiting as the runtime winds down would find its
        // timers gone.
        let answer = tokio::select! {
            answer = cluster.node.propose(command.clone()) => answer,
            () = crate::http::stopped(&mut stop) => return,
        };
        match answer {
            Ok(result) => tracing::info!(%command, %result, "replica: ISR change answered"),
            Err(e) => tracing::warn!(%command, error = %e, "replica: ISR change failed"),
        }
    });
}

/// Every [`LAG_CHECK`], each partition this broker leads drops the followers that lag past
/// `--replica-lag-ms` from its ISR.
async fn check_lag(broker: Arc<Broker>) {
    let Some(cluster) = &broker.cluster else {
        return;
    };
    let lag = cluster.replica_lag;
    let mut stop = broker.shutdown.clone();
    loop {
        tokio::select! {
            () = tokio::time::sleep(LAG_CHECK) => {}
            () = crate::http::stopped(&mut stop) => return,
        }
        let now = Instant::now();
        for topic in broker.topics.all() {
            for part in &topic.partitions {
                let shrink = match &mut *role(part) {
                    Role::Leader(state) => state
                        .laggards(now, lag)
                        .map(|isr| ((state.isr().to_vec(), isr), state.epoch)),
                    _ => None,
                };
                if let Some((change, epoch)) = shrink {
                    tracing::warn!(topic = %part.topic, partition = part.id, isr = ?change.1, "replica: followers lag; shrinking the ISR");
                    propose_isr(&broker, part, change, epoch, false);
                }
            }
        }
    }
}

/// The answer of the leader of `leader_epoch` to a follower asking where `epoch` ends in its
/// log (only the current leader's log is the truth a follower may cut its own to).
pub fn epoch_end(part: &Partition, epoch: u32, leader_epoch: u32) -> Result<peer::EpochEnd> {
    check_leading(part, leader_epoch)?;
    Ok(match part.end_offset_for_epoch(epoch)? {
        Some((epoch, end_offset)) => peer::EpochEnd {
            epoch: Some(epoch),
            end_offset,
        },
        None => peer::EpochEnd {
            epoch: None,
            end_offset: part.log_bounds()?.0,
        },
    })
}
