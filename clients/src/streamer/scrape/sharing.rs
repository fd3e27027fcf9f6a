//! Which of the discovered targets this streamer scrapes: all of them (`--scrape-share false`),
//! or those of the *slots* the broker's consumer group assigns it.
//!
//! Every streamer of a group discovers the same targets (flags ∪ file ∪ DNS). A target's slot
//! is FNV-1a 64 of its URL modulo the slot count; the slots are the partitions of the topic
//! `<topic>.scrape-slots` (created with `--scrape-slots` partitions, an existing one keeps its
//! count), and the streamers join the broker group `<group>.scrape` on it — the same
//! membership that shares a CSV's shards — so the broker hands each slot to exactly one live
//! member and moves slots when members come and go (balanced and sticky).
//!
//! The session timeout of the group is `--scrape-session-timeout` (default 3 s): a streamer
//! that dies without leaving (`kill -9`, a lost node) keeps its targets that long before the
//! broker reassigns them. One that stops on SIGTERM leaves the group at once. Either way the
//! others notice the new assignment at their next heartbeat (every 0.5 s).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::error::Result;
use broker_client::{partition_for_key, BrokerClient, GroupMember};

/// The slot of a target.
pub fn slot_of(url: &str, slots: u32) -> u32 {
    partition_for_key(url.as_bytes(), slots)
}

/// The topic whose partitions are the slots.
pub fn slots_topic(topic: &str) -> String {
    format!("{topic}.scrape-slots")
}

/// The broker group of the streamers sharing targets.
pub fn group_name(group: &str) -> String {
    format!("{group}.scrape")
}

/// This streamer's share of the targets.
pub enum Sharing {
    /// Every target (node-local scraping).
    All,
    Group {
        member: GroupMember,
        slots: u32,
        /// The assignment last seen, and its epoch.
        epoch: u64,
        owned: BTreeSet<u32>,
    },
}

impl Sharing {
    /// Joins the group (creating the slots topic when missing). Blocks while the broker is
    /// unreachable, until it answers or shutdown.
    pub fn join(
        client: &BrokerClient,
        group: &str,
        topic: &str,
        slots: u32,
        session_timeout: Duration,
    ) -> Result<Sharing> {
        let slots_topic = slots_topic(topic);
        let slots = crate::streamer::data_partitions(client, &slots_topic, slots)?;
        let member = GroupMember::join(
            client.clone(),
            &group_name(group),
            &slots_topic,
            Some(session_timeout),
        )?;
        let mut sharing = Sharing::Group {
            member,
            slots,
            epoch: 0,
            owned: BTreeSet::new(),
        };
        sharing.refresh();
        Ok(sharing)
    }

    /// Takes the latest assignment; `true` when it changed.
    pub fn refresh(&mut self) -> bool {
        let Sharing::Group {
            member,
            epoch,
            owned,
            ..
        } = self
        else {
            return false;
        };
        let now = member.epoch();
        if now == *epoch {
            return false;
        }
        *epoch = now;
        let fresh: BTreeSet<u32> = member.membership().partitions.into_iter().collect();
        let changed = fresh != *owned;
        *owned = fresh;
        changed
    }

    /// Whether this streamer scrapes `url`.
    pub fn owns(&self, url: &str) -> bool {
        match self {
            Sharing::All => true,
            Sharing::Group { slots, owned, .. } => owned.contains(&slot_of(url, *slots)),
        }
    }

    /// Slots owned (all: `None`).
    pub fn owned_slots(&self) -> Option<usize> {
        match self {
            Sharing::All => None,
            Sharing::Group { owned, .. } => Some(owned.len()),
        }
    }

    /// Leaves the group, so that the others take the targets over at once.
    pub fn leave(self) {
        if let Sharing::Group { member, .. } = self {
            member.leave();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slot_of;

    #[test]
    fn targets_spread_over_the_slots_and_keep_theirs() {
        let slots: std::collections::BTreeSet<u32> = (0..30)
            .map(|i| slot_of(&format!("http://127.0.0.1:9400/metrics/{i}"), 64))
            .collect();
        assert!(slots.len() >= 20, "{slots:?}");
        assert_eq!(
            slot_of("http://node-1:9400/metrics", 64),
            slot_of("http://node-1:9400/metrics", 64)
        );
    }
}
