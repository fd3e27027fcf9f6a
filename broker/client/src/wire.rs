//! The JSON shapes of the broker's protocol (`broker/PROTOCOL.md`) as the client reads and
//! writes them, and the answers the client hands back built from them.
//!
//! Owns the field names and which fields may be missing; the HTTP exchange that carries them
//! is [`crate::broker`]'s, the message encodings (NDJSON lines, record batches) are
//! [`crate::encode`]'s.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::group::Membership;

/// One partition's place in a topic.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    pub log_start_offset: u64,
    pub log_end_offset: u64,
    /// The URL of the broker that leads the partition (a single broker: the URL it was
    /// reached by; `None` while a cluster's partition has no leader).
    #[serde(default)]
    pub leader: Option<String>,
    /// In a cluster: the leader's node id (absent from a single broker's answer).
    #[serde(default)]
    pub leader_id: Option<u64>,
}

/// `GET /v1/topics/{t}`.
#[derive(Debug, Clone, Deserialize)]
pub struct TopicMetadata {
    pub topic: String,
    pub partitions: Vec<PartitionInfo>,
}

/// Where one produced message went.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct PartitionOffset {
    pub partition: u32,
    pub offset: u64,
}

/// The answer to a produce: one entry per line, in request order.
#[derive(Debug, Clone)]
pub struct ProduceAck {
    pub results: Vec<PartitionOffset>,
    /// The broker had this (producer, seq) already and appended nothing.
    pub duplicate: bool,
}

/// The answer to a binary batch produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchAck {
    pub base_offset: u64,
    pub record_count: u32,
    /// The broker had this (producer, seq) already and appended nothing.
    pub duplicate: bool,
}

/// The identity that makes a produce idempotent (the `producer` and `seq` query parameters).
#[derive(Debug, Clone, Copy)]
pub struct Idempotence<'a> {
    pub producer: &'a str,
    pub seq: u64,
}

/// `POST /v1/groups/{g}/members` answers and heartbeats.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(super) struct MembershipWire {
    member_id: String,
    generation: u64,
    #[serde(default)]
    partitions: Vec<u32>,
    #[serde(default)]
    session_timeout_ms: Option<u64>,
}

impl From<MembershipWire> for Membership {
    fn from(wire: MembershipWire) -> Self {
        Membership {
            member_id: wire.member_id,
            generation: wire.generation,
            partitions: wire.partitions,
            session_timeout: wire.session_timeout_ms.map(Duration::from_millis),
        }
    }
}

/// The answer to an NDJSON produce.
#[derive(Deserialize)]
pub(super) struct ProduceWire {
    pub results: Vec<PartitionOffset>,
}

/// The answer to a record-batch produce.
#[derive(Deserialize)]
pub(super) struct BatchWire {
    pub base_offset: u64,
    pub record_count: u32,
}

/// `GET /v1/groups/{g}/offsets?topic=t`: partitions are JSON object keys, hence strings.
#[derive(Deserialize)]
pub(super) struct OffsetsWire {
    #[serde(default)]
    pub offsets: BTreeMap<String, u64>,
}
