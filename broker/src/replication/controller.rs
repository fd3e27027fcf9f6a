//! The controller: moves partition leadership away from brokers that stopped answering, and
//! back to preferred replicas.
//!
//! Runs on every broker and acts only on the one that leads the metadata's Raft group (the
//! Raft leader is the one broker whose view of the members is current, and one actor avoids
//! conflicting proposals). Every broker probes each other member's `/healthz` every tick, so
//! a broker that becomes Raft leader already knows who has been silent — when the dead
//! broker was the Raft leader itself, its partitions move as soon as the election ends
//! rather than a whole timeout later. A member that has not answered for
//! `--node-timeout-ms` is declared down ([`Command::NodeDown`]):
//! its partitions get a new leader from their in-sync replicas (epoch + 1, which fences the
//! old leader: the followers fetch from the new one, so the old one can no longer gather the
//! in-sync acknowledgements a produce needs) and it leaves their ISRs. A partition left with
//! no leader (its last in-sync replica was the one that died) gets its leader back as soon
//! as an ISR member answers again ([`Command::ElectLeader`]); no other replica may lead it
//! (no unclean election).
//!
//! A broker declared down, or restarted (its registration gives up what it led), rejoins by
//! itself: it follows the new leaders, truncates, catches up, and each leader puts it back in
//! the ISR (`leader.rs`). When every ISR member of a partition is gone, a live replica that
//! left that ISR only by restarting may lead it ([`Command::ElectRestarted`]).
//!
//! A broker that just started gives every member a full timeout before it counts them silent.
//!
//! Leadership spreads back: failovers and restarts (a restarted broker gives up what it led)
//! leave some brokers leading more than their share. A partition's preferred replica (the
//! first of its replicas; placement spreads those evenly) that has been alive and in its ISR
//! for `--leader-rebalance-ms` without leading it is elected its leader again, as Kafka's
//! preferred-leader election does. It is in the ISR, so it holds everything acknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_meta::{Command, Metadata, NodeId};

use super::peer::Peers;
use crate::broker::Broker;
use crate::cluster::Cluster;

/// The longest pause between two probing rounds.
const MAX_TICK: Duration = Duration::from_millis(250);

/// Probes and acts until shutdown (ended at once then: a probe or proposal still running as
/// the runtime winds down would find its timers gone).
pub async fn run(broker: Arc<Broker>, peers: Peers) {
    let mut stop = broker.shutdown.clone();
    tokio::select! {
        () = control(&broker, peers) => {}
        () = crate::http::stopped(&mut stop) => {}
    }
}

async fn control(broker: &Arc<Broker>, peers: Peers) {
    let Some(cluster) = &broker.cluster else {
        return;
    };
    let timeout = cluster.node_timeout;
    let tick = (timeout / 8).min(MAX_TICK);
    let mut last_seen: BTreeMap<NodeId, Instant> = BTreeMap::new();
    let mut last_proposed: BTreeMap<String, Instant> = BTreeMap::new();
    let mut preferred_waiting: BTreeMap<(String, u32), Instant> = BTreeMap::new();
    loop {
        tokio::time::sleep(tick).await;
        let members: Vec<(NodeId, String)> = cluster.read(|m| {
            m.members
                .iter()
                .map(|(id, m)| (*id, m.url.clone()))
                .collect()
        });
        let now = Instant::now();
        for (id, _) in &members {
            last_seen.entry(*id).or_insert(now);
        }
        last_seen.insert(cluster.id, now);
        let probe_timeout = (timeout / 2).max(Duration::from_millis(100));
        // Concurrently: one slow peer must not delay the others' verdicts.
        let mut probes = tokio::task::JoinSet::new();
        for (id, url) in members.iter().filter(|(id, _)| *id != cluster.id) {
            let (peers, url, id) = (peers.clone(), url.clone(), *id);
            probes.spawn(async move { (id, peers.is_alive(&url, probe_timeout).await) });
        }
        let mut answered_now = vec![cluster.id];
        while let Some(probe) = probes.join_next().await {
            if let Ok((id, true)) = probe {
                last_seen.insert(id, Instant::now());
                answered_now.push(id);
            }
        }
        confirm_caught_up(cluster, &peers).await;
        if !cluster.is_raft_leader() {
            // A controller that leads again later waits the whole delay anew.
            preferred_waiting.clear();
            continue;
        }
        let now = Instant::now();
        let alive = |id: NodeId| {
            last_seen
                .get(&id)
                .is_some_and(|seen| now.saturating_duration_since(*seen) < timeout)
        };
        let mut commands = cluster.read(|m| decide(m, &alive));
        if let Some(delay) = cluster.leader_rebalance {
            // Answered this round, not merely within the timeout: moving a healthy
            // partition to a replica that just died would take it offline.
            let answered = |id: NodeId| answered_now.contains(&id);
            let waiting = cluster.read(|m| preferred_not_leading(m, &answered));
            // Each waits from when it was first seen so (the controller's own view).
            preferred_waiting.retain(|key, _| waiting.iter().any(|(k, _)| k == key));
            for (key, preferred) in waiting {
                let since = *preferred_waiting.entry(key.clone()).or_insert(now);
                if now.saturating_duration_since(since) >= delay {
                    let (topic, partition) = key;
                    commands.push(Command::ElectLeader {
                        topic,
                        partition,
                        leader: preferred,
                    });
                }
            }
        }
        for command in commands {
            let key = command.to_string();
            if last_proposed
                .get(&key)
                .is_some_and(|at| now.saturating_duration_since(*at) < timeout)
            {
                continue;
            }
            last_proposed.insert(key, now);
            propose(cluster, command).await;
        }
        last_proposed.retain(|_, at| now.saturating_duration_since(*at) < timeout * 4);
    }
}

/// Until the Raft leader's metadata has this broker in every ISR it belongs in, asks it (a
/// restarted broker's own metadata may still be the one it had before it stopped).
async fn confirm_caught_up(cluster: &Cluster, peers: &Peers) {
    use std::sync::atomic::Ordering;
    if cluster.caught_up.load(Ordering::Relaxed) {
        return;
    }
    let confirmed = match cluster.node.leader() {
        Some((id, _)) if id == cluster.id => !cluster.read(|m| crate::cluster::lagging(m, id)),
        Some((_, url)) => match peers.metadata(&url).await {
            Ok(metadata) => !crate::cluster::lagging(&metadata, cluster.id),
            Err(e) => {
                tracing::debug!(error = %e, "reading the metadata leader's view");
                false
            }
        },
        None => false,
    };
    if confirmed {
        tracing::info!("caught up: in every in-sync replica set it belongs in");
        cluster.caught_up.store(true, Ordering::Relaxed);
    }
}

/// What the controller proposes given who is alive: `NodeDown` for each dead member that
/// still leads a partition or is in an ISR with others, `ElectLeader` for each leaderless
/// partition with a live ISR member, else `ElectRestarted` when a replica that left its ISR
/// by restarting is alive.
fn decide(metadata: &Metadata, alive: &dyn Fn(NodeId) -> bool) -> Vec<Command> {
    let mut commands = Vec::new();
    for &node in metadata.members.keys().filter(|n| !alive(**n)) {
        let leads_or_in_sync = metadata
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .any(|p| p.leader == Some(node) || (p.isr.contains(&node) && p.isr.len() > 1));
        // Its groups go to another member (there is one: this controller).
        let coordinates = metadata.groups.values().any(|c| *c == node);
        let matters = leads_or_in_sync || coordinates;
        if matters {
            commands.push(Command::NodeDown { node });
        }
    }
    for (name, topic) in &metadata.topics {
        for (i, p) in topic.partitions.iter().enumerate() {
            if p.leader.is_some() {
                continue;
            }
            if let Some(&leader) = p.isr.iter().find(|n| alive(**n)) {
                commands.push(Command::ElectLeader {
                    topic: name.clone(),
                    partition: i as u32,
                    leader,
                });
            } else if let Some(&leader) = p.restarted.iter().find(|n| alive(**n)) {
                // Every ISR member is gone; a replica that was in sync until it restarted
                // leads rather than none (see `PartitionMeta::restarted`).
                commands.push(Command::ElectRestarted {
                    topic: name.clone(),
                    partition: i as u32,
                    leader,
                });
            }
        }
    }
    commands
}

/// The partitions whose preferred replica is alive and in sync but does not lead them, with
/// that replica.
fn preferred_not_leading(
    metadata: &Metadata,
    alive: &dyn Fn(NodeId) -> bool,
) -> Vec<((String, u32), NodeId)> {
    let mut found = Vec::new();
    for (name, topic) in &metadata.topics {
        for (i, p) in topic.partitions.iter().enumerate() {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            let eligible = p.leader.is_some_and(|l| l != preferred)
                && p.isr.contains(&preferred)
                && alive(preferred);
            if eligible {
                found.push(((name.clone(), i as u32), preferred));
            }
        }
    }
    found
}

async fn propose(cluster: &Cluster, command: Command) {
    tracing::warn!(%command, "controller: proposing");
    match cluster.node.propose(command).await {
        Ok(result) => tracing::info!(%result, "controller: proposal answered"),
        Err(e) => tracing::warn!(error = %e, "controller: proposal failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> Metadata {
        let mut m = Metadata::default();
        for node in 0..3 {
            m.apply(&Command::AddMember {
                node,
                url: format!("http://b{node}"),
            });
        }
        m.apply(&Command::CreateTopic {
            name: "t".into(),
            partitions: 3,
            replication_factor: 3,
        });
        m
    }

    #[test]
    fn a_dead_leader_is_declared_down_and_nothing_else_happens_while_all_live() {
        let m = metadata();
        assert!(decide(&m, &|_| true).is_empty());
        assert_eq!(decide(&m, &|n| n != 1), vec![Command::NodeDown { node: 1 }]);
    }

    #[test]
    fn a_dead_coordinator_of_groups_only_is_declared_down() {
        let mut m = Metadata::default();
        for node in 0..2 {
            m.apply(&Command::AddMember {
                node,
                url: format!("http://b{node}"),
            });
        }
        m.apply(&Command::AssignCoordinator { group: "g".into() });
        let coordinator = m.groups["g"];
        assert_eq!(
            decide(&m, &|n| n != coordinator),
            vec![Command::NodeDown { node: coordinator }]
        );
    }

    #[test]
    fn a_leaderless_partition_is_given_a_live_isr_member_only() {
        let mut m = metadata();
        // Everybody but node 0 gone, one at a time: node 0 leads everything, alone in the ISRs.
        m.apply(&Command::NodeDown { node: 1 });
        m.apply(&Command::NodeDown { node: 2 });
        m.apply(&Command::NodeDown { node: 0 });
        assert!(m.topics["t"].partitions.iter().all(|p| p.leader.is_none()));
        // Node 0 is down too: nobody may lead.
        assert!(decide(&m, &|n| n != 0).is_empty());
        let commands = decide(&m, &|_| true);
        assert_eq!(commands.len(), 3);
        assert!(commands
            .iter()
            .all(|c| matches!(c, Command::ElectLeader { leader: 0, .. })));
    }

    #[test]
    fn with_every_isr_member_gone_a_live_restarted_replica_is_elected() {
        let mut m = metadata();
        for node in [0, 1] {
            m.apply(&Command::Register {
                node,
                url: format!("http://b{node}"),
                incarnation: 5,
            });
        }
        m.apply(&Command::NodeDown { node: 2 });
        assert!(m.topics["t"].partitions.iter().all(|p| p.leader.is_none()));
        let commands = decide(&m, &|n| n != 2);
        assert_eq!(commands.len(), 3, "{commands:?}");
        assert!(commands
            .iter()
            .all(|c| matches!(c, Command::ElectRestarted { .. })));
        assert!(decide(&m, &|_| false).is_empty());
    }

    #[test]
    fn a_preferred_replica_back_in_sync_is_named_for_its_partitions_only_while_alive() {
        let mut m = metadata(); // partition p led by its preferred replica p
        assert!(preferred_not_leading(&m, &|_| true).is_empty());
        m.apply(&Command::NodeDown { node: 1 });
        // Out of the ISR: not yet.
        assert!(preferred_not_leading(&m, &|_| true).is_empty());
        let p1 = m.topics["t"].partitions[1].clone();
        assert_ne!(p1.leader, Some(1));
        let isr = [p1.isr.clone(), vec![1]].concat();
        let back = m.apply(&Command::ExpandIsr {
            topic: "t".into(),
            partition: 1,
            isr,
            leader_epoch: p1.leader_epoch,
            from: Some(p1.isr),
        });
        assert!(
            matches!(back, broker_meta::ApplyResult::Applied(_)),
            "{back:?}"
        );
        assert_eq!(
            preferred_not_leading(&m, &|_| true),
            vec![(("t".to_string(), 1), 1)]
        );
        assert!(preferred_not_leading(&m, &|n| n != 1).is_empty());
    }
}
