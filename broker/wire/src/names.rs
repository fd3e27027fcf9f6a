//! The name rules: which topic, group, producer and member names the broker accepts.
//!
//! Topic and group names become directory and file names, so these rules are what keeps a
//! name from ever being a path: only letters, digits, `.`, `_`, `-`, and never `.` or `..`.
//! The broker enforces them on every request; a client can check a name before it sends
//! anything. The HTTP status of a refusal (400) is the broker's business, not this module's.

/// Longest topic or group name.
pub const MAX_NAME_LEN: usize = 200;
/// Longest producer id.
pub const MAX_PRODUCER_LEN: usize = 128;
/// Longest member id (the broker makes them; a longer one cannot be one of its own).
pub const MAX_MEMBER_ID_LEN: usize = 256;

/// A name the rules refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} name {name:?}: {reason}")]
pub struct NameError {
    /// Which kind of name: `topic`, `group`, `producer` or `member`.
    pub what: &'static str,
    /// The refused name as errors show it ([`shown`]).
    pub name: String,
    pub reason: &'static str,
}

fn refuse(what: &'static str, name: &str, reason: &'static str) -> Result<(), NameError> {
    Err(NameError {
        what,
        name: shown(name),
        reason,
    })
}

/// Checks a topic or group name (`what` says which, for the error).
pub fn validate_name(what: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        refuse(what, name, "must be 1 to 200 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        refuse(
            what,
            name,
            "only letters, digits, '.', '_' and '-' are allowed",
        )
    } else if name == "." || name == ".." {
        refuse(what, name, "'.' and '..' are not names")
    } else {
        Ok(())
    }
}

/// Checks an idempotent producer id: 1–128 characters of `[A-Za-z0-9._:-]`.
pub fn validate_producer(id: &str) -> Result<(), NameError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_PRODUCER_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        refuse(
            "producer",
            id,
            "must be 1 to 128 characters of letters, digits, '.', '_', ':' and '-'",
        )
    }
}

/// Checks a member id: 1–256 bytes (the broker refuses others before any lookup).
pub fn validate_member(member: &str) -> Result<(), NameError> {
    if member.is_empty() || member.len() > MAX_MEMBER_ID_LEN {
        refuse("member", member, "must be 1 to 256 characters")
    } else {
        Ok(())
    }
}

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

    #[test]
    fn member_ids_are_bounded_and_refusals_show_at_most_64_characters() {
        assert!(validate_member("collectors-3-1a2b3c4d").is_ok());
        assert!(validate_member("").is_err());
        let long = "m".repeat(MAX_MEMBER_ID_LEN + 1);
        let err = validate_member(&long).unwrap_err();
        assert_eq!((err.what, err.name.len()), ("member", 64));
    }
}
