//! Idempotent-producer state of one partition: for each producer, the last few sequence numbers
//! it appended and where each landed.
//!
//! The state is never persisted on its own: every idempotent batch carries its
//! [`ProducerStamp`] in the batch header, so [`ProducerTable::rebuild`] recovers the table
//! from the log at open. That is what makes a retry after a crash (written, not yet answered)
//! come back as a duplicate instead of a second copy.
//! The partition (not this module) holds the lock that makes one partition's check-then-append
//! atomic; `produce.rs` decides a request spanning several partitions as a whole.
//!
//! Idle producers are forgotten: one that appended nothing to the partition for the idle
//! window (`--producer-idle-ms`) is treated as unknown, so its state cannot grow without
//! bound; a retry of its old batch arriving after that is appended again (exactly-once holds
//! within the window, which is far longer than any client retries). The table is swept of
//! them at most every [`SWEEP_EVERY_MS`]. Producers rebuilt from the log at open count as
//! seen at open (conservative: they keep a whole window after a restart).

use std::collections::{HashMap, VecDeque};

use broker_log::{BatchMeta, LogError, PartitionLog, ProducerStamp};

/// How many of a producer's latest sequences are remembered per partition (the protocol
/// promises at least 5).
pub const WINDOW: usize = 8;

/// Least time between two sweeps of idle producers.
pub const SWEEP_EVERY_MS: i64 = 1_000;

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

/// One producer's latest sequences, oldest first, and when it last appended.
#[derive(Debug, Default)]
struct Producer {
    window: VecDeque<SeqEntry>,
    last_ms: i64,
}

/// Producer id (the FNV-1a hash of its string id) → its state.
#[derive(Debug)]
pub struct ProducerTable {
    producers: HashMap<u64, Producer>,
    /// How long an idle producer is remembered, in ms.
    idle_ms: i64,
    next_sweep_ms: i64,
}

impl ProducerTable {
    /// An empty table forgetting producers idle for `idle_ms`.
    pub fn new(idle_ms: u64) -> ProducerTable {
        ProducerTable {
            producers: HashMap::new(),
            idle_ms: i64::try_from(idle_ms).unwrap_or(i64::MAX),
            next_sweep_ms: 0,
        }
    }

    /// Replays the producer stamps of every batch in the log (each counts as seen `now_ms`).
    pub fn rebuild(
        log: &PartitionLog,
        idle_ms: u64,
        now_ms: i64,
    ) -> Result<ProducerTable, LogError> {
        let mut table = ProducerTable::new(idle_ms);
        log.for_each_batch_meta(log.start_offset(), &mut |meta: &BatchMeta| {
            if let Some(stamp) = meta.producer {
                table.record(stamp, meta.base_offset, meta.record_count, now_ms);
            }
        })?;
        Ok(table)
    }

    /// How many producers are remembered.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.producers.len()
    }

    pub fn check(&self, stamp: ProducerStamp, now_ms: i64) -> SeqCheck {
        let Some(producer) = self.producers.get(&stamp.producer_id) else {
            return SeqCheck::New;
        };
        if self.is_idle(producer, now_ms) {
            return SeqCheck::New;
        }
        let window = &producer.window;
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
    pub fn record(
        &mut self,
        stamp: ProducerStamp,
        base_offset: u64,
        record_count: u32,
        now_ms: i64,
    ) {
        self.sweep(now_ms);
        let idle = self
            .producers
            .get(&stamp.producer_id)
            .is_some_and(|p| self.is_idle(p, now_ms));
        let producer = self.producers.entry(stamp.producer_id).or_default();
        if idle {
            // Forgotten: it starts again from this batch.
            producer.window.clear();
        }
        producer.last_ms = now_ms;
        let window = &mut producer.window;
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

    fn is_idle(&self, producer: &Producer, now_ms: i64) -> bool {
        now_ms.saturating_sub(producer.last_ms) > self.idle_ms
    }

    /// Drops idle producers, at most every [`SWEEP_EVERY_MS`].
    fn sweep(&mut self, now_ms: i64) {
        if now_ms < self.next_sweep_ms {
            return;
        }
        self.next_sweep_ms = now_ms.saturating_add(SWEEP_EVERY_MS);
        let idle_ms = self.idle_ms;
        self.producers
            .retain(|_, p| now_ms.saturating_sub(p.last_ms) <= idle_ms);
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
        let mut t = ProducerTable::new(60_000);
        assert_eq!(t.check(stamp(1), 0), SeqCheck::New);
        t.record(stamp(1), 0, 3, 0);
        t.record(stamp(4), 3, 2, 0);
        assert_eq!(
            t.check(stamp(4), 0),
            SeqCheck::Duplicate(SeqEntry {
                seq: 4,
                base_offset: 3,
                record_count: 2
            })
        );
        assert_eq!(t.check(stamp(2), 0), SeqCheck::Stale { latest: 4 });
        assert_eq!(t.check(stamp(5), 0), SeqCheck::New);
    }

    #[test]
    fn an_idle_producer_is_forgotten_and_an_active_one_is_not() {
        let mut t = ProducerTable::new(1_000);
        t.record(stamp(1), 0, 1, 0);
        let other = ProducerStamp {
            producer_id: 9,
            seq: 1,
        };
        t.record(other, 1, 1, 0);
        // Producer 7 keeps appending; producer 9 goes quiet.
        for (seq, now) in [(2, 600), (3, 1_200), (4, 1_800)] {
            t.record(stamp(seq), seq, 1, now);
        }
        assert!(matches!(t.check(stamp(4), 1_900), SeqCheck::Duplicate(_)));
        assert_eq!(t.check(other, 1_900), SeqCheck::New, "idle past the window");
        t.record(stamp(5), 5, 1, 2_500);
        assert_eq!(t.remembered(), 1, "the sweep dropped the idle producer");
    }

    #[test]
    fn only_the_window_is_remembered() {
        let mut t = ProducerTable::new(60_000);
        for seq in 1..=20 {
            t.record(stamp(seq), seq * 10, 1, 0);
        }
        assert_eq!(
            t.check(stamp(20 - WINDOW as u64), 0),
            SeqCheck::Stale { latest: 20 }
        );
        assert!(matches!(
            t.check(stamp(21 - WINDOW as u64), 0),
            SeqCheck::Duplicate(_)
        ));
    }
}
