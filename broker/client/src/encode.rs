//! The message encodings a producer builds: NDJSON produce lines (`{"key":…,"value":…}`)
//! and record batches in the `segments-format.md` layout, plus the key-to-partition hash a
//! producer needs to route batches itself.
//!
//! The batch layout is `broker_log::record`'s, the line shape and the hash `broker_wire`'s (the broker's own
//! definitions, so the two sides cannot drift); this module only adapts them to producers.
//! Sending is [`crate::broker`]'s.

use serde::Serialize;

use crate::error::{Error, Result};

/// One NDJSON line of a produce body, keyed (the broker hashes the key) or for a partition:
/// the wire contract's shape.
pub use broker_wire::ndjson::ProduceLine as Record;

/// Appends one NDJSON produce line `{"key":…,"value":…}` to `body`.
pub fn push_record<V: Serialize>(body: &mut Vec<u8>, key: &str, value: &V) -> Result<()> {
    let record = Record {
        key: Some(key),
        partition: None,
        value,
    };
    serde_json::to_writer(&mut *body, &record).map_err(|e| Error::Decode {
        url: String::new(),
        reason: format!("cannot encode a record: {e}"),
    })?;
    body.push(b'\n');
    Ok(())
}

/// The key-to-partition hash (FNV-1a 64 of the key modulo the partition count,
/// broker/PROTOCOL.md "Partitioning"): the broker's own definition, for producers that route
/// record batches to partitions themselves.
pub use broker_wire::{fnv1a64, partition_for_key};

/// One record batch (segments-format.md) holding `(key, value)` records, for
/// [`crate::BrokerClient::produce_batch`]; the broker sets the offsets, timestamps and
/// producer stamp.
pub fn encode_batch<'a>(records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let records: Vec<broker_log::Record<'_>> = records
        .into_iter()
        .map(|(key, value)| broker_log::Record {
            timestamp_ms: 0,
            key: Some(key),
            value,
        })
        .collect();
    broker_log::record::encode(0, &records, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_batch_decodes_to_its_records() {
        let bytes = encode_batch([
            (&b"GPU-1"[..], &b"{\"v\":1}"[..]),
            (&b"GPU-2"[..], &b"2"[..]),
        ]);
        let broker_log::record::Decoded::Intact(batch) = broker_log::record::decode(&bytes) else {
            panic!("not intact");
        };
        let values: Vec<&[u8]> = batch.records().map(|r| r.unwrap().value).collect();
        assert_eq!(values, vec![&b"{\"v\":1}"[..], &b"2"[..]]);
    }

    #[test]
    fn produce_lines_are_one_json_object_each() {
        let mut body = Vec::new();
        push_record(&mut body, "GPU-1", &serde_json::json!({"v": 1})).unwrap();
        push_record(&mut body, "GPU-2", &serde_json::json!({"v": 2})).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\"key\":\"GPU-1\",\"value\":{\"v\":1}}\n{\"key\":\"GPU-2\",\"value\":{\"v\":2}}\n"
        );
    }
}
