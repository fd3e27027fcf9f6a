//! The worked hex dump in `segments-format.md` is what the codec writes, byte for byte.
//! The test parses the ```hex block out of the document, so the two cannot drift.

use broker_log::record::{self, Decoded, HEADER_LEN};
use broker_log::{ProducerStamp, Record};

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../segments-format.md"
));

/// Bytes of the first ```hex block; each line is `position: hh hh .. # comment`, and each
/// position must equal the number of bytes before it.
fn worked_example() -> Vec<u8> {
    let block = DOC
        .split("```hex\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```hex block in segments-format.md");
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

#[test]
fn the_documented_batch_is_what_the_codec_writes() {
    let records = [
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
    ];
    let stamp = ProducerStamp {
        producer_id: 7,
        seq: 3,
    };
    let encoded = record::encode(42, &records, Some(stamp));
    let documented = worked_example();
    assert_eq!(documented.len(), 110);
    assert_eq!(
        encoded, documented,
        "segments-format.md and record.rs disagree"
    );
}

#[test]
fn the_documented_batch_decodes_to_the_documented_fields() {
    let bytes = worked_example();
    let Decoded::Intact(b) = record::decode(&bytes) else {
        panic!("the worked example does not decode as intact");
    };
    assert_eq!(HEADER_LEN, 56);
    assert_eq!(b.header.base_offset, 42);
    assert_eq!(b.header.crc, 0x2559_8deb);
    assert_eq!(record::crc_of(&bytes), b.header.crc);
    assert_eq!(
        b.header.producer(),
        Some(ProducerStamp {
            producer_id: 7,
            seq: 3
        })
    );
    let recs: Vec<_> = b.records().collect::<Result<_, _>>().expect("records");
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (recs[1].offset, recs[1].timestamp_ms, recs[1].key),
        (43, 1_752_846_153_005, None)
    );
    assert!(DOC.contains(&format!("crc = 0x{:08x}", b.header.crc)));
}
