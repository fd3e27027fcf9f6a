//! Fetched messages turned into what the sink writes: records (points with their offsets) for
//! the store, dead letters for what cannot be decoded, and the offsets the chunk moves its
//! partition between.
//!
//! Decoding never fails a chunk: a message that is not a telemetry point, or holds something
//! PostgreSQL would refuse (a NUL character, a time out of range), becomes a dead letter with
//! the reason, so one bad message can never stall a partition.

use store::offsets::DeadLetter;
use store::point::Point;
use store::write::Record;

use broker_client::Fetched;

/// A consecutive run of one partition's messages, decoded.
#[derive(Debug)]
pub struct Chunk {
    pub partition: u32,
    /// The fetcher's cursor generation; lets the sink drop chunks of a cursor it reset.
    pub epoch: u64,
    /// The database's next offset this chunk follows (what must be committed before it).
    pub expect: i64,
    /// The next offset once this chunk is written.
    pub next: i64,
    /// The partition's log end when fetched (for lag).
    pub log_end: i64,
    pub rows: Vec<Record>,
    pub dead: Vec<DeadLetter>,
}

/// Decodes one fetch answer into a chunk.
pub fn decode(fetched: &Fetched, epoch: u64, expect: i64) -> Chunk {
    let messages = fetched.messages();
    let mut rows = Vec::with_capacity(messages.items.len());
    let mut dead = Vec::new();
    let mut last = None;
    for item in messages.items {
        match item {
            Ok(m) => {
                last = Some(m.offset);
                match record_of(fetched.partition, m.offset as i64, m.value) {
                    Ok(record) => rows.push(record),
                    Err(reason) => dead.push(DeadLetter {
                        partition: fetched.partition,
                        offset: m.offset as i64,
                        key: m.key.map(|k| k.replace('\0', "\\u0000")),
                        payload: m.value.replace('\0', "\\u0000"),
                        reason,
                    }),
                }
            }
            Err(bad) => {
                last = bad.offset.or(last);
                dead.push(DeadLetter {
                    partition: fetched.partition,
                    offset: bad.offset.map_or(-1, |o| o as i64),
                    key: None,
                    payload: bad.line.replace('\0', "\\u0000"),
                    reason: bad.reason,
                });
            }
        }
    }
    let after_last = last.map_or(fetched.offset, |o| o + 1);
    // A damaged answer is only trusted up to its last readable message.
    let next = if messages.complete {
        fetched.next_offset.max(after_last)
    } else {
        after_last
    };
    Chunk {
        partition: fetched.partition,
        epoch,
        expect,
        next: next as i64,
        log_end: fetched.log_end_offset as i64,
        rows,
        dead,
    }
}

impl Chunk {
    /// Messages (rows and dead letters) in the chunk.
    pub fn len(&self) -> usize {
        self.rows.len() + self.dead.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cuts the chunk into consecutive chunks of at most `max` messages (a batch-format fetch
    /// answers whole batches, whatever `--batch-size` is), chained by their offsets.
    pub fn split(self, max: usize) -> Vec<Chunk> {
        let max = max.max(1);
        if self.len() <= max {
            return vec![self];
        }
        let mut offsets: Vec<i64> = self
            .rows
            .iter()
            .map(|r| r.offset)
            .chain(self.dead.iter().map(|d| d.offset))
            .collect();
        offsets.sort_unstable();
        // Each piece starts at one of these offsets; the last ends where the chunk does.
        let starts: Vec<i64> = offsets.iter().step_by(max).copied().skip(1).collect();
        let mut pieces = Vec::with_capacity(starts.len() + 1);
        let mut rows = self.rows.into_iter().peekable();
        let mut dead = self.dead.into_iter().peekable();
        let mut expect = self.expect;
        for end in starts.into_iter().map(Some).chain(std::iter::once(None)) {
            let below = |o: i64| end.is_none_or(|e| o < e);
            let mut piece = Chunk {
                partition: self.partition,
                epoch: self.epoch,
                expect,
                next: end.unwrap_or(self.next),
                log_end: self.log_end,
                rows: Vec::new(),
                dead: Vec::new(),
            };
            while let Some(r) = rows.next_if(|r| below(r.offset)) {
                piece.rows.push(r);
            }
            while let Some(d) = dead.next_if(|d| below(d.offset)) {
                piece.dead.push(d);
            }
            expect = piece.next;
            pieces.push(piece);
        }
        pieces
    }
}

/// One message's value as a record, or why it cannot be one.
pub fn record_of(partition: u32, offset: i64, value: &str) -> Result<Record, String> {
    let point: Point<'_> =
        serde_json::from_str(value).map_err(|e| format!("not a telemetry point: {e}"))?;
    point.check()?;
    Ok(Record {
        partition,
        offset,
        point: point.into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"ts":"2026-01-02T03:04:05.123456Z","source_ts":"2025-07-18T20:42:34.000000Z","metric":"M","gpu_uuid":"GPU-1","gpu_index":0,"device":"nvidia0","model":"H100","hostname":"h","container":null,"pod":"p","namespace":null,"value":1.5,"labels":{"a":"b"}}"#;

    #[test]
    fn a_point_becomes_a_row_with_its_labels_as_json_text() {
        let row = record_of(3, 7, GOOD).unwrap();
        assert_eq!((row.partition, row.offset), (3, 7));
        assert_eq!((row.point.metric.as_ref(), row.point.value), ("M", 1.5));
        assert_eq!(row.point.labels.to_json(), r#"{"a":"b"}"#);
        assert_eq!(row.point.pod.as_deref(), Some("p"));
    }

    #[test]
    fn a_big_chunk_splits_into_chained_pieces_of_at_most_max() {
        let row = record_of(1, 0, GOOD).unwrap();
        let chunk = Chunk {
            partition: 1,
            epoch: 3,
            expect: 10,
            next: 20,
            log_end: 20,
            rows: [10, 11, 13, 14, 15, 17, 18, 19]
                .iter()
                .map(|o| Record {
                    offset: *o,
                    ..row.clone()
                })
                .collect(),
            dead: [12, 16]
                .iter()
                .map(|o| DeadLetter {
                    partition: 1,
                    offset: *o,
                    key: None,
                    payload: "x".into(),
                    reason: "r".into(),
                })
                .collect(),
        };
        let pieces = chunk.split(4);
        let shape: Vec<(i64, i64, usize, usize)> = pieces
            .iter()
            .map(|p| (p.expect, p.next, p.rows.len(), p.dead.len()))
            .collect();
        assert_eq!(shape, vec![(10, 14, 3, 1), (14, 18, 3, 1), (18, 20, 2, 0)]);
    }

    #[test]
    fn undecodable_values_say_why() {
        assert!(record_of(0, 1, "[1,2]")
            .unwrap_err()
            .contains("not a telemetry point"));
        assert!(record_of(0, 1, r#"{"ts":"x"}"#)
            .unwrap_err()
            .contains("not a telemetry point"));
        let nul = GOOD.replace(r#""h""#, r#""h\u0000""#);
        assert!(record_of(0, 1, &nul).unwrap_err().contains("NUL"));
        let nul_label = GOOD.replace(r#""b""#, r#""b\u0000""#);
        assert!(record_of(0, 1, &nul_label).unwrap_err().contains("NUL"));
        let list = GOOD.replace(r#"{"a":"b"}"#, r#"["a"]"#);
        assert!(record_of(0, 1, &list)
            .unwrap_err()
            .contains("not a telemetry point"));
        let far = GOOD.replace("2026-01-02", "+12026-01-02");
        assert!(record_of(0, 1, &far).is_err());
    }
}
