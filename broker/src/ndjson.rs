//! The NDJSON message format of produce bodies and fetch answers.
//!
//! Produce: one JSON object a line, `{"key":"…","value":<any JSON>}` or
//! `{"partition":3,"value":…}`. The value's JSON text is kept byte for byte (never
//! re-encoded); blank lines are skipped; an error names the 1-based line.
//! Fetch: `{"partition":p,"offset":o,"timestamp":ms,"key":"…"|null,"value":<stored JSON>}`.
//!
//! Which partition a line goes to is decided here too, because it depends on the line alone.
//!
//! Values are JSON on one line, whatever the content type: a binary batch's values are
//! checked here before the batch is stored ([`check_batch`]), and NDJSON values may not hold
//! a carriage return. So the fetch encoder can copy a stored value into its line as it is
//! (no re-encoding on the consumers' hot path) and a value can never end the line early
//! and forge a record (`1}\n{"offset":…`) or a field.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

use broker_log::record::{decode, validate_for_append, Batch, Decoded, RecordView};

use crate::error::{BrokerError, Result};
use crate::naming::partition_for_key;

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(default)]
    partition: Option<u64>,
    #[serde(borrow)]
    value: &'a RawValue,
}

/// One produced message, borrowing the request body where it can.
pub struct Message<'a> {
    pub partition: u32,
    pub key: Option<Cow<'a, str>>,
    pub value: &'a [u8],
}

/// Parses a produce body for a topic of `partitions` partitions. Lines with neither key nor
/// partition go to `keyless_partition`.
pub fn parse(body: &[u8], partitions: u32, keyless_partition: u32) -> Result<Vec<Message<'_>>> {
    let mut messages = Vec::with_capacity(body.len() / 256 + 1);
    for (i, raw) in lines(body).enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // Lines start with '{': the whole-line scan only runs for odd ones.
        if !matches!(raw.first(), Some(b'{')) && raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line: Line<'_> = serde_json::from_slice(raw).map_err(|e| BrokerError::BadLine {
            line: line_no,
            reason: e.to_string(),
        })?;
        let partition = match (line.partition, &line.key) {
            (Some(p), _) if p < u64::from(partitions) => p as u32,
            (Some(p), _) => {
                return Err(BrokerError::BadLine {
                    line: line_no,
                    reason: format!("partition {p} does not exist (the topic has {partitions})"),
                })
            }
            (None, Some(key)) => partition_for_key(key.as_bytes(), partitions),
            (None, None) => keyless_partition,
        };
        let value = line.value.get().as_bytes();
        if value.contains(&b'\r') {
            return Err(BrokerError::BadLine {
                line: line_no,
                reason: ONE_LINE.into(),
            });
        }
        messages.push(Message {
            partition,
            key: line.key,
            value,
        });
    }
    if messages.is_empty() {
        return Err(BrokerError::BadRequest(
            "the body holds no messages (one JSON object a line)".into(),
        ));
    }
    Ok(messages)
}

const ONE_LINE: &str = "a value must be JSON on one line (no line feed or carriage return)";

/// Checks a binary batch a producer sends: its framing and CRC (as the log will), and that
/// every value is empty (fetched as `null`) or one JSON text without line breaks.
pub fn check_batch(batch: &[u8]) -> Result<()> {
    let header = validate_for_append(batch)
        .map_err(|reason| BrokerError::BadRequest(format!("invalid batch: {reason}")))?;
    let batch = Batch {
        header,
        bytes: batch,
    };
    for (i, record) in batch.records().enumerate() {
        let record =
            record.map_err(|reason| BrokerError::BadRequest(format!("invalid batch: {reason}")))?;
        check_value(record.value).map_err(|reason| {
            BrokerError::BadRequest(format!("record {i} of the batch: {reason}"))
        })?;
    }
    Ok(())
}

/// `Ok` for an empty value or one JSON text on one line.
fn check_value(value: &[u8]) -> std::result::Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.iter().any(|&b| b == b'\n' || b == b'\r') {
        return Err(ONE_LINE.into());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(value)
        .map(|_| ())
        .map_err(|e| format!("the value is not JSON: {e}"))
}

/// The lines of `body` (split at `\n`, a last line without one included). memchr finds the
/// newlines a word at a time: a byte-at-a-time split was ~80% of this module's own time in
/// a profile of NDJSON produce.
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(body);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr(b'\n', current) {
            Some(i) => {
                rest = Some(&current[i + 1..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Appends the fetch lines of the records held in `batches` (whole encoded batches, as the
/// log stores them) from offset `from` on, at most `max`. Returns the offset after the last
/// record written (`from` when none) and how many were written. Working on the encoded
/// bytes saves two allocations and a copy per record over decoded reads.
pub fn encode_batches(
    out: &mut Vec<u8>,
    partition: u32,
    batches: &[u8],
    from: u64,
    max: usize,
) -> Result<(u64, usize)> {
    let (mut pos, mut next, mut count) = (0, from, 0);
    while pos < batches.len() && count < max {
        let batch = match decode(&batches[pos..]) {
            Decoded::Intact(batch) => batch,
            other => return Err(unreadable(pos, &format!("{other:?}"))),
        };
        pos += batch.bytes.len();
        for record in batch.records() {
            let r = record.map_err(|reason| unreadable(pos, reason))?;
            if r.offset < from {
                continue;
            }
            if count == max {
                break;
            }
            encode_one(out, partition, &r);
            next = r.offset + 1;
            count += 1;
        }
    }
    Ok((next, count))
}

fn unreadable(pos: usize, what: &str) -> BrokerError {
    BrokerError::Internal(format!(
        "a stored batch read back at byte {pos} does not decode: {what}"
    ))
}

fn encode_one(out: &mut Vec<u8>, partition: u32, r: &RecordView<'_>) {
    // itoa rather than `write!`: the formatting machinery showed in fetch profiles.
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b"{\"partition\":");
    out.extend_from_slice(number.format(partition).as_bytes());
    out.extend_from_slice(b",\"offset\":");
    out.extend_from_slice(number.format(r.offset).as_bytes());
    out.extend_from_slice(b",\"timestamp\":");
    out.extend_from_slice(number.format(r.timestamp_ms).as_bytes());
    out.extend_from_slice(b",\"key\":");
    match r.key {
        None => out.extend_from_slice(b"null"),
        Some(key) => {
            let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(key));
        }
    }
    out.extend_from_slice(b",\"value\":");
    if r.value.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        out.extend_from_slice(r.value);
    }
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_kept_byte_for_byte_and_keys_pick_partitions() {
        let body = b"{\"key\":\"GPU-1\",\"value\":{ \"a\" : 1.50 }}\n\n{\"partition\":2,\"value\":[1]}\n{\"value\":true}";
        let msgs = parse(body, 4, 3).expect("valid");
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].value, b"{ \"a\" : 1.50 }");
        assert_eq!(msgs[0].partition, partition_for_key(b"GPU-1", 4));
        assert_eq!(msgs[1].partition, 2);
        assert_eq!(msgs[2].partition, 3);
    }

    #[test]
    fn lines_split_like_slice_split() {
        for body in [&b""[..], b"\n", b"a", b"a\n", b"a\nb", b"\n\na\n\nb\n"] {
            let expected: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
            assert_eq!(lines(body).collect::<Vec<_>>(), expected, "{body:?}");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let body = b"{\"key\":\"a\",\"value\":1}\n{\"key\":\"a\",\"value\":}\n";
        match parse(body, 4, 0) {
            Err(BrokerError::BadLine { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected a bad line, got {:?}", other.err()),
        }
        assert!(matches!(
            parse(b"{\"partition\":9,\"value\":1}", 4, 0),
            Err(BrokerError::BadLine { line: 1, .. })
        ));
        assert!(matches!(
            parse(b"\n\n", 4, 0),
            Err(BrokerError::BadRequest(_))
        ));
        assert!(matches!(
            parse(b"{\"key\":\"a\"}", 4, 0),
            Err(BrokerError::BadLine { line: 1, .. })
        ));
    }

    #[test]
    fn fetch_lines_escape_keys_embed_values_and_start_at_the_offset() {
        use broker_log::Record;
        let rec = |key: Option<&'static [u8]>, value: &'static [u8]| Record {
            timestamp_ms: 7,
            key,
            value,
        };
        let mut batches = broker_log::record::encode(
            4,
            &[rec(None, b"1"), rec(Some(b"a\"b"), b"{\"x\":1}")],
            None,
        );
        batches.extend(broker_log::record::encode(
            6,
            &[rec(None, b"2"), rec(None, b"3")],
            None,
        ));
        let mut out = Vec::new();
        let (next, count) = encode_batches(&mut out, 1, &batches, 5, 2).expect("decodes");
        assert_eq!((next, count), (7, 2));
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "{\"partition\":1,\"offset\":5,\"timestamp\":7,\"key\":\"a\\\"b\",\"value\":{\"x\":1}}\n\
             {\"partition\":1,\"offset\":6,\"timestamp\":7,\"key\":null,\"value\":2}\n"
        );
        let mut damaged = batches.clone();
        damaged[60] ^= 1;
        assert!(encode_batches(&mut Vec::new(), 1, &damaged, 4, 10).is_err());
    }
}
