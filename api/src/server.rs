//! The HTTP server: the router served by the shared serving module (`pipeline_common::serve`:
//! connection limits and timeouts, TLS, the bearer token on the request head, the graceful
//! drain when the shutdown future completes), and which paths are public.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use pipeline_common::serve::{self, Settings};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::Db;
use crate::error::ApiError;
use crate::{openapi, router, telemetry};

/// How long in-flight requests get to finish after shutdown starts.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

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

/// The paths answered without the token: the probes (`/healthz`, `/readyz`, `/health`),
/// `/metrics`, and the pages that hold no data (`/`, the docs and the spec, the dashboard's
/// page and assets). The data the pages load (`/api/v1/…`, `/prometheus/…`) needs it.
pub fn is_public(path: &str) -> bool {
    pipeline_common::ops::is_ops_path(path)
        || matches!(path, "/" | "/health" | "/openapi.json" | "/docs" | "/ui")
        || path.starts_with("/docs/")
        || path.starts_with("/ui/")
}

/// Binds `config.listen` and serves until `shutdown` completes, then drains.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ApiError> {
    telemetry::describe();
    let settings = config.serve.settings(is_public, DRAIN_DEADLINE)?;
    let state = AppState::new(&config)?;
    let listener = serve::bind(config.listen).map_err(|source| ApiError::Bind {
        addr: config.listen,
        source,
    })?;
    let local = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(addr = %local, scheme = settings.scheme(), "api listening");
    serve(listener, state, settings, shutdown).await;
    Ok(())
}

/// Serves `listener` until `shutdown` completes, then drains the connections.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) {
    let handler = move |req| router::handle(state.clone(), req);
    serve::serve(listener, settings, handler, shutdown).await;
    tracing::info!("all connections closed");
}
