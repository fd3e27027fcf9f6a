//! The start-up both client binaries share: signal handling, logging, the exit code, the
//! broker connection flags and the ops server. What each binary does once started (its own
//! flags, its config, its loop) stays in that binary and its module.

use std::fmt::Display;
use std::net::SocketAddr;

use clap::Parser;
use pipeline_common::ops::{OpsServer, Readiness};
use pipeline_common::shutdown::ShutdownFlag;

use crate::client::{BrokerClient, ClientConfig};

/// The broker connection flags, the same in both binaries (`BROKER_URL`,
/// `BROKER_TOKEN`).
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// The broker's base URL.
    #[arg(long, env = "BROKER_URL", default_value = "http://127.0.0.1:9090")]
    pub broker: String,
    /// Bearer token for the broker, when it requires one.
    #[arg(long, env = "BROKER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl BrokerArgs {
    /// A client for this broker whose retries stop when `shutdown` is raised.
    pub fn client(&self, shutdown: ShutdownFlag) -> BrokerClient {
        BrokerClient::new(ClientConfig::new(&self.broker).token(self.token.clone()))
            .with_shutdown(shutdown)
    }
}

/// The start of a client binary's `main`: signal handlers, logging, then `run` with the parsed
/// `A`. A failure comes back as text with its whole chain of causes, for the binary to log:
/// there, the line keeps the binary's own log target (`RUST_LOG=collector=...` still sees it).
pub fn parse_and_run<A, E>(run: impl FnOnce(A, ShutdownFlag) -> Result<(), E>) -> Result<(), String>
where
    A: Parser,
    E: Display,
{
    // First of all, so that a SIGTERM right after start-up is a clean stop, not a kill.
    let shutdown = ShutdownFlag::on_signals();
    pipeline_common::logging::init();
    let shutdown = shutdown.map_err(|e| format!("installing signal handlers: {e}"))?;
    // `{:#}`: an `anyhow` error prints its causes too.
    run(A::parse(), shutdown).map_err(|e| format!("{e:#}"))
}

/// Serves /healthz, /readyz and /metrics on `listen`, with the binary's metrics described
/// (`describe_metrics`) so that each gets its HELP line.
pub fn start_ops(
    listen: SocketAddr,
    describe_metrics: fn(),
) -> std::io::Result<(Readiness, OpsServer)> {
    // The recorder first: descriptions given before it exists are lost (no HELP lines).
    pipeline_common::ops::install_metrics_recorder();
    describe_metrics();
    let readiness = Readiness::default();
    let ops = OpsServer::start(listen, readiness.clone())?;
    Ok((readiness, ops))
}
