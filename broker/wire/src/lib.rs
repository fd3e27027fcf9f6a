//! The broker's wire contract (`broker/PROTOCOL.md`) as code both the broker and its clients
//! use: one definition, so the two sides cannot drift apart.
//!
//! Owns the key-to-partition hash ([`partition_for_key`], also behind the broker's producer
//! ids), the name rules ([`names`]), the media types of produce bodies and fetch answers
//! ([`media`]), the names of the `Broker-*` response headers ([`header`]), the NDJSON line
//! shapes ([`ndjson`]) and the problem+json body of error answers with its typed extension
//! fields ([`problem`]). It depends on serde only, so either side can use it without pulling
//! in the other. It does not own the HTTP exchange (the broker's handlers, the
//! `broker-client` crate), which status an error gets (the broker), the JSON bodies of the
//! other calls (each side keeps its own) nor the record-batch layout (`broker-log`'s `record`
//! module).

mod hash;
pub mod names;
pub mod ndjson;
pub mod problem;

pub use hash::{fnv1a64, keyless_partition, numeric_producer_id, partition_for_key};
pub use names::{validate_member, validate_name, validate_producer, NameError};
pub use problem::Problem;

/// Media types of produce bodies (`Content-Type`) and fetch answers (`Accept`).
pub mod media {
    /// Newline-delimited JSON messages.
    pub const NDJSON: &str = "application/x-ndjson";
    /// Record batches in the `segments-format.md` layout.
    pub const BATCH: &str = "application/vnd.broker.batch";
    /// Error answers ([`crate::Problem`]).
    pub const PROBLEM: &str = crate::problem::MEDIA_TYPE;
}

/// Names of the broker's `Broker-*` response headers, in lower case: HTTP header names are
/// case-insensitive, and `http::HeaderName::from_static` accepts only lower case.
pub mod header {
    /// `true` when an idempotent produce repeated a (producer, seq) the broker already had.
    pub const DUPLICATE: &str = "broker-duplicate";
    /// A fetch answer: the offset to fetch next.
    pub const NEXT_OFFSET: &str = "broker-next-offset";
    /// A fetch answer: the partition's log end offset, for lag.
    pub const LOG_END_OFFSET: &str = "broker-log-end-offset";
    /// A group fetch answer: the group generation the answer was read under.
    pub const GENERATION: &str = "broker-generation";
    /// A follower's fetch answer (a cluster): the leader's high watermark, the end of what
    /// every in-sync replica holds.
    pub const HIGH_WATERMARK: &str = "broker-high-watermark";
}
