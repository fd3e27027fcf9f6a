//! `collector`: a consumer-group member writing the broker's telemetry into PostgreSQL,
//! exactly once (see `clients::collector`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clients::cli::{self, BrokerArgs};
use clients::collector::{self, CollectorConfig};
use pipeline_common::db::DbArgs;
use pipeline_common::shutdown::ShutdownFlag;

/// Consumes telemetry points from the broker and writes them into PostgreSQL.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    connection: BrokerArgs,
    /// Topic to consume.
    #[arg(long, env = "TOPIC", default_value = "telemetry")]
    topic: String,
    /// Consumer group; its members share the topic's partitions.
    #[arg(long, env = "COLLECTOR_GROUP", default_value = "collectors")]
    group: String,
    /// Messages per database transaction (at most).
    #[arg(long, env = "COLLECTOR_BATCH_SIZE", default_value_t = 100)]
    batch_size: usize,
    /// Write a batch at the latest this many milliseconds after its first message.
    #[arg(long, env = "COLLECTOR_FLUSH_MS", default_value_t = 200)]
    flush_ms: u64,
    /// Writer threads (database connections writing in parallel).
    #[arg(long, env = "COLLECTOR_WRITERS", default_value_t = 2)]
    writers: usize,
    /// Where to serve /healthz, /readyz and /metrics (port 0: any free port).
    #[arg(
        long,
        env = "COLLECTOR_METRICS_LISTEN",
        default_value = "127.0.0.1:9102"
    )]
    metrics_listen: SocketAddr,
    #[command(flatten)]
    db: DbArgs,
    /// Keep raw points this long (`30d`, `12h`, `2w`, or `off`); older daily partitions are
    /// dropped whole, and points already older are stored as dead letters.
    #[arg(long, env = "COLLECTOR_RETENTION", default_value = "30d")]
    retention: String,
    /// Keep the per-minute rollups this long (or `off`).
    #[arg(long, env = "COLLECTOR_ROLLUP_1M_RETENTION", default_value = "90d")]
    rollup_1m_retention: String,
    /// Keep the per-hour rollups this long (or `off`).
    #[arg(long, env = "COLLECTOR_ROLLUP_1H_RETENTION", default_value = "2y")]
    rollup_1h_retention: String,
    /// Compact a day of points into per-series chunks (a few bytes a point) once the day is
    /// over and this much older (`1d`, or `off`).
    #[arg(long, env = "COLLECTOR_COMPACT_AFTER", default_value = "1d")]
    compact_after: String,
    /// Create the daily partitions this many days ahead.
    #[arg(long, env = "COLLECTOR_PARTITIONS_AHEAD", default_value_t = 2)]
    partitions_ahead: u16,
    /// Seconds between maintenance rounds (partitions ahead, retention, 0001 upgrade).
    #[arg(long, env = "COLLECTOR_MAINTENANCE_INTERVAL_S", default_value_t = 60)]
    maintenance_interval_s: u64,
}

fn main() -> ExitCode {
    match cli::parse_and_run(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error, "collector failed");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args, shutdown: ShutdownFlag) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let retention = |flag: &str, text: &str| {
        store::maintenance::parse_retention(text).with_context(|| format!("--{flag}"))
    };
    let policy = store::maintenance::Policy {
        points: retention("retention", &args.retention)?,
        rollup_1m: retention("rollup-1m-retention", &args.rollup_1m_retention)?,
        rollup_1h: retention("rollup-1h-retention", &args.rollup_1h_retention)?,
        days_ahead: i64::from(args.partitions_ahead),
        compact_after: retention("compact-after", &args.compact_after)?,
    };
    let (readiness, ops) = cli::start_ops(args.metrics_listen, collector::describe_metrics)
        .with_context(|| format!("listening on {}", args.metrics_listen))?;
    tracing::info!(metrics = %ops.local_addr, broker = %args.connection.broker, topic = %args.topic,
        group = %args.group, "collector starting");
    let client = args.connection.client(shutdown);
    let config = CollectorConfig {
        topic: args.topic,
        group: args.group,
        batch_size: args.batch_size,
        flush_interval: Duration::from_millis(args.flush_ms.max(1)),
        database: args.db.connection_string(),
        writers: args.writers.max(1),
        policy,
        maintenance_interval: Duration::from_secs(args.maintenance_interval_s.max(1)),
    };
    collector::run(&config, client, &readiness)?;
    tracing::info!("collector stopped");
    Ok(())
}
