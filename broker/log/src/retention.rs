//! Retention: which whole sealed segments to delete, oldest first.
//!
//! By size: delete the oldest sealed segment while the log (sealed sizes + the active
//! segment's written bytes) is larger than `retention_bytes`. By age: delete the oldest
//! sealed segment while its newest record is older than `now - retention_ms`. Deletion
//! stops at the first segment neither rule selects, so the log always stays one contiguous
//! range of offsets. The active segment is never deleted. What this module does not own:
//! removing files (`log`) or reading batches (`record`).

use crate::record::{self, HEADER_LEN_V1};
use crate::LogConfig;

/// Decides whether the oldest sealed segment goes, given the log's current total size.
pub(crate) fn should_delete(
    config: &LogConfig,
    total_bytes: u64,
    max_timestamp_ms: impl FnOnce() -> Option<i64>,
    now_ms: i64,
) -> bool {
    let by_size = config
        .retention_bytes
        .is_some_and(|limit| total_bytes > limit);
    by_size
        || config.retention_ms.is_some_and(|ms| {
            let cutoff = now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX));
            max_timestamp_ms().is_some_and(|newest| newest < cutoff)
        })
}

/// The largest `max_timestamp_ms` over a segment's batch headers (header hops, no CRC).
/// None for a segment without a readable batch.
pub(crate) fn newest_timestamp(bytes: &[u8]) -> Option<i64> {
    let mut pos = 0;
    let mut newest = None;
    while bytes.len().saturating_sub(pos) >= HEADER_LEN_V1 {
        let Some(h) = record::peek_header(&bytes[pos..]) else {
            break;
        };
        newest = newest.max(Some(h.max_timestamp_ms));
        pos += h.batch_length as usize;
    }
    newest
}
