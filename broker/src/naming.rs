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

/// The hash behind key partitioning and producer ids is part of the wire contract the
/// clients share, so its one definition lives in `broker-wire`.
pub use broker_wire::{fnv1a64, partition_for_key};

/// A refused name as errors show it: at most 64 characters, so an answer never echoes a
/// megabyte of junk back.
pub fn shown(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
