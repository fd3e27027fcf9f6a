//! Idempotent-producer state of one partition: for each producer, the last few sequence numbers
//! it appended and where each landed.
//!
//! The state is never persisted on its own: every idempotent batch carries its
//! [`ProducerStamp`] in the batch header, so [`ProducerTable::rebuild`] recovers the table
//! from the log at open. That is what makes a retry after a crash (written, not yet answered)
//! come back as a duplicate instead of a second copy.
//! The partition (not this module) holds the lock that makes check-then-append atomic.

use std::collections::{HashMap, VecDeque};

use broker_log::{BatchMeta, LogError, PartitionLog, ProducerStamp};

/// How many of a producer's latest sequences are remembered per partition (the protocol
/// promises at least 5).
pub const WINDOW: usize = 8;

/// Where one remembered sequence was appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqEntry {
    pub seq: u64,
    pub base_offset: u64,
    pub record_count: u32,
}

/// What to do with an incoming `(producer, seq)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqCheck {
    /// Greater than anything seen: append it.
    New,
    /// Appended before: answer these offsets, append nothing.
    Duplicate(SeqEntry),
    /// Older than the window, or an older seq that was never appended here: refuse.
    Stale { latest: u64 },
}

/// Producer id (the FNV-1a hash of its string id) → its latest sequences, oldest first.
#[derive(Debug, Default)]
pub struct ProducerTable {
    producers: HashMap<u64, VecDeque<SeqEntry>>,
}

impl ProducerTable {
    /// Replays the producer stamps of every batch in the log.
    pub fn rebuild(log: &PartitionLog) -> Result<ProducerTable, LogError> {
        let mut table = ProducerTable::default();
        log.for_each_batch_meta(log.start_offset(), &mut |meta: &BatchMeta| {
            if let Some(stamp) = meta.producer {
                table.record(stamp, meta.base_offset, meta.record_count);
            }
        })?;
        Ok(table)
    }

    pub fn check(&self, stamp: ProducerStamp) -> SeqCheck {
        let Some(window) = self.producers.get(&stamp.producer_id) else {
            return SeqCheck::New;
        };
        let latest = window.back().map_or(0, |e| e.seq);
        if window.is_empty() || stamp.seq > latest {
            return SeqCheck::New;
        }
        match window.iter().find(|e| e.seq == stamp.seq) {
            Some(entry) => SeqCheck::Duplicate(*entry),
            None => SeqCheck::Stale { latest },
        }
    }

    /// Remembers an appended batch. Out-of-order records (never produced by `check` → `New`)
    /// are ignored, so the window stays sorted.
    pub fn record(&mut self, stamp: ProducerStamp, base_offset: u64, record_count: u32) {
        let window = self.producers.entry(stamp.producer_id).or_default();
        if window.back().is_some_and(|e| e.seq >= stamp.seq) {
            return;
        }
        window.push_back(SeqEntry {
            seq: stamp.seq,
            base_offset,
            record_count,
        });
        while window.len() > WINDOW {
            window.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(seq: u64) -> ProducerStamp {
        ProducerStamp {
            producer_id: 7,
            seq,
        }
    }

    #[test]
    fn new_duplicate_and_stale_are_told_apart() {
        let mut t = ProducerTable::default();
        assert_eq!(t.check(stamp(1)), SeqCheck::New);
        t.record(stamp(1), 0, 3);
        t.record(stamp(4), 3, 2);
        assert_eq!(
            t.check(stamp(4)),
            SeqCheck::Duplicate(SeqEntry {
                seq: 4,
                base_offset: 3,
                record_count: 2
            })
        );
        assert_eq!(t.check(stamp(2)), SeqCheck::Stale { latest: 4 });
        assert_eq!(t.check(stamp(5)), SeqCheck::New);
    }

    #[test]
    fn only_the_window_is_remembered() {
        let mut t = ProducerTable::default();
        for seq in 1..=20 {
            t.record(stamp(seq), seq * 10, 1);
        }
        assert_eq!(
            t.check(stamp(20 - WINDOW as u64)),
            SeqCheck::Stale { latest: 20 }
        );
        assert!(matches!(
            t.check(stamp(21 - WINDOW as u64)),
            SeqCheck::Duplicate(_)
        ));
    }
}
