//! The data path's clients: the telemetry model and the two binaries built on the blocking
//! broker client library (the `broker-client` crate: the broker's HTTP protocol with retries
//! and group membership).
//!
//! - [`telemetry`]: the CSV row → telemetry point mapping (the point itself is `store::Point`);
//! - [`scrape`]: a dcgm-exporter scrape (Prometheus text format) → telemetry points;
//! - [`streamer`]: CSV → broker, rows shared by the members of a streamer group, exactly once;
//! - [`collector`]: broker → PostgreSQL with COPY, offsets kept in the same transaction;
//! - [`cli`]: the start-up both binaries share (signals, logging, broker flags, ops server);
//! - [`error`]: the crate's one error type.

pub mod cli;
pub mod collector;
pub mod error;
pub mod scrape;
pub mod streamer;
pub mod telemetry;

pub use error::{Error, Result};
