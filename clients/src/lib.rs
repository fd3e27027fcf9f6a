//! The data path's clients: the blocking broker client library, the telemetry model, and the
//! two binaries built on them.
//!
//! - [`client`]: the broker HTTP protocol (DESIGN.md, notes/protocol.md) over a keep-alive
//!   `ureq` agent, with retries while the broker is down, and group membership with a
//!   heartbeat thread ([`client::GroupMember`]);
//! - [`telemetry`]: the telemetry point and the CSV row → point mapping;
//! - [`streamer`]: CSV → broker, rows shared by the members of a streamer group, exactly once;
//! - [`collector`]: broker → PostgreSQL with COPY, offsets kept in the same transaction;
//! - [`cli`]: the start-up both binaries share (signals, logging, broker flags, ops server);
//! - [`schema`]: the embedded migrations (the lead's);
//! - [`error`]: the crate's one error type.

pub mod cli;
pub mod client;
pub mod collector;
pub mod error;
pub mod schema;
pub mod streamer;
pub mod telemetry;

pub use error::{Error, Result};
