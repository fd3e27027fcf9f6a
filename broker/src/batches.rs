//! Cutting a run of encoded batches (the binary fetch answer) at the visible end, using only
//! the storage crate's header reader — the byte layout itself is `broker_log::record`'s.

use broker_log::record::peek_header;

/// Keeps the whole batches of `bytes` that end at or before `visible_end`, and returns them
/// with the offset after the last record kept (`from` when none is kept).
pub fn truncate_to(mut bytes: Vec<u8>, visible_end: u64, from: u64) -> (Vec<u8>, u64) {
    let mut pos = 0usize;
    let mut next = from;
    while let Some(header) = bytes.get(pos..).and_then(peek_header) {
        let len = header.batch_length as usize;
        if header.end_offset() > visible_end || pos + len > bytes.len() {
            break;
        }
        pos += len;
        next = header.end_offset();
    }
    bytes.truncate(pos);
    (bytes, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_log::record::encode;
    use broker_log::Record;

    fn batch(base: u64, n: usize) -> Vec<u8> {
        let records: Vec<Record<'_>> = (0..n)
            .map(|_| Record {
                timestamp_ms: 1,
                key: None,
                value: b"{}",
            })
            .collect();
        encode(base, &records, None)
    }

    #[test]
    fn batches_past_the_visible_end_are_cut_whole() {
        let mut bytes = batch(0, 3);
        let first = bytes.len();
        bytes.extend(batch(3, 2));
        let (kept, next) = truncate_to(bytes.clone(), 4, 0);
        assert_eq!((kept.len(), next), (first, 3));
        let (kept, next) = truncate_to(bytes.clone(), 5, 0);
        assert_eq!((kept.len(), next), (bytes.len(), 5));
        let (kept, next) = truncate_to(bytes, 2, 1);
        assert_eq!((kept.len(), next), (0, 1));
    }
}
