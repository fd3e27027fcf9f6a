//! Durability: making written bytes of the active segment durable, outside the log's lock.
//!
//! Appends write bytes into the active segment (its page cache) and then publish how far
//! they wrote ([`SyncTarget::publish`]). A sync (from [`PendingSync`], the group commit, the
//! interval flusher or `PartitionLog::sync`) makes `[0, written_pos)` durable with one fdatasync
//! of the file when anything past `durable_pos` is new (see [`SyncTarget::sync_to`]).
//! Nothing here touches the bytes themselves, so a sync can run on another thread while
//! appends continue (group commit).
//!
//! A failed sync poisons the log: what the kernel dropped cannot be known, so the log refuses
//! appends until it is reopened (and recovery re-checks the tail) instead of pretending.
//! Sealed segments are synced when they are sealed (`segment`), so only the active segment
//! ever has dirty bytes.
//!
//! Truncation (`PartitionLog::truncate_to`) lowers the durable offset to the new end and
//! starts a new generation: a sync captured before it (of bytes and offsets that are gone)
//! completes without raising the durable offset, so offsets re-used after a truncation are
//! never taken as durable before their own sync.
//!
//! Every advance of the durable offset, whoever synced, is published on one watch channel
//! (group-commit waiters in `commit` park on it) and to the log's optional listener (the
//! broker uses it to make data visible once it is durable). Waiting for durability, and who
//! runs the next sync, is `commit`'s business.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use memmap2::MmapRaw;
use tokio::sync::watch;

use crate::io::FileOps;
use crate::LogError;

/// The active segment's file and map as seen by syncers, with its write and sync marks.
#[derive(Debug)]
pub(crate) struct SyncTarget {
    pub path: PathBuf,
    pub file: File,
    pub map: MmapRaw,
    pub ops: Arc<dyn FileOps>,
    /// Bytes written into the segment (published after the write).
    written_pos: AtomicUsize,
    /// The offset after the last record written.
    written_end: AtomicU64,
    /// Bytes known durable.
    durable_pos: AtomicUsize,
}

impl SyncTarget {
    pub(crate) fn new(path: PathBuf, file: File, map: MmapRaw, ops: Arc<dyn FileOps>) -> Self {
        SyncTarget {
            path,
            file,
            map,
            ops,
            written_pos: AtomicUsize::new(0),
            written_end: AtomicU64::new(0),
            durable_pos: AtomicUsize::new(0),
        }
    }

    /// Marks `[0, pos)` as written, holding records up to offset `end`.
    pub(crate) fn publish(&self, pos: usize, end: u64) {
        // Position first: a syncer reading `end` and then `pos` never syncs too little.
        self.written_pos.store(pos, Ordering::Release);
        self.written_end.store(end, Ordering::Release);
    }

    /// Marks `[0, pos)` as already durable (after recovery or sealing synced it).
    pub(crate) fn mark_durable(&self, pos: usize) {
        self.durable_pos.fetch_max(pos, Ordering::AcqRel);
    }

    /// Bytes known durable.
    pub(crate) fn durable_pos(&self) -> usize {
        self.durable_pos.load(Ordering::Acquire)
    }

    /// The current `(pos, end)` written marks.
    pub(crate) fn written(&self) -> (usize, u64) {
        let end = self.written_end.load(Ordering::Acquire);
        let pos = self.written_pos.load(Ordering::Acquire);
        (pos, end)
    }

    /// Makes `[0, pos)` durable with one fdatasync.
    ///
    /// Why no msync: appends reach the page cache through `pwrite`, and even bytes written
    /// through the shared map (recovery zeroing a cut tail) are dirty page-cache pages that
    /// fdatasync writes on Linux. msync(MS_SYNC) would flush the device a second time per
    /// sync (measured 1.5-2x slower) and MS_ASYNC is a no-op on Linux.
    pub(crate) fn sync_to(&self, pos: usize) -> std::io::Result<()> {
        let from = self.durable_pos.load(Ordering::Acquire);
        if pos <= from {
            return Ok(());
        }
        self.ops.sync_data(&self.file)?;
        self.durable_pos.fetch_max(pos, Ordering::AcqRel);
        Ok(())
    }
}

/// Captures the current target and its written marks. The generation first, then the
/// target: a truncation switches the target before it bumps the generation, so a capture
/// that sees the new generation has the new target.
fn capture_now(durability: &Durability) -> Captured {
    let generation = durability.generation();
    let target = durability.current();
    let (pos, end) = target.written();
    Captured {
        target,
        pos,
        end,
        generation,
    }
}

impl Captured {
    fn sync_with(self, durability: &Durability) -> Result<u64, LogError> {
        durability.sync(&self.target, self.pos, self.end, self.generation)
    }
}

/// Called with the new durable offset each time it advances (see [`crate::PartitionLog::on_durable`]).
pub type DurableListener = Box<dyn Fn(u64) + Send + Sync>;

/// State shared by the log, its pending syncs, its group commit and its flusher.
pub(crate) struct Durability {
    /// Every offset below this is durable; group-commit waiters subscribe to it.
    durable: watch::Sender<u64>,
    poisoned: AtomicBool,
    /// Bumped by every truncation, under the `durable` channel's lock; a sync marks its end
    /// durable only in the generation it was captured in.
    generation: AtomicU64,
    /// Set while a group-commit sync task runs (at most one per log; see `commit`).
    pub(crate) sync_running: AtomicBool,
    /// The active segment's target (swapped at roll).
    current: Mutex<Arc<SyncTarget>>,
    listener: OnceLock<DurableListener>,
}

impl std::fmt::Debug for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durability")
            .field("durable", &*self.durable.borrow())
            .field("poisoned", &self.is_poisoned())
            .finish_non_exhaustive()
    }
}

impl Durability {
    pub(crate) fn new(target: Arc<SyncTarget>, durable_offset: u64) -> Self {
        Durability {
            durable: watch::Sender::new(durable_offset),
            poisoned: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            sync_running: AtomicBool::new(false),
            current: Mutex::new(target),
            listener: OnceLock::new(),
        }
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn durable_offset(&self) -> u64 {
        *self.durable.borrow()
    }

    /// A receiver of the durable offset (woken on every advance and on poisoning).
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// How many group-commit waiters are parked (only waiters subscribe).
    pub(crate) fn waiters(&self) -> usize {
        self.durable.receiver_count()
    }

    /// Sets the listener told of every durable advance; only the first call counts.
    pub(crate) fn set_listener(&self, listener: DurableListener) {
        if self.listener.set(listener).is_ok() {
            self.notify(self.durable_offset());
        }
    }

    /// Publishes that everything below `end` is durable (the caller holds the log, so no
    /// truncation runs meanwhile).
    pub(crate) fn mark_durable(&self, end: u64) {
        self.mark_durable_in(end, self.generation());
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Publishes that everything below `end` is durable, unless a truncation started a new
    /// generation since `generation` was captured (checked under the channel's lock, which
    /// `truncated` holds while it bumps the generation). Returns the durable offset after.
    fn mark_durable_in(&self, end: u64, generation: u64) -> u64 {
        let mut now = end;
        let advanced = self.durable.send_if_modified(|d| {
            if self.generation() != generation {
                now = *d;
                false
            } else if end > *d {
                *d = end;
                true
            } else {
                false
            }
        });
        if advanced {
            self.notify(end);
        }
        now
    }

    fn notify(&self, durable: u64) {
        if let Some(listener) = self.listener.get() {
            listener(durable);
        }
    }

    /// The log was truncated to `end` and everything below it is durable: the durable offset
    /// goes down to `end` and syncs captured before now no longer count. The caller switched
    /// to the new target first (`set_current`), so a sync that sees the new generation also
    /// sees the new target. The listener is not told (it hears of advances only).
    pub(crate) fn truncated(&self, end: u64) {
        self.durable.send_modify(|d| {
            self.generation.fetch_add(1, Ordering::AcqRel);
            *d = end;
        });
    }

    /// Refuses appends from now on (a sync whose outcome is unknown failed), and wakes the
    /// waiters so they learn it.
    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
        self.durable.send_modify(|_| {});
    }

    /// The offset after the last record written (durable or not).
    pub(crate) fn written_end(&self) -> u64 {
        self.current().written().1
    }

    pub(crate) fn set_current(&self, target: Arc<SyncTarget>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = target;
    }

    fn current(&self) -> Arc<SyncTarget> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Syncs `target` up to `(pos, end)`, captured in `generation`; poisons the log on
    /// failure.
    pub(crate) fn sync(
        &self,
        target: &SyncTarget,
        pos: usize,
        end: u64,
        generation: u64,
    ) -> Result<u64, LogError> {
        if self.is_poisoned() {
            return Err(LogError::Poisoned);
        }
        match target.sync_to(pos) {
            // After a truncation, what the capture covered is gone: report what is durable.
            Ok(()) => Ok(self.mark_durable_in(end, generation)),
            Err(e) => {
                self.poison();
                tracing::error!(path = %target.path.display(), error = %e,
                    "sync failed; the partition log refuses appends until reopened");
                Err(LogError::io(format!("sync {}", target.path.display()), e))
            }
        }
    }

    /// Whether something written is not yet known durable.
    pub(crate) fn has_unsynced(&self) -> bool {
        self.written_end() > self.durable_offset()
    }

    /// Syncs whatever the active segment has written so far.
    pub(crate) fn sync_current(&self) -> Result<u64, LogError> {
        capture_now(self).sync_with(self)
    }
}

/// What is written but not yet durable, captured cheaply under the caller's lock.
/// `Send + 'static`: [`PendingSync::sync`] runs without the log's lock (group commit).
#[derive(Debug)]
pub struct PendingSync {
    target: Arc<SyncTarget>,
    durability: Arc<Durability>,
    pos: usize,
    end: u64,
    generation: u64,
}

/// What a sync covers, captured without holding the log (the flusher's syncs).
struct Captured {
    target: Arc<SyncTarget>,
    pos: usize,
    end: u64,
    generation: u64,
}

impl PendingSync {
    pub(crate) fn capture(durability: &Arc<Durability>) -> PendingSync {
        let Captured {
            target,
            pos,
            end,
            generation,
        } = capture_now(durability);
        PendingSync {
            target,
            durability: durability.clone(),
            pos,
            end,
            generation,
        }
    }

    /// Makes everything captured durable (fdatasync of that segment) and returns the offset
    /// up to which everything is now durable: the captured end, or, when the log was
    /// truncated since the capture, its durable offset (what was captured is gone).
    pub fn sync(self) -> Result<u64, LogError> {
        self.durability
            .sync(&self.target, self.pos, self.end, self.generation)
    }

    /// The offset up to which everything will be durable once `sync` succeeds.
    pub fn durable_through(&self) -> u64 {
        self.end
    }
}
