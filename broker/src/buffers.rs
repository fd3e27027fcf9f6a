//! Reused buffers for large transfers: the batches a leader reads for a follower's fetch,
//! the fetch answer a follower reads, and large request bodies (a produce's batch), each
//! hundreds of KiB to MiBs.
//!
//! Why: a fresh allocation of that size is a fresh anonymous mapping (glibc maps large
//! blocks on their own), so every copy into it first page-faults and zero-fills each 4 KiB
//! page, and the unmap flushes the TLB. In a profile of the 3-broker bench that cost about
//! as much as the copies themselves. A buffer taken from here keeps its pages across uses.
//!
//! The pool is one per process and bounded (count and bytes kept), so a burst of large
//! fetches does not pin its memory for good. Nothing else is shared: a [`Pooled`] buffer is
//! owned by one reader or writer at a time and goes back when dropped (also when a response
//! body built from it with [`Pooled::into_bytes`] is dropped by the server).

use std::ops::Deref;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// Buffers kept at most.
const KEEP: usize = 32;
/// Bytes of capacity kept at most, all buffers together.
const KEEP_BYTES: usize = 64 << 20;

struct Pool {
    free: Vec<Vec<u8>>,
    bytes: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: Vec::new(),
    bytes: 0,
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    // The pool is a list of spare buffers; a panic while it was held leaves a valid list.
    POOL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An empty buffer from the pool (a new one when the pool is empty); dropped, it goes back.
pub fn take() -> Pooled {
    let mut pool = pool();
    let mut buf = pool.free.pop().unwrap_or_default();
    pool.bytes = pool.bytes.saturating_sub(buf.capacity());
    drop(pool);
    buf.clear();
    Pooled(buf)
}

fn give(buf: Vec<u8>) {
    let mut pool = pool();
    if buf.capacity() == 0 || pool.free.len() >= KEEP || pool.bytes + buf.capacity() > KEEP_BYTES {
        return;
    }
    pool.bytes += buf.capacity();
    pool.free.push(buf);
}

/// A buffer taken from the pool: written as a `Vec`, read as bytes, given back when dropped.
pub struct Pooled(Vec<u8>);

impl Pooled {
    pub fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    /// The buffer as a `Bytes` (no copy); it goes back to the pool when the last clone of
    /// the `Bytes` is dropped.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl Deref for Pooled {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_empty_with_its_allocation() {
        let mut a = take();
        a.as_mut_vec().extend_from_slice(&[7; 4096]);
        let bytes = a.into_bytes();
        assert_eq!(&bytes[..], &[7; 4096][..]);
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(clone.len(), 4096, "a clone keeps the buffer alive");
        drop(clone);
        // Other tests may take from the same pool meanwhile: look for a reused allocation
        // among a few.
        let taken: Vec<Pooled> = (0..KEEP).map(|_| take()).collect();
        assert!(taken.iter().all(|b| b.is_empty()));
        assert!(taken.iter().any(|b| b.0.capacity() >= 4096));
    }

    #[test]
    fn the_pool_keeps_a_bounded_number_of_bytes() {
        let big: Vec<Pooled> = (0..3)
            .map(|_| {
                let mut b = Pooled(Vec::new());
                b.as_mut_vec().reserve_exact(KEEP_BYTES / 2 + 1);
                b
            })
            .collect();
        drop(big);
        assert!(pool().bytes <= KEEP_BYTES);
        assert!(pool().free.len() <= KEEP);
    }
}
