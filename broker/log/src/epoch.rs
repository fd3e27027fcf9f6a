//! The leader-epoch cache: for each leader epoch in the log, the offset of its first record.
//!
//! Each v2 batch header carries the leader epoch it was appended in (v1 batches count as
//! epoch 0), and epochs never decrease along a log: the log refuses a lower epoch
//! (`PartitionLog::set_leader_epoch`), and a replica appends its leader's batches, whose
//! epochs grow the same way. So the whole history fits in a short list of `(epoch, start
//! offset)` entries, increasing in both, and epoch `e` spans from its start to the next
//! entry's start (or the log end). That answers the replication question "where did my log
//! stop agreeing with the leader's" ([`EpochCache::end_offset_for`], Kafka's
//! OffsetsForLeaderEpoch).
//!
//! The cache lives in memory only and is derived from batch headers, never stored: nothing
//! new to keep crash-consistent. It is built on first need, not at open, because open must
//! not read every sealed segment (it only `stat`s them); the build reads one header per
//! segment and walks the headers only of a segment whose first epoch differs from the next
//! segment's first (the only segments an epoch can change in). What this module does not
//! own: reading segments (the log hands it headers) and truncating files (`truncate`).

use crate::record::{self, BatchHeader};

/// One epoch's first offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EpochEntry {
    pub epoch: u32,
    pub start_offset: u64,
}

/// `(epoch, start offset)` entries, increasing in both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// Notes a batch of `epoch` starting at `offset`, appended after every batch noted so
    /// far: a greater epoch starts a new entry, the same one changes nothing. A lower one
    /// would break the order the lookups rely on; the log never writes one, so one read from
    /// disk is logged and left out.
    pub(crate) fn note(&mut self, epoch: u32, offset: u64) {
        match self.entries.last() {
            Some(last) if last.epoch == epoch => {}
            Some(last) if last.epoch > epoch => {
                tracing::warn!(
                    epoch,
                    offset,
                    latest = last.epoch,
                    "batch with a lower leader epoch than the one before it; left out of the epoch cache"
                );
            }
            _ => self.entries.push(EpochEntry {
                epoch,
                start_offset: offset,
            }),
        }
    }

    /// The epoch of the last batch, None when the cache is empty.
    pub(crate) fn latest(&self) -> Option<u32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The largest epoch `≤ epoch` and the offset where it ends: the start of the next
    /// greater epoch, or `log_end` for the latest. None when no epoch `≤ epoch` is in the log.
    pub(crate) fn end_offset_for(&self, epoch: u32, log_end: u64) -> Option<(u32, u64)> {
        let i = self.entries.partition_point(|e| e.epoch <= epoch);
        let found = self.entries.get(i.checked_sub(1)?)?;
        let end = self
            .entries
            .get(i)
            .map_or(log_end, |next| next.start_offset);
        Some((found.epoch, end))
    }

    /// Forgets the epochs starting at or after `end` (the log was truncated to `end`).
    pub(crate) fn truncate(&mut self, end: u64) {
        let keep = self.entries.partition_point(|e| e.start_offset < end);
        self.entries.truncate(keep);
    }

    /// Forgets the epochs that ended before `start` and moves the first kept one's start up
    /// to `start` (retention deleted the segments below it); `end` is the log end.
    pub(crate) fn trim_start(&mut self, start: u64, end: u64) {
        let ends: Vec<u64> = self
            .entries
            .iter()
            .skip(1)
            .map(|e| e.start_offset)
            .chain([end])
            .collect();
        let drop = ends.iter().take_while(|&&e| e <= start).count();
        self.entries.drain(..drop);
        if let Some(first) = self.entries.first_mut() {
            first.start_offset = first.start_offset.max(start);
        }
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }
}

/// The batch headers of a segment's bytes, oldest first, by header hops (no CRC check; the
/// walk ends at the first unreadable header, as the data does).
pub(crate) fn headers(bytes: &[u8]) -> impl Iterator<Item = BatchHeader> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let header = record::peek_header(bytes.get(pos..)?)?;
        pos += header.batch_length as usize;
        Some(header)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(u32, u64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for &(e, o) in entries {
            c.note(e, o);
        }
        c
    }

    #[test]
    fn end_offset_is_the_next_greater_epochs_start_or_the_log_end() {
        // Epoch 0 at [0, 10), 3 at [10, 25), 7 at [25, end).
        let c = cache(&[(0, 0), (0, 4), (3, 10), (3, 12), (7, 25)]);
        assert_eq!(c.entries().len(), 3);
        assert_eq!(c.latest(), Some(7));
        assert_eq!(c.end_offset_for(0, 40), Some((0, 10)));
        assert_eq!(c.end_offset_for(2, 40), Some((0, 10)));
        assert_eq!(c.end_offset_for(3, 40), Some((3, 25)));
        assert_eq!(c.end_offset_for(6, 40), Some((3, 25)));
        assert_eq!(c.end_offset_for(7, 40), Some((7, 40)));
        assert_eq!(c.end_offset_for(100, 40), Some((7, 40)));
        let later = cache(&[(5, 100)]);
        assert_eq!(later.end_offset_for(4, 120), None);
        assert_eq!(EpochCache::default().end_offset_for(0, 0), None);
    }

    #[test]
    fn a_lower_epoch_is_left_out() {
        let c = cache(&[(2, 0), (1, 5), (3, 9)]);
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 2,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 3,
                    start_offset: 9
                }
            ]
        );
    }

    #[test]
    fn truncation_and_retention_trim_the_entries() {
        let mut c = cache(&[(0, 0), (3, 10), (7, 25)]);
        c.truncate(26);
        assert_eq!(c.latest(), Some(7));
        c.truncate(25);
        assert_eq!(c.latest(), Some(3));
        assert_eq!(c.end_offset_for(9, 20), Some((3, 20)));
        c.trim_start(12, 20);
        assert_eq!(
            c.end_offset_for(0, 20),
            None,
            "epoch 0 ended before the start"
        );
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 12
            }]
        );
        c.trim_start(20, 20);
        assert_eq!(c.latest(), None, "an empty log has no epoch");
        let mut c = cache(&[(0, 0), (3, 10)]);
        c.truncate(0);
        assert_eq!(c.latest(), None);
    }
}
