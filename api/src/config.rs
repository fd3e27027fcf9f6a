//! The API's settings: flags with their environment variables, resolved into a [`Config`].
//!
//! `--listen` follows the deployment contract: `PORT=8081` (as platforms set it) means
//! `0.0.0.0:8081`, and an explicit address (`--listen 127.0.0.1:0`) is taken as it is.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use pipeline_common::db::DbArgs;

pipeline_common::serve_args!(
    /// The API's serving flags (`API_` environment variables).
    pub struct ServeArgs, "API"
);

/// `api`: the REST API over the telemetry database.
#[derive(Debug, Clone, Parser)]
#[command(name = "api", version, about)]
pub struct Args {
    /// Where to listen: a port (all interfaces) or an address `host:port`.
    #[arg(long, env = "PORT", default_value = "8080", value_parser = parse_listen)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub db: DbArgs,

    /// Where to read from, e.g. a streaming replica: the API only reads, so when this is set
    /// every query goes there and `DATABASE_URL`/`DB_*` are not used.
    #[arg(
        long = "database-read-url",
        env = "DATABASE_READ_URL",
        hide_env_values = true
    )]
    pub database_read_url: Option<String>,

    /// Most database queries in flight (and connections open) at once; 0 picks twice the
    /// CPU cores, at least 4. More only adds context switches once the CPUs are busy.
    #[arg(long, env = "API_DB_POOL_SIZE", default_value_t = 0)]
    pub db_pool_size: u32,

    /// How long a request waits for a database connection before answering 503: one
    /// deadline for the whole wait (its turn among the queries, then the pool).
    #[arg(long, env = "API_DB_TIMEOUT_MS", default_value_t = 2000)]
    pub db_timeout_ms: u64,

    /// The longest one SQL statement may run (PostgreSQL's `statement_timeout`, set on each
    /// connection); a request whose statement is cancelled answers 503 naming it. 0: no limit.
    #[arg(long, env = "API_STATEMENT_TIMEOUT_MS", default_value_t = 10_000)]
    pub statement_timeout_ms: u64,

    /// Most expensive queries (telemetry pages, step aggregations, exports, the Prometheus
    /// API) holding a connection at once, so cheap ones (health, latest, gpus, stats) always
    /// find one; 0 picks half the pool (at least 1).
    #[arg(long, env = "API_DB_EXPENSIVE_CONCURRENCY", default_value_t = 0)]
    pub db_expensive_concurrency: u32,

    /// Async worker threads (0: one per CPU core). Database calls run on a separate pool of
    /// blocking threads either way.
    #[arg(long, env = "API_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    /// The broker the collectors read from, for the consumer lag of `/api/v1/pipeline`
    /// (optional: without it the lag is null).
    #[arg(long = "broker-url", env = "BROKER_URL")]
    pub broker_url: Option<String>,

    /// The broker's bearer token, when it requires one.
    #[arg(long = "broker-token", env = "BROKER_TOKEN", hide_env_values = true)]
    pub broker_token: Option<String>,

    /// PEM file of the CA certificate(s) an https:// broker's certificate must be signed by
    /// (only these are trusted then). Without it: the Mozilla roots built into the binary.
    #[arg(long = "broker-ca-file", env = "BROKER_CA_FILE", value_name = "PEM",
        value_parser = pipeline_common::trust::CaFile::parse_flag)]
    pub broker_ca_file: Option<pipeline_common::trust::CaFile>,
    /// Connections, TLS and the bearer token (`--max-connections`, `--header-read-timeout-ms`,
    /// `--idle-timeout-ms`, `--token`, `--token-file`, `--tls-cert`, `--tls-key`): with a
    /// token, everything but the probes, metrics, docs and dashboard pages needs it.
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Print the OpenAPI spec (what `GET /openapi.json` serves) to stdout and exit.
    #[arg(long)]
    pub print_openapi: bool,
}

/// Everything [`crate::run`] needs, independent of how it was given.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// A `postgres::Config` string (URL or `key=value`) for every query: the read URL when
    /// one is given, else the database settings.
    pub database: String,
    pub pool_size: u32,
    /// Pool checkout and connect timeout: the longest a request waits for the database.
    pub db_timeout: Duration,
    /// PostgreSQL's `statement_timeout` on every connection; `None` for no limit.
    pub statement_timeout: Option<Duration>,
    /// Permits for expensive queries, fewer than `pool_size` when the pool has 2 or more.
    pub expensive_concurrency: u32,
    /// How to reach the broker, for consumer lag.
    pub broker: Option<crate::broker::BrokerTarget>,
    /// How the HTTP server serves (read into settings by [`crate::run`]).
    pub serve: pipeline_common::serve::args::ServeFlags,
}

impl From<&Args> for Config {
    fn from(args: &Args) -> Self {
        let pool_size = match args.db_pool_size {
            0 => default_pool_size(),
            n => n,
        };
        Config {
            listen: args.listen,
            database: args
                .database_read_url
                .clone()
                .unwrap_or_else(|| args.db.connection_string()),
            pool_size,
            db_timeout: Duration::from_millis(args.db_timeout_ms.max(1)),
            statement_timeout: (args.statement_timeout_ms > 0)
                .then(|| Duration::from_millis(args.statement_timeout_ms)),
            expensive_concurrency: expensive_concurrency(args.db_expensive_concurrency, pool_size),
            broker: args
                .broker_url
                .clone()
                .filter(|u| !u.is_empty())
                .map(|url| crate::broker::BrokerTarget {
                    url,
                    token: args.broker_token.clone(),
                    ca_file: args.broker_ca_file.clone(),
                }),
            serve: args.serve.flags(),
        }
    }
}

/// Twice the CPU cores, at least 4: enough to overlap each query's network wait with another's
/// work, few enough that queries do not queue for the CPUs inside the database and the API.
fn default_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores * 2).unwrap_or(u32::MAX).max(4)
}

/// The permits of expensive queries: as asked (or half the pool), at least 1, and at most one
/// less than the pool, so a cheap query always has a connection of its own.
fn expensive_concurrency(asked: u32, pool_size: u32) -> u32 {
    let wanted = match asked {
        0 => pool_size / 2,
        n => n,
    };
    wanted.min(pool_size.saturating_sub(1)).max(1)
}

/// A bare port means every interface (`PORT=8080` → `0.0.0.0:8080`); otherwise `host:port`.
pub fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    let value = value.trim();
    if let Ok(port) = value.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
    }
    value.parse::<SocketAddr>().map_err(|_| {
        format!("expected a port (8080) or an address (127.0.0.1:8080), got {value:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_listens_on_every_interface() {
        assert_eq!(parse_listen("9000").unwrap().to_string(), "0.0.0.0:9000");
    }

    #[test]
    fn an_address_is_taken_as_given() {
        assert_eq!(
            parse_listen("127.0.0.1:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert_eq!(parse_listen("[::1]:80").unwrap().to_string(), "[::1]:80");
    }

    #[test]
    fn garbage_is_refused_with_what_is_expected() {
        let err = parse_listen("localhost").unwrap_err();
        assert!(err.contains("expected a port"), "{err}");
    }

    #[test]
    fn defaults_follow_the_contract() {
        let args = Args::try_parse_from(["api"]).unwrap();
        // PORT, when the environment sets it, is the default's override by design.
        if std::env::var_os("PORT").is_none() {
            assert_eq!(args.listen.to_string(), "0.0.0.0:8080");
        }
        let config = Config::from(&args);
        if std::env::var_os("API_DB_TIMEOUT_MS").is_none() {
            assert_eq!(config.db_timeout, Duration::from_secs(2));
        }
        if std::env::var_os("API_STATEMENT_TIMEOUT_MS").is_none() {
            assert_eq!(config.statement_timeout, Some(Duration::from_secs(10)));
        }
    }

    #[test]
    fn a_zero_statement_timeout_means_no_limit() {
        let args = Args::try_parse_from(["api", "--statement-timeout-ms", "0"]).unwrap();
        assert_eq!(Config::from(&args).statement_timeout, None);
    }

    #[test]
    fn expensive_queries_always_leave_cheap_ones_a_connection() {
        assert_eq!(expensive_concurrency(0, 8), 4);
        assert_eq!(expensive_concurrency(0, 4), 2);
        assert_eq!(expensive_concurrency(8, 8), 7);
        assert_eq!(expensive_concurrency(3, 8), 3);
        // A pool of one cannot keep one back: expensive queries share it.
        assert_eq!(expensive_concurrency(0, 1), 1);
    }
}
