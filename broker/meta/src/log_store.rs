//! The Raft log and vote on local disk: openraft's [`RaftLogStorage`] for this crate.
//!
//! Owns three files in the metadata directory:
//! - `log`: an append-only file of CRC frames (see the `disk` module), each a JSON `Record`:
//!   a log entry, or (first in the file only) the id of the last purged entry. Appends are
//!   synced before openraft is told they are durable. A truncation or a purge rewrites the
//!   whole file atomically; both are rare (a truncation happens when a new leader overrides
//!   uncommitted entries, a purge after a snapshot) and the metadata log is small.
//! - `vote`: the last vote, replaced atomically on every change.
//! - `committed`: the last committed log id, replaced atomically, so a restarted node
//!   re-applies its committed entries before hearing from a leader.
//!
//! The entries are also held in memory (the metadata log is kept short by snapshots), so
//! reads never touch the disk. File writes happen inline on the Raft core's task: they are a
//! few hundred bytes, and openraft calls storage one operation at a time anyway.
//!
//! Why not the broker's own `broker-log` segments: a Raft log must be cut at its tail (a
//! truncation) as well as at its head, and its entries are addressed by Raft index with terms,
//! which a message log of offsets and retention does not offer.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::File;
use std::io::Write;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, OptionalSend, RaftLogId, RaftLogReader, StorageError, StorageIOError,
    Vote,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::disk;
use crate::error::{MetaError, Result};
use crate::state::NodeId;
use crate::TypeConfig;

/// One frame of the `log` file.
#[derive(Serialize, Deserialize)]
enum Record {
    Purged(LogId<NodeId>),
    Entry(Entry<TypeConfig>),
}

struct Inner {
    dir: PathBuf,
    file: File,
    /// The length of the `log` file's intact prefix: where the next append starts.
    len: u64,
    /// The file and the memory may disagree (a failed append left bytes that could not be cut
    /// off, or a truncation or purge failed to rewrite the file, perhaps leaving `file` a
    /// handle on an unlinked file): the store refuses appends and reads until a rewrite
    /// succeeds. openraft stops the node on a storage error anyway; this keeps anything still
    /// holding a reader from acting on a log that is not on disk.
    poisoned: bool,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// The persistent Raft log; cloning gives another handle on the same log (openraft's log
/// reader is one).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

type StorageResult<T> = std::result::Result<T, StorageError<NodeId>>;

fn write_err(e: std::io::Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting off a torn last append (see the `disk`
    /// module). Refuses with [`MetaError::Corrupt`] a bad frame with data after it, and a
    /// stored committed id past the end of both the log and the snapshot in `dir`: either
    /// means acknowledged entries are lost, which a person must look at.
    pub fn open(dir: &Path) -> Result<LogStore> {
        std::fs::create_dir_all(dir).map_err(|e| MetaError::io(dir, e))?;
        let corrupt = |path: &Path, why: String| MetaError::Corrupt {
            path: path.display().to_string(),
            why,
        };
        let vote: Option<Vote<NodeId>> = read_json(&dir.join("vote"))?;
        let committed: Option<LogId<NodeId>> = read_json(&dir.join("committed"))?;

        let path = dir.join("log");
        let bytes = disk::read_optional(&path)
            .map_err(|e| MetaError::io(&path, e))?
            .unwrap_or_default();
        let (frames, torn) = match disk::decode_frames(&bytes) {
            disk::Decoded::Whole(frames) => (frames, None),
            disk::Decoded::Torn { frames, good } => (frames, Some(good)),
            // Frames after a bad one were synced and acknowledged: cutting them would forget
            // committed entries, so a person must look at the file.
            disk::Decoded::Corrupt { at, why } => {
                return Err(corrupt(
                    &path,
                    format!("{why} at byte {at}, with data after it"),
                ))
            }
        };
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        for frame in frames {
            match serde_json::from_slice(frame).map_err(|e| corrupt(&path, e.to_string()))? {
                Record::Purged(id) => last_purged = Some(id),
                Record::Entry(e) => {
                    // A later entry at an index replaces that index and everything after it.
                    entries.split_off(&e.log_id.index);
                    entries.insert(e.log_id.index, e);
                }
            }
        }
        // A committed id past everything the log and the snapshot hold means committed
        // entries are gone: openraft would fail applying them, or the node would vote with a
        // log missing what it acknowledged.
        if let Some(c) = committed {
            let snapshot = crate::state_machine::stored_snapshot_last(dir)?;
            let end = [
                entries.keys().next_back().copied(),
                last_purged.map(|l| l.index),
                snapshot.map(|l| l.index),
            ]
            .into_iter()
            .flatten()
            .max();
            if end.is_none_or(|end| c.index > end) {
                return Err(corrupt(
                    &dir.join("committed"),
                    format!(
                        "committed index {} is past the log's end {end:?} and the snapshot's",
                        c.index
                    ),
                ));
            }
        }
        let good = torn.unwrap_or(bytes.len());
        if let Some(good) = torn {
            tracing::warn!(path = %path.display(), kept = good, dropped = bytes.len() - good,
                "cutting a torn tail off the metadata log");
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| MetaError::io(&path, e))?;
            f.set_len(good as u64)
                .and_then(|_| f.sync_all())
                .map_err(|e| MetaError::io(&path, e))?;
        }
        let file = disk::open_append(&path).map_err(|e| MetaError::io(&path, e))?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file,
                len: good as u64,
                poisoned: false,
                entries,
                last_purged,
                vote,
                committed,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the in-memory log as consistent as the file
        // (every mutation is a single insert or a rewrite): go on with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A small JSON side file (the vote, the committed log id), or `None` when absent.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match disk::read_optional(path).map_err(|e| MetaError::io(path, e))? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| MetaError::Corrupt {
                path: path.display().to_string(),
                why: e.to_string(),
            }),
    }
}

impl Inner {
    /// Rewrites the `log` file from memory, atomically; on failure poisons the store, since
    /// the memory has already changed and the file may or may not have.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let done = self.try_rewrite();
        if let Err(e) = &done {
            tracing::error!(error = %e, "cannot rewrite the metadata log; refusing further use");
            self.poisoned = true;
        }
        done
    }

    fn try_rewrite(&mut self) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let mut push = |r: &Record| {
            let json = serde_json::to_vec(r).map_err(std::io::Error::other)?;
            disk::encode_frame(&json, &mut buf);
            Ok::<_, std::io::Error>(())
        };
        if let Some(p) = self.last_purged {
            push(&Record::Purged(p))?;
        }
        for e in self.entries.values() {
            push(&Record::Entry(e.clone()))?;
        }
        let path = self.dir.join("log");
        disk::write_atomic(&path, &buf)?;
        self.file = disk::open_append(&path)?;
        self.len = buf.len() as u64;
        self.poisoned = false;
        Ok(())
    }

    fn check_poisoned(&self) -> std::io::Result<()> {
        if self.poisoned {
            return Err(std::io::Error::other(
                "the metadata log is out of step with its file after a failed write",
            ));
        }
        Ok(())
    }

    fn write_side<T: Serialize>(&self, name: &str, value: &T) -> std::io::Result<()> {
        let json = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        disk::write_atomic(&self.dir.join(name), &json)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let range = (
            clone_bound(range.start_bound()),
            clone_bound(range.end_bound()),
        );
        let inner = self.lock();
        inner
            .check_poisoned()
            .map_err(|e| StorageError::from(StorageIOError::read_logs(AnyError::new(&e))))?;
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

fn clone_bound(b: Bound<&u64>) -> Bound<u64> {
    match b {
        Bound::Included(x) => Bound::Included(*x),
        Bound::Excluded(x) => Bound::Excluded(*x),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let inner = self.lock();
        inner
            .check_poisoned()
            .map_err(|e| StorageError::from(StorageIOError::read_logs(AnyError::new(&e))))?;
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| *e.get_log_id())
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        let mut inner = self.lock();
        inner
            .write_side("vote", vote)
            .map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::new(&e))))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        let mut inner = self.lock();
        if let Some(c) = committed {
            inner.write_side("committed", &c).map_err(write_err)?;
        }
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock();
        if let Err(e) = inner.check_poisoned() {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(write_err(e));
        }
        let entries: Vec<_> = entries.into_iter().collect();
        let mut buf = Vec::new();
        for e in &entries {
            let json = serde_json::to_vec(&Record::Entry(e.clone())).map_err(|err| {
                StorageError::from(StorageIOError::write_log_entry(
                    e.log_id,
                    AnyError::new(&err),
                ))
            })?;
            disk::encode_frame(&json, &mut buf);
        }
        let written = inner
            .file
            .write_all(&buf)
            .and_then(|_| inner.file.sync_data());
        if let Err(e) = written {
            // Cut off whatever part of the frames reached the file: later appends must follow
            // the intact prefix, or a restart would stop reading at this torn write and lose
            // them. If even that fails, the store refuses everything after (see `poisoned`).
            let len = inner.len;
            if let Err(cut) = inner.file.set_len(len) {
                tracing::error!(error = %cut, "cannot cut a failed append off the metadata log");
                inner.poisoned = true;
            }
            let kind = e.kind();
            callback.log_io_completed(Err(std::io::Error::new(kind, e.to_string())));
            return Err(write_err(e));
        }
        inner.len += buf.len() as u64;
        for e in entries {
            inner.entries.split_off(&e.log_id.index);
            inner.entries.insert(e.log_id.index, e);
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let mut inner = self.lock();
        inner.entries.split_off(&log_id.index);
        inner.rewrite().map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let mut inner = self.lock();
        let keep = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = keep;
        inner.last_purged = Some(log_id);
        inner.rewrite().map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::state::Command;

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 0), index),
            payload: EntryPayload::Normal(Command::DeleteTopic {
                name: format!("t{index}"),
            }),
        }
    }

    async fn indexes(log: &mut LogStore) -> Vec<(u64, u64)> {
        let all = log.try_get_log_entries(..).await.unwrap();
        all.iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    #[tokio::test]
    async fn the_log_vote_and_committed_id_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(dir.path()).unwrap();
        log.blocking_append((1..=6).map(|i| entry(1, i)))
            .await
            .unwrap();
        log.truncate(LogId::new(CommittedLeaderId::new(1, 0), 5))
            .await
            .unwrap();
        log.blocking_append([entry(2, 5)]).await.unwrap();
        log.purge(LogId::new(CommittedLeaderId::new(1, 0), 2))
            .await
            .unwrap();
        log.blocking_append([entry(2, 6)]).await.unwrap();
        let vote = Vote::new(2, 1);
        log.save_vote(&vote).await.unwrap();
        let committed = Some(LogId::new(CommittedLeaderId::new(2, 0), 5));
        log.save_committed(committed).await.unwrap();
        let expected = vec![(1, 3), (1, 4), (2, 5), (2, 6)];
        assert_eq!(indexes(&mut log).await, expected);
        drop(log);

        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut log).await, expected);
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(2));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(6));
        assert_eq!(log.read_vote().await.unwrap(), Some(vote));
        assert_eq!(log.read_committed().await.unwrap(), committed);
    }

    #[tokio::test]
    async fn a_torn_append_is_cut_and_later_appends_survive() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogStore::open(dir.path()).unwrap();
        log.blocking_append((1..=3).map(|i| entry(1, i)))
            .await
            .unwrap();
        drop(log);
        // A crash in the middle of the next append: half a frame at the end.
        let path = dir.path().join("log");
        let mut frame = Vec::new();
        disk::encode_frame(
            &serde_json::to_vec(&Record::Entry(entry(1, 4))).unwrap(),
            &mut frame,
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&frame[..frame.len() / 2]).unwrap();
        drop(f);

        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut log).await, vec![(1, 1), (1, 2), (1, 3)]);
        log.blocking_append([entry(1, 4)]).await.unwrap();
        drop(log);
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(
            indexes(&mut log).await,
            vec![(1, 1), (1, 2), (1, 3), (1, 4)]
        );
    }

    /// A log of entries 1..=3, closed; returns its path and the byte where each frame starts.
    async fn three_entries(dir: &Path) -> (PathBuf, Vec<usize>) {
        let mut log = LogStore::open(dir).unwrap();
        let mut starts = Vec::new();
        for i in 1..=3 {
            starts.push(std::fs::metadata(dir.join("log")).unwrap().len() as usize);
            log.blocking_append([entry(1, i)]).await.unwrap();
        }
        (dir.join("log"), starts)
    }

    /// Opening `dir` fails with `Corrupt`, the reason containing `why`.
    fn assert_corrupt(dir: &Path, why: &str) {
        match LogStore::open(dir) {
            Err(MetaError::Corrupt { why: got, .. }) => assert!(got.contains(why), "{got}"),
            Err(e) => panic!("expected Corrupt, got {e}"),
            Ok(_) => panic!("expected Corrupt, the log opened"),
        }
    }

    #[tokio::test]
    async fn a_zero_filled_tail_is_cut() {
        // What a crash leaves when the file's new size reached the disk before its data.
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = three_entries(dir.path()).await;
        let good = std::fs::metadata(&path).unwrap().len();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&[0; 4096]).unwrap();
        drop(f);

        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut log).await, vec![(1, 1), (1, 2), (1, 3)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        log.blocking_append([entry(1, 4)]).await.unwrap();
        drop(log);
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut log).await.len(), 4);
    }

    #[tokio::test]
    async fn a_bad_middle_frame_refuses_to_open_and_cuts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, starts) = three_entries(dir.path()).await;
        let mut bytes = std::fs::read(&path).unwrap();
        // A flipped byte in the second entry's payload; the third is intact after it.
        bytes[starts[1] + 8 + 2] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        assert_corrupt(dir.path(), &format!("CRC at byte {}", starts[1]));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[tokio::test]
    async fn an_empty_middle_frame_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let (path, starts) = three_entries(dir.path()).await;
        let bytes = std::fs::read(&path).unwrap();
        let mut with_empty = bytes[..starts[2]].to_vec();
        with_empty.extend_from_slice(&[0; 8]);
        with_empty.extend_from_slice(&bytes[starts[2]..]);
        std::fs::write(&path, &with_empty).unwrap();
        // Refused as a bad frame at its position, not read as an empty entry.
        assert_corrupt(dir.path(), &format!("empty frame at byte {}", starts[2]));
        assert_eq!(std::fs::read(&path).unwrap(), with_empty);
    }

    #[tokio::test]
    async fn a_committed_id_past_the_log_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let (path, starts) = three_entries(dir.path()).await;
        let mut log = LogStore::open(dir.path()).unwrap();
        log.save_committed(Some(*entry(1, 3).get_log_id()))
            .await
            .unwrap();
        drop(log);
        // The last entry lost (say, by hand): the committed id now points past the log.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..starts[2]]).unwrap();
        assert_corrupt(dir.path(), "committed index 3");
    }

    #[tokio::test]
    async fn a_failed_rewrite_poisons_the_store_until_one_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        three_entries(dir.path()).await;
        let mut log = LogStore::open(dir.path()).unwrap();
        // The atomic rewrite's temporary file cannot be created where a directory stands.
        let tmp = dir.path().join("log.tmp");
        std::fs::create_dir(&tmp).unwrap();
        let id3 = *entry(1, 3).get_log_id();
        assert!(log.truncate(id3).await.is_err());
        assert!(log.try_get_log_entries(..).await.is_err());
        assert!(log.get_log_state().await.is_err());
        assert!(log.blocking_append([entry(2, 3)]).await.is_err());

        std::fs::remove_dir(&tmp).unwrap();
        log.truncate(id3).await.unwrap();
        log.blocking_append([entry(2, 3)]).await.unwrap();
        drop(log);
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut log).await, vec![(1, 1), (1, 2), (2, 3)]);
    }
}
