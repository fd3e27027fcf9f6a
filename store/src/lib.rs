//! The telemetry store: everything about how telemetry lives in PostgreSQL.
//!
//! Owns the connection to PostgreSQL (TLS included, [`connect`]). The collector writes
//! through this crate and the API reads through it; neither holds SQL of its own about
//! telemetry.

pub mod connect;
pub mod error;
pub use error::Error;
