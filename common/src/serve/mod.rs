//! The one HTTP/1.1 server of every binary (the broker, the API, and the ops server of the
//! streamer and the collector): it accepts connections, bounds what they may cost, optionally
//! speaks TLS and requires a bearer token, and drains on shutdown. What to answer is the
//! caller's handler; the health, readiness and metrics answers are in [`crate::ops`].
//!
//! Bounds, all per server:
//! - **header-read timeout**: a new connection must deliver its first request head (its TLS
//!   handshake included) within it, and a keep-alive connection its next head within it of
//!   the head's first byte: sockets that never send a byte or send one a second are closed;
//! - **idle timeout**: a keep-alive connection with no new request for that long is closed;
//! - **connection cap** (`max_connections`): at the cap a new connection makes room by
//!   shedding the connection that has waited longest without a request in flight (sockets
//!   that never sent a whole request before idle keep-alive clients); when every connection
//!   is busy, up to `reserved_connections` more are admitted, which answer only `/healthz`,
//!   `/readyz` and `/metrics` (503 otherwise) so that probes and scrapes still get through;
//!   beyond that new connections are closed at once;
//! - **accept errors** (out of descriptors): an idle connection is shed to free one, the loop
//!   pauses (10 ms doubling to 1 s) and logs once per 10 s with a count.
//!
//! With a token, every path but the caller's public ones needs `Authorization: Bearer`; it is
//! checked on the request head and a refused request's body is never read (the connection is
//! closed instead). A client that half-closes after its request still gets the answer.
//!
//! Module map: [`args`] the flags, `accept` the loop and admission, `connection` one
//! connection's task and timers, `conns` the registry, `io` the watched stream, `metrics` its
//! metrics (`http_connections`, `http_requests_in_flight`, `http_connections_shed_total`, …),
//! [`auth`] the token, [`tls`] the certificate.

mod accept;
pub mod args;
pub mod auth;
mod connection;
mod conns;
mod io;
mod metrics;
pub mod tls;

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use auth::Token;
pub use connection::ServeBody;

use conns::Registry;

/// Defaults of the flags (README "Configuration").
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Connections admitted beyond the cap when every connection is busy, for the ops paths.
pub const RESERVED_CONNECTIONS: usize = 32;

/// The connection bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub reserved_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            reserved_connections: RESERVED_CONNECTIONS,
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS),
            idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
        }
    }
}

/// How one server serves.
#[derive(Clone)]
pub struct Settings {
    pub limits: Limits,
    pub tls: Option<TlsAcceptor>,
    pub token: Option<Token>,
    /// Paths answered without the token (the ops paths at least).
    pub public: fn(&str) -> bool,
    /// How long the drain waits for in-flight requests after shutdown began.
    pub grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            tls: None,
            token: None,
            public: crate::ops::is_ops_path,
            grace: Duration::from_secs(10),
        }
    }
}

impl Settings {
    /// `http` or `https`, for the "listening on" log line.
    pub fn scheme(&self) -> &'static str {
        match self.tls {
            Some(_) => "https",
            None => "http",
        }
    }
}

/// What every connection task of one server shares.
struct Shared<H> {
    handler: H,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    token: Option<Token>,
    public: fn(&str) -> bool,
    registry: Arc<Registry>,
    /// `true` once the drain began.
    stop: watch::Receiver<bool>,
}

/// Serves `listener` with `handler` until `shutdown` completes, then stops accepting, closes
/// idle connections, lets in-flight requests finish and returns when the last connection is
/// closed or `settings.grace` has passed.
pub async fn serve<H, Fut, B>(
    listener: TcpListener,
    settings: Settings,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (stop_tx, stop) = watch::channel(false);
    let registry = Arc::new(Registry::new(metrics::ServeMetrics::new()));
    let shared = Arc::new(Shared {
        handler,
        limits: settings.limits,
        tls: settings.tls,
        token: settings.token,
        public: settings.public,
        registry: Arc::clone(&registry),
        stop,
    });
    accept::run(&listener, &shared, shutdown).await;
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = async {
        loop {
            let closed = registry.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if registry.open() == 0 {
                return;
            }
            closed.await;
        }
    };
    if tokio::time::timeout(settings.grace, drained).await.is_err() {
        tracing::warn!(grace = ?settings.grace, "connections still open after the grace period; closing them");
    }
}

/// The listen backlog: connections the kernel completes before the accept loop takes them.
/// tokio's default (1024) overflows under a burst of connections, and a client whose SYN is
/// dropped retries only after a second; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: u32 = 4096;

/// Binds `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does) with a deep backlog.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Raises this process's soft limit on open files to its hard limit (as Go's runtime does):
/// the connection cap, not a low default soft limit, should bound the connections.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
