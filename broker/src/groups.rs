//! Consumer groups: membership, partition assignment, generations, member positions and
//! durable committed offsets.
//!
//! - Membership (members with their topic, partitions and session timeout, the generation)
//!   is kept in the group's file too, so a broker restart does not end sessions: after it a
//!   member heartbeats, fetches and commits with its old id and generation. Restored sessions
//!   count from the restart; a member that died meanwhile expires after its session timeout
//!   as usual and its partitions are reassigned. A join is on disk before it is answered;
//!   leaves and expiries are written by the sweep (a member resurrected by a crash in between
//!   only expires again). Delivered-but-uncommitted positions are not kept: after a restart
//!   a member reads again from its committed offsets.
//! - A member that sends no heartbeat for its session timeout is removed.
//! - Every membership change bumps the group's generation and rebalances the member's topic:
//!   balanced (counts differ by at most one) and sticky (a member keeps what it has when it
//!   can). Commits carry the generation they were made under; a stale one is refused, which
//!   fences a member that has not yet heard of a rebalance.
//! - Committed offsets are durable: `<data_dir>/groups/<group>.json` (offsets and
//!   membership), replaced atomically (write, fsync, rename, fsync directory) before the
//!   commit is answered.
//! - A member's position (what its group fetch delivers next) starts at the committed offset
//!   when it is assigned a partition and advances as messages are delivered; what was
//!   delivered but not committed goes again to the next owner.
//!
//! - Bounds: every commit is checked (member, generation, topic name and assignment — also
//!   when `offsets` is empty, which then stores nothing); at most [`MAX_GROUPS`] groups,
//!   [`MAX_MEMBERS`] members and [`MAX_GROUP_TOPICS`] topics per group; member ids longer
//!   than [`MAX_MEMBER_ID_LEN`](crate::naming::MAX_MEMBER_ID_LEN) are refused before any lookup. A group with no members and
//!   no join or commit for `--group-ttl-ms` is removed with its file by the sweep.
//!   Offsets are numbers of the group's choosing (fixed size, so they bound nothing).
//!
//! Reading partitions and HTTP are other modules' business; this one never touches a log.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::naming::{validate_member, validate_name};
use crate::{fsutil, metrics as m};

/// Shortest and longest session timeout a join may ask for.
pub const MIN_SESSION: Duration = Duration::from_millis(50);
pub const MAX_SESSION: Duration = Duration::from_secs(600);
/// Most groups the broker keeps (idle ones expire after `--group-ttl-ms`).
pub const MAX_GROUPS: usize = 10_000;
/// Most live members of one group.
pub const MAX_MEMBERS: usize = 1_000;
/// Most topics one group has members or committed offsets for.
pub const MAX_GROUP_TOPICS: usize = 64;

/// What join and heartbeat answer.
#[derive(Clone, Debug, Serialize)]
pub struct Assignment {
    pub member_id: String,
    pub generation: u64,
    pub topic: String,
    pub partitions: Vec<u32>,
    pub session_timeout_ms: u64,
}

/// A member's view for one group fetch: where to read each assigned partition.
#[derive(Clone, Debug)]
pub struct FetchPlan {
    pub topic: String,
    pub generation: u64,
    /// `(partition, position)`; `None` means "from the log start" (nothing committed).
    pub positions: Vec<(u32, Option<u64>)>,
}

/// What `GET /v1/groups/{g}` shows, before the log ends are added.
#[derive(Clone, Debug)]
pub struct GroupSnapshot {
    pub generation: u64,
    pub members: Vec<MemberSnapshot>,
    /// topic → partition count, for every topic the group has members or offsets for.
    pub topics: BTreeMap<String, u32>,
    pub committed: BTreeMap<String, BTreeMap<u32, u64>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub topic: String,
    pub partitions: Vec<u32>,
    pub session_timeout_ms: u64,
    pub last_heartbeat_ms_ago: u64,
}

struct Member {
    topic: String,
    partitions: Vec<u32>,
    session_timeout: Duration,
    last_seen: Instant,
    /// Join order, for a deterministic assignment.
    joined: u64,
    /// Next offset to deliver, per assigned partition, once something was delivered.
    positions: HashMap<u32, u64>,
    /// Where the next group fetch starts its round over the partitions (fairness).
    rotation: usize,
}

struct Group {
    /// Last join, commit or membership change: the TTL of an empty group counts from here.
    last_active: Instant,
    generation: u64,
    members: BTreeMap<String, Member>,
    committed: BTreeMap<String, BTreeMap<u32, u64>>,
    /// Partition count of each topic a member joined for.
    partition_counts: BTreeMap<String, u32>,
    joins: u64,
    /// Bumped on every commit and membership change; orders snapshots written to disk.
    version: u64,
    /// Membership changed (leave, expiry) and is not on disk yet: the sweep writes it.
    dirty: bool,
}

impl Group {
    fn new(last_active: Instant) -> Group {
        Group {
            last_active,
            generation: 0,
            members: BTreeMap::new(),
            committed: BTreeMap::new(),
            partition_counts: BTreeMap::new(),
            joins: 0,
            version: 0,
            dirty: false,
        }
    }

    /// Notes a membership change to be written by the sweep.
    fn touch(&mut self) {
        self.version += 1;
        self.dirty = true;
    }

    /// Whether `topic` would make one topic too many for this group.
    fn topic_over_limit(&self, topic: &str) -> bool {
        if self.partition_counts.contains_key(topic) || self.committed.contains_key(topic) {
            return false;
        }
        let mut topics: Vec<&String> = self.partition_counts.keys().collect();
        topics.extend(self.committed.keys());
        topics.sort();
        topics.dedup();
        topics.len() >= MAX_GROUP_TOPICS
    }
}

/// The file format of `<group>.json` (files without `membership` predate it: no members).
#[derive(Serialize, Deserialize, Default)]
struct OffsetsFile {
    offsets: BTreeMap<String, BTreeMap<u32, u64>>,
    #[serde(default)]
    membership: Option<MembershipFile>,
}

/// The group's membership as kept on disk.
#[derive(Serialize, Deserialize, Default)]
struct MembershipFile {
    generation: u64,
    joins: u64,
    /// Partition count of each topic a member joined for.
    partition_counts: BTreeMap<String, u32>,
    members: BTreeMap<String, MemberFile>,
}

#[derive(Serialize, Deserialize)]
struct MemberFile {
    topic: String,
    partitions: Vec<u32>,
    session_timeout_ms: u64,
    joined: u64,
}

/// A commit to make durable: its group, and the group's offsets version that includes it.
pub struct PendingCommit {
    group: String,
    version: u64,
}

pub struct Groups {
    dir: PathBuf,
    default_session: Duration,
    /// `--group-ttl-ms`.
    ttl: Duration,
    groups: Mutex<HashMap<String, Group>>,
    /// Per group: the version last written, held while writing so files never go backwards.
    written: Mutex<HashMap<String, Arc<Mutex<u64>>>>,
}

impl Groups {
    pub fn new(data_dir: &std::path::Path, default_session: Duration, ttl: Duration) -> Groups {
        Groups {
            dir: data_dir.join("groups"),
            default_session,
            ttl,
            groups: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads every group's committed offsets. Blocking; run before the broker is ready.
    pub fn recover(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| BrokerError::io(format!("create {}", self.dir.display()), e))?;
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| BrokerError::io(format!("list {}", self.dir.display()), e))?;
        let mut groups = self.lock();
        for entry in entries {
            let path = entry.map_err(|e| BrokerError::io("list groups", e))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if validate_name("group", name).is_err() {
                continue;
            }
            let bytes = std::fs::read(&path)
                .map_err(|e| BrokerError::io(format!("read {}", path.display()), e))?;
            let mut file: OffsetsFile = serde_json::from_slice(&bytes).map_err(|e| {
                BrokerError::Internal(format!("group file {} is damaged: {e}", path.display()))
            })?;
            // Files written before commits were checked may hold names no topic can have.
            file.offsets
                .retain(|topic, _| validate_name("topic", topic).is_ok());
            // The TTL of a recovered group counts from its last commit (the file's time).
            let age = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            let now = Instant::now();
            let last_active = now.checked_sub(age).unwrap_or(now);
            let group = groups
                .entry(name.to_string())
                .or_insert_with(|| Group::new(last_active));
            group.committed = file.offsets;
            if let Some(membership) = file.membership {
                restore_membership(name, group, membership, now);
            }
        }
        Ok(())
    }

    /// Adds a member for `topic` (which has `partition_count` partitions) and rebalances.
    /// The caller makes the new membership durable with [`Groups::persist`] before answering.
    pub fn join(
        &self,
        group: &str,
        topic: &str,
        partition_count: u32,
        session_timeout: Option<Duration>,
    ) -> Result<(Assignment, PendingCommit)> {
        validate_name("group", group)?;
        let session = session_timeout
            .unwrap_or(self.default_session)
            .clamp(MIN_SESSION, MAX_SESSION);
        let mut groups = self.lock();
        if !groups.contains_key(group) && groups.len() >= MAX_GROUPS {
            return Err(BrokerError::LimitReached {
                what: "groups",
                limit: MAX_GROUPS,
            });
        }
        let now = Instant::now();
        let g = groups
            .entry(group.to_string())
            .or_insert_with(|| Group::new(now));
        expire_group(group, g, now);
        if g.members.len() >= MAX_MEMBERS {
            return Err(BrokerError::LimitReached {
                what: "members of a group",
                limit: MAX_MEMBERS,
            });
        }
        if g.topic_over_limit(topic) {
            return Err(BrokerError::LimitReached {
                what: "topics of a group",
                limit: MAX_GROUP_TOPICS,
            });
        }
        g.last_active = now;
        g.joins += 1;
        let member_id = format!("{group}-{}-{:08x}", g.joins, fastrand::u32(..));
        g.partition_counts
            .insert(topic.to_string(), partition_count);
        g.members.insert(
            member_id.clone(),
            Member {
                topic: topic.to_string(),
                partitions: Vec::new(),
                session_timeout: session,
                last_seen: Instant::now(),
                joined: g.joins,
                positions: HashMap::new(),
                rotation: 0,
            },
        );
        g.generation += 1;
        g.version += 1;
        rebalance(g, topic);
        tracing::info!(group, member = %member_id, generation = g.generation, "member joined");
        m::group_members(group, g.members.len());
        let pending = PendingCommit {
            group: group.to_string(),
            version: g.version,
        };
        let assignment = assignment(g, &member_id)
            .ok_or_else(|| BrokerError::Internal("a joined member vanished".into()))?;
        Ok((assignment, pending))
    }

    /// Keeps a member alive; answers the current generation and its assignment.
    pub fn heartbeat(&self, group: &str, member: &str) -> Result<Assignment> {
        validate_member(member)?;
        let mut groups = self.lock();
        let g = live_group(&mut groups, group)?;
        let mem = g
            .members
            .get_mut(member)
            .ok_or_else(|| unknown_member(group, member))?;
        mem.last_seen = Instant::now();
        assignment(g, member).ok_or_else(|| unknown_member(group, member))
    }

    /// Removes a member now and rebalances its topic.
    pub fn leave(&self, group: &str, member: &str) -> Result<()> {
        validate_member(member)?;
        let mut groups = self.lock();
        let g = live_group(&mut groups, group)?;
        let removed = g
            .members
            .remove(member)
            .ok_or_else(|| unknown_member(group, member))?;
        g.generation += 1;
        g.touch();
        g.last_active = Instant::now();
        rebalance(g, &removed.topic);
        tracing::info!(group, member, generation = g.generation, "member left");
        m::group_members(group, g.members.len());
        Ok(())
    }

    /// Removes every member whose session expired, then every group that has been empty
    /// and idle for the TTL, with its offsets file (the background sweep). Answers the
    /// groups whose membership changed since it was last written, for [`Groups::persist`].
    pub fn expire_all(&self) -> Vec<PendingCommit> {
        let now = Instant::now();
        let mut groups = self.lock();
        let mut idle = Vec::new();
        let mut changed = Vec::new();
        for (name, g) in groups.iter_mut() {
            expire_group(name, g, now);
            if g.members.is_empty() && now.duration_since(g.last_active) > self.ttl {
                idle.push(name.clone());
            } else if std::mem::take(&mut g.dirty) {
                changed.push(PendingCommit {
                    group: name.clone(),
                    version: g.version,
                });
            }
        }
        for name in idle {
            groups.remove(&name);
            m::group_members(&name, 0);
            let path = self.dir.join(format!("{name}.json"));
            // A small unlink, rarely: not worth a blocking thread.
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(group = %name, error = %e, "cannot remove group file"),
            }
            tracing::info!(group = %name, ttl = ?self.ttl, "idle empty group removed");
        }
        changed
    }

    /// Topic deletion: drops every group's offsets and members for `topic` and rewrites the
    /// files of the groups that had offsets for it. Blocking.
    pub fn forget_topic(&self, topic: &str) -> Result<()> {
        let changed: Vec<PendingCommit> = {
            let mut groups = self.lock();
            let mut changed = Vec::new();
            for (name, g) in groups.iter_mut() {
                let before = g.members.len();
                g.members.retain(|_, mem| mem.topic != topic);
                let members_left = g.members.len() != before;
                if members_left {
                    g.generation += 1;
                    m::group_members(name, g.members.len());
                }
                g.partition_counts.remove(topic);
                if g.committed.remove(topic).is_some() || members_left {
                    g.version += 1;
                    changed.push(PendingCommit {
                        group: name.clone(),
                        version: g.version,
                    });
                }
            }
            changed
        };
        for commit in changed {
            self.persist(commit)?;
        }
        Ok(())
    }

    /// Records a commit in memory after checking member, generation, topic and assignment
    /// (which keeps partitions in range); `None` when there is nothing to store (empty
    /// offsets). Offsets are not compared with the log: a group may commit progress numbers
    /// of its own (the streamer's shard progress does). The caller makes it durable with
    /// [`Groups::persist`] before answering.
    pub fn commit(
        &self,
        group: &str,
        member: &str,
        generation: u64,
        topic: &str,
        offsets: &BTreeMap<u32, u64>,
    ) -> Result<Option<PendingCommit>> {
        validate_member(member)?;
        validate_name("topic", topic)?;
        let mut groups = self.lock();
        let g = live_group(&mut groups, group)?;
        let current = g.generation;
        let mem = g
            .members
            .get_mut(member)
            .ok_or_else(|| unknown_member(group, member))?;
        if generation != current {
            return Err(BrokerError::StaleGeneration {
                group: group.to_string(),
                given: generation,
                current,
            });
        }
        if mem.topic != topic {
            return Err(BrokerError::BadRequest(format!(
                "member {member:?} of group {group:?} consumes topic {:?}, not {topic:?}",
                mem.topic
            )));
        }
        if let Some(&p) = offsets.keys().find(|p| !mem.partitions.contains(p)) {
            return Err(BrokerError::NotAssigned {
                member: member.to_string(),
                topic: topic.to_string(),
                partition: p,
            });
        }
        // A commit also proves the member is alive.
        mem.last_seen = Instant::now();
        g.last_active = mem.last_seen;
        if offsets.is_empty() {
            return Ok(None);
        }
        // Committing past what was delivered (a consumer resuming from offsets it keeps
        // itself) moves the member's position there; committing less never rewinds it.
        for (p, o) in offsets {
            let position = mem.positions.entry(*p).or_insert(*o);
            *position = (*position).max(*o);
        }
        let committed = g.committed.entry(topic.to_string()).or_default();
        committed.extend(offsets.iter().map(|(p, o)| (*p, *o)));
        g.version += 1;
        Ok(Some(PendingCommit {
            group: group.to_string(),
            version: g.version,
        }))
    }

    /// Makes a commit durable. Blocking. Commits to one group are coalesced: whoever holds
    /// the group's file lock writes the group's latest offsets, which covers every commit
    /// made so far, and those waiting behind it find their version already on disk.
    pub fn persist(&self, commit: PendingCommit) -> Result<()> {
        let slot = {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(written.entry(commit.group.clone()).or_default())
        };
        let mut last = slot.lock().unwrap_or_else(|e| e.into_inner());
        if commit.version <= *last {
            return Ok(());
        }
        let (version, bytes) = self.latest_offsets(&commit.group)?;
        let path = self.dir.join(format!("{}.json", commit.group));
        fsutil::write_atomically(&path, &bytes)?;
        *last = version;
        Ok(())
    }

    /// The group's current offsets file content and its version.
    fn latest_offsets(&self, group: &str) -> Result<(u64, Vec<u8>)> {
        let groups = self.lock();
        let g = groups
            .get(group)
            .ok_or_else(|| BrokerError::UnknownGroup(group.to_string()))?;
        let file = OffsetsFile {
            offsets: g.committed.clone(),
            membership: Some(membership_file(g)),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| BrokerError::Internal(e.to_string()))?;
        Ok((g.version, bytes))
    }

    /// The committed offsets of `group` for `topic` (404 when the group is unknown).
    pub fn committed(&self, group: &str, topic: &str) -> Result<BTreeMap<u32, u64>> {
        validate_name("group", group)?;
        let groups = self.lock();
        let g = groups
            .get(group)
            .ok_or_else(|| BrokerError::UnknownGroup(group.to_string()))?;
        Ok(g.committed.get(topic).cloned().unwrap_or_default())
    }

    /// Where a member's next group fetch reads each of its partitions.
    pub fn fetch_plan(&self, group: &str, member: &str) -> Result<FetchPlan> {
        let mut groups = self.lock();
        let g = live_group(&mut groups, group)?;
        let generation = g.generation;
        let mem = g
            .members
            .get_mut(member)
            .ok_or_else(|| unknown_member(group, member))?;
        let committed = g.committed.get(&mem.topic);
        let n = mem.partitions.len().max(1);
        let start = mem.rotation % n;
        mem.rotation = mem.rotation.wrapping_add(1);
        let positions = (0..mem.partitions.len())
            .map(|i| {
                let p = mem.partitions[(start + i) % n];
                let pos = mem
                    .positions
                    .get(&p)
                    .copied()
                    .or_else(|| committed.and_then(|c| c.get(&p).copied()));
                (p, pos)
            })
            .collect();
        Ok(FetchPlan {
            topic: mem.topic.clone(),
            generation,
            positions,
        })
    }

    /// Moves a member's positions past what a group fetch delivered (only for partitions it
    /// still owns: a partition that moved meanwhile starts from the committed offset for its
    /// new owner).
    pub fn advance(&self, group: &str, member: &str, delivered: &[(u32, u64)]) {
        let mut groups = self.lock();
        let Some(mem) = groups
            .get_mut(group)
            .and_then(|g| g.members.get_mut(member))
        else {
            return;
        };
        for &(p, next) in delivered {
            if mem.partitions.contains(&p) {
                mem.positions.insert(p, next);
            }
        }
    }

    pub fn snapshot(&self, group: &str) -> Result<GroupSnapshot> {
        validate_name("group", group)?;
        let mut groups = self.lock();
        let g = groups
            .get_mut(group)
            .ok_or_else(|| BrokerError::UnknownGroup(group.to_string()))?;
        expire_group(group, g, Instant::now());
        let now = Instant::now();
        let members = g
            .members
            .iter()
            .map(|(id, mem)| MemberSnapshot {
                member_id: id.clone(),
                topic: mem.topic.clone(),
                partitions: mem.partitions.clone(),
                session_timeout_ms: mem.session_timeout.as_millis() as u64,
                last_heartbeat_ms_ago: now.duration_since(mem.last_seen).as_millis() as u64,
            })
            .collect();
        Ok(GroupSnapshot {
            generation: g.generation,
            members,
            topics: g.partition_counts.clone(),
            committed: g.committed.clone(),
        })
    }

    /// Every group's committed offsets: `(group, topic, partition, offset)`, for metrics.
    pub fn all_committed(&self) -> Vec<(String, String, u32, u64)> {
        let groups = self.lock();
        groups
            .iter()
            .flat_map(|(g, group)| {
                group.committed.iter().flat_map(move |(t, offsets)| {
                    offsets
                        .iter()
                        .map(move |(p, o)| (g.clone(), t.clone(), *p, *o))
                })
            })
            .collect()
    }
}

fn unknown_member(group: &str, member: &str) -> BrokerError {
    BrokerError::UnknownMember {
        group: group.to_string(),
        member: member.to_string(),
    }
}

/// The group, with expired members removed first (so answers never lag the sweep).
fn live_group<'a>(groups: &'a mut HashMap<String, Group>, name: &str) -> Result<&'a mut Group> {
    validate_name("group", name)?;
    let g = groups
        .get_mut(name)
        .ok_or_else(|| BrokerError::UnknownGroup(name.to_string()))?;
    expire_group(name, g, Instant::now());
    Ok(g)
}

fn expire_group(name: &str, g: &mut Group, now: Instant) {
    let expired: Vec<String> = g
        .members
        .iter()
        .filter(|(_, mem)| now.duration_since(mem.last_seen) > mem.session_timeout)
        .map(|(id, _)| id.clone())
        .collect();
    if expired.is_empty() {
        return;
    }
    let mut topics = Vec::new();
    for id in &expired {
        if let Some(mem) = g.members.remove(id) {
            tracing::info!(group = name, member = %id, "session expired: member removed");
            topics.push(mem.topic);
        }
    }
    g.generation += 1;
    g.touch();
    topics.sort();
    topics.dedup();
    for topic in topics {
        rebalance(g, &topic);
    }
    m::group_members(name, g.members.len());
}

/// What of `g`'s membership goes to disk.
fn membership_file(g: &Group) -> MembershipFile {
    MembershipFile {
        generation: g.generation,
        joins: g.joins,
        partition_counts: g.partition_counts.clone(),
        members: g
            .members
            .iter()
            .map(|(id, mem)| {
                let file = MemberFile {
                    topic: mem.topic.clone(),
                    partitions: mem.partitions.clone(),
                    session_timeout_ms: mem.session_timeout.as_millis() as u64,
                    joined: mem.joined,
                };
                (id.clone(), file)
            })
            .collect(),
    }
}

/// Puts a recovered membership back, its sessions counting from `now` (the restart). What
/// no join could have made (too many members, bad ids or names, out-of-range timeouts) is
/// dropped, so the group limits hold after a restart too.
fn restore_membership(name: &str, g: &mut Group, file: MembershipFile, now: Instant) {
    g.generation = file.generation;
    g.joins = file.joins;
    g.partition_counts = file
        .partition_counts
        .into_iter()
        .filter(|(topic, _)| validate_name("topic", topic).is_ok())
        .take(MAX_GROUP_TOPICS)
        .collect();
    for (id, mem) in file.members.into_iter().take(MAX_MEMBERS) {
        let Some(&count) = g.partition_counts.get(&mem.topic) else {
            continue;
        };
        if validate_member(&id).is_err() || mem.partitions.iter().any(|&p| p >= count) {
            continue;
        }
        let session = Duration::from_millis(mem.session_timeout_ms).clamp(MIN_SESSION, MAX_SESSION);
        g.members.insert(
            id,
            Member {
                topic: mem.topic,
                partitions: mem.partitions,
                session_timeout: session,
                last_seen: now,
                joined: mem.joined,
                positions: HashMap::new(),
                rotation: 0,
            },
        );
    }
    m::group_members(name, g.members.len());
}

fn assignment(g: &Group, member_id: &str) -> Option<Assignment> {
    let mem = g.members.get(member_id)?;
    Some(Assignment {
        member_id: member_id.to_string(),
        generation: g.generation,
        topic: mem.topic.clone(),
        partitions: mem.partitions.clone(),
        session_timeout_ms: mem.session_timeout.as_millis() as u64,
    })
}

/// Reassigns `topic`'s partitions over its members: balanced, and sticky.
fn rebalance(g: &mut Group, topic: &str) {
    let count = g.partition_counts.get(topic).copied().unwrap_or(0);
    let mut members: Vec<&mut Member> = g
        .members
        .values_mut()
        .filter(|mem| mem.topic == topic)
        .collect();
    if members.is_empty() {
        return;
    }
    members.sort_by_key(|mem| mem.joined);
    let targets = assign(
        count,
        &members
            .iter()
            .map(|mem| mem.partitions.clone())
            .collect::<Vec<_>>(),
    );
    for (mem, parts) in members.into_iter().zip(targets) {
        mem.positions.retain(|p, _| parts.contains(p));
        mem.partitions = parts;
    }
}

/// The assignment algorithm on its own: given each member's current partitions (members in
/// join order), the new ones. Members keep what they hold up to their fair share; the
/// members holding the most get the `count % n` larger shares, so little moves.
pub fn assign(count: u32, current: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let n = current.len();
    if n == 0 {
        return Vec::new();
    }
    let mut owned = vec![false; count as usize];
    let mut kept: Vec<Vec<u32>> = current
        .iter()
        .map(|parts| {
            parts
                .iter()
                .copied()
                .filter(|&p| {
                    let free = (p < count) && !owned[p as usize];
                    if free {
                        owned[p as usize] = true;
                    }
                    free
                })
                .collect()
        })
        .collect();
    let base = count as usize / n;
    let extra = count as usize % n;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(kept[i].len()));
    let mut target = vec![base; n];
    for &i in order.iter().take(extra) {
        target[i] += 1;
    }
    for (parts, &t) in kept.iter_mut().zip(&target) {
        parts.sort_unstable();
        while parts.len() > t {
            if let Some(p) = parts.pop() {
                owned[p as usize] = false;
            }
        }
    }
    let mut free = (0..count).filter(|&p| !owned[p as usize]);
    for (parts, &t) in kept.iter_mut().zip(&target) {
        while parts.len() < t {
            match free.next() {
                Some(p) => parts.push(p),
                None => break,
            }
        }
        parts.sort_unstable();
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balanced(a: &[Vec<u32>], count: u32) -> bool {
        let mut all: Vec<u32> = a.iter().flatten().copied().collect();
        all.sort_unstable();
        let sizes: Vec<usize> = a.iter().map(Vec::len).collect();
        all == (0..count).collect::<Vec<_>>()
            && sizes.iter().max().unwrap_or(&0) - sizes.iter().min().unwrap_or(&0) <= 1
    }

    #[test]
    fn commits_are_coalesced_and_the_file_never_goes_backwards() {
        let dir = tempfile::tempdir().expect("tempdir");
        let groups = Groups::new(dir.path(), Duration::from_secs(10), Duration::from_secs(60));
        let (a, _) = groups.join("g", "t", 2, None).expect("join");
        let commit = |offset: u64| {
            let offsets = BTreeMap::from([(0u32, offset)]);
            groups
                .commit("g", &a.member_id, a.generation, "t", &offsets)
                .expect("commit")
                .expect("offsets to persist")
        };
        let (first, second) = (commit(5), commit(9));
        // The later commit lands first and writes the latest offsets; the earlier one then
        // finds its version on disk already and must not write its older view.
        groups.persist(second).expect("persist");
        groups.persist(first).expect("persist");
        let again = Groups::new(dir.path(), Duration::from_secs(10), Duration::from_secs(60));
        again.recover().expect("recover");
        assert_eq!(
            again.committed("g", "t").expect("offsets"),
            BTreeMap::from([(0, 9)])
        );
    }

    #[test]
    fn assignment_is_balanced_for_every_shape() {
        for count in 0..20 {
            for n in 1..8 {
                let a = assign(count, &vec![Vec::new(); n]);
                assert!(balanced(&a, count), "{count} over {n}: {a:?}");
            }
        }
    }

    #[test]
    fn assignment_is_sticky_when_a_member_joins_or_leaves() {
        let two = assign(16, &[vec![], vec![]]);
        let mut three_in = two.clone();
        three_in.push(vec![]);
        let three = assign(16, &three_in);
        assert!(balanced(&three, 16));
        for i in 0..2 {
            let moved = two[i].iter().filter(|p| !three[i].contains(p)).count();
            assert!(
                moved <= 3,
                "member {i} lost {moved} partitions: {two:?} → {three:?}"
            );
        }
        // The third member leaves: the others keep everything they had.
        let back = assign(16, &three[..2]);
        assert!(balanced(&back, 16));
        for i in 0..2 {
            assert!(three[i].iter().all(|p| back[i].contains(p)));
        }
    }
}
