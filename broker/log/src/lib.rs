//! `broker-log`: the broker's storage engine, one [`PartitionLog`] per partition.
//!
//! A partition is a directory of segments named by their zero-padded base offset
//! (`00000000000000000000.log` with its sparse `.index`). The last segment is active:
//! preallocated in steps (1 MiB, doubling up to `segment_bytes`), memory-mapped for reads,
//! appended to with `pwrite`. Older segments are
//! sealed (truncated to their real length, synced) and mapped lazily for reads, at most
//! `max_mapped_segments` at once. The byte layout lives in `segments-format.md` and in
//! [`record`], the only module that reads or writes batch bytes.
//!
//! What this crate owns: files, bytes, durability and recovery of one partition, and the
//! leader epochs recorded in its batches (the epoch stamped on appends, the epoch cache that
//! answers "where did epoch N end", truncation of the log's end). What it does not own:
//! topics, partition routing, replication itself, idempotent-producer bookkeeping (it only
//! stores the producer stamp in each batch header; a caller that truncates rebuilds its
//! table), HTTP.
//!
//! Module map: `record` (batch codec), `segment` (active and sealed segment files), `index`
//! (sparse offset index), `recovery` (open-time tail scan and cut), `retention` (deleting old
//! segments), `epoch` (the leader-epoch cache), `truncate` (crash-safe truncation of the
//! log's end), `sync` (durability state: [`PendingSync`], the durable offset, the failed-sync
//! poison), `flusher` (the interval flusher shared by the logs of one interval), `commit`
//! (group commit: [`Durable`], waiting until data is durable), `io` (the injectable file
//! operations used for preallocation and sync), `replica` (checking a follower's fetched
//! batches), `log` ([`PartitionLog`]).
//!
//! Replicas: a follower stores its leader's batches byte for byte with
//! [`PartitionLog::append_replica`] (same offsets, epochs, timestamps, producer stamps and
//! CRCs; nothing re-stamped), so a batch's CRC checks the same on every replica and
//! `read_encoded` of a follower returns its leader's bytes. It gets the appended batches'
//! [`BatchMeta`]s back to record their producer stamps.

mod commit;
mod epoch;
mod error;
mod flusher;
mod index;
pub mod io;
mod log;
pub mod record;
mod recovery;
mod replica;
mod retention;
mod segment;
mod sync;
mod truncate;

use std::time::Duration;

pub use crate::commit::Durable;
pub use crate::error::LogError;
pub use crate::log::PartitionLog;
pub use crate::sync::{DurableListener, PendingSync};

/// When appended data is made durable (fdatasync of the active segment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every `append`/`append_encoded` syncs before it returns; after the `_unsynced`
    /// appends, [`Durable::settle`] waits for a sync shared by all waiters (group commit).
    Always,
    /// A flusher thread shared by the logs of this interval syncs each at least this often.
    Interval(Duration),
    /// The log never syncs on its own, except when sealing a segment at roll.
    Never,
}

/// Configuration of one partition log.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Roll threshold: a batch that does not fit the active segment starts a new one.
    pub segment_bytes: u64,
    /// What a new active segment is preallocated to at first; it doubles as it fills, up to
    /// `segment_bytes`, so an idle partition does not reserve a whole segment of disk.
    pub initial_segment_bytes: u64,
    /// One sparse index entry per this many bytes of log.
    pub index_interval_bytes: u32,
    /// Per partition: oldest whole sealed segments are deleted while the log is larger.
    pub retention_bytes: Option<u64>,
    /// Sealed segments whose newest record is older than this are deleted.
    pub retention_ms: Option<u64>,
    pub fsync: FsyncPolicy,
    /// Sealed segments kept mapped at once (LRU).
    pub max_mapped_segments: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            initial_segment_bytes: 1024 * 1024,
            index_interval_bytes: 4096,
            retention_bytes: None,
            retention_ms: None,
            fsync: FsyncPolicy::Interval(Duration::from_millis(20)),
            max_mapped_segments: 16,
        }
    }
}

/// One record to append. `timestamp_ms` is set by the caller (the broker: append time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
}

/// Idempotent-producer identity stored in the batch header (producer_id 0 = not idempotent).
/// The broker maps its string producer id to `producer_id: u64` with a stable hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: u64,
    pub seq: u64,
}

/// Where an appended batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: u64,
    pub record_count: u32,
    /// The next offset (base_offset + record_count).
    pub end_offset: u64,
}

/// A record read back, with its offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRecord {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// A batch header as seen by [`PartitionLog::for_each_batch_meta`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    pub base_offset: u64,
    pub record_count: u32,
    pub max_timestamp_ms: i64,
    pub producer: Option<ProducerStamp>,
    /// The leader epoch the batch was appended in (0 for a v1 batch).
    pub leader_epoch: u32,
}

/// What [`PartitionLog::append_replica`] appended: the leader's batches, stored as they came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaAppend {
    /// The log end before the append: the first batch's base offset.
    pub base_offset: u64,
    /// The log end after it: the offset the follower fetches from next.
    pub end_offset: u64,
    /// Each appended batch's header, oldest first (the caller records producer stamps from
    /// them, as it does from `for_each_batch_meta` at open).
    pub batches: Vec<BatchMeta>,
}

/// What `open` found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Intact batches scanned in the active segment's tail (from the last good index entry).
    pub batches_kept: u64,
    /// Non-zero bytes cut from the active segment after the last intact batch.
    pub bytes_truncated: u64,
    /// Batches cut (best effort: headers that could be hopped over in the cut region).
    pub batches_truncated: u64,
    /// Index files rebuilt because they were missing or damaged.
    pub indexes_rebuilt: u32,
    /// A truncation interrupted by a crash was finished: the end offset it cut to.
    pub truncation_finished: Option<u64>,
}
