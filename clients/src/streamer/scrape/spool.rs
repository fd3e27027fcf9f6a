//! The scrape spool: every scrape waits here, encoded and under its producer id and seq, until
//! the broker has acknowledged it. Scraping writes to the spool and never waits for the broker;
//! the senders ([`super::send`]) drain it, oldest first.
//!
//! The spool is [`LANES`] independent queues; a target's scrapes always go to the same one
//! (a hash of its URL). Several senders take from each lane at once ([`Lane::take`]): each
//! gets the oldest scrape not being sent whose target has no older scrape waiting or being
//! sent, looking at most [`WINDOW`] scrapes past the oldest unacknowledged one. So each
//! target's scrapes leave one at a time in the order they were taken — the broker refuses a
//! seq below the newest it has for a producer — while different targets' scrapes are sent in
//! parallel. A lane's acknowledged position moves over the scrapes acknowledged without a gap.
//!
//! With `--spool-dir` each lane is a `broker-log` partition log under `<dir>/lane-<n>`: a
//! record per scrape (key: the target URL, timestamp: the seq, value: the NDJSON produce
//! body), and a small `sent` file holding the offset of the oldest scrape not yet
//! acknowledged. The log's byte retention bounds each lane to its share of
//! `--spool-max-bytes`: when appending pushes a lane over it, its oldest whole segment (1/8 of
//! the lane) is deleted, and the unsent scrapes in it are counted as dropped. The `sent` file
//! is rewritten at most every [`CURSOR_EVERY`] (and at shutdown), so a `kill -9` resends up to
//! that much again, plus scrapes acknowledged out of order behind one still being sent (at
//! most [`WINDOW`] a lane) — harmless, the broker answers them as duplicates. Records are written
//! without fsync of their own (the log's flusher syncs every second): a killed process loses
//! nothing, a machine crash may lose the last second of scrapes.
//!
//! A spool directory serves one streamer at a time (a lock file, `flock`): a second streamer
//! given the same directory stops with an error at start.
//!
//! Without `--spool-dir` the lanes are in memory, bounded the same way (dropping the oldest
//! scrape at a time) and lost at exit.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use broker_log::{FsyncPolicy, LogConfig, PartitionLog, Record};

use crate::error::{Error, Result};

/// Queues of the spool (each with [`super::send::SENDERS_PER_LANE`] senders).
pub const LANES: usize = 4;

/// How far past its oldest unacknowledged scrape a lane hands scrapes out.
pub const WINDOW: usize = 64;

/// How often the acknowledged position of a disk lane is written down.
pub const CURSOR_EVERY: Duration = Duration::from_millis(250);

/// The spool's smallest useful size per lane: two segments of 64 KiB.
const MIN_LANE_BYTES: u64 = 128 << 10;

/// One scrape waiting for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its place in its lane.
    pub offset: u64,
    pub url: String,
    /// The idempotent seq it is produced under (the scrape's slot, see [`super::pool`]).
    pub seq: u64,
    /// NDJSON produce lines, one per point.
    pub body: Vec<u8>,
}

impl Entry {
    pub fn points(&self) -> usize {
        // Counted in bytes per chunk of 255, which the compiler vectorises 32 bytes at a time
        // (a body is ~100 KB; a count in a usize goes 4 bytes at a time).
        self.body
            .chunks(255)
            .map(|chunk| {
                usize::from(
                    chunk
                        .iter()
                        .fold(0u8, |n, &b| n.wrapping_add(u8::from(b == b'\n'))),
                )
            })
            .sum()
    }
}

/// All lanes.
pub struct Spool {
    lanes: Vec<Lane>,
    dir: Option<PathBuf>,
    /// Holds the directory's lock (one streamer per spool directory) while the spool is open.
    _lock: Option<std::fs::File>,
    /// No more scrapes will come (shutdown, the workers have ended).
    closed: AtomicBool,
}

impl Spool {
    /// On disk under `dir` (opening what a previous run left), or in memory; `max_bytes` in all.
    pub fn open(dir: Option<&Path>, max_bytes: u64) -> Result<Spool> {
        let lock = dir.map(lock).transpose()?;
        let per_lane = (max_bytes / LANES as u64).max(MIN_LANE_BYTES);
        let lanes = (0..LANES)
            .map(|n| {
                let store = match dir {
                    Some(dir) => Store::Disk(Box::new(DiskLane::open(
                        &dir.join(format!("lane-{n}")),
                        per_lane,
                    )?)),
                    None => Store::Memory(MemoryLane::default()),
                };
                Ok(Lane {
                    state: Mutex::new(LaneState {
                        store,
                        max_bytes: per_lane,
                        dropped: 0,
                        window: VecDeque::new(),
                    }),
                    ready: Condvar::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let spool = Spool {
            lanes,
            dir: dir.map(Path::to_path_buf),
            _lock: lock,
            closed: AtomicBool::new(false),
        };
        let waiting = spool.entries();
        if waiting > 0 {
            tracing::info!(dir = ?spool.dir, scrapes = waiting, "spool holds scrapes from before: sending them first");
        }
        Ok(spool)
    }

    pub fn lane(&self, n: usize) -> &Lane {
        &self.lanes[n % LANES]
    }

    /// The lane of a target.
    pub fn lane_of(&self, url: &str) -> &Lane {
        self.lane((broker_client::fnv1a64(url.as_bytes()) % LANES as u64) as usize)
    }

    /// Scrapes not yet acknowledged.
    pub fn entries(&self) -> u64 {
        self.lanes.iter().map(|l| l.lock().store.entries()).sum()
    }

    /// Bytes the spool takes (on disk: the logs' data, acknowledged scrapes not yet deleted
    /// included).
    pub fn bytes(&self) -> u64 {
        self.lanes.iter().map(|l| l.lock().store.bytes()).sum()
    }

    /// Scrapes dropped unsent because the spool was full, since start.
    pub fn dropped(&self) -> u64 {
        self.lanes.iter().map(|l| l.lock().dropped).sum()
    }

    /// Writes every lane's acknowledged position down (at shutdown).
    pub fn flush(&self) {
        for lane in &self.lanes {
            lane.lock().store.save_cursor(true);
        }
    }

    /// No more scrapes will be pushed: the senders stop once their lane is empty.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for lane in &self.lanes {
            lane.ready.notify_all();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn is_disk(&self) -> bool {
        self.dir.is_some()
    }
}

/// One queue of the spool.
pub struct Lane {
    state: Mutex<LaneState>,
    ready: Condvar,
}

struct LaneState {
    store: Store,
    max_bytes: u64,
    dropped: u64,
    /// The scrapes from the oldest unacknowledged one on that have been read for the
    /// senders, oldest first (at most [`WINDOW`]).
    window: VecDeque<Slot>,
}

/// A scrape of a lane's window: waiting (its entry here), being sent (taken), or done.
struct Slot {
    offset: u64,
    url: String,
    entry: Option<Entry>,
    done: bool,
}

impl LaneState {
    /// The oldest scrape not being sent whose target has nothing older waiting or being sent.
    fn take(&mut self) -> Result<Option<Entry>> {
        // Scrapes dropped by the bound leave the window (one being sent is acknowledged in
        // vain).
        let first = self.store.first();
        while self.window.front().is_some_and(|s| s.offset < first) {
            self.window.pop_front();
        }
        let mut busy: HashSet<String> = HashSet::new();
        let mut i = 0;
        loop {
            if i == self.window.len() {
                let next = self.window.back().map_or(first, |s| s.offset + 1);
                if i >= WINDOW || next >= self.store.end() {
                    return Ok(None);
                }
                let Some(entry) = self.store.read(next)? else {
                    return Ok(None);
                };
                self.window.push_back(Slot {
                    offset: entry.offset,
                    url: entry.url.clone(),
                    entry: Some(entry),
                    done: false,
                });
            }
            let slot = &mut self.window[i];
            if !slot.done {
                if slot.entry.is_some() && !busy.contains(&slot.url) {
                    return Ok(slot.entry.take());
                }
                busy.insert(slot.url.clone());
            }
            i += 1;
        }
    }
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, LaneState> {
        // A poisoned lock means a thread panicked while holding it; the queue is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a scrape; returns how many older scrapes were dropped to make room.
    pub fn push(&self, url: &str, seq: u64, body: &[u8]) -> Result<u64> {
        let mut state = self.lock();
        let max = state.max_bytes;
        let dropped = state.store.push(url, seq, body, max)?;
        state.dropped += dropped;
        drop(state);
        self.ready.notify_all();
        Ok(dropped)
    }

    /// The oldest scrape no sender has whose target has nothing older waiting or being sent
    /// (so each target's scrapes go one at a time, in order), waiting at most `wait` for one.
    /// The caller [`Lane::ack`]s it or [`Lane::release`]s it.
    pub fn take(&self, wait: Duration) -> Result<Option<Entry>> {
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        loop {
            if let Some(entry) = state.take()? {
                return Ok(Some(entry));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            state = self
                .ready
                .wait_timeout(state, deadline - now)
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// `entry` is done with (acknowledged, or refused for good): the lane's acknowledged
    /// position moves over every scrape done without a gap.
    pub fn ack(&self, entry: &Entry) {
        let mut state = self.lock();
        if let Some(slot) = state.window.iter_mut().find(|s| s.offset == entry.offset) {
            slot.done = true;
            slot.entry = None;
        }
        let mut last = None;
        while state.window.front().is_some_and(|s| s.done) {
            last = state.window.pop_front().map(|s| s.offset);
        }
        if let Some(offset) = last {
            state.store.ack(offset);
        }
        drop(state);
        self.ready.notify_all();
    }

    /// `entry` was not sent after all (shutdown, a refused token): it waits again, first in
    /// its target's line.
    pub fn release(&self, entry: Entry) {
        let mut state = self.lock();
        if let Some(slot) = state
            .window
            .iter_mut()
            .find(|s| s.offset == entry.offset && !s.done)
        {
            slot.entry = Some(entry);
        }
        drop(state);
        self.ready.notify_all();
    }
}

enum Store {
    Disk(Box<DiskLane>),
    Memory(MemoryLane),
}

impl Store {
    fn push(&mut self, url: &str, seq: u64, body: &[u8], max: u64) -> Result<u64> {
        match self {
            Store::Disk(d) => d.push(url, seq, body),
            Store::Memory(m) => Ok(m.push(url, seq, body, max)),
        }
    }

    /// The offset of the oldest unacknowledged scrape (the end when there is none).
    fn first(&mut self) -> u64 {
        match self {
            Store::Disk(d) => {
                d.sent = d.sent.max(d.log.start_offset());
                d.sent
            }
            Store::Memory(m) => m.entries.front().map_or(m.next, |e| e.offset),
        }
    }

    /// The offset the next scrape pushed gets.
    fn end(&self) -> u64 {
        match self {
            Store::Disk(d) => d.log.end_offset(),
            Store::Memory(m) => m.next,
        }
    }

    /// The scrape at `offset` (at or after [`Store::first`]).
    fn read(&mut self, offset: u64) -> Result<Option<Entry>> {
        match self {
            Store::Disk(d) => d.read(offset),
            Store::Memory(m) => Ok(m
                .entries
                .front()
                .and_then(|front| offset.checked_sub(front.offset))
                .and_then(|i| m.entries.get(i as usize))
                .cloned()),
        }
    }

    fn ack(&mut self, offset: u64) {
        match self {
            Store::Disk(d) => {
                d.sent = d.sent.max(offset + 1);
                d.save_cursor(false);
            }
            Store::Memory(m) => {
                while m.entries.front().is_some_and(|e| e.offset <= offset) {
                    if let Some(e) = m.entries.pop_front() {
                        m.bytes -= e.body.len() as u64;
                    }
                }
            }
        }
    }

    fn entries(&self) -> u64 {
        match self {
            Store::Disk(d) => d.log.end_offset().saturating_sub(d.sent),
            Store::Memory(m) => m.entries.len() as u64,
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Store::Disk(d) => d.log.size_bytes(),
            Store::Memory(m) => m.bytes,
        }
    }

    fn save_cursor(&mut self, now: bool) {
        if let Store::Disk(d) = self {
            d.save_cursor(now);
        }
    }
}

/// A lane on disk.
struct DiskLane {
    log: PartitionLog,
    /// The `sent` file.
    cursor: PathBuf,
    /// The offset of the oldest scrape not acknowledged.
    sent: u64,
    /// What the `sent` file says, and when it was written.
    saved: u64,
    saved_at: Instant,
}

impl DiskLane {
    fn open(dir: &Path, max_bytes: u64) -> Result<DiskLane> {
        let segment = (max_bytes / 8).clamp(16 << 10, 64 << 20);
        let config = LogConfig {
            segment_bytes: segment,
            // The active segment comes on top of the sealed ones retention keeps.
            retention_bytes: Some(max_bytes.saturating_sub(segment).max(segment)),
            fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
            max_mapped_segments: 4,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir, config).map_err(|e| spool_error(dir, e))?;
        let cursor = dir.join("sent");
        let saved = match std::fs::read_to_string(&cursor) {
            Ok(text) => text.trim().parse().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::Io(e)),
        };
        let sent = saved.clamp(log.start_offset(), log.end_offset());
        Ok(DiskLane {
            log,
            cursor,
            sent,
            saved,
            saved_at: Instant::now(),
        })
    }

    fn push(&mut self, url: &str, seq: u64, body: &[u8]) -> Result<u64> {
        let record = Record {
            timestamp_ms: i64::try_from(seq).unwrap_or(i64::MAX),
            key: Some(url.as_bytes()),
            value: body,
        };
        let dir = self.log.dir().to_path_buf();
        self.log
            .append(&[record], None)
            .map_err(|e| spool_error(&dir, e))?;
        // Retention by size only (no age): deletes the oldest sealed segments over the bound.
        self.log
            .enforce_retention(i64::MIN)
            .map_err(|e| spool_error(&dir, e))?;
        let start = self.log.start_offset();
        let dropped = start.saturating_sub(self.sent);
        self.sent = self.sent.max(start);
        Ok(dropped)
    }

    fn read(&mut self, offset: u64) -> Result<Option<Entry>> {
        if offset < self.log.start_offset() || offset >= self.log.end_offset() {
            return Ok(None);
        }
        let dir = self.log.dir().to_path_buf();
        let records = self
            .log
            .read(offset, 1, usize::MAX)
            .map_err(|e| spool_error(&dir, e))?;
        Ok(records.into_iter().next().map(|r| Entry {
            offset: r.offset,
            url: String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
            seq: u64::try_from(r.timestamp_ms).unwrap_or(0),
            body: r.value,
        }))
    }

    fn save_cursor(&mut self, now: bool) {
        if self.saved == self.sent || (!now && self.saved_at.elapsed() < CURSOR_EVERY) {
            return;
        }
        let tmp = self.cursor.with_extension("tmp");
        let written = std::fs::write(&tmp, self.sent.to_string())
            .and_then(|()| std::fs::rename(&tmp, &self.cursor));
        match written {
            Ok(()) => {
                self.saved = self.sent;
                self.saved_at = Instant::now();
            }
            // Not fatal: a restart resends from the older position (duplicates, answered so).
            Err(e) => {
                tracing::warn!(file = %self.cursor.display(), error = %e, "cannot write the spool position")
            }
        }
    }
}

/// Takes the spool directory's lock: two streamers sharing one spool would send each
/// other's scrapes and corrupt its logs.
fn lock(dir: &Path) -> Result<std::fs::File> {
    let refused = |reason: String| Error::Spool {
        dir: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| refused(e.to_string()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(|e| refused(format!("lock file: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(refused(
            "in use by another streamer (one streamer per spool directory)".into(),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(refused(format!("lock: {e}"))),
    }
}

fn spool_error(dir: &Path, e: broker_log::LogError) -> Error {
    Error::Spool {
        dir: dir.display().to_string(),
        reason: e.to_string(),
    }
}

/// A lane in memory.
#[derive(Default)]
struct MemoryLane {
    entries: VecDeque<Entry>,
    bytes: u64,
    next: u64,
}

impl MemoryLane {
    fn push(&mut self, url: &str, seq: u64, body: &[u8], max: u64) -> u64 {
        let mut dropped = 0;
        while !self.entries.is_empty() && self.bytes + body.len() as u64 > max {
            if let Some(e) = self.entries.pop_front() {
                self.bytes -= e.body.len() as u64;
                dropped += 1;
            }
        }
        self.entries.push_back(Entry {
            offset: self.next,
            url: url.to_string(),
            seq,
            body: body.to_vec(),
        });
        self.next += 1;
        self.bytes += body.len() as u64;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Spool, LANES};

    fn body(n: usize) -> Vec<u8> {
        let mut b = vec![b'x'; n];
        b.push(b'\n');
        b
    }

    #[test]
    fn a_disk_spool_keeps_unsent_scrapes_across_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(Some(dir.path()), 8 << 20).unwrap();
        let lane = spool.lane_of("http://a/metrics");
        for seq in 1..=3 {
            lane.push("http://a/metrics", seq, &body(100)).unwrap();
        }
        let first = lane.take(Duration::ZERO).unwrap().unwrap();
        assert_eq!(
            (first.seq, first.url.as_str(), first.points()),
            (1, "http://a/metrics", 1)
        );
        lane.ack(&first);
        spool.flush();
        drop(spool);

        let spool = Spool::open(Some(dir.path()), 8 << 20).unwrap();
        assert_eq!(spool.entries(), 2);
        let lane = spool.lane_of("http://a/metrics");
        let seqs: Vec<u64> = std::iter::from_fn(|| {
            let e = lane.take(Duration::ZERO).unwrap()?;
            lane.ack(&e);
            Some(e.seq)
        })
        .collect();
        assert_eq!(seqs, [2, 3]);
        assert_eq!(spool.entries(), 0);
    }

    #[test]
    fn senders_take_different_targets_at_once_and_each_targets_scrapes_in_order() {
        for disk in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let spool = Spool::open(disk.then(|| dir.path()), 8 << 20).unwrap();
            let lane = spool.lane(0);
            for (url, seq) in [("a", 1), ("a", 2), ("b", 1), ("c", 1), ("b", 2)] {
                lane.push(url, seq, &body(10)).unwrap();
            }
            let take = || lane.take(Duration::ZERO).unwrap();
            let a1 = take().unwrap();
            // a's second scrape waits for its first: b and c go meanwhile.
            let b1 = take().unwrap();
            let c1 = take().unwrap();
            assert_eq!(
                [
                    (a1.url.as_str(), a1.seq),
                    (&b1.url, b1.seq),
                    (&c1.url, c1.seq)
                ],
                [("a", 1), ("b", 1), ("c", 1)],
                "disk={disk}"
            );
            assert_eq!(take(), None, "a2 and b2 wait for a1 and b1");
            // Acknowledged out of order: the position moves only over what has no gap.
            lane.ack(&c1);
            lane.ack(&b1);
            assert_eq!(spool.entries(), 5, "disk={disk}");
            let b2 = take().unwrap();
            assert_eq!((b2.url.as_str(), b2.seq), ("b", 2));
            // A scrape given back is next in its target's line.
            lane.release(a1);
            let a1 = take().unwrap();
            assert_eq!((a1.url.as_str(), a1.seq), ("a", 1));
            lane.ack(&a1);
            assert_eq!(spool.entries(), 4, "a2 not acknowledged yet: disk={disk}");
            let a2 = take().unwrap();
            assert_eq!((a2.url.as_str(), a2.seq), ("a", 2));
            lane.ack(&b2);
            lane.ack(&a2);
            assert_eq!((spool.entries(), take()), (0, None), "disk={disk}");
        }
    }

    #[test]
    fn an_entrys_points_are_its_lines() {
        for lines in [0, 1, 254, 255, 256, 1000] {
            let entry = super::Entry {
                offset: 0,
                url: "a".into(),
                seq: 1,
                body: "{\"key\":\"k\",\"value\":{}}\n".repeat(lines).into_bytes(),
            };
            assert_eq!(entry.points(), lines);
        }
    }

    #[test]
    fn a_scrape_acknowledged_behind_an_unacknowledged_one_is_resent_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(Some(dir.path()), 8 << 20).unwrap();
        let lane = spool.lane(0);
        lane.push("a", 1, &body(10)).unwrap();
        lane.push("b", 1, &body(10)).unwrap();
        let a1 = lane.take(Duration::ZERO).unwrap().unwrap();
        let b1 = lane.take(Duration::ZERO).unwrap().unwrap();
        lane.ack(&b1);
        drop(a1);
        spool.flush();
        drop(spool);
        let spool = Spool::open(Some(dir.path()), 8 << 20).unwrap();
        let lane = spool.lane(0);
        let again: Vec<_> = std::iter::from_fn(|| {
            let e = lane.take(Duration::ZERO).unwrap()?;
            lane.ack(&e);
            Some((e.url, e.seq))
        })
        .collect();
        assert_eq!(again, [("a".to_string(), 1), ("b".to_string(), 1)]);
    }

    #[test]
    fn a_spool_directory_serves_one_streamer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = Spool::open(Some(dir.path()), 1 << 20).unwrap();
        let second = Spool::open(Some(dir.path()), 1 << 20);
        assert!(
            second.is_err_and(|e| e.to_string().contains("in use by another streamer")),
            "a second streamer on the same spool"
        );
        drop(first);
        assert!(Spool::open(Some(dir.path()), 1 << 20).is_ok());
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_counts_them() {
        for disk in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let max = 1 << 20;
            let spool = Spool::open(disk.then(|| dir.path()), max).unwrap();
            let lane = spool.lane(0);
            let pushes = 400u64;
            let dropped: u64 = (0..pushes)
                .map(|seq| lane.push("http://a/metrics", seq, &body(4000)).unwrap())
                .sum();
            assert!(dropped > 0, "disk={disk}");
            assert_eq!(spool.dropped(), dropped);
            assert_eq!(spool.entries(), pushes - dropped, "disk={disk}");
            assert!(
                spool.bytes() <= max / LANES as u64 + (64 << 10),
                "disk={disk}: {} bytes",
                spool.bytes()
            );
            // What is left is the newest, in order.
            let head = lane.take(Duration::ZERO).unwrap().unwrap();
            assert_eq!(head.seq, dropped, "disk={disk}");
        }
    }
}
