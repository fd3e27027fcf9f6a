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
    let _parked = Parked::new();
    tokio::select! {
        changed = signal.changed() => changed.is_ok(),
        _ = tokio::time::sleep_until(deadline.into()) => false,
        _ = shutdown.changed() => false,
    }
}

/// Counts a parked poll in `broker_long_polls_parked` for as long as it lives (also when the
/// client hangs up and the request future is dropped).
struct Parked;

impl Parked {
    fn new() -> Parked {
        metrics::gauge!("broker_long_polls_parked").increment(1.0);
        Parked
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        metrics::gauge!("broker_long_polls_parked").decrement(1.0);
    }
}
