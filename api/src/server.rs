//! The HTTP server: a plain hyper 1 accept loop, one task per connection, and a graceful
//! drain when the shutdown future completes (stop accepting, let in-flight requests finish,
//! close idle keep-alive connections, give up after a deadline).

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::Db;
use crate::error::ApiError;
use crate::{openapi, router, telemetry};

/// How long in-flight requests get to finish after shutdown starts.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// A client that sends no complete request head in this time is disconnected (slowloris,
/// and idle keep-alive connections).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What every request handler shares; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// The OpenAPI spec, serialised once at start.
    pub spec: Bytes,
    /// The broker, when `--broker-url` is given (for consumer lag).
    pub broker: Option<crate::broker::Broker>,
}

impl AppState {
    pub fn new(config: &Config) -> Result<AppState, ApiError> {
        Ok(AppState {
            db: Db::new(config)?,
            spec: Bytes::from(openapi::spec_json()),
            broker: config.broker.as_ref().map(crate::broker::Broker::new),
        })
    }
}

/// Binds `config.listen` and serves until `shutdown` completes, then drains.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ApiError> {
    telemetry::describe();
    let state = AppState::new(&config)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ApiError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(addr = %local, "api listening");
    serve(listener, state, shutdown).await;
    Ok(())
}

/// Accepts connections on `listener` until `shutdown` completes, then drains them.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Small responses: send them now rather than wait for more bytes.
                    let _ = stream.set_nodelay(true);
                    let state = state.clone();
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(router::handle(state, req).await) }
                    });
                    let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("draining connections");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(DRAIN_DEADLINE) => tracing::warn!("drain deadline passed; closing"),
    }
}
