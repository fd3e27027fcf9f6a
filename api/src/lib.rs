//! The REST API over the telemetry store in PostgreSQL: GPUs, one GPU's points in a time
//! window, totals, health and operations endpoints, the OpenAPI spec generated from this code
//! and an offline Swagger UI page.
//!
//! Layout, one concept per file:
//!
//! - [`config`]: flags and environment (`--listen`/`PORT`, database settings, pool limits);
//! - [`server`]: the router on the shared serving module (limits, TLS, the token) and which
//!   paths are public;
//! - [`router`]: `(method, path)` → route, the 404 and 405 answers, per-route metrics;
//! - [`handlers`]: one function per endpoint, each annotated for the OpenAPI spec;
//! - [`params`]: parsing and checking the telemetry query string (the 400s);
//! - [`db`]: the connection pool, run off the async reactor, running the store's statements
//!   (`store::read`, which owns every SQL statement about telemetry);
//! - [`model`]: the JSON bodies (and their schemas);
//! - [`error`]: the crate's error enum and its one mapping to HTTP statuses;
//! - [`openapi`]: the spec document; [`docs`]: the Swagger UI assets; [`telemetry`]: metrics.
//!
//! The API only reads. It never writes the tables, and never counts the points: the
//! collector keeps `gpus` and the per-metric day totals current in the transaction that
//! writes the points, so the GPU list and the stats are reads of small tables.

pub mod broker;
pub mod compress;
pub mod config;
pub mod db;
pub mod docs;
pub mod error;
pub mod export;
pub mod handlers;
pub mod model;
pub mod openapi;
pub mod params;
pub mod prometheus;
pub mod router;
pub mod server;
pub mod telemetry;
pub mod ui;

pub use config::Config;
pub use error::ApiError;
pub use server::{run, serve, AppState};
