//! The small pieces every binary of the pipeline shares, so each has one home:
//!
//! - [`logging`]: `tracing` set up as human text on a terminal, JSON with `LOG_FORMAT=json`;
//! - [`shutdown`]: SIGTERM/SIGINT as an async future (servers) or a flag (blocking clients);
//! - [`problem`]: `application/problem+json` responses, including the shared 404 and 405;
//! - [`serve`]: the one HTTP/1.1 server of every binary (limits, timeouts, TLS, the bearer
//!   token checked on the request head);
//! - [`ops`]: the `/healthz`, `/readyz`, `/metrics` answers every server gives, the small
//!   server a blocking client runs on `--metrics-listen`, and the Prometheus recorder;
//! - [`db`]: the database settings (`DATABASE_URL` or `DB_HOST`/`DB_PORT`/…) of the collector
//!   and the API;
//! - [`trust`]: the CA file (`--ca-file`) the HTTPS clients of the broker verify it against.
//!
//! It owns no business logic: nothing here knows about topics, telemetry or SQL tables.

pub mod db;
mod error;
pub mod logging;
pub mod ops;
pub mod problem;
pub mod serve;
pub mod shutdown;
pub mod trust;

pub use error::Error;
