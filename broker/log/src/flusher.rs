//! The `FsyncPolicy::Interval` flusher: one thread per distinct interval, shared by every log
//! of the process opened with that interval, that syncs each log with unsynced data at least
//! that often.
//!
//! Shared rather than one thread per log: a broker holds up to thousands of partition logs,
//! and a thread each (waking every interval even when idle) would cost more than the syncs.
//! A log registers at open and unregisters when dropped, with one last sync so a clean close
//! loses nothing. The syncs of one tick run one after another on the flusher's thread; a
//! failed one poisons its log only (see `sync`).

use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use crate::sync::Durability;
use crate::LogError;

/// The logs of one interval, and the thread that syncs them.
struct Shared {
    /// Dead once the log's [`Registration`] is dropped (not when the last handle on its
    /// durability state is: a `Durable` may outlive its log).
    logs: Mutex<Vec<Weak<Entry>>>,
    /// Signalled when the first log registers (the thread parks while there is none).
    wake: Condvar,
}

/// One registered log.
#[derive(Debug)]
struct Entry {
    durability: Arc<Durability>,
}

/// The shared flushers of the process, one per interval.
type Flushers = Mutex<Vec<(Duration, Arc<Shared>)>>;

static FLUSHERS: OnceLock<Flushers> = OnceLock::new();

/// A log's place in its interval's flusher; dropping it syncs the log one last time.
#[derive(Debug)]
pub(crate) struct Registration {
    entry: Arc<Entry>,
}

/// Registers `durability` with the flusher of `every`, starting that flusher's thread first
/// when it is the first log of that interval.
pub(crate) fn register(
    durability: &Arc<Durability>,
    every: Duration,
) -> Result<Registration, LogError> {
    let shared = shared_for(every)?;
    let mut logs = shared.logs.lock().unwrap_or_else(PoisonError::into_inner);
    // Dropped logs leave dead entries; sweep them here too so the list stays bounded.
    logs.retain(|log| log.strong_count() > 0);
    let entry = Arc::new(Entry {
        durability: Arc::clone(durability),
    });
    logs.push(Arc::downgrade(&entry));
    shared.wake.notify_one();
    Ok(Registration { entry })
}

fn shared_for(every: Duration) -> Result<Arc<Shared>, LogError> {
    let all = FLUSHERS.get_or_init(|| Mutex::new(Vec::new()));
    let mut all = all.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, shared)) = all.iter().find(|(d, _)| *d == every) {
        return Ok(Arc::clone(shared));
    }
    let shared = Arc::new(Shared {
        logs: Mutex::new(Vec::new()),
        wake: Condvar::new(),
    });
    let for_thread = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("broker-log-flusher".into())
        .spawn(move || flush_loop(&for_thread, every))
        .map_err(|e| LogError::io("spawn flusher thread", e))?;
    all.push((every, Arc::clone(&shared)));
    Ok(shared)
}

fn flush_loop(shared: &Shared, every: Duration) {
    loop {
        let due: Vec<Arc<Entry>> = {
            let mut logs = shared.logs.lock().unwrap_or_else(PoisonError::into_inner);
            while logs.is_empty() {
                logs = shared
                    .wake
                    .wait(logs)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            logs.retain(|log| log.strong_count() > 0);
            logs.iter().filter_map(Weak::upgrade).collect()
        };
        // Outside the list's lock: opening or dropping a log never waits on an fsync here.
        for entry in due {
            let log = &entry.durability;
            if !log.is_poisoned() && log.has_unsynced() {
                // A failure is logged and poisons that log inside `sync`; its appends report it.
                let _ = log.sync_current();
            }
        }
        std::thread::sleep(every);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let log = &self.entry.durability;
        if !log.is_poisoned() && log.has_unsynced() {
            let _ = log.sync_current();
        }
    }
}
