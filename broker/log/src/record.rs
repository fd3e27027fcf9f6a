//! The record-batch codec: the only code that reads or writes batch bytes.
//!
//! A batch is the unit of append, of CRC protection, of replication and of the binary produce
//! content type. All integers are fixed-width little-endian (no varints: a header field can be
//! patched in place, and a decoder never loops over continuation bits). The authoritative
//! description, with worked hex dumps of both versions, is `segments-format.md` at the
//! repository root; a test parses those dumps and compares them byte for byte with the encoders.
//!
//! Batch header, format v2 (`MAGIC` = 2, `HEADER_LEN` = 64 bytes), what the log writes:
//!
//! | offset | size | field | type |
//! | --- | --- | --- | --- |
//! | 0 | 8 | base_offset | u64 |
//! | 8 | 4 | batch_length (whole batch, header included) | u32 |
//! | 12 | 4 | crc (CRC-32/ISO-HDLC over bytes `0..12` then `16..batch_length`) | u32 |
//! | 16 | 1 | magic (= 2) | u8 |
//! | 17 | 1 | attributes (reserved, 0) | u8 |
//! | 18 | 2 | reserved (0) | u16 |
//! | 20 | 4 | record_count (≥ 1) | u32 |
//! | 24 | 8 | first_timestamp_ms | i64 |
//! | 32 | 8 | max_timestamp_ms | i64 |
//! | 40 | 8 | producer_id (0 = none) | u64 |
//! | 48 | 8 | producer_seq | u64 |
//! | 56 | 4 | leader_epoch | u32 |
//! | 60 | 4 | reserved_v2 (0) | u32 |
//!
//! Format v1 (`MAGIC_V1` = 1, `HEADER_LEN_V1` = 56 bytes) is the same header without its last
//! 8 bytes: every field sits at the same position in both, so one parser reads both and the
//! magic only says where the records start; a v1 batch reads as leader epoch 0. The log reads
//! both and writes v2 only; a v1 batch a producer sends is stored as v2 by re-stamping the
//! header alone ([`restamped_header`]).
//!
//! Then `record_count` records, each: `length` u32 (bytes after this field), `timestamp_delta`
//! i64 (wrapping, from first_timestamp_ms), `key_length` i32 (-1 = no key), key bytes,
//! `value_length` u32, value bytes. Record `i` has offset `base_offset + i`.
//!
//! What this module does not do: decide what to keep after a bad batch (that is recovery's
//! job) or where batches live (segments).

use crate::{ProducerStamp, Record};

/// Size of the v2 batch header (what the log writes).
pub const HEADER_LEN: usize = 64;
/// Size of the v1 batch header (still read; the shortest header there is).
pub const HEADER_LEN_V1: usize = 56;
/// Fixed bytes of one record besides its key and value.
pub const RECORD_OVERHEAD: usize = 20;
/// The batch format version this code writes.
pub const MAGIC: u8 = 2;
/// The first batch format version, without a leader epoch: read, never written by the log.
pub const MAGIC_V1: u8 = 1;
/// Largest batch accepted (header included); keeps positions within `u32` with room to spare.
pub const MAX_BATCH_BYTES: usize = 128 * 1024 * 1024;

const OFF_BASE: usize = 0;
const OFF_LEN: usize = 8;
const OFF_CRC: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_ATTR: usize = 17;
const OFF_RESERVED: usize = 18;
const OFF_COUNT: usize = 20;
const OFF_FIRST_TS: usize = 24;
const OFF_MAX_TS: usize = 32;
const OFF_PRODUCER: usize = 40;
const OFF_SEQ: usize = 48;
const OFF_EPOCH: usize = 56;
const OFF_RESERVED_V2: usize = 60;

/// The header length of format version `magic`, None for an unknown version.
pub fn header_len_of(magic: u8) -> Option<usize> {
    match magic {
        MAGIC => Some(HEADER_LEN),
        MAGIC_V1 => Some(HEADER_LEN_V1),
        _ => None,
    }
}

/// The decoded fixed header of a batch (v1 or v2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: u64,
    pub batch_length: u32,
    pub crc: u32,
    pub magic: u8,
    pub attributes: u8,
    pub record_count: u32,
    pub first_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub producer_id: u64,
    pub producer_seq: u64,
    /// The leader epoch the batch was appended in (0 for a v1 batch).
    pub leader_epoch: u32,
}

impl BatchHeader {
    /// Reads the header fields without any check (the caller checked that `b` holds at least
    /// `HEADER_LEN_V1` bytes). The leader epoch is read for a v2 header whose 64 bytes are
    /// there, and is 0 otherwise.
    fn parse(b: &[u8]) -> BatchHeader {
        let magic = b[OFF_MAGIC];
        let leader_epoch = if magic == MAGIC && b.len() >= HEADER_LEN {
            u32_at(b, OFF_EPOCH)
        } else {
            0
        };
        BatchHeader {
            base_offset: u64_at(b, OFF_BASE),
            batch_length: u32_at(b, OFF_LEN),
            crc: u32_at(b, OFF_CRC),
            magic,
            attributes: b[OFF_ATTR],
            record_count: u32_at(b, OFF_COUNT),
            first_timestamp_ms: u64_at(b, OFF_FIRST_TS) as i64,
            max_timestamp_ms: u64_at(b, OFF_MAX_TS) as i64,
            producer_id: u64_at(b, OFF_PRODUCER),
            producer_seq: u64_at(b, OFF_SEQ),
            leader_epoch,
        }
    }

    /// The offset after the last record of this batch.
    pub fn end_offset(&self) -> u64 {
        self.base_offset
            .saturating_add(u64::from(self.record_count))
    }

    /// Bytes of this header: where the records start (the v1 length for an unknown magic,
    /// which no decoder accepts anyway).
    pub fn header_len(&self) -> usize {
        header_len_of(self.magic).unwrap_or(HEADER_LEN_V1)
    }

    /// The idempotent-producer stamp, `None` when producer_id is 0.
    pub fn producer(&self) -> Option<ProducerStamp> {
        (self.producer_id != 0).then_some(ProducerStamp {
            producer_id: self.producer_id,
            seq: self.producer_seq,
        })
    }
}

/// What a decoder found at a position: decoding answers, it never panics.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole batch whose CRC matches.
    Intact(Batch<'a>),
    /// An all-zero header: the clean end of the written data in a preallocated segment.
    Empty,
    /// The batch claims more bytes than are available: a write cut short.
    Torn { needed: usize, available: usize },
    /// The stored CRC does not match the bytes.
    Corrupt { expected: u32, found: u32 },
    /// The bytes cannot be a batch (bad length, magic or count).
    Malformed { reason: &'static str },
}

/// A batch borrowed from a buffer (a segment map or a request body): CRC-checked when it
/// comes from [`decode`], framed only when from `frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    pub header: BatchHeader,
    /// The whole batch, header included (`batch_length` bytes).
    pub bytes: &'a [u8],
}

/// One record borrowed from a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
}

/// Decodes the batch (v1 or v2) at the start of `buf` and checks its CRC.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    decode_with(buf, true)
}

/// [`decode`] without the CRC check: the framing alone (length, magic, record count), for
/// walks over bytes whose CRC is checked elsewhere (see `PartitionLog::read_encoded_into`)
/// or not at all (hops over batches that are not returned). Never answers `Corrupt`.
pub(crate) fn frame(buf: &[u8]) -> Decoded<'_> {
    decode_with(buf, false)
}

fn decode_with(buf: &[u8], check_crc: bool) -> Decoded<'_> {
    if buf.len() < HEADER_LEN_V1 {
        if buf.iter().all(|&b| b == 0) {
            return Decoded::Empty;
        }
        return Decoded::Torn {
            needed: HEADER_LEN_V1,
            available: buf.len(),
        };
    }
    let header = BatchHeader::parse(buf);
    let len = header.batch_length as usize;
    if len == 0 && buf[..HEADER_LEN_V1].iter().all(|&b| b == 0) {
        return Decoded::Empty;
    }
    if len < HEADER_LEN_V1 {
        return Decoded::Malformed {
            reason: "batch length shorter than the header",
        };
    }
    if len > MAX_BATCH_BYTES {
        return Decoded::Malformed {
            reason: "batch length over the maximum",
        };
    }
    if len > buf.len() {
        return Decoded::Torn {
            needed: len,
            available: buf.len(),
        };
    }
    let bytes = &buf[..len];
    if check_crc {
        let found = crc_of(bytes);
        if found != header.crc {
            return Decoded::Corrupt {
                expected: header.crc,
                found,
            };
        }
    }
    let Some(header_len) = header_len_of(header.magic) else {
        return Decoded::Malformed {
            reason: "unknown magic (format version)",
        };
    };
    if len < header_len {
        return Decoded::Malformed {
            reason: "batch length shorter than the header",
        };
    }
    if header.record_count == 0 {
        return Decoded::Malformed {
            reason: "batch without records",
        };
    }
    Decoded::Intact(Batch { header, bytes })
}

/// Reads only the header (v1 or v2) at the start of `buf`, without the CRC check (cheap
/// header hops): None when `buf` is shorter than the header or the length field is
/// implausible for it.
pub fn peek_header(buf: &[u8]) -> Option<BatchHeader> {
    if buf.len() < HEADER_LEN_V1 {
        return None;
    }
    let header = BatchHeader::parse(buf);
    let min = header.header_len();
    (buf.len() >= min && (min..=MAX_BATCH_BYTES).contains(&(header.batch_length as usize)))
        .then_some(header)
}

/// The CRC of a batch of either version: bytes `0..12` (base offset, length) then `16..`
/// (all after the CRC field: the rest of the header, the leader epoch of v2 included, and
/// the records).
pub fn crc_of(batch: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&batch[..OFF_CRC]);
    h.update(&batch[OFF_CRC + 4..]);
    h.finalize()
}

impl<'a> Batch<'a> {
    /// The records of this batch, in order; a framing error ends the walk with one `Err`.
    pub fn records(&self) -> RecordIter<'a> {
        RecordIter {
            rest: &self.bytes[self.header.header_len()..],
            next_offset: self.header.base_offset,
            first_ts: self.header.first_timestamp_ms,
            left: self.header.record_count,
            failed: false,
        }
    }

    /// Walks every record: counts match and the records end exactly at the batch end.
    /// Returns the largest record timestamp.
    pub fn validate_records(&self) -> Result<i64, &'static str> {
        let mut max_ts = i64::MIN;
        let mut iter = self.records();
        for r in &mut iter {
            max_ts = max_ts.max(r?.timestamp_ms);
        }
        if !iter.rest.is_empty() {
            return Err("bytes after the last record");
        }
        Ok(max_ts)
    }
}

/// Iterator over the records of a [`Batch`].
pub struct RecordIter<'a> {
    rest: &'a [u8],
    next_offset: u64,
    first_ts: i64,
    left: u32,
    failed: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.failed {
            return None;
        }
        let item = self.next_record();
        self.failed = item.is_err();
        self.left -= 1;
        Some(item)
    }
}

impl<'a> RecordIter<'a> {
    fn next_record(&mut self) -> Result<RecordView<'a>, &'static str> {
        let rest = self.rest;
        if rest.len() < RECORD_OVERHEAD {
            return Err("record header past the batch end");
        }
        let len = u32_at(rest, 0) as usize;
        let body = rest
            .get(4..4 + len)
            .ok_or("record length past the batch end")?;
        if len < RECORD_OVERHEAD - 4 {
            return Err("record length too small");
        }
        let delta = u64_at(body, 0) as i64;
        let key_len = u32_at(body, 8) as i32;
        let (key, after_key) = match key_len {
            -1 => (None, 12),
            k if k >= 0 => {
                let end = 12 + k as usize;
                (
                    Some(body.get(12..end).ok_or("key past the record end")?),
                    end,
                )
            }
            _ => return Err("negative key length"),
        };
        let value_len_bytes = body
            .get(after_key..after_key + 4)
            .ok_or("value length past the record end")?;
        let value_len = u32_at(value_len_bytes, 0) as usize;
        let value_start = after_key + 4;
        if value_start + value_len != len {
            return Err("record length disagrees with key and value lengths");
        }
        let value = &body[value_start..];
        let view = RecordView {
            offset: self.next_offset,
            timestamp_ms: self.first_ts.wrapping_add(delta),
            key,
            value,
        };
        self.rest = &rest[4 + len..];
        self.next_offset += 1;
        Ok(view)
    }
}

/// Bytes one record takes in a batch.
pub fn record_len(r: &Record<'_>) -> usize {
    RECORD_OVERHEAD + r.key.map_or(0, <[u8]>::len) + r.value.len()
}

/// Bytes the (v2) batch for `records` takes, header included.
pub fn encoded_len(records: &[Record<'_>]) -> usize {
    HEADER_LEN + records.iter().map(record_len).sum::<usize>()
}

/// What an encoder wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub record_count: u32,
    pub max_timestamp_ms: i64,
}

/// Encodes `records` as a v2 batch of `leader_epoch` into `buf`, which must be exactly
/// [`encoded_len`] bytes, and stamps the CRC. Every byte of `buf` is written, so it need not
/// be zeroed. The caller checked that `records` is not empty and fits `MAX_BATCH_BYTES`.
pub fn encode_into(
    buf: &mut [u8],
    base_offset: u64,
    leader_epoch: u32,
    records: &[Record<'_>],
    producer: Option<ProducerStamp>,
) -> Encoded {
    encode_version(buf, MAGIC, base_offset, leader_epoch, records, producer)
}

fn encode_version(
    buf: &mut [u8],
    magic: u8,
    base_offset: u64,
    leader_epoch: u32,
    records: &[Record<'_>],
    producer: Option<ProducerStamp>,
) -> Encoded {
    let first_ts = records.first().map_or(0, |r| r.timestamp_ms);
    let max_ts = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0);
    let mut pos = header_len_of(magic).unwrap_or(HEADER_LEN);
    for r in records {
        pos += write_record(&mut buf[pos..], r, first_ts);
    }
    let count = records.len() as u32;
    let head = Head {
        base_offset,
        count,
        first_ts,
        max_ts,
        producer,
    };
    write_header(buf, magic, &head, leader_epoch);
    stamp_crc(buf);
    Encoded {
        record_count: count,
        max_timestamp_ms: max_ts,
    }
}

/// Encodes `records` into a new v2 batch of leader epoch 0 (for producers and tests: the
/// broker re-stamps offsets, times, epoch and CRC anyway).
pub fn encode(
    base_offset: u64,
    records: &[Record<'_>],
    producer: Option<ProducerStamp>,
) -> Vec<u8> {
    encode_in_epoch(base_offset, 0, records, producer)
}

/// Encodes `records` into a new v2 batch of `leader_epoch`.
pub fn encode_in_epoch(
    base_offset: u64,
    leader_epoch: u32,
    records: &[Record<'_>],
    producer: Option<ProducerStamp>,
) -> Vec<u8> {
    let mut buf = vec![0; encoded_len(records)];
    encode_into(&mut buf, base_offset, leader_epoch, records, producer);
    buf
}

/// Encodes `records` into a new batch in the v1 layout (56-byte header, no leader epoch),
/// as logs and producers from before v2 wrote them: the log never writes it, but reads it
/// and accepts it from producers, and tests of those paths need it.
pub fn encode_v1(
    base_offset: u64,
    records: &[Record<'_>],
    producer: Option<ProducerStamp>,
) -> Vec<u8> {
    let mut buf = vec![0; encoded_len(records) - HEADER_LEN + HEADER_LEN_V1];
    encode_version(&mut buf, MAGIC_V1, base_offset, 0, records, producer);
    buf
}

fn write_record(buf: &mut [u8], r: &Record<'_>, first_ts: i64) -> usize {
    let total = record_len(r);
    put_u32(buf, 0, (total - 4) as u32);
    put_u64(buf, 4, r.timestamp_ms.wrapping_sub(first_ts) as u64);
    let mut pos = 16;
    match r.key {
        Some(k) => {
            put_u32(buf, 12, k.len() as u32);
            buf[16..16 + k.len()].copy_from_slice(k);
            pos += k.len();
        }
        None => put_u32(buf, 12, (-1i32) as u32),
    }
    put_u32(buf, pos, r.value.len() as u32);
    buf[pos + 4..pos + 4 + r.value.len()].copy_from_slice(r.value);
    total
}

/// The header fields an encoder computes from the records.
struct Head {
    base_offset: u64,
    count: u32,
    first_ts: i64,
    max_ts: i64,
    producer: Option<ProducerStamp>,
}

/// Writes the header of format `magic` (all of it but the CRC) at the start of `buf`, whose
/// length is the batch length.
fn write_header(buf: &mut [u8], magic: u8, head: &Head, leader_epoch: u32) {
    let len = buf.len() as u32;
    put_u64(buf, OFF_BASE, head.base_offset);
    put_u32(buf, OFF_LEN, len);
    buf[OFF_MAGIC] = magic;
    buf[OFF_ATTR] = 0;
    buf[OFF_RESERVED..OFF_RESERVED + 2].fill(0);
    put_u32(buf, OFF_COUNT, head.count);
    put_u64(buf, OFF_FIRST_TS, head.first_ts as u64);
    put_u64(buf, OFF_MAX_TS, head.max_ts as u64);
    stamp_producer(buf, head.producer);
    if magic == MAGIC {
        put_u32(buf, OFF_EPOCH, leader_epoch);
        put_u32(buf, OFF_RESERVED_V2, 0);
    }
}

fn stamp_producer(buf: &mut [u8], producer: Option<ProducerStamp>) {
    let p = producer.unwrap_or(ProducerStamp {
        producer_id: 0,
        seq: 0,
    });
    put_u64(buf, OFF_PRODUCER, p.producer_id);
    put_u64(buf, OFF_SEQ, p.seq);
}

fn stamp_crc(buf: &mut [u8]) {
    let crc = crc_of(buf);
    put_u32(buf, OFF_CRC, crc);
}

/// Checks a batch (v1 or v2) sent by a producer (binary produce): framing, CRC, magic,
/// reserved fields, record framing. Returns the header on success and a reason otherwise.
pub fn validate_for_append(batch: &[u8]) -> Result<BatchHeader, String> {
    check_for_append(batch).map(|(header, _)| header)
}

/// [`validate_for_append`], also returning the CRC state of the records (bytes after the
/// header), so a restamp does not read them a second time.
fn check_for_append(batch: &[u8]) -> Result<(BatchHeader, crc32fast::Hasher), String> {
    if batch.len() < HEADER_LEN_V1 {
        return Err(format!(
            "{} bytes is shorter than a batch header",
            batch.len()
        ));
    }
    let header = BatchHeader::parse(batch);
    if header.batch_length as usize != batch.len() {
        return Err(format!(
            "batch_length is {} but the body has {} bytes (one batch per request)",
            header.batch_length,
            batch.len()
        ));
    }
    if batch.len() > MAX_BATCH_BYTES {
        return Err("batch length over the maximum".into());
    }
    let header_len = header_len_of(header.magic)
        .ok_or_else(|| format!("unknown magic {} (format version)", header.magic))?;
    if batch.len() < header_len {
        return Err(format!(
            "{} bytes is shorter than a v{} batch header",
            batch.len(),
            header.magic
        ));
    }
    let mut body = crc32fast::Hasher::new();
    body.update(&batch[header_len..]);
    let found = header_crc_with(&batch[..header_len], &body);
    if found != header.crc {
        return Err(format!(
            "CRC mismatch: header says {:#010x}, bytes give {found:#010x}",
            header.crc
        ));
    }
    let reserved_v2 = header.magic == MAGIC && u32_at(batch, OFF_RESERVED_V2) != 0;
    if header.attributes != 0 || u16::from_le_bytes([batch[18], batch[19]]) != 0 || reserved_v2 {
        return Err("attributes and reserved bytes must be 0".into());
    }
    if header.record_count == 0 {
        return Err("batch without records".into());
    }
    Batch {
        header,
        bytes: batch,
    }
    .validate_records()?;
    Ok((header, body))
}

/// The batch CRC from its header bytes (either length) and the CRC state of everything
/// after the header.
fn header_crc_with(header: &[u8], body: &crc32fast::Hasher) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..OFF_CRC]);
    h.update(&header[OFF_CRC + 4..]);
    h.combine(body);
    h.finalize()
}

/// A producer's batch re-stamped for storage by [`restamped_header`].
#[derive(Debug)]
pub struct Restamped<'a> {
    /// The v2 header to store.
    pub head: [u8; HEADER_LEN],
    /// `head` decoded; its `batch_length` is the stored length (8 more than sent for v1).
    pub header: BatchHeader,
    /// The records as sent, stored unchanged after `head`.
    pub records: &'a [u8],
}

/// Validates a producer's batch, v1 or v2 (as [`validate_for_append`]), and returns the v2
/// header the broker stores in its place: base offset, append time (first timestamp =
/// `now_ms`, max moved by the same shift, deltas kept), producer stamp, leader epoch, and the
/// CRC recomputed. The records after the header are stored unchanged, so the caller writes
/// `head` then `records`; they are read once (framing check and CRC) and never copied here.
///
/// A v1 header becomes a v2 one by copying its 56 bytes (every field sits at the same place
/// in both) and adding the epoch and the reserved word: the records, and so their CRC state,
/// are the same, and only the 64 header bytes are hashed again.
pub fn restamped_header(
    batch: &[u8],
    base_offset: u64,
    producer: Option<ProducerStamp>,
    now_ms: i64,
    leader_epoch: u32,
) -> Result<Restamped<'_>, String> {
    let (sent, body) = check_for_append(batch)?;
    let records = &batch[sent.header_len()..];
    let stored_len = HEADER_LEN + records.len();
    if stored_len > MAX_BATCH_BYTES {
        return Err("batch length over the maximum once stored with a v2 header".into());
    }
    let mut out = [0u8; HEADER_LEN];
    out[..HEADER_LEN_V1].copy_from_slice(&batch[..HEADER_LEN_V1]);
    let old_first = u64_at(&out, OFF_FIRST_TS) as i64;
    let old_max = u64_at(&out, OFF_MAX_TS) as i64;
    let new_max = now_ms.wrapping_add(old_max.wrapping_sub(old_first));
    put_u64(&mut out, OFF_BASE, base_offset);
    put_u32(&mut out, OFF_LEN, stored_len as u32);
    out[OFF_MAGIC] = MAGIC;
    put_u64(&mut out, OFF_FIRST_TS, now_ms as u64);
    put_u64(&mut out, OFF_MAX_TS, new_max as u64);
    stamp_producer(&mut out, producer);
    put_u32(&mut out, OFF_EPOCH, leader_epoch);
    put_u32(&mut out, OFF_RESERVED_V2, 0);
    let crc = header_crc_with(&out, &body);
    put_u32(&mut out, OFF_CRC, crc);
    Ok(Restamped {
        head: out,
        header: BatchHeader::parse(&out),
        records,
    })
}

/// The bytes a producer's batch takes once stored: its length with a v2 header (a v1 batch
/// grows by 8). For a body whose header cannot be read, its own length.
pub fn stored_len(batch: &[u8]) -> usize {
    match peek_header(batch) {
        Some(h) => batch.len() - h.header_len() + HEADER_LEN,
        None => batch.len(),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Vec<u8> {
        let recs = [
            Record {
                timestamp_ms: 10,
                key: Some(b"k"),
                value: b"v1",
            },
            Record {
                timestamp_ms: 12,
                key: None,
                value: b"",
            },
        ];
        encode(
            7,
            &recs,
            Some(ProducerStamp {
                producer_id: 3,
                seq: 4,
            }),
        )
    }

    #[test]
    fn round_trip() {
        let buf = two();
        let Decoded::Intact(b) = decode(&buf) else {
            panic!("not intact")
        };
        assert_eq!(b.header.end_offset(), 9);
        assert_eq!(b.validate_records(), Ok(12));
        let recs: Vec<_> = b.records().collect::<Result<_, _>>().expect("records");
        assert_eq!(recs[0].key, Some(&b"k"[..]));
        assert_eq!(recs[1].offset, 8);
        assert_eq!(recs[1].timestamp_ms, 12);
        assert_eq!(recs[1].key, None);
    }

    #[test]
    fn restamped_header_keeps_validity() {
        let buf = two();
        let r = restamped_header(&buf, 100, None, 1000, 9).expect("valid");
        assert_eq!(
            (
                r.header.base_offset,
                r.header.max_timestamp_ms,
                r.header.producer(),
                r.header.leader_epoch
            ),
            (100, 1002, None, 9)
        );
        let mut stored = r.head.to_vec();
        stored.extend_from_slice(r.records);
        assert_eq!(stored.len(), buf.len());
        assert!(validate_for_append(&stored).is_ok());
        assert!(matches!(decode(&stored), Decoded::Intact(_)));
        let mut bad = buf.clone();
        bad[HEADER_LEN + 5] ^= 1;
        assert!(restamped_header(&bad, 0, None, 0, 0).is_err());
    }

    #[test]
    fn a_v1_batch_decodes_as_epoch_0_and_restamps_to_the_same_records_in_v2() {
        let recs = [Record {
            timestamp_ms: 5,
            key: Some(b"k"),
            value: b"v",
        }];
        let v1 = encode_v1(3, &recs, None);
        assert_eq!(v1.len() + 8, encode(3, &recs, None).len());
        let Decoded::Intact(b) = decode(&v1) else {
            panic!("v1 not intact")
        };
        assert_eq!((b.header.magic, b.header.leader_epoch), (MAGIC_V1, 0));
        let got: Vec<_> = b.records().collect::<Result<_, _>>().expect("records");
        assert_eq!(
            (got[0].offset, got[0].key, got[0].value),
            (3, Some(&b"k"[..]), &b"v"[..])
        );

        let r = restamped_header(&v1, 40, None, 77, 2).expect("v1 accepted");
        assert_eq!(stored_len(&v1), HEADER_LEN + r.records.len());
        let mut stored = r.head.to_vec();
        stored.extend_from_slice(r.records);
        let Decoded::Intact(s) = decode(&stored) else {
            panic!("stored v2 not intact")
        };
        assert_eq!(
            (s.header.magic, s.header.leader_epoch, s.header.base_offset),
            (MAGIC, 2, 40)
        );
        let got: Vec<_> = s.records().collect::<Result<_, _>>().expect("records");
        assert_eq!(
            (got[0].offset, got[0].timestamp_ms, got[0].value),
            (40, 77, &b"v"[..])
        );
    }

    #[test]
    fn the_leader_epoch_is_under_the_crc_and_unknown_versions_are_refused() {
        let recs = [Record {
            timestamp_ms: 1,
            key: None,
            value: b"x",
        }];
        let b = encode_in_epoch(0, 7, &recs, None);
        assert_eq!(peek_header(&b).map(|h| h.leader_epoch), Some(7));
        let mut flipped = b.clone();
        flipped[OFF_EPOCH] ^= 1;
        assert!(matches!(decode(&flipped), Decoded::Corrupt { .. }));
        let mut reserved = b.clone();
        reserved[OFF_RESERVED_V2] = 1;
        stamp_crc(&mut reserved);
        assert!(matches!(decode(&reserved), Decoded::Intact(_)));
        assert!(
            validate_for_append(&reserved).is_err(),
            "reserved must be 0"
        );
        let mut v3 = b.clone();
        v3[OFF_MAGIC] = 3;
        stamp_crc(&mut v3);
        assert!(matches!(decode(&v3), Decoded::Malformed { .. }));
        assert!(validate_for_append(&v3).is_err());
        // A v2 batch claiming fewer bytes than its header, with a CRC that matches.
        let mut short = b[..60].to_vec();
        put_u32(&mut short, OFF_LEN, 60);
        stamp_crc(&mut short);
        assert!(matches!(decode(&short), Decoded::Malformed { .. }));
        assert_eq!(peek_header(&short), None);
    }

    #[test]
    fn every_prefix_decodes_without_panic() {
        let recs = [Record {
            timestamp_ms: 1,
            key: None,
            value: b"x",
        }];
        for buf in [two(), encode_v1(0, &recs, None)] {
            for n in 0..buf.len() {
                assert!(!matches!(decode(&buf[..n]), Decoded::Intact(_)));
                let _ = peek_header(&buf[..n]);
            }
        }
    }
}
