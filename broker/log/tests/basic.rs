//! Append, read, roll and reopen through the public API, on real files.

use broker_log::{FsyncPolicy, LogConfig, LogError, PartitionLog, ProducerStamp, Record};

fn small(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 64,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

fn value(i: u64) -> Vec<u8> {
    format!("value-{i:05}")
        .repeat((i % 7) as usize + 1)
        .into_bytes()
}

fn append_n(log: &mut PartitionLog, from: u64, batches: u64, per: u64) {
    for b in 0..batches {
        let vals: Vec<Vec<u8>> = (0..per).map(|r| value(from + b * per + r)).collect();
        let recs: Vec<Record<'_>> = vals
            .iter()
            .map(|v| Record {
                timestamp_ms: 1_000 + v.len() as i64,
                key: Some(b"gpu"),
                value: v,
            })
            .collect();
        let out = log.append(&recs, None).expect("append");
        assert_eq!(out.base_offset, from + b * per);
        assert_eq!(out.end_offset, from + (b + 1) * per);
    }
}

fn check_all(log: &PartitionLog, end: u64) {
    let mut next = log.start_offset();
    while next < end {
        let got = log.read(next, 7, usize::MAX).expect("read");
        assert!(!got.is_empty());
        for r in got {
            assert_eq!(r.offset, next);
            assert_eq!(r.value, value(next));
            assert_eq!(r.key.as_deref(), Some(&b"gpu"[..]));
            next += 1;
        }
    }
    assert_eq!(next, end);
}

#[test]
fn append_read_roll_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut log = PartitionLog::open(dir.path(), small(2048)).expect("open");
        append_n(&mut log, 0, 50, 5);
        assert!(log.segment_count() > 3, "tiny segments roll");
        check_all(&log, 250);
        assert_eq!(log.read(250, 10, 100).expect("read at end"), vec![]);
        assert!(matches!(
            log.read(251, 1, 1),
            Err(LogError::OffsetOutOfRange { .. })
        ));
    }
    let mut log = PartitionLog::open(dir.path(), small(2048)).expect("reopen");
    assert_eq!(log.end_offset(), 250);
    assert_eq!(log.recovery_report().bytes_truncated, 0);
    check_all(&log, 250);
    append_n(&mut log, 250, 10, 3);
    check_all(&log, 280);
}

#[test]
fn read_encoded_and_append_encoded_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small(1 << 20)).expect("open");
    append_n(&mut log, 0, 3, 4);
    let bytes = log.read_encoded(5, 1).expect("read_encoded");
    let stamp = ProducerStamp {
        producer_id: 9,
        seq: 2,
    };
    let out = log
        .append_encoded(&bytes, Some(stamp))
        .expect("append_encoded");
    assert_eq!((out.base_offset, out.record_count), (12, 4));
    let got = log.read(12, 100, usize::MAX).expect("read");
    assert_eq!(
        got.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
        (4..8).map(value).collect::<Vec<_>>()
    );
    let mut metas = Vec::new();
    log.for_each_batch_meta(0, &mut |m| metas.push(*m))
        .expect("metas");
    assert_eq!(metas.len(), 4);
    assert_eq!(metas[3].producer, Some(stamp));
    let mut bad = bytes.clone();
    bad[60] ^= 1;
    assert!(matches!(
        log.append_encoded(&bad, None),
        Err(LogError::InvalidBatch { .. })
    ));
}

/// Disk blocks a file really holds (preallocated blocks count, holes do not).
fn allocated(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("stat").blocks() * 512
}

#[test]
fn the_active_segment_is_preallocated_in_steps_not_a_whole_segment_up_front() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        initial_segment_bytes: 16 * 1024,
        ..small(1024 * 1024)
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).expect("open");
    let active = dir.path().join(format!("{:020}.log", 0));
    assert!(
        allocated(&active) <= 64 * 1024,
        "a new segment reserves the first step, not 1 MiB: {} bytes",
        allocated(&active)
    );
    // Fill about half a segment: the file grows by doubling, never past the segment size.
    append_n(&mut log, 0, 60, 20);
    let end = log.end_offset();
    let grown = allocated(&active);
    assert!(
        log.size_bytes() <= grown && grown <= 1024 * 1024 + 64 * 1024,
        "{} bytes written, {grown} allocated",
        log.size_bytes()
    );
    assert_eq!(log.segment_count(), 1, "growing is not rolling");
    check_all(&log, end);
    drop(log);
    // Reopened: the grown file is the capacity; appends go on and roll at the segment size.
    let mut log = PartitionLog::open(dir.path(), cfg).expect("reopen");
    assert_eq!(log.end_offset(), end);
    append_n(&mut log, end, 800, 20);
    assert!(log.segment_count() > 1, "rolls at segment_bytes");
    check_all(&log, log.end_offset());
}
