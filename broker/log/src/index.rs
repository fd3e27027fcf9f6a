//! The sparse offset index of one segment: `(relative offset u32 LE, position u32 LE)`
//! entries, 8 bytes each, both strictly increasing.
//!
//! An entry is added when a batch starts at least `index_interval_bytes` after the previous
//! entry's position. The batch at position 0 is never indexed (it is implicit), so every
//! stored entry has a position > 0 and an all-zero entry marks the end of the entries in the
//! preallocated index of the active segment. The index is a hint: recovery checks an entry
//! against the batch it points to before trusting it, and rebuilds a damaged index.
//!
//! What this module does not own: the batch bytes (it calls `record` to check a pointed-to
//! header) or when an index is rebuilt (that is `recovery`'s decision).

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use crate::io::FileOps;
use crate::{segment, LogError};

/// Bytes of one index entry.
pub(crate) const ENTRY_LEN: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub rel: u32,
    pub pos: u32,
}

/// Entry `i` of an index byte slice (the caller checked the bounds).
pub(crate) fn entry_at(bytes: &[u8], i: usize) -> Entry {
    let b = &bytes[i * ENTRY_LEN..(i + 1) * ENTRY_LEN];
    Entry {
        rel: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        pos: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    }
}

fn encode_entry(e: Entry) -> [u8; ENTRY_LEN] {
    let mut b = [0; ENTRY_LEN];
    b[..4].copy_from_slice(&e.rel.to_le_bytes());
    b[4..].copy_from_slice(&e.pos.to_le_bytes());
    b
}

/// The position to start scanning from for relative offset `rel`: the last entry with
/// `entry.rel <= rel`, or 0.
pub(crate) fn lookup(bytes: &[u8], count: usize, rel: u32) -> usize {
    // Binary search for the first entry past `rel`.
    let (mut lo, mut hi) = (0, count);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if entry_at(bytes, mid).rel <= rel {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo == 0 {
        0
    } else {
        entry_at(bytes, lo - 1).pos as usize
    }
}

/// Counts the leading entries that are well formed: non-zero, strictly increasing, positions
/// below `log_len`. Stops at the first that is not.
pub(crate) fn count_valid(bytes: &[u8], log_len: usize) -> usize {
    let mut prev = Entry { rel: 0, pos: 0 };
    let max = bytes.len() / ENTRY_LEN;
    for i in 0..max {
        let e = entry_at(bytes, i);
        let increasing = e.pos > prev.pos && e.rel > prev.rel;
        if !increasing || e.pos as usize >= log_len {
            return i;
        }
        prev = e;
    }
    max
}

/// Builds index bytes for a run of batches given as `(relative offset, position)` in order.
pub(crate) fn build(starts: impl Iterator<Item = (u32, usize)>, interval: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut last = 0usize;
    for (rel, pos) in starts {
        if pos > 0 && pos >= last + interval as usize {
            out.extend_from_slice(&encode_entry(Entry {
                rel,
                pos: pos as u32,
            }));
            last = pos;
        }
    }
    out
}

/// The writable, preallocated, mapped index of the active segment. Its descriptor is closed
/// once mapped (the map keeps the pages; the file is reopened only to seal it), so an active
/// segment costs one descriptor, not two.
#[derive(Debug)]
pub(crate) struct ActiveIndex {
    map: Arc<MmapRaw>,
    /// Entries in use.
    count: usize,
    /// Entries the preallocated file holds.
    capacity: usize,
    /// Position of the last entry (0: only the implicit entry at 0).
    last_pos: usize,
    interval: usize,
}

impl ActiveIndex {
    /// Opens (or creates) the index file and preallocates room for `capacity` entries.
    pub(crate) fn open(
        path: &Path,
        capacity: usize,
        interval: u32,
        ops: &dyn FileOps,
    ) -> Result<ActiveIndex, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| LogError::io(format!("open {}", path.display()), e))?;
        let existing = segment::file_len(&file, path)? as usize;
        let capacity = capacity.max(existing / ENTRY_LEN);
        segment::preallocate(ops, &file, path, (capacity * ENTRY_LEN) as u64)?;
        let map = MmapOptions::new()
            .len(capacity * ENTRY_LEN)
            .map_raw(&file)
            .map_err(|e| LogError::io(format!("map {}", path.display()), e))?;
        Ok(ActiveIndex {
            map: Arc::new(map),
            count: 0,
            capacity,
            last_pos: 0,
            interval: interval.max(1) as usize,
        })
    }

    /// The entries in use.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.all_bytes()[..self.count * ENTRY_LEN]
    }

    /// The whole preallocated index (recovery reads entries it has not counted yet). Only
    /// valid while the file is still preallocated, i.e. before `seal` truncates it.
    pub(crate) fn all_bytes(&self) -> &[u8] {
        // SAFETY: the map is `capacity * ENTRY_LEN` bytes and lives as long as `self`; writes
        // go through `&mut self`, so no write overlaps this shared borrow.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.map.len()) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes this the only borrow.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr(), self.map.len()) }
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Keeps the first `count` entries (already checked by the caller) and zeroes the rest.
    pub(crate) fn keep(&mut self, count: usize) {
        let count = count.min(self.capacity);
        self.bytes_mut()[count * ENTRY_LEN..].fill(0);
        self.count = count;
        self.last_pos = match count {
            0 => 0,
            n => entry_at(self.all_bytes(), n - 1).pos as usize,
        };
    }

    /// Records that a batch with relative offset `rel` starts at `pos`, if due.
    pub(crate) fn note_batch(&mut self, rel: u32, pos: usize) {
        if pos == 0 || pos < self.last_pos + self.interval || self.count >= self.capacity {
            return;
        }
        let at = self.count * ENTRY_LEN;
        let entry = encode_entry(Entry {
            rel,
            pos: pos as u32,
        });
        self.bytes_mut()[at..at + ENTRY_LEN].copy_from_slice(&entry);
        self.count += 1;
        self.last_pos = pos;
    }

    /// Cuts the file to the entries in use and makes it durable (segment roll). The entries
    /// were written through the shared map: dirty page-cache pages that fdatasync writes.
    pub(crate) fn seal(&self, path: &Path, ops: &dyn FileOps) -> Result<(), LogError> {
        let used = self.count * ENTRY_LEN;
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| LogError::io(format!("open {}", path.display()), e))?;
        file.set_len(used as u64)
            .map_err(|e| LogError::io(format!("truncate {}", path.display()), e))?;
        ops.sync_data(&file)
            .map_err(|e| LogError::io(format!("fdatasync {}", path.display()), e))
    }
}
