//! A full disk and a failing sync, injected through `FileOps` (portable: no root, no tiny
//! filesystem, no feature flag). A failed preallocation at roll makes the append fail with
//! `NoSpace` while the log stays readable and takes appends again once space returns; a
//! failed sync poisons the log until it is reopened.

mod common;
use common::Faulty;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use broker_log::{FsyncPolicy, LogConfig, LogError, PartitionLog, Record};

fn config(fsync: FsyncPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        fsync,
        ..LogConfig::default()
    }
}

fn append(log: &mut PartitionLog, tag: &str) -> Result<u64, LogError> {
    let v = format!("{tag}-{}", "x".repeat(200));
    let recs = [Record {
        timestamp_ms: 1,
        key: None,
        value: v.as_bytes(),
    }];
    log.append(&recs, None).map(|o| o.base_offset)
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn full_disk_at_roll_is_an_error_and_the_log_recovers_when_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = Arc::new(Faulty::default());
    let mut log = PartitionLog::open_with_ops(dir.path(), config(FsyncPolicy::Always), ops.clone())
        .expect("open");
    let mut n = 0;
    while log.segment_count() == 1 {
        append(&mut log, &n.to_string()).expect("append");
        n += 1;
    }
    let before = files(dir.path());
    ops.disk_full.store(true, Ordering::SeqCst);
    // Fill the active segment until the next append needs a roll, which fails.
    let err = loop {
        match append(&mut log, &n.to_string()) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, LogError::NoSpace { .. }), "got {err:?}");
    assert!(matches!(
        append(&mut log, "again"),
        Err(LogError::NoSpace { .. })
    ));
    assert_eq!(log.end_offset(), n, "a failed append assigns no offset");
    let readable = log.read(0, usize::MAX, usize::MAX).expect("still readable");
    assert_eq!(readable.len() as u64, n);
    assert_eq!(
        files(dir.path()).len(),
        before.len(),
        "no half-made segment is left behind"
    );

    ops.disk_full.store(false, Ordering::SeqCst);
    assert_eq!(append(&mut log, "back").expect("space returned"), n);
    drop(log);
    let log = PartitionLog::open(dir.path(), config(FsyncPolicy::Always)).expect("reopen");
    assert_eq!(log.end_offset(), n + 1);
    let last = log.read(n, 1, 0).expect("read");
    assert!(last[0].value.starts_with(b"back-"));
}

#[test]
fn opening_an_empty_directory_on_a_full_disk_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = Arc::new(Faulty::default());
    ops.disk_full.store(true, Ordering::SeqCst);
    let err = PartitionLog::open_with_ops(dir.path(), config(FsyncPolicy::Never), ops)
        .expect_err("no space");
    assert!(matches!(err, LogError::NoSpace { .. }), "got {err:?}");
    assert!(files(dir.path()).is_empty(), "nothing left behind");
}

#[test]
fn a_failed_sync_poisons_the_log_until_reopened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = Arc::new(Faulty::default());
    let mut log = PartitionLog::open_with_ops(dir.path(), config(FsyncPolicy::Always), ops.clone())
        .expect("open");
    append(&mut log, "good").expect("append");
    ops.sync_fails.store(true, Ordering::SeqCst);
    assert!(matches!(append(&mut log, "bad"), Err(LogError::Io { .. })));
    ops.sync_fails.store(false, Ordering::SeqCst);
    assert!(matches!(append(&mut log, "after"), Err(LogError::Poisoned)));
    assert!(matches!(log.pending_sync().sync(), Err(LogError::Poisoned)));
    assert_eq!(log.read(0, 1, 0).expect("reads still work")[0].offset, 0);
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(FsyncPolicy::Always)).expect("reopen");
    let next = log.end_offset();
    assert_eq!(
        append(&mut log, "fresh").expect("append after reopen"),
        next
    );
}

#[test]
fn pending_sync_runs_outside_the_lock_and_reports_durable_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config(FsyncPolicy::Never)).expect("open");
    let recs = [Record {
        timestamp_ms: 1,
        key: None,
        value: b"v",
    }];
    log.append_unsynced(&recs, None).expect("append");
    log.append_unsynced(&recs, None).expect("append");
    let pending = log.pending_sync();
    assert_eq!(pending.durable_through(), 2);
    // Appends continue while the sync runs on another thread.
    let t = std::thread::spawn(move || pending.sync());
    log.append_unsynced(&recs, None)
        .expect("append during sync");
    assert_eq!(t.join().expect("join").expect("sync"), 2);
    assert!(log.durable_offset() >= 2);
}

#[test]
fn always_syncs_every_append_also_after_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..2 {
        let ops = Arc::new(Faulty::default());
        let cfg = LogConfig {
            segment_bytes: 1 << 20,
            ..config(FsyncPolicy::Always)
        };
        let mut log = PartitionLog::open_with_ops(dir.path(), cfg, ops.clone()).expect("open");
        for i in 0..3 {
            let before = ops.syncs.load(Ordering::SeqCst);
            append(&mut log, "durable").expect("append");
            assert!(
                ops.syncs.load(Ordering::SeqCst) > before,
                "round {round}, append {i}: acknowledged without an fdatasync"
            );
            assert_eq!(log.durable_offset(), log.end_offset());
        }
    }
}
