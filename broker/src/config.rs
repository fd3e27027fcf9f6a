//! The broker's configuration: every flag of the README's "Configuration" section, each with
//! its environment variable, plus the operational limits (`--max-body-bytes`,
//! `--session-timeout-ms`, `--max-topics`, `--group-ttl-ms`, `--producer-idle-ms`) and the
//! cluster flags (`--node-id`, `--peers`, `--advertised-url`, `--replication-factor`), whose
//! combinations [`Config::cluster`] checks.
//!
//! This module only describes and validates settings; `main.rs` parses them and
//! [`crate::run`] uses them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use broker_meta::state::MAX_PARTITIONS;
use broker_meta::NodeId;

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
    #[arg(long, env = "BROKER_PARTITIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PARTITIONS)))]
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

    // The cluster. Without --peers the broker is a cluster of one and starts no Raft.
    /// This broker's id in its cluster (the StatefulSet ordinal); only used with --peers.
    #[arg(long, env = "BROKER_NODE_ID", default_value_t = 0)]
    pub node_id: NodeId,

    /// The cluster's brokers, `id=url,…` (plain http URLs), this one included: the broker
    /// joins their Raft-replicated metadata. Empty: a cluster of one, exactly as before.
    #[arg(long, env = "BROKER_PEERS", default_value = "")]
    pub peers: String,

    /// The URL the other brokers and the clients reach this broker at (default: its own entry
    /// in --peers, which it must then equal).
    #[arg(long, env = "BROKER_ADVERTISED_URL")]
    pub advertised_url: Option<String>,

    /// Copies of each partition of a topic created in a cluster (capped by the members).
    #[arg(long, env = "BROKER_REPLICATION_FACTOR", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub replication_factor: u32,

    /// In a cluster: a produce is refused (503) while a partition has fewer in-sync replicas
    /// than this (capped by its replica count), so an acknowledged message is on at least
    /// this many brokers.
    #[arg(long, env = "BROKER_MIN_INSYNC_REPLICAS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub min_insync_replicas: u32,

    /// In a cluster: a follower that has not caught up with its leader's log end for this
    /// long leaves the partition's in-sync replicas (and stops holding up acknowledgements).
    /// At least 1000: an idle follower shows it is caught up once per long-poll (500 ms).
    #[arg(long, env = "BROKER_REPLICA_LAG_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1_000..))]
    pub replica_lag_ms: u64,

    /// In a cluster: a broker that has not answered the metadata leader's health checks for
    /// this long is declared down, and its partitions get new leaders from their in-sync
    /// replicas.
    #[arg(long, env = "BROKER_NODE_TIMEOUT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub node_timeout_ms: u64,

    /// In a cluster: a partition's preferred replica (the first of its replicas) that has
    /// been alive and in sync for this long without leading it is made its leader again, so
    /// leadership spreads back over the brokers after failovers and restarts. 0: never.
    #[arg(long, env = "BROKER_LEADER_REBALANCE_MS", default_value_t = 30_000)]
    pub leader_rebalance_ms: u64,
}

/// A broker's place in its cluster, checked ([`Config::cluster`]).
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub node_id: NodeId,
    /// Every broker, this one included, id → URL.
    pub peers: BTreeMap<NodeId, String>,
    pub advertised_url: String,
    /// The Raft log, vote and snapshot: `<data-dir>/meta/`.
    pub dir: PathBuf,
    pub replication_factor: u32,
    pub min_insync_replicas: u32,
    pub replica_lag: Duration,
    pub node_timeout: Duration,
    /// `None`: no preferred-leader rebalancing.
    pub leader_rebalance: Option<Duration>,
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

    /// The cluster this broker joins: `None` without `--peers` (a cluster of one), an error
    /// naming the flags when their combination cannot work.
    pub fn cluster(&self) -> Result<Option<ClusterConfig>, String> {
        let peers = broker_meta::node::parse_peers(&self.peers).map_err(|e| e.to_string())?;
        if peers.is_empty() {
            return Ok(None);
        }
        let Some(own) = peers.get(&self.node_id) else {
            return Err(format!(
                "--peers {:?} does not name this broker's --node-id {}: every broker is given \
                 the same list, itself included",
                self.peers, self.node_id
            ));
        };
        if let Some((id, url)) = peers.iter().find(|(_, u)| !is_plain_http_url(u)) {
            return Err(format!(
                "--peers: node {id}'s URL {url:?} is not an http://host:port URL (the cluster's \
                 RPCs are plain HTTP)"
            ));
        }
        if self.serve.tls_cert.is_some() {
            return Err(
                "--tls-cert with --peers: the cluster's metadata RPCs speak plain HTTP \
                        only, so a clustered broker cannot serve TLS yet"
                    .into(),
            );
        }
        if self.listen.port() == 0 {
            return Err(format!(
                "--listen {} with --peers: the other brokers reach this one at a fixed \
                 port, so it cannot be 0",
                self.listen
            ));
        }
        let advertised_url = match &self.advertised_url {
            Some(url) if url.trim_end_matches('/') != own.trim_end_matches('/') => {
                return Err(format!(
                    "--advertised-url {url:?} differs from this broker's entry in --peers \
                     ({own:?}): the other brokers would reach it at another address"
                ));
            }
            _ => own.trim_end_matches('/').to_string(),
        };
        Ok(Some(ClusterConfig {
            node_id: self.node_id,
            peers,
            advertised_url,
            dir: self.data_dir.join("meta"),
            replication_factor: self.replication_factor,
            min_insync_replicas: self.min_insync_replicas,
            replica_lag: Duration::from_millis(self.replica_lag_ms),
            node_timeout: Duration::from_millis(self.node_timeout_ms),
            leader_rebalance: (self.leader_rebalance_ms > 0)
                .then(|| Duration::from_millis(self.leader_rebalance_ms)),
        }))
    }

    /// Whether the broker is one of a cluster (`--peers` given): its partitions replicate.
    pub fn is_clustered(&self) -> bool {
        !self.peers.trim().is_empty()
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

/// `http://host:port` with a non-empty host and a port (no path beyond `/`).
fn is_plain_http_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.trim_end_matches('/');
    match authority.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !authority.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["broker", "--listen", "127.0.0.1:9090"];
        all.extend_from_slice(args);
        Config::parse_from(all)
    }

    #[test]
    fn no_peers_is_a_cluster_of_one() {
        assert!(config(&[]).cluster().expect("valid").is_none());
        assert!(config(&["--node-id", "2"])
            .cluster()
            .expect("valid")
            .is_none());
    }

    #[test]
    fn peers_must_name_this_node_with_usable_urls() {
        let peers = "0=http://a:9090,1=http://b:9090";
        let c = config(&["--node-id", "1", "--peers", peers]).cluster();
        let c = c.expect("valid").expect("clustered");
        assert_eq!(c.advertised_url, "http://b:9090");
        assert_eq!(c.dir, PathBuf::from("./data/broker/meta"));
        for bad in [
            vec!["--node-id", "2", "--peers", peers],
            vec!["--peers", "0=https://a:9090"],
            vec!["--peers", "0=http://a"],
            vec!["--peers", "0=a:9090"],
            vec!["--peers", "zero=http://a:9090"],
            vec!["--peers", peers, "--advertised-url", "http://elsewhere:1"],
            vec![
                "--peers",
                peers,
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
            ],
        ] {
            assert!(config(&bad).cluster().is_err(), "{bad:?}");
        }
        let port0 = Config::parse_from(["broker", "--listen", "127.0.0.1:0", "--peers", peers]);
        assert!(port0.cluster().is_err());
    }
}
