//! The telemetry store: everything about how telemetry lives in PostgreSQL.
//!
//! The collector writes through this crate and the API reads through it; neither holds SQL
//! of its own about telemetry. The design — series, narrow points in daily partitions,
//! rollups, retention, upgrades, scaling out — is explained in `docs/storage.md`.
//!
//! - [`point`]: the telemetry point (the broker message) and [`time`], its one time format;
//! - [`schema`]: the migrations (`store/migrations/`), applied when a collector starts;
//! - [`write`]: a batch of points into series, points, rollups, GPUs and day totals;
//! - [`offsets`]: consumer offsets and dead letters, written in the same transaction;
//! - [`read`]: the queries the API runs, [`aggregate`]: its step aggregation; [`prom`]: those of its Prometheus-compatible API;
//! - [`partitions`] and [`maintenance`]: daily partitions ahead of time, retention;
//! - [`compact`] and [`codec`]: days of points rewritten as dense per-series chunks;
//! - [`legacy`]: moving a `0001` database's points into the compact store;
//! - [`connect`]: connection strings, `sslmode` and TLS; [`session`]: statement-level settings.

pub mod aggregate;
pub mod codec;
pub mod compact;
pub mod connect;
pub mod error;
pub use error::Error;
pub use error::Result;
pub mod legacy;
pub mod maintenance;
pub mod offsets;
pub mod partitions;
pub mod point;
pub mod prom;
pub mod read;
pub mod schema;
pub mod session;
pub mod time;
pub mod write;

pub use point::{Labels, Point};
