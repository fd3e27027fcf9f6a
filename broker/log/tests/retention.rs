//! Retention deletes whole old segments (never the active one) by size and by age; the
//! mapped-segment LRU stays within its bound; the interval flusher makes data durable on
//! its own.

use std::time::{Duration, Instant};

use broker_log::{FsyncPolicy, LogConfig, LogError, PartitionLog, Record};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 100,
        fsync: FsyncPolicy::Never,
        max_mapped_segments: 2,
        ..LogConfig::default()
    }
}

/// Appends `n` single-record batches of ~300 bytes stamped `ts`.
fn fill(log: &mut PartitionLog, n: usize, ts: i64) {
    let v = vec![b'r'; 300];
    for _ in 0..n {
        log.append(
            &[Record {
                timestamp_ms: ts,
                key: None,
                value: &v,
            }],
            None,
        )
        .expect("append");
    }
}

#[test]
fn retention_by_bytes_keeps_the_log_under_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limit = 2500;
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig {
            retention_bytes: Some(limit),
            ..config()
        },
    )
    .expect("open");
    fill(&mut log, 30, 0);
    let segments = log.segment_count();
    let removed = log.enforce_retention(0).expect("retention");
    assert!(removed > 0);
    assert_eq!(log.segment_count(), segments - removed);
    assert!(
        log.size_bytes() <= limit,
        "size {} over {limit}",
        log.size_bytes()
    );
    let start = log.start_offset();
    assert!(start > 0);
    assert!(matches!(
        log.read(start - 1, 1, 0),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.read(start, 1, 0).expect("read start")[0].offset, start);
    drop(log);
    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert_eq!(log.start_offset(), start, "deleted segments stay deleted");
    assert_eq!(log.end_offset(), 30);
}

#[test]
fn retention_by_age_deletes_only_segments_whose_newest_record_expired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig {
            retention_ms: Some(1_000),
            ..config()
        },
    )
    .expect("open");
    fill(&mut log, 9, 10_000); // three full old segments
    let old_end = log.end_offset();
    fill(&mut log, 9, 50_000);
    assert_eq!(
        log.enforce_retention(10_500).expect("nothing expired yet"),
        0
    );
    let removed = log.enforce_retention(50_500).expect("retention");
    assert!(removed >= 2, "removed {removed}");
    assert!(
        log.start_offset() <= old_end,
        "no segment with new records was deleted"
    );
    assert!(log.start_offset() > 0);
    // Even if everything is old, the active segment stays.
    log.enforce_retention(i64::MAX).expect("retention");
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.end_offset(), 18);
}

#[test]
fn mapped_sealed_segments_stay_within_the_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    fill(&mut log, 40, 0);
    assert!(log.segment_count() > 10);
    for offset in 0..log.end_offset() {
        log.read(offset, 1, 0).expect("read");
        assert!(log.mapped_segments() <= 2);
    }
    assert_eq!(log.mapped_segments(), 2);
}

#[test]
fn interval_flusher_makes_appends_durable_without_being_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        fsync: FsyncPolicy::Interval(Duration::from_millis(5)),
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).expect("open");
    log.append_unsynced(
        &[Record {
            timestamp_ms: 0,
            key: None,
            value: b"x",
        }],
        None,
    )
    .expect("append");
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.durable_offset() < 1 {
        assert!(Instant::now() < deadline, "flusher never synced");
        std::thread::sleep(Duration::from_millis(1));
    }
}
