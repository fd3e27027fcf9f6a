//! The HTTP/1.1 server: the broker's handler served by the shared serving module
//! (`pipeline_common::serve`: connection limits and timeouts, TLS, the bearer token, the
//! graceful drain), and the shutdown signal its long-polls and background tasks watch.
//!
//! Routing and handlers are in [`routes`], status mapping in [`error`], long-poll waiting in
//! [`longpoll`].

pub mod error;
pub mod groups;
pub mod longpoll;
pub mod replica;
pub mod request;
pub mod routes;
pub mod topics;

use std::future::Future;
use std::sync::Arc;

use pipeline_common::serve::{self, Settings};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

/// Serves `listener` until `shutdown` completes, then drains the connections (in-flight
/// requests finish, up to the grace period of `settings`).
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) {
    let handler = move |req| routes::handle(Arc::clone(&broker), req);
    serve::serve(listener, settings, handler, shutdown).await;
}

/// Completes once shutdown began (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}
