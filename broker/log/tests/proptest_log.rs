//! Property: whatever batches are appended, across rolls (tiny segments) and reopenings,
//! every record reads back exactly, in order, at the offset its append returned.

use broker_log::{FsyncPolicy, LogConfig, OwnedRecord, PartitionLog, Record};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<(i64, Option<Vec<u8>>, Vec<u8>)>),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let rec = (
        any::<i64>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        proptest::collection::vec(any::<u8>(), 0..300),
    );
    prop_oneof![
        8 => proptest::collection::vec(rec, 1..8).prop_map(Op::Append),
        1 => Just(Op::Reopen),
    ]
}

fn config(segment_bytes: u64, interval: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: interval,
        fsync: FsyncPolicy::Never,
        max_mapped_segments: 2,
        ..LogConfig::default()
    }
}

fn read_all(log: &PartitionLog, max_records: usize) -> Vec<OwnedRecord> {
    let mut out = Vec::new();
    let mut next = log.start_offset();
    while next < log.end_offset() {
        let got = log.read(next, max_records, 64).expect("read");
        assert!(!got.is_empty(), "read at {next} returned nothing");
        next = got.last().map(|r| r.offset + 1).expect("non-empty");
        out.extend(got);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn appended_records_read_back_exactly(
        ops in proptest::collection::vec(op(), 1..40),
        segment_bytes in 200u64..3000,
        interval in 1u32..600,
        max_records in 1usize..10,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(segment_bytes, interval);
        let mut log = PartitionLog::open(dir.path(), cfg.clone()).expect("open");
        let mut expected: Vec<OwnedRecord> = Vec::new();
        for op in ops {
            match op {
                Op::Reopen => {
                    drop(log);
                    log = PartitionLog::open(dir.path(), cfg.clone()).expect("reopen");
                    prop_assert_eq!(log.recovery_report().bytes_truncated, 0);
                }
                Op::Append(recs) => {
                    let records: Vec<Record<'_>> = recs
                        .iter()
                        .map(|(ts, k, v)| Record { timestamp_ms: *ts, key: k.as_deref(), value: v })
                        .collect();
                    let out = log.append(&records, None).expect("append");
                    prop_assert_eq!(out.base_offset, expected.len() as u64);
                    for (i, (ts, k, v)) in recs.into_iter().enumerate() {
                        expected.push(OwnedRecord { offset: out.base_offset + i as u64, timestamp_ms: ts, key: k, value: v });
                    }
                }
            }
            prop_assert_eq!(log.end_offset(), expected.len() as u64);
        }
        prop_assert_eq!(read_all(&log, max_records), expected.clone());
        prop_assert!(log.mapped_segments() <= 2);
        // Random access: every offset starts a read at exactly that record.
        for e in expected.iter().step_by(7) {
            let got = log.read(e.offset, 1, 0).expect("read one");
            prop_assert_eq!(got.first(), Some(e));
        }
    }
}

/// Walks whatever a decode answers, as a reader would.
fn consume(bytes: &[u8]) {
    if let broker_log::record::Decoded::Intact(b) = broker_log::record::decode(bytes) {
        for r in b.records() {
            if r.is_err() {
                break;
            }
        }
        let _ = b.validate_records();
    }
    let _ = broker_log::record::peek_header(bytes);
    let _ = broker_log::record::restamped_header(bytes, 1, None, 2, 3);
    let _ = broker_log::record::stored_len(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Decoding answers, it never panics: arbitrary bytes, and valid batches with a few
    /// bytes overwritten, in either format version (the CRC is re-stamped half of the time so
    /// that the record walk, not only the CRC check, meets the damage).
    #[test]
    fn decoding_never_panics(
        noise in proptest::collection::vec(any::<u8>(), 0..400),
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..5),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        restamp in any::<bool>(),
        v1 in any::<bool>(),
    ) {
        consume(&noise);
        let records: Vec<Record<'_>> = values
            .iter()
            .map(|v| Record { timestamp_ms: 5, key: Some(v), value: v })
            .collect();
        let mut batch = if v1 {
            broker_log::record::encode_v1(9, &records, None)
        } else {
            broker_log::record::encode(9, &records, None)
        };
        for (at, byte) in edits {
            let n = batch.len();
            batch[at % n] = byte;
        }
        if restamp && batch.len() >= 16 {
            let crc = broker_log::record::crc_of(&batch);
            batch[12..16].copy_from_slice(&crc.to_le_bytes());
        }
        consume(&batch);
    }
}
