//! Appending one produce request's batches (one per partition it touches) to their
//! partitions, and the rule that makes an idempotent request all-or-nothing across them.
//!
//! Each partition checks a producer's seq against its own window (`producers.rs`) under its
//! own mutex. Checked and appended partition by partition, a request `(P, T)` spanning
//! partitions {0, 1, 2} could be appended to 0 and 1 and then refused on 2, where a request
//! `(P, T+1)` got first: answered 409 (so dropped by the client) yet stored in part. So an
//! idempotent request is decided as a whole before anything is appended: every partition it
//! touches is checked, and
//! - a stale seq, or a retry with another message count, on any of them → the whole request is
//!   refused with that 409, nothing appended;
//! - a duplicate on every one → the original offsets, nothing appended;
//! - otherwise the new partitions are appended and the duplicate ones answer their original
//!   offsets: a retry of a request a broker failure (crash, full disk) cut off between its
//!   partitions' appends — a request's batches are not one write — completes it.
//!
//! The check and the appends must not interleave with another idempotent append of the same
//! producer to the same topic (two streamers sending slots `T` and `T+1` of one target at
//! once). [`ProducerLocks`] is a striped lock per topic, the stripe chosen by producer id,
//! held across check-all and append-all by every idempotent produce — NDJSON or binary, one
//! partition or several, since a one-partition append of `T+1` between the check and the
//! appends of `T` would cut `T` just the same. Non-idempotent produces touch no producer state
//! and take no stripe.
//!
//! Why stripes rather than the partitions' own mutexes locked in ascending order: fetches,
//! offsets and retention take those, and holding all of a request's across all its appends (an
//! append that rolls a segment syncs and preallocates: milliseconds) would stall every reader
//! of those partitions. A stripe is contended only by idempotent produces of producers that
//! share it — rarely, with 64 stripes and hashed producer ids — and they merely take turns.
//! Why not one mutex per producer: a map of them would need its own eviction, while idle
//! stripes cost nothing. A stripe is a std mutex because the section never awaits: durability
//! is awaited by the caller after the stripe is released. An append that may block runs
//! inside it through `block_in_place` (in `partition.rs`) exactly as it does outside, and a
//! request that finds its stripe taken waits the same way, so waiters never hold a runtime
//! worker that fetches and heartbeats need.
//!
//! Partition internals (the window check, the log append) are `partition.rs`'s; decoding and
//! the HTTP answer are the handler's.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use crate::error::Result;
use crate::partition::{may_block, Appended, Idempotence, Partition, Payload, Writer};
use crate::topics::Topic;

/// How many stripes a topic's producer lock has.
pub const STRIPES: usize = 64;

/// A topic's striped lock over idempotent producers (see the module doc).
pub struct ProducerLocks {
    stripes: [Mutex<()>; STRIPES],
}

impl Default for ProducerLocks {
    fn default() -> Self {
        ProducerLocks {
            stripes: std::array::from_fn(|_| Mutex::new(())),
        }
    }
}

impl ProducerLocks {
    /// Locks the stripe of `producer_id`. Uncontended, at once; when another request holds it
    /// (its append may be rolling a segment: milliseconds), the wait runs like any blocking
    /// call ([`may_block`]), so waiters never pin the runtime's workers.
    fn lock(&self, producer_id: u64) -> MutexGuard<'_, ()> {
        // Ids are FNV-1a hashes already; the multiply spreads any that are not.
        let stripe = (producer_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize;
        let mutex = &self.stripes[stripe % STRIPES];
        // The stripe guards no data: a panic while it was held leaves nothing to repair.
        match mutex.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                may_block(|| mutex.lock().unwrap_or_else(PoisonError::into_inner))
            }
        }
    }
}

/// One partition's share of a request.
pub struct Batch<'a> {
    pub partition: u32,
    pub payload: Payload<'a>,
    /// Who the produce writes as: `Anyone` unreplicated, else the leader epoch it was
    /// checked against (a role changed since refuses the append).
    pub writer: Writer,
}

/// Where one batch landed (or, for a duplicate, had landed) and the end offset to settle on.
pub struct Placed<'t> {
    pub partition: &'t Arc<Partition>,
    pub appended: Appended,
    pub end: u64,
}

/// Appends `batches` (distinct partitions) to `topic` without waiting for durability; an
/// idempotent request is decided whole first (see the module doc). The caller settles each
/// [`Placed::end`].
pub fn append<'t>(
    topic: &'t Topic,
    batches: Vec<Batch<'_>>,
    idem: Option<Idempotence<'_>>,
) -> Result<Vec<Placed<'t>>> {
    let mut placed = Vec::with_capacity(batches.len());
    let Some(idem) = idem else {
        for batch in batches {
            let partition = topic.partition(u64::from(batch.partition))?;
            let (appended, end) = partition.append_now(batch.payload, None, batch.writer)?;
            placed.push(Placed {
                partition,
                appended,
                end,
            });
        }
        return Ok(placed);
    };
    let _stripe = topic.producer_locks.lock(idem.stamp.producer_id);
    // Check every partition first: the first refusal refuses the whole request.
    let mut checked = Vec::with_capacity(batches.len());
    for batch in &batches {
        let partition = topic.partition(u64::from(batch.partition))?;
        let retry = partition.check_seq(&batch.payload, idem)?;
        checked.push((partition, retry));
    }
    for (batch, (partition, retry)) in batches.into_iter().zip(checked) {
        let (appended, end) = match retry {
            Some(original) => original,
            // Checked new under the stripe, and only this producer's appends could change
            // that: the append's own check agrees.
            None => partition.append_now(batch.payload, Some(idem), batch.writer)?,
        };
        placed.push(Placed {
            partition,
            appended,
            end,
        });
    }
    Ok(placed)
}
