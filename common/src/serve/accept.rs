//! The accept loop: admits each new connection as a full one, into the reserve, or not at all
//! (see [`super`] for the policy), and backs off when accepting fails (out of descriptors,
//! typically), logging once per interval with a count rather than once per failure.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::{connection, Shared};

/// The first pause after a failed accept; it doubles up to [`MAX_PAUSE`] while failures last.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one log line per kind of trouble in this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Most shed connections still closing before a new one waits for them.
const MAX_SHEDDING: usize = 64;
/// How long an accept waits for shed connections to close before looking again.
const SHED_WAIT: Duration = Duration::from_millis(100);

/// Accepts until `shutdown` completes.
pub async fn run<H, Fut, B>(
    listener: &TcpListener,
    shared: &Arc<Shared<H>>,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(shutdown);
    let mut failures = RateLimitedLog::new("accept failed; backing off");
    let mut refusals = RateLimitedLog::new("connection refused: full, and none is idle");
    let mut pause = FIRST_PAUSE;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                pause = FIRST_PAUSE;
                stream
            }
            Err(e) => {
                if out_of_descriptors(&e) {
                    // An idle connection's descriptor is worth more to a new client.
                    shared.registry.shed_one();
                }
                shared.registry.metrics.accept_errors.increment(1);
                failures.note(&e);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
                continue;
            }
        };
        let Some(reserved) = admit(shared).await else {
            shared.registry.metrics.refused.increment(1);
            refusals.note(&"max connections reached");
            drop(stream);
            continue;
        };
        let (conn, registered) = shared.registry.register(reserved);
        tokio::spawn(connection::run(
            stream,
            Arc::clone(shared),
            conn,
            registered,
        ));
    }
}

/// Where a new connection goes: `Some(false)` a full connection, `Some(true)` the reserve,
/// `None` nowhere. At the cap, an idle connection is shed to make room (the newcomer does not
/// wait for it to close, unless [`MAX_SHEDDING`] sheds are still under way: that bounds the
/// descriptors); when none is idle, the newcomer goes to the reserve.
async fn admit<H>(shared: &Shared<H>) -> Option<bool> {
    let limits = &shared.limits;
    let registry = &shared.registry;
    loop {
        let (open, shedding) = registry.counts();
        let live = open - shedding;
        if live >= limits.max_connections && registry.shed_one() {
            continue;
        }
        if shedding > MAX_SHEDDING {
            let closed = registry.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if registry.counts().1 > MAX_SHEDDING {
                let _ = tokio::time::timeout(SHED_WAIT, closed).await;
            }
            continue;
        }
        if live < limits.max_connections {
            return Some(false);
        }
        return (open < limits.max_connections + limits.reserved_connections).then_some(true);
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// A warning logged at most once per [`LOG_INTERVAL`], with how often it happened meanwhile.
struct RateLimitedLog {
    what: &'static str,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn new(what: &'static str) -> Self {
        RateLimitedLog {
            what,
            last: None,
            suppressed: 0,
        }
    }

    fn note(&mut self, detail: &dyn std::fmt::Display) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + LOG_INTERVAL) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            error = %detail,
            since_last_log = self.suppressed,
            "{}", self.what
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}
