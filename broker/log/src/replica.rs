//! Checking a follower's fetched bytes before [`crate::PartitionLog::append_replica`] stores
//! them: the leader's stored batches, back to back, as `read_encoded` returns them.
//!
//! This module owns the rules a replica append refuses on (framing and CRC through the
//! batch decoder, record framing, contiguity of offsets, epochs never going back); the log
//! owns where the bytes go. The whole buffer is checked before anything is written, so a
//! refused buffer appends nothing (see `append_replica` for why all-or-nothing).

use crate::record::{self, BatchHeader, Decoded};
use crate::LogError;

/// One checked batch of the buffer: where it is and its header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Checked {
    pub position: usize,
    pub header: BatchHeader,
}

impl Checked {
    pub(crate) fn len(&self) -> usize {
        self.header.batch_length as usize
    }
}

/// Walks `encoded` batch by batch: each must be intact (CRC, framing, records), start at
/// `end` (then at the previous batch's end) and have a leader epoch `≥ latest_epoch` (then
/// `≥` the previous batch's). Returns every batch, or the first refusal.
pub(crate) fn check(
    encoded: &[u8],
    mut end: u64,
    latest_epoch: Option<u32>,
) -> Result<Vec<Checked>, LogError> {
    let mut out = Vec::new();
    let mut latest = latest_epoch;
    let mut position = 0;
    while position < encoded.len() {
        let invalid = |reason: String| LogError::ReplicaBatchInvalid { position, reason };
        let batch = match record::decode(&encoded[position..]) {
            Decoded::Intact(b) => b,
            // Zeros are the end of data in a segment, never part of a fetch.
            Decoded::Empty => {
                return Err(invalid("zero bytes where a batch header belongs".into()))
            }
            Decoded::Torn { needed, available } => {
                return Err(invalid(format!(
                    "truncated: the batch needs {needed} bytes, {available} are left"
                )))
            }
            Decoded::Corrupt { expected, found } => {
                return Err(invalid(format!(
                    "CRC mismatch: header says {expected:#010x}, bytes give {found:#010x}"
                )))
            }
            Decoded::Malformed { reason } => return Err(invalid(reason.into())),
        };
        batch
            .validate_records()
            .map_err(|reason| invalid(reason.into()))?;
        let header = batch.header;
        if header.base_offset != end {
            return Err(LogError::ReplicaNotContiguous {
                position,
                expected: end,
                found: header.base_offset,
            });
        }
        if let Some(latest) = latest.filter(|&l| header.leader_epoch < l) {
            return Err(LogError::ReplicaStaleEpoch {
                position,
                epoch: header.leader_epoch,
                latest,
            });
        }
        end = end
            .checked_add(u64::from(header.record_count))
            .ok_or_else(|| invalid("offsets past the largest u64".into()))?;
        latest = Some(header.leader_epoch);
        out.push(Checked { position, header });
        position += batch.bytes.len();
    }
    Ok(out)
}
