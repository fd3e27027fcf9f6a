//! A blocking client for the broker's HTTP protocol (v1), shared by the streamer, the
//! collector, the benchmarks and the soak test. What the broker and this client must agree
//! on byte for byte (names, hash, media types, headers, line shapes, problem bodies) is the
//! `broker-wire` crate's; this crate owns the HTTP exchange and its retries.
//!
//! One concept per module, all re-exported here:
//! - [`config`]: how to reach the broker ([`ClientConfig`]);
//! - [`broker`]: [`BrokerClient`], one method per protocol call, and which calls are retried;
//! - [`wire`]: the JSON shapes of requests and answers;
//! - [`encode`]: what a producer sends (NDJSON lines, record batches, the key-to-partition
//!   hash);
//! - [`fetched`]: what a fetch returns, in either encoding;
//! - `route`: which broker a request goes to (bootstrap URLs, partition leaders learned);
//! - [`retry`]: the one retry mechanism ([`RetryPolicy`]), also used by the collector and the
//!   streamer for what is not a broker call;
//! - [`group`]: group membership with its heartbeat thread;
//! - [`error`]: the crate's one error type.

pub mod broker;
pub mod config;
pub mod encode;
pub mod error;
pub mod fetched;
pub mod group;
pub mod retry;
pub(crate) mod route;
pub mod wire;

pub use broker::BrokerClient;
pub use config::ClientConfig;
pub use encode::{encode_batch, fnv1a64, partition_for_key, push_record, Record};
pub use error::{Error, Result};
pub use fetched::{BadLine, Encoding, Fetched, Message, Messages};
pub use group::{GroupMember, Membership};
pub use retry::{Retry, RetryError, RetryPolicy};
pub use wire::{BatchAck, Idempotence, PartitionInfo, PartitionOffset, ProduceAck, TopicMetadata};

/// Media types of produce bodies and fetch answers, as the broker defines them.
pub use broker_wire::media::{BATCH as BATCHES, NDJSON};
