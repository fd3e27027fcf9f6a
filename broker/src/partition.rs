//! One partition of a topic: its [`PartitionLog`] and idempotent-producer table behind one
//! std `Mutex` (appends are a memcpy into a mapped segment, so the critical section is short
//! and never awaits), plus the signals around it:
//!
//! - `local`: how far this copy counts as written: with `--fsync always` the durable offset
//!   (the log tells us each advance), so nothing a crash could still take back is counted
//!   (and then appended again by a producer retry); otherwise the log end.
//! - `visible`: the offset up to which consumers may read; their long-polls wait on it. A
//!   broker of one shows consumers `local`. A replicated partition (a cluster) shows them its
//!   high watermark, which the replication (`replication/`) publishes: what every in-sync
//!   replica holds, so nothing a consumer read can vanish in a failover.
//!
//! - the log itself is opened lazily: a partition nothing was ever appended to has no files
//!   and holds no descriptor (an idle topic costs no disk); the first append creates it.
//! - `close` (topic deletion) drops the log under the lock; every later call answers
//!   "unknown topic", so a fetch or produce racing a delete gets a clean 404.
//!
//! Durability belongs to the log crate: the log is opened with the broker's fsync policy and
//! owns the group commit, the interval flusher, the durable offset and the failed-sync
//! state; a produce here only awaits the log's [`Durable`] handle. Routing, decoding and
//! HTTP belong to other modules; this one never sees a request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use broker_log::io::{FileOps, RealFileOps};
use broker_log::{
    AppendOutcome, Durable, FsyncPolicy, LogConfig, LogError, PartitionLog, ProducerStamp, Record,
};
use tokio::sync::watch;

use crate::error::{BrokerError, Result};
use crate::metrics as m;
use crate::producers::{ProducerTable, SeqCheck};

/// What a produce hands to a partition.
pub enum Payload<'a> {
    /// Decoded messages (NDJSON); the log encodes the batch.
    Records(&'a [Record<'a>]),
    /// One batch already in the segments-format layout (the binary content type).
    Encoded(&'a [u8]),
}

impl Payload<'_> {
    /// The bytes the batch takes in the segment (a v1 batch is stored with a v2 header).
    fn encoded_len(&self) -> usize {
        match self {
            Payload::Records(records) => broker_log::record::encoded_len(records),
            Payload::Encoded(batch) => broker_log::record::stored_len(batch),
        }
    }

    /// How many records the payload holds (`None`: an encoded batch whose header is not
    /// even readable; the append will refuse it).
    fn record_count(&self) -> Option<usize> {
        match self {
            Payload::Records(records) => Some(records.len()),
            Payload::Encoded(batch) => {
                broker_log::record::peek_header(batch).map(|h| h.record_count as usize)
            }
        }
    }
}

/// An idempotent produce's identity: the stamp stored in the batch, and the id as the
/// client wrote it (for errors).
#[derive(Clone, Copy, Debug)]
pub struct Idempotence<'a> {
    pub stamp: ProducerStamp,
    pub producer: &'a str,
}

/// Where a produce landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub record_count: u32,
    /// A retry of a batch appended before: nothing was appended now.
    pub duplicate: bool,
}

struct Inner {
    /// `None` until the first append (no segment on disk yet), and after `close`.
    log: Option<PartitionLog>,
    /// The topic was deleted: every call answers "unknown topic".
    closed: bool,
    producers: ProducerTable,
    /// The leader epoch appends are stamped with, given to the log when it opens (a log is
    /// opened lazily, so it may be set before the log exists).
    leader_epoch: Option<u32>,
    /// Who may write now (see [`Writer`]).
    writer: Writer,
}

/// Who may write to a copy. Checked under the log's lock with every write, so a write decided
/// under an older role (a produce that passed the leadership check, then waited for its
/// producer's stripe while this broker became a follower; a follower task not yet aborted
/// when this broker became leader) cannot land after the role changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// Not replicated: produces write.
    Anyone,
    /// Replicated, no role yet (or offline).
    Nobody,
    /// Produces checked against this leader epoch.
    Leader(u32),
    /// The follower task of this leader epoch.
    Follower(u32),
}

pub struct Partition {
    pub topic: Arc<str>,
    pub id: u32,
    inner: Mutex<Inner>,
    /// Consumers may see offsets below this; their long-polls wait on it.
    visible: Arc<watch::Sender<u64>>,
    /// This copy's end as it counts for replication (see the module doc); followers'
    /// fetches long-poll on it.
    local: Arc<watch::Sender<u64>>,
    /// In a cluster: `visible` is the high watermark the replication publishes, not `local`.
    replicated: bool,
    /// Its part in the partition's replication (a cluster only).
    pub role: Mutex<crate::replication::Role>,
    /// The log's durability handle, set once the log exists (never unset: after a delete
    /// it still answers for what was written).
    durable: OnceLock<Durable>,
    /// `--fsync always`: produce waits for durability and readers see only durable data.
    always: bool,
    /// How to open the log on first append.
    dir: PathBuf,
    config: LogConfig,
    ops: Option<Arc<dyn FileOps>>,
    end_gauge: metrics::Gauge,
}

impl Partition {
    /// Opens (and recovers) the log in `dir` and rebuilds the producer table from it; a
    /// directory without segments, or whose only segment never received a record (written by
    /// an older broker that created logs eagerly), is left without files until the first
    /// append. Blocking.
    pub fn open(
        topic: Arc<str>,
        id: u32,
        dir: &Path,
        config: LogConfig,
        ops: Option<Arc<dyn FileOps>>,
        producer_idle_ms: u64,
        replicated: bool,
    ) -> Result<Partition> {
        let always = config.fsync == FsyncPolicy::Always;
        let log = if has_segments(dir) {
            let log = open_log(dir, config.clone(), ops.clone())?;
            let report = log.recovery_report();
            m::record_recovery(&topic, id, report.bytes_truncated, report.batches_truncated);
            if report.bytes_truncated > 0 {
                tracing::warn!(topic = %topic, partition = id, bytes = report.bytes_truncated,
                    batches = report.batches_truncated, "cut a torn or corrupt tail at recovery");
            }
            if log.end_offset() == 0 {
                drop(log);
                remove_empty_log(dir)?;
                None
            } else {
                Some(log)
            }
        } else {
            None
        };
        let producers = match &log {
            Some(log) => ProducerTable::rebuild(log, producer_idle_ms, now_ms())?,
            None => ProducerTable::new(producer_idle_ms),
        };
        let end = log.as_ref().map_or(0, PartitionLog::end_offset);
        let end_gauge = m::log_end_gauge(&topic, id);
        end_gauge.set(end as f64);
        let part = Partition {
            topic,
            id,
            inner: Mutex::new(Inner {
                log: None,
                closed: false,
                producers,
                leader_epoch: None,
                writer: if replicated {
                    Writer::Nobody
                } else {
                    Writer::Anyone
                },
            }),
            dir: dir.to_path_buf(),
            config,
            ops,
            // A replicated copy shows consumers nothing until its role is known: its tail
            // may be a deposed leader's, never committed.
            visible: Arc::new(watch::Sender::new(if replicated { 0 } else { end })),
            local: Arc::new(watch::Sender::new(end)),
            replicated,
            role: Mutex::new(crate::replication::Role::default()),
            durable: OnceLock::new(),
            always,
            end_gauge,
        };
        if let Some(log) = log {
            part.attach(&log);
            part.lock().log = Some(log);
        }
        Ok(part)
    }

    /// Wires a freshly opened log in: keeps its durability handle and, with `--fsync
    /// always`, makes data visible as the log reports it durable.
    fn attach(&self, log: &PartitionLog) {
        if self.always {
            let local = Arc::clone(&self.local);
            let visible = (!self.replicated).then(|| Arc::clone(&self.visible));
            log.on_durable(Box::new(move |durable| {
                raise(&local, durable);
                if let Some(visible) = &visible {
                    raise(visible, durable);
                }
            }));
        }
        let _ = self.durable.set(log.durable());
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic under this lock leaves the log as the storage engine left it; the engine's
        // own invariants are checked on every call, so carrying on is safe.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until everything below `end` is as durable as the policy promises (with
    /// `--fsync always`: synced; otherwise there is nothing to wait for).
    pub async fn settle(self: &Arc<Self>, end: u64) -> Result<()> {
        let Some(durable) = self.durable.get() else {
            // No log yet: only a retry of nothing could get here; nothing to make durable.
            return Ok(());
        };
        durable.settle(end).await.map_err(|e| match e {
            LogError::Poisoned => self.sync_failed(),
            other => other.into(),
        })
    }

    /// The check-then-append under the lock, without waiting for durability: returns where
    /// the batch landed and the end offset to [`Partition::settle`] on. Readers see the batch
    /// at once unless the policy is `always`. An idempotent append is one partition's share
    /// of a request that `produce.rs` decided whole, under the producer's stripe.
    pub fn append_now(
        &self,
        payload: Payload<'_>,
        idempotence: Option<Idempotence<'_>>,
        writer: Writer,
    ) -> Result<(Appended, u64)> {
        let mut inner = self.lock();
        self.check_open(&inner)?;
        self.check_writer(&inner, writer)?;
        let now = now_ms();
        if let Some(idem) = idempotence {
            if let Some(retry) = self.check_retry(&inner, &payload, idem, now)? {
                return Ok(retry);
            }
        }
        let stamp = idempotence.map(|i| i.stamp);
        let outcome = self.write_batch(&mut inner, payload, stamp)?;
        if let Some(stamp) = stamp {
            inner
                .producers
                .record(stamp, outcome.base_offset, outcome.record_count, now);
        }
        drop(inner);
        self.end_gauge.set(outcome.end_offset as f64);
        if !self.always {
            self.publish_local(outcome.end_offset);
        }
        let appended = Appended {
            base_offset: outcome.base_offset,
            record_count: outcome.record_count,
            duplicate: false,
        };
        Ok((appended, outcome.end_offset))
    }

    /// Checks an idempotent produce against this partition's window without appending:
    /// `Some` (the original placement and its end) for a retry, `None` for a new batch, an
    /// error when it is stale or altered (or the topic is gone). Only a lock held around this
    /// check and the later [`Partition::append_now`] (the producer's stripe, see
    /// `produce.rs`) keeps the answer true until the append.
    pub fn check_seq(
        &self,
        payload: &Payload<'_>,
        idem: Idempotence<'_>,
    ) -> Result<Option<(Appended, u64)>> {
        let inner = self.lock();
        self.check_open(&inner)?;
        self.check_retry(&inner, payload, idem, now_ms())
    }

    /// For an idempotent produce: `Some` (the original placement) when it is a retry of a
    /// remembered batch, `None` when it is new, an error when it is stale or altered.
    fn check_retry(
        &self,
        inner: &Inner,
        payload: &Payload<'_>,
        idem: Idempotence<'_>,
        now: i64,
    ) -> Result<Option<(Appended, u64)>> {
        match inner.producers.check(idem.stamp, now) {
            SeqCheck::New => Ok(None),
            SeqCheck::Duplicate(entry) => {
                let retried = payload.record_count();
                if retried.is_some_and(|n| n != entry.record_count as usize) {
                    return Err(BrokerError::SequenceMismatch {
                        producer: idem.producer.to_string(),
                        seq: idem.stamp.seq,
                        partition: self.id,
                        original: entry.record_count,
                        retried: retried.unwrap_or(0),
                    });
                }
                let appended = Appended {
                    base_offset: entry.base_offset,
                    record_count: entry.record_count,
                    duplicate: true,
                };
                Ok(Some((
                    appended,
                    entry.base_offset + u64::from(entry.record_count),
                )))
            }
            SeqCheck::Stale { latest } => Err(BrokerError::StaleSequence {
                producer: idem.producer.to_string(),
                seq: idem.stamp.seq,
                latest,
                partition: self.id,
            }),
        }
    }

    /// Writes the batch into the log (unsynced; the log's policy makes it durable).
    fn write_batch(
        &self,
        inner: &mut Inner,
        payload: Payload<'_>,
        stamp: Option<ProducerStamp>,
    ) -> Result<AppendOutcome> {
        let len = payload.encoded_len();
        let log = self.log_mut(inner)?;
        let may_block_now = log.append_may_block(len);
        let mut append = || match payload {
            Payload::Records(records) => log.append_unsynced(records, stamp),
            Payload::Encoded(batch) => log.append_encoded_unsynced(batch, stamp),
        };
        // Most appends are a memcpy and run right here; one that may roll the segment (sync,
        // truncate, preallocate: milliseconds) first hands this worker's other tasks away.
        // Doing that for every append measured ~20% slower.
        let outcome = if may_block_now {
            may_block(append)?
        } else {
            append()?
        };
        Ok(outcome)
    }

    /// The log, created on first need: a directory and a small first segment, the topic
    /// directory synced so the new partition directory survives a power loss.
    fn log_mut<'i>(&self, inner: &'i mut Inner) -> Result<&'i mut PartitionLog> {
        self.check_open(inner)?;
        if inner.log.is_none() {
            let mut log = may_block(|| {
                let log = open_log(&self.dir, self.config.clone(), self.ops.clone())?;
                if let Some(topic_dir) = self.dir.parent() {
                    crate::fsutil::sync_dir(topic_dir)?;
                }
                Ok::<_, BrokerError>(log)
            })?;
            if let Some(epoch) = inner.leader_epoch {
                log.set_leader_epoch(epoch)?;
            }
            self.attach(&log);
            inner.log = Some(log);
        }
        inner.log.as_mut().ok_or_else(|| self.unknown())
    }

    /// Counts `end` as this copy's (see the module doc); unreplicated, consumers see it too.
    fn publish_local(&self, end: u64) {
        raise(&self.local, end);
        if !self.replicated {
            raise(&self.visible, end);
        }
    }

    // ---- Replication (a cluster): what `replication/` asks of a copy. ----

    /// This copy's end as it counts for replication (see the module doc).
    pub fn local_end(&self) -> u64 {
        *self.local.borrow()
    }

    /// A receiver of [`Partition::local_end`], for followers' long-polls at the leader.
    pub fn subscribe_local(&self) -> watch::Receiver<u64> {
        self.local.subscribe()
    }

    /// `(log start, log end)` of this copy, everything it holds whatever its replication.
    pub fn log_bounds(&self) -> Result<(u64, u64)> {
        let inner = self.lock();
        self.check_open(&inner)?;
        Ok((start_of(&inner), end_of(&inner)))
    }

    /// Whole encoded batches from the one holding `offset` up to the log end, for a follower,
    /// into `out` (cleared first; empty at the end): it copies what is not yet committed too
    /// (that is how it gets committed). Their CRCs are not checked here but by the follower
    /// as it appends them (`PartitionLog::read_encoded_into`), once instead of once per
    /// follower.
    pub fn read_for_replica(&self, offset: u64, max_bytes: usize, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        let inner = self.lock();
        self.check_open(&inner)?;
        let (start, end) = (start_of(&inner), end_of(&inner));
        if offset < start || offset > end {
            return Err(BrokerError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        match inner.log.as_ref() {
            Some(log) if offset < end => Ok(log.read_encoded_into(offset, max_bytes, false, out)?),
            _ => Ok(()),
        }
    }

    /// Appends a leader's batches verbatim (a follower) and records their producer stamps,
    /// so a follower that becomes leader recognises retries. Returns the new log end.
    pub fn append_replica(&self, encoded: &[u8], epoch: u32) -> Result<u64> {
        let mut inner = self.lock();
        self.check_open(&inner)?;
        self.check_writer(&inner, Writer::Follower(epoch))?;
        let always = self.always;
        let log = self.log_mut(&mut inner)?;
        // With `--fsync always` a follower syncs before it fetches again, i.e. before its
        // leader counts the batch as on this broker. Otherwise most appends are a `pwrite`
        // into the page cache and run right here, as a produce's do (handing the worker's
        // tasks away for each cost ~2% of a cluster's CPU); one that may grow or roll the
        // segment, or read sealed headers, hands them away first.
        let appended = if always || log.append_replica_may_block(encoded.len()) {
            may_block(|| {
                if always {
                    log.append_replica(encoded)
                } else {
                    log.append_replica_unsynced(encoded)
                }
            })?
        } else {
            log.append_replica_unsynced(encoded)?
        };
        let now = now_ms();
        for batch in &appended.batches {
            if let Some(stamp) = batch.producer {
                inner
                    .producers
                    .record(stamp, batch.base_offset, batch.record_count, now);
            }
        }
        drop(inner);
        self.end_gauge.set(appended.end_offset as f64);
        // With `always` the sync above made it durable (the durability listener agrees).
        raise(&self.local, appended.end_offset);
        Ok(appended.end_offset)
    }

    /// Cuts this copy back to `offset` (a follower whose log diverged from its leader's),
    /// rebuilds the producer table from what is left and lowers the ends to match.
    pub fn truncate_to(&self, offset: u64, producer_idle_ms: u64, epoch: u32) -> Result<u64> {
        let mut inner = self.lock();
        self.check_open(&inner)?;
        self.check_writer(&inner, Writer::Follower(epoch))?;
        let Some(log) = inner.log.as_mut() else {
            return Ok(0);
        };
        // The cut and the rebuild read and write segments: off the runtime's workers.
        let (end, producers) = may_block(|| {
            let end = log.truncate_to(offset)?;
            let producers = ProducerTable::rebuild(log, producer_idle_ms, now_ms())?;
            Ok::<_, LogError>((end, producers))
        })?;
        inner.producers = producers;
        drop(inner);
        self.end_gauge.set(end as f64);
        for watched in [&self.local, &self.visible] {
            watched.send_if_modified(|v| {
                let lowered = *v > end;
                *v = (*v).min(end);
                lowered
            });
        }
        Ok(end)
    }

    /// Empties this copy to start at its leader's log start `start`, past its own end (a
    /// follower: see `PartitionLog::reset_to`). The producer table is rebuilt (empty, as the
    /// log). What consumers see does not move; the next fetches fill the copy from `start`.
    pub fn reset_to(&self, start: u64, producer_idle_ms: u64, epoch: u32) -> Result<()> {
        let mut inner = self.lock();
        self.check_open(&inner)?;
        self.check_writer(&inner, Writer::Follower(epoch))?;
        let log = self.log_mut(&mut inner)?;
        // Deletes and creates segment files: off the runtime's workers.
        let producers = may_block(|| {
            log.reset_to(start)?;
            ProducerTable::rebuild(log, producer_idle_ms, now_ms())
        })?;
        inner.producers = producers;
        drop(inner);
        self.end_gauge.set(start as f64);
        raise(&self.local, start);
        Ok(())
    }

    /// The leader epoch of this copy's last batch (`None`: no records).
    pub fn latest_epoch(&self) -> Result<Option<u32>> {
        let inner = self.lock();
        self.check_open(&inner)?;
        match inner.log.as_ref() {
            // May read the newest sealed segment's headers.
            Some(log) => Ok(may_block(|| log.latest_epoch())?),
            None => Ok(None),
        }
    }

    /// Where `epoch` ended in this copy (`PartitionLog::end_offset_for_epoch`).
    pub fn end_offset_for_epoch(&self, epoch: u32) -> Result<Option<(u32, u64)>> {
        let inner = self.lock();
        self.check_open(&inner)?;
        match inner.log.as_ref() {
            // The first lookup builds the epoch cache from segment headers.
            Some(log) => Ok(may_block(|| log.end_offset_for_epoch(epoch))?),
            None => Ok(None),
        }
    }

    /// Raises what consumers see to the high watermark `hw` (never past this copy's end).
    pub fn publish_high_watermark(&self, hw: u64) {
        raise(&self.visible, hw.min(self.local_end()));
    }

    /// Wakes everyone waiting on what consumers see (a role change: waiting produces look
    /// at the role again).
    pub fn wake(&self) {
        self.visible.send_modify(|_| {});
    }

    /// `Ok` when `writer` may write now (see [`Writer`]); else 503, nothing written.
    fn check_writer(&self, inner: &Inner, writer: Writer) -> Result<()> {
        if inner.writer == Writer::Anyone || inner.writer == writer {
            return Ok(());
        }
        Err(BrokerError::NotLeading {
            topic: self.topic.to_string(),
            partition: self.id,
        })
    }

    /// Sets who may write from now on; a leader also stamps its epoch on what it appends.
    pub fn set_writer(&self, writer: Writer) -> Result<()> {
        let mut inner = self.lock();
        self.check_open(&inner)?;
        if let Writer::Leader(epoch) = writer {
            inner.leader_epoch = Some(epoch);
            if let Some(log) = inner.log.as_mut() {
                log.set_leader_epoch(epoch)?;
            }
        }
        inner.writer = writer;
        Ok(())
    }

    fn sync_failed(&self) -> BrokerError {
        BrokerError::SyncFailed {
            topic: self.topic.to_string(),
            partition: self.id,
        }
    }

    /// With `--fsync always`, starts a sync now unless `end` is durable already (so the
    /// partitions of one produce sync in parallel).
    pub fn start_sync_for(&self, end: u64) {
        if let Some(durable) = self.durable.get() {
            durable.request_sync(end);
        }
    }

    /// Syncs now on the calling thread (shutdown).
    pub fn sync_blocking(&self) -> Result<()> {
        let mut inner = self.lock();
        let Some(log) = inner.log.as_mut() else {
            return Ok(());
        };
        log.sync()?;
        Ok(())
    }

    /// `(log start, visible end)`.
    pub fn offsets(&self) -> (u64, u64) {
        let start = start_of(&self.lock());
        (start, *self.visible.borrow())
    }

    /// Checks that `offset` is in the log (between start and end, inclusive) and returns the
    /// visible end. An offset past the visible end but inside the log (not yet durable, or
    /// not yet on every in-sync replica) is valid: a reader there waits for it.
    fn check_range(&self, inner: &Inner, offset: u64) -> Result<u64> {
        self.check_open(inner)?;
        let (start, end) = (start_of(inner), end_of(inner));
        if offset < start || offset > end {
            return Err(BrokerError::OffsetOutOfRange {
                requested: offset,
                start,
                end: *self.visible.borrow(),
            });
        }
        Ok(*self.visible.borrow())
    }

    /// Whole encoded batches from the one holding `offset`, none past the visible end, and the
    /// offset following the last record returned.
    pub fn read_encoded(&self, offset: u64, max_bytes: usize) -> Result<(Vec<u8>, u64)> {
        let inner = self.lock();
        let end = self.check_range(&inner, offset)?;
        if offset >= end {
            return Ok((Vec::new(), offset));
        }
        let log = inner.log.as_ref().ok_or_else(|| self.unknown())?;
        let bytes = log.read_encoded(offset, max_bytes)?;
        drop(inner);
        Ok(crate::batches::truncate_to(bytes, end, offset))
    }

    /// What consumers may read up to.
    pub fn visible_end(&self) -> u64 {
        *self.visible.borrow()
    }

    /// A receiver of the visible end, for long-polls.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.visible.subscribe()
    }

    /// Deletes segments past retention; blocking (file deletions).
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        match self.lock().log.as_mut() {
            Some(log) => Ok(log.enforce_retention(now_ms)?),
            None => Ok(0),
        }
    }

    pub fn size_bytes(&self) -> u64 {
        self.lock().log.as_ref().map_or(0, PartitionLog::size_bytes)
    }

    /// Topic deletion: closes the log (its descriptors and maps go now; the caller removes
    /// the files) and makes every later call answer "unknown topic". Wakes parked fetches so
    /// they notice at once.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.log = None;
        drop(inner);
        // A follower task of this copy ends with its role.
        *self.role.lock().unwrap_or_else(|e| e.into_inner()) = crate::replication::Role::Unassigned;
        self.visible.send_modify(|_| {});
    }

    fn check_open(&self, inner: &Inner) -> Result<()> {
        if inner.closed {
            return Err(self.unknown());
        }
        Ok(())
    }

    fn unknown(&self) -> BrokerError {
        BrokerError::UnknownTopic(self.topic.to_string())
    }
}

/// The first readable offset (0 for a log not created yet).
fn start_of(inner: &Inner) -> u64 {
    inner.log.as_ref().map_or(0, PartitionLog::start_offset)
}

/// The log end (0 for a log not created yet).
fn end_of(inner: &Inner) -> u64 {
    inner.log.as_ref().map_or(0, PartitionLog::end_offset)
}

/// Raises a watched end to `end` (never lowers it), waking long-polls.
fn raise(visible: &watch::Sender<u64>, end: u64) {
    visible.send_if_modified(|v| {
        if end > *v {
            *v = end;
            true
        } else {
            false
        }
    });
}

/// Opens a log whose syncs are timed for the fsync histogram.
fn open_log(dir: &Path, config: LogConfig, ops: Option<Arc<dyn FileOps>>) -> Result<PartitionLog> {
    let ops = ops.unwrap_or_else(|| Arc::new(RealFileOps));
    let timed = Arc::new(m::TimedSync(ops));
    Ok(PartitionLog::open_with_ops(dir, config, timed)?)
}

/// Whether `dir` holds a segment file (names per segments-format.md).
fn has_segments(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "log"))
    })
}

/// Removes the files of a log that never received a record, so it reserves nothing.
fn remove_empty_log(dir: &Path) -> Result<()> {
    std::fs::remove_dir_all(dir)
        .map_err(|e| BrokerError::io(format!("remove empty log {}", dir.display()), e))
}

/// Wall-clock milliseconds since the Unix epoch (append times, producer idleness).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs `f`, which may block. An append is normally a memcpy into the mapped segment, but one
/// that rolls a segment syncs and truncates the old one and preallocates the next
/// (milliseconds). On the multi-threaded runtime `block_in_place` hands this worker's other
/// tasks to another thread meanwhile; elsewhere (a current-thread runtime) it just runs.
pub(crate) fn may_block<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
