//! The one error type of the `clients` crate.
//!
//! Broker failures keep the method, URL and status so a log line says what was asked and what
//! came back; [`Error::is_retryable`] is the single place deciding which failures a retry can
//! cure (the broker down or restarting) and which it cannot (a request the broker refuses).

use std::fmt;

/// Everything that can go wrong in the client library, the streamer and the collector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker did not answer (refused, reset, timed out): it may be down or restarting.
    #[error("broker unreachable for {method} {url}: {reason}")]
    Transport {
        method: &'static str,
        url: String,
        reason: String,
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
    /// A topic, group, producer or member name the broker's rules refuse, caught before
    /// sending (the broker would answer 400).
    #[error(transparent)]
    InvalidName(#[from] broker_wire::NameError),
    /// The broker's answer was not what the protocol says.
    #[error("cannot decode the broker's answer to {url}: {reason}")]
    Decode { url: String, reason: String },
    /// A retry loop stopped because the process is shutting down.
    #[error("interrupted by shutdown")]
    Interrupted,
    /// A retry loop gave up after its deadline.
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: Box<Error> },
    /// One CSV row that cannot become a telemetry point (the row is skipped, never fatal).
    #[error("line {line}: {reason}")]
    BadRow { line: u64, reason: RowProblem },
    /// A shard's batch cell differs from what was produced under its seq before: the group's
    /// streamers do not agree on `--batch-size` (or the file changed under the group).
    #[error("shard {shard} was streamed before with another --batch-size or another file (every streamer of group {group} must use the same): {detail}")]
    BatchMismatch {
        shard: u32,
        group: String,
        detail: String,
    },
    /// The CSV as a whole is unusable (cannot be opened, or lacks a required column).
    #[error("CSV {path}: {reason}")]
    Csv { path: String, reason: String },
    /// `--group` cannot name the broker groups derived from it (see `streamer::input`).
    #[error("--group {group}: {reason}")]
    GroupName { group: String, reason: String },
    /// One of our own threads panicked (a bug); the process stops rather than guess.
    #[error("the {0} thread panicked")]
    ThreadPanicked(&'static str),
    #[error("database: {0}")]
    Db(#[from] postgres::Error),
    /// The store refused or failed (connection settings, a statement, a setting).
    #[error("store: {0}")]
    Store(#[from] store::Error),
    #[error("database connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// The scrape spool's directory cannot be opened or written.
    #[error("scrape spool {dir}: {reason}")]
    Spool { dir: String, reason: String },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a CSV row was rejected: a short, human reason naming the column at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem(pub String);

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error {
    /// Whether trying the same request again later can succeed: the broker is unreachable or
    /// says it is temporarily unable (not ready, overloaded, disk full, gateway trouble).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Status { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 507)
            }
            _ => false,
        }
    }

    /// The HTTP status when the broker answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
