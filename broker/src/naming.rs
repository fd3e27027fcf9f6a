//! The name rules and the key hash as the broker applies them: the rules themselves are the
//! wire contract's (`broker_wire::names`, shared with clients so they can check a name before
//! sending it); this module only turns a refusal into a [`BrokerError`] (a 400).

use crate::error::{BrokerError, Result};

pub use broker_wire::names::{shown, MAX_MEMBER_ID_LEN, MAX_NAME_LEN, MAX_PRODUCER_LEN};
/// The hash behind key partitioning and producer ids is part of the wire contract the
/// clients share, so its one definition lives in `broker-wire`.
pub use broker_wire::{fnv1a64, partition_for_key};

impl From<broker_wire::NameError> for BrokerError {
    fn from(e: broker_wire::NameError) -> Self {
        BrokerError::InvalidName {
            what: e.what,
            name: e.name,
            reason: e.reason,
        }
    }
}

/// Checks a topic or group name (`what` says which, for the error).
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    Ok(broker_wire::validate_name(what, name)?)
}

/// Checks an idempotent producer id: 1–128 characters of `[A-Za-z0-9._:-]`.
pub fn validate_producer(id: &str) -> Result<()> {
    Ok(broker_wire::validate_producer(id)?)
}

/// Refuses a member id no join could have made, before it is looked up or echoed back.
pub fn validate_member(member: &str) -> Result<()> {
    Ok(broker_wire::validate_member(member)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_names_become_invalid_name_errors() {
        let err = validate_name("group", "a/b").unwrap_err();
        assert!(
            matches!(err, BrokerError::InvalidName { what: "group", .. }),
            "{err:?}"
        );
        assert!(validate_producer("p:1").is_ok());
        assert!(matches!(
            validate_member(""),
            Err(BrokerError::InvalidName { what: "member", .. })
        ));
    }
}
