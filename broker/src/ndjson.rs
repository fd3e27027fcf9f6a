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
///
/// The same parse the NDJSON produce path gives a value (`&RawValue`): the JSON grammar
/// checked without building anything, then UTF-8 (a JSON text is UTF-8, so a consumer's
/// parser cannot choke on a stored value). serde_json skips nested values with a heap stack,
/// not recursion, so no depth blows the stack. A JSON text holds a line feed or carriage
/// return only as whitespace between tokens (inside a string they must be escaped), so one
/// without them is one line: memchr finds them at a few bytes a cycle, where a plain
/// byte loop cost about as much as the JSON parse.
fn check_value(value: &[u8]) -> std::result::Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if memchr::memchr2(b'\n', b'\r', value).is_some() {
        return Err(ONE_LINE.into());
    }
    serde_json::from_slice::<&RawValue>(value)
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

    fn batch_of(values: &[&[u8]]) -> Vec<u8> {
        let records: Vec<broker_log::Record<'_>> = values
            .iter()
            .map(|value| broker_log::Record {
                timestamp_ms: 1,
                key: None,
                value,
            })
            .collect();
        broker_log::record::encode(0, &records, None)
    }

    #[test]
    fn value_check_takes_empty_or_one_json_text_on_one_line_and_names_the_refused_record() {
        let deep_ok = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        for good in [
            &b""[..],
            b"1",
            b" {\"a\" : [1, 2.5e-3, true, null, \"x\\u00e9\\n\"]}\t",
            b"\"\\ud800\"", // a lone surrogate escape is grammatical JSON (RFC 8259 section 8.2)
            b"1e999",       // the grammar has no range; the consumer's parser decides
            "\"caf\u{e9} \u{1F600}\"".as_bytes(),
            deep_ok.as_bytes(), // skipped with a heap stack: no recursion to overflow
        ] {
            assert_eq!(
                check_value(good),
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(good)
            );
        }
        let deep_open = "[".repeat(100_000);
        for bad in [
            &b"1}\n{\"offset\":999,\"value\":1"[..],
            b"{\"a\":\n1}",
            b"{\"a\":\r1}",
            b"1\n",
            b"[1,2",
            b"{\"a\":1}}",
            b"{1:2}",
            b"1 2",
            b"1,\"offset\":999",
            b"NaN",
            b"-Infinity",
            b"01",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"\"tab\there\"",
            b"\"\xff\"",
            b"\"\xed\xa0\x80\"", // a surrogate encoded as UTF-8 is not UTF-8
            b"   ",
            b"\0",
            deep_open.as_bytes(),
        ] {
            assert!(
                check_value(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }

        assert!(check_batch(&batch_of(&[b"{}", b"", b"[1]"])).is_ok());
        match check_batch(&batch_of(&[b"{}", b"1}\n{\"x\":1}"])) {
            Err(BrokerError::BadRequest(reason)) => {
                assert!(reason.starts_with("record 1 of the batch"), "{reason}");
            }
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn value_check_never_panics_and_agrees_with_a_full_parse_on_random_and_mutated_values() {
        let telemetry: &[u8] = br#"{"ts":"2025-07-18T13:42:33.000001Z","metric":"DCGM_FI_DEV_GPU_UTIL","gpu_index":1,"namespace":null,"value":41.5,"labels":{"pci_bus_id":"00000000:1A:00.0"},"ok":[true,false]}"#;
        let alphabet = b"{}[]\":,\\u0123456789.eE+-ntrufalsx \t\n\r\xff\xc3\xa9\xed";
        let mut rng = fastrand::Rng::with_seed(0x5eed_0013);
        for round in 0..20_000 {
            let value: Vec<u8> = if round % 2 == 0 {
                // A valid value with a few bytes replaced, inserted or dropped.
                let mut v = telemetry.to_vec();
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(..v.len());
                    match rng.u8(..3) {
                        0 => v[at] = alphabet[rng.usize(..alphabet.len())],
                        1 => v.insert(at, alphabet[rng.usize(..alphabet.len())]),
                        _ => {
                            v.remove(at);
                        }
                    }
                }
                v
            } else {
                (0..rng.usize(..64))
                    .map(|_| alphabet[rng.usize(..alphabet.len())])
                    .collect()
            };
            let checked = check_value(&value);
            let one_line = !value.contains(&b'\n') && !value.contains(&b'\r');
            // A full parse to a tree is stricter (surrogates, ranges, depth): where it
            // accepts a one-line value, the check must too.
            if one_line && serde_json::from_slice::<serde_json::Value>(&value).is_ok() {
                assert_eq!(checked, Ok(()), "{:?}", String::from_utf8_lossy(&value));
            }
            // What the check accepts is one line of UTF-8 JSON.
            if checked.is_ok() && !value.is_empty() {
                assert!(one_line, "{:?}", String::from_utf8_lossy(&value));
                assert!(std::str::from_utf8(&value).is_ok());
                assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&value).is_ok());
            }
        }
    }
}
