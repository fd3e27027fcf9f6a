//! The worked hex dumps in `segments-format.md` are what the codec writes, byte for byte: the
//! first ```hex block is the v2 batch (what the log writes), the second the same batch in v1
//! (what logs from before v2 hold). The test parses the blocks out of the document, so the
//! two cannot drift.

use broker_log::record::{self, Decoded, HEADER_LEN, HEADER_LEN_V1, MAGIC, MAGIC_V1};
use broker_log::{ProducerStamp, Record};

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../segments-format.md"
));

/// Bytes of the `n`th ```hex block (0-based); each line is `position: hh hh .. # comment`,
/// and each position must equal the number of bytes before it.
fn worked_example(n: usize) -> Vec<u8> {
    let block = DOC
        .split("```hex\n")
        .nth(n + 1)
        .and_then(|rest| rest.split("```").next())
        .expect("the ```hex blocks in segments-format.md");
    let mut bytes = Vec::new();
    for line in block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (pos, rest) = line.split_once(':').expect("position: bytes");
        let pos = usize::from_str_radix(pos.trim(), 16).expect("hex position");
        assert_eq!(pos, bytes.len(), "position of line {line:?}");
        let hex = rest.split('#').next().unwrap_or("");
        bytes.extend(
            hex.split_whitespace()
                .map(|h| u8::from_str_radix(h, 16).expect("hex byte")),
        );
    }
    bytes
}

fn records() -> [Record<'static>; 2] {
    [
        Record {
            timestamp_ms: 1_752_846_153_000,
            key: Some(b"gpu-0"),
            value: br#"{"v":1}"#,
        },
        Record {
            timestamp_ms: 1_752_846_153_005,
            key: None,
            value: b"ok",
        },
    ]
}

const STAMP: ProducerStamp = ProducerStamp {
    producer_id: 7,
    seq: 3,
};

#[test]
fn the_documented_v2_batch_is_what_the_codec_writes() {
    let encoded = record::encode_in_epoch(42, 5, &records(), Some(STAMP));
    let documented = worked_example(0);
    assert_eq!(documented.len(), 118);
    assert_eq!(
        encoded, documented,
        "segments-format.md (v2) and record.rs disagree"
    );
}

#[test]
fn the_documented_v1_batch_is_what_the_v1_encoder_writes() {
    let encoded = record::encode_v1(42, &records(), Some(STAMP));
    let documented = worked_example(1);
    assert_eq!(documented.len(), 110);
    assert_eq!(
        encoded, documented,
        "segments-format.md (v1) and record.rs disagree"
    );
}

#[test]
fn the_documented_batches_decode_to_the_documented_fields() {
    assert_eq!((HEADER_LEN, HEADER_LEN_V1), (64, 56));
    for (n, magic, epoch, crc) in [(0, MAGIC, 5, 0xd731_214f), (1, MAGIC_V1, 0, 0x2559_8deb)] {
        let bytes = worked_example(n);
        let Decoded::Intact(b) = record::decode(&bytes) else {
            panic!("worked example {n} does not decode as intact");
        };
        assert_eq!(b.header.magic, magic);
        assert_eq!(b.header.leader_epoch, epoch);
        assert_eq!(b.header.base_offset, 42);
        assert_eq!(b.header.crc, crc);
        assert_eq!(record::crc_of(&bytes), b.header.crc);
        assert_eq!(b.header.producer(), Some(STAMP));
        let recs: Vec<_> = b.records().collect::<Result<_, _>>().expect("records");
        assert_eq!(recs.len(), 2);
        assert_eq!(
            (recs[0].offset, recs[0].key, recs[0].value),
            (42, Some(&b"gpu-0"[..]), &br#"{"v":1}"#[..])
        );
        assert_eq!(
            (recs[1].offset, recs[1].timestamp_ms, recs[1].key),
            (43, 1_752_846_153_005, None)
        );
        assert!(DOC.contains(&format!("crc = 0x{:08x}", b.header.crc)));
    }
    // The two differ only in the header: the same record bytes follow it.
    assert_eq!(
        worked_example(0)[HEADER_LEN..],
        worked_example(1)[HEADER_LEN_V1..]
    );
}
