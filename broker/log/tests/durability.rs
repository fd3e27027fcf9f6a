//! The log's own durability, as the broker uses it: group commit through [`Durable`] under
//! `FsyncPolicy::Always` (concurrent waiters share syncs; a failed sync fails every waiter),
//! the interval flusher shared by many logs (one thread, not one per log), the durable-offset
//! listener, and `append_may_block`.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker_log::io::{FileOps, RealFileOps};
use broker_log::{FsyncPolicy, LogConfig, LogError, PartitionLog, Record};

/// Real operations with each sync slowed down (so waiters pile up) and counted, and an EIO
/// switch.
#[derive(Debug, Default)]
struct SlowSync {
    syncs: AtomicUsize,
    fail: AtomicBool,
}

impl FileOps for SlowSync {
    fn preallocate(&self, file: &File, len: u64) -> io::Result<()> {
        RealFileOps.preallocate(file, len)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        std::thread::sleep(Duration::from_millis(5));
        RealFileOps.sync_data(file)
    }
}

fn record(value: &[u8]) -> [Record<'_>; 1] {
    [Record {
        timestamp_ms: 1,
        key: None,
        value,
    }]
}

fn always() -> LogConfig {
    LogConfig {
        fsync: FsyncPolicy::Always,
        ..LogConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_waiters_share_syncs_and_each_returns_once_its_batch_is_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = Arc::new(SlowSync::default());
    let log = PartitionLog::open_with_ops(dir.path(), always(), ops.clone()).expect("open");
    let seen = Arc::new(AtomicUsize::new(0));
    let seen2 = seen.clone();
    log.on_durable(Box::new(move |d| {
        seen2.fetch_max(d as usize, Ordering::SeqCst);
    }));
    let log = Arc::new(Mutex::new(log));
    const WAITERS: usize = 64;
    let tasks: Vec<_> = (0..WAITERS)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                let (end, durable) = {
                    let mut log = log.lock().expect("lock");
                    let v = format!("m{i}");
                    let out = log
                        .append_unsynced(&record(v.as_bytes()), None)
                        .expect("append");
                    (out.end_offset, log.durable())
                };
                durable.settle(end).await.expect("durable");
                assert!(durable.durable_offset() >= end, "settled before durable");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let syncs = ops.syncs.load(Ordering::SeqCst);
    assert!(syncs >= 1, "something was synced");
    assert!(
        syncs < WAITERS,
        "{syncs} syncs for {WAITERS} waiters: no sharing"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        WAITERS,
        "the listener heard the last advance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_fails_every_waiter_and_the_log_refuses_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = Arc::new(SlowSync::default());
    let mut log = PartitionLog::open_with_ops(dir.path(), always(), ops.clone()).expect("open");
    ops.fail.store(true, Ordering::SeqCst);
    let end = log
        .append_unsynced(&record(b"x"), None)
        .expect("append")
        .end_offset;
    let durable = log.durable();
    let waits: Vec<_> = (0..4)
        .map(|_| {
            let durable = durable.clone();
            tokio::spawn(async move { durable.settle(end).await })
        })
        .collect();
    for w in waits {
        assert!(matches!(w.await.expect("task"), Err(LogError::Poisoned)));
    }
    assert!(durable.failed());
    assert!(matches!(
        log.append_unsynced(&record(b"y"), None),
        Err(LogError::Poisoned)
    ));
}

#[test]
fn interval_logs_share_one_flusher_thread_that_makes_each_durable() {
    let threads = || -> usize {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("Threads line")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        fsync: FsyncPolicy::Interval(Duration::from_millis(10)),
        initial_segment_bytes: 64 * 1024,
        ..LogConfig::default()
    };
    let before = threads();
    let mut logs: Vec<PartitionLog> = (0..100)
        .map(|i| PartitionLog::open(&dir.path().join(i.to_string()), config.clone()).expect("open"))
        .collect();
    for log in &mut logs {
        log.append_unsynced(&record(b"v"), None).expect("append");
    }
    assert!(
        threads() <= before + 1,
        "{} threads for 100 logs (from {before})",
        threads()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while logs.iter().any(|l| l.durable_offset() < 1) {
        assert!(
            Instant::now() < deadline,
            "the flusher did not sync every log"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn append_may_block_exactly_when_the_active_segment_must_grow_or_roll() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 8192,
        initial_segment_bytes: 2048,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config).expect("open");
    let value = [b'v'; 300];
    let len = broker_log::record::encoded_len(&record(&value));
    let (mut grew_or_rolled, mut said_so) = (0, 0);
    for _ in 0..60 {
        let predicted = log.append_may_block(len);
        let (segments, size) = (log.segment_count(), log.size_bytes());
        let files_before = allocated(dir.path());
        log.append_unsynced(&record(&value), None).expect("append");
        let changed = log.segment_count() != segments || allocated(dir.path()) != files_before;
        assert_eq!(log.size_bytes(), size + len as u64);
        grew_or_rolled += usize::from(changed);
        said_so += usize::from(predicted);
        assert_eq!(predicted, changed, "prediction vs what happened");
    }
    assert!(grew_or_rolled >= 3, "the test must grow and roll");
    assert_eq!(said_so, grew_or_rolled);
}

/// Total file sizes of the segments (preallocation shows here).
fn allocated(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum()
}
