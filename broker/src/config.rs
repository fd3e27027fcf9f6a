//! The broker's configuration: every flag of the README's "Configuration" section, each with
//! its environment variable, plus the operational limits (`--max-body-bytes`,
//! `--session-timeout-ms`, `--max-topics`, `--group-ttl-ms`, `--producer-idle-ms`).
//!
//! This module only describes and validates settings; `main.rs` parses them and
//! [`crate::run`] uses them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

pipeline_common::serve_args!(
    /// The broker's serving flags (`BROKER_` environment variables).
    pub struct ServeArgs, "BROKER"
);

/// When appended data is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FsyncMode {
    /// Every produce answers only after its batch is synced (group commit: one sync serves all
    /// requests waiting on it).
    Always,
    /// Each partition log's flusher syncs every `--fsync-interval-ms`; produce answers after
    /// the write.
    Interval,
    /// Never sync explicitly (the OS writes back when it likes).
    Never,
}

/// `broker` command-line flags and environment variables.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "broker",
    version,
    about = "The persistent, partitioned message broker (HTTP/1.1, v1 protocol)"
)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the log says which).
    #[arg(long, env = "BROKER_LISTEN", default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,

    /// Directory holding topics (segment logs) and group offsets.
    #[arg(long, env = "BROKER_DATA_DIR", default_value = "./data/broker")]
    pub data_dir: PathBuf,

    /// Partition count of topics created on first produce or join.
    #[arg(long, env = "BROKER_PARTITIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub partitions: u32,

    /// Segment roll threshold in bytes.
    #[arg(long, env = "BROKER_SEGMENT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub segment_bytes: u64,

    /// Per-partition size above which whole old segments are deleted (off when unset).
    #[arg(long, env = "BROKER_RETENTION_BYTES")]
    pub retention_bytes: Option<u64>,

    /// Age (of a segment's newest record) after which whole old segments are deleted.
    #[arg(long, env = "BROKER_RETENTION_MS")]
    pub retention_ms: Option<u64>,

    /// Durability policy of produce.
    #[arg(long, env = "BROKER_FSYNC", value_enum, default_value_t = FsyncMode::Interval)]
    pub fsync: FsyncMode,

    /// Sync period of `--fsync interval`.
    #[arg(long, env = "BROKER_FSYNC_INTERVAL_MS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub fsync_interval_ms: u64,

    /// Connections, TLS and the bearer token (`--max-connections`, `--header-read-timeout-ms`,
    /// `--idle-timeout-ms`, `--token`, `--token-file`, `--tls-cert`, `--tls-key`): every
    /// request but /healthz, /readyz and /metrics needs the token when one is set.
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Largest request body accepted; larger ones get 413.
    #[arg(long, env = "BROKER_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Default consumer-group session timeout (a join may ask for its own).
    #[arg(long, env = "BROKER_SESSION_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_timeout_ms: u64,

    /// Test failpoint: while this file exists, new segments fail to preallocate with ENOSPC.
    #[arg(long, env = "BROKER_FAILPOINT_ENOSPC_FILE", hide = true)]
    pub failpoint_enospc_file: Option<PathBuf>,

    /// Test failpoint: while this file exists, segment syncs fail with EIO.
    #[arg(long, env = "BROKER_FAILPOINT_EIO_SYNC_FILE", hide = true)]
    pub failpoint_eio_sync_file: Option<PathBuf>,

    /// Test failpoint: every segment sync takes at least this long.
    #[arg(long, env = "BROKER_FAILPOINT_SYNC_DELAY_MS", hide = true)]
    pub failpoint_sync_delay_ms: Option<u64>,

    /// How long shutdown waits for in-flight requests before closing connections anyway.
    #[arg(long, env = "BROKER_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    // Limits on what clients can make the broker keep (topics, groups, producer state).
    /// Create a missing topic on its first produce or group join (`false`: only
    /// `PUT /v1/topics/{t}` creates topics; produce and join answer 404).
    #[arg(long, env = "BROKER_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Most topics the broker holds; creating one more answers 507 until a topic is deleted.
    #[arg(long, env = "BROKER_MAX_TOPICS", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_topics: u32,

    /// A group with no members that saw no join or commit for this long is removed, with its
    /// committed offsets.
    #[arg(long, env = "BROKER_GROUP_TTL_MS", default_value_t = 7 * 24 * 3_600_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub group_ttl_ms: u64,

    /// An idempotent producer that appended nothing to a partition for this long is forgotten
    /// there: a retry arriving later is appended again.
    #[arg(long, env = "BROKER_PRODUCER_IDLE_MS", default_value_t = 24 * 3_600_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub producer_idle_ms: u64,
}

impl Config {
    /// How the HTTP server serves: limits, TLS, the token (read from its file when given).
    pub fn serve_settings(
        &self,
    ) -> Result<pipeline_common::serve::Settings, pipeline_common::Error> {
        self.serve.flags().settings(
            pipeline_common::ops::is_ops_path,
            Duration::from_millis(self.shutdown_grace_ms),
        )
    }

    pub fn fsync_interval(&self) -> Duration {
        Duration::from_millis(self.fsync_interval_ms)
    }

    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }

    pub fn group_ttl(&self) -> Duration {
        Duration::from_millis(self.group_ttl_ms)
    }

    /// The file operations the logs use: the failpoints when armed, else the real ones.
    pub fn file_ops(&self) -> Option<std::sync::Arc<dyn broker_log::io::FileOps>> {
        if self.failpoint_enospc_file.is_none()
            && self.failpoint_eio_sync_file.is_none()
            && self.failpoint_sync_delay_ms.is_none()
        {
            return None;
        }
        Some(std::sync::Arc::new(crate::failpoint::Failpoints {
            no_space_while: self.failpoint_enospc_file.clone(),
            sync_fails_while: self.failpoint_eio_sync_file.clone(),
            sync_delay: self
                .failpoint_sync_delay_ms
                .map(std::time::Duration::from_millis),
        }))
    }

    /// The storage settings of one partition log, with the fsync policy: the log owns
    /// durability (group commit for `always`, its flusher for `interval`), so there is
    /// exactly one place that decides when data becomes durable.
    pub fn log_config(&self) -> broker_log::LogConfig {
        broker_log::LogConfig {
            segment_bytes: self.segment_bytes,
            retention_bytes: self.retention_bytes,
            retention_ms: self.retention_ms,
            fsync: match self.fsync {
                FsyncMode::Always => broker_log::FsyncPolicy::Always,
                FsyncMode::Interval => broker_log::FsyncPolicy::Interval(self.fsync_interval()),
                FsyncMode::Never => broker_log::FsyncPolicy::Never,
            },
            ..broker_log::LogConfig::default()
        }
    }
}
