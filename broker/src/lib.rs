//! The broker: a persistent, partitioned, log-structured message broker speaking the v1 HTTP
//! protocol described in `broker/PROTOCOL.md`.
//!
//! Module map:
//! - [`config`]: flags and environment variables;
//! - `cluster`: with `--peers`, the broker's member of the Raft-replicated cluster metadata
//!   (`broker-meta`), leadership checks (421) and the local copies of the cluster's topics;
//!   `replication`: copying partitions from their leaders, the high watermark, `acks=all`,
//!   the ISR, and moving leadership off dead brokers;
//! - `broker`: the shared state; `topics`: the topic registry and its directories;
//!   `partition`: one partition's log, producer table, long-poll signal and group commit;
//!   `produce`: appending a request's batches, an idempotent one all-or-nothing;
//!   `producers`: idempotent-producer windows; `groups`: consumer groups and durable offsets;
//! - `http`: the server (`mod`), routing (`routes`), handlers (`topics`, `groups`),
//!   status mapping (`error`), long-poll waiting (`longpoll`);
//! - `ndjson`: the message text format; `batches`: cutting binary fetch answers;
//!   `buffers`: reused buffers for large bodies and replica reads;
//!   [`naming`]: names and the key hash clients reproduce; `metrics`, `tasks`, `fsutil`,
//!   `failpoint`.
//!
//! The bytes on disk are the `broker-log` crate's business; this crate never reads or writes
//! segment files itself.

mod batches;
mod broker;
mod buffers;
mod cluster;
pub mod config;
mod error;
mod failpoint;
mod fsutil;
mod groups;
mod http;
mod metrics;
pub mod naming;
mod ndjson;
mod partition;
mod produce;
mod producers;
mod replication;
mod tasks;
mod topics;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

pub use crate::broker::Broker;
pub use crate::config::{Config, FsyncMode};
pub use crate::error::BrokerError;

/// Binds `config.listen` and serves until `shutdown` completes; see [`serve`].
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), BrokerError> {
    let listener = pipeline_common::serve::bind(config.listen)
        .map_err(|e| BrokerError::io(format!("bind {}", config.listen), e))?;
    serve(listener, config, shutdown).await
}

/// Serves on `listener` until `shutdown` completes: recovers the logs in the background
/// (`/readyz` answers 503 until done), then on shutdown stops accepting, answers parked
/// long-polls, lets in-flight requests finish (up to the grace period), syncs every log.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BrokerError> {
    // Descriptions go to the installed recorder, so it must exist first.
    pipeline_common::ops::install_metrics_recorder();
    metrics::describe();
    let settings = config.serve_settings()?;
    let cluster = match config.cluster().map_err(BrokerError::Cluster)? {
        Some(c) => {
            let token = settings.token.as_ref().map(|t| t.secret());
            Some(cluster::Cluster::start(c, token).await?)
        }
        None => None,
    };
    let local_addr = listener
        .local_addr()
        .map_err(|e| BrokerError::io("local address", e))?;
    tracing::info!("broker listening on {}://{local_addr}/", settings.scheme());
    let (stop_tx, stop_rx) = watch::channel(false);
    let broker = Arc::new(Broker::new(config, local_addr, stop_rx, cluster));
    let fatal = recover_in_background(&broker);
    let (failure_tx, failure_rx) = oneshot::channel();
    let leaving = Arc::clone(&broker);
    let stop = async move {
        let failure = tokio::select! {
            () = shutdown => None,
            Ok(e) = fatal => Some(e),
        };
        // In a cluster, first hand this broker's partitions to their other in-sync replicas,
        // so produces waiting here are answered (503, retried at the new leader) rather than
        // held until the grace period ends with no follower left to confirm them.
        if let Some(cluster) = &leaving.cluster {
            cluster.hand_off().await;
        }
        tracing::info!("shutting down: draining connections");
        // Parked long-polls answer now, so the drain does not wait for their timeouts.
        let _ = stop_tx.send(true);
        let _ = failure_tx.send(failure);
    };
    http::serve(listener, settings, Arc::clone(&broker), stop).await;
    let failure = failure_rx.await.ok().flatten();
    let synced = {
        let broker = Arc::clone(&broker);
        broker::blocking(move || broker.sync_all()).await
    };
    if let Some(cluster) = &broker.cluster {
        cluster.shutdown().await;
    }
    tracing::info!("broker stopped");
    match failure {
        Some(e) => Err(e),
        None => synced,
    }
}

/// Recovers every log on a blocking thread, then marks the broker ready and starts the
/// background tasks. The receiver yields the error if recovery fails.
fn recover_in_background(broker: &Arc<Broker>) -> oneshot::Receiver<BrokerError> {
    let (tx, rx) = oneshot::channel();
    let broker = Arc::clone(broker);
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let b = Arc::clone(&broker);
        match broker::blocking(move || b.recover()).await {
            Ok(()) => {
                tasks::spawn_all(&broker);
                tokio::spawn(cluster::follow(Arc::clone(&broker)));
                replication::spawn(&broker);
                broker.readiness.set(true);
                tracing::info!(elapsed = ?started.elapsed(), "recovery done: ready");
            }
            Err(e) => {
                tracing::error!(error = %e, "recovery failed");
                let _ = tx.send(e);
            }
        }
    });
    rx
}
