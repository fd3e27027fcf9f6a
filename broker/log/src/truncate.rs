//! Truncating the end of a log on disk, crash-safe: what a replica does before it fetches
//! from its leader, to drop the records where its log diverged.
//!
//! Cutting the end can touch several files: every segment after the one holding the new end
//! is deleted (log, then index), that segment's log is cut to the batch where the new end
//! starts and its index to the entries before it, and it becomes the active segment. No
//! order of those steps is atomic by itself (deleting the newest segments first leaves a log
//! ending at some segment boundary in between), so the intent is written first:
//!
//! 1. the new end offset is written to `truncate-to.tmp`, synced, renamed to `truncate-to`,
//!    and the directory synced. A crash before the rename is durable leaves the old log.
//! 2. the files are changed ([`apply`]); the cut segment's log is synced after its cut and
//!    the directory after the deletions.
//! 3. `truncate-to` is removed and the directory synced.
//!
//! Opening a log first looks for `truncate-to` ([`finish_pending`]): if it is there, it
//! applies it again (applying is idempotent: it recomputes everything from the files and the
//! offset) and removes it. So a crash at any step opens to either the old end (before step 1
//! is durable) or the new one (after). The cut is by `ftruncate`, not by zeroing: the file's
//! size changes in one metadata update, and the bytes past it read as zeros once the segment
//! is preallocated again, so no stale batch can be mistaken for data after later appends.
//!
//! What this module does not own: choosing the offset (whole batches: the log passes a batch
//! start), the in-memory state of the log (`log` reopens the cut segment as the active one),
//! or anything derived from records outside the log (the broker's producer table).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::index::{self, ENTRY_LEN};
use crate::io::FileOps;
use crate::record::{self, Decoded};
use crate::segment;
use crate::LogError;

/// The intent file: the new end offset, in decimal, then a newline.
const MARKER: &str = "truncate-to";
const MARKER_TMP: &str = "truncate-to.tmp";

fn marker_path(dir: &Path) -> PathBuf {
    dir.join(MARKER)
}

/// Step 1, first half: writes the intent to the temporary file and syncs it. Nothing is
/// decided yet: on failure the log is unchanged (the temporary file is removed).
pub(crate) fn prepare_intent(dir: &Path, end: u64, ops: &dyn FileOps) -> Result<(), LogError> {
    let tmp = dir.join(MARKER_TMP);
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("{end}\n").as_bytes())?;
            ops.sync_data(&f)
        });
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        LogError::io(format!("write {}", tmp.display()), e)
    })
}

/// Step 1, second half: renames the intent into place and syncs the directory. From the
/// rename on, a crash completes the truncation at the next open, so a failure here must
/// poison the log (the caller's business).
pub(crate) fn commit_intent(dir: &Path) -> Result<(), LogError> {
    let tmp = dir.join(MARKER_TMP);
    std::fs::rename(&tmp, marker_path(dir))
        .map_err(|e| LogError::io(format!("rename {}", tmp.display()), e))?;
    segment::sync_dir(dir)
}

/// Step 3: the truncation is done and durable; the intent goes.
pub(crate) fn clear_intent(dir: &Path) -> Result<(), LogError> {
    let path = marker_path(dir);
    std::fs::remove_file(&path)
        .map_err(|e| LogError::io(format!("remove {}", path.display()), e))?;
    segment::sync_dir(dir)
}

/// At open, before the segments are listed: finishes a truncation a crash interrupted.
/// Returns the end offset it truncated to, if there was one.
pub(crate) fn finish_pending(dir: &Path, ops: &dyn FileOps) -> Result<Option<u64>, LogError> {
    // A temporary intent was never committed: the truncation never started.
    let _ = std::fs::remove_file(dir.join(MARKER_TMP));
    let path = marker_path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io(format!("read {}", path.display()), e)),
    };
    // Written whole, synced, then renamed: a marker that does not parse is not ours.
    let end: u64 = text.trim().parse().map_err(|_| LogError::Corrupt {
        path: path.clone(),
        position: 0,
        reason: format!("truncation intent is not an offset: {text:?}"),
    })?;
    tracing::warn!(dir = %dir.display(), end, "finishing a truncation interrupted by a crash");
    apply(dir, end, ops)?;
    clear_intent(dir)?;
    Ok(Some(end))
}

/// Step 2: makes the files end at offset `end` (a batch start, or the end of the data).
/// Idempotent. Returns the base of the segment that now ends the log, or None when no
/// segment starts at or below `end` (nothing to cut).
pub(crate) fn apply(dir: &Path, end: u64, ops: &dyn FileOps) -> Result<Option<u64>, LogError> {
    let bases = segment::list_segments(dir)?;
    let Some(&keep) = bases.iter().rev().find(|&&b| b <= end) else {
        tracing::warn!(dir = %dir.display(), end, "no segment at or below the truncation offset");
        return Ok(None);
    };
    // Newest first, each log before its index (an index without its log is removed at open).
    for &base in bases.iter().rev().filter(|&&b| b > keep) {
        for path in [segment::log_path(dir, base), segment::index_path(dir, base)] {
            remove_if_there(&path)?;
        }
    }
    let cut = cut_log(dir, keep, end, ops)?;
    cut_index(dir, keep, cut)?;
    segment::sync_dir(dir)?;
    Ok(Some(keep))
}

fn remove_if_there(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(format!("delete {}", path.display()), e)),
    }
}

/// Cuts segment `base`'s log at the first batch that ends after `end` (or where its intact
/// data ends) and syncs it; returns the position cut at.
fn cut_log(dir: &Path, base: u64, end: u64, ops: &dyn FileOps) -> Result<usize, LogError> {
    let path = segment::log_path(dir, base);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| LogError::io(format!("open {}", path.display()), e))?;
    let cut = {
        let len = segment::file_len(&file, &path)?;
        // SAFETY: only this log writes the directory, and it does not write this file while
        // truncating; the map is dropped before the file is cut.
        let map = match len {
            0 => None,
            _ => Some(
                unsafe { memmap2::Mmap::map(&file) }
                    .map_err(|e| LogError::io(format!("map {}", path.display()), e))?,
            ),
        };
        let bytes = map.as_deref().unwrap_or_default();
        let mut pos = 0;
        while let Decoded::Intact(b) = record::decode(&bytes[pos..]) {
            if b.header.end_offset() > end {
                break;
            }
            pos += b.bytes.len();
        }
        pos
    };
    file.set_len(cut as u64)
        .map_err(|e| LogError::io(format!("truncate {}", path.display()), e))?;
    ops.sync_data(&file)
        .map_err(|e| LogError::io(format!("fdatasync {}", path.display()), e))?;
    Ok(cut)
}

/// Cuts segment `base`'s index to its entries before position `cut`. Not synced: recovery
/// checks every entry of the active segment's index against the batch it points to, so a
/// stale entry is dropped there anyway; this keeps the file tidy.
fn cut_index(dir: &Path, base: u64, cut: usize) -> Result<(), LogError> {
    let path = segment::index_path(dir, base);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(LogError::io(format!("read {}", path.display()), e)),
    };
    let keep = index::count_valid(&bytes, cut);
    File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len((keep * ENTRY_LEN) as u64))
        .map_err(|e| LogError::io(format!("truncate {}", path.display()), e))
}
