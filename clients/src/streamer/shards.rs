//! How the rows of one input are shared by the streamers of a group, exactly once.
//!
//! Every row belongs to one of S *shards*, by a stable hash of its `Hostname` (so one GPU's
//! rows stay in one shard, in file order). The shards are the partitions of a small topic
//! `<topic>.shards`; the streamers of `--group` streaming one input join the broker group
//! `<group>.input-<id>` on that topic (the input's own group: see [`super::input`]), so the
//! broker hands the shards out, and each shard's *progress* — which pass over the file, and
//! how many of the shard's records are done — is committed as that partition's group offset.
//!
//! Exactly once: each shard produces as its own idempotent producer
//! (`<prefix>-<input id>-shard-<n>`). A shard's records are cut into fixed *cells* of
//! `--batch-size` positions (bad rows keep their position, so the cells depend only on the
//! file); a cell's good rows are one produce request with
//! `seq = pass << 32 | the cell's first position`. Progress is committed after at most a few
//! acknowledged cells (see [`super::sender`]), always at a cell boundary, so whoever streams
//! the shard next — after a crash or a rebalance — resends exactly the same cells under the
//! same seqs, and the broker answers those it has with the original offsets instead of
//! appending them again. Hence every streamer of a group must use the same `--batch-size`; a
//! mismatch is detected (the broker refuses a seq retried with another message count) and
//! stops the streamer with an error rather than risk a duplicate.
//!
//! Runs: a one-shot run streams each shard through one more pass than the input's last
//! finished run ([`plan_one_shot`]). A new input has none, so its run is pass 0; the same
//! input again finds its run finished and has nothing to do; `--restart` asks for the next
//! pass, whose seqs are above every earlier one, so the broker appends it rather than taking
//! it for a repeat. `--restart` only starts a new run when the last one is finished: an
//! unfinished run is resumed, so a member that crashes and comes back with the flag still set
//! joins the run in progress instead of starting yet another one.

use std::collections::BTreeMap;

/// Progress and seq share one layout: the pass in the high 32 bits, a position in the low.
pub const PASS_SHIFT: u32 = 32;

/// The committed progress of a shard that finished pass 0.
pub const FIRST_PASS_DONE: u64 = 1 << PASS_SHIFT;

/// The shard a row belongs to: FNV-1a 64 of its hostname bytes, modulo the shard count.
pub fn shard_of(hostname: &[u8], shards: u32) -> u32 {
    broker_client::partition_for_key(hostname, shards)
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

/// Where a one-shot run stands before it starts, from the committed progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Stream until every shard has reached pass `target` (`resumed`: some progress of this
    /// run is committed already).
    Stream { target: u32, resumed: bool },
    /// Every shard has finished `passes` passes and no new one was asked for.
    Finished { passes: u32 },
}

/// The pass every shard must reach for the run in progress (or the last one) to be complete:
/// a shard at `(p, 0)` has finished pass `p - 1`, a shard at `(p, n > 0)` is in pass `p`.
fn passes_wanted(committed: &BTreeMap<u32, u64>, shards: u32) -> u32 {
    (0..shards)
        .map(|s| Progress::decode(committed.get(&s).copied().unwrap_or(0)))
        .map(|p| if p.position == 0 { p.pass } else { p.pass + 1 })
        .max()
        .unwrap_or(0)
}

/// What a one-shot run of an input with this committed progress does (see the module docs).
pub fn plan_one_shot(committed: &BTreeMap<u32, u64>, shards: u32, restart: bool) -> Plan {
    let wanted = passes_wanted(committed, shards);
    if wanted == 0 {
        return Plan::Stream {
            target: 1,
            resumed: false,
        };
    }
    if !all_reached(committed, shards, wanted) {
        return Plan::Stream {
            target: wanted,
            resumed: true,
        };
    }
    if restart {
        Plan::Stream {
            target: wanted + 1,
            resumed: false,
        }
    } else {
        Plan::Finished { passes: wanted }
    }
}

/// Whether every shard has finished pass `target - 1`.
pub fn all_reached(committed: &BTreeMap<u32, u64>, shards: u32, target: u32) -> bool {
    (0..shards).all(|s| {
        committed
            .get(&s)
            .is_some_and(|p| Progress::decode(*p).pass >= target)
    })
}

/// The idempotent producer id of one shard of one input: `<prefix>-<input id>-shard-<n>`,
/// with the prefix reduced to the characters the broker accepts in a producer id (and short
/// enough that the whole id fits its 128).
pub fn producer_id(prefix: &str, input_id: &str, shard: u32) -> String {
    format!("{}-{input_id}-shard-{shard}", clean_producer_prefix(prefix))
}

/// `prefix` with the characters a producer id may not hold replaced, cut to 90 characters.
pub fn clean_producer_prefix(prefix: &str) -> String {
    prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(90)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_hash_is_pinned_to_fnv1a_64_vectors_and_spreads_hosts() {
        // Pinned: changing the hash would move shards under running streamers. The hashes
        // are FNV-1a 64's published test vectors ("", "a", "foobar") and values computed once
        // with an independent implementation (Python) for real hostnames; the shard is the
        // hash modulo the count.
        let vectors: [(&[u8], u64, u32, u32); 5] = [
            (b"", 0xcbf2_9ce4_8422_2325, 5, 2),
            (b"a", 0xaf63_dc4c_8601_ec8c, 12, 5),
            (b"foobar", 0x8594_4171_f739_67e8, 8, 6),
            (b"mtv5-dgx1-hgpu-031", 0x4034_67a7_42cb_bdb6, 6, 2),
            (b"host-a", 0x66fb_9774_5619_1da5, 5, 1),
        ];
        for (key, hash, of16, of7) in vectors {
            let name = String::from_utf8_lossy(key);
            assert_eq!(broker_client::fnv1a64(key), hash, "hash of {name:?}");
            assert_eq!(shard_of(key, 16), of16, "shard of {name:?} among 16");
            assert_eq!(shard_of(key, 7), of7, "shard of {name:?} among 7");
            assert_eq!(shard_of(key, 1), 0, "one shard takes everything");
        }
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
    fn producer_ids_only_use_the_allowed_characters_and_fit() {
        assert_eq!(
            producer_id("my group/1", "00ff00ff00ff00ff", 3),
            "my_group_1-00ff00ff00ff00ff-shard-3"
        );
        assert!(producer_id(&"p".repeat(300), "00ff00ff00ff00ff", u32::MAX).len() <= 128);
    }

    fn at(progress: &[(u32, u32)]) -> BTreeMap<u32, u64> {
        progress
            .iter()
            .enumerate()
            .map(|(s, &(pass, position))| (s as u32, Progress { pass, position }.encode()))
            .collect()
    }

    #[test]
    fn a_new_input_streams_pass_zero() {
        let fresh = Plan::Stream {
            target: 1,
            resumed: false,
        };
        assert_eq!(plan_one_shot(&BTreeMap::new(), 3, false), fresh);
        assert_eq!(plan_one_shot(&BTreeMap::new(), 3, true), fresh);
    }

    #[test]
    fn an_unfinished_run_is_resumed_even_when_a_restart_is_asked() {
        let resume = |target| Plan::Stream {
            target,
            resumed: true,
        };
        // Shard 1 finished pass 0, shard 0 is in it, shard 2 has nothing committed.
        let committed = at(&[(0, 300), (1, 0)]);
        assert_eq!(plan_one_shot(&committed, 3, false), resume(1));
        assert_eq!(plan_one_shot(&committed, 3, true), resume(1));
        // A restarted run (pass 1) in progress.
        let committed = at(&[(1, 0), (1, 200), (1, 0)]);
        assert_eq!(plan_one_shot(&committed, 3, false), resume(2));
        assert_eq!(plan_one_shot(&committed, 3, true), resume(2));
    }

    #[test]
    fn a_finished_input_is_done_unless_restarted() {
        let committed = at(&[(1, 0), (1, 0), (1, 0)]);
        assert_eq!(
            plan_one_shot(&committed, 3, false),
            Plan::Finished { passes: 1 }
        );
        assert_eq!(
            plan_one_shot(&committed, 3, true),
            Plan::Stream {
                target: 2,
                resumed: false
            }
        );
        assert!(all_reached(&committed, 3, 1));
        assert!(!all_reached(&committed, 3, 2));
        assert!(
            !all_reached(&committed, 4, 1),
            "shard 3 has nothing committed"
        );
    }
}
