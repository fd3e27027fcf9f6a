//! The part of the broker's wire contract (`broker/PROTOCOL.md`) that both the broker and its
//! clients compute or spell: one definition, so the two sides cannot drift apart.
//!
//! Owns the key-to-partition hash ([`partition_for_key`], also behind the broker's producer
//! ids), the media types of produce bodies and fetch answers ([`media`]) and the names of the
//! `Broker-*` response headers clients read ([`header`]). It has no dependencies, so either
//! side can use it without pulling in the other. It does not own the JSON shapes of requests
//! and answers (the broker's handlers and `clients::client::wire` each keep theirs) nor the
//! record-batch layout (`broker-log`'s `record` module).

mod hash;

pub use hash::{fnv1a64, partition_for_key};

/// Media types of produce bodies (`Content-Type`) and fetch answers (`Accept`).
pub mod media {
    /// Newline-delimited JSON messages.
    pub const NDJSON: &str = "application/x-ndjson";
    /// Record batches in the `segments-format.md` layout.
    pub const BATCH: &str = "application/vnd.broker.batch";
}

/// Names of the broker's response headers that clients read, in lower case: HTTP header names
/// are case-insensitive, and `http::HeaderName::from_static` accepts only lower case.
pub mod header {
    /// `true` when an idempotent produce repeated a (producer, seq) the broker already had.
    pub const DUPLICATE: &str = "broker-duplicate";
    /// A fetch answer: the offset to fetch next.
    pub const NEXT_OFFSET: &str = "broker-next-offset";
    /// A fetch answer: the partition's log end offset, for lag.
    pub const LOG_END_OFFSET: &str = "broker-log-end-offset";
}
