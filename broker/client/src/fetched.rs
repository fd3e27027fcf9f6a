//! A fetch answer and the messages in it, in either of the broker's encodings: NDJSON lines
//! (`broker_wire::ndjson::FetchLine`, the shape the broker writes) or whole record batches in the
//! `segments-format.md` layout (`Accept: application/vnd.broker.batch`), which spares the
//! broker the JSON envelope and the client a parse of it. The batch layout is decoded by
//! `broker_log::record`, the one codec of those bytes.
//!
//! Decoding never fails the whole fetch: a line that is not a message comes back as a
//! [`BadLine`] (with its offset when it can be found); a batch that is torn or fails its CRC
//! ends the list there and marks the answer incomplete, so the caller fetches again from the
//! last good offset instead of skipping what it could not read.

use std::borrow::Cow;

use broker_log::record::{self, Decoded};
use broker_wire::ndjson::FetchLine;

/// How the broker encoded a fetch answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Ndjson,
    Batches,
}

/// A fetch answer: the raw body plus the offsets the headers carry.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub partition: u32,
    /// The offset this fetch started at.
    pub offset: u64,
    /// `Broker-Next-Offset`: where to fetch next.
    pub next_offset: u64,
    /// `Broker-Log-End-Offset`: for lag.
    pub log_end_offset: u64,
    pub encoding: Encoding,
    pub(crate) body: Vec<u8>,
}

/// One fetched message, borrowing from the fetch's body.
#[derive(Debug)]
pub struct Message<'a> {
    pub offset: u64,
    /// Milliseconds since the epoch, set by the broker at append.
    pub timestamp: i64,
    pub key: Option<Cow<'a, str>>,
    /// The stored value: JSON text as the producer sent it.
    pub value: &'a str,
}

/// A fetched item the client could not read as a message.
#[derive(Debug)]
pub struct BadLine<'a> {
    pub offset: Option<u64>,
    pub line: Cow<'a, str>,
    pub reason: String,
}

/// The messages of a fetch, in offset order.
#[derive(Debug)]
pub struct Messages<'a> {
    pub items: Vec<Result<Message<'a>, BadLine<'a>>>,
    /// `false` when a damaged batch cut the list short: continue after the last item, not at
    /// `next_offset`.
    pub complete: bool,
}

impl Fetched {
    pub fn is_empty(&self) -> bool {
        self.body.iter().all(u8::is_ascii_whitespace)
    }

    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// Decodes the answer.
    pub fn messages(&self) -> Messages<'_> {
        match self.encoding {
            Encoding::Ndjson => Messages {
                items: ndjson_messages(&self.body),
                complete: true,
            },
            Encoding::Batches => batch_messages(&self.body, self.offset),
        }
    }
}

fn ndjson_messages(body: &[u8]) -> Vec<Result<Message<'_>, BadLine<'_>>> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|line| match std::str::from_utf8(line) {
            Err(e) => Err(BadLine {
                offset: None,
                line: String::from_utf8_lossy(line),
                reason: format!("not UTF-8: {e}"),
            }),
            Ok(text) => serde_json::from_str::<FetchLine<'_>>(text)
                .map(|m| Message {
                    offset: m.offset,
                    timestamp: m.timestamp,
                    key: m.key,
                    value: m.value.get(),
                })
                .map_err(|e| BadLine {
                    offset: sniff_offset(text),
                    line: Cow::Borrowed(text),
                    reason: format!("not a message: {e}"),
                }),
        })
        .collect()
}

/// Walks whole batches; records before `from` (the first batch may start earlier) are skipped.
fn batch_messages(body: &[u8], from: u64) -> Messages<'_> {
    let mut items = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let batch = match record::decode(rest) {
            Decoded::Intact(batch) => batch,
            Decoded::Empty => break,
            other => {
                tracing::warn!(problem = ?other, "damaged batch in a fetch answer; fetching again");
                return Messages {
                    items,
                    complete: false,
                };
            }
        };
        for r in batch.records() {
            let Ok(r) = r else {
                return Messages {
                    items,
                    complete: false,
                };
            };
            if r.offset < from {
                continue;
            }
            items.push(match std::str::from_utf8(r.value) {
                Ok(value) => Ok(Message {
                    offset: r.offset,
                    timestamp: r.timestamp_ms,
                    key: r.key.map(String::from_utf8_lossy),
                    value,
                }),
                Err(e) => Err(BadLine {
                    offset: Some(r.offset),
                    line: String::from_utf8_lossy(r.value),
                    reason: format!("value is not UTF-8: {e}"),
                }),
            });
        }
        rest = &rest[(batch.header.batch_length as usize).min(rest.len())..];
    }
    Messages {
        items,
        complete: true,
    }
}

/// Finds `"offset":N` in a line that does not parse as a whole, so the bad message can still
/// be accounted for at its offset.
fn sniff_offset(line: &str) -> Option<u64> {
    let start = line.find("\"offset\":")? + "\"offset\":".len();
    let digits: String = line[start..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(encoding: Encoding, offset: u64, body: Vec<u8>) -> Fetched {
        Fetched {
            partition: 2,
            offset,
            next_offset: offset,
            log_end_offset: offset,
            encoding,
            body,
        }
    }

    #[test]
    fn ndjson_values_are_borrowed_and_bad_lines_keep_their_offset() {
        let body = concat!(
            r#"{"partition":2,"offset":7,"timestamp":1,"key":"GPU-1","value":{"a":[1,2]}}"#,
            "\n",
            r#"{"partition":2,"offset":8,"timestamp":1,"key":null,"value":{"a":"#,
            "\n\n"
        );
        let f = fetched(Encoding::Ndjson, 7, body.as_bytes().to_vec());
        let all = f.messages().items;
        assert_eq!(all.len(), 2);
        let first = all[0].as_ref().unwrap();
        assert_eq!((first.offset, first.key.as_deref()), (7, Some("GPU-1")));
        assert_eq!(first.value, r#"{"a":[1,2]}"#);
        assert_eq!(all[1].as_ref().unwrap_err().offset, Some(8));
    }

    fn records<'a>(values: &[&'a str]) -> Vec<broker_log::Record<'a>> {
        values
            .iter()
            .map(|v| broker_log::Record {
                timestamp_ms: 5,
                key: Some(b"GPU-1"),
                value: v.as_bytes(),
            })
            .collect()
    }

    fn batch(base: u64, values: &[&str]) -> Vec<u8> {
        record::encode(base, &records(values), None)
    }

    #[test]
    fn batches_skip_records_before_the_offset_and_stop_at_damage() {
        let mut body = batch(10, &["1", "2", "3"]);
        body.extend(batch(13, &["4"]));
        let f = fetched(Encoding::Batches, 11, body.clone());
        let m = f.messages();
        assert!(m.complete);
        let got: Vec<(u64, &str)> = m
            .items
            .iter()
            .map(|i| i.as_ref().map(|m| (m.offset, m.value)).unwrap())
            .collect();
        assert_eq!(got, vec![(11, "2"), (12, "3"), (13, "4")]);

        let last = body.len() - 1;
        body[last] ^= 0xff;
        let f = fetched(Encoding::Batches, 10, body);
        let m = f.messages();
        assert!(!m.complete);
        assert_eq!(m.items.len(), 3);
    }

    #[test]
    fn a_fetch_of_a_log_written_before_v2_reads_its_v1_batches_then_the_v2_ones() {
        let v1 = |base: u64, values: &[&str]| record::encode_v1(base, &records(values), None);
        let mut body = v1(0, &["1", "2"]);
        body.extend(batch(2, &["3"]));
        body.extend(v1(3, &["4"]));
        let f = fetched(Encoding::Batches, 1, body);
        let m = f.messages();
        assert!(m.complete);
        let got: Vec<(u64, &str, Option<&str>)> = m
            .items
            .iter()
            .map(|i| {
                i.as_ref()
                    .map(|m| (m.offset, m.value, m.key.as_deref()))
                    .unwrap()
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "2", Some("GPU-1")),
                (2, "3", Some("GPU-1")),
                (3, "4", Some("GPU-1"))
            ]
        );
    }
}
