//! The one error type of the `clients` crate.
//!
//! Broker failures are the client library's own error ([`broker_client::Error`]), wrapped:
//! it decides which of them a retry can cure. The rest is the streamer's and the collector's
//! (CSV rows, the database, the spool).

use std::fmt;

/// Everything that can go wrong in the streamer and the collector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A broker call failed (or a retry loop around one ended).
    #[error(transparent)]
    Broker(#[from] broker_client::Error),
    /// A point or a scrape target list cannot be encoded or understood (broker answers are
    /// the client library's to decode).
    #[error("cannot decode the broker's answer to {url}: {reason}")]
    Decode { url: String, reason: String },
    /// A retry loop of our own (around PostgreSQL) stopped because the process is shutting
    /// down; a broker call's is `Broker(Interrupted)`: ask [`Error::is_interrupted`].
    #[error("interrupted by shutdown")]
    Interrupted,
    /// A retry loop of our own gave up after its deadline.
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
    /// Whether trying again later can succeed: a broker call's own judgement
    /// ([`broker_client::Error::is_retryable`]); nothing else is retried by default.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Broker(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// The HTTP status when the broker answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Broker(e) => e.status(),
            Error::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }

    /// Whether a retry loop, ours or a broker call's, ended because of shutdown.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            Error::Interrupted | Error::Broker(broker_client::Error::Interrupted)
        )
    }
}

/// The collector's retry loops around PostgreSQL use the client's retry mechanism.
impl broker_client::RetryError for Error {
    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }

    fn interrupted() -> Self {
        Error::Interrupted
    }

    fn gave_up(attempts: u32, last: Self) -> Self {
        Error::GaveUp {
            attempts,
            last: Box::new(last),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use broker_client::RetryPolicy;
    use pipeline_common::shutdown::ShutdownFlag;

    use super::*;

    #[test]
    fn a_broker_calls_interruption_and_our_own_both_count_as_interrupted() {
        assert!(Error::from(broker_client::Error::Interrupted).is_interrupted());
        assert!(Error::Interrupted.is_interrupted());
        assert!(!Error::Csv {
            path: "p".into(),
            reason: "r".into()
        }
        .is_interrupted());
    }

    #[test]
    fn retries_of_our_own_end_in_our_own_gave_up_with_the_broker_status_inside() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(1),
            give_up_after: Some(Duration::from_millis(20)),
            ..RetryPolicy::default()
        };
        let got: Result<()> = policy.run(&ShutdownFlag::new(), "op", || {
            Err(Error::from(broker_client::Error::Status {
                method: "GET",
                url: "u".into(),
                status: 503,
                detail: "not ready".into(),
                log_bounds: None,
            }))
        });
        match got {
            Err(e @ Error::GaveUp { .. }) => assert_eq!(e.status(), Some(503)),
            other => panic!("{other:?}"),
        }
    }
}
