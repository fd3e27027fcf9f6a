//! Names and hashes clients must be able to reproduce: which topic, group and producer names
//! are valid, and which partition a key goes to.
//!
//! Topic and group names become directory and file names, so the rules here are what keeps a
//! name from ever being a path: only letters, digits, `.`, `_`, `-`, and never `.` or `..`.

use crate::error::{BrokerError, Result};

/// Longest topic or group name.
pub const MAX_NAME_LEN: usize = 200;
/// Longest producer id.
pub const MAX_PRODUCER_LEN: usize = 128;

/// Checks a topic or group name (`what` says which, for the error).
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    let reason = if name.is_empty() || name.len() > MAX_NAME_LEN {
        Some("must be 1 to 200 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only letters, digits, '.', '_' and '-' are allowed")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not names")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(BrokerError::InvalidName {
            what,
            name: shown(name),
            reason,
        }),
    }
}

/// Checks an idempotent producer id: 1–128 characters of `[A-Za-z0-9._:-]`.
pub fn validate_producer(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_PRODUCER_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(BrokerError::InvalidName {
            what: "producer",
            name: shown(id),
            reason: "must be 1 to 128 characters of letters, digits, '.', '_', ':' and '-'",
        })
    }
}

/// A refused name as errors show it: at most 64 characters, so an answer never echoes a
/// megabyte of junk back.
pub fn shown(name: &str) -> String {
    name.chars().take(64).collect()
}

/// FNV-1a, 64 bit: the documented, stable hash behind key partitioning and producer ids.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The partition of a message with this key: FNV-1a 64 of the key's UTF-8 bytes, mod the
/// partition count (which is never 0).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (fnv1a64(key) % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn names_that_could_be_paths_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é", &"x".repeat(201)] {
            assert!(validate_name("topic", bad).is_err(), "{bad:?} accepted");
        }
        for good in ["telemetry", "a.b_c-D9", "...", &"x".repeat(200)] {
            assert!(validate_name("topic", good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn producer_ids_allow_colons() {
        assert!(validate_producer("streamer-1:host").is_ok());
        assert!(validate_producer("").is_err());
        assert!(validate_producer("a/b").is_err());
        assert!(validate_producer(&"p".repeat(129)).is_err());
    }
}
