//! One connection's task: the TLS handshake, hyper's HTTP/1.1 state machine, and the timers
//! and signals around it (header-read and idle timeouts, being shed, the drain).
//!
//! The timeouts are kept here rather than by hyper's `header_read_timeout`, because hyper
//! starts that timer as soon as it waits for a head, so it cannot tell an idle keep-alive
//! connection (allowed `idle_timeout`) from a slow request head (allowed `header_read_timeout`
//! from its first byte); this task can, from the phases [`Watched`] and the service record.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::conns::{Conn, Registered};
use super::io::Watched;
use super::{auth, Shared};
use crate::{ops, problem};

/// The body of every answer: the server's own (401, 503) or the handler's, holding the
/// connection busy until it is sent.
pub type ServeBody<B> = Guarded<Either<Full<Bytes>, B>>;

pin_project_lite::pin_project! {
    /// A response body that marks its connection idle again once hyper is done with it.
    pub struct Guarded<B> {
        #[pin]
        inner: B,
        busy: BusyGuard,
    }
}

impl<B: Body> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Marks the connection busy while alive, idle when dropped.
struct BusyGuard(Arc<Conn>);

impl BusyGuard {
    fn new(conn: Arc<Conn>) -> Self {
        conn.busy();
        BusyGuard(conn)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.idle();
    }
}

/// Serves one accepted connection until it closes, times out, is shed or drained.
pub async fn run<H, Fut, B>(
    stream: TcpStream,
    shared: Arc<Shared<H>>,
    conn: Arc<Conn>,
    registered: Registered,
) where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let _registered = registered;
    let _ = stream.set_nodelay(true);
    let Some(tls) = shared.tls.clone() else {
        return serve_io(stream, shared, conn).await;
    };
    // The handshake counts against the header-read timeout, like the head it precedes.
    let deadline = conn.deadline(
        shared.limits.header_read_timeout,
        shared.limits.idle_timeout,
    );
    let handshake = tls.accept(stream);
    tokio::pin!(handshake);
    let mut stop = shared.stop.clone();
    let stream = loop {
        tokio::select! {
            accepted = handshake.as_mut() => match accepted {
                Ok(stream) => break stream,
                Err(e) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
            },
            () = sleep_until(deadline) => {
                tracing::debug!("TLS handshake timed out");
                conn.timed_out();
                return;
            }
            () = conn.wake.notified() => if conn.is_shed() { return },
            () = stopped(&mut stop) => return,
        }
    };
    serve_io(stream, shared, conn).await;
}

async fn serve_io<S, H, Fut, B>(stream: S, shared: Arc<Shared<H>>, conn: Arc<Conn>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let limits = shared.limits;
    let io = TokioIo::new(Watched::new(stream, Arc::clone(&conn)));
    let mut stop = shared.stop.clone();
    let service = {
        let conn = Arc::clone(&conn);
        service_fn(move |req| answer(Arc::clone(&shared), Arc::clone(&conn), req))
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // A client that sends its request and then shuts its writing side down (as
        // `curl --http1.1 … | …` or a proxy may) still gets the answer.
        .half_close(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    // One timer, moved as the phase changes, rather than a new one per loop (per request).
    let timer = tokio::time::sleep(limits.header_read_timeout);
    tokio::pin!(timer);
    let mut draining = false;
    let mut closing = false;
    loop {
        if conn.is_shed() || draining {
            if !conn.is_busy() {
                // No request in flight: nothing is lost by closing now.
                return;
            }
            if !closing {
                // Finish the request in flight, then close.
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
        let deadline = conn.deadline(limits.header_read_timeout, limits.idle_timeout);
        if let Some(at) = deadline.filter(|&at| at != timer.deadline()) {
            timer.as_mut().reset(at);
        }
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = conn.wake.notified() => {}
            () = timer.as_mut(), if deadline.is_some() => {
                let now_due = conn
                    .deadline(limits.header_read_timeout, limits.idle_timeout)
                    .is_some_and(|d| d <= Instant::now());
                if now_due {
                    tracing::debug!("connection timed out waiting for a request");
                    conn.timed_out();
                    return;
                }
            }
            () = stopped(&mut stop), if !draining => draining = true,
        }
    }
}

/// Sleeps until `deadline`, forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Completes once the drain began (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Answers one request: the reserve and the token are checked on the head, before anything
/// reads the body, then the handler answers.
async fn answer<H, Fut, B>(
    shared: Arc<Shared<H>>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Result<Response<ServeBody<B>>, Infallible>
where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
{
    let busy = BusyGuard::new(Arc::clone(&conn));
    let path = req.uri().path();
    let refusal = if conn.reserved && !ops::is_ops_path(path) {
        Some(
            problem::Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is at its connection limit; only /healthz, /readyz and /metrics \
                 are answered on this connection",
            )
            .into_response(),
        )
    } else if let Some(token) = shared.token.as_ref().filter(|_| !(shared.public)(path)) {
        (!token.admits(req.headers())).then(auth::unauthorized)
    } else {
        None
    };
    let response = match refusal {
        Some(mut refusal) => {
            // The body (if any) stays unread: close rather than drain it.
            if conn.reserved || !req.body().is_end_stream() {
                refusal
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            refusal.map(Either::Left)
        }
        None => (shared.handler)(req).await.map(Either::Right),
    };
    Ok(response.map(|inner| Guarded { inner, busy }))
}
