//! [`PartitionLog`]: one partition's segments, the append and read paths, roll, retention,
//! leader epochs and truncation of the end.
//!
//! The log owns the sealed segments (metadata only; mapped lazily through a small LRU of at
//! most `max_mapped_segments`), the active segment, the durability state shared with
//! [`PendingSync`] and the interval flusher, the leader epoch it stamps on new batches and
//! the epoch cache (`epoch`). It is `Send` and expects its caller to serialise access (the
//! broker wraps each log in a `std::sync::Mutex`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::commit::Durable;
use crate::epoch::{self, EpochCache};
use crate::flusher::{self, Registration};
use crate::io::{FileOps, RealFileOps};
use crate::record::{self, Batch, BatchHeader, MAX_BATCH_BYTES};
use crate::segment::{self, ActiveSegment, MappedSegment, SealedSegment, SegmentView, Sizing};
use crate::sync::{Durability, DurableListener, PendingSync};
use crate::{
    recovery, replica, retention, truncate, AppendOutcome, BatchMeta, FsyncPolicy, LogConfig,
    LogError, OwnedRecord, ProducerStamp, Record, RecoveryReport, ReplicaAppend,
};

/// One partition's log: a directory of segments.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    ops: Arc<dyn FileOps>,
    sealed: BTreeMap<u64, SealedSegment>,
    active: ActiveSegment,
    /// Most recently used last.
    mapped: Mutex<Vec<(u64, Arc<MappedSegment>)>>,
    durability: Arc<Durability>,
    /// The place in the shared interval flusher (`FsyncPolicy::Interval`).
    flusher: Option<Registration>,
    report: RecoveryReport,
    /// Reused encoding buffer (see `ActiveSegment::write_tail` for why appends encode first).
    scratch: Vec<u8>,
    /// The leader epoch stamped on new batches. None until first needed, then the epoch of
    /// the log's last batch (0 for an empty log): a reopened log goes on in its epoch until
    /// `set_leader_epoch` raises it.
    leader_epoch: Option<u32>,
    /// The epoch cache, built on first need (see `epoch` for why not at open), then kept up
    /// to date by appends, truncation and retention.
    epochs: Mutex<Option<EpochCache>>,
    /// A truncation failed half-way: the in-memory view may name files that are cut or gone,
    /// so reads refuse too (`Poisoned`) until the log is reopened, which finishes the cut.
    broken: bool,
}

/// Largest encoding buffer kept between appends.
const SCRATCH_KEEP_BYTES: usize = 8 << 20;

impl PartitionLog {
    /// Creates the directory if needed; recovers (scan active tail, cut torn/corrupt, rebuild
    /// index). With `FsyncPolicy::Interval` it joins the flusher shared by the logs of that interval.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, LogError> {
        Self::open_with_ops(dir, config, Arc::new(RealFileOps))
    }

    /// [`open`](Self::open) with injectable preallocate/sync operations (fault injection).
    pub fn open_with_ops(
        dir: &Path,
        config: LogConfig,
        ops: Arc<dyn FileOps>,
    ) -> Result<PartitionLog, LogError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| LogError::io(format!("create {}", dir.display()), e))?;
        let mut report = RecoveryReport {
            truncation_finished: truncate::finish_pending(dir, ops.as_ref())?,
            ..RecoveryReport::default()
        };
        let bases = segment::list_segments(dir)?;
        let mut sealed = BTreeMap::new();
        for w in bases.windows(2) {
            let s =
                recovery::open_sealed(dir, w[0], w[1], config.index_interval_bytes, &mut report)?;
            sealed.insert(w[0], s);
        }
        let size = Sizing {
            capacity: config.initial_segment_bytes.min(config.segment_bytes),
            full: config.segment_bytes,
            interval: config.index_interval_bytes,
        };
        let active = match bases.last() {
            None => ActiveSegment::create(dir, 0, size, &ops)?,
            Some(&last) => {
                let mut a = ActiveSegment::open_at(dir, last, size, &ops, false)?;
                recovery::recover_active(&mut a, &mut report)?;
                a
            }
        };
        let durability = Arc::new(Durability::new(active.target.clone(), active.next_offset));
        let flusher = match config.fsync {
            FsyncPolicy::Interval(every) => Some(flusher::register(&durability, every)?),
            _ => None,
        };
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            config,
            ops,
            sealed,
            active,
            mapped: Mutex::new(Vec::new()),
            durability,
            flusher,
            report,
            scratch: Vec::new(),
            leader_epoch: None,
            epochs: Mutex::new(None),
            broken: false,
        })
    }

    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Encodes one batch and appends it; syncs before returning when fsync = Always.
    pub fn append(
        &mut self,
        records: &[Record<'_>],
        producer: Option<ProducerStamp>,
    ) -> Result<AppendOutcome, LogError> {
        let out = self.append_unsynced(records, producer)?;
        self.sync_if_always()?;
        Ok(out)
    }

    /// Appends a batch in the segments-format layout (binary produce): validates framing and
    /// CRC, assigns the base offset and append time, stamps the producer, re-stamps the CRC.
    pub fn append_encoded(
        &mut self,
        batch: &[u8],
        producer: Option<ProducerStamp>,
    ) -> Result<AppendOutcome, LogError> {
        let out = self.append_encoded_unsynced(batch, producer)?;
        self.sync_if_always()?;
        Ok(out)
    }

    /// [`append`](Self::append) without any sync, whatever the policy (group commit).
    pub fn append_unsynced(
        &mut self,
        records: &[Record<'_>],
        producer: Option<ProducerStamp>,
    ) -> Result<AppendOutcome, LogError> {
        self.check_writable()?;
        if records.is_empty() {
            return Err(LogError::InvalidBatch {
                reason: "a batch needs at least one record".into(),
            });
        }
        let len = record::encoded_len(records);
        check_size(len)?;
        let count = records.len() as u32;
        let epoch = self.stamp_epoch()?;
        self.make_room(len, count)?;
        let base = self.active.next_offset;
        let mut buf = self.take_scratch(len);
        record::encode_into(&mut buf, base, epoch, records, producer);
        let written = self.active.write_tail(&[&buf]);
        self.return_scratch(buf);
        written?;
        Ok(self.commit(len, base, count, epoch))
    }

    /// [`append_encoded`](Self::append_encoded) without any sync (group commit).
    pub fn append_encoded_unsynced(
        &mut self,
        batch: &[u8],
        producer: Option<ProducerStamp>,
    ) -> Result<AppendOutcome, LogError> {
        self.check_writable()?;
        // The size as stored: a v1 batch grows by the v2 header's extra bytes.
        check_size(record::stored_len(batch))?;
        let epoch = self.stamp_epoch()?;
        let base = self.active.next_offset;
        let stamped = record::restamped_header(batch, base, producer, now_ms(), epoch)
            .map_err(|reason| LogError::InvalidBatch { reason })?;
        // A v1 batch is stored with the 8 bytes longer v2 header.
        let (len, count) = (
            stamped.header.batch_length as usize,
            stamped.header.record_count,
        );
        self.make_room(len, count)?;
        // The restamped header, then the records as sent: no copy of the batch.
        self.active.write_tail(&[&stamped.head, stamped.records])?;
        Ok(self.commit(len, base, count, epoch))
    }

    /// A follower's append: stores its leader's batches (`encoded`: whole stored batches back
    /// to back, as the leader's [`read_encoded`](Self::read_encoded) returns them, v1 or v2)
    /// byte for byte. Nothing is re-stamped (offsets, times, producer stamps, leader epochs and
    /// CRCs stay the leader's), so the follower's `read_encoded` returns the same bytes and
    /// every CRC checks on every replica. Segments roll, the index, the epoch cache and the
    /// durability marks follow as for any append; syncs before returning when fsync = Always.
    /// An empty `encoded` appends nothing.
    ///
    /// Refused, with nothing appended, when a batch is torn or corrupt
    /// ([`LogError::ReplicaBatchInvalid`]), does not start exactly at the log end or the
    /// previous batch's end ([`LogError::ReplicaNotContiguous`]: a gap or an overlap), or has a
    /// leader epoch older than the log's latest or the previous batch's
    /// ([`LogError::ReplicaStaleEpoch`]).
    ///
    /// All-or-nothing for refusals: the whole buffer is checked before the first byte is
    /// written (the CRC pass reads it once anyway, and the check needs no I/O). A refused buffer
    /// means the fetch or the leader is wrong, and keeping a prefix of it would only make the
    /// follower's state depend on where in a bad response the fault lay; it refetches from
    /// its unchanged end. A storage failure part-way (a full disk at a roll, a failed write)
    /// keeps the whole batches already written: each is a valid leader batch at its right
    /// offset, and the error is returned; the follower refetches from
    /// [`end_offset`](Self::end_offset).
    ///
    /// The caller (a follower) sets no leader epoch of its own; if it had one below the
    /// appended batches' epoch, it is raised to it, so an append as leader never stamps an
    /// epoch lower than the log's latest.
    pub fn append_replica(&mut self, encoded: &[u8]) -> Result<ReplicaAppend, LogError> {
        let out = self.append_replica_unsynced(encoded)?;
        self.sync_if_always()?;
        Ok(out)
    }

    /// [`append_replica`](Self::append_replica) without any sync, whatever the policy
    /// (group commit: [`Durable::settle`] covers the appended range as for any append).
    pub fn append_replica_unsynced(&mut self, encoded: &[u8]) -> Result<ReplicaAppend, LogError> {
        self.check_writable()?;
        let start = self.end_offset();
        let checked = replica::check(encoded, start, self.latest_epoch()?)?;
        let mut i = 0;
        while let Some(first) = checked.get(i) {
            self.make_room(first.len(), first.header.record_count)?;
            // The batches are contiguous in `encoded`: write every following one that fits
            // the active segment as is with the first, in one `pwrite`.
            let (mut bytes, mut count, mut j) = (first.len(), first.header.record_count, i + 1);
            while let Some(next) = checked.get(j) {
                let more = count.checked_add(next.header.record_count);
                match more {
                    Some(c) if self.active.fits(bytes + next.len(), c) => {
                        (bytes, count, j) = (bytes + next.len(), c, j + 1);
                    }
                    _ => break,
                }
            }
            let run = &encoded[first.position..first.position + bytes];
            self.active.write_tail(&[run])?;
            for c in &checked[i..j] {
                let h = &c.header;
                self.commit(c.len(), h.base_offset, h.record_count, h.leader_epoch);
            }
            i = j;
        }
        let batches: Vec<BatchMeta> = checked.iter().map(|c| meta_of(&c.header)).collect();
        Ok(ReplicaAppend {
            base_offset: start,
            end_offset: self.end_offset(),
            batches,
        })
    }

    /// A buffer of `len` bytes for encoding, reusing the last one's allocation. Its bytes
    /// are stale, not zeroed: the encoder writes every byte of a batch (zeroing 400 KiB per
    /// append showed up at ~5% of the append profile).
    fn take_scratch(&mut self, len: usize) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.scratch);
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf.truncate(len);
        buf
    }

    fn return_scratch(&mut self, buf: Vec<u8>) {
        // Keep ordinary batch buffers; let a rare huge one go.
        if buf.capacity() <= SCRATCH_KEEP_BYTES {
            self.scratch = buf;
        }
    }

    fn commit(&mut self, len: usize, base: u64, count: u32, epoch: u32) -> AppendOutcome {
        self.active.commit(len, count, epoch);
        // A copied batch of a later leader raises the epoch this log stamps, batch by batch,
        // so a copy cut short by a storage error cannot leave it below the log's latest.
        if let Some(own) = self.leader_epoch {
            self.leader_epoch = Some(own.max(epoch));
        }
        if let Some(cache) = self.cache_if_built() {
            cache.note(epoch, base);
        }
        AppendOutcome {
            base_offset: base,
            record_count: count,
            end_offset: base + u64::from(count),
        }
    }

    fn check_writable(&self) -> Result<(), LogError> {
        if self.broken || self.durability.is_poisoned() {
            return Err(LogError::Poisoned);
        }
        Ok(())
    }

    fn sync_if_always(&mut self) -> Result<(), LogError> {
        if self.config.fsync == FsyncPolicy::Always {
            self.sync()?;
        }
        Ok(())
    }

    /// Captures (cheaply, under the caller's lock) what is written but not yet durable.
    pub fn pending_sync(&self) -> PendingSync {
        PendingSync::capture(&self.durability)
    }

    /// Makes everything appended so far durable (fdatasync of the active segment), now.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.durability.sync_current().map(|_| ())
    }

    /// The offset below which everything is known durable.
    pub fn durable_offset(&self) -> u64 {
        self.durability.durable_offset()
    }

    /// A handle to wait (async, outside the caller's lock) until appended data is durable
    /// as the policy promises; see [`Durable`].
    pub fn durable(&self) -> Durable {
        Durable::new(self.durability.clone(), self.config.fsync)
    }

    /// Tells `listener` the durable offset now and after every advance, whoever synced
    /// (group commit, flusher, roll, `sync`). It runs on the syncing thread, possibly under
    /// the caller's lock of an append that rolled: keep it short and lock-free. Only the
    /// first listener set counts.
    pub fn on_durable(&self, listener: DurableListener) {
        self.durability.set_listener(listener);
    }

    /// Whether appending `encoded_len` bytes must first grow or roll the active segment
    /// (preallocation, or sync and truncate: milliseconds of blocking I/O) rather than being
    /// a plain copy into it.
    pub fn append_may_block(&self, encoded_len: usize) -> bool {
        self.active.len + encoded_len > self.active.capacity
    }

    /// Whether a replica append ([`append_replica_unsynced`](Self::append_replica_unsynced))
    /// of `encoded_len` bytes may block: the segment must grow or roll, or the active segment
    /// holds no batch yet, so the log's latest epoch comes from the newest sealed segment's
    /// headers (a read, and maybe the epoch cache's build).
    pub fn append_replica_may_block(&self, encoded_len: usize) -> bool {
        self.active.last_epoch.is_none() || self.append_may_block(encoded_len)
    }

    /// Ensures the active segment has room for a batch: grows it (in steps, up to
    /// `segment_bytes`, or to the batch's size when it is alone in the segment), or rolls to
    /// a new segment.
    fn make_room(&mut self, len: usize, count: u32) -> Result<(), LogError> {
        if self.active.fits(len, count) {
            return Ok(());
        }
        let needed = (self.active.len + len) as u64;
        let a = &self.active;
        let may_grow = !a.sealed
            && a.fits_offsets(count)
            && (a.len == 0 || needed <= self.config.segment_bytes);
        if may_grow {
            let capacity = self.step_capacity(a.capacity as u64, needed);
            return self.active.grow(capacity, &self.durability);
        }
        self.roll(self.step_capacity(0, len as u64))
    }

    /// The capacity to preallocate for `needed` bytes when the segment has `current`: the
    /// initial step, doubled until it holds them, at most `segment_bytes` (or `needed`, for a
    /// batch bigger than a segment). So an idle or slow partition reserves little disk.
    fn step_capacity(&self, current: u64, needed: u64) -> u64 {
        let full = self.config.segment_bytes.max(1);
        let mut capacity = current
            .max(self.config.initial_segment_bytes.min(full))
            .max(1);
        while capacity < needed {
            capacity = capacity.saturating_mul(2);
        }
        capacity.min(full.max(needed))
    }

    /// Seals the active segment and starts a new one of `capacity` bytes. If the new one
    /// cannot be created (disk full) the sealed one stays active, full: the log remains
    /// readable and the next append tries again.
    fn roll(&mut self, capacity: u64) -> Result<(), LogError> {
        let sealed = match self.active.seal() {
            Ok(s) => s,
            Err(e) => {
                // The sealing sync or truncate failed: what is on disk is unknown.
                self.durability.poison();
                return Err(e);
            }
        };
        // Sealed: the file now ends at `len`; never write past it, never grow it again.
        self.active.capacity = self.active.len;
        self.active.sealed = true;
        self.durability.mark_durable(self.active.next_offset);
        let next = self.active.next_offset;
        let size = self.sizing(capacity);
        let new = ActiveSegment::create(&self.dir, next, size, &self.ops)?;
        self.durability.set_current(new.target.clone());
        self.active = new;
        self.sealed.insert(sealed.base, sealed);
        Ok(())
    }

    fn sizing(&self, capacity: u64) -> Sizing {
        Sizing {
            capacity,
            full: self.config.segment_bytes,
            interval: self.config.index_interval_bytes,
        }
    }

    /// Reads up to `max_records` / about `max_bytes` (at least one record if any) from
    /// `offset`. `offset == end` returns empty.
    pub fn read(
        &self,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<OwnedRecord>, LogError> {
        self.check_range(offset)?;
        let (max_records, mut out, mut bytes) = (max_records.max(1), Vec::new(), 0usize);
        self.walk_batches(offset, &mut |b, path, pos| {
            for r in b.records() {
                let r = r.map_err(|reason| corrupt(path, pos, reason))?;
                if r.offset < offset {
                    continue;
                }
                bytes += r.key.map_or(0, <[u8]>::len) + r.value.len();
                out.push(OwnedRecord {
                    offset: r.offset,
                    timestamp_ms: r.timestamp_ms,
                    key: r.key.map(<[u8]>::to_vec),
                    value: r.value.to_vec(),
                });
                if out.len() >= max_records || bytes >= max_bytes {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Whole encoded batches (segments-format bytes) starting with the batch containing
    /// `offset`, up to `max_bytes` (at least one batch if any).
    pub fn read_encoded(&self, offset: u64, max_bytes: usize) -> Result<Vec<u8>, LogError> {
        let mut out = Vec::new();
        self.read_encoded_into(offset, max_bytes, true, &mut out)?;
        Ok(out)
    }

    /// [`read_encoded`](Self::read_encoded) into `out` (cleared first: a buffer the caller
    /// reuses, so a large read does not fault in fresh pages each time), each batch's CRC
    /// checked only when `verify`. A leader answering a follower's fetch passes `false`: the
    /// follower checks every batch's CRC as it appends it
    /// ([`append_replica`](Self::append_replica)), so a batch damaged on this disk is still
    /// refused, once, instead of being checked here again for every follower. The framing
    /// (lengths, magic, record counts) is checked either way.
    pub fn read_encoded_into(
        &self,
        offset: u64,
        max_bytes: usize,
        verify: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), LogError> {
        self.check_range(offset)?;
        out.clear();
        self.walk_batches_checked(offset, verify, &mut |b, _, _| {
            if !out.is_empty() && out.len() + b.bytes.len() > max_bytes {
                return Ok(false);
            }
            out.extend_from_slice(b.bytes);
            Ok(out.len() < max_bytes)
        })
    }

    /// The epoch cache when it is built (appends and truncation keep it up to date; an
    /// unbuilt one is built from the headers as they are when first needed).
    fn cache_if_built(&mut self) -> Option<&mut EpochCache> {
        self.epochs
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
    }

    /// The epoch to stamp on the next batch (see `leader_epoch` on the struct).
    fn stamp_epoch(&mut self) -> Result<u32, LogError> {
        if let Some(epoch) = self.leader_epoch {
            return Ok(epoch);
        }
        let epoch = self.latest_epoch()?.unwrap_or(0);
        self.leader_epoch = Some(epoch);
        Ok(epoch)
    }

    /// The leader epoch stamped on the batches appended from now on: the one last set, or
    /// the epoch of the log's last batch (0 for an empty log).
    pub fn leader_epoch(&self) -> Result<u32, LogError> {
        match self.leader_epoch {
            Some(epoch) => Ok(epoch),
            None => Ok(self.latest_epoch()?.unwrap_or(0)),
        }
    }

    /// Sets the leader epoch stamped on every batch appended from now on (a replica that
    /// becomes leader of `epoch`). Refuses, with [`LogError::StaleEpoch`], an epoch lower
    /// than the log's latest: epochs never go back along a log.
    pub fn set_leader_epoch(&mut self, epoch: u32) -> Result<(), LogError> {
        if let Some(latest) = self.latest_epoch()? {
            if epoch < latest {
                return Err(LogError::StaleEpoch { epoch, latest });
            }
        }
        self.leader_epoch = Some(epoch);
        Ok(())
    }

    /// The leader epoch of the log's last batch; None for a log without records. Cheap: the
    /// active segment knows its last batch's epoch (from recovery's tail scan, then from
    /// appends); only when it is empty are the newest sealed segment's headers read.
    pub fn latest_epoch(&self) -> Result<Option<u32>, LogError> {
        if let Some(epoch) = self.active.last_epoch {
            return Ok(Some(epoch));
        }
        if self.start_offset() == self.end_offset() {
            return Ok(None);
        }
        self.check_readable()?;
        if let Some(cache) = &*self.epochs.lock().unwrap_or_else(PoisonError::into_inner) {
            return Ok(cache.latest());
        }
        if let Some((&base, _)) = self.sealed.iter().next_back() {
            let m = self.mapped_segment(base)?;
            if let Some(last) = epoch::headers(&m.log).last() {
                return Ok(Some(last.leader_epoch));
            }
        }
        self.with_epochs(EpochCache::latest)
    }

    /// Where `epoch` ended in this log, in the manner of Kafka's OffsetsForLeaderEpoch: the
    /// largest epoch `≤ epoch` found in the log, with the offset it ends at (the first offset
    /// of the next greater epoch, or the log end when it is the latest). None when the log
    /// holds no epoch `≤ epoch` (empty, or every such batch is gone). A replica of `epoch`
    /// whose log goes past that end diverged there and truncates to it.
    pub fn end_offset_for_epoch(&self, epoch: u32) -> Result<Option<(u32, u64)>, LogError> {
        let end = self.end_offset();
        self.with_epochs(|cache| cache.end_offset_for(epoch, end))
    }

    /// Runs `f` on the epoch cache, building it first if needed.
    fn with_epochs<R>(&self, f: impl FnOnce(&EpochCache) -> R) -> Result<R, LogError> {
        self.check_readable()?;
        let mut slot = self.epochs.lock().unwrap_or_else(PoisonError::into_inner);
        let cache = match slot.take() {
            Some(cache) => cache,
            None => self.build_epochs()?,
        };
        let answer = f(&cache);
        *slot = Some(cache);
        Ok(answer)
    }

    /// Builds the epoch cache from batch headers. Epochs never decrease along the log, so a
    /// segment whose first epoch equals the next segment's first (for the active segment,
    /// its last batch's) holds that epoch only: its first header is all the build reads of it
    /// (one `pread`). Only a segment in which the epoch changes is walked, header by header.
    fn build_epochs(&self) -> Result<EpochCache, LogError> {
        let mut firsts = Vec::new();
        for &base in self.sealed.keys() {
            if let Some(h) = segment::first_header(&self.dir, base)? {
                firsts.push((base, h));
            }
        }
        if let Some(h) = epoch::headers(self.active.written()).next() {
            firsts.push((self.active.base, h));
        }
        let mut cache = EpochCache::default();
        for (i, (base, first)) in firsts.iter().enumerate() {
            cache.note(first.leader_epoch, first.base_offset);
            let is_active = *base == self.active.base;
            let bound = match firsts.get(i + 1) {
                Some((_, next)) => Some(next.leader_epoch),
                None if is_active => self.active.last_epoch,
                None => None,
            };
            if bound == Some(first.leader_epoch) {
                continue;
            }
            let mut note = |h: BatchHeader| cache.note(h.leader_epoch, h.base_offset);
            if is_active {
                epoch::headers(self.active.written()).for_each(&mut note);
            } else {
                let m = self.mapped_segment(*base)?;
                epoch::headers(&m.log).for_each(&mut note);
            }
        }
        Ok(cache)
    }

    /// Removes every record at and after `offset`, and returns the new end offset.
    ///
    /// Whole batches: an `offset` inside a batch cuts from that batch's start, so the new end
    /// may be below `offset`. A batch is the unit of the CRC and of replication (a replica
    /// holds its leader's batches byte for byte); cutting inside one would mean re-encoding
    /// it into a batch the leader never wrote. The replica then fetches from the new end.
    ///
    /// Later segments and their indexes are deleted and the segment holding the new end is
    /// cut and becomes the active one; crash-safe through an intent file (see `truncate`): a
    /// crash at any step reopens to the old end or the new one. Durable when it returns,
    /// whatever the fsync policy. An `offset` at or past the end changes nothing; one below
    /// the log start is [`LogError::OffsetOutOfRange`]. The epoch cache follows; anything
    /// the caller derived from the records (the broker's producer table) it must rebuild.
    /// Waiters on the durability of cut offsets are not woken: truncate a log that takes no
    /// produce (a replica). If it fails half-way the log is poisoned, reads included, and
    /// reopening it finishes the truncation.
    pub fn truncate_to(&mut self, offset: u64) -> Result<u64, LogError> {
        self.check_writable()?;
        let (start, end) = (self.start_offset(), self.end_offset());
        if offset >= end {
            return Ok(end);
        }
        if offset < start {
            return Err(self.out_of_range(offset));
        }
        let cut = self.batch_start(offset)?;
        let keep = if cut >= self.active.base {
            self.active.base
        } else {
            match self.sealed.range(..=cut).next_back() {
                Some((&base, _)) => base,
                None => return Err(self.out_of_range(cut)),
            }
        };
        truncate::prepare_intent(&self.dir, cut, self.ops.as_ref())?;
        if let Err(e) = self.truncate_files(cut, keep) {
            self.broken = true;
            self.durability.poison();
            tracing::error!(dir = %self.dir.display(), cut, error = %e,
                "truncation failed; the log refuses reads and appends until reopened");
            return Err(e);
        }
        let new_end = self.end_offset();
        if let Some(cache) = self.cache_if_built() {
            cache.truncate(new_end);
        }
        tracing::info!(dir = %self.dir.display(), from = end, to = new_end, "log truncated");
        Ok(new_end)
    }

    /// Empties the log and starts it again, empty, at `start`: what a replica does when its
    /// whole log lies below its leader's log start. The leader's retention deleted the
    /// records that would follow this log's end, so nothing the replica could fetch joins on
    /// (Kafka's "truncate fully and start at"). `start` below the end is
    /// [`LogError::OffsetOutOfRange`]: records are only ever cut from the end
    /// ([`truncate_to`](Self::truncate_to)). An empty log already starting at `start` is left
    /// as it is.
    ///
    /// Every segment is deleted, newest first and each log before its index (as truncation
    /// deletes), the deletions are made durable, then an empty segment is created at `start`
    /// and the directory synced. No intent file is needed: a crash at any step reopens to a
    /// prefix of the old log, to an empty log at 0, or to the empty log at `start` — each one
    /// a log the replica finds below its leader's start again and resets again. The epoch
    /// cache empties; anything derived from the records (the broker's producer table) the
    /// caller must rebuild. If it fails half-way the log is poisoned, reads included, until
    /// it is reopened.
    pub fn reset_to(&mut self, start: u64) -> Result<(), LogError> {
        self.check_writable()?;
        let end = self.end_offset();
        if start < end {
            return Err(self.out_of_range(start));
        }
        if self.start_offset() == start {
            return Ok(());
        }
        if let Err(e) = self.reset_files(start) {
            self.broken = true;
            self.durability.poison();
            tracing::error!(dir = %self.dir.display(), start, error = %e,
                "reset failed; the log refuses reads and appends until reopened");
            return Err(e);
        }
        self.leader_epoch = None;
        *self
            .epochs
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = None;
        tracing::warn!(dir = %self.dir.display(), old_end = end, start,
            "log emptied to start at the leader's log start");
        Ok(())
    }

    /// The file steps of `reset_to`, then the new segment made the active one.
    fn reset_files(&mut self, start: u64) -> Result<(), LogError> {
        self.mapped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let bases: Vec<u64> = self
            .sealed
            .keys()
            .copied()
            .chain([self.active.base])
            .collect();
        for &base in bases.iter().rev() {
            self.delete_segment(base)?;
        }
        segment::sync_dir(&self.dir)?;
        let first_step = self
            .config
            .initial_segment_bytes
            .min(self.config.segment_bytes);
        let active = ActiveSegment::create(&self.dir, start, self.sizing(first_step), &self.ops)?;
        self.durability.set_current(active.target.clone());
        self.durability.truncated(start);
        self.active = active;
        Ok(())
    }

    /// The base offset of the batch holding `offset` (which the caller checked is below the
    /// end).
    fn batch_start(&self, offset: u64) -> Result<u64, LogError> {
        let mut found = None;
        self.walk_batches(offset, &mut |b, _, _| {
            found = Some(b.header.base_offset);
            Ok(false)
        })?;
        found.ok_or_else(|| self.out_of_range(offset))
    }

    /// The file steps of `truncate_to` once its intent is prepared, then the cut segment
    /// reopened as the active one.
    fn truncate_files(&mut self, cut: u64, keep: u64) -> Result<(), LogError> {
        truncate::commit_intent(&self.dir)?;
        // No map of a file about to be cut or deleted may be read from again.
        self.mapped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(b, _)| *b < keep);
        drop(self.sealed.split_off(&keep));
        truncate::apply(&self.dir, cut, self.ops.as_ref())?;
        truncate::clear_intent(&self.dir)?;
        let first_step = self
            .config
            .initial_segment_bytes
            .min(self.config.segment_bytes);
        let size = self.sizing(first_step);
        let mut active = ActiveSegment::open_at(&self.dir, keep, size, &self.ops, false)?;
        // Recovery of the cut segment: its tail scan is short (from its last index entry
        // before the cut), and it syncs the segment once.
        recovery::recover_active(&mut active, &mut RecoveryReport::default())?;
        self.durability.set_current(active.target.clone());
        self.durability.truncated(active.next_offset);
        self.active = active;
        Ok(())
    }

    fn check_readable(&self) -> Result<(), LogError> {
        if self.broken {
            return Err(LogError::Poisoned);
        }
        Ok(())
    }

    /// Batch headers from the batch containing `from_offset` on, oldest first.
    pub fn for_each_batch_meta(
        &self,
        from_offset: u64,
        f: &mut dyn FnMut(&BatchMeta),
    ) -> Result<(), LogError> {
        self.walk_batches(from_offset, &mut |b, _, _| {
            f(&meta_of(&b.header));
            Ok(true)
        })
    }

    fn check_range(&self, offset: u64) -> Result<(), LogError> {
        let (start, end) = (self.start_offset(), self.end_offset());
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        Ok(())
    }

    /// Calls `visit(batch, segment path, position)` for every batch ending after `from`, in
    /// offset order across segments, until it answers `false`. Every batch's CRC is checked.
    fn walk_batches(
        &self,
        from: u64,
        visit: &mut dyn FnMut(&Batch<'_>, &Path, usize) -> Result<bool, LogError>,
    ) -> Result<(), LogError> {
        self.walk_batches_checked(from, true, visit)
    }

    /// [`walk_batches`](Self::walk_batches), the CRCs checked only when `verify` (the
    /// framing always).
    fn walk_batches_checked(
        &self,
        from: u64,
        verify: bool,
        visit: &mut dyn FnMut(&Batch<'_>, &Path, usize) -> Result<bool, LogError>,
    ) -> Result<(), LogError> {
        self.check_readable()?;
        let mut cur = from.max(self.start_offset());
        while cur < self.end_offset() {
            let more = self.with_view(cur, &mut |view, seg_end| {
                let mut pos = view.position_of(cur, verify)?;
                while let Some(b) = view.batch(pos, verify)? {
                    if !visit(&b, view.path, pos)? {
                        return Ok(false);
                    }
                    cur = b.header.end_offset();
                    pos += b.bytes.len();
                }
                if cur < seg_end {
                    return Err(corrupt(
                        view.path,
                        pos,
                        "segment data ends before its last offset",
                    ));
                }
                Ok(true)
            })?;
            if !more {
                break;
            }
        }
        Ok(())
    }

    /// Runs `f` on a view of the segment holding `offset`, with that segment's end offset.
    fn with_view(
        &self,
        offset: u64,
        f: &mut dyn FnMut(SegmentView<'_>, u64) -> Result<bool, LogError>,
    ) -> Result<bool, LogError> {
        let a = &self.active;
        if offset >= a.base {
            let view = SegmentView {
                base: a.base,
                path: &a.path,
                bytes: a.written(),
                index: a.index.bytes(),
                index_count: a.index.count(),
            };
            return f(view, a.next_offset);
        }
        let Some((&base, seg)) = self.sealed.range(..=offset).next_back() else {
            return Err(self.out_of_range(offset));
        };
        let m = self.mapped_segment(base)?;
        let view = SegmentView {
            base,
            path: &m.path,
            bytes: &m.log,
            index: &m.index,
            index_count: m.index_count,
        };
        f(view, seg.end)
    }

    fn out_of_range(&self, offset: u64) -> LogError {
        LogError::OffsetOutOfRange {
            requested: offset,
            start: self.start_offset(),
            end: self.end_offset(),
        }
    }

    /// The mapping of sealed segment `base`, from the LRU or freshly mapped.
    fn mapped_segment(&self, base: u64) -> Result<Arc<MappedSegment>, LogError> {
        let mut lru = self.mapped.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = lru.iter().position(|(b, _)| *b == base) {
            let entry = lru.remove(i);
            let m = entry.1.clone();
            lru.push(entry);
            return Ok(m);
        }
        let m = Arc::new(MappedSegment::map(
            &self.dir,
            base,
            self.config.index_interval_bytes,
        )?);
        lru.push((base, m.clone()));
        let max = self.config.max_mapped_segments.max(1);
        while lru.len() > max {
            // Readers holding an Arc keep their mapping alive until they finish.
            lru.remove(0);
        }
        Ok(m)
    }

    /// Sealed segments currently mapped (bounded by `max_mapped_segments`).
    pub fn mapped_segments(&self) -> usize {
        self.mapped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn start_offset(&self) -> u64 {
        self.sealed
            .keys()
            .next()
            .copied()
            .unwrap_or(self.active.base)
    }

    /// The next offset to be assigned.
    pub fn end_offset(&self) -> u64 {
        self.active.next_offset
    }

    /// Deletes whole segments past retention (never the active one); returns how many.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let mut removed = 0;
        while let Some((&base, _)) = self.sealed.iter().next() {
            let total = self.size_bytes();
            let config = self.config.clone();
            let newest = || self.newest_timestamp(base);
            if !retention::should_delete(&config, total, newest, now_ms) {
                break;
            }
            self.delete_segment(base)?;
            removed += 1;
        }
        if removed > 0 {
            let (start, end) = (self.start_offset(), self.end_offset());
            if let Some(cache) = self.cache_if_built() {
                cache.trim_start(start, end);
            }
            segment::sync_dir(&self.dir)?;
            tracing::info!(dir = %self.dir.display(), removed, start = self.start_offset(),
                "retention deleted old segments");
        }
        Ok(removed)
    }

    /// The newest record timestamp of sealed segment `base` (cached after the first walk).
    fn newest_timestamp(&mut self, base: u64) -> Option<i64> {
        if let Some(ts) = self.sealed.get(&base).and_then(|s| s.max_timestamp_ms) {
            return Some(ts);
        }
        let ts = match self.mapped_segment(base) {
            Ok(m) => retention::newest_timestamp(&m.log),
            Err(e) => {
                tracing::warn!(base, error = %e, "cannot read segment for retention");
                None
            }
        };
        if let Some(s) = self.sealed.get_mut(&base) {
            s.max_timestamp_ms = ts;
        }
        ts
    }

    fn delete_segment(&mut self, base: u64) -> Result<(), LogError> {
        self.sealed.remove(&base);
        self.mapped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(b, _)| *b != base);
        // The log file first: an index without its log is ignored (and removed) at open.
        for path in [
            segment::log_path(&self.dir, base),
            segment::index_path(&self.dir, base),
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(format!("delete {}", path.display()), e)),
            }
        }
        Ok(())
    }

    /// Bytes of data: sealed segment sizes plus the active segment's written bytes.
    pub fn size_bytes(&self) -> u64 {
        self.sealed.values().map(|s| s.size).sum::<u64>() + self.active.len as u64
    }

    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        // Leaving the flusher runs a last sync, so a clean close loses nothing.
        self.flusher.take();
    }
}

fn check_size(len: usize) -> Result<(), LogError> {
    if len > MAX_BATCH_BYTES {
        return Err(LogError::RecordTooLarge {
            size: len,
            max: MAX_BATCH_BYTES,
        });
    }
    Ok(())
}

fn meta_of(h: &BatchHeader) -> BatchMeta {
    BatchMeta {
        base_offset: h.base_offset,
        record_count: h.record_count,
        max_timestamp_ms: h.max_timestamp_ms,
        producer: h.producer(),
        leader_epoch: h.leader_epoch,
    }
}

fn corrupt(path: &Path, pos: usize, reason: &str) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        position: pos as u64,
        reason: reason.to_string(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
