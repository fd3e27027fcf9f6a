//! Leader epochs on real files: the epoch stamped on appends, the epoch cache's answers
//! (`latest_epoch`, `end_offset_for_epoch`) checked against a model kept while appending, the
//! same answers from a cache rebuilt from headers after a reopen (across many segments, with
//! epochs changing inside segments and at their boundaries), and retention trimming it.

mod common;

use std::collections::BTreeMap;

use broker_log::{LogConfig, LogError, PartitionLog, Record};

fn config() -> LogConfig {
    common::small_segments()
}

fn append(log: &mut PartitionLog, count: usize) -> u64 {
    let v = vec![b'7'; 90];
    let records: Vec<Record<'_>> = (0..count)
        .map(|_| Record {
            timestamp_ms: 1,
            key: None,
            value: &v,
        })
        .collect();
    log.append(&records, None).expect("append").base_offset
}

/// What `end_offset_for_epoch` must answer, from the epochs' first offsets and the log end.
fn expected(starts: &BTreeMap<u32, u64>, epoch: u32, end: u64) -> Option<(u32, u64)> {
    let (&found, _) = starts.range(..=epoch).next_back()?;
    let until = starts
        .range(found + 1..)
        .next()
        .map_or(end, |(_, &start)| start);
    Some((found, until))
}

fn check(log: &PartitionLog, starts: &BTreeMap<u32, u64>, max_epoch: u32) {
    let end = log.end_offset();
    assert_eq!(
        log.latest_epoch().expect("latest"),
        starts.keys().next_back().copied()
    );
    for epoch in 0..=max_epoch + 2 {
        assert_eq!(
            log.end_offset_for_epoch(epoch).expect("lookup"),
            expected(starts, epoch, end),
            "epoch {epoch}"
        );
    }
}

#[test]
fn appends_are_stamped_with_the_leader_epoch_and_it_never_goes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    assert_eq!(log.latest_epoch().expect("latest"), None, "empty log");
    assert_eq!(log.end_offset_for_epoch(0).expect("lookup"), None);
    assert_eq!(log.leader_epoch().expect("epoch"), 0);
    append(&mut log, 2);
    log.set_leader_epoch(3).expect("raise");
    // Setting an epoch does not by itself make a batch of it.
    assert_eq!(log.latest_epoch().expect("latest"), Some(0));
    append(&mut log, 1);
    log.set_leader_epoch(3).expect("same epoch again");
    append(&mut log, 4);
    assert!(matches!(
        log.set_leader_epoch(2),
        Err(LogError::StaleEpoch {
            epoch: 2,
            latest: 3
        })
    ));
    let mut epochs = Vec::new();
    log.for_each_batch_meta(0, &mut |m| epochs.push((m.base_offset, m.leader_epoch)))
        .expect("metas");
    assert_eq!(epochs, [(0, 0), (2, 3), (3, 3)]);
    assert_eq!(log.end_offset_for_epoch(0).expect("lookup"), Some((0, 2)));
    assert_eq!(log.end_offset_for_epoch(2).expect("lookup"), Some((0, 2)));
    assert_eq!(log.end_offset_for_epoch(3).expect("lookup"), Some((3, 7)));
    assert_eq!(log.end_offset_for_epoch(9).expect("lookup"), Some((3, 7)));
    drop(log);

    // A reopened log goes on in its latest epoch, and still refuses a lower one.
    let mut log = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert_eq!(log.leader_epoch().expect("epoch"), 3);
    append(&mut log, 1);
    let mut last = None;
    log.for_each_batch_meta(7, &mut |m| last = Some(m.leader_epoch))
        .expect("metas");
    assert_eq!(last, Some(3));
    assert!(log.set_leader_epoch(0).is_err());
}

#[test]
fn the_epoch_cache_rebuilt_from_headers_answers_as_the_one_kept_while_appending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    // Ask once before appending, so the cache is built and then kept up to date by appends.
    assert_eq!(log.end_offset_for_epoch(0).expect("lookup"), None);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut starts = BTreeMap::new();
    let mut epoch = 0u32;
    for _ in 0..120 {
        if rng.u8(..) < 40 {
            epoch += rng.u32(1..4);
            log.set_leader_epoch(epoch).expect("raise");
        }
        let base = append(&mut log, rng.usize(1..5));
        starts.entry(epoch).or_insert(base);
    }
    let segments = log.segment_count();
    assert!(segments > 10, "{segments} segments");
    assert!(starts.len() > 8, "{} epochs", starts.len());
    check(&log, &starts, epoch);
    drop(log);

    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    check(&log, &starts, epoch);
}

#[test]
fn retention_drops_the_epochs_it_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        retention_bytes: Some(4096),
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).expect("open");
    let mut starts = BTreeMap::new();
    for epoch in 0..12u32 {
        log.set_leader_epoch(epoch * 2).expect("raise");
        let base = append(&mut log, 8);
        starts.insert(epoch * 2, base);
        append(&mut log, 3);
    }
    check(&log, &starts, 24);
    let removed = log.enforce_retention(0).expect("retention");
    assert!(removed > 0);
    let start = log.start_offset();
    // What is left: the epoch holding the new start begins there; earlier ones are gone.
    let (&first_kept, _) = starts
        .range(..)
        .rev()
        .find(|(_, &s)| s <= start)
        .expect("kept");
    assert!(first_kept > 0, "retention deleted whole epochs");
    starts.retain(|&e, _| e >= first_kept);
    starts.insert(first_kept, start);
    check(&log, &starts, 24);
    assert_eq!(
        log.end_offset_for_epoch(first_kept.saturating_sub(1))
            .expect("lookup"),
        None
    );
}
