//! Durability: making written bytes of the active segment durable, outside the log's lock.
//!
//! Appends write bytes into the active segment (its page cache) and then publish how far
//! they wrote ([`SyncTarget::publish`]). A sync (from [`PendingSync`], the interval
//! [`Flusher`] or `PartitionLog::sync`) makes `[0, written_pos)` durable with one fdatasync
//! of the file when anything past `durable_pos` is new (see [`SyncTarget::sync_to`]).
//! Nothing here touches the bytes themselves, so a sync can run on another thread while
//! appends continue (group commit).
//!
//! A failed sync poisons the log: what the kernel dropped cannot be known, so the log refuses
//! appends until it is reopened (and recovery re-checks the tail) instead of pretending.
//! Sealed segments are synced when they are sealed (`segment`), so only the active segment
//! ever has dirty bytes.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use memmap2::MmapRaw;

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

/// State shared by the log, its pending syncs and its flusher.
#[derive(Debug)]
pub(crate) struct Durability {
    /// Every offset below this is durable.
    durable_offset: AtomicU64,
    poisoned: AtomicBool,
    /// The active segment's target (swapped at roll).
    current: Mutex<Arc<SyncTarget>>,
}

impl Durability {
    pub(crate) fn new(target: Arc<SyncTarget>, durable_offset: u64) -> Self {
        Durability {
            durable_offset: AtomicU64::new(durable_offset),
            poisoned: AtomicBool::new(false),
            current: Mutex::new(target),
        }
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn durable_offset(&self) -> u64 {
        self.durable_offset.load(Ordering::Acquire)
    }

    pub(crate) fn mark_durable(&self, end: u64) {
        self.durable_offset.fetch_max(end, Ordering::AcqRel);
    }

    /// Refuses appends from now on (a sync whose outcome is unknown failed).
    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
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

    /// Syncs `target` up to `(pos, end)`; poisons the log on failure.
    pub(crate) fn sync(&self, target: &SyncTarget, pos: usize, end: u64) -> Result<u64, LogError> {
        if self.is_poisoned() {
            return Err(LogError::Poisoned);
        }
        match target.sync_to(pos) {
            Ok(()) => {
                self.mark_durable(end);
                Ok(end)
            }
            Err(e) => {
                self.poisoned.store(true, Ordering::Release);
                tracing::error!(path = %target.path.display(), error = %e,
                    "sync failed; the partition log refuses appends until reopened");
                Err(LogError::io(format!("sync {}", target.path.display()), e))
            }
        }
    }

    /// Syncs whatever the active segment has written so far.
    pub(crate) fn sync_current(&self) -> Result<u64, LogError> {
        let target = self.current();
        let (pos, end) = target.written();
        self.sync(&target, pos, end)
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
}

impl PendingSync {
    pub(crate) fn capture(durability: &Arc<Durability>) -> PendingSync {
        let target = durability.current();
        let (pos, end) = target.written();
        PendingSync {
            target,
            durability: durability.clone(),
            pos,
            end,
        }
    }

    /// Makes everything captured durable (fdatasync of that segment) and returns
    /// the offset up to which everything is now durable.
    pub fn sync(self) -> Result<u64, LogError> {
        self.durability.sync(&self.target, self.pos, self.end)
    }

    /// The offset up to which everything will be durable once `sync` succeeds.
    pub fn durable_through(&self) -> u64 {
        self.end
    }
}

/// The `FsyncPolicy::Interval` flusher: a thread owned by one log that syncs the active
/// segment at least every interval. Dropping it stops the thread after one last sync.
#[derive(Debug)]
pub(crate) struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl Flusher {
    pub(crate) fn spawn(durability: Arc<Durability>, every: Duration) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name("broker-log-flusher".into())
            .spawn(move || flush_loop(&durability, &stop2, every))?;
        Ok(Flusher {
            stop,
            handle: Some(handle),
        })
    }
}

fn flush_loop(durability: &Durability, stop: &(Mutex<bool>, Condvar), every: Duration) {
    let (lock, cvar) = stop;
    loop {
        let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let done = if *guard {
            true
        } else {
            let (guard, _) = cvar
                .wait_timeout(guard, every)
                .unwrap_or_else(PoisonError::into_inner);
            *guard
        };
        // The stop lock is released here, so `Drop` never waits on an fsync to signal.
        if !durability.is_poisoned() {
            // A failure is logged and poisons the log inside `sync`; appends then report it.
            let _ = durability.sync_current();
        }
        if done {
            return;
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.stop.1.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
