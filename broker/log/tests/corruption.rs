//! Damage on disk: the last batch of the active segment truncated at every byte, or with
//! each of its bytes flipped in turn. Every reopen keeps all earlier batches, cuts the last,
//! never panics, and the log takes appends again. Also: damaged and missing indexes, and a
//! corrupt sealed segment answering an error instead of bad data (or, read for a replica
//! without the CRC check, refused by the follower's append).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use broker_log::record::{self, Decoded};
use broker_log::{FsyncPolicy, LogConfig, LogError, PartitionLog, Record};

const BATCHES: u64 = 6;
const PER: u64 = 3;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 100,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

/// Overwrites two bytes at position 70 of the first segment (inside its first batch's
/// records).
fn scribble_in_first_batch(dir: &Path) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(seg_name(0, "log")))
        .expect("open");
    f.write_all_at(b"XX", 70).expect("scribble");
}

/// [`config`] with 600-byte segments: a few batches each, so a log spans many.
fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        ..config()
    }
}

fn value(offset: u64) -> Vec<u8> {
    format!("reading-{offset}").into_bytes()
}

fn append_batches(log: &mut PartitionLog, batches: u64) {
    for _ in 0..batches {
        let base = log.end_offset();
        let vals: Vec<Vec<u8>> = (base..base + PER).map(value).collect();
        let recs: Vec<Record<'_>> = vals
            .iter()
            .map(|v| Record {
                timestamp_ms: 7,
                key: Some(b"key"),
                value: v,
            })
            .collect();
        log.append(&recs, None).expect("append");
    }
}

/// A pristine one-segment log; returns the last batch's `(position, length)`.
fn pristine(dir: &Path) -> (u64, u64) {
    let mut log = PartitionLog::open(dir, config()).expect("open");
    append_batches(&mut log, BATCHES);
    assert_eq!(log.segment_count(), 1);
    drop(log);
    let bytes = std::fs::read(dir.join(seg_name(0, "log"))).expect("read segment");
    let mut pos = 0;
    let mut last = (0, 0);
    while let Decoded::Intact(b) = record::decode(&bytes[pos..]) {
        last = (pos as u64, b.bytes.len() as u64);
        pos += b.bytes.len();
    }
    last
}

fn seg_name(base: u64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// Reopens a damaged copy: the last batch is gone, all before it intact, appends work.
fn assert_recovers_without_last(dir: &Path, what: &str) {
    let mut log = PartitionLog::open(dir, config()).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let kept = (BATCHES - 1) * PER;
    assert_eq!(log.end_offset(), kept, "{what}: end offset");
    assert!(
        log.recovery_report().bytes_truncated > 0,
        "{what}: a cut is reported"
    );
    let got = log.read(0, usize::MAX, usize::MAX).expect("read");
    assert_eq!(got.len() as u64, kept, "{what}");
    assert!(
        got.iter().all(|r| r.value == value(r.offset)),
        "{what}: values"
    );
    append_batches(&mut log, 1);
    drop(log);
    let log = PartitionLog::open(dir, config()).expect("reopen after repair");
    assert_eq!(
        log.end_offset(),
        kept + PER,
        "{what}: append after repair survives"
    );
    assert_eq!(
        log.recovery_report().bytes_truncated,
        0,
        "{what}: the cut was clean"
    );
}

#[test]
fn truncating_the_last_batch_at_every_byte_keeps_earlier_batches() {
    let src = tempfile::tempdir().expect("tempdir");
    let (pos, len) = pristine(src.path());
    for cut in pos + 1..pos + len {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(src.path(), dir.path());
        let f = OpenOptions::new()
            .write(true)
            .open(dir.path().join(seg_name(0, "log")))
            .expect("open");
        f.set_len(cut).expect("truncate");
        drop(f);
        assert_recovers_without_last(dir.path(), &format!("truncated at {cut}"));
    }
}

#[test]
fn flipping_any_byte_of_the_last_batch_cuts_only_it() {
    let src = tempfile::tempdir().expect("tempdir");
    let (pos, len) = pristine(src.path());
    for at in pos..pos + len {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(src.path(), dir.path());
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.path().join(seg_name(0, "log")))
            .expect("open");
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).expect("read byte");
        f.write_all_at(&[b[0] ^ 0xff], at).expect("flip");
        drop(f);
        assert_recovers_without_last(dir.path(), &format!("byte {at} flipped"));
    }
}

#[test]
fn truncating_exactly_at_a_batch_boundary_cuts_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pos, _) = pristine(dir.path());
    let f = OpenOptions::new()
        .write(true)
        .open(dir.path().join(seg_name(0, "log")))
        .expect("open");
    f.set_len(pos).expect("truncate");
    drop(f);
    let log = PartitionLog::open(dir.path(), config()).expect("open");
    assert_eq!(log.end_offset(), (BATCHES - 1) * PER);
    assert_eq!(log.recovery_report().bytes_truncated, 0);
}

#[test]
fn garbage_or_missing_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let small = small_segments();
    let mut log = PartitionLog::open(dir.path(), small.clone()).expect("open");
    append_batches(&mut log, 20);
    let end = log.end_offset();
    let segments = log.segment_count();
    assert!(segments >= 4);
    drop(log);
    // First sealed index: garbage; second: missing; active: garbage.
    std::fs::write(dir.path().join(seg_name(0, "index")), [0xAB; 24]).expect("garble");
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".index"))
        .collect();
    names.sort();
    std::fs::remove_file(dir.path().join(&names[1])).expect("remove");
    std::fs::write(dir.path().join(names.last().expect("active")), [0x5A; 40])
        .expect("garble active");
    let log = PartitionLog::open(dir.path(), small).expect("reopen");
    // Open only stats sealed segments: the missing index is rebuilt there; the garbage one
    // (a whole number of entries) is found and rebuilt when its segment is first read.
    assert_eq!(log.recovery_report().indexes_rebuilt, 1);
    assert_eq!(log.end_offset(), end);
    for offset in 0..end {
        let got = log.read(offset, 1, 0).expect("read");
        assert_eq!(got[0].offset, offset);
        assert_eq!(got[0].value, value(offset));
    }
    let rebuilt = std::fs::read(dir.path().join(seg_name(0, "index"))).expect("index");
    assert!(
        !rebuilt.contains(&0xAB),
        "the garbage index was rebuilt on first read"
    );
}

#[test]
fn corrupt_sealed_segment_answers_an_error_not_bad_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let small = small_segments();
    let mut log = PartitionLog::open(dir.path(), small.clone()).expect("open");
    append_batches(&mut log, 10);
    drop(log);
    scribble_in_first_batch(dir.path());
    let log = PartitionLog::open(dir.path(), small).expect("reopen");
    assert!(matches!(
        log.read(0, 10, usize::MAX),
        Err(LogError::Corrupt { .. })
    ));
    // Later segments stay readable.
    let later = log.read(log.end_offset() - 1, 1, 0).expect("read later");
    assert_eq!(later[0].value, value(log.end_offset() - 1));
}

#[test]
fn a_replica_read_skips_the_crc_and_the_followers_append_refuses_the_damaged_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let small = small_segments();
    let mut log = PartitionLog::open(dir.path(), small.clone()).expect("open");
    append_batches(&mut log, 10);
    // Unverified, an intact log reads the same bytes as a verified read.
    let mut unverified = Vec::new();
    log.read_encoded_into(0, usize::MAX, false, &mut unverified)
        .expect("unverified read");
    assert_eq!(
        unverified,
        log.read_encoded(0, usize::MAX).expect("verified read")
    );
    drop(log);
    // Inside the first batch's records: its framing stays whole, its CRC does not.
    scribble_in_first_batch(dir.path());
    let log = PartitionLog::open(dir.path(), small.clone()).expect("reopen");
    assert!(matches!(
        log.read_encoded(0, usize::MAX),
        Err(LogError::Corrupt { .. })
    ));
    let mut sent = vec![1, 2, 3];
    log.read_encoded_into(0, usize::MAX, false, &mut sent)
        .expect("a replica read does not check the CRC");
    assert!(
        !sent.is_empty() && sent[..3] != [1, 2, 3],
        "the buffer is cleared first"
    );
    // The follower checks it: refused whole, nothing appended.
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let mut follower = PartitionLog::open(follower_dir.path(), small).expect("follower");
    assert!(matches!(
        follower.append_replica(&sent),
        Err(LogError::ReplicaBatchInvalid { position: 0, .. })
    ));
    assert_eq!(follower.end_offset(), 0);
}

#[test]
fn a_sealed_index_entry_pointing_into_a_batch_falls_back_to_a_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 1,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).expect("open");
    append_batches(&mut log, 40);
    assert!(log.segment_count() > 1);
    drop(log);
    let ipath = dir.path().join(seg_name(0, "index"));
    let mut index = std::fs::read(&ipath).expect("read index");
    assert!(index.len() >= 3 * 8, "several entries");
    // Entry 1 now points 8 bytes into the batch of entry 0: still well formed (increasing,
    // inside the file), so only a read through it can notice.
    let p0 = u32::from_le_bytes(index[4..8].try_into().expect("4 bytes"));
    index[12..16].copy_from_slice(&(p0 + 8).to_le_bytes());
    std::fs::write(&ipath, &index).expect("write index");
    let rel1 = u32::from_le_bytes(index[8..12].try_into().expect("4 bytes"));
    let log = PartitionLog::open(dir.path(), cfg).expect("reopen");
    for offset in u64::from(rel1)..u64::from(rel1) + PER {
        let got = log.read(offset, 1, 0).expect("read through the bad entry");
        assert_eq!((got[0].offset, &got[0].value), (offset, &value(offset)));
    }
}

#[test]
fn an_intact_batch_that_does_not_continue_the_offsets_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pos, len) = pristine(dir.path());
    // A replay of the last batch right after it: a valid CRC, but a base offset that does not
    // continue the log (as stale bytes from an earlier life of the segment could be).
    let path = dir.path().join(seg_name(0, "log"));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open");
    let mut last = vec![0u8; len as usize];
    f.read_exact_at(&mut last, pos).expect("read last batch");
    f.write_all_at(&last, pos + len).expect("replay it");
    drop(f);
    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert_eq!(log.end_offset(), BATCHES * PER, "the replay is not data");
    assert_eq!(log.recovery_report().bytes_truncated, len);
    assert_eq!(log.recovery_report().batches_truncated, 1);
}
