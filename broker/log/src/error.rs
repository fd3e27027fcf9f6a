//! The crate's one error type. Variants carry the position or path at fault.

use std::path::PathBuf;

/// Everything a [`crate::PartitionLog`] operation can fail with.
#[derive(thiserror::Error, Debug)]
pub enum LogError {
    /// A file operation failed; `context` names the operation and the file.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Preallocating a segment failed because the disk is full; the log stays usable.
    #[error("no space to preallocate {needed} bytes for {}: {source}", path.display())]
    NoSpace {
        path: PathBuf,
        needed: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("offset {requested} is out of range [{start}, {end}]")]
    OffsetOutOfRange {
        requested: u64,
        start: u64,
        end: u64,
    },
    #[error("invalid batch: {reason}")]
    InvalidBatch { reason: String },
    #[error("batch of {size} bytes is over the maximum of {max}")]
    RecordTooLarge { size: usize, max: usize },
    /// A sync failed earlier: the log refuses appends until it is reopened, because what the
    /// kernel dropped cannot be known. A truncation that failed half-way refuses reads too
    /// (its files may be half cut); reopening finishes it.
    #[error("the log is poisoned by a failed sync or truncation; reopen it")]
    Poisoned,
    /// `set_leader_epoch` with an epoch lower than the log's latest: epochs never go back
    /// along a log (the epoch cache and truncation rely on it).
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    StaleEpoch { epoch: u32, latest: u32 },
    /// Stored bytes failed their check while reading a sealed or active segment.
    #[error("corrupt data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
}

impl LogError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> LogError {
        LogError::Io {
            context: context.into(),
            source,
        }
    }
}
