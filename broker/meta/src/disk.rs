//! Crash-safe file primitives of the metadata storage: atomic whole-file replacement and
//! CRC-checked frames.
//!
//! A frame is `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`, with a
//! non-empty payload: the CRC-32 of nothing is 0, so an empty frame would be eight zero bytes,
//! and zeros are what a crash leaves at the end of a file whose new size reached the disk
//! before its data (XFS, ext4 `data=writeback`). A crash can so leave the last frame of an
//! append-only file half-written or zeroed; [`decode_frames`] tells such a torn tail (a bad
//! frame followed by nothing but zeros, or running past the end) from a bad frame with data
//! after it, which is corruption: cutting there would drop the synced frames after it. What
//! the frames hold is the callers' business.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

const HEADER: usize = 8;

/// Encodes one frame around `payload`, which must not be empty (see the module doc); no
/// caller's is.
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(
        !payload.is_empty(),
        "an empty frame reads back as a torn tail"
    );
    // Metadata entries are tiny; a payload past 4 GiB is a bug, not input.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// How a file of frames ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// Every byte is in an intact frame.
    Whole(Vec<&'a [u8]>),
    /// The intact frames, then a torn tail from byte `good` on (a bad frame followed by
    /// nothing but zeros, or cut short by the end of the file): the caller cuts it off.
    Torn { frames: Vec<&'a [u8]>, good: usize },
    /// A bad frame at byte `at` with non-zero bytes after it: not a torn write.
    Corrupt { at: usize, why: &'static str },
}

/// Splits `bytes` into the payloads of its frames, telling a torn tail from corruption.
pub(crate) fn decode_frames(bytes: &[u8]) -> Decoded<'_> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (end, why) = match check_frame(bytes, at) {
            Ok(payload) => {
                frames.push(payload);
                at += HEADER + payload.len();
                continue;
            }
            Err(e) => e,
        };
        // The bad frame is the last one written if only zeros follow where it claims to end.
        let rest = bytes.get(end..).unwrap_or_default();
        if rest.iter().all(|&b| b == 0) {
            return Decoded::Torn { frames, good: at };
        }
        return Decoded::Corrupt { at, why };
    }
    Decoded::Whole(frames)
}

/// The payload of the intact frame at `at`, or where the bad frame there claims to end (at
/// most the end of `bytes`) and what is wrong with it.
fn check_frame(bytes: &[u8], at: usize) -> Result<&[u8], (usize, &'static str)> {
    let Some(header) = bytes.get(at..at + HEADER) else {
        return Err((bytes.len(), "a short frame header"));
    };
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let len = word(0) as usize;
    let crc = word(4);
    let end = at.saturating_add(HEADER).saturating_add(len);
    if len == 0 {
        return Err((end, "an empty frame"));
    }
    let Some(payload) = bytes.get(at + HEADER..end) else {
        return Err((bytes.len(), "a frame longer than the file"));
    };
    if crc32fast::hash(payload) != crc {
        return Err((end, "a frame failing its CRC"));
    }
    Ok(payload)
}

/// Replaces `path` with `bytes` atomically: a reader (or a restart after a crash) sees the old
/// whole file or the new whole file, never a mix. Written to a temporary file, synced,
/// renamed over, and the directory synced so the rename itself survives a crash.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// The file's bytes, or `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens `path` for appending, creating it (and syncing its directory) when new.
pub(crate) fn open_append(path: &Path) -> std::io::Result<File> {
    let existed = path.exists();
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    if !existed {
        sync_dir(path)?;
    }
    Ok(f)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_frames() -> Vec<u8> {
        let mut buf = Vec::new();
        encode_frame(b"one", &mut buf);
        encode_frame(b"two", &mut buf);
        encode_frame(b"three", &mut buf);
        buf
    }

    const SECOND_END: usize = 2 * (8 + 3);

    #[test]
    fn frames_round_trip_and_a_torn_tail_is_cut() {
        let buf = three_frames();
        assert_eq!(
            decode_frames(&buf),
            Decoded::Whole(vec![&b"one"[..], b"two", b"three"])
        );
        // Every cut inside the last frame keeps exactly the first two.
        for cut in SECOND_END + 1..buf.len() {
            match decode_frames(&buf[..cut]) {
                Decoded::Torn { frames, good } => {
                    assert_eq!(frames, vec![&b"one"[..], b"two"], "cut at {cut}");
                    assert_eq!(good, SECOND_END, "cut at {cut}");
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        // A flipped bit in the last payload fails its CRC; nothing follows it.
        let mut bad = buf.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            decode_frames(&bad),
            Decoded::Torn {
                good: SECOND_END,
                ..
            }
        ));
    }

    #[test]
    fn a_zero_filled_tail_is_torn_not_an_empty_frame() {
        let mut buf = three_frames();
        let whole = buf.len();
        buf.resize(whole + 4096, 0);
        match decode_frames(&buf) {
            Decoded::Torn { frames, good } => {
                assert_eq!(frames.len(), 3);
                assert_eq!(good, whole);
            }
            other => panic!("{other:?}"),
        }
        // Zeros over the last frame (its size reached the disk, its data did not) too.
        let mut buf = three_frames();
        buf[SECOND_END..].fill(0);
        buf.resize(buf.len() + 100, 0);
        assert!(matches!(
            decode_frames(&buf),
            Decoded::Torn {
                good: SECOND_END,
                ..
            }
        ));
    }

    #[test]
    fn a_bad_frame_with_data_after_it_is_corrupt() {
        // A flipped bit in the first payload, two good frames after it.
        let mut bad = three_frames();
        bad[8] ^= 1;
        assert!(matches!(
            decode_frames(&bad),
            Decoded::Corrupt { at: 0, .. }
        ));
        // An empty frame (all-zero header) between good frames.
        let mut buf = Vec::new();
        encode_frame(b"one", &mut buf);
        let at = buf.len();
        buf.extend_from_slice(&[0; 8]);
        encode_frame(b"three", &mut buf);
        assert_eq!(
            decode_frames(&buf),
            Decoded::Corrupt {
                at,
                why: "an empty frame"
            }
        );
    }

    #[test]
    fn write_atomic_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vote");
        assert_eq!(read_optional(&p).unwrap(), None);
        write_atomic(&p, b"first, longer").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(read_optional(&p).unwrap().as_deref(), Some(&b"second"[..]));
        assert!(!p.with_extension("tmp").exists());
    }
}
