//! Consumer-group membership: join, a heartbeat thread, rebalance detection, commits, leave.
//!
//! The broker assigns partitions and bumps its generation on every rebalance; this module keeps
//! the member's current view and a local *epoch* that changes whenever that view changes (a
//! new generation, another assignment, or a rejoin under a new member id after the broker
//! expired our session, e.g. a heartbeat that could not reach it in time; a broker restart
//! keeps members). Callers poll [`GroupMember::epoch`] — one atomic load — to notice
//! a rebalance; what to do about it (stop streaming a shard, reload offsets) is theirs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::broker::BrokerClient;
use crate::error::{Error, Result};

/// What the broker says about this member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub member_id: String,
    pub generation: u64,
    /// Assigned partitions, ascending.
    pub partitions: Vec<u32>,
    pub session_timeout: Option<Duration>,
}

/// A live member of a group: a heartbeat thread keeps it so until [`GroupMember::leave`] or
/// drop.
pub struct GroupMember {
    shared: Arc<Shared>,
    heartbeat: Option<JoinHandle<()>>,
}

struct Shared {
    client: BrokerClient,
    group: String,
    topic: String,
    session_timeout: Option<Duration>,
    state: Mutex<Membership>,
    epoch: AtomicU64,
    stop: AtomicBool,
}

/// Heartbeats this often: well inside any sensible session timeout, and often enough that a
/// rebalance is noticed within about a second.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);

impl GroupMember {
    /// Joins `group` for `topic` (retrying while the broker is unreachable) and starts the
    /// heartbeat thread.
    pub fn join(
        client: BrokerClient,
        group: &str,
        topic: &str,
        session_timeout: Option<Duration>,
    ) -> Result<GroupMember> {
        let mut first = client.join(group, topic, session_timeout)?;
        first.partitions.sort_unstable();
        tracing::info!(group, topic, member = %first.member_id, generation = first.generation,
            partitions = ?first.partitions, "joined group");
        let shared = Arc::new(Shared {
            client,
            group: group.to_string(),
            topic: topic.to_string(),
            session_timeout,
            state: Mutex::new(first),
            epoch: AtomicU64::new(1),
            stop: AtomicBool::new(false),
        });
        let beat = Arc::clone(&shared);
        let heartbeat = std::thread::Builder::new()
            .name(format!("heartbeat-{group}"))
            .spawn(move || beat.heartbeat_loop())
            .map_err(Error::HeartbeatThread)?;
        Ok(GroupMember {
            shared,
            heartbeat: Some(heartbeat),
        })
    }

    /// The current view (member id, generation, assignment).
    pub fn membership(&self) -> Membership {
        self.shared.lock().clone()
    }

    /// Changes whenever [`Self::membership`] does; cheap enough to poll per batch.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::SeqCst)
    }

    /// Whether `partition` is assigned to this member as far as it knows.
    pub fn owns(&self, partition: u32) -> bool {
        self.shared
            .lock()
            .partitions
            .binary_search(&partition)
            .is_ok()
    }

    pub fn group(&self) -> &str {
        &self.shared.group
    }

    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// Heartbeats now (rejoining when the broker forgot us) and returns the fresh view.
    pub fn refresh(&self) -> Result<Membership> {
        self.shared.beat()?;
        Ok(self.membership())
    }

    /// Commits offsets under the current generation. A refusal (409: stale generation or not
    /// our partition; 404: unknown member) refreshes the view before it is returned, so the
    /// caller sees the new epoch at once.
    pub fn commit(&self, offsets: &BTreeMap<u32, u64>) -> Result<()> {
        let view = self.membership();
        let result =
            self.shared
                .client
                .commit(&self.shared.group, &view, &self.shared.topic, offsets);
        if let Err(e) = &result {
            if matches!(e.status(), Some(404 | 409)) {
                let _ = self.shared.beat();
            }
        }
        result
    }

    /// Commits in one attempt, ignoring refusals: for offsets kept elsewhere (the collector's
    /// live in PostgreSQL), where the broker's copy only shows lag.
    pub fn commit_best_effort(&self, offsets: &BTreeMap<u32, u64>) {
        let view = self.membership();
        let owned: BTreeMap<u32, u64> = offsets
            .iter()
            .filter(|(p, _)| view.partitions.binary_search(p).is_ok())
            .map(|(p, o)| (*p, *o))
            .collect();
        if owned.is_empty() {
            return;
        }
        if let Err(e) =
            self.shared
                .client
                .commit_once(&self.shared.group, &view, &self.shared.topic, &owned)
        {
            tracing::debug!(error = %e, "broker offset commit skipped");
        }
    }

    /// The group's committed offsets for this topic.
    pub fn committed(&self) -> Result<BTreeMap<u32, u64>> {
        self.shared
            .client
            .committed(&self.shared.group, &self.shared.topic)
    }

    /// Stops heartbeating and leaves the group (one attempt; the session timeout covers a
    /// broker that is down).
    pub fn leave(mut self) {
        self.stop_heartbeat();
        let id = self.shared.lock().member_id.clone();
        match self.shared.client.leave(&self.shared.group, &id) {
            Ok(()) => tracing::info!(group = %self.shared.group, member = %id, "left group"),
            Err(e) => {
                tracing::warn!(group = %self.shared.group, error = %e, "could not leave group")
            }
        }
    }

    fn stop_heartbeat(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Membership> {
        // A poisoned lock only means a panicking thread held it; the data is still a view.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn heartbeat_loop(&self) {
        let mut failing = false;
        while !self.stop.load(Ordering::SeqCst) {
            let mut slept = Duration::ZERO;
            while slept < HEARTBEAT_EVERY && !self.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                slept += Duration::from_millis(50);
            }
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            match self.beat() {
                Ok(()) if failing => {
                    tracing::info!(group = %self.group, "heartbeats answered again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    tracing::warn!(group = %self.group, error = %e, "heartbeat failed");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }

    /// One heartbeat; a 404 (the broker forgot us: our session expired) rejoins.
    fn beat(&self) -> Result<()> {
        let id = self.lock().member_id.clone();
        let fresh = match self.client.heartbeat(&self.group, &id) {
            Ok(m) => m,
            Err(e) if e.status() == Some(404) => {
                tracing::info!(group = %self.group, member = %id, "member unknown to the broker, rejoining");
                self.rejoin()?
            }
            Err(e) => return Err(e),
        };
        self.update(fresh);
        Ok(())
    }

    fn rejoin(&self) -> Result<Membership> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        self.client
            .join(&self.group, &self.topic, self.session_timeout)
    }

    fn update(&self, mut fresh: Membership) {
        fresh.partitions.sort_unstable();
        let mut state = self.lock();
        if *state != fresh {
            tracing::info!(group = %self.group, member = %fresh.member_id, generation = fresh.generation,
                partitions = ?fresh.partitions, "group membership changed");
            *state = fresh;
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }
}
