//! Group commit: async waiting until appended data is durable, with one sync task per log
//! shared by every waiter.
//!
//! [`Durable`] is a cheap handle on a log's durability state, taken under the caller's lock
//! and awaited without it. [`Durable::settle`] keeps the log's [`FsyncPolicy`] promise: with
//! `Always` it waits until the offset is synced, otherwise there is nothing to wait for (the
//! interval flusher in `sync`, or nobody, makes data durable later).
//!
//! Whoever needs data durable asks for a sync: if one is running it waits for it, otherwise
//! it starts one. The sync task is detached (a waiter that goes away cannot cancel a sync
//! others wait on) and runs the fdatasync on tokio's blocking pool. It goes on with the next
//! sync at once while waiters wait on data appended during the last one, instead of handing
//! the lead to a woken waiter (wake-up, spawn, blocking-pool hop: scheduling delays that a
//! busy machine stretches into milliseconds of latency). A failed sync poisons the log
//! (`sync`), and every waiter gets [`LogError::Poisoned`].
//!
//! Needs a tokio runtime for [`Durable::settle`], [`Durable::wait_synced`] and
//! [`Durable::request_sync`]; the blocking API of the log (`append` with `Always`,
//! `PartitionLog::sync`) does not.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::sync::{Durability, PendingSync};
use crate::{FsyncPolicy, LogError};

/// A handle on one log's durability: its durable offset, failed-sync state and group commit.
/// Cloning it is cheap; it stays valid after the log is dropped (its syncs then cover what
/// was written before).
#[derive(Clone, Debug)]
pub struct Durable {
    state: Arc<Durability>,
    always: bool,
}

impl Durable {
    pub(crate) fn new(state: Arc<Durability>, policy: FsyncPolicy) -> Self {
        Durable {
            state,
            always: policy == FsyncPolicy::Always,
        }
    }

    /// Waits until everything below `end` is as durable as the log's policy promises: with
    /// `Always` synced (group commit), otherwise nothing to wait for.
    pub async fn settle(&self, end: u64) -> Result<(), LogError> {
        if self.always {
            self.wait_synced(end).await
        } else {
            Ok(())
        }
    }

    /// Waits until everything below `end` is synced, starting a sync when none runs.
    pub async fn wait_synced(&self, end: u64) -> Result<(), LogError> {
        let mut rx = self.state.subscribe();
        loop {
            let durable = *rx.borrow_and_update();
            if self.state.is_poisoned() {
                return Err(LogError::Poisoned);
            }
            if durable >= end {
                return Ok(());
            }
            start(&self.state);
            if rx.changed().await.is_err() {
                return Err(LogError::Poisoned);
            }
        }
    }

    /// With `Always`, starts a sync now unless everything below `end` is durable already,
    /// without waiting (so the partitions of one produce sync in parallel).
    pub fn request_sync(&self, end: u64) {
        if self.always && self.state.durable_offset() < end {
            start(&self.state);
        }
    }

    /// The offset below which everything is known durable.
    pub fn durable_offset(&self) -> u64 {
        self.state.durable_offset()
    }

    /// Whether a sync failed (the log refuses appends until reopened).
    pub fn failed(&self) -> bool {
        self.state.is_poisoned()
    }
}

/// Starts the sync task unless one runs.
fn start(state: &Arc<Durability>) {
    if state
        .sync_running
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    let state = Arc::clone(state);
    tokio::spawn(async move {
        loop {
            let pending = PendingSync::capture(&state);
            // `sync` publishes the new durable offset (waking waiters) or poisons the log.
            let synced = tokio::task::spawn_blocking(move || pending.sync()).await;
            let durable = match synced {
                Ok(Ok(durable)) => durable,
                // `sync` poisoned the log and woke the waiters.
                Ok(Err(_)) => break state.sync_running.store(false, Ordering::Release),
                Err(join) => {
                    tracing::error!(error = %join, "sync task failed");
                    state.sync_running.store(false, Ordering::Release);
                    break state.poison();
                }
            };
            // Anyone waiting (only waiters subscribe) on data past this sync? Then go on.
            if state.waiters() > 0 && state.written_end() > durable {
                continue;
            }
            state.sync_running.store(false, Ordering::Release);
            // A waiter that arrived between that check and clearing the flag found the flag
            // set and parked: make sure its data gets synced.
            if state.waiters() > 0 && state.written_end() > state.durable_offset() {
                start(&state);
            }
            break;
        }
    });
}
