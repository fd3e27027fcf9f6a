//! `truncate_to` on real files: whole batches, inside the active segment and into an older
//! one (later segments deleted), at a segment boundary and down to the log start; appends
//! and reopening afterwards, with no cut byte coming back; the epoch cache and the durable
//! offset following; and crashes: a sync failing at each step of the truncation (injected
//! through `FileOps`, the process stopping there), and an intent file left by a crash, both
//! reopening to the old end or the new one.

mod common;
use common::Faulty;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use broker_log::{LogConfig, LogError, PartitionLog, Record};

fn config() -> LogConfig {
    common::small_segments()
}

/// The value of `offset` as written in round `round`: a cut record that came back after a
/// truncation and a rewrite would show the wrong round.
fn value(offset: u64, round: u32) -> Vec<u8> {
    format!(
        "{{\"o\":{offset},\"r\":{round},\"p\":\"{}\"}}",
        "x".repeat((offset % 5) as usize * 13)
    )
    .into_bytes()
}

/// What the log should hold: the value of every offset, and each batch's base.
#[derive(Default)]
struct Model {
    values: Vec<Vec<u8>>,
    batch_starts: Vec<u64>,
    /// (epoch, first offset), increasing.
    epochs: Vec<(u32, u64)>,
}

impl Model {
    fn end(&self) -> u64 {
        self.values.len() as u64
    }

    fn truncate(&mut self, end: u64) {
        self.values.truncate(end as usize);
        self.batch_starts.retain(|&b| b < end);
        self.epochs.retain(|&(_, s)| s < end);
    }

    /// The batch start at or below `offset`.
    fn batch_start(&self, offset: u64) -> u64 {
        self.batch_starts
            .iter()
            .rev()
            .copied()
            .find(|&b| b <= offset)
            .unwrap_or(0)
    }
}

/// Appends `batches` batches of 1..=4 records, in `epoch`, values of `round`.
fn fill(log: &mut PartitionLog, model: &mut Model, batches: usize, epoch: u32, round: u32) {
    log.set_leader_epoch(epoch).expect("epoch");
    for i in 0..batches {
        let base = log.end_offset();
        let n = (i % 4) as u64 + 1;
        let values: Vec<Vec<u8>> = (base..base + n).map(|o| value(o, round)).collect();
        let records: Vec<Record<'_>> = values
            .iter()
            .map(|v| Record {
                timestamp_ms: 1,
                key: None,
                value: v,
            })
            .collect();
        let out = log.append(&records, None).expect("append");
        assert_eq!(out.base_offset, model.end());
        model.batch_starts.push(base);
        if model.epochs.last().is_none_or(|&(e, _)| e != epoch) {
            model.epochs.push((epoch, base));
        }
        model.values.extend(values);
    }
}

/// The log holds exactly what the model says, and answers epochs as the model does.
fn check(log: &PartitionLog, model: &Model) {
    assert_eq!(log.end_offset(), model.end());
    let mut next = log.start_offset();
    while next < log.end_offset() {
        for r in log.read(next, 1000, 1 << 20).expect("read") {
            assert_eq!(r.offset, next);
            assert_eq!(
                String::from_utf8_lossy(&r.value),
                String::from_utf8_lossy(&model.values[next as usize]),
                "offset {next}"
            );
            next += 1;
        }
    }
    assert_eq!(
        log.latest_epoch().expect("latest"),
        model.epochs.last().map(|&(e, _)| e)
    );
    for (i, &(epoch, _)) in model.epochs.iter().enumerate() {
        let until = model.epochs.get(i + 1).map_or(model.end(), |&(_, s)| s);
        assert_eq!(
            log.end_offset_for_epoch(epoch).expect("lookup"),
            Some((epoch, until)),
            "epoch {epoch}"
        );
    }
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn segment_bases(dir: &Path) -> Vec<u64> {
    segment_files(dir)
        .iter()
        .filter_map(|n| n.strip_suffix(".log")?.parse().ok())
        .collect()
}

#[test]
fn truncating_inside_the_active_segment_cuts_whole_batches_and_nothing_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        segment_bytes: 1 << 20,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).expect("open");
    let mut model = Model::default();
    fill(&mut log, &mut model, 6, 0, 0);
    fill(&mut log, &mut model, 6, 2, 0);
    assert_eq!(log.segment_count(), 1);
    check(&log, &model);

    // An offset inside a batch cuts from that batch's start.
    let inside = model.batch_starts[8] + 1;
    let cut = model.batch_start(inside);
    assert!(cut < inside);
    assert_eq!(log.truncate_to(inside).expect("truncate"), cut);
    model.truncate(cut);
    check(&log, &model);
    assert_eq!(log.durable_offset(), cut, "the truncation is durable");
    assert!(log.read(cut, 10, 1 << 20).expect("read at end").is_empty());

    // Nothing to cut at or past the end.
    assert_eq!(log.truncate_to(cut).expect("no-op"), cut);
    assert_eq!(log.truncate_to(cut + 100).expect("no-op"), cut);

    // Rewritten with fewer bytes than were cut; reopening must not find the old batches.
    fill(&mut log, &mut model, 1, 3, 1);
    check(&log, &model);
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg).expect("reopen");
    assert_eq!(log.recovery_report().bytes_truncated, 0, "a clean end");
    check(&log, &model);
}

#[test]
fn truncating_into_an_older_segment_deletes_the_later_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    let mut model = Model::default();
    for epoch in [0, 1, 4, 6] {
        fill(&mut log, &mut model, 15, epoch, 0);
    }
    let before = segment_bases(dir.path());
    assert!(before.len() > 6, "{} segments", before.len());
    check(&log, &model);

    // Into the middle of the third segment.
    let keep = before[2];
    let target = model
        .batch_starts
        .iter()
        .copied()
        .filter(|&b| b > keep)
        .nth(1)
        .expect("a batch inside the third segment");
    assert_eq!(
        log.truncate_to(target + 1).expect("truncate"),
        model.batch_start(target + 1)
    );
    model.truncate(model.batch_start(target + 1));
    assert_eq!(segment_bases(dir.path()), before[..3]);
    assert!(segment_files(dir.path())
        .iter()
        .all(|n| !n.starts_with("truncate-to")));
    assert_eq!(log.segment_count(), 3);
    check(&log, &model);

    // The cut segment is the active one now: appends go on there, then roll as before.
    fill(&mut log, &mut model, 20, 9, 1);
    check(&log, &model);
    drop(log);
    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    check(&log, &model);
}

#[test]
fn truncating_at_a_segment_boundary_and_to_the_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    let mut model = Model::default();
    fill(&mut log, &mut model, 30, 1, 0);
    fill(&mut log, &mut model, 30, 2, 0);
    let bases = segment_bases(dir.path());
    let boundary = bases[3];
    assert_eq!(log.truncate_to(boundary).expect("truncate"), boundary);
    model.truncate(boundary);
    // The segment that started there stays, empty, as the active one.
    assert_eq!(segment_bases(dir.path()), bases[..4]);
    check(&log, &model);
    // Reopened with an empty active segment, the log's epoch is its newest sealed one's.
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config()).expect("reopen");
    let last_epoch = model.epochs.last().map(|&(e, _)| e);
    assert_eq!(log.leader_epoch().ok(), last_epoch);
    check(&log, &model);
    fill(&mut log, &mut model, 3, 5, 1);
    check(&log, &model);

    assert_eq!(log.truncate_to(0).expect("truncate all"), 0);
    model.truncate(0);
    assert_eq!(log.latest_epoch().expect("latest"), None);
    assert_eq!(log.end_offset_for_epoch(5).expect("lookup"), None);
    assert_eq!(segment_bases(dir.path()), [0]);
    fill(&mut log, &mut model, 2, 7, 2);
    check(&log, &model);
    drop(log);
    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    check(&log, &model);
}

#[test]
fn truncating_below_the_log_start_is_out_of_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        retention_bytes: Some(4096),
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).expect("open");
    fill(&mut log, &mut Model::default(), 60, 0, 0);
    assert!(log.enforce_retention(0).expect("retention") > 0);
    let (start, end) = (log.start_offset(), log.end_offset());
    assert!(matches!(
        log.truncate_to(start - 1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.end_offset(), end, "nothing changed");
}

#[test]
fn a_sync_captured_before_a_truncation_does_not_count_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    let mut model = Model::default();
    fill(&mut log, &mut model, 8, 0, 0);
    let old_end = log.end_offset();
    let pending = log.pending_sync();
    assert_eq!(pending.durable_through(), old_end);
    let cut = log.truncate_to(model.batch_starts[3]).expect("truncate");
    assert_eq!(log.durable_offset(), cut);
    // Offsets re-used after the cut, not synced yet.
    let v = value(cut, 1);
    log.append_unsynced(
        &[Record {
            timestamp_ms: 1,
            key: None,
            value: &v,
        }],
        None,
    )
    .expect("append");
    // The old capture syncs the old file: it must not mark the re-used offsets durable.
    assert_eq!(pending.sync().expect("old sync"), cut);
    assert_eq!(log.durable_offset(), cut);
    log.sync().expect("sync");
    assert_eq!(log.durable_offset(), cut + 1);
}

/// A log over several segments, and the truncation target: a batch start in an older one.
fn crash_setup(dir: &Path, ops: Arc<Faulty>) -> (PartitionLog, Model, u64) {
    let mut log = PartitionLog::open_with_ops(dir, config(), ops).expect("open");
    let mut model = Model::default();
    fill(&mut log, &mut model, 25, 1, 0);
    fill(&mut log, &mut model, 25, 3, 0);
    let bases = segment_bases(dir);
    let target = model
        .batch_starts
        .iter()
        .copied()
        .find(|&b| b > bases[1])
        .expect("a batch inside the second segment");
    (log, model, target)
}

/// After a failed truncation: a `poisoned` log refuses everything, another one is unchanged;
/// reopened (the process stopped there), it ends at the old end or at `cut`, holds exactly
/// what it should, and takes appends.
fn reopen_after_crash(
    dir: &Path,
    mut log: PartitionLog,
    mut model: Model,
    cut: u64,
    poisoned: bool,
) -> u64 {
    if poisoned {
        assert!(matches!(log.read(0, 1, 0), Err(LogError::Poisoned)));
        let one = [Record {
            timestamp_ms: 1,
            key: None,
            value: b"{}",
        }];
        assert!(matches!(log.append(&one, None), Err(LogError::Poisoned)));
    } else {
        check(&log, &model);
    }
    drop(log);
    let mut log = PartitionLog::open(dir, config()).expect("reopen after the crash");
    let end = log.end_offset();
    assert!(
        end == model.end() || end == cut,
        "reopened at {end}: neither the old end {} nor the cut {cut}",
        model.end()
    );
    model.truncate(end);
    check(&log, &model);
    assert!(segment_files(dir)
        .iter()
        .all(|n| !n.starts_with("truncate-to")));
    fill(&mut log, &mut model, 5, 8, 1);
    check(&log, &model);
    end
}

#[test]
fn a_truncation_failing_at_any_sync_reopens_to_the_old_end_or_the_new_one() {
    let mut outcomes = Vec::new();
    for fail_at in 1.. {
        let dir = tempfile::tempdir().expect("tempdir");
        let ops = Arc::new(Faulty::default());
        let (mut log, model, target) = crash_setup(dir.path(), ops.clone());
        let old_end = model.end();
        ops.arm(fail_at);
        match log.truncate_to(target) {
            Ok(end) => {
                assert_eq!(end, target);
                assert!(fail_at > 3, "only {} failure points", fail_at - 1);
                break;
            }
            Err(e) => {
                assert!(matches!(e, LogError::Io { .. }), "sync {fail_at}: {e:?}");
                // Only the intent's own sync fails before anything is decided.
                let poisoned = fail_at > 1;
                let end = reopen_after_crash(dir.path(), log, model, target, poisoned);
                outcomes.push((fail_at, end == old_end));
            }
        }
    }
    // The intent's own sync failing leaves the old log; every later failure, the new end.
    assert_eq!(outcomes[0], (1, true), "{outcomes:?}");
    assert!(outcomes[1..].iter().all(|&(_, old)| !old), "{outcomes:?}");
}

#[test]
fn a_full_disk_when_reopening_the_cut_segment_still_ends_at_the_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = Arc::new(Faulty::default());
    let (mut log, model, target) = crash_setup(dir.path(), ops.clone());
    ops.disk_full.store(true, Ordering::SeqCst);
    // The files are cut when the new active segment's index cannot be preallocated.
    let err = log.truncate_to(target).expect_err("no space");
    assert!(matches!(err, LogError::NoSpace { .. }), "{err:?}");
    ops.disk_full.store(false, Ordering::SeqCst);
    assert_eq!(
        reopen_after_crash(dir.path(), log, model, target, true),
        target
    );
}

#[test]
fn an_intent_left_by_a_crash_is_finished_at_open_and_an_uncommitted_one_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    let mut model = Model::default();
    fill(&mut log, &mut model, 50, 2, 0);
    drop(log);
    let bases = segment_bases(dir.path());
    let target = model
        .batch_starts
        .iter()
        .copied()
        .find(|&b| b > bases[2])
        .expect("a batch in the third segment");

    // Written but never renamed: the truncation never started.
    std::fs::write(dir.path().join("truncate-to.tmp"), format!("{target}\n")).expect("tmp");
    let log = PartitionLog::open(dir.path(), config()).expect("open");
    assert_eq!(log.recovery_report().truncation_finished, None);
    check(&log, &model);
    drop(log);

    // Committed, then the process died before touching a segment.
    std::fs::write(dir.path().join("truncate-to"), format!("{target}\n")).expect("intent");
    let log = PartitionLog::open(dir.path(), config()).expect("open finishes it");
    assert_eq!(log.recovery_report().truncation_finished, Some(target));
    model.truncate(target);
    check(&log, &model);
    assert_eq!(segment_bases(dir.path()), bases[..3]);
    assert!(segment_files(dir.path())
        .iter()
        .all(|n| !n.starts_with("truncate-to")));

    // Committed, then the process died half-way through deleting the later segments (the
    // newest log gone, its index not yet).
    let mut log = log;
    fill(&mut log, &mut model, 40, 3, 1);
    drop(log);
    let bases = segment_bases(dir.path());
    let newest = *bases.last().expect("segments");
    let target = model
        .batch_starts
        .iter()
        .copied()
        .find(|&b| b > bases[bases.len() - 4])
        .expect("a batch in an older segment");
    std::fs::write(dir.path().join("truncate-to"), format!("{target}\n")).expect("intent");
    std::fs::remove_file(dir.path().join(format!("{newest:020}.log"))).expect("delete newest");
    let log = PartitionLog::open(dir.path(), config()).expect("open finishes it");
    model.truncate(target);
    check(&log, &model);
    assert_eq!(segment_bases(dir.path()), bases[..bases.len() - 3]);
    assert!(segment_files(dir.path())
        .iter()
        .all(|n| !n.starts_with("truncate-to") && !n.starts_with(&format!("{newest:020}"))));
}
