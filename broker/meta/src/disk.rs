//! Crash-safe file primitives of the metadata storage: atomic whole-file replacement and
//! CRC-checked frames.
//!
//! A frame is `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`. A crash can
//! leave the last frame of an append-only file half-written; [`decode_frames`] stops at the
//! first frame that is short or fails its CRC and says where the good prefix ends, so the
//! caller cuts the torn tail off. What the frames hold is the callers' business.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

const HEADER: usize = 8;

/// Encodes one frame around `payload`.
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    // Metadata entries are tiny; a payload past 4 GiB is a bug, not input.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The payloads of the whole, intact frames at the start of `bytes`, and the length of that
/// intact prefix.
pub(crate) fn decode_frames(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut frames = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let word =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let len = word(at) as usize;
        let crc = word(at + 4);
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        frames.push(payload);
        at += HEADER + len;
    }
    (frames, at)
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

    #[test]
    fn frames_round_trip_and_a_torn_tail_is_cut() {
        let mut buf = Vec::new();
        encode_frame(b"one", &mut buf);
        encode_frame(b"", &mut buf);
        encode_frame(b"three", &mut buf);
        let whole = buf.len();
        let (frames, good) = decode_frames(&buf);
        assert_eq!(frames, vec![&b"one"[..], b"", b"three"]);
        assert_eq!(good, whole);
        // Every cut inside the last frame keeps exactly the first two.
        let second_end = 8 + 3 + 8;
        for cut in second_end..whole {
            let (frames, good) = decode_frames(&buf[..cut]);
            assert_eq!(frames.len(), 2, "cut at {cut}");
            assert_eq!(good, second_end);
        }
        // A flipped bit in the last payload fails its CRC.
        let mut bad = buf.clone();
        bad[whole - 1] ^= 1;
        assert_eq!(decode_frames(&bad).0.len(), 2);
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
