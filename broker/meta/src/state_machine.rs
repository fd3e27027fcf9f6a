//! The applied metadata and its snapshots: openraft's [`RaftStateMachine`] for this crate.
//!
//! Owns the in-memory [`Metadata`] with the id of the last entry applied to it, the `snapshot`
//! file in the metadata directory, and the watch channel that publishes each new `Metadata`.
//! The rules of applying a command belong to the `state` module; this module only feeds it
//! committed entries in order.
//!
//! The applied state itself is not written on every apply: on restart it is the last
//! snapshot, and the committed entries after it are applied again from the log (openraft does
//! that from the stored committed id). A snapshot is the whole `Metadata` as JSON with the
//! snapshot's meta (last applied log id, membership), written atomically; it is what a
//! leader sends a follower that is too far behind, and what lets the log be purged.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::disk;
use crate::error::{MetaError, Result};
use crate::state::{Applied, ApplyResult, Metadata, NodeId};
use crate::TypeConfig;

/// The `snapshot` file's content.
#[derive(Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    state: Metadata,
}

struct Inner {
    path: PathBuf,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    state: Metadata,
    snapshot: Option<StoredSnapshot>,
    /// Makes snapshot ids unique among snapshots of the same last log id.
    builds: u64,
    tx: watch::Sender<Metadata>,
}

/// The replicated state machine; cloning gives another handle on the same state (openraft's
/// snapshot builder is one).
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
}

type StorageResult<T> = std::result::Result<T, StorageError<NodeId>>;

impl StateMachine {
    /// Opens the state machine in `dir`: the last snapshot's state, or empty metadata.
    pub fn open(dir: &Path) -> Result<StateMachine> {
        std::fs::create_dir_all(dir).map_err(|e| MetaError::io(dir, e))?;
        let path = dir.join("snapshot");
        let snapshot = read_snapshot(&path)?;
        let (last_applied, membership, state) = match &snapshot {
            Some(s) => (
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
                s.state.clone(),
            ),
            None => (None, StoredMembership::default(), Metadata::default()),
        };
        let (tx, _) = watch::channel(state.clone());
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(Inner {
                path,
                last_applied,
                membership,
                state,
                snapshot,
                builds: 0,
                tx,
            })),
        })
    }

    /// A receiver of every new applied `Metadata`, starting with the current one.
    pub fn subscribe(&self) -> watch::Receiver<Metadata> {
        self.lock().tx.subscribe()
    }

    /// The applied metadata now.
    pub fn metadata(&self) -> Metadata {
        self.lock().state.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below completes or changes nothing before it can panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `snapshot` file in `path`, or `None` when there is none.
fn read_snapshot(path: &Path) -> Result<Option<StoredSnapshot>> {
    match disk::read_optional(path).map_err(|e| MetaError::io(path, e))? {
        None => Ok(None),
        Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(|e| {
            MetaError::Corrupt {
                path: path.display().to_string(),
                why: e.to_string(),
            }
        })?)),
    }
}

/// The last log id the snapshot stored in `dir` covers: the log store checks at open that its
/// committed id is not past both its log and this.
pub(crate) fn stored_snapshot_last(dir: &Path) -> Result<Option<LogId<NodeId>>> {
    Ok(read_snapshot(&dir.join("snapshot"))?.and_then(|s| s.meta.last_log_id))
}

fn snapshot_of(s: &StoredSnapshot) -> std::io::Result<Snapshot<TypeConfig>> {
    let data = serde_json::to_vec(&s.state).map_err(std::io::Error::other)?;
    Ok(Snapshot {
        meta: s.meta.clone(),
        snapshot: Box::new(Cursor::new(data)),
    })
}

fn persist(path: &Path, s: &StoredSnapshot) -> std::io::Result<()> {
    let json = serde_json::to_vec(s).map_err(std::io::Error::other)?;
    disk::write_atomic(path, &json)
}

fn read_err(meta: &SnapshotMeta<NodeId, BasicNode>, e: std::io::Error) -> StorageError<NodeId> {
    StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e)).into()
}

fn write_err(meta: &SnapshotMeta<NodeId, BasicNode>, e: std::io::Error) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e)).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let mut inner = self.lock();
        inner.builds += 1;
        let snapshot_id = match inner.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, inner.builds),
            None => format!("none-{}", inner.builds),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: inner.last_applied,
                last_membership: inner.membership.clone(),
                snapshot_id,
            },
            state: inner.state.clone(),
        };
        persist(&inner.path, &stored).map_err(|e| write_err(&stored.meta, e))?;
        let snapshot = snapshot_of(&stored).map_err(|e| read_err(&stored.meta, e))?;
        inner.snapshot = Some(stored);
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<ApplyResult>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock();
        let mut results = Vec::new();
        let mut changed = false;
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => ApplyResult::Applied(Applied::Internal),
                EntryPayload::Normal(command) => {
                    let r = inner.state.apply(&command);
                    changed |= matches!(r, ApplyResult::Applied(_));
                    r
                }
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m);
                    ApplyResult::Applied(Applied::Internal)
                }
            };
            results.push(result);
        }
        if changed {
            let state = inner.state.clone();
            inner.tx.send_replace(state);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let state: Metadata = serde_json::from_slice(snapshot.get_ref()).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                AnyError::new(&e),
            ))
        })?;
        let mut inner = self.lock();
        let stored = StoredSnapshot {
            meta: meta.clone(),
            state: state.clone(),
        };
        persist(&inner.path, &stored).map_err(|e| write_err(meta, e))?;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.state = state.clone();
        inner.snapshot = Some(stored);
        inner.tx.send_replace(state);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let inner = self.lock();
        match &inner.snapshot {
            Some(s) => snapshot_of(s).map(Some).map_err(|e| read_err(&s.meta, e)),
            None => Ok(None),
        }
    }
}
