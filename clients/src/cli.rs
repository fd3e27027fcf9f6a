//! The start-up both client binaries share: signal handling, logging, the exit code, the
//! broker connection flags and the ops server. What each binary does once started (its own
//! flags, its config, its loop) stays in that binary and its module.

use std::fmt::Display;
use std::net::SocketAddr;

use clap::Parser;
use pipeline_common::ops::{JsonRoute, OpsServer, Readiness};
use pipeline_common::shutdown::ShutdownFlag;
use pipeline_common::trust::CaFile;

use broker_client::{BrokerClient, ClientConfig};

/// The broker connection flags, the same in both binaries (`BROKER_URL`,
/// `BROKER_TOKEN`, `BROKER_CA_FILE`).
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// The broker's base URL (`http://` or `https://`); for a cluster, a comma-separated
    /// list of bootstrap URLs.
    #[arg(long, env = "BROKER_URL", default_value = "http://127.0.0.1:9090")]
    pub broker: String,
    /// Bearer token for the broker, when it requires one.
    #[arg(long, env = "BROKER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA certificate(s) an https:// broker's certificate must be signed by
    /// (only these are trusted then). Without it: the Mozilla roots built into the binary.
    #[arg(long, env = "BROKER_CA_FILE", value_name = "PEM", value_parser = CaFile::parse_flag)]
    pub ca_file: Option<CaFile>,
}

impl BrokerArgs {
    /// A client for this broker whose retries stop when `shutdown` is raised.
    pub fn client(&self, shutdown: ShutdownFlag) -> BrokerClient {
        if let Some(ca) = &self.ca_file {
            if !self.broker.starts_with("https://") {
                tracing::warn!(ca_file = %ca.path().display(), broker = %self.broker,
                    "--ca-file is unused: the broker URL is not https://");
            }
        }
        let config = ClientConfig::new(&self.broker)
            .token(self.token.clone())
            .ca_file(self.ca_file.clone());
        BrokerClient::new(config).with_shutdown(shutdown)
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
    start_ops_with(listen, describe_metrics, Vec::new())
}

/// [`start_ops`] with the binary's own JSON routes (the streamer's `/targets`).
pub fn start_ops_with(
    listen: SocketAddr,
    describe_metrics: fn(),
    extra: Vec<JsonRoute>,
) -> std::io::Result<(Readiness, OpsServer)> {
    // The recorder first: descriptions given before it exists are lost (no HELP lines).
    pipeline_common::ops::install_metrics_recorder();
    describe_metrics();
    let readiness = Readiness::default();
    let ops = OpsServer::start_with(listen, readiness.clone(), extra)?;
    Ok((readiness, ops))
}

/// A duration flag: a number and a unit, `ms`, `s`, `m` or `h` (`15s`, `500ms`, `1.5m`); a
/// bare number is seconds. Must be more than zero.
pub fn parse_duration(raw: &str) -> Result<std::time::Duration, String> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration such as 15s or 500ms"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {raw:?} (ms, s, m or h)")),
    };
    std::time::Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{raw:?} is not a duration above zero"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        for bad in ["", "0s", "s", "15x", "-1s", "1e999s", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
