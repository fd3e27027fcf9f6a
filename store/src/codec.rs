//! The compacted point chunk: one series' points of one day (and one broker partition) in a
//! few bytes each, the `data` column of `points_compact`.
//!
//! Points are stored column by column, each column as the difference from what the previous
//! point predicts, so a regular series costs a byte or two a column:
//!
//! | part | encoding |
//! | --- | --- |
//! | version | `u8`, 1 |
//! | count | LEB128 varint |
//! | `ts` | µs since 1970: first as zigzag varint, then delta-of-delta zigzag varints |
//! | `src_offset` | first as zigzag varint, then delta-of-delta zigzag varints |
//! | `source_ts` presence | `u8`: 0 none, 1 every point, 2 mixed and then a bitmap, ⌈count/8⌉ bytes, bit i (LSB first) set when point i has one |
//! | `source_ts` | µs, over the points that have one: like `ts` |
//! | `value` | IEEE 754 bits XOR the previous value's bits (0 for the first): a control byte `lz << 4 \| tz` (whole zero bytes leading and trailing; `0x80` alone for XOR 0), then the `8 - lz - tz` middle bytes, most significant first |
//!
//! Zigzag maps signed to unsigned (`(n << 1) ^ (n >> 63)`); LEB128 writes 7 bits a byte, low
//! first, the high bit set on all but the last. An integer-valued gauge that changes by small
//! steps costs ~2–3 bytes a value; a constant one 1 byte; noise up to 9.
//!
//! [`decode`] checks every length and refuses what it cannot read with an error, never a
//! panic: the bytes come from the database, but a damaged row must not take the API down.

use crate::error::{Error, Result};

/// A point of a chunk: its time, value, broker offset and source time (µs since 1970).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkPoint {
    pub ts: i64,
    pub value: f64,
    pub src_offset: i64,
    pub source_ts: Option<i64>,
}

const VERSION: u8 = 1;
const XOR_ZERO: u8 = 0x80;

/// Encodes points (in the order they are to be read back: by time, then offset).
pub fn encode(points: &[ChunkPoint]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + points.len() * 6);
    out.push(VERSION);
    put_varint(&mut out, points.len() as u64);
    put_dod(&mut out, points.iter().map(|p| p.ts));
    put_dod(&mut out, points.iter().map(|p| p.src_offset));
    let present = points.iter().filter(|p| p.source_ts.is_some()).count();
    match present {
        0 => out.push(0),
        n if n == points.len() => out.push(1),
        _ => {
            out.push(2);
            let mut bitmap = vec![0u8; points.len().div_ceil(8)];
            for (i, p) in points.iter().enumerate() {
                if p.source_ts.is_some() {
                    bitmap[i / 8] |= 1 << (i % 8);
                }
            }
            out.extend_from_slice(&bitmap);
        }
    }
    put_dod(&mut out, points.iter().filter_map(|p| p.source_ts));
    let mut previous = 0u64;
    for p in points {
        let bits = p.value.to_bits();
        put_xor(&mut out, bits ^ previous);
        previous = bits;
    }
    out
}

/// Decodes a chunk written by [`encode`].
pub fn decode(data: &[u8]) -> Result<Vec<ChunkPoint>> {
    let mut r = Reader { data, at: 0 };
    let version = r.byte()?;
    if version != VERSION {
        return Err(corrupt(format!("unknown chunk version {version}")));
    }
    let count = usize::try_from(r.varint()?).map_err(|_| corrupt("count too large".into()))?;
    // Every point takes at least a byte per column: a count beyond the data is damage.
    if count > data.len() {
        return Err(corrupt(format!(
            "count {count} exceeds the chunk's {} bytes",
            data.len()
        )));
    }
    let ts = r.dod(count)?;
    let offsets = r.dod(count)?;
    let presence = match r.byte()? {
        0 => vec![false; count],
        1 => vec![true; count],
        2 => {
            let bitmap = r.take(count.div_ceil(8))?;
            (0..count)
                .map(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
                .collect()
        }
        other => return Err(corrupt(format!("unknown source_ts presence {other}"))),
    };
    let mut source = r.dod(presence.iter().filter(|p| **p).count())?.into_iter();
    let mut points = Vec::with_capacity(count);
    let mut previous = 0u64;
    for i in 0..count {
        let bits = previous ^ r.xor()?;
        previous = bits;
        points.push(ChunkPoint {
            ts: ts[i],
            value: f64::from_bits(bits),
            src_offset: offsets[i],
            source_ts: if presence[i] { source.next() } else { None },
        });
    }
    if r.at != data.len() {
        return Err(corrupt(format!(
            "{} bytes after the last point",
            data.len() - r.at
        )));
    }
    Ok(points)
}

fn corrupt(what: String) -> Error {
    Error::Corrupt(what)
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// First value, first delta, then deltas of deltas; wrapping arithmetic so any i64 series
/// round-trips.
fn put_dod(out: &mut Vec<u8>, values: impl Iterator<Item = i64>) {
    let (mut previous, mut previous_delta) = (0i64, 0i64);
    for (i, v) in values.enumerate() {
        let encoded = match i {
            0 => v,
            _ => {
                let delta = v.wrapping_sub(previous);
                let dod = delta.wrapping_sub(previous_delta);
                previous_delta = delta;
                dod
            }
        };
        put_varint(out, zigzag(encoded));
        previous = v;
    }
}

fn put_xor(out: &mut Vec<u8>, x: u64) {
    if x == 0 {
        out.push(XOR_ZERO);
        return;
    }
    let lz = (x.leading_zeros() / 8) as u8;
    let tz = (x.trailing_zeros() / 8) as u8;
    out.push((lz << 4) | tz);
    let bytes = x.to_be_bytes();
    out.extend_from_slice(&bytes[lz as usize..8 - tz as usize]);
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self
            .data
            .get(self.at)
            .ok_or_else(|| corrupt("chunk ends early".into()))?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| corrupt("chunk ends early".into()))?;
        let slice = &self.data[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(corrupt("varint longer than 10 bytes".into()))
    }

    fn dod(&mut self, count: usize) -> Result<Vec<i64>> {
        let mut out = Vec::with_capacity(count);
        let (mut previous, mut previous_delta) = (0i64, 0i64);
        for i in 0..count {
            let encoded = unzigzag(self.varint()?);
            let v = match i {
                0 => encoded,
                _ => {
                    let delta = previous_delta.wrapping_add(encoded);
                    previous_delta = delta;
                    previous.wrapping_add(delta)
                }
            };
            out.push(v);
            previous = v;
        }
        Ok(out)
    }

    fn xor(&mut self) -> Result<u64> {
        let control = self.byte()?;
        if control == XOR_ZERO {
            return Ok(0);
        }
        let (lz, tz) = (usize::from(control >> 4), usize::from(control & 0x0f));
        if lz + tz >= 8 {
            return Err(corrupt(format!("value control byte {control:#04x}")));
        }
        let middle = self.take(8 - lz - tz)?;
        let mut bytes = [0u8; 8];
        bytes[lz..8 - tz].copy_from_slice(middle);
        Ok(u64::from_be_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn regular(n: usize) -> Vec<ChunkPoint> {
        (0..n as i64)
            .map(|i| ChunkPoint {
                // 15 s apart with a few hundred µs of jitter, like a streamer's processing time.
                ts: 1_780_000_000_000_000 + i * 15_000_000 + (i * 7919) % 400,
                value: (40 + (i % 7)) as f64,
                src_offset: 1_000 + i * 154,
                source_ts: Some(1_752_871_354_000_000 + i * 15_000_000),
            })
            .collect()
    }

    #[test]
    fn a_regular_series_costs_a_few_bytes_a_point() {
        let points = regular(5760);
        let data = encode(&points);
        assert_eq!(decode(&data).unwrap(), points);
        let per_point = data.len() as f64 / points.len() as f64;
        assert!(per_point < 8.0, "{per_point} bytes a point");
    }

    #[test]
    fn the_format_is_as_documented_byte_for_byte() {
        let points = [
            ChunkPoint {
                ts: 10,
                value: 1.0,
                src_offset: 5,
                source_ts: None,
            },
            ChunkPoint {
                ts: 20,
                value: 1.0,
                src_offset: 6,
                source_ts: Some(3),
            },
        ];
        let data = encode(&points);
        let expected: Vec<u8> = [
            vec![1, 2],             // version, count
            vec![20, 20],           // ts: zigzag(10), zigzag(10 - 0)
            vec![10, 2],            // src_offset: zigzag(5), zigzag(1)
            vec![2, 0b10],          // source_ts mixed, bitmap: only point 1
            vec![6],                // source_ts: zigzag(3)
            vec![0x06, 0x3f, 0xf0], // 1.0 = 0x3ff0_0000_0000_0000: lz 0, tz 6, bytes 3f f0
            vec![0x80],             // the same value again
        ]
        .concat();
        assert_eq!(data, expected);
        assert_eq!(decode(&data).unwrap(), points);
    }

    #[test]
    fn damaged_chunks_are_errors_not_panics() {
        let data = encode(&regular(100));
        for cut in 0..data.len() {
            assert!(decode(&data[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        assert!(decode(&[2, 0]).is_err(), "unknown version");
        assert!(
            decode(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err(),
            "absurd count"
        );
    }

    proptest! {
        #[test]
        fn any_points_round_trip(raw in prop::collection::vec(
            (any::<i64>(), any::<u64>(), any::<i64>(), prop::option::of(any::<i64>())), 0..200)) {
            let points: Vec<ChunkPoint> = raw
                .iter()
                .map(|(ts, bits, off, src)| ChunkPoint {
                    ts: *ts,
                    value: f64::from_bits(*bits),
                    src_offset: *off,
                    source_ts: *src,
                })
                .collect();
            let decoded = decode(&encode(&points)).unwrap();
            prop_assert_eq!(decoded.len(), points.len());
            for (d, p) in decoded.iter().zip(&points) {
                prop_assert_eq!(d.value.to_bits(), p.value.to_bits());
                prop_assert_eq!((d.ts, d.src_offset, d.source_ts), (p.ts, p.src_offset, p.source_ts));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&data);
        }
    }
}
