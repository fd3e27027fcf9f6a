//! The broker's one error type. Every failure a request can meet is a variant here, with the
//! fields a client needs to fix its request; `http::error` is the only place that turns a
//! variant into a status code and a problem+json body.

use broker_log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },

    #[error("unknown topic {0:?}")]
    UnknownTopic(String),

    /// No route matches the path.
    #[error("no resource at {0}")]
    NoRoute(String),

    /// The route exists but not with this method; `allowed` is the `Allow` header's value.
    #[error("method {method} is not allowed here; allowed: {allowed}")]
    MethodNotAllowed { method: String, allowed: String },

    #[error("topic {topic:?} has no partition {partition} (it has {count})")]
    UnknownPartition {
        topic: String,
        partition: u64,
        count: u32,
    },

    #[error("topic {topic:?} already exists with {existing} partitions, not {requested}")]
    PartitionCountMismatch {
        topic: String,
        existing: u32,
        requested: u32,
    },

    /// A produce body line that is not a valid message; `line` is 1-based.
    #[error("line {line}: {reason}")]
    BadLine { line: usize, reason: String },

    #[error("{0}")]
    BadRequest(String),

    #[error(
        "unsupported content type {0:?}: use application/x-ndjson or application/vnd.broker.batch"
    )]
    UnsupportedMediaType(String),

    #[error("request body is larger than the limit of {max} bytes")]
    BodyTooLarge { max: usize },

    #[error("offset {requested} is out of range: the log holds offsets from {start} up to (not including) {end}")]
    OffsetOutOfRange {
        requested: u64,
        start: u64,
        end: u64,
    },

    #[error("producer {producer:?} sequence {seq} is older than the remembered window (latest {latest}) or was never appended to partition {partition}")]
    StaleSequence {
        producer: String,
        seq: u64,
        latest: u64,
        partition: u32,
    },

    #[error("producer {producer:?} sequence {seq} was appended to partition {partition} with {original} messages, this retry has {retried}")]
    SequenceMismatch {
        producer: String,
        seq: u64,
        partition: u32,
        original: u32,
        retried: usize,
    },

    #[error("the broker holds {max} topics, its limit (--max-topics): delete a topic first")]
    TooManyTopics { max: u32 },

    #[error("topic {0:?} does not exist and this broker does not create topics on first use (--auto-create-topics false): create it with PUT /v1/topics/{0}")]
    NoAutoCreate(String),

    #[error("{what} limit reached: {limit}")]
    LimitReached { what: &'static str, limit: usize },

    #[error("unknown group {0:?}")]
    UnknownGroup(String),

    #[error(
        "unknown member {member:?} of group {group:?} (left, expired or never joined: join again)"
    )]
    UnknownMember { group: String, member: String },

    #[error("stale generation {given}: group {group:?} is at generation {current} (heartbeat to learn the assignment)")]
    StaleGeneration {
        group: String,
        given: u64,
        current: u64,
    },

    #[error("partition {partition} of topic {topic:?} is not assigned to member {member:?}")]
    NotAssigned {
        member: String,
        topic: String,
        partition: u32,
    },

    #[error("a sync of topic {topic:?} partition {partition} failed: the partition refuses writes until the broker restarts")]
    SyncFailed { topic: String, partition: u32 },

    #[error("cannot set the server up: {0}")]
    Setup(#[from] pipeline_common::Error),

    #[error("the broker is still recovering its logs")]
    NotReady,

    #[error("the broker is shutting down")]
    ShuttingDown,

    #[error("storage: {0}")]
    Log(#[from] LogError),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("internal error: {0}")]
    Internal(String),

    /// In a cluster: another broker (or none, while it has no leader) leads the partition.
    #[error("this broker does not lead partition {partition} of topic {topic:?}: {}", match url { Some(u) => format!("its leader is at {u}"), None => "it has no leader now".to_string() })]
    NotLeader {
        topic: String,
        partition: u32,
        leader: Option<u64>,
        url: Option<String>,
    },

    /// In a cluster: the partition has fewer in-sync replicas than `--min-insync-replicas`,
    /// so nothing is appended (an acknowledged message must be on that many brokers).
    /// `appended`: the ISR shrank while the batch, already appended, waited for it (it is on
    /// the remaining in-sync replicas and may be read; a retry with the same producer and seq
    /// does not store it twice).
    #[error("partition {partition} of topic {topic:?} has {isr} in-sync replicas, fewer than the {min} a produce needs (--min-insync-replicas){}", if *appended { "; the batch was appended before the in-sync replicas shrank and is not acknowledged: retry with the same producer and seq" } else { ": nothing was appended; retry once a replica has caught up" })]
    NotEnoughReplicas {
        topic: String,
        partition: u32,
        isr: usize,
        min: usize,
        appended: bool,
    },

    /// In a cluster: the batch is appended at the leader but not yet on every in-sync
    /// replica within the wait, or the leader lost its leadership meanwhile. Not
    /// acknowledged: an idempotent retry (same producer and seq) stores it at most once.
    #[error("partition {partition} of topic {topic:?}: the batch was not confirmed by every in-sync replica ({why}); retry with the same producer and seq")]
    NotReplicated {
        topic: String,
        partition: u32,
        why: &'static str,
    },

    /// In a cluster: the metadata names this broker the partition's leader, but it has not
    /// taken the leadership yet (or is leaving it); nothing was done.
    #[error("partition {partition} of topic {topic:?}: this broker is taking or leaving its leadership; retry in a moment")]
    NotLeading { topic: String, partition: u32 },

    /// A follower's fetch named another leader epoch than this leader's: one of the two has
    /// not applied the latest metadata yet.
    #[error("partition {partition} of topic {topic:?} is led at epoch {current} here, the follower asked for epoch {given}")]
    EpochMismatch {
        topic: String,
        partition: u32,
        given: u32,
        current: u32,
    },

    /// In a cluster: another broker coordinates the consumer group.
    #[error("this broker does not coordinate group {group:?}: {}", match url { Some(u) => format!("its coordinator is at {u}"), None => format!("its coordinator is node {coordinator}") })]
    NotCoordinator {
        group: String,
        coordinator: u64,
        url: Option<String>,
    },

    /// The cluster's metadata could not be read or changed (no Raft leader, no quorum).
    #[error("cluster metadata: {0}")]
    Meta(#[from] broker_meta::MetaError),

    /// The cluster metadata refused a change (its reason, for the client).
    #[error("{0}")]
    Refused(broker_meta::Refusal),

    /// The cluster flags cannot work together.
    #[error("cluster configuration: {0}")]
    Cluster(String),
}

impl BrokerError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> BrokerError {
        BrokerError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
