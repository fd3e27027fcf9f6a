//! The one retry mechanism of the broker's clients: capped exponential backoff with jitter, a
//! deadline, shutdown awareness, and a choice of which failures are worth another attempt.
//!
//! Used by every broker call that a repeat cannot harm ([`crate::broker`]) and by the
//! collector for what is not a broker call (migrating and writing to PostgreSQL, waiting for
//! a topic to exist), with its own error type: any error that says how a loop ends
//! ([`RetryError`]) will do. Which errors a broker call retries by default is
//! [`Error::is_retryable`]'s decision, not this module's.
//!
//! Jitter keeps a fleet of streamers and collectors from hammering a restarting broker in
//! lockstep; the cap keeps the wait after a restart short (at most `max` plus one attempt).

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use pipeline_common::shutdown::ShutdownFlag;

use crate::error::Error;

/// What a retry loop needs of an error type: the default choice of what to retry, and the
/// errors that end a loop on shutdown or at its deadline.
pub trait RetryError: std::fmt::Display + Sized {
    /// Whether another attempt may succeed, unless [`Retry::when`] says otherwise.
    fn is_retryable(&self) -> bool;
    /// The loop stopped because the process is shutting down.
    fn interrupted() -> Self;
    /// The loop gave up at its deadline after `attempts` attempts; `last` is the last failure.
    fn gave_up(attempts: u32, last: Self) -> Self;
}

impl RetryError for Error {
    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }

    fn interrupted() -> Self {
        Error::Interrupted
    }

    fn gave_up(attempts: u32, last: Self) -> Self {
        Error::GaveUp {
            attempts,
            last: Box::new(last),
        }
    }
}

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

    /// Runs `op` until it succeeds, fails for good ([`RetryError::is_retryable`] says no),
    /// the deadline passes, or `shutdown` is set. The first attempt always runs, even during
    /// shutdown, so a final flush gets its chance. [`Self::retrying`] offers more choices.
    pub fn run<T, E: RetryError>(
        &self,
        shutdown: &ShutdownFlag,
        what: &str,
        op: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        self.retrying(shutdown, what).run(op)
    }

    /// A retry loop under this policy whose options can be changed before it runs: which
    /// failures are retried ([`Retry::when`]) and how many attempts shutdown still allows
    /// ([`Retry::attempts_during_shutdown`]). `what` names the operation in the log.
    pub fn retrying<'a, E: RetryError>(
        &'a self,
        shutdown: &'a ShutdownFlag,
        what: &'a str,
    ) -> Retry<'a, E, fn(&E) -> bool> {
        Retry {
            policy: self,
            shutdown,
            what,
            retryable: E::is_retryable,
            attempts_during_shutdown: 1,
            error: PhantomData,
        }
    }
}

/// One retry loop, configured: see [`RetryPolicy::retrying`].
pub struct Retry<'a, E, P> {
    policy: &'a RetryPolicy,
    shutdown: &'a ShutdownFlag,
    what: &'a str,
    retryable: P,
    attempts_during_shutdown: u32,
    error: PhantomData<fn(&E)>,
}

impl<'a, E: RetryError, P: Fn(&E) -> bool> Retry<'a, E, P> {
    /// Retries the failures `retryable` accepts (instead of [`RetryError::is_retryable`]'s):
    /// for operations that are not broker calls (a database transaction), or whose refusal
    /// means "not yet" (joining a group whose topic does not exist yet).
    pub fn when<Q: Fn(&E) -> bool>(self, retryable: Q) -> Retry<'a, E, Q> {
        Retry {
            policy: self.policy,
            shutdown: self.shutdown,
            what: self.what,
            retryable,
            attempts_during_shutdown: self.attempts_during_shutdown,
            error: PhantomData,
        }
    }

    /// Makes up to `attempts` attempts in all (at least 1) even while shutting down, back to
    /// back once shutdown is set: for work whose loss costs more than a short delay of the
    /// exit (a batch already fetched). The default is 1.
    pub fn attempts_during_shutdown(mut self, attempts: u32) -> Self {
        self.attempts_during_shutdown = attempts.max(1);
        self
    }

    /// Runs `op` until it succeeds or fails for good (its error as it is), the policy's
    /// deadline passes ([`RetryError::gave_up`] with the last error), or shutdown ends the
    /// waiting ([`RetryError::interrupted`]). Failures are logged at attempts 1, 2, 4, 8, …
    pub fn run<T>(self, mut op: impl FnMut() -> Result<T, E>) -> Result<T, E> {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            let err = match op() {
                Ok(v) => return Ok(v),
                Err(e) if !(self.retryable)(&e) => return Err(e),
                Err(e) => e,
            };
            let pause = self.policy.pause(attempts);
            attempts += 1;
            let expired = self
                .policy
                .give_up_after
                .is_some_and(|limit| started.elapsed() + pause > limit);
            if expired {
                return Err(E::gave_up(attempts, err));
            }
            if attempts.is_power_of_two() {
                tracing::warn!(error = %err, attempt = attempts, "{} failed, retrying", self.what);
            }
            // Returns at once when shutdown is set: then only the attempts it still allows run.
            let interrupted = self.shutdown.sleep(pause);
            if interrupted && attempts >= self.attempts_during_shutdown {
                return Err(E::interrupted());
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
            unsent: true,
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
                log_bounds: None,
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

    fn quick() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
            give_up_after: None,
        }
    }

    #[test]
    fn a_predicate_retries_what_it_names_and_returns_anything_else_at_once() {
        let p = quick();
        let mut calls = 0;
        let got: Result<(), _> = p
            .retrying(&ShutdownFlag::new(), "join")
            .when(|e: &Error| e.status() == Some(404))
            .run(|| {
                calls += 1;
                Err(if calls < 3 {
                    Error::Status {
                        method: "POST",
                        url: "u".into(),
                        status: 404,
                        detail: "no such topic".into(),
                        log_bounds: None,
                    }
                } else {
                    transport()
                })
            });
        // The 404s were retried; the transport error, not named by the predicate, was not.
        assert!(matches!(got, Err(Error::Transport { .. })), "{got:?}");
        assert_eq!(calls, 3);
    }

    #[test]
    fn shutdown_during_the_retrying_stops_it_after_the_current_attempt() {
        let flag = ShutdownFlag::new();
        let mut calls = 0;
        let got: Result<(), _> = quick().run(&flag, "op", || {
            calls += 1;
            if calls == 2 {
                flag.trigger();
            }
            Err(transport())
        });
        assert!(matches!(got, Err(Error::Interrupted)));
        assert_eq!(calls, 2);
    }

    #[test]
    fn attempts_during_shutdown_still_run_and_then_stop() {
        let flag = ShutdownFlag::new();
        flag.trigger();
        let mut calls = 0;
        let got: Result<(), _> = RetryPolicy::default()
            .retrying(&flag, "write")
            .when(|_| true)
            .attempts_during_shutdown(4)
            .run(|| {
                calls += 1;
                Err(transport())
            });
        assert!(matches!(got, Err(Error::Interrupted)));
        assert_eq!(calls, 4);
        // And a success among them is a success.
        let mut calls = 0;
        let got = RetryPolicy::default()
            .retrying(&flag, "write")
            .attempts_during_shutdown(4)
            .run(|| {
                calls += 1;
                if calls < 3 {
                    Err(transport())
                } else {
                    Ok(calls)
                }
            });
        assert_eq!(got.unwrap(), 3);
    }

    #[test]
    fn the_deadline_gives_up_with_the_last_error_and_the_attempt_count() {
        let p = RetryPolicy {
            give_up_after: Some(Duration::from_millis(30)),
            ..quick()
        };
        let started = Instant::now();
        let mut calls = 0u32;
        let got: Result<(), _> = p.run(&ShutdownFlag::new(), "op", || {
            calls += 1;
            Err(transport())
        });
        match got {
            Err(Error::GaveUp { attempts, last }) => {
                assert_eq!(attempts, calls);
                assert!(attempts > 1, "only {attempts} attempts in the deadline");
                assert!(matches!(*last, Error::Transport { .. }));
            }
            other => panic!("{other:?}"),
        }
        // Never a pause past the deadline: stopped within it (plus one short pause's slack).
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
