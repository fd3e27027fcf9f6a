//! Long-poll waiting: a fetch with nothing to return parks on the `watch` of the visible log
//! end of its partition (of each of its partitions, for a group member) until data arrives,
//! its `wait_ms` passes, or shutdown begins — parked polls then answer empty at once.
//! A `watch` cannot lose a wake-up: the caller marks the value seen before it reads, so a
//! produce landing between the read and the wait still wakes it.

use std::future::Future;
use std::task::Poll;
use std::time::Instant;

use tokio::sync::watch;

/// Waits for a change of `signal`. `true`: read again; `false`: answer with what you have.
pub async fn wait<T>(
    signal: &mut watch::Receiver<T>,
    deadline: Instant,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    wait_any(std::slice::from_mut(signal), deadline, shutdown).await
}

/// Waits for a change of any of `signals` (none: only the deadline or shutdown end it).
pub async fn wait_any<T>(
    signals: &mut [watch::Receiver<T>],
    deadline: Instant,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    if *shutdown.borrow() || Instant::now() >= deadline {
        return false;
    }
    let _parked = Parked::new();
    let any_changed = async {
        if signals.is_empty() {
            return std::future::pending::<bool>().await;
        }
        let mut changes: Vec<_> = signals.iter_mut().map(|s| Box::pin(s.changed())).collect();
        std::future::poll_fn(|cx| {
            for change in &mut changes {
                if let Poll::Ready(result) = change.as_mut().poll(cx) {
                    return Poll::Ready(result.is_ok());
                }
            }
            Poll::Pending
        })
        .await
    };
    tokio::select! {
        changed = any_changed => changed,
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
