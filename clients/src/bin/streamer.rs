//! `streamer`: reads a DCGM CSV and produces its rows to the broker as telemetry points,
//! sharing the rows with the other streamers of its `--group` (see `clients::streamer`); or,
//! with `--scrape`, scrapes dcgm-exporters until stopped (see `clients::streamer::scrape`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clients::cli::{self, BrokerArgs};
use clients::streamer::scrape::{self, discovery, ScrapeConfig};
use clients::streamer::source::Source;
use clients::streamer::targets_file::{self, TargetsFile};
use clients::streamer::{self, ProduceFormat, StreamerConfig};
use pipeline_common::shutdown::ShutdownFlag;

/// Streams a DCGM metrics CSV into the broker, exactly once per pass, shared by a group; or
/// scrapes dcgm-exporters (`--scrape`) until SIGTERM.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    connection: BrokerArgs,
    /// Topic to produce to.
    #[arg(long, env = "TOPIC", default_value = "telemetry")]
    topic: String,
    /// The CSV file (header row with the DCGM columns, any order).
    #[arg(
        long,
        env = "CSV_PATH",
        required_unless_present_any = ["scrape", "scrape_targets_file", "scrape_dns"]
    )]
    csv: Option<PathBuf>,
    /// Scrape this dcgm-exporter URL (`http://node:9400/metrics`) every --scrape-interval
    /// until SIGTERM instead of streaming a CSV; repeat the flag (or separate the URLs by
    /// commas) for more targets.
    #[arg(
        long,
        env = "STREAMER_SCRAPE",
        value_delimiter = ',',
        conflicts_with = "csv"
    )]
    scrape: Vec<String>,
    /// A Prometheus file_sd file (JSON, or YAML for `.yml`/`.yaml`) of more targets to scrape:
    /// `[{"targets": ["host:port"], "labels": {"__scheme__": …, "__metrics_path__": …}}]`;
    /// re-read while running, its new targets scraped and its removed ones stopped.
    #[arg(
        long,
        env = "STREAMER_SCRAPE_TARGETS_FILE",
        value_name = "PATH",
        conflicts_with = "csv",
        value_parser = targets_file::parse_arg
    )]
    scrape_targets_file: Option<TargetsFile>,
    /// Scrape every address of this name (a headless Service) at `http://ADDR:PORT/metrics`:
    /// `NAME:PORT`, re-resolved every --scrape-interval (at least every 30 s, at most every
    /// 1 s); repeat the flag for more names.
    #[arg(
        long,
        env = "STREAMER_SCRAPE_DNS",
        value_name = "NAME:PORT",
        value_delimiter = ',',
        conflicts_with = "csv",
        value_parser = discovery::parse_dns_arg
    )]
    scrape_dns: Vec<String>,
    /// Share the targets with the other streamers of --group (each scraped by one of them);
    /// `false`: scrape every target here (node-local scraping, a DaemonSet).
    #[arg(long, env = "STREAMER_SCRAPE_SHARE", default_value_t = true,
        action = clap::ArgAction::Set, value_name = "BOOL")]
    scrape_share: bool,
    /// Slots the shared targets are spread over (partitions of `<topic>.scrape-slots`; an
    /// existing slots topic keeps its count).
    #[arg(long, env = "STREAMER_SCRAPE_SLOTS", default_value_t = 64)]
    scrape_slots: u32,
    /// How long a streamer that died keeps its targets before the group's others take them
    /// over.
    #[arg(long, env = "STREAMER_SCRAPE_SESSION_TIMEOUT", default_value = "3s",
        value_parser = cli::parse_duration)]
    scrape_session_timeout: Duration,
    /// Scrapes running at once (worker threads).
    #[arg(long, env = "STREAMER_SCRAPE_CONCURRENCY", default_value_t = 16)]
    scrape_concurrency: usize,
    /// Where scrapes wait while the broker is unreachable (kept across restarts); in memory
    /// when unset.
    #[arg(long, env = "STREAMER_SPOOL_DIR", value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// The spool's bound; when full, its oldest scrapes are dropped (and counted).
    #[arg(long, env = "STREAMER_SPOOL_MAX_BYTES", default_value_t = 256 << 20)]
    spool_max_bytes: u64,
    /// Time between two scrapes of a target (`15s`, `500ms`, `1m`).
    #[arg(long, env = "STREAMER_SCRAPE_INTERVAL", default_value = "15s",
        value_parser = cli::parse_duration)]
    scrape_interval: Duration,
    /// Time a scrape's HTTP request may take, at most.
    #[arg(long, env = "STREAMER_SCRAPE_TIMEOUT", default_value = "10s",
        value_parser = cli::parse_duration)]
    scrape_timeout: Duration,
    /// Rows per batch (a cell of one shard, produced under one seq); every streamer of a group
    /// must use the same.
    #[arg(long, env = "STREAMER_BATCH_SIZE", default_value_t = 100)]
    batch_size: usize,
    /// Stream the file again and again (otherwise once).
    #[arg(long = "loop", env = "STREAMER_LOOP")]
    looping: bool,
    /// Stream the input once more although it was streamed to the end before (one-shot runs;
    /// an unfinished run of the input is resumed, not started over).
    #[arg(long, env = "STREAMER_RESTART")]
    restart: bool,
    /// Rows per second for this streamer; 0 = as fast as possible.
    #[arg(long, env = "STREAMER_RATE", default_value_t = 0.0)]
    rate: f64,
    /// Streamers of one group share the file's rows.
    #[arg(long, env = "STREAMER_GROUP", default_value = "streamers")]
    group: String,
    /// Shards the rows are split into (partitions of `<topic>.shards`; an existing shard
    /// topic keeps its count).
    #[arg(long, env = "STREAMER_SHARDS", default_value_t = 16)]
    shards: u32,
    /// Prefix of the per-shard idempotent producer ids (`<prefix>-<input id>-shard-<n>`); the
    /// group name by default.
    #[arg(long, env = "STREAMER_PRODUCER_ID")]
    producer_id: Option<String>,
    /// Produce content type: `batch` (binary record batches per partition, cheapest for the
    /// broker), `ndjson`, or `auto` (batches for cells big enough, NDJSON for small ones).
    #[arg(long, env = "STREAMER_PRODUCE_FORMAT", value_enum, default_value_t = Format::Auto)]
    produce_format: Format,
    /// Partitions to create the topic with if it does not exist yet.
    #[arg(long, env = "STREAMER_TOPIC_PARTITIONS", default_value_t = 16)]
    partitions: u32,
    /// Where to serve /healthz, /readyz and /metrics, and with --scrape /targets (port 0: any
    /// free port).
    #[arg(
        long,
        env = "STREAMER_METRICS_LISTEN",
        default_value = "127.0.0.1:9101"
    )]
    metrics_listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Auto,
    Batch,
    Ndjson,
}

fn main() -> ExitCode {
    match cli::parse_and_run(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error, "streamer failed");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args, shutdown: ShutdownFlag) -> anyhow::Result<()> {
    let source = match args.csv.clone() {
        Some(csv) => csv_source(&args, csv)?,
        None => scrape_source(&args)?,
    };
    let (readiness, ops) = cli::start_ops_with(
        args.metrics_listen,
        streamer::describe_metrics,
        source.routes(),
    )
    .with_context(|| format!("listening on {}", args.metrics_listen))?;
    tracing::info!(metrics = %ops.local_addr, broker = %args.connection.broker, topic = %args.topic,
        source = %source.describe(), "streamer starting");
    source.run(args.connection.client(shutdown), &readiness)?;
    tracing::info!("streamer stopped");
    Ok(())
}

fn scrape_source(args: &Args) -> anyhow::Result<Source> {
    let discovered = args.scrape_targets_file.is_some() || !args.scrape_dns.is_empty();
    scrape::check_targets(&args.scrape, discovered).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        args.scrape_concurrency > 0,
        "--scrape-concurrency must be at least 1"
    );
    Ok(Source::scrape(ScrapeConfig {
        topic: args.topic.clone(),
        targets: args.scrape.clone(),
        targets_file: args.scrape_targets_file.clone(),
        dns: args.scrape_dns.clone(),
        interval: args.scrape_interval,
        timeout: args.scrape_timeout,
        partitions: args.partitions,
        share: args.scrape_share,
        group: args.group.clone(),
        slots: args.scrape_slots,
        session_timeout: args.scrape_session_timeout,
        concurrency: args.scrape_concurrency,
        spool_dir: args.spool_dir.clone(),
        spool_max_bytes: args.spool_max_bytes,
    }))
}

fn csv_source(args: &Args, csv: PathBuf) -> anyhow::Result<Source> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    anyhow::ensure!(
        args.rate >= 0.0 && args.rate.is_finite(),
        "--rate must be >= 0"
    );
    Ok(Source::Csv(StreamerConfig {
        topic: args.topic.clone(),
        csv,
        batch_size: args.batch_size,
        looping: args.looping,
        restart: args.restart,
        rate: args.rate,
        group: args.group.clone(),
        shards: args.shards,
        producer_prefix: args.producer_id.clone(),
        format: match args.produce_format {
            Format::Auto => ProduceFormat::Auto,
            Format::Batch => ProduceFormat::Batch,
            Format::Ndjson => ProduceFormat::Ndjson,
        },
        partitions: args.partitions,
    }))
}
