//! How the rows of one CSV are shared by the streamers of a group, exactly once.
//!
//! Every row belongs to one of S *shards*, by a stable hash of its `Hostname` (so one GPU's
//! rows stay in one shard, in file order). The shards are the partitions of a small topic
//! `<topic>.shards`; the streamers join the broker group `--group` on that topic, so the
//! broker hands the shards out, and each shard's *progress* — which pass over the file, and
//! how many of the shard's records are done — is committed as that partition's group offset.
//!
//! Exactly once: each shard produces as its own idempotent producer (`<prefix>-shard-<n>`).
//! A shard's records are cut into fixed *cells* of `--batch-size` positions (bad rows keep
//! their position, so the cells depend only on the file); a cell's good rows are one produce
//! request with `seq = pass << 32 | the cell's first position`. Progress is committed after at
//! most a few acknowledged cells (see [`super::sender`]), always at a cell boundary, so
//! whoever streams the shard next — after a crash or a rebalance — resends exactly the same
//! cells under the same seqs, and the broker answers those it has with the original offsets
//! instead of appending them again. Hence every streamer of a group must use the same
//! `--batch-size`; a mismatch is detected (the broker refuses a seq retried with another
//! message count) and stops the streamer with an error rather than risk a duplicate.

/// Progress and seq share one layout: the pass in the high 32 bits, a position in the low.
pub const PASS_SHIFT: u32 = 32;

/// The committed progress of a shard that finished pass 0 (what a one-shot run waits for).
pub const FIRST_PASS_DONE: u64 = 1 << PASS_SHIFT;

/// The shard a row belongs to: FNV-1a 64 of its hostname bytes, modulo the shard count.
pub fn shard_of(hostname: &[u8], shards: u32) -> u32 {
    crate::client::partition_for_key(hostname, shards)
}

/// A shard's place: pass number and the count of its records already done in that pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Progress {
    pub pass: u32,
    pub position: u32,
}

impl Progress {
    pub fn decode(raw: u64) -> Progress {
        Progress {
            pass: (raw >> PASS_SHIFT) as u32,
            position: raw as u32,
        }
    }

    /// The number committed as the shard's group offset, and the seq of a batch starting here.
    pub fn encode(self) -> u64 {
        (u64::from(self.pass) << PASS_SHIFT) | u64::from(self.position)
    }

    pub fn next_pass(self) -> Progress {
        Progress {
            pass: self.pass + 1,
            position: 0,
        }
    }
}

/// The idempotent producer id of one shard: `<prefix>-shard-<n>`, with the prefix reduced to
/// the characters the broker accepts in a producer id.
pub fn producer_id(prefix: &str, shard: u32) -> String {
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("{clean}-shard-{shard}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_hash_is_stable_and_spreads_hosts() {
        // Pinned: changing the hash would move shards under running streamers.
        assert_eq!(
            shard_of(b"mtv5-dgx1-hgpu-031", 16),
            shard_of(b"mtv5-dgx1-hgpu-031", 16)
        );
        assert_eq!(shard_of(b"", 16), (0xcbf2_9ce4_8422_2325u64 % 16) as u32);
        let used: std::collections::BTreeSet<u32> = (0..31)
            .map(|i| shard_of(format!("mtv5-dgx1-hgpu-{i:03}").as_bytes(), 16))
            .collect();
        assert!(used.len() >= 10, "{used:?}");
    }

    #[test]
    fn progress_orders_by_pass_then_position_and_round_trips() {
        let a = Progress {
            pass: 0,
            position: u32::MAX,
        };
        let b = Progress {
            pass: 1,
            position: 0,
        };
        assert!(a.encode() < b.encode());
        assert_eq!(Progress::decode(b.encode()), b);
        assert_eq!(a.next_pass().encode(), FIRST_PASS_DONE);
    }

    #[test]
    fn producer_ids_only_use_the_allowed_characters() {
        assert_eq!(producer_id("my group/1", 3), "my_group_1-shard-3");
    }
}
