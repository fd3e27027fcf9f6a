//! The HTTP/1.1 server: the accept loop, one hyper connection task per client, and the
//! graceful drain (as in hyper's `graceful_shutdown` example): on shutdown the accept loop
//! stops, every connection is told to finish its in-flight request and close, and the
//! caller waits for the last one (up to a grace period).
//!
//! Routing and handlers are in [`routes`], status mapping in [`error`], long-poll waiting in
//! [`longpoll`].

pub mod error;
pub mod groups;
pub mod longpoll;
pub mod request;
pub mod routes;
pub mod topics;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::broker::Broker;

/// Accepts connections until dropped. Each connection task holds a clone of `alive`; the
/// drain waits until all clones are gone.
pub async fn accept_loop(listener: TcpListener, broker: Arc<Broker>, alive: mpsc::Sender<()>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Typically EMFILE: back off a little instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, Arc::clone(&broker), alive.clone()));
    }
}

async fn serve_connection(stream: TcpStream, broker: Arc<Broker>, _alive: mpsc::Sender<()>) {
    let mut stop = broker.shutdown.clone();
    let service = service_fn(move |req| {
        let broker = Arc::clone(&broker);
        async move { Ok::<_, Infallible>(routes::handle(broker, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Completes once shutdown began (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}
