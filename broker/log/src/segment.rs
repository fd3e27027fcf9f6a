//! Segment files: naming, preallocation, the active (writable, mapped) segment and the
//! sealed (read-only, lazily mapped) segments.
//!
//! A segment is `{base_offset:020}.log` plus its sparse `{base_offset:020}.index`. The
//! active segment is preallocated to its capacity with `posix_fallocate` (never sparse, so a
//! full disk is an error at roll time rather than a SIGBUS on a page fault), mapped shared
//! for reads and recovery, and appended to with `pwrite` into the same page cache (see
//! `ActiveSegment::write_tail` for why not a copy into the map). Sealing syncs it and
//! truncates the file to the bytes in use. What this module does not own: batch bytes
//! (`record`), deciding where the written data ends after a crash (`recovery`), or when to
//! roll (`log`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};

use crate::index::{self, ActiveIndex};
use crate::io::{is_no_space, FileOps};
use crate::record::{self, Batch, BatchHeader, Decoded};
use crate::recovery;
use crate::sync::{Durability, SyncTarget};
use crate::LogError;

/// Largest segment capacity: positions are stored as `u32` in the index.
pub(crate) const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;

pub(crate) fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

pub(crate) fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

/// The base offset of a file named `{20 digits}.{ext}`, or None.
pub(crate) fn parse_name(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub(crate) fn file_len(file: &File, path: &Path) -> Result<u64, LogError> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| LogError::io(format!("stat {}", path.display()), e))
}

/// Preallocates `[0, len)`; a full disk becomes [`LogError::NoSpace`].
pub(crate) fn preallocate(
    ops: &dyn FileOps,
    file: &File,
    path: &Path,
    len: u64,
) -> Result<(), LogError> {
    if len == 0 {
        return Ok(());
    }
    ops.preallocate(file, len).map_err(|e| {
        if is_no_space(&e) {
            LogError::NoSpace {
                path: path.to_path_buf(),
                needed: len,
                source: e,
            }
        } else {
            LogError::io(
                format!("preallocate {} bytes for {}", len, path.display()),
                e,
            )
        }
    })
}

/// Makes a directory entry change (create, delete) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(format!("fsync directory {}", dir.display()), e))
}

/// Index entries to preallocate for a segment of `capacity` bytes.
fn index_capacity(capacity: usize, interval: u32) -> usize {
    capacity / interval.max(1) as usize + 1
}

/// How big a new or reopened active segment is made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizing {
    /// Bytes to preallocate now (the file keeps a larger size it already has).
    pub capacity: u64,
    /// Bytes the segment may grow to (`segment_bytes`): the index is sized for it once,
    /// so growing the log never touches the index.
    pub full: u64,
    pub interval: u32,
}

/// The writable segment at the end of the log.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub base: u64,
    pub path: PathBuf,
    pub index_path: PathBuf,
    pub target: Arc<SyncTarget>,
    pub index: ActiveIndex,
    /// Bytes the file is preallocated (and mapped) to.
    pub capacity: usize,
    /// Bytes of intact batches.
    pub len: usize,
    pub next_offset: u64,
    /// The leader epoch of the last batch written (None while the segment holds none).
    pub last_epoch: Option<u32>,
    /// Sealed by a roll whose next segment could not be created (disk full): it stays the
    /// active one for reads but never takes another byte.
    pub sealed: bool,
}

impl ActiveSegment {
    /// Creates a new, empty segment preallocated to `capacity` bytes. On failure no file of
    /// it is left behind.
    pub(crate) fn create(
        dir: &Path,
        base: u64,
        size: Sizing,
        ops: &Arc<dyn FileOps>,
    ) -> Result<ActiveSegment, LogError> {
        let path = log_path(dir, base);
        let ipath = index_path(dir, base);
        let made = Self::open_at(dir, base, size, ops, true);
        if made.is_err() {
            // Best effort: a leftover empty file would only be reopened as an empty segment.
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(&ipath);
        }
        let seg = made?;
        sync_dir(dir)?;
        Ok(seg)
    }

    /// Opens the segment file at `base` (creating it when `fresh`), grows it to at least
    /// `size.capacity` bytes, maps it. The written length is set by recovery afterwards.
    pub(crate) fn open_at(
        dir: &Path,
        base: u64,
        size: Sizing,
        ops: &Arc<dyn FileOps>,
        fresh: bool,
    ) -> Result<ActiveSegment, LogError> {
        let Sizing {
            capacity,
            full,
            interval,
        } = size;
        let path = log_path(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(fresh)
            .truncate(fresh)
            .open(&path)
            .map_err(|e| LogError::io(format!("open {}", path.display()), e))?;
        let existing = file_len(&file, &path)?;
        let capacity = capacity.clamp(1, MAX_SEGMENT_BYTES).max(existing);
        match preallocate(ops.as_ref(), &file, &path, capacity) {
            Ok(()) => {}
            // Reopening a full segment on a full disk: it stays readable, the next append
            // tries to roll and reports NoSpace then.
            Err(LogError::NoSpace { .. }) if !fresh && existing > 0 => {}
            Err(e) => return Err(e),
        }
        let capacity = file_len(&file, &path)?.min(MAX_SEGMENT_BYTES) as usize;
        let map = MmapOptions::new()
            .len(capacity)
            .map_raw(&file)
            .map_err(|e| LogError::io(format!("map {}", path.display()), e))?;
        let ipath = index_path(dir, base);
        let index = ActiveIndex::open(
            &ipath,
            index_capacity(capacity.max(full.min(MAX_SEGMENT_BYTES) as usize), interval),
            interval,
            ops.as_ref(),
        )?;
        let target = Arc::new(SyncTarget::new(path.clone(), file, map, ops.clone()));
        target.publish(0, base);
        Ok(ActiveSegment {
            base,
            path,
            index_path: ipath,
            target,
            index,
            capacity,
            len: 0,
            next_offset: base,
            last_epoch: None,
            sealed: false,
        })
    }

    /// Preallocates the file to `capacity` bytes and maps the larger file (the segment grows
    /// in steps instead of reserving `segment_bytes` up front). The written bytes do not
    /// move; syncs already captured keep the old target (same file) and sync it as before.
    /// On a full disk nothing changes and [`LogError::NoSpace`] is returned.
    pub(crate) fn grow(&mut self, capacity: u64, durability: &Durability) -> Result<(), LogError> {
        let capacity = capacity.min(MAX_SEGMENT_BYTES);
        if capacity as usize <= self.capacity {
            return Ok(());
        }
        let old = &self.target;
        preallocate(old.ops.as_ref(), &old.file, &self.path, capacity)?;
        let file = old
            .file
            .try_clone()
            .map_err(|e| LogError::io(format!("reopen {}", self.path.display()), e))?;
        let map = MmapOptions::new()
            .len(capacity as usize)
            .map_raw(&file)
            .map_err(|e| LogError::io(format!("map {}", self.path.display()), e))?;
        let target = Arc::new(SyncTarget::new(
            self.path.clone(),
            file,
            map,
            old.ops.clone(),
        ));
        target.publish(self.len, self.next_offset);
        target.mark_durable(old.durable_pos());
        durability.set_current(target.clone());
        self.target = target;
        self.capacity = capacity as usize;
        Ok(())
    }

    /// The whole mapped capacity (recovery scans it). Only valid while the file is still
    /// preallocated to `capacity` (sealing lowers `capacity` to `len`).
    pub(crate) fn mapped(&self) -> &[u8] {
        self.prefix(self.capacity)
    }

    /// The written, intact bytes.
    pub(crate) fn written(&self) -> &[u8] {
        self.prefix(self.len)
    }

    fn prefix(&self, n: usize) -> &[u8] {
        debug_assert!(n <= self.target.map.len());
        // SAFETY: `n` is within the map, owned by `target` which lives as long as `self`;
        // writes go through `&mut self` (`slot`, `write_tail`), so none overlaps this
        // borrow; the file covers `[0, n)` (preallocated, or truncated to `len` at seal).
        unsafe { std::slice::from_raw_parts(self.target.map.as_ptr(), n) }
    }

    /// `n` writable bytes of the map at the end of the written data (recovery zeroing a cut
    /// tail; the caller checked the room).
    fn slot(&mut self, n: usize) -> &mut [u8] {
        debug_assert!(self.len + n <= self.capacity);
        // SAFETY: in bounds of the map (checked by the caller against `capacity`); `&mut
        // self` makes this the only borrow of the map's bytes. Syncers never read the bytes.
        unsafe { std::slice::from_raw_parts_mut(self.target.map.as_mut_ptr().add(self.len), n) }
    }

    /// Writes an encoded batch, given as consecutive parts, after the written data with
    /// `pwrite` (the caller checked the room); nothing counts as written until `commit`. The
    /// shared map sees the bytes at once (one page cache).
    ///
    /// Why not copy into the map: every newly touched page of a shared file mapping costs a
    /// write fault, the filesystem's page_mkwrite and a zero-fill of the preallocated
    /// (unwritten) extent, about 1.5 µs per 4 KiB page even when prefaulted in one
    /// `MADV_POPULATE_WRITE`. Measured in `benches/storage.rs` on the same run: copying into
    /// the map reached 0.40x of a plain sequential write, `pwrite` 0.7-0.8x.
    pub(crate) fn write_tail(&mut self, parts: &[&[u8]]) -> Result<(), LogError> {
        let mut at = self.len;
        for part in parts {
            debug_assert!(at + part.len() <= self.capacity);
            self.target
                .file
                .write_all_at(part, at as u64)
                .map_err(|e| LogError::io(format!("write {}", self.path.display()), e))?;
            at += part.len();
        }
        Ok(())
    }

    /// Zeroes `[from, to)` of the map (recovery cutting a bad tail).
    pub(crate) fn zero(&mut self, from: usize, to: usize) {
        let len = self.len;
        self.len = from;
        self.slot(to - from).fill(0);
        self.len = len;
    }

    /// Accounts a batch just written by `write_tail`: index, length, offsets, epoch, sync
    /// marks.
    pub(crate) fn commit(&mut self, bytes: usize, record_count: u32, leader_epoch: u32) {
        let rel = (self.next_offset - self.base) as u32;
        self.index.note_batch(rel, self.len);
        self.len += bytes;
        self.next_offset += u64::from(record_count);
        self.last_epoch = Some(leader_epoch);
        self.target.publish(self.len, self.next_offset);
    }

    /// True when a batch of `bytes` with `records` records fits without a roll.
    pub(crate) fn fits(&self, bytes: usize, records: u32) -> bool {
        self.len + bytes <= self.capacity && self.fits_offsets(records)
    }

    /// True when `records` more records keep relative offsets within `u32`.
    pub(crate) fn fits_offsets(&self, records: u32) -> bool {
        self.next_offset - self.base + u64::from(records) <= u64::from(u32::MAX)
    }

    /// Syncs the data, truncates the file to the bytes in use, syncs again, seals the index.
    pub(crate) fn seal(&self) -> Result<SealedSegment, LogError> {
        let t = &self.target;
        t.sync_to(self.len)
            .map_err(|e| LogError::io(format!("sync {}", self.path.display()), e))?;
        t.file
            .set_len(self.len as u64)
            .map_err(|e| LogError::io(format!("truncate {}", self.path.display()), e))?;
        t.ops
            .sync_data(&t.file)
            .map_err(|e| LogError::io(format!("fdatasync {}", self.path.display()), e))?;
        self.index.seal(&self.index_path, t.ops.as_ref())?;
        Ok(SealedSegment {
            base: self.base,
            end: self.next_offset,
            size: self.len as u64,
            max_timestamp_ms: None,
        })
    }
}

/// A read-only segment before the active one.
#[derive(Clone, Debug)]
pub(crate) struct SealedSegment {
    pub base: u64,
    /// The offset after its last record (the next segment's base).
    pub end: u64,
    pub size: u64,
    /// Largest record timestamp, computed on first need (retention).
    pub max_timestamp_ms: Option<i64>,
}

/// A sealed segment's log and index, mapped read-only.
#[derive(Debug)]
pub(crate) struct MappedSegment {
    pub path: PathBuf,
    pub log: Mmap,
    pub index: Mmap,
    pub index_count: usize,
}

impl MappedSegment {
    /// Maps sealed segment `base`. Its index is checked here, on first use, not at open
    /// (see `recovery::open_sealed`); a damaged one is rebuilt from the log and mapped again.
    pub(crate) fn map(dir: &Path, base: u64, interval: u32) -> Result<MappedSegment, LogError> {
        let path = log_path(dir, base);
        let log = map_read_only(&path)?;
        let ipath = index_path(dir, base);
        let mut index = map_read_only(&ipath)?;
        if !recovery::index_ok(&log, &index, base) {
            tracing::warn!(index = %ipath.display(), "index damaged; rebuilding");
            drop(index);
            recovery::rebuild_index(dir, base, interval)?;
            index = map_read_only(&ipath)?;
        }
        let index_count = index::count_valid(&index, log.len());
        Ok(MappedSegment {
            path,
            log,
            index,
            index_count,
        })
    }
}

/// The header of the first batch of segment `base`, read with one `pread` (no map, no
/// CRC check: the epoch cache needs only the first epoch of most segments). None for a
/// segment without a readable header.
pub(crate) fn first_header(dir: &Path, base: u64) -> Result<Option<BatchHeader>, LogError> {
    let path = log_path(dir, base);
    let file =
        File::open(&path).map_err(|e| LogError::io(format!("open {}", path.display()), e))?;
    let mut buf = [0u8; record::HEADER_LEN];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LogError::io(format!("read {}", path.display()), e)),
        }
    }
    Ok(record::peek_header(&buf[..got]))
}

/// Segment base offsets in the directory, sorted; removes index files without a log.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let ctx = |e| LogError::io(format!("list {}", dir.display()), e);
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(ctx)? {
        let name = entry.map_err(ctx)?.file_name();
        let name = name.to_string_lossy();
        if let Some(b) = parse_name(&name, "log") {
            logs.push(b);
        } else if let Some(b) = parse_name(&name, "index") {
            indexes.push(b);
        }
    }
    logs.sort_unstable();
    for b in indexes
        .into_iter()
        .filter(|b| logs.binary_search(b).is_err())
    {
        let path = index_path(dir, b);
        tracing::warn!(index = %path.display(), "removing index without a segment");
        let _ = std::fs::remove_file(path);
    }
    Ok(logs)
}

fn map_read_only(path: &Path) -> Result<Mmap, LogError> {
    let file = File::open(path).map_err(|e| LogError::io(format!("open {}", path.display()), e))?;
    // SAFETY: sealed segment files are never written again by this process; other writers
    // to the partition directory are unsupported (documented in segments-format.md).
    unsafe { MmapOptions::new().map(&file) }
        .map_err(|e| LogError::io(format!("map {}", path.display()), e))
}

/// A borrowed view of one segment's bytes and index, for reading.
#[derive(Clone, Copy)]
pub(crate) struct SegmentView<'a> {
    pub base: u64,
    pub path: &'a Path,
    pub bytes: &'a [u8],
    pub index: &'a [u8],
    pub index_count: usize,
}

impl<'a> SegmentView<'a> {
    /// Position of the batch containing `offset` (or the first after it). With `verify` the
    /// CRC of every batch walked over on the way is checked; the batch found is only framed
    /// (the caller reads it next, checking it then if it verifies).
    pub(crate) fn position_of(&self, offset: u64, verify: bool) -> Result<usize, LogError> {
        let rel = offset.saturating_sub(self.base).min(u64::from(u32::MAX)) as u32;
        let hint = index::lookup(self.index, self.index_count, rel);
        match self.walk_to(hint, offset, verify) {
            Ok(Some(pos)) => Ok(pos),
            // The index is a hint: if it pointed somewhere wrong, scan from the start.
            _ if hint != 0 => {
                tracing::warn!(segment = %self.path.display(), offset, hint,
                    "index entry does not lead to the offset; scanning the segment");
                self.walk_to(0, offset, verify)?
                    .ok_or_else(|| self.corrupt(0, "no batch holds the offset".into()))
            }
            other => other?.ok_or_else(|| self.corrupt(0, "no batch holds the offset".into())),
        }
    }

    /// From the batch at `pos` (which must not start after `offset`), the position of the
    /// batch holding `offset`, or of the end of the data if none does. None when the batch
    /// at `pos` starts after `offset`. Each batch is decoded once (the first one was decoded
    /// twice, CRC and all, which cost a third of a replica read).
    fn walk_to(
        &self,
        mut pos: usize,
        offset: u64,
        verify: bool,
    ) -> Result<Option<usize>, LogError> {
        let mut first = true;
        while let Some(b) = self.batch(pos, false)? {
            if first && b.header.base_offset > offset {
                return Ok(None);
            }
            first = false;
            if b.header.end_offset() > offset {
                return Ok(Some(pos));
            }
            if verify {
                self.check_crc(&b, pos)?;
            }
            pos += b.bytes.len();
        }
        Ok(Some(pos))
    }

    fn corrupt(&self, pos: usize, reason: String) -> LogError {
        LogError::Corrupt {
            path: self.path.to_path_buf(),
            position: pos as u64,
            reason,
        }
    }

    /// The batch at `pos`, its CRC checked when `verify` (else its framing only: see
    /// `record::frame`), None at the end of the data, an error when corrupt.
    pub(crate) fn batch(&self, pos: usize, verify: bool) -> Result<Option<Batch<'a>>, LogError> {
        let Some(rest) = self.bytes.get(pos..).filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        let decoded = if verify {
            record::decode(rest)
        } else {
            record::frame(rest)
        };
        match decoded {
            Decoded::Intact(b) => Ok(Some(b)),
            Decoded::Empty => Ok(None),
            other => Err(self.corrupt(pos, format!("{other:?}"))),
        }
    }

    /// An error unless the CRC of `b` (found framed at `pos`) matches its bytes.
    fn check_crc(&self, b: &Batch<'_>, pos: usize) -> Result<(), LogError> {
        let found = record::crc_of(b.bytes);
        if found != b.header.crc {
            let corrupt = Decoded::Corrupt {
                expected: b.header.crc,
                found,
            };
            return Err(self.corrupt(pos, format!("{corrupt:?}")));
        }
        Ok(())
    }
}
