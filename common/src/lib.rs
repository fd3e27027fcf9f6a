//! The small pieces every binary of the pipeline shares, so each has one home:
//!
//! - [`logging`]: `tracing` set up as human text on a terminal, JSON with `LOG_FORMAT=json`;
//! - [`shutdown`]: SIGTERM/SIGINT as an async future (servers) or a flag (blocking clients);
//! - [`problem`]: `application/problem+json` responses, including the shared 404 and 405;
//! - [`ops`]: the `/healthz`, `/readyz`, `/metrics` endpoints a blocking client serves on
//!   `--metrics-listen`, and the Prometheus recorder every binary installs;
//! - [`db`]: the database settings (`DATABASE_URL` or `DB_HOST`/`DB_PORT`/…) of the collector
//!   and the API;
//! - [`trust`]: the CA file (`--ca-file`) the HTTPS clients of the broker verify it against.
//!
//! It owns no business logic: nothing here knows about topics, telemetry or SQL tables.

pub mod db;
pub mod logging;
pub mod ops;
pub mod problem;
pub mod shutdown;
pub mod trust;
