//! Open-time recovery: find where the written data of the active segment really ends, cut a
//! torn or corrupt tail, and check (or rebuild) every segment's index.
//!
//! Rules (also in `segments-format.md`):
//! - Sealed segments are trusted (they were synced and truncated when sealed); only their
//!   index is checked: well-formed entries, and the last entry pointing at a batch header
//!   with the right base offset. A missing or damaged index is rebuilt from the log.
//! - The active segment is scanned from the last index entry whose batch is intact (CRC)
//!   and carries the base offset the entry promises, or from the start. The scan stops at
//!   the first all-zero header (clean end), torn batch, CRC mismatch, malformed batch, or
//!   batch whose base offset does not continue the previous one.
//! - Anything non-zero after that point is zeroed in the map and synced, so a later scan can
//!   never mistake stale bytes for data; it is logged with `tracing::warn` and counted.
//!
//! What this module does not own: the byte layout (`record`) or the file handling (`segment`).

use std::fs::File;
use std::path::Path;

use crate::index::{self, ENTRY_LEN};
use crate::record::{self, Decoded};
use crate::segment::{self, ActiveSegment, SealedSegment};
use crate::{LogError, RecoveryReport};

/// Where the scan of the active segment stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// An all-zero header or the end of the capacity: nothing to cut.
    Clean,
    /// Something that is not a valid continuation: cut here.
    Bad(String),
}

/// Recovers the active segment in place: sets its length, next offset and index.
pub(crate) fn recover_active(
    seg: &mut ActiveSegment,
    report: &mut RecoveryReport,
) -> Result<(), LogError> {
    let (start_pos, start_offset, kept_entries) = last_good_entry(seg);
    seg.index.keep(kept_entries);
    seg.len = start_pos;
    seg.next_offset = start_offset;
    let stop = scan_forward(seg, report);
    if let Stop::Bad(reason) = stop {
        cut_tail(seg, &reason, report)?;
    }
    let t = seg.target.clone();
    t.publish(seg.len, seg.next_offset);
    // Make the recovered state (and any zeroed tail) durable once, so later syncs start
    // from a known-durable prefix: exactly `len`, never the capacity, or later syncs of
    // new appends would believe they have nothing to do.
    t.ops
        .sync_data(&t.file)
        .map_err(|e| LogError::io(format!("sync {}", seg.path.display()), e))?;
    t.mark_durable(seg.len);
    Ok(())
}

/// The last index entry whose batch checks out: `(position, offset, entries to keep)`.
fn last_good_entry(seg: &ActiveSegment) -> (usize, u64, usize) {
    let data = seg.mapped();
    let idx = seg.index.all_bytes();
    let count = index::count_valid(idx, data.len());
    for i in (0..count).rev() {
        let e = index::entry_at(idx, i);
        let want = seg.base + u64::from(e.rel);
        if let Decoded::Intact(b) = record::decode(&data[e.pos as usize..]) {
            if b.header.base_offset == want {
                return (e.pos as usize, want, i);
            }
        }
    }
    (0, seg.base, 0)
}

/// Walks intact, continuing batches from `seg.len`, committing each.
fn scan_forward(seg: &mut ActiveSegment, report: &mut RecoveryReport) -> Stop {
    loop {
        let pos = seg.len;
        let (len, count, epoch) = match record::decode(&seg.mapped()[pos..]) {
            Decoded::Intact(b) if b.header.base_offset == seg.next_offset => {
                (b.bytes.len(), b.header.record_count, b.header.leader_epoch)
            }
            Decoded::Intact(b) => {
                return Stop::Bad(format!(
                    "batch base offset {} does not continue {}",
                    b.header.base_offset, seg.next_offset
                ))
            }
            Decoded::Empty => return Stop::Clean,
            other => return Stop::Bad(format!("{other:?}")),
        };
        if !seg.fits(0, count) {
            return Stop::Bad("relative offset over u32".into());
        }
        seg.commit(len, count, epoch);
        report.batches_kept += 1;
    }
}

/// Zeroes the non-zero bytes after the last good batch and reports them.
fn cut_tail(
    seg: &mut ActiveSegment,
    reason: &str,
    report: &mut RecoveryReport,
) -> Result<(), LogError> {
    let from = seg.len;
    let data = seg.mapped();
    let to = data
        .iter()
        .rposition(|&b| b != 0)
        .map_or(from, |p| p + 1)
        .max(from);
    let batches = count_hops(&data[from..to]);
    tracing::warn!(
        segment = %seg.path.display(),
        position = from,
        bytes = to - from,
        batches,
        reason,
        "cutting torn or corrupt tail of the active segment"
    );
    seg.zero(from, to);
    report.bytes_truncated += (to - from) as u64;
    report.batches_truncated += batches;
    Ok(())
}

/// Best-effort count of batch-like headers in a cut region (at least 1 if it is not empty).
fn count_hops(region: &[u8]) -> u64 {
    if region.is_empty() {
        return 0;
    }
    let mut n = 0;
    let mut pos = 0;
    while pos < region.len() {
        n += 1;
        match record::peek_header(&region[pos..]) {
            Some(h) => pos += h.batch_length as usize,
            None => break,
        }
    }
    n
}

/// Takes a sealed segment (`base`, ending where `next_base` starts) from its file metadata
/// alone: recovery of many partitions must not open every sealed file. An index that is
/// missing or not a whole number of entries is rebuilt now; its entries are checked when the
/// segment is first mapped for a read ([`index_ok`], called by `segment`).
pub(crate) fn open_sealed(
    dir: &Path,
    base: u64,
    next_base: u64,
    interval: u32,
    report: &mut RecoveryReport,
) -> Result<SealedSegment, LogError> {
    let path = segment::log_path(dir, base);
    let size = std::fs::metadata(&path)
        .map_err(|e| LogError::io(format!("stat {}", path.display()), e))?
        .len();
    let ipath = segment::index_path(dir, base);
    let whole = std::fs::metadata(&ipath).is_ok_and(|m| m.len().is_multiple_of(ENTRY_LEN as u64));
    if !whole {
        tracing::warn!(index = %ipath.display(), "index missing or damaged; rebuilding");
        rebuild_index(dir, base, interval)?;
        report.indexes_rebuilt += 1;
    }
    Ok(SealedSegment {
        base,
        end: next_base,
        size,
        max_timestamp_ms: None,
    })
}

/// Well-formed entries, and the last one points at a header with the promised base offset.
pub(crate) fn index_ok(log: &[u8], index: &[u8], base: u64) -> bool {
    if !index.len().is_multiple_of(ENTRY_LEN)
        || index::count_valid(index, log.len()) * ENTRY_LEN != index.len()
    {
        return false;
    }
    let Some(last) = (index.len() / ENTRY_LEN).checked_sub(1) else {
        return true;
    };
    let e = index::entry_at(index, last);
    // The header alone: its length is checked for plausibility, not its CRC.
    match log.get(e.pos as usize..).and_then(record::peek_header) {
        Some(h) => h.base_offset == base + u64::from(e.rel),
        None => false,
    }
}

/// Rebuilds `base`'s index from its log (scan of intact batches) and syncs it.
pub(crate) fn rebuild_index(dir: &Path, base: u64, interval: u32) -> Result<(), LogError> {
    let mapped_path = segment::log_path(dir, base);
    let file = File::open(&mapped_path)
        .map_err(|e| LogError::io(format!("open {}", mapped_path.display()), e))?;
    // SAFETY: a sealed segment is not written while mapped (see segment::map_read_only).
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| LogError::io(format!("map {}", mapped_path.display()), e))?;
    let mut starts = Vec::new();
    let mut pos = 0;
    while let Decoded::Intact(b) = record::decode(&map[pos.min(map.len())..]) {
        let rel = b
            .header
            .base_offset
            .saturating_sub(base)
            .min(u64::from(u32::MAX)) as u32;
        starts.push((rel, pos));
        pos += b.bytes.len();
    }
    let bytes = index::build(starts.into_iter(), interval);
    let ipath = segment::index_path(dir, base);
    std::fs::write(&ipath, &bytes)
        .and_then(|()| File::open(&ipath)?.sync_all())
        .map_err(|e| LogError::io(format!("write {}", ipath.display()), e))
}
