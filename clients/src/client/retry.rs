//! Retrying while the broker is down or restarting: capped exponential backoff with jitter.
//!
//! Jitter keeps a fleet of streamers and collectors from hammering a restarting broker in
//! lockstep; the cap keeps the wait after a restart short (at most `max` plus one attempt).

use std::time::{Duration, Instant};

use pipeline_common::shutdown::ShutdownFlag;

use crate::error::Error;

/// How long to wait between attempts, and for how long to keep trying.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The first pause.
    pub initial: Duration,
    /// No pause is longer than this.
    pub max: Duration,
    /// Stop after this long (`None`: until success or shutdown).
    pub give_up_after: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(2),
            give_up_after: None,
        }
    }
}

impl RetryPolicy {
    /// A single attempt, no retry (best-effort calls such as leaving a group at shutdown).
    pub fn once() -> Self {
        RetryPolicy {
            give_up_after: Some(Duration::ZERO),
            ..RetryPolicy::default()
        }
    }

    /// The pause before attempt `attempt + 1`: `initial * 2^attempt`, capped, then scaled by a
    /// random factor in [0.5, 1) ("equal jitter": never zero, never above the cap).
    pub fn pause(&self, attempt: u32) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << attempt.min(20));
        exp.min(self.max).mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// Runs `op` until it succeeds, fails for good, the deadline passes, or `shutdown` is set.
    /// The first attempt always runs, even during shutdown, so a final flush gets its chance.
    pub fn run<T>(
        &self,
        shutdown: &ShutdownFlag,
        what: &str,
        mut op: impl FnMut() -> Result<T, Error>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let err = match op() {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => e,
            };
            let pause = self.pause(attempt);
            attempt += 1;
            let expired = self
                .give_up_after
                .is_some_and(|limit| started.elapsed() + pause > limit);
            if expired {
                return Err(Error::GaveUp {
                    attempts: attempt,
                    last: Box::new(err),
                });
            }
            if attempt.is_power_of_two() {
                tracing::warn!(error = %err, attempt, "{what} failed, retrying");
            }
            if shutdown.sleep(pause) {
                return Err(Error::Interrupted);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport() -> Error {
        Error::Transport {
            method: "GET",
            url: "http://x".into(),
            reason: "refused".into(),
        }
    }

    #[test]
    fn pauses_grow_then_stay_under_the_cap_and_never_reach_zero() {
        let p = RetryPolicy::default();
        for attempt in 0..40 {
            let d = p.pause(attempt);
            assert!(d <= p.max, "{attempt}: {d:?}");
            assert!(d >= p.initial / 2, "{attempt}: {d:?}");
        }
        assert!(p.pause(10) >= p.max / 2);
    }

    #[test]
    fn retries_transport_errors_until_success() {
        let p = RetryPolicy {
            initial: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let mut calls = 0;
        let got = p.run(&ShutdownFlag::new(), "op", || {
            calls += 1;
            if calls < 4 {
                Err(transport())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(got.unwrap(), 4);
    }

    #[test]
    fn a_refusal_is_not_retried() {
        let mut calls = 0;
        let got: Result<(), _> = RetryPolicy::default().run(&ShutdownFlag::new(), "op", || {
            calls += 1;
            Err(Error::Status {
                method: "POST",
                url: "u".into(),
                status: 409,
                detail: "stale".into(),
            })
        });
        assert_eq!(got.unwrap_err().status(), Some(409));
        assert_eq!(calls, 1);
    }

    #[test]
    fn shutdown_interrupts_the_wait_and_once_gives_up_after_one_attempt() {
        let flag = ShutdownFlag::new();
        flag.trigger();
        let got: Result<(), _> = RetryPolicy::default().run(&flag, "op", || Err(transport()));
        assert!(matches!(got, Err(Error::Interrupted)));
        let mut calls = 0;
        let got: Result<(), _> = RetryPolicy::once().run(&ShutdownFlag::new(), "op", || {
            calls += 1;
            Err(transport())
        });
        assert!(matches!(got, Err(Error::GaveUp { attempts: 1, .. })));
        assert_eq!(calls, 1);
    }
}
