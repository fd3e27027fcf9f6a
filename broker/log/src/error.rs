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
    /// `append_replica`: the batch at byte `position` of the fetched bytes is torn (the
    /// buffer ends inside it), fails its CRC or cannot be a batch. Nothing was appended.
    #[error("replica batch at byte {position} of the fetched bytes is invalid: {reason}")]
    ReplicaBatchInvalid { position: usize, reason: String },
    /// `append_replica`: the batch at byte `position` does not start where the log (for the
    /// first batch) or the batch before it ends: a gap or an overlap. Nothing was appended.
    #[error("replica batch at byte {position} starts at offset {found}, the log needs {expected}")]
    ReplicaNotContiguous {
        position: usize,
        expected: u64,
        found: u64,
    },
    /// `append_replica`: the batch at byte `position` has a leader epoch older than the log's
    /// latest (or than the batch before it): epochs never go back along a log. Nothing was
    /// appended.
    #[error(
        "replica batch at byte {position} has leader epoch {epoch}, older than the log's latest {latest}"
    )]
    ReplicaStaleEpoch {
        position: usize,
        epoch: u32,
        latest: u32,
    },
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
