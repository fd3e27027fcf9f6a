//! Long-poll waiting: a fetch with nothing to return parks on a `watch` of the visible log
//! end (or of a topic's activity counter, for group fetches) until data arrives, its
//! `wait_ms` passes, or shutdown begins — parked polls then answer empty at once.
//! A `watch` cannot lose a wake-up: the caller marks the value seen before it reads, so a
//! produce landing between the read and the wait still wakes it.

use std::time::Instant;

use tokio::sync::watch;

/// Waits for a change of `signal`. `true`: read again; `false`: answer with what you have.
pub async fn wait<T>(
    signal: &mut watch::Receiver<T>,
    deadline: Instant,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    if *shutdown.borrow() || Instant::now() >= deadline {
        return false;
    }
    tokio::select! {
        changed = signal.changed() => changed.is_ok(),
        _ = tokio::time::sleep_until(deadline.into()) => false,
        _ = shutdown.changed() => false,
    }
}
