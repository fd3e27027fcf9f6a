//! The one error type of the `broker-client` crate.
//!
//! Broker failures keep the method, URL and status so a log line says what was asked and what
//! came back; [`Error::is_retryable`] is the single place deciding which failures a retry can
//! cure (the broker down or restarting) and which it cannot (a request the broker refuses).
//! What a caller's own failures are (a database, a CSV) is the caller's error type; the
//! retry loop works with either ([`crate::retry::RetryError`]).

/// Everything that can go wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker did not answer (refused, reset, timed out): it may be down or restarting.
    /// `unsent`: no connection could be made (refused, unreachable, no such host), so the
    /// request reached no broker and may go to another bootstrap URL at once.
    #[error("broker unreachable for {method} {url}: {reason}")]
    Transport {
        method: &'static str,
        url: String,
        reason: String,
        unsent: bool,
    },
    /// TLS to the broker failed in a way no retry cures: its certificate is not signed by a
    /// trusted CA (`--ca-file`), not for its host name, or expired, or it does not speak TLS.
    #[error("TLS to the broker refused for {method} {url}: {reason}")]
    Tls {
        method: &'static str,
        url: String,
        reason: String,
    },
    /// The broker answered with an error status; `detail` is its problem+json detail and
    /// `log_bounds` the problem's `(log_start_offset, log_end_offset)` when it has them (416).
    #[error("broker answered {status} to {method} {url}: {detail}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        detail: String,
        log_bounds: Option<(u64, u64)>,
    },
    /// A fetch asked for an offset the partition does not hold (retention, or a reset log).
    #[error("offset {offset} of {topic}/{partition} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        topic: String,
        partition: u32,
        offset: u64,
        log_start: u64,
        log_end: u64,
    },
    /// A request for a partition was answered 421 (not the leader) more times in a row than
    /// the client follows: the cluster's view of the leader keeps changing, or its brokers
    /// disagree. `leader` is the last leader named.
    #[error(
        "{topic}/{partition}: gave up after {hops} 421 answers (not the leader); the last \
         leader named was {leader}"
    )]
    Misdirected {
        topic: String,
        partition: u32,
        leader: String,
        hops: u32,
    },
    /// An NDJSON produce was refused with 421 because its lines go to partitions of more
    /// than one leader (or to one the client cannot tell: keyless lines of a request without
    /// producer and seq). Splitting a produce into one request per leader is not built yet:
    /// send each leader's lines apart (a binary batch per partition routes on its own).
    #[error(
        "NDJSON produce to {topic} refused with 421: its lines go to partitions led by \
         different brokers and the client could not split them per leader (a line whose \
         partition it cannot tell: keyless lines without producer and seq, or leaders that \
         kept moving): {detail}"
    )]
    SpansLeaders { topic: String, detail: String },
    /// A topic, group, producer or member name the broker's rules refuse, caught before
    /// sending (the broker would answer 400).
    #[error(transparent)]
    InvalidName(#[from] broker_wire::NameError),
    /// The broker's answer was not what the protocol says, or a record cannot be encoded.
    #[error("cannot decode the broker's answer to {url}: {reason}")]
    Decode { url: String, reason: String },
    /// The heartbeat thread of a group membership could not be started.
    #[error("cannot start the heartbeat thread: {0}")]
    HeartbeatThread(std::io::Error),
    /// A retry loop stopped because the process is shutting down.
    #[error("interrupted by shutdown")]
    Interrupted,
    /// A retry loop gave up after its deadline.
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: Box<Error> },
}

impl Error {
    /// Whether trying the same request again later can succeed: the broker is unreachable or
    /// says it is temporarily unable (not ready, overloaded, disk full, gateway trouble).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Status { status, .. } => {
                matches!(status, 408 | 421 | 429 | 500 | 502 | 503 | 504 | 507)
            }
            _ => false,
        }
    }

    /// The HTTP status when the broker answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::GaveUp { last, .. } => last.status(),
            Error::Misdirected { .. } | Error::SpansLeaders { .. } => Some(421),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
