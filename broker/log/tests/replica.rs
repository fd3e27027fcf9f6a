//! `append_replica` on real files: a follower storing its leader's `read_encoded` bytes gets
//! the same bytes, offsets, batch headers and epoch answers (across segment rolls, in one
//! buffer or fetch by fetch, after reopening, after a truncation); refused buffers (gap,
//! overlap, bad CRC, truncated, older epoch) leave the log and its reopened state unchanged;
//! a full disk at a roll leaves the log as before, or at a whole-batch prefix when the roll
//! comes part-way, and the follower catches up from its end once space returns; the appended
//! range is synced under `Always` and settled by the group commit as any append; a follower
//! whose log lies below its leader's start resets to that start and copies on.

mod common;
use common::Faulty;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use broker_log::record;
use broker_log::{
    BatchMeta, FsyncPolicy, LogConfig, LogError, PartitionLog, ProducerStamp, Record,
};

fn config() -> LogConfig {
    common::small_segments()
}

/// Appends one batch of `count` records whose values name their round, with a producer
/// stamp on every other batch.
fn append(log: &mut PartitionLog, count: usize, round: u32) -> u64 {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("r{round}-{i}-{}", "v".repeat(40 + i * 7)).into_bytes())
        .collect();
    let records: Vec<Record<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            timestamp_ms: 1_000 + i as i64,
            key: i.is_multiple_of(2).then_some(b"k".as_slice()),
            value: v,
        })
        .collect();
    let producer = round.is_multiple_of(2).then_some(ProducerStamp {
        producer_id: 77,
        seq: u64::from(round),
    });
    log.append(&records, producer).expect("append").base_offset
}

/// A leader with batches in epochs 0, 1, 1, 3 over several segments: returns it open.
fn leader(dir: &Path, batches: u32) -> PartitionLog {
    let mut log = PartitionLog::open(dir, config()).expect("open leader");
    for round in 0..batches {
        match round {
            r if r == batches / 4 => log.set_leader_epoch(1).expect("epoch 1"),
            r if r == batches * 3 / 4 => log.set_leader_epoch(3).expect("epoch 3"),
            _ => {}
        }
        append(&mut log, 1 + (round as usize % 4), round);
    }
    log
}

fn all(log: &PartitionLog) -> Vec<u8> {
    log.read_encoded(log.start_offset(), usize::MAX)
        .expect("read_encoded")
}

fn metas(log: &PartitionLog) -> Vec<BatchMeta> {
    let mut v = Vec::new();
    log.for_each_batch_meta(log.start_offset(), &mut |m| v.push(*m))
        .expect("metas");
    v
}

/// Everything a follower must agree with its leader on.
#[derive(Debug, PartialEq, Eq)]
struct State {
    bytes: Vec<u8>,
    start: u64,
    end: u64,
    metas: Vec<BatchMeta>,
    latest_epoch: Option<u32>,
    epoch_ends: Vec<Option<(u32, u64)>>,
}

fn state(log: &PartitionLog) -> State {
    State {
        bytes: all(log),
        start: log.start_offset(),
        end: log.end_offset(),
        metas: metas(log),
        latest_epoch: log.latest_epoch().expect("latest"),
        epoch_ends: (0..6)
            .map(|e| log.end_offset_for_epoch(e).expect("end for epoch"))
            .collect(),
    }
}

fn reopened(dir: &Path) -> State {
    state(&PartitionLog::open(dir, config()).expect("reopen"))
}

#[test]
fn a_follower_holds_its_leaders_bytes_across_rolls_in_one_buffer_or_fetch_by_fetch() {
    let (ld, fd, fd2) = (tempdir(), tempdir(), tempdir());
    let leader = leader(ld.path(), 40);
    assert!(
        leader.segment_count() > 3,
        "the leader rolled several times"
    );
    let want = state(&leader);

    // One buffer holding the whole log.
    let mut f = PartitionLog::open(fd.path(), config()).expect("open follower");
    let got = f.append_replica(&want.bytes).expect("append_replica");
    assert_eq!((got.base_offset, got.end_offset), (0, want.end));
    assert_eq!(got.batches, want.metas, "the result names every batch");
    assert!(got.batches.iter().any(|m| m.producer.is_some()));
    assert_eq!(state(&f), want);
    assert_eq!(f.segment_count(), leader.segment_count());
    drop(f);
    assert_eq!(reopened(fd.path()), want);

    // Fetch by fetch, as a follower does: from its end, a few batches at a time.
    let mut f = PartitionLog::open(fd2.path(), config()).expect("open follower");
    let mut fetches = 0;
    while f.end_offset() < leader.end_offset() {
        let chunk = leader
            .read_encoded(f.end_offset(), 700)
            .expect("leader fetch");
        let got = f.append_replica(&chunk).expect("append fetch");
        assert_eq!(
            got.base_offset + u64::from(got.batches.iter().map(|m| m.record_count).sum::<u32>()),
            got.end_offset
        );
        fetches += 1;
    }
    assert!(fetches > 5);
    assert_eq!(state(&f), want);
    assert!(f.append_replica(&[]).expect("empty").batches.is_empty());
    drop(f);
    assert_eq!(reopened(fd2.path()), want);
}

#[test]
fn after_truncate_to_the_leaders_bytes_from_the_new_end_append_cleanly() {
    let (ld, fd) = (tempdir(), tempdir());
    let leader = leader(ld.path(), 40);
    let want = state(&leader);
    let mut f = PartitionLog::open(fd.path(), config()).expect("open follower");
    f.append_replica(&want.bytes).expect("append_replica");
    for cut in [want.end - 1, want.end * 2 / 3, want.end / 5, 1] {
        let new_end = f.truncate_to(cut).expect("truncate");
        assert!(new_end <= cut);
        let rest = leader.read_encoded(new_end, usize::MAX).expect("fetch");
        let got = f.append_replica(&rest).expect("catch up");
        assert_eq!(got.base_offset, new_end);
        assert_eq!(state(&f), want, "after truncating to {cut}");
    }
    drop(f);
    assert_eq!(reopened(fd.path()), want);
}

#[test]
fn a_follower_that_led_in_an_older_epoch_truncates_to_the_leaders_epoch_end_and_converges() {
    let (ld, fd) = (tempdir(), tempdir());
    let mut leader = leader(ld.path(), 8);
    let mut f = PartitionLog::open(fd.path(), config()).expect("open follower");
    f.append_replica(&all(&leader)).expect("copy");
    // The follower leads epoch 4 for a while; its batches never reach the new leader, which
    // leads epoch 5 from the same end.
    f.set_leader_epoch(4).expect("epoch 4");
    append(&mut f, 3, 100);
    leader.set_leader_epoch(5).expect("epoch 5");
    append(&mut leader, 2, 101);
    append(&mut leader, 1, 102);
    let (_, diverged) = leader
        .end_offset_for_epoch(4)
        .expect("leader's epochs")
        .expect("an epoch ≤ 4");
    let new_end = f.truncate_to(diverged).expect("truncate");
    f.append_replica(&leader.read_encoded(new_end, usize::MAX).expect("fetch"))
        .expect("catch up");
    assert_eq!(state(&f), state(&leader));
}

#[test]
fn v1_batches_are_stored_as_the_leader_stored_them() {
    let fd = tempdir();
    let v = b"an old record".as_slice();
    let recs = [Record {
        timestamp_ms: 5,
        key: None,
        value: v,
    }; 3];
    let mut buf = record::encode_v1(0, &recs, None);
    buf.extend(record::encode_in_epoch(3, 2, &recs[..2], None));
    let mut f = PartitionLog::open(fd.path(), config()).expect("open");
    let got = f.append_replica(&buf).expect("append v1 then v2");
    let epochs: Vec<u32> = got.batches.iter().map(|m| m.leader_epoch).collect();
    assert_eq!(epochs, [0, 2]);
    assert_eq!(all(&f), buf);
    drop(f);
    assert_eq!(reopened(fd.path()).bytes, buf);
}

/// A follower holding the leader's log up to `upto` (a batch boundary), and the leader.
fn pair(
    upto_batches: usize,
) -> (
    tempfile::TempDir,
    tempfile::TempDir,
    PartitionLog,
    PartitionLog,
) {
    let (ld, fd) = (tempdir(), tempdir());
    let leader = leader(ld.path(), 40);
    let metas = metas(&leader);
    let upto = metas[upto_batches].base_offset;
    let mut f = PartitionLog::open(fd.path(), config()).expect("open follower");
    while f.end_offset() < upto {
        let chunk = leader.read_encoded(f.end_offset(), 1).expect("one batch");
        f.append_replica(&chunk).expect("copy");
    }
    assert_eq!(f.end_offset(), upto);
    (ld, fd, leader, f)
}

/// `bad` is refused as `check` says, and leaves the follower, and its reopened state, as
/// it was; the good buffer from its end still appends afterwards.
fn refused(
    f: &mut PartitionLog,
    leader: &PartitionLog,
    bad: &[u8],
    check: impl Fn(&LogError) -> bool,
) {
    let before = state(f);
    let err = f.append_replica(bad).expect_err("refused");
    assert!(check(&err), "unexpected refusal: {err:?}");
    assert_eq!(state(f), before);
    assert_eq!(reopened(f.dir()), before);
    f.append_replica(
        &leader
            .read_encoded(f.end_offset(), usize::MAX)
            .expect("fetch"),
    )
    .expect("the right bytes still append");
    assert_eq!(state(f), state(leader));
}

#[test]
fn a_gap_or_an_overlap_is_refused_and_changes_nothing() {
    let (_ld, _fd, leader, mut f) = pair(12);
    let m = metas(&leader);
    let end = f.end_offset();
    let gap = leader
        .read_encoded(m[13].base_offset, usize::MAX)
        .expect("fetch");
    refused(&mut f, &leader, &gap, |e| {
        matches!(e, LogError::ReplicaNotContiguous { position: 0, expected, found }
            if *expected == end && *found == m[13].base_offset)
    });

    let (_ld, _fd, leader, mut f) = pair(12);
    let overlap = leader
        .read_encoded(m[11].base_offset, usize::MAX)
        .expect("fetch");
    refused(
        &mut f,
        &leader,
        &overlap,
        |e| matches!(e, LogError::ReplicaNotContiguous { found, .. } if *found == m[11].base_offset),
    );

    // Contiguity inside the buffer: the second batch repeated.
    let (_ld, _fd, leader, mut f) = pair(12);
    let one = leader.read_encoded(m[12].base_offset, 1).expect("one");
    let two = leader.read_encoded(m[13].base_offset, 1).expect("two");
    let bad = [one.as_slice(), &two, &two].concat();
    refused(
        &mut f,
        &leader,
        &bad,
        |e| matches!(e, LogError::ReplicaNotContiguous { position, .. } if *position == one.len() + two.len()),
    );
}

#[test]
fn a_flipped_byte_or_a_truncated_buffer_is_refused_and_nothing_of_it_is_appended() {
    let (_ld, _fd, leader, mut f) = pair(12);
    let good = leader.read_encoded(f.end_offset(), 1500).expect("fetch");
    let first_len = leader.read_encoded(f.end_offset(), 1).expect("one").len();
    assert!(good.len() > first_len + 80, "several batches in the buffer");
    // A byte of the second batch's records: the first batch is valid, yet nothing lands.
    let mut flipped = good.clone();
    flipped[first_len + 70] ^= 0x10;
    refused(&mut f, &leader, &flipped, |e| {
        matches!(e, LogError::ReplicaBatchInvalid { position, reason }
            if *position == first_len && reason.contains("CRC"))
    });

    let (_ld, _fd, leader, mut f) = pair(12);
    // The leader epoch is under the CRC too.
    let mut epoch_flipped = good.clone();
    epoch_flipped[56] ^= 1;
    refused(&mut f, &leader, &epoch_flipped, |e| {
        matches!(e, LogError::ReplicaBatchInvalid { position: 0, .. })
    });

    let (_ld, _fd, leader, mut f) = pair(12);
    refused(
        &mut f,
        &leader,
        &good[..good.len() - 1],
        |e| matches!(e, LogError::ReplicaBatchInvalid { reason, .. } if reason.contains("truncated")),
    );
    let (_ld, _fd, leader, mut f) = pair(12);
    refused(&mut f, &leader, &good[..30], |e| {
        matches!(e, LogError::ReplicaBatchInvalid { position: 0, .. })
    });
}

#[test]
fn a_batch_of_an_older_epoch_than_the_logs_latest_is_refused() {
    let (ld, fd) = (tempdir(), tempdir());
    let mut leader = PartitionLog::open(ld.path(), config()).expect("open leader");
    leader.set_leader_epoch(1).expect("epoch 1");
    append(&mut leader, 2, 0);
    let mut f = PartitionLog::open(fd.path(), config()).expect("open follower");
    f.append_replica(&all(&leader)).expect("copy");
    // The follower goes on as leader of epoch 5; the old leader appends in epoch 2 at the
    // offset the follower's end is now.
    f.set_leader_epoch(5).expect("epoch 5");
    append(&mut f, 1, 1);
    append(&mut leader, 1, 2);
    leader.set_leader_epoch(2).expect("epoch 2");
    append(&mut leader, 1, 3);
    let stale = leader
        .read_encoded(f.end_offset(), usize::MAX)
        .expect("fetch");
    let before = state(&f);
    let err = f.append_replica(&stale).expect_err("older epoch");
    assert!(
        matches!(
            err,
            LogError::ReplicaStaleEpoch {
                position: 0,
                epoch: 2,
                latest: 5
            }
        ),
        "{err:?}"
    );
    assert_eq!(state(&f), before);
    drop(f);
    assert_eq!(reopened(fd.path()), before);

    // Inside one buffer: a batch of epoch 3 after one of epoch 4.
    let recs = [Record {
        timestamp_ms: 1,
        key: None,
        value: b"x",
    }];
    let e4 = record::encode_in_epoch(0, 4, &recs, None);
    let e3 = record::encode_in_epoch(1, 3, &recs, None);
    let fd = tempdir();
    let mut f = PartitionLog::open(fd.path(), config()).expect("open");
    let err = f
        .append_replica(&[e4.as_slice(), &e3].concat())
        .expect_err("epoch going back");
    assert!(
        matches!(
            err,
            LogError::ReplicaStaleEpoch {
                epoch: 3,
                latest: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(f.end_offset(), 0);
    // And the epoch a follower leads in is raised by what it copies.
    f.append_replica(&e4).expect("epoch 4");
    assert_eq!(f.leader_epoch().expect("epoch"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_appended_range_is_settled_as_any_append() {
    let (ld, fd, fd2) = (tempdir(), tempdir(), tempdir());
    let leader = leader(ld.path(), 40);
    let bytes = all(&leader);
    let always = LogConfig {
        fsync: FsyncPolicy::Always,
        ..config()
    };
    // `append_replica` under `Always` returns synced, across the rolls it made.
    let mut f = PartitionLog::open(fd.path(), always.clone()).expect("open");
    let got = f.append_replica(&bytes).expect("append");
    assert_eq!(f.durable_offset(), got.end_offset);

    // The unsynced form is made durable by the group commit's settle, as an append is.
    let mut f = PartitionLog::open(fd2.path(), always).expect("open");
    let first = leader.read_encoded(0, 1).expect("one batch");
    let got = f.append_replica_unsynced(&first).expect("append");
    assert!(f.durable_offset() < got.end_offset, "not synced yet");
    f.durable().settle(got.end_offset).await.expect("settle");
    assert!(f.durable_offset() >= got.end_offset);
}

#[test]
fn a_full_disk_at_a_roll_leaves_the_log_as_before_or_at_a_whole_batch_prefix() {
    let ld = tempdir();
    let leader = leader(ld.path(), 40);
    let want = state(&leader);
    let fd = tempdir();
    let ops = Arc::new(Faulty::default());
    let full = LogConfig {
        fsync: FsyncPolicy::Always,
        ..config()
    };
    let mut f = PartitionLog::open_with_ops(fd.path(), full.clone(), ops.clone()).expect("open");
    // Copy batch by batch until the next one needs a new segment or a bigger one.
    loop {
        let next = leader.read_encoded(f.end_offset(), 1).expect("one");
        if f.append_may_block(next.len()) {
            break;
        }
        f.append_replica(&next).expect("copy");
    }
    ops.disk_full.store(true, Ordering::SeqCst);

    // The first batch needs the room: nothing appended.
    let before = state(&f);
    let rest = leader
        .read_encoded(f.end_offset(), usize::MAX)
        .expect("fetch");
    let err = f.append_replica(&rest).expect_err("disk full");
    assert!(matches!(err, LogError::NoSpace { .. }), "{err:?}");
    assert_eq!(state(&f), before);
    drop(f);
    assert_eq!(reopened(fd.path()), before);

    // Space returns: the follower copies on until the next batch fits and the one after it
    // needs the room, then the disk fills again: the buffer fails part-way.
    ops.disk_full.store(false, Ordering::SeqCst);
    let mut f = PartitionLog::open_with_ops(fd.path(), full.clone(), ops.clone()).expect("open");
    let half = leader.read_encoded(f.end_offset(), 1200).expect("fetch");
    f.append_replica(&half).expect("copy");
    let back = loop {
        let end = f.end_offset();
        let next = leader.read_encoded(end, 1).expect("one");
        let count = record::peek_header(&next).expect("header").record_count;
        assert!(
            end + u64::from(count) < leader.end_offset(),
            "the leader has more"
        );
        let after = leader
            .read_encoded(end + u64::from(count), 1)
            .expect("the one after");
        let two = next.len() + after.len();
        if !f.append_may_block(next.len()) && f.append_may_block(two) {
            break end;
        }
        f.append_replica(&next).expect("copy");
    };
    ops.disk_full.store(true, Ordering::SeqCst);
    let rest = leader.read_encoded(back, usize::MAX).expect("fetch");
    let err = f.append_replica(&rest).expect_err("disk full part-way");
    assert!(matches!(err, LogError::NoSpace { .. }), "{err:?}");
    let partial = state(&f);
    assert!(partial.end > back, "the batches before the roll are kept");
    assert_eq!(
        partial.bytes,
        leader.read_encoded(0, usize::MAX).expect("all")[..partial.bytes.len()],
        "a prefix of the leader's bytes"
    );
    assert!(
        want.metas.iter().any(|m| m.base_offset == partial.end),
        "at a batch boundary"
    );
    drop(f);
    assert_eq!(reopened(fd.path()), partial);

    ops.disk_full.store(false, Ordering::SeqCst);
    let mut f = PartitionLog::open_with_ops(fd.path(), full, ops).expect("open");
    f.append_replica(
        &leader
            .read_encoded(f.end_offset(), usize::MAX)
            .expect("fetch"),
    )
    .expect("catch up");
    assert_eq!(state(&f), want);
}

/// A follower whose whole log lies below its leader's log start (the leader's retention
/// deleted what would come next) empties itself to start there and copies on from it; a
/// full disk half-way through the reset poisons it, and it reopens to a log it can reset
/// again. A start below the follower's end is refused with nothing changed.
#[test]
fn a_follower_below_its_leaders_start_resets_to_it_and_copies_on() {
    let (ld, fd) = (tempdir(), tempdir());
    let mut leader = leader(ld.path(), 8);
    let ops = Arc::new(Faulty::default());
    let mut f = PartitionLog::open_with_ops(fd.path(), config(), ops.clone()).expect("open");
    f.append_replica(&all(&leader)).expect("copy");
    let stale = f.end_offset();
    // The leader goes on, then its retention deletes its first segments.
    leader.set_leader_epoch(4).expect("epoch 4");
    for round in 8..60 {
        append(&mut leader, 1 + (round as usize % 4), round);
    }
    let mut leader = {
        drop(leader);
        let retained = LogConfig {
            retention_bytes: Some(4096),
            ..config()
        };
        PartitionLog::open(ld.path(), retained).expect("reopen leader")
    };
    assert!(leader.enforce_retention(0).expect("retention") > 0);
    let start = leader.start_offset();
    assert!(
        start > stale,
        "the leader's log now starts past the follower's end"
    );
    let want = state(&leader);

    let before = state(&f);
    let err = f.reset_to(stale - 1).expect_err("below the end");
    assert!(matches!(err, LogError::OffsetOutOfRange { .. }), "{err:?}");
    assert_eq!(state(&f), before, "a refused reset changes nothing");

    // A full disk when the new segment is created: the old segments are gone already.
    ops.disk_full.store(true, Ordering::SeqCst);
    let err = f.reset_to(start).expect_err("disk full");
    assert!(matches!(err, LogError::NoSpace { .. }), "{err:?}");
    assert!(matches!(f.read_encoded(0, 1), Err(LogError::Poisoned)));
    drop(f);
    ops.disk_full.store(false, Ordering::SeqCst);
    let mut f = PartitionLog::open_with_ops(fd.path(), config(), ops).expect("reopen");
    assert_eq!((f.start_offset(), f.end_offset()), (0, 0), "an empty log");

    f.reset_to(start).expect("reset");
    assert_eq!((f.start_offset(), f.end_offset()), (start, start));
    assert_eq!(f.latest_epoch().expect("latest"), None);
    f.reset_to(start).expect("again: nothing to do");
    drop(f);
    let mut f = PartitionLog::open(fd.path(), config()).expect("reopen");
    assert_eq!(
        (f.start_offset(), f.end_offset()),
        (start, start),
        "durable"
    );
    let got = f
        .append_replica(&leader.read_encoded(start, usize::MAX).expect("fetch"))
        .expect("copy on");
    assert_eq!(got.base_offset, start);
    assert_eq!(state(&f), want);
    drop(f);
    assert_eq!(reopened(fd.path()), want);
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}
