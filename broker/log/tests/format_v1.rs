//! Logs written before format v2 keep working: a directory of v1 batches, laid out as a
//! broker before v2 left it (a sealed segment, and an active one preallocated with zeros
//! after its data), opens and reads unchanged, byte for byte; new batches are v2, in the same
//! active segment after the v1 ones; and a producer's v1 batch is stored as v2.

use std::path::Path;

use broker_log::record::{self, Decoded, HEADER_LEN, HEADER_LEN_V1, MAGIC, MAGIC_V1};
use broker_log::{FsyncPolicy, LogConfig, PartitionLog, ProducerStamp, Record};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

fn value(offset: u64) -> Vec<u8> {
    format!(
        "{{\"n\":{offset},\"pad\":\"{}\"}}",
        "v".repeat((offset % 7) as usize * 9)
    )
    .into_bytes()
}

/// v1 batches of `sizes` records each, from `base`, back to back.
fn v1_batches(base: u64, sizes: &[u64]) -> (Vec<u8>, u64) {
    let mut bytes = Vec::new();
    let mut next = base;
    for &n in sizes {
        let values: Vec<Vec<u8>> = (next..next + n).map(value).collect();
        let records: Vec<Record<'_>> = values
            .iter()
            .map(|v| Record {
                timestamp_ms: 1_000 + next as i64,
                key: Some(b"gpu"),
                value: v,
            })
            .collect();
        let stamp = ProducerStamp {
            producer_id: 11,
            seq: next + 1,
        };
        bytes.extend(record::encode_v1(next, &records, Some(stamp)));
        next += n;
    }
    (bytes, next)
}

/// Writes a log as a broker before v2 left it: a sealed segment (truncated to its data, no
/// index: recovery rebuilds it) and an active one preallocated with zeros after its data.
/// Returns the v1 bytes of both segments and the end offset.
fn write_v1_log(dir: &Path) -> (Vec<u8>, Vec<u8>, u64) {
    let (sealed, mid) = v1_batches(0, &[3, 1, 4, 1, 5]);
    let (active, end) = v1_batches(mid, &[2, 6, 1]);
    std::fs::write(dir.join(format!("{:020}.log", 0)), &sealed).expect("sealed");
    let mut preallocated = active.clone();
    preallocated.resize(64 * 1024, 0);
    std::fs::write(dir.join(format!("{mid:020}.log")), &preallocated).expect("active");
    (sealed, active, end)
}

fn read_all_encoded(log: &PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = log.start_offset();
    while next < log.end_offset() {
        let chunk = log.read_encoded(next, 1 << 20).expect("read_encoded");
        let mut pos = 0;
        while let Decoded::Intact(b) = record::decode(&chunk[pos..]) {
            next = b.header.end_offset();
            pos += b.bytes.len();
        }
        out.extend_from_slice(&chunk[..pos]);
    }
    out
}

#[test]
fn a_v1_log_opens_reads_unchanged_and_takes_v2_batches_after_its_v1_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sealed, active, end) = write_v1_log(dir.path());
    let mut log = PartitionLog::open(dir.path(), config()).expect("open a v1 log");
    assert_eq!(log.end_offset(), end);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.recovery_report().bytes_truncated, 0, "nothing cut");

    // Byte for byte: fetch answers are the v1 batches as they were written.
    let mut original = sealed.clone();
    original.extend_from_slice(&active);
    assert_eq!(read_all_encoded(&log), original);
    let records = log.read(0, usize::MAX, usize::MAX).expect("read");
    assert_eq!(records.len() as u64, end);
    for r in &records {
        assert_eq!(r.value, value(r.offset));
        assert_eq!(r.key.as_deref(), Some(&b"gpu"[..]));
    }
    let mut metas = Vec::new();
    log.for_each_batch_meta(0, &mut |m| metas.push(*m))
        .expect("metas");
    assert!(metas.iter().all(|m| m.leader_epoch == 0));
    assert_eq!(metas[1].producer.map(|p| p.seq), Some(4));

    // A v1 log is epoch 0 throughout, and goes on in epoch 0.
    assert_eq!(log.latest_epoch().expect("latest"), Some(0));
    assert_eq!(log.end_offset_for_epoch(0).expect("lookup"), Some((0, end)));
    assert_eq!(log.leader_epoch().expect("epoch"), 0);

    // New batches are v2, in the active segment right after the v1 ones.
    let v = value(end);
    log.append(
        &[Record {
            timestamp_ms: 5,
            key: None,
            value: &v,
        }],
        None,
    )
    .expect("append");
    assert_eq!(log.segment_count(), 2);
    let tail = log.read_encoded(end, 1 << 20).expect("tail");
    let Decoded::Intact(b) = record::decode(&tail) else {
        panic!("new batch not intact")
    };
    assert_eq!((b.header.magic, b.header.base_offset), (MAGIC, end));
    let stored = read_all_encoded(&log);
    assert_eq!(stored[..original.len()], original[..], "v1 bytes untouched");
    drop(log);

    // Reopened: the mixed segment (v1 then v2) recovers whole, nothing cut.
    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert_eq!(log.end_offset(), end + 1);
    assert_eq!(log.recovery_report().bytes_truncated, 0);
    assert_eq!(read_all_encoded(&log), stored);
    let last = log.read(end, 1, 0).expect("read new");
    assert_eq!(last[0].value, v);
}

#[test]
fn a_producers_v1_batch_is_stored_as_v2_with_the_same_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    log.set_leader_epoch(4).expect("epoch");
    let (sent, _) = v1_batches(0, &[3]);
    assert_eq!(record::stored_len(&sent), sent.len() + 8);
    let stamp = ProducerStamp {
        producer_id: 2,
        seq: 9,
    };
    let out = log.append_encoded(&sent, Some(stamp)).expect("v1 accepted");
    assert_eq!((out.base_offset, out.record_count), (0, 3));
    let v2 = record::encode(
        0,
        &[Record {
            timestamp_ms: 0,
            key: None,
            value: b"{}",
        }],
        None,
    );
    log.append_encoded(&v2, None).expect("v2 accepted");

    let stored = log.read_encoded(0, 1 << 20).expect("read");
    let Decoded::Intact(first) = record::decode(&stored) else {
        panic!("stored batch not intact")
    };
    assert_eq!(first.header.magic, MAGIC);
    assert_eq!(first.header.leader_epoch, 4);
    assert_eq!(first.header.producer(), Some(stamp));
    assert_eq!(first.bytes.len(), sent.len() + 8);
    assert_eq!(
        first.bytes[HEADER_LEN..],
        sent[HEADER_LEN_V1..],
        "the records are stored as sent"
    );
    assert_eq!(sent[16], MAGIC_V1);
    let Decoded::Intact(second) = record::decode(&stored[first.bytes.len()..]) else {
        panic!("second batch not intact")
    };
    assert_eq!(
        (second.header.base_offset, second.header.leader_epoch),
        (3, 4)
    );
    drop(log);
    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert_eq!(log.end_offset(), 4);
    let values: Vec<Vec<u8>> = log
        .read(0, 10, usize::MAX)
        .expect("read")
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(values, vec![value(0), value(1), value(2), b"{}".to_vec()]);
}
